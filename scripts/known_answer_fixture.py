#!/usr/bin/env python3
"""The known-answer backbone of tests/known.rs (see docs/running.md, "A known-answer check").

Run with the project's venv (torch 2.13):

    python scripts/known_answer_fixture.py [OUT_DIR]

writes to OUT_DIR (default tests/fixtures/known/, committed, a few kB each):

  dog_energy.pt    a TorchScript module (torch.jit.script, no parameters, one buffer) that
                   maps images [N, 3, H, W] to one feature per image [N, 1]:
                     1. g = the mean of the three channels;
                     2. g − its mean over the image (so a uniform image gives exactly 0);
                     3. circular padding by R and a 2-D cross-correlation with the
                        (2R+1)×(2R+1) isotropic difference-of-Gaussians kernel k below,
                        i.e. a circular convolution (k is symmetric): a full-field grating
                        with a whole number of cycles per image has no edge effects;
                     4. squared and averaged over the image (the filter's output energy),
                        times GAIN = 1e6: a gain changes no threshold ratio, but the
                        probe (SGD, lr 0.1) learns from the training shapes in a few
                        epochs only when their features are this large (with 1e3 it
                        stays at chance).
  dog_energy.json  {"sigma1", "sigma2", "radius", "gain", "kernel"}: the parameters and the
                   kernel's float32 values exactly as the module holds them (row-major,
                   rows y, columns x), so that a test can compute the filter's frequency
                   response without Python.

The kernel is k = G(σ1) − G(σ2), each G(σ)[y, x] ∝ exp(−(x² + y²)/(2σ²)) on
x, y ∈ {−R, …, R} normalised to sum 1 separately (so Σk = 0, a DoG with no response to a
uniform image), then rounded to float32. Its discrete frequency response at u cycles per
pixel along x is H(u) = Σ_{x,y} k[y, x]·cos(2πux) (real: k is even), close to the continuous
H(ρ) = exp(−2π²σ1²ρ²) − exp(−2π²σ2²ρ²): within 5e-4 (the peak is 0.472 at 10/64 cycles per
pixel) up to u = 24/64; nearer Nyquist the narrow Gaussian's spectrum aliases (+0.002 at
28/64).

Nothing here is random: running it again writes the same two files, byte for byte (with
torch 2.13). The module's debug information holds this file's path relative to the
repository and the line numbers of DogEnergy.forward, so after editing this file run it
again and commit the new dog_energy.pt.
"""
import importlib.util
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGMA1 = 1.0
SIGMA2 = 2.0
RADIUS = 8  # 4·σ2
GAIN = 1e6


def dog_kernel():
    """k = G(σ1) − G(σ2) on (2R+1)², each Gaussian normalised to sum 1, as float32."""
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    xx, yy = np.meshgrid(x, x)

    def gaussian(s):
        g = np.exp(-(xx * xx + yy * yy) / (2.0 * s * s))
        return g / g.sum()

    return (gaussian(SIGMA1) - gaussian(SIGMA2)).astype(np.float32)


class DogEnergy(torch.nn.Module):
    def __init__(self, kernel: torch.Tensor, radius: int, gain: float):
        super().__init__()
        self.register_buffer("kernel", kernel.reshape(1, 1, kernel.shape[0], kernel.shape[1]))
        self.radius = radius
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(dim=1, keepdim=True)
        g = g - g.mean(dim=(2, 3), keepdim=True)
        r = self.radius
        g = F.pad(g, [r, r, r, r], mode="circular")
        y = F.conv2d(g, self.kernel)
        return (y * y).mean(dim=(2, 3)) * self.gain


def relative_class():
    """This file imported again as `scripts/known_answer_fixture.py`, relative to the root.

    torch.jit.script records the source file of the class it compiles in the saved module's
    debug information; imported this way that is the path in the repository, not where the
    clone happens to be, so the committed module does not depend on it.
    """
    os.chdir(ROOT)
    spec = importlib.util.spec_from_file_location("known_answer_fixture", "scripts/known_answer_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    args = sys.argv[1:]
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        sys.exit(__doc__)
    out = os.path.abspath(args[0]) if args else os.path.join(ROOT, "tests", "fixtures", "known")
    os.makedirs(out, exist_ok=True)
    k = dog_kernel()
    module = torch.jit.script(relative_class().DogEnergy(torch.from_numpy(k), RADIUS, GAIN).eval())
    module.save(os.path.join(out, "dog_energy.pt"))
    meta = {
        "sigma1": SIGMA1,
        "sigma2": SIGMA2,
        "radius": RADIUS,
        "gain": GAIN,
        # float32 values written as the shortest decimal that reads back as the same float32.
        "kernel": [[float(np.format_float_positional(v, unique=True)) for v in row] for row in k],
    }
    text = json.dumps(meta, indent=1)
    # One kernel row per line.
    text = re.sub(r"\[\s+([^\[\]]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    with open(os.path.join(out, "dog_energy.json"), "w") as f:
        f.write(text + "\n")
    # Self-check: a grating at f cycles per image gives gain·(c/2)²·H(f/size)²/2.
    size, c = 64, 0.3
    xs = np.arange(size) - size // 2
    for freq in (2, 10, 24):
        s = c * np.cos(2 * np.pi * freq * xs / size)
        img = torch.from_numpy(np.tile((s + 1) / 2, (size, 1)).astype(np.float32))
        got = module(img.expand(1, 3, size, size)).item()
        col = k.astype(np.float64).sum(axis=0)
        h = (col * np.cos(2 * np.pi * freq / size * np.arange(-RADIUS, RADIUS + 1))).sum()
        want = GAIN * (c / 2) ** 2 * h * h / 2
        assert abs(got / want - 1) < 1e-4, (freq, got, want)
    print(f"dog_energy.pt, dog_energy.json in {out}")


if __name__ == "__main__":
    main()
