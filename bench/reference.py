"""psyrun's own timing baseline: the tutorial's contrast-CSF pipeline in plain PyTorch.

It follows the tutorial's recipe step for step (random shape pairs drawn with OpenCV, a linear
probe on the concatenated, flattened features of a torchvision backbone cut after its first
CUT top-level children, SGD, `model.train()` while training so BatchNorm statistics drift,
gratings against uniform grey with the target always second, the bisection staircase), with
random weights because pretrained ones cannot be downloaded everywhere. It prints the seconds
of each phase as one JSON line, which bench/run reads.

Usage: python bench/reference.py [--size 224] [--train 64] [--epochs 1] [--batch 32]
                                 [--sfs 4,16,56] [--max-steps 20] [--arch resnet50] [--cut 6]
"""
import argparse
import json
import time

import cv2
import numpy as np
import torch
import torchvision


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--train", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--sfs", default="4,16,56")
    p.add_argument("--max-steps", type=int, default=20)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--cut", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]; stimuli are made on the CPU, as in the tutorial")
    return p.parse_args()


MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_tensor(img):
    """HWC float image in [0, 1] -> normalised CHW float32 tensor."""
    return torch.from_numpy(((img - MEAN) / STD).transpose(2, 0, 1).astype(np.float32))


def random_shape(rng, n):
    img = np.full((n, n, 3), 128, dtype=np.uint8)
    colour = [int(v) for v in rng.integers(0, 256, 3)]
    centre = tuple(int(v) for v in rng.integers(n // 4, 3 * (n // 4), 2))
    kind = rng.integers(0, 3)
    if kind == 0:
        cv2.circle(img, centre, int(rng.integers(10, n // 4)), colour, -1)
    elif kind == 1:
        axes = (int(rng.integers(10, 20)), int(rng.integers(30, n // 4)))
        cv2.ellipse(img, centre, axes, int(rng.integers(0, 360)), 0, 360, colour, -1)
    else:
        corner = tuple(int(v) for v in rng.integers(0, n, 2))
        cv2.rectangle(img, centre, corner, colour, -1)
    return img.astype(np.float32) / 255


def training_batch(rng, n, count):
    first, second, labels = [], [], []
    for _ in range(count):
        img = random_shape(rng, n)
        c = rng.uniform(0.04, 1.0, 2)
        first.append(to_tensor((1 - c[0]) / 2 + img * c[0]))
        second.append(to_tensor((1 - c[1]) / 2 + img * c[1]))
        labels.append(int(np.argmax(c)))
    return torch.stack(first), torch.stack(second), torch.tensor(labels)


def grating_pair(n, sf, theta, contrast):
    r = n // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    lam = (n * 0.5) / (np.pi * sf)
    wave = np.cos((np.cos(theta) * x + np.sin(theta) * y) / lam)
    window = np.exp(-(x**2 + y**2) / (2 * (n / 6) ** 2))
    if n % 2 == 0:
        wave, window = wave[:-1, :-1], window[:-1, :-1]
    window = window / window.max()
    grey = np.repeat(((0.0 * wave * window + 1) / 2)[:, :, None], 3, 2).astype(np.float32)
    target = np.repeat(((contrast * wave * window + 1) / 2)[:, :, None], 3, 2).astype(np.float32)
    return to_tensor(grey), to_tensor(target)


def main():
    a = parse()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = getattr(torchvision.models, a.arch)(weights=None)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    backbone = torch.nn.Sequential(*list(net.children())[: a.cut]).to(dev)
    for p in backbone.parameters():
        p.requires_grad = False
    with torch.no_grad():
        features = backbone.eval()(torch.zeros(1, 3, a.size, a.size, device=dev)).numel()
    fc = torch.nn.Linear(2 * features, 2).to(dev)
    opt = torch.optim.SGD(fc.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def probe(x1, x2):
        f1 = torch.flatten(backbone(x1.to(dev)), 1)
        f2 = torch.flatten(backbone(x2.to(dev)), 1)
        return fc(torch.cat([f1, f2], 1))

    t0 = time.perf_counter()
    backbone.train()  # the tutorial's model.train(): BatchNorm statistics drift
    for _ in range(a.epochs):
        done = 0
        while done < a.train:
            count = min(a.batch, a.train - done)
            x1, x2, y = training_batch(rng, a.size, count)
            loss = loss_fn(probe(x1, x2), y.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += count
    sync()
    t_train = time.perf_counter() - t0

    backbone.eval()
    thetas = np.arange(0, np.pi + 1e-3, np.pi / 12)
    t0 = time.perf_counter()
    thresholds = []
    images = 0
    for sf in [float(s) for s in a.sfs.split(",")]:
        low, mid, high = 0.0, 0.5, 1.0
        for step in range(a.max_steps + 1):
            pairs = [grating_pair(a.size, sf, th, mid) for th in thetas]
            x1 = torch.stack([p[0] for p in pairs])
            x2 = torch.stack([p[1] for p in pairs])
            with torch.no_grad():
                accuracy = (probe(x1, x2).argmax(1) == 1).float().mean().item()
            images += 2 * len(thetas)
            diff = accuracy - 0.749
            if abs(diff) < 1e-4 or step == a.max_steps:
                break
            if diff > 0:
                low, mid, high = low, (low + mid) / 2, mid
            else:
                low, mid, high = mid, (mid + high) / 2, high
        thresholds.append(mid)
    sync()
    t_test = time.perf_counter() - t0
    print(json.dumps({
        "train_s": t_train,
        "test_s": t_test,
        "train_images": 2 * a.train * a.epochs,
        "test_images": images,
        "thresholds": thresholds,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
