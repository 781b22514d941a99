#!/usr/bin/env python3
"""Golden shapes for src/models/catalog.rs, recorded from torchvision.

For every architecture in the catalog this builds the torchvision model
(weights=None, eval mode, no grad), hooks every named module and writes
tests/fixtures/catalog/<arch>.txt with:

    <size> <module path> <module class> <shape, e.g. 512x28x28>

one line per module that runs exactly once per forward pass (a module
returning a tuple, nn.MultiheadAttention, is recorded by its first element;
a transformer's tokens are SxD, batch first), in forward
(entry / pre-order) order, for a few input sizes N (input 3xN xN, batch 1;
the batch dimension is dropped).  Modules called several times in one
forward (the shared `relu` inside BasicBlock/Bottleneck) are skipped,
because cutting "after" them is ambiguous.

It also records the smallest input size for which each cut point runs,
found by trying N = 1, 2, ... until the whole network runs.  These lines
are run-length encoded in forward order:

    min <module path> <N>

means the cut points from this path up to (not including) the next `min`
line all need N >= <N>.

Usage: python scripts/catalog_shapes.py [out_dir [arch ...]]  (default: every arch)
"""
import os
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


def sizes_for(arch):
    if arch.startswith("vit"):
        return [224]  # torchvision's ViT asserts its image size
    if arch == "efficientnet_v2_s":
        return [384, 224, 64, 33]
    if arch.startswith("resnet"):
        return [224, 64, 33, 97]
    if arch == "alexnet":
        return [224, 64, 63, 97]
    if arch.startswith(("mobilenet", "efficientnet", "convnext", "squeezenet", "shufflenet", "regnet",
                          "densenet", "googlenet", "swin")):
        return [224, 64, 33]
    if arch == "inception_v3":
        return [299, 224, 96, 75]
    return [224, 64]


class Recorder:
    """Forward hooks recording entry order, call counts and output shapes."""

    def __init__(self, model):
        self.names = {}
        self.handles = []
        for name, mod in model.named_modules():
            if name == "":
                continue
            self.names[id(mod)] = name
            self.handles.append(mod.register_forward_pre_hook(self._pre))
            self.handles.append(mod.register_forward_hook(self._post))
        self.reset()

    def reset(self):
        self.order = []      # names in entry order (first entry only)
        self.calls = {}      # name -> number of calls
        self.shapes = {}     # name -> output shape (without batch dim)

    def _pre(self, mod, inp):
        name = self.names[id(mod)]
        if name not in self.calls:
            self.order.append(name)
            self.calls[name] = 0
        self.calls[name] += 1

    def _post(self, mod, inp, out):
        # nn.MultiheadAttention returns (output, weights): the cut is the output.
        if isinstance(out, tuple):
            out = out[0]
        self.shapes[self.names[id(mod)]] = tuple(out.shape[1:])

    def once(self):
        return [n for n in self.order if self.calls[n] == 1 and n in self.shapes]


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "catalog")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    for arch in sys.argv[2:] or ARCHS:
        model = getattr(torchvision.models, arch)(weights=None).eval()
        classes = {n: type(m).__name__ for n, m in model.named_modules() if n}
        rec = Recorder(model)
        lines = [
            f"# {arch}: torch {torch.__version__}, torchvision {torchvision.__version__}",
            "# <size> <module path> <module class> <output shape without batch dim>",
        ]
        full_order = None
        with torch.no_grad():
            for n in sizes_for(arch):
                rec.reset()
                model(torch.zeros(1, 3, n, n))
                order = rec.once()
                if full_order is None:
                    full_order = order
                assert order == full_order, (arch, n)
                for name in order:
                    shape = "x".join(str(d) for d in rec.shapes[name])
                    lines.append(f"{n} {name} {classes[name]} {shape}")
            # smallest N for which each cut point produces an output
            mins = {}
            n = 0
            while len(mins) < len(full_order):
                n += 1
                assert n <= 300, arch
                rec.reset()
                try:
                    model(torch.zeros(1, 3, n, n))
                except (RuntimeError, AssertionError):  # ViT asserts its image size
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
        path = os.path.join(out_dir, f"{arch}.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{arch}: {len(lines)} lines, full net from N={max(mins.values())}", flush=True)


if __name__ == "__main__":
    main()
