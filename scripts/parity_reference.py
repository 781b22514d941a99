#!/usr/bin/env python3
"""Reference features for psyrun's parity test with torchvision via torch.save checkpoints.

Run with the project's venv (torch 2.13, torchvision 0.28):

    python scripts/parity_reference.py OUT_DIR [ARCH=CUT,CUT,... ...]

For each ARCH (default: the cuts in DEFAULT_CUTS), writes to OUT_DIR:

    <arch>.pth             torch.save(model.state_dict()) of a torchvision model with
                           seeded random weights: torch.manual_seed(0) initialisation,
                           then every BatchNorm's affine parameters and running
                           statistics randomised (so that eval-mode BatchNorm really
                           uses them; see backbone_reference.randomised) and every
                           conv/linear bias randomised (torchvision initialises VGG's
                           to zero, which would hide a bias that is not loaded), and
                           LayerNorm's parameters and ConvNeXt's layer scale too;
                           A ViT's class token, position embedding and attention
                           input-projection biases are randomised too (torchvision
                           starts the first and last at zero), and its head;
                           GoogLeNet and Inception v3 with transform_input=True (as
                           torchvision builds them for their published weights; the
                           Rust test turns it on);
    <arch>.io.safetensors  `input`, a fixed 2x3x64x64 tensor (seed 1; 2x3x224x224 for
                           the ViTs, which take that size only, 2x3x100x100 for Swin,
                           2x3x128x128 for inception_v3, which needs 75 pixels),
                           and `out.<cut>`, the
                           output of module <cut> for that input in eval mode under
                           torch.no_grad() (read by a forward hook, cloned before any
                           in-place ReLU runs; a MultiheadAttention's first element).

The Rust test `parity_with_torchvision_from_torch_save_at_many_cuts`
(crates/psyrun-torch/src/backbone/parity_tests.rs) calls this script with its own list of cuts, into a
temporary directory. The files are large (vgg16.pth is 553 MB, about 950 MB for the
default set), so they are never committed.
"""
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from backbone_reference import randomised, write_safetensors  # noqa: E402

DEFAULT_CUTS = {
    "resnet18": ["bn1", "layer2.0.downsample.0", "layer3.1.conv2", "layer4", "fc"],
    "resnet50": ["layer1.0.conv3", "layer2.0.downsample.0", "layer3.1.conv2", "layer4.2.bn3", "fc"],
    "vgg16": ["features.4", "features.16", "features.29", "avgpool", "classifier.3"],
    "alexnet": ["features.2", "features.9", "avgpool", "classifier.3"],
}
INPUT_SHAPE = (2, 3, 64, 64)
# Architectures torchvision builds with transform_input=True for its published weights.
TRANSFORM_INPUT = {"googlenet", "inception_v3"}
# Input sizes other than INPUT_SHAPE's (Inception v3 needs at least 75 pixels).
INPUT_SIZE = {"inception_v3": 128}


def input_shape(arch):
    """ViTs assert their image size (224); Swin takes 100 px (25 patches a side: the
    window attention pads and shifts, patch merging pads odd sides twice); Inception v3
    128 px (INPUT_SIZE); the others take the small input."""
    if arch.startswith("vit_"):
        return (2, 3, 224, 224)
    if arch.startswith("swin_"):
        return (2, 3, 100, 100)
    if arch in INPUT_SIZE:
        n, c, _, _ = INPUT_SHAPE
        return (n, c, INPUT_SIZE[arch], INPUT_SIZE[arch])
    return INPUT_SHAPE


def parity_model(arch):
    model = randomised(arch)  # manual_seed(0) init, BatchNorm randomised, eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    # LayerNorm's affine parameters and ConvNeXt's layer scale (1e-6 at initialisation,
    # which would hide the residual branch) randomised too, from a generator of their own
    # (the other architectures' weights stay as they were).
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=g))
    # ViT: the class token (zeros at initialisation), the attention's packed input bias
    # (zeros), the position embedding and the head (zeros), from a generator of their own.
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "class_token" or name.endswith(("in_proj_bias", "pos_embedding")):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.startswith("heads."):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    if arch in TRANSFORM_INPUT:
        model.transform_input = True
    return model


def write_case(out_dir, arch, cuts):
    model = parity_model(arch)
    torch.save(model.state_dict(), os.path.join(out_dir, f"{arch}.pth"))
    x = torch.randn(*input_shape(arch), generator=torch.Generator().manual_seed(1))
    modules = dict(model.named_modules())
    missing = [c for c in cuts if c not in modules]
    if missing:
        sys.exit(f"{arch} has no module {', '.join(missing)}")
    outs = {}
    hooks = [
        modules[c].register_forward_hook(
            lambda _m, _i, o, c=c: outs.__setitem__(
                f"out.{c}", (o[0] if isinstance(o, tuple) else o).detach().clone()
            )
        )
        for c in cuts
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    write_safetensors(os.path.join(out_dir, f"{arch}.io.safetensors"), {"input": x, **outs})
    print(f"{arch}: {', '.join(cuts)}")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out_dir = args[0]
    cases = {}
    for spec in args[1:]:
        arch, sep, cuts = spec.partition("=")
        if not sep or not cuts:
            sys.exit(f"expected ARCH=CUT,CUT,..., found {spec!r}")
        cases[arch] = cuts.split(",")
    os.makedirs(out_dir, exist_ok=True)
    for arch, cuts in (cases or DEFAULT_CUTS).items():
        write_case(out_dir, arch, cuts)


if __name__ == "__main__":
    main()
