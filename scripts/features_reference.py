#!/usr/bin/env python3
"""Reference features for `psyrun features`, computed by torchvision.

Run with the project's venv (torch 2.13, torchvision 0.28, Pillow, numpy):

    python scripts/features_reference.py checkpoint ARCH OUT.pth
        torch.save(model.state_dict(), OUT.pth) of a torchvision model with seeded
        random weights whose BatchNorm affine parameters and running statistics are
        randomised too (backbone_reference.randomised), so that eval-mode BatchNorm
        is really tested.

    python scripts/features_reference.py extract --arch ARCH --weights FILE.pth
            [--normalize imagenet|none] --job CUT POOLING OUT.npy [--job ...] PNG...
        For each job, writes OUT.npy: float32 [N, ...], the output of module CUT
        (read by a forward hook, cloned before any in-place ReLU runs) for the PNG
        images in eval mode under torch.no_grad(), pooled as `psyrun features
        --pooling POOLING` pools it (`none`, `avg:HxW`, `max:HxW`: adaptive
        pooling, not flattened). Images are read as torchvision users read them:
        Image.open(p).convert("RGB"), to float in [0, 1] (ToTensor), then
        Normalize(ImageNet mean, std) unless --normalize none. No resizing.

The Rust test tests/features.rs calls both into a temporary directory.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from backbone_reference import randomised  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def load_images(paths, normalize):
    batch = []
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)
        if normalize == "imagenet":
            x = torchvision.transforms.functional.normalize(x, MEAN, STD)
        batch.append(x)
    return torch.stack(batch)


def pool(y, pooling):
    if pooling == "none":
        return y
    kind, dims = pooling.split(":")
    h, _, w = dims.partition("x")
    size = (int(h), int(w or h))
    if kind == "avg":
        return F.adaptive_avg_pool2d(y, size)
    if kind == "max":
        return F.adaptive_max_pool2d(y, size)
    raise SystemExit(f"unknown pooling {pooling}")


def extract(args):
    model = torchvision.models.get_model(args.arch, weights=None)
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    model.eval()
    modules = dict(model.named_modules())
    x = load_images(args.images, args.normalize)
    outs = {}
    hooks = [
        modules[cut].register_forward_hook(
            lambda _m, _i, o, cut=cut: outs.__setitem__(cut, o.detach().clone())
        )
        for cut, _, _ in args.job
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for cut, pooling, out in args.job:
        y = pool(outs[cut], pooling).contiguous().numpy().astype(np.float32)
        np.save(out, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("checkpoint")
    c.add_argument("arch")
    c.add_argument("out")
    e = sub.add_parser("extract")
    e.add_argument("--arch", required=True)
    e.add_argument("--weights", required=True)
    e.add_argument("--normalize", choices=["imagenet", "none"], default="imagenet")
    e.add_argument("--job", nargs=3, action="append", required=True,
                   metavar=("CUT", "POOLING", "OUT"))
    e.add_argument("images", nargs="+")
    args = parser.parse_args()
    if args.command == "checkpoint":
        torch.save(randomised(args.arch).state_dict(), args.out)
    else:
        extract(args)


if __name__ == "__main__":
    main()
