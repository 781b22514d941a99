#!/usr/bin/env python3
"""References for psyrun's CLIP and DINOv2 image encoders (issue 16).

Run with the project's venv (torch 2.13, open_clip_torch 3.3.0, timm 1.0.31):

    python scripts/clip_reference.py shapes [OUT_DIR [ARCH ...]]
        tests/fixtures/catalog/<arch>.txt for the architectures below, in the format of
        scripts/catalog_shapes.py (whose Recorder this uses).

    python scripts/clip_reference.py keys [OUT_DIR]
        tests/fixtures/backbone/<arch>.keys: `<key> <dtype> <shape>` per line, the encoder's
        state-dict keys in the layout of the released files (CLIP: `visual.` removed).

    python scripts/clip_reference.py parity OUT_DIR ARCH@SIZE=CUT,CUT,... ...
        For each ARCH (once, whatever the sizes), a weights file with seeded random weights
        saved as the published files are, and for each SIZE `<arch>.<size>.io.safetensors`:
        `input` (2x3xSIZExSIZE, seed 1) and `out.<cut>`, the reference's output at <cut>.

The references:

- CLIP: open_clip's `RN50-quickgelu`, `ViT-B-32-quickgelu`, `ViT-B-16-quickgelu` (OpenAI's
  CLIP uses QuickGELU), image tower `model.visual`. The weights file `<arch>.pt` is the whole
  CLIP model (text tower too) converted to float16 as OpenAI's released files are
  (open_clip's `convert_weights_to_lp`: convs, linears, attention and projections in
  float16, BatchNorm and LayerNorm in float32), traced with `torch.jit.trace` on an image
  and a text batch and saved with `torch.jit.save`: a TorchScript archive with OpenAI's key
  layout (`visual.conv1.weight`, `visual.transformer.resblocks.0.attn.in_proj_weight`, ...,
  `transformer.*` for the text tower). The reference runs in float32 on the same
  float16-rounded weights. Cut `proj` is the image embedding (`model.visual(x)`).
  RN50's `attnpool` at another grid than 7x7 resamples its position embedding as timm's
  `AttentionPool2d` does (`resample_abs_pos_embed`: bicubic, antialias); open_clip's own
  refuses other sizes, so open_clip's forward is used with that one change.

- DINOv2: timm's `vit_small_patch14_dinov2`, `vit_base_patch14_dinov2` and their `reg4`
  variants (dynamic_img_size, num_classes 0), saved by `torch.save` in the layout of the
  released `dinov2_vits14_pretrain.pth` etc. (timm's `_convert_dinov2` inverted:
  `register_tokens` for timm's `reg_token`, the class position folded back into `pos_embed`,
  and a `mask_token`). The official dinov2 package is not on PyPI, so its position-embedding
  interpolation (`interpolate_pos_encoding`) is written here from its code, with the
  settings of its hub models: without registers bicubic, antialias off, scale factor
  (grid + 0.1) / 37 (interpolate_offset 0.1); with registers bicubic to the grid's size,
  antialias on (interpolate_offset 0, interpolate_antialias True). It replaces the timm
  model's own resampling. At 518 px (a 37x37 grid) nothing is resampled.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CLIP = {
    "clip_rn50": "RN50-quickgelu",
    "clip_vit_b_32": "ViT-B-32-quickgelu",
    "clip_vit_b_16": "ViT-B-16-quickgelu",
}
DINOV2 = {
    "dinov2_vits14": "vit_small_patch14_dinov2",
    "dinov2_vitb14": "vit_base_patch14_dinov2",
    "dinov2_vits14_reg": "vit_small_patch14_reg4_dinov2",
    "dinov2_vitb14_reg": "vit_base_patch14_reg4_dinov2",
}
ARCHS = list(CLIP) + list(DINOV2)

# DINOv2 module names kept in the catalog (the released code's; timm adds identities of its
# own: q_norm, k_norm, attn.norm, mlp.drop1/norm/drop2, pos_drop, patch_drop, norm_pre,
# fc_norm, head_drop, and calls `blocks`, a ModuleList in the released code).
DINOV2_TOP = {"patch_embed", "patch_embed.proj", "norm", "head"}
DINOV2_BLOCK = {"", "norm1", "attn", "attn.qkv", "attn.proj", "ls1", "norm2", "mlp", "mlp.fc1",
                "mlp.act", "mlp.fc2", "ls2"}


def keep(arch, name):
    if arch not in DINOV2:
        return True
    if name in DINOV2_TOP:
        return True
    parts = name.split(".", 2)
    return len(parts) >= 2 and parts[0] == "blocks" and parts[1].isdigit() and (
        (parts[2] if len(parts) == 3 else "") in DINOV2_BLOCK)


def attnpool_forward(self, x):
    """open_clip's AttentionPool2d.forward, its position embedding resampled to the map's
    grid as timm's AttentionPool2d does when the grid is not the embedding's."""
    from timm.layers import resample_abs_pos_embed

    n, c, h, w = x.shape
    pos = self.positional_embedding
    g = int(round(math.sqrt(pos.shape[0] - 1)))
    if (h, w) != (g, g):
        pos = resample_abs_pos_embed(pos[None], (h, w), old_size=(g, g), num_prefix_tokens=1)[0]
    x = x.reshape(n, c, h * w).permute(2, 0, 1)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + pos[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
        q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
        v_proj_weight=self.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
        use_separate_proj_weight=True, training=self.training, need_weights=False)
    return x[0]


def dinov2_pos_embed(self, x):
    """timm's VisionTransformer._pos_embed (dynamic size, NHWC patches) with DINOv2's own
    interpolate_pos_encoding, as its hub models set it: without registers bicubic at the
    scale factor (g + 0.1) / M, no antialias (interpolate_offset 0.1); with registers
    bicubic to the size g x g with antialias (interpolate_offset 0, interpolate_antialias)."""
    b, h, w, c = x.shape
    pos = self.pos_embed
    if self.no_embed_class:
        cls_pos, patch_pos = None, pos
    else:
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
    m = int(math.sqrt(patch_pos.shape[1]))
    if (h, w) != (m, m):
        grid = patch_pos.float().reshape(1, m, m, c).permute(0, 3, 1, 2)
        if self.reg_token is not None:
            patch_pos = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)
        else:
            patch_pos = F.interpolate(grid, scale_factor=(float(h + 0.1) / m, float(w + 0.1) / m),
                                      mode="bicubic", antialias=False)
        assert patch_pos.shape[-2:] == (h, w)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, c)
    x = x.view(b, -1, c)
    prefix = [self.cls_token.expand(b, -1, -1)]
    if self.reg_token is not None:
        prefix.append(self.reg_token.expand(b, -1, -1))
    if self.no_embed_class:
        # timm's layout of the register models: the class position folded into cls_token.
        return torch.cat(prefix + [x + patch_pos], dim=1)
    return torch.cat(prefix + [x], dim=1) + torch.cat([cls_pos, patch_pos], dim=1)


def build(arch):
    """The reference image encoder with the library's own random initialisation."""
    torch.manual_seed(0)
    if arch in CLIP:
        import open_clip
        import types

        model = open_clip.create_model(CLIP[arch], pretrained=None).eval()
        if hasattr(model.visual, "attnpool"):
            model.visual.attnpool.forward = types.MethodType(attnpool_forward, model.visual.attnpool)
        return model
    import timm
    import types

    model = timm.create_model(DINOV2[arch], pretrained=False, dynamic_img_size=True,
                              num_classes=0).eval()
    model._pos_embed = types.MethodType(dinov2_pos_embed, model)
    return model


def encoder(arch, model):
    return model.visual if arch in CLIP else model


def randomised(arch, model):
    """Random weights everywhere a constant initialisation could hide a bug: BatchNorm,
    LayerNorm, biases, layer scale, tokens (seeded)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in encoder(arch, model).modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        for name, p in encoder(arch, model).named_parameters():
            if name.endswith("bias") and p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("gamma"):
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=g))
            elif name in ("cls_token", "reg_token", "pos_embed"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


def released_dinov2(arch, model):
    """timm's state dict in the layout of DINOv2's released files."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(7)
    out = {}
    if "reg_token" in sd:
        d = sd["cls_token"].shape[-1]
        cls_pos = 0.5 * torch.randn(1, 1, d, generator=g)
        out["cls_token"] = sd.pop("cls_token") - cls_pos
        out["pos_embed"] = torch.cat([cls_pos, sd.pop("pos_embed")], dim=1)
        out["register_tokens"] = sd.pop("reg_token")
    else:
        out["cls_token"] = sd.pop("cls_token")
        out["pos_embed"] = sd.pop("pos_embed")
    out["mask_token"] = torch.zeros(1, out["cls_token"].shape[-1])
    out.update(sd)
    return out


def save(arch, model, out_dir):
    """The weights file as the published ones; returns its path."""
    if arch in CLIP:
        import open_clip

        open_clip.convert_weights_to_lp(model, dtype=torch.float16)
        image = torch.zeros(1, 3, 224, 224, dtype=torch.float16)
        text = torch.zeros(1, 77, dtype=torch.long)
        with torch.no_grad():
            traced = torch.jit.trace(model, (image, text), check_trace=False)
        path = os.path.join(out_dir, f"{arch}.pt")
        torch.jit.save(traced, path)
        model.float()  # the reference: float32 on the float16-rounded weights
        return path
    path = os.path.join(out_dir, f"{arch}_pretrain.pth")
    torch.save(released_dinov2(arch, model), path)
    return path


def output(arch, cut, o):
    o = (o[0] if isinstance(o, tuple) else o).detach().clone()
    if arch in DINOV2 and cut == "patch_embed":
        return o.flatten(1, 2)  # DINOv2's PatchEmbed gives tokens (timm's dynamic one NHWC)
    return o


def hooks(arch, net, cuts, outs):
    modules = dict(net.named_modules())
    handles = []
    for c in cuts:
        if c == "proj" and arch in CLIP:
            continue
        if c not in modules:
            sys.exit(f"{arch} has no module {c}")
        handles.append(modules[c].register_forward_hook(
            lambda _m, _i, o, c=c: outs.__setitem__(f"out.{c}", output(arch, c, o))))
    return handles


def parity(out_dir, specs):
    from backbone_reference import write_safetensors

    os.makedirs(out_dir, exist_ok=True)
    cases = {}
    for spec in specs:
        head, sep, cuts = spec.partition("=")
        arch, _, size = head.partition("@")
        if not sep or arch not in ARCHS or not size.isdigit():
            sys.exit(f"expected ARCH@SIZE=CUT,CUT,..., found {spec!r}")
        cases.setdefault(arch, []).append((int(size), cuts.split(",")))
    for arch, sizes in cases.items():
        model = randomised(arch, build(arch))
        path = save(arch, model, out_dir)
        net = encoder(arch, model)
        for size, cuts in sizes:
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
            outs = {}
            handles = hooks(arch, net, cuts, outs)
            with torch.no_grad():
                y = net(x)
            for h in handles:
                h.remove()
            if "proj" in cuts and arch in CLIP:
                outs["out.proj"] = y
            write_safetensors(os.path.join(out_dir, f"{arch}.{size}.io.safetensors"),
                              {"input": x, **outs})
            print(f"{arch} @{size}: {', '.join(cuts)} ({os.path.basename(path)})", flush=True)


def sizes_for(arch):
    # The CLIP ViTs take 224 px only; RN50 and DINOv2 resample their position embeddings.
    if arch in ("clip_vit_b_32", "clip_vit_b_16"):
        return [224]
    if arch == "clip_rn50":
        return [224, 64, 97]
    return [224, 518, 70]


def shapes(out_dir, archs):
    from catalog_shapes import Recorder

    os.makedirs(out_dir, exist_ok=True)
    import open_clip
    import timm

    for arch in archs:
        net = encoder(arch, build(arch))
        classes = {n: type(m).__name__ for n, m in net.named_modules() if n}
        rec = Recorder(net)
        if arch in ("clip_vit_b_32", "clip_vit_b_16"):
            # open_clip's ViT fails at another size only where it adds its position
            # embedding; psyrun refuses other sizes at every cut (Arch::fixed_input_size).
            def only_224(_m, inp):
                assert inp[0].shape[-1] == 224 and inp[0].shape[-2] == 224

            net.register_forward_pre_hook(only_224)
        ref = f"open_clip {open_clip.__version__} {CLIP[arch]}" if arch in CLIP else \
            f"timm {timm.__version__} {DINOV2[arch]}"
        lines = [
            f"# {arch}: torch {torch.__version__}, {ref} (scripts/clip_reference.py)",
            "# <size> <module path> <module class> <output shape without batch dim>",
        ]
        proj = arch in ("clip_vit_b_32", "clip_vit_b_16")

        def order_of(n):
            order = [c for c in rec.once() if keep(arch, c)]
            return order + ["proj"] if proj else order

        full_order = None
        with torch.no_grad():
            for n in sizes_for(arch):
                rec.reset()
                y = net(torch.zeros(1, 3, n, n))
                if proj:
                    rec.shapes["proj"] = tuple(y.shape[1:])
                    classes["proj"] = "matmul"
                if arch in DINOV2:
                    # timm's dynamic-size PatchEmbed returns NHWC patches; DINOv2's own
                    # returns their tokens, row by row (what psyrun's `patch_embed` gives).
                    h, w, c = rec.shapes["patch_embed"]
                    rec.shapes["patch_embed"] = (h * w, c)
                order = order_of(n)
                if full_order is None:
                    full_order = order
                assert order == full_order, (arch, n)
                for name in order:
                    shape = "x".join(str(d) for d in rec.shapes[name])
                    lines.append(f"{n} {name} {classes[name]} {shape}")
            mins = {}
            n = 0
            while len(mins) < len(full_order):
                n += 1
                assert n <= 300, arch
                rec.reset()
                try:
                    y = net(torch.zeros(1, 3, n, n))
                    if proj:
                        rec.shapes["proj"] = tuple(y.shape[1:])
                except (RuntimeError, AssertionError):
                    pass
                for name in full_order:
                    if name in rec.shapes and name not in mins:
                        mins[name] = n
        lines.append("# min <module path> <N>: smallest N for this and following cut points")
        prev = None
        for name in full_order:
            if mins[name] != prev:
                lines.append(f"min {name} {mins[name]}")
                prev = mins[name]
        with open(os.path.join(out_dir, f"{arch}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{arch}: {len(lines)} lines", flush=True)


def keys(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for arch in ARCHS:
        model = build(arch)
        if arch in CLIP:
            sd = {k[len("visual."):]: v for k, v in model.state_dict().items()
                  if k.startswith("visual.")}
        else:
            sd = released_dinov2(arch, model)
        ref = CLIP.get(arch) or DINOV2[arch]
        lines = [f"# {arch} ({ref}, released layout): state_dict key, dtype, shape"]
        for k, v in sd.items():
            shape = "x".join(str(d) for d in v.shape) or "-"
            lines.append(f"{k} {str(v.dtype).removeprefix('torch.')} {shape}")
        with open(os.path.join(out_dir, f"{arch}.keys"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{arch}: {len(sd)} keys", flush=True)


def main():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args = sys.argv[1:]
    fixtures = os.path.join(HERE, "..", "tests", "fixtures")
    if args[:1] == ["shapes"]:
        shapes(args[1] if len(args) > 1 else os.path.join(fixtures, "catalog"), args[2:] or ARCHS)
    elif args[:1] == ["keys"]:
        keys(args[1] if len(args) > 1 else os.path.join(fixtures, "backbone"))
    elif args[:1] == ["parity"] and len(args) >= 3:
        parity(args[1], args[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
