#!/usr/bin/env python3
"""Export any PyTorch image model, cut after a named module, as TorchScript for psyrun.

Writes OUT (the module: image batch [N, 3, H, W] -> the named module's output) and OUT.json,
the sidecar psyrun reads beside it: the model and layer it came from, the input size it takes,
its normalisation, and, when the layer outputs a token sequence, where the batch and token
axes are, how many tokens come before the patch tokens and the patch grid (so that
`backbone torchscript "OUT" { tokens cls | mean | map }` reads the right axis; see
docs/language.md, "TorchScript backbones").

    python scripts/export_torchscript.py torchvision.models:vit_b_16 \\
        --layer encoder.layers.encoder_layer_5 --size 224 --out vit_b16_l5.pt
    python scripts/export_torchscript.py torchvision.models:VisionTransformer \\
        --kwargs '{"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2,
                   "hidden_dim": 16, "mlp_dim": 32}' --layer encoder --size 32 --out tiny.pt
    python scripts/export_torchscript.py my_lab.nets:cornet_s --weights cornet.pth \\
        --layer V4 --out cornet_v4.pt

MODEL is `module:callable` (called with --kwargs), or `file.py:callable`. --weights loads a
state dict into it (`torch.load(..., weights_only=True)`); --tv-weights NAME passes
`weights=NAME` to a torchvision builder instead and takes the normalisation from its
transforms. The module runs the model up to the layer (a forward hook stops it there, so
any model works, traced or not) in eval mode, and is traced with torch.jit.trace.

Token layout: for a 3-D output, the script runs two batch sizes and finds the axis that
follows the batch (`nld` batch first, `lnd` sequence first, as OpenAI's and OpenCLIP's
transformers keep it); the prefix is --prefix, else the model's `class_token`/`cls_token`
count plus its `register_tokens` (timm/DINOv2 `reg_token`), and the grid the square root of
the patch count (--grid R C to say otherwise). A 4-D output is a feature map: no tokens.
"""

import argparse
import importlib
import importlib.util
import json
import math
import sys

import torch


class Stop(Exception):
    """Raised by the hook to end the forward pass at the layer."""

    def __init__(self, output):
        super().__init__()
        self.output = output


class Cut(torch.nn.Module):
    """The model up to (and including) `layer`: its output is the layer's."""

    def __init__(self, model, layer):
        super().__init__()
        self.model = model
        self.layer = layer
        self.target = dict(model.named_modules())[layer]

    def forward(self, x):
        out = {}

        def hook(_m, _i, o):
            out["y"] = o
            raise Stop(o)

        h = self.target.register_forward_hook(hook)
        try:
            self.model(x)
        except Stop:
            pass
        finally:
            h.remove()
        y = out["y"]
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y


def load_callable(spec):
    where, _, name = spec.partition(":")
    if not name:
        sys.exit(f"MODEL must be module:callable or file.py:callable, not {spec!r}")
    if where.endswith(".py"):
        s = importlib.util.spec_from_file_location("psyrun_export_model", where)
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    return getattr(mod, name)


def prefix_tokens(model):
    n = 0
    for name in ("class_token", "cls_token"):
        if getattr(model, name, None) is not None:
            n += 1
            break
    for name in ("register_tokens", "reg_token"):
        t = getattr(model, name, None)
        if isinstance(t, torch.Tensor) and t.dim() >= 2:
            n += t.shape[-2]
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="module:callable or file.py:callable")
    p.add_argument("--kwargs", default="{}", help="JSON keyword arguments of the callable")
    p.add_argument("--weights", help="a state dict file to load")
    p.add_argument("--tv-weights", help="a torchvision weight name, passed as weights=NAME")
    p.add_argument("--layer", required=True, help="the module to cut after (named_modules name)")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (default 224)")
    p.add_argument("--fixed-size", action="store_true",
                   help="record that the module takes only --size (e.g. a ViT's position embedding)")
    p.add_argument("--prefix", type=int, help="tokens before the patch tokens")
    p.add_argument("--grid", type=int, nargs=2, metavar=("ROWS", "COLS"), help="the patch grid")
    p.add_argument("--out", required=True, help="the TorchScript file to write")
    a = p.parse_args()

    kwargs = json.loads(a.kwargs)
    normalize = None
    if a.tv_weights:
        kwargs["weights"] = a.tv_weights
    model = load_callable(a.model)(**kwargs)
    if a.weights:
        model.load_state_dict(torch.load(a.weights, map_location="cpu", weights_only=True))
    if a.tv_weights:
        import torchvision

        w = torchvision.models.get_weight(a.tv_weights) if "." in a.tv_weights else None
        t = w.transforms() if w is not None else None
        if t is not None and hasattr(t, "mean"):
            normalize = {"mean": list(t.mean), "std": list(t.std)}
    model.eval()
    names = dict(model.named_modules())
    if a.layer not in names:
        close = [n for n in names if a.layer in n][:10]
        sys.exit(f"no module {a.layer!r} in the model; e.g. {close or list(names)[1:11]}")
    cut = Cut(model, a.layer).eval()

    with torch.no_grad():
        y2 = cut(torch.rand(2, 3, a.size, a.size))
        y3 = cut(torch.rand(3, 3, a.size, a.size))
    tokens = None
    if y2.dim() == 3:
        if y2.shape[0] == 2 and y3.shape[0] == 3:
            layout, length = "nld", y2.shape[1]
        elif y2.shape[1] == 2 and y3.shape[1] == 3:
            layout, length = "lnd", y2.shape[0]
        else:
            sys.exit(f"a 3-D output {tuple(y2.shape)} whose batch axis cannot be found")
        prefix = a.prefix if a.prefix is not None else prefix_tokens(model)
        patches = length - prefix
        if a.grid:
            grid = list(a.grid)
        else:
            side = math.isqrt(patches)
            grid = [side, side] if side * side == patches else None
        tokens = {"layout": layout, "prefix": prefix, "grid": grid}
    elif y2.shape[0] != 2:
        sys.exit(f"the layer's output {tuple(y2.shape)} has no batch axis first")

    example = torch.rand(2, 3, a.size, a.size)
    with torch.no_grad():
        traced = torch.jit.trace(cut, example, check_trace=False)
    traced.save(a.out)
    # The traced module must compute what the model computes.
    x = torch.rand(2, 3, a.size, a.size)
    with torch.no_grad():
        err = (torch.jit.load(a.out)(x) - cut(x)).abs().max().item()
    if err > 1e-4:
        sys.exit(f"the traced module differs from the model by {err}; try another layer")
    sidecar = {
        "psyrun_sidecar": 1,
        "source": a.model + (f" {a.kwargs}" if a.kwargs != "{}" else ""),
        "layer": a.layer,
        "input_size": a.size if (a.fixed_size or tokens is not None) else None,
        "normalize": normalize,
        "tokens": tokens,
    }
    with open(a.out + ".json", "w") as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")
    print(f"wrote {a.out} (output {tuple(y2.shape[1:]) if tokens is None or tokens['layout'] == 'nld' else tuple(y2.shape)}) and {a.out}.json")


if __name__ == "__main__":
    main()
