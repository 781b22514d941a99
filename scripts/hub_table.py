#!/usr/bin/env python3
"""The table of torchvision's published weight files, for src/hub.rs.

For every architecture in psyrun's catalog this asks torchvision (0.28, the version
`./dev` installs) for each of its weight sets (`ResNet50_Weights.IMAGENET1K_V2`, ...)
and prints one Rust line per set:

    WeightFile::new(Arch::Resnet50, "IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),

ready to paste into `TABLE` in src/hub.rs. Only the file name is kept: every URL must be
`https://download.pytorch.org/models/<file>` (psyrun's default base URL, which
PSYRUN_WEIGHTS_URL replaces), and every file name must carry torch hub's hash prefix
(`-<hex>.`, the first hex digits of the file's SHA-256); the script stops otherwise.

Usage: ~/.cache/psyrun/torch-2.13.0/bin/python scripts/hub_table.py
"""
import re
import sys

import torchvision
import torchvision.models as models

BASE = "https://download.pytorch.org/models/"

# The catalog's architectures (src/models/catalog.rs), in its order.
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

# torch hub's own pattern (torch.hub.HASH_REGEX).
HASH = re.compile(r"-([a-f0-9]*)\.")


def variant(arch):
    """resnet50 -> Resnet50, vgg11_bn -> Vgg11Bn, resnext50_32x4d -> Resnext50x32x4d,
    wide_resnet50_2 -> WideResnet50x2 (a part that starts with a digit joins with "x")."""
    return "".join("x" + part if part[:1].isdigit() else part[:1].upper() + part[1:]
                   for part in arch.split("_"))


def main():
    print(f"    // scripts/hub_table.py, torchvision {torchvision.__version__}")
    for arch in ARCHS:
        for weights in models.get_model_weights(arch):
            # The catalog's ViTs are built for 224 px: a set for another image size
            # (IMAGENET1K_SWAG_E2E_V1, 384 or 512 px) has another position embedding.
            if arch.startswith("vit_") and weights.meta["min_size"] != (224, 224):
                continue
            url = weights.url
            if not url.startswith(BASE):
                sys.exit(f"{arch} {weights.name}: {url} is not under {BASE}")
            file = url[len(BASE):]
            m = HASH.search(file)
            if "/" in file or m is None or len(m.group(1)) < 8:
                sys.exit(f"{arch} {weights.name}: {file} carries no SHA-256 prefix")
            print(f'    WeightFile::new(Arch::{variant(arch)}, "{weights.name}", "{file}"),')


if __name__ == "__main__":
    main()
