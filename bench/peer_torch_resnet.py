"""The PyTorch peers of qblind's batch-norm and residual presets (core/arch.c),
for the benchmarks only (bench/cnn_vs_torch.sh):

  resnet20         He et al. 2016's CIFAR ResNet-20: 3x3 stem (16) + bn + relu,
                   three stages of three basic blocks (16, 32, 64; the first
                   block of stages 2-3 strided), block = conv-bn-relu-conv-bn
                   + shortcut, ReLU after the addition; where the shape
                   changes the shortcut is a strided 1x1 conv + bn (option
                   B); global average pool, linear. Convolutions bias-free.
  preact-resnet18  BackdoorBench's PreActResNet18 (models/preact_resnet.py):
                   3x3 stem (64, no bn), four stages of two pre-activation
                   blocks (64-128-256-512), block = bn-relu, then
                   conv-bn-relu-conv, + shortcut (the block input, or a
                   strided 1x1 conv of the pre-activation); no bn after the
                   last block; AdaptiveAvgPool2d(1), linear.
  vgg11-bn         BackdoorBench's VGG-11 with batch norm: conv3-bn-relu
                   blocks 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M,
                   linear on the 512 features.

Each module also names the groups PyTorch's eager post-training
quantization fuses (fuse_groups): conv-bn-relu, conv-bn, bn-relu. Residual
additions go through nn.quantized.FloatFunctional so the quantized model
adds (and add_relu's) in INT8. Use Debian's /usr/bin/python3 (python3-torch
1.13); never on qblind's path."""
import torch.nn as nn
from torch.nn.quantized import FloatFunctional


class BasicBlock(nn.Module):
    """resnet20's block: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = stride != 1 or cin != cout
        if self.proj:
            self.sc_conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.sc_bn = nn.BatchNorm2d(cout)
        self.add = FloatFunctional()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = self.sc_bn(self.sc_conv(x)) if self.proj else x
        return self.add.add_relu(out, sc)

    def fuse_groups(self):
        g = [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]
        return g + ([["sc_conv", "sc_bn"]] if self.proj else [])


class ResNet20(nn.Module):
    def __init__(self, classes=10, cin=3):
        super().__init__()
        self.conv = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        blocks, c = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(c, cout, stride if i == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        return self.linear(self.flatten(self.pool(self.blocks(x))))

    def fuse_groups(self):
        return [["conv", "bn", "relu"]]


class PreActBlock(nn.Module):
    """preact-resnet18's block: a = relu(bn1 x); conv2(relu(bn2(conv1 a))) +
    (shortcut(a) or x)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = stride != 1 or cin != cout
        if self.proj:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.add = FloatFunctional()

    def forward(self, x):
        a = self.relu1(self.bn1(x))
        sc = self.shortcut(a) if self.proj else x
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        return self.add.add(out, sc)

    def fuse_groups(self):
        return [["bn1", "relu1"], ["conv1", "bn2", "relu2"]]


class PreActResNet18(nn.Module):
    def __init__(self, classes=10, cin=3):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 64, 3, 1, 1, bias=False)
        blocks, c = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(2):
                blocks.append(PreActBlock(c, cout, stride if i == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        return self.linear(self.flatten(self.avgpool(self.blocks(self.conv1(x)))))

    def fuse_groups(self):
        return []


def vgg11_bn(classes=10, cin=3):
    layers, c = [], cin
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, classes))


def build(arch, classes=10):
    if arch == "resnet20":
        return ResNet20(classes)
    if arch == "preact-resnet18":
        return PreActResNet18(classes)
    if arch == "vgg11-bn":
        return vgg11_bn(classes)
    raise ValueError(f"unknown arch {arch}")


def fuse(net):
    """Fuses every module's groups in place (eval mode) and returns net:
    conv-bn-relu / conv-bn / bn-relu as PyTorch's PTQ recipe does. For a
    Sequential (vgg11-bn), the [conv, bn, relu] runs by index."""
    from torch.ao.quantization import fuse_modules
    if isinstance(net, nn.Sequential):
        mods = list(net.named_children())
        groups = [[a, b, c] for (a, ma), (b, mb), (c, mc) in zip(mods, mods[1:], mods[2:])
                  if isinstance(ma, nn.Conv2d) and isinstance(mb, nn.BatchNorm2d)
                  and isinstance(mc, nn.ReLU)]
        return fuse_modules(net, groups)
    for m in list(net.modules()):
        if hasattr(m, "fuse_groups") and m.fuse_groups():
            fuse_modules(m, m.fuse_groups(), inplace=True)
    return net
