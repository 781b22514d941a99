#!/usr/bin/env python3
"""Reference data for crates/psyrun-torch/src/backbone.rs and weights.rs, from torchvision.

Two jobs:

    python scripts/backbone_reference.py keys [out_dir [arch ...]]
        For every catalog architecture, writes <out_dir>/<arch>.keys (default
        tests/fixtures/backbone/): torchvision's state_dict() keys in order, one
        per line as `<key> <dtype> <shape>`, the shape as e.g. `64x3x7x7`
        (`-` for a 0-d tensor such as `num_batches_tracked`).  Models are built
        on the meta device, so nothing is allocated (RegNet on the CPU: its
        constructor computes its widths with tensors).

    python scripts/backbone_reference.py parity OUT_DIR
        For resnet18, vgg11_bn and alexnet, writes to OUT_DIR:
          <arch>.safetensors     the state_dict of a torchvision model with
                                 torch.manual_seed(0) random weights; the
                                 BatchNorm affine parameters and running
                                 statistics are also randomised (seeded) so
                                 that BatchNorm in eval mode is really tested;
          <arch>.io.safetensors  `input` (a fixed 2x3x64x64 tensor, seed 1) and
                                 `out.<cut>` = the output of module <cut> in
                                 eval mode, no grad.
        For resnet18 it also records train-mode BatchNorm behaviour: the
        model in train() mode runs conv1, bn1, relu, maxpool, layer1 on the
        same input (`train.layer1`) and the updated `bn1` and `layer1.0.bn1`
        running statistics and counters (`train.state.<key>`).
        These files are large (resnet18 is 47 MB), so the Rust tests generate
        them at test time into a temporary directory.

The .safetensors files are written by hand (8-byte little-endian header
length, JSON header, raw little-endian data), so the `safetensors` package is
not needed.
"""
import json
import os
import struct
import sys

import torch
import torchvision

ARCHS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "vgg11", "vgg13", "vgg16", "vgg19",
    "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "alexnet",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "convnext_tiny", "convnext_small", "convnext_base",
    "squeezenet1_0", "squeezenet1_1",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "regnet_y_400mf", "regnet_x_400mf",
    "densenet121", "densenet169", "googlenet", "inception_v3", "efficientnet_v2_s",
    "vit_b_16", "vit_b_32", "vit_l_16",
    "swin_t", "swin_s",
]

PARITY_CUTS = {
    "resnet18": ["layer1", "layer3.1.conv2", "layer4", "layer4.0.downsample.0", "fc"],
    "vgg11_bn": ["features.10", "classifier.3"],
    "alexnet": ["features.5", "avgpool"],
}

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
}


def write_safetensors(path, tensors):
    """Writes {name: tensor} in the safetensors format."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        # Raw bytes in little-endian order (every supported platform is little-endian).
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def shape_str(shape):
    return "x".join(str(d) for d in shape) if len(shape) else "-"


def dump_keys(out_dir, archs):
    os.makedirs(out_dir, exist_ok=True)
    for arch in archs or ARCHS:
        # RegNet computes its widths with tensors, which the meta device cannot read back.
        device = "cpu" if arch.startswith("regnet") else "meta"
        with torch.device(device):
            model = torchvision.models.get_model(arch, weights=None)
        lines = [f"# torchvision {torchvision.__version__} {arch}: state_dict key, dtype, shape"]
        for key, t in model.state_dict().items():
            lines.append(f"{key} {str(t.dtype).removeprefix('torch.')} {shape_str(t.shape)}")
        with open(os.path.join(out_dir, f"{arch}.keys"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{arch}: {len(lines) - 1} keys")


def randomised(arch):
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch, weights=None)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(7)
    return model.eval()


def parity(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for arch, cuts in PARITY_CUTS.items():
        model = randomised(arch)
        write_safetensors(os.path.join(out_dir, f"{arch}.safetensors"), model.state_dict())
        modules = dict(model.named_modules())
        outs = {}
        hooks = [
            modules[c].register_forward_hook(
                lambda _m, _i, o, c=c: outs.__setitem__(f"out.{c}", o.detach().clone())
            )
            for c in cuts
        ]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        io = {"input": x, **outs}
        if arch == "resnet18":
            m = model.train()
            with torch.no_grad():
                y = m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))
            io["train.layer1"] = y
            for key, t in m.state_dict().items():
                if key.startswith("bn1.") or key.startswith("layer1.0.bn1."):
                    io[f"train.state.{key}"] = t.clone()
        write_safetensors(os.path.join(out_dir, f"{arch}.io.safetensors"), io)
        print(f"{arch}: {', '.join(cuts)}")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("keys", "parity"):
        sys.exit(__doc__)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if sys.argv[1] == "keys":
        here = os.path.dirname(os.path.abspath(__file__))
        default = os.path.join(here, "..", "tests", "fixtures", "backbone")
        dump_keys(sys.argv[2] if len(sys.argv) > 2 else default, sys.argv[3:])
    else:
        if len(sys.argv) != 3:
            sys.exit("usage: backbone_reference.py parity OUT_DIR")
        parity(sys.argv[2])


if __name__ == "__main__":
    main()
