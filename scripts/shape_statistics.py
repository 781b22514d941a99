#!/usr/bin/env python3
"""Summary statistics of the tutorial's random training shapes, for psyrun's statistical test.

Runs the tutorial's `create_random_shape` generator (OpenCV filled circle / ellipse /
rectangle on a grey 128 image; see bench/reference.py's `random_shape`) DRAWS times at SIZE
pixels with fixed seeds and writes summary statistics to tests/fixtures/stimuli/shape_stats.json
(committed, about 26 kB). As in the tutorial, the colour comes from Python's `random.randint`
and everything else from numpy's global `np.random.randint` (bench/reference.py draws the same
distributions from a numpy Generator). The Rust test `stimuli::shapes::stats_tests`
(src/stimuli/stats_tests.rs) draws as many shapes with
psyrun's own generator (src/stimuli/shapes.rs) and compares the two samples with
chi-square, Kolmogorov-Smirnov and z tests; Python is not needed at test time.

Regenerate from the repository root (needs numpy and opencv-python-headless, both in the
venv; about 10 s):

    ~/.cache/psyrun/torch-2.13.0/bin/python scripts/shape_statistics.py [OUT_JSON]

What is stored (shape pixels = pixels that differ from the grey background):
  kinds                 draws per kind (circle, ellipse, rectangle: the tutorial's 0, 1, 2);
  colour                per channel (the image's channel order), over all draws, the
                        mean and standard deviation of the shape's colour and counts in
                        16 bins of width 16 (0..15, 16..31, ...);
  per kind, for `area` (shape pixels), `bbox_cx` and `bbox_cy` (centre of the shape
  pixels' bounding box, (min + max) / 2, in pixels):
                        n, mean, sd, and the empirical CDF at up to 201 points: `at` the
                        distinct values among the sample's 0, 0.5, ..., 100 % quantiles
                        (lower), `cdf` the fraction of the sample <= each;
  per kind, `touches_border`: draws with a shape pixel in the first or last row or column.
"""
import json
import os
import random
import re
import sys

import cv2
import numpy as np

SIZE = 224
DRAWS = 10000
SEED = 20240
BACKGROUND = 128
KINDS = ["circle", "ellipse", "rectangle"]


def create_random_shape(size):
    """The tutorial's generator: one filled shape on grey, its kind index."""
    img = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    colour = (random.randint(0, 255), random.randint(0, 255), random.randint(0, 255))
    q = size // 4
    point1 = (int(np.random.randint(q, 3 * q)), int(np.random.randint(q, 3 * q)))
    kind = int(np.random.randint(0, 3))
    if kind == 0:
        radius = int(np.random.randint(10, q))
        cv2.circle(img, point1, radius, colour, -1)
    elif kind == 1:
        axes = (int(np.random.randint(10, 20)), int(np.random.randint(30, q)))
        angle = int(np.random.randint(0, 360))
        cv2.ellipse(img, point1, axes, angle, 0, 360, colour, -1)
    else:
        point2 = (int(np.random.randint(0, size)), int(np.random.randint(0, size)))
        cv2.rectangle(img, point1, point2, colour, -1)
    return img, kind, colour


def ecdf(values):
    v = np.sort(np.asarray(values, dtype=np.float64))
    at = np.unique(np.quantile(v, np.linspace(0, 1, 201), method="lower"))
    cdf = np.searchsorted(v, at, side="right") / len(v)
    return {"at": at.tolist(), "cdf": [round(float(c), 8) for c in cdf]}


def summary(values):
    v = np.asarray(values, dtype=np.float64)
    return {
        "n": int(len(v)),
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)),
        "ecdf": ecdf(v),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "stimuli",
        "shape_stats.json")
    random.seed(SEED)
    np.random.seed(SEED)
    per_kind = {k: {"area": [], "bbox_cx": [], "bbox_cy": [], "touches_border": 0} for k in KINDS}
    colours = []
    for _ in range(DRAWS):
        img, kind, colour = create_random_shape(SIZE)
        mask = (img != BACKGROUND).any(axis=2)
        s = per_kind[KINDS[kind]]
        area = int(mask.sum())
        if area == 0:  # colour (128, 128, 128): invisible
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        s["area"].append(area)
        s["bbox_cx"].append((cols[0] + cols[-1]) / 2)
        s["bbox_cy"].append((rows[0] + rows[-1]) / 2)
        s["touches_border"] += int(rows[0] == 0 or cols[0] == 0
                                   or rows[-1] == SIZE - 1 or cols[-1] == SIZE - 1)
        colours.append(img[mask][0])
    colours = np.asarray(colours, dtype=np.float64)
    stats = {
        "generator": "scripts/shape_statistics.py: the tutorial's create_random_shape "
                     "(numpy + random + OpenCV " + cv2.__version__ + ")",
        "size": SIZE,
        "draws": DRAWS,
        "seed": SEED,
        "kinds": {k: len(per_kind[k]["area"]) for k in KINDS},
        "colour": {
            "mean": colours.mean(axis=0).tolist(),
            "sd": colours.std(axis=0, ddof=1).tolist(),
            "hist16": [np.bincount(colours[:, c].astype(int) // 16, minlength=16).tolist()
                       for c in range(3)],
        },
        "per_kind": {
            k: {
                "area": summary(v["area"]),
                "bbox_cx": summary(v["bbox_cx"]),
                "bbox_cy": summary(v["bbox_cy"]),
                "touches_border": v["touches_border"],
            }
            for k, v in per_kind.items()
        },
    }
    text = json.dumps(stats, indent=1)
    # Lists of numbers on one line each.
    text = re.sub(r"\[[-0-9.,\s]*\]", lambda m: " ".join(m.group(0).split()), text)
    with open(out, "w") as f:
        f.write(text + "\n")
    print(f"{out}: {os.path.getsize(out)} bytes; kinds {stats['kinds']}")
    for k in KINDS:
        a = stats["per_kind"][k]["area"]
        print(f"  {k}: area mean {a['mean']:.1f} sd {a['sd']:.1f}, "
              f"touching the border {stats['per_kind'][k]['touches_border']}")


if __name__ == "__main__":
    main()
