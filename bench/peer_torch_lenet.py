#!/usr/bin/python3
"""PyTorch peer for bench/train_vs_torch.sh: the same lenet / cnn-small, the
same data in memory, one thread, SGD momentum 0.9. Prints one line:
    torch <arch> train|infer <batch> <images/s>
Use Debian's /usr/bin/python3 (python3-torch 1.13); never in qblind's path."""
import argparse, os, time

import numpy as np
import torch
import torch.nn as nn

from peer_torch_common import infer_seconds, load_idx, model

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="lenet")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=60000, help="images per measurement")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.arch == "lenet":
        x = load_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
        y = load_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    else:  # random 3x32x32 images: throughput does not depend on content
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, args.images, dtype=np.uint8)
    n = min(args.images, len(x))
    xs = torch.from_numpy(x[:n].astype(np.float32) / 255.0)
    ys = torch.from_numpy(y[:n].astype(np.int64))
    net = model(args.arch)
    B = args.batch
    if args.mode == "train":
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        lossf = nn.CrossEntropyLoss()
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, B):
            idx = perm[i:i + B]
            opt.zero_grad()
            loss = lossf(net(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
    else:
        net.eval()
        dt = infer_seconds(net, xs, B)
    print(f"torch {args.arch} {args.mode} {B} {n / dt:.0f}")


if __name__ == "__main__":
    main()
