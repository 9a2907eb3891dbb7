#!/usr/bin/python3
"""PyTorch peer for bench/qinfer_vs_torch.sh and bench/cnn_vs_torch.sh:
inference throughput of the same lenet / cnn-small / resnet20 /
preact-resnet18 / vgg11-bn (bench/peer_torch_common.py and
peer_torch_resnet.py, i.e. core/arch.c's presets) in FP32 and as static
INT8 post-training quantization (QuantStub/DeQuantStub around the network;
conv+relu, linear+relu, conv+bn+relu, conv+bn and bn+relu fused as PyTorch's
PTQ recipe does; residual additions quantized through FloatFunctional;
get_default_qconfig(engine): per-channel weights, histogram-calibrated
activations; calibrated on 8 batches, then converted) on --engine (default
'onednn', the x86 engine Debian's torch 1.13 is built with: it has no
fbgemm / 'x86'). One thread, data already in memory as float tensors, one
untimed warm-up batch.
Prints one line:
    torch <arch> fp32|int8 <batch> <images/s>
Use Debian's /usr/bin/python3 (python3-torch 1.13); never in qblind's path."""
import argparse, os, sys

import numpy as np
import torch
import torch.nn as nn
from torch.ao.quantization import (DeQuantStub, QuantStub, convert, fuse_modules,
                                   get_default_qconfig, prepare)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_torch_common import ARCHS, infer_seconds, load_idx, model

torch.set_num_threads(1)


class Quantized(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.quant, self.net, self.dequant = QuantStub(), net, DeQuantStub()

    def forward(self, x):
        return self.dequant(self.net(self.quant(x)))


def fuse_relus(net):
    """[conv|linear, relu] pairs of the Sequential, by module name; the
    batch-norm nets fuse their own groups (peer_torch_resnet.fuse)."""
    if not isinstance(net, nn.Sequential) or any(isinstance(m, nn.BatchNorm2d)
                                                 for m in net.modules()):
        from peer_torch_resnet import fuse
        return fuse(net)
    mods = list(net.named_children())
    pairs = [[a, b] for (a, ma), (b, mb) in zip(mods, mods[1:])
             if isinstance(ma, (nn.Conv2d, nn.Linear)) and isinstance(mb, nn.ReLU)]
    return fuse_modules(net, pairs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="lenet", choices=ARCHS)
    ap.add_argument("--prec", default="int8", choices=["fp32", "int8"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=0,
                    help="images per measurement (default: 60000 lenet, 10000 cnn-small)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--engine", default="onednn",
                    choices=torch.backends.quantized.supported_engines)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.arch == "lenet":
        x = load_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
        n = min(args.images or 60000, len(x))
    else:  # random 3x32x32 images: throughput does not depend on content
        n = args.images or 10000
        x = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    xs = torch.from_numpy(x[:n].astype(np.float32) / 255.0)
    B = args.batch
    net = model(args.arch).eval()
    if args.prec == "int8":
        torch.backends.quantized.engine = args.engine
        net = Quantized(fuse_relus(net)).eval()
        net.qconfig = get_default_qconfig(args.engine)
        prepare(net, inplace=True)
        with torch.no_grad():
            for i in range(0, min(8 * B, n), B):
                net(xs[i:i + B])
        convert(net, inplace=True)
    with torch.no_grad():
        net(xs[:B])  # warm-up (kernel selection, allocations)
    dt = infer_seconds(net, xs, B)
    print(f"torch {args.arch} {args.prec} {B} {n / dt:.0f}")


if __name__ == "__main__":
    main()
