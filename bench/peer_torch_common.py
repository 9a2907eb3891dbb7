"""What the PyTorch peers of bench/ share: the IDX reader, the lenet /
cnn-small architectures of core/arch.c's presets as nn.Sequential (resnet20,
preact-resnet18 and vgg11-bn from bench/peer_torch_resnet.py), and the
timed inference loop. Use Debian's /usr/bin/python3 (python3-torch 1.13)."""
import gzip, struct, time

import numpy as np
import torch
import torch.nn as nn


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic == 2051:
        n, h, w = struct.unpack(">III", data[4:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, h, w)
    n = struct.unpack(">I", data[4:8])[0]
    return np.frombuffer(data, np.uint8, offset=8)


ARCHS = ["lenet", "cnn-small", "resnet20", "preact-resnet18", "vgg11-bn"]


def model(arch, classes=10):
    if arch in ("resnet20", "preact-resnet18", "vgg11-bn"):
        from peer_torch_resnet import build
        return build(arch, classes)
    if arch == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, classes))
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, classes))


def infer_seconds(net, xs, batch):
    """Seconds for one pass of net over xs in batches, without gradients."""
    with torch.no_grad():
        t0 = time.perf_counter()
        for i in range(0, len(xs), batch):
            net(xs[i:i + batch])
        return time.perf_counter() - t0
