#!/usr/bin/env python3
"""Reference values for psyrun's grating stimuli (src/stimuli/grating.rs).

Computes test gratings exactly as the tutorial does (numpy, float64) and writes a small
sample of each to tests/fixtures/stimuli/gratings.json, which the Rust test
`stimuli::grating::tests::parity_with_tutorial` compares against.

Run from the repository root:
    ~/.cache/psyrun/torch-2.13.0/bin/python scripts/stimuli_reference.py

Per case the fixture stores every `stride`-th value of the row-major (y, x) image
(indices 0, stride, 2*stride, ...), plus the sum and the sum of squares of all values.
"""
import json
import os

import numpy as np


def sinusoid_grating(img_size, amp, omega, rho, lambda_wave):
    # The tutorial's function, verbatim.
    radius = (int(img_size / 2.0), int(img_size / 2.0))
    [x, y] = np.meshgrid(range(-radius[0], radius[0] + 1), range(-radius[1], radius[1] + 1))
    return amp * np.cos((omega[0] * x + omega[1] * y) / lambda_wave + rho)


def tutorial_test_image(size, contrast, sf, theta, rho, sigma):
    """The tutorial's test image (single channel), with the envelope's sigma a parameter
    (the tutorial's is size / 6; None = no envelope)."""
    omega = [np.cos(theta), np.sin(theta)]
    lambda_wave = (size * 0.5) / (np.pi * sf)
    img = sinusoid_grating(size, contrast, omega, rho, lambda_wave)
    if size % 2 == 0:
        img = img[:-1, :-1]
    if sigma is not None:
        radius = int(size / 2.0)
        [x, y] = np.meshgrid(range(-radius, radius + 1), range(-radius, radius + 1))
        gauss = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
        if size % 2 == 0:
            gauss = gauss[:-1, :-1]
        gauss /= gauss.max()
        img = img * gauss
    img = (img + 1) / 2
    return img


def main():
    # The tutorial's orientations: np.arange(0, pi + 1e-3, pi / 12); psyrun's are degrees.
    thetas = np.arange(0, np.pi + 1e-3, np.pi / 12)
    orientations = [(0, 0.0), (5, 75.0), (12, 180.0)]  # (index into thetas, degrees)
    phases = [0.0, 37.0]
    contrasts = [1.0, 0.003]
    cases = []
    for size in (224, 63, 32):
        stride = 211 if size > 100 else 97
        freqs = [f for f in (1.0, 7.0, 112.0) if f <= size / 2]
        if size / 2 not in freqs:
            freqs.append(size / 2)  # the Nyquist limit
        k = 0
        for sf in freqs:
            for (ti, deg) in orientations:
                for envelope in ("gaussian", "none"):
                    # A covering design: every (phase, contrast) pair occurs with every
                    # frequency and both envelopes, without the full factorial.
                    phase = phases[k % 2]
                    contrast = contrasts[(k // 2) % 2]
                    k += 1
                    sigma = size / 6 if envelope == "gaussian" else None
                    if size == 63 and sf == 7.0 and deg == 75.0 and envelope == "gaussian":
                        sigma = 20.0  # one custom sigma
                    img = tutorial_test_image(size, contrast, sf, thetas[ti], phase * np.pi / 180, sigma)
                    assert img.shape == (size, size)
                    flat = img.ravel()
                    cases.append({
                        "size": size,
                        "frequency": sf,
                        "orientation_deg": deg,
                        "theta_rad": float(thetas[ti]),
                        "phase_deg": phase,
                        "contrast": contrast,
                        "sigma": sigma,
                        "stride": stride,
                        "samples": [float(v) for v in flat[::stride]],
                        "sum": float(flat.sum()),
                        "sum_sq": float((flat * flat).sum()),
                    })
    # The comparison image at reference contrast 0: uniform grey.
    grey = tutorial_test_image(224, 0.0, 7.0, 0.0, 0.0, 224 / 6)
    assert (grey == 0.5).all()

    out = os.path.join("tests", "fixtures", "stimuli", "gratings.json")
    with open(out, "w") as f:
        f.write('{"generator": "scripts/stimuli_reference.py", "numpy": "%s", "cases": [\n' % np.__version__)
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases to {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
