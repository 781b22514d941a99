#!/usr/bin/env python3
"""Writes experiments/images/: eight small procedural grey PNGs (64x64) for the
natural-image training of experiments/csf_natural_images.psy. Standard library only
(zlib, struct), deterministic: rerunning it rewrites the same bytes.

    python3 scripts/make_images.py
"""
import math
import os
import random
import struct
import zlib

SIZE = 64
OUT = os.path.join(os.path.dirname(__file__), "..", "experiments", "images")


def png(path, rows):
    """An 8-bit greyscale PNG of `rows` (lists of 0-255 ints)."""
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def clamp(x):
    return max(0, min(255, int(round(x))))


def blobs(rng, n):
    """Soft discs of random grey on a random grey: a scene of objects."""
    pts = [(rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(4, 16), rng.uniform(-90, 90)) for _ in range(n)]
    base = rng.uniform(90, 160)
    rows = []
    for y in range(SIZE):
        row = []
        for x in range(SIZE):
            v = base
            for cx, cy, r, a in pts:
                d = math.hypot(x - cx, y - cy)
                v += a / (1 + math.exp((d - r) / 1.5))
            row.append(clamp(v))
        rows.append(row)
    return rows


def pink(rng):
    """A sum of random gratings with amplitude 1/f: a 1/f texture like natural scenes."""
    comps = []
    for _ in range(40):
        f = rng.uniform(1, 20)
        t = rng.uniform(0, math.pi)
        comps.append((f * math.cos(t), f * math.sin(t), rng.uniform(0, 2 * math.pi), 60 / f))
    rows = []
    for y in range(SIZE):
        row = []
        for x in range(SIZE):
            v = 128 + sum(a * math.sin(2 * math.pi * (u * x + w * y) / SIZE + p) for u, w, p, a in comps) / 3
            row.append(clamp(v))
        rows.append(row)
    return rows


def edges(rng):
    """Random straight edges between grey regions: occlusion boundaries."""
    lines = [(rng.uniform(0, 2 * math.pi), rng.uniform(-20, 20), rng.uniform(-50, 50)) for _ in range(5)]
    rows = []
    for y in range(SIZE):
        row = []
        for x in range(SIZE):
            v = 128.0
            for t, off, a in lines:
                s = (x - SIZE / 2) * math.cos(t) + (y - SIZE / 2) * math.sin(t) - off
                v += a if s > 0 else -a
            row.append(clamp(v))
        rows.append(row)
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(12)
    makers = [
        lambda: blobs(rng, 6),
        lambda: blobs(rng, 12),
        lambda: pink(rng),
        lambda: pink(rng),
        lambda: edges(rng),
        lambda: edges(rng),
        lambda: blobs(rng, 20),
        lambda: pink(rng),
    ]
    for i, make in enumerate(makers):
        png(os.path.join(OUT, f"scene_{i + 1}.png"), make())


if __name__ == "__main__":
    main()
