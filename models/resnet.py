"""CIFAR ResNet (basic blocks, depth 6n+2) with per-block inner widths: the L1-norm-pruning network.

cfg: 3n ints, the output width of each block's first conv (block outputs stay 16/32/64). Downsampling
blocks use the reference's parameter-free shortcut: 2x2 average pool, then zero channels appended. The
reference builds that shortcut from ``x.data`` (no gradient through it, bug B1); ``detach_shortcut=True``
reproduces that, the default lets the gradient through.
"""
import functools
from dataclasses import dataclass, field

import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, init_conv_fan_out
from .registry import register_model


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU; subclasses say what the shortcut is."""

    def __init__(self, inplanes, planes, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class BasicBlock(Block):
    """The L1-norm network's block: parameter-free shortcut (2x2 average pool, zero channels appended)."""

    def __init__(self, inplanes, planes, width, stride, detach_shortcut=False):
        super().__init__(inplanes, planes, width, stride)
        self.downsample = stride != 1 or inplanes != planes
        self.planes = planes
        self.detach_shortcut = detach_shortcut

    def shortcut(self, x):
        if not self.downsample:
            return x
        if self.detach_shortcut:
            x = x.detach()
        x = F.avg_pool2d(x, 2, 2)
        return F.pad(x, (0, 0, 0, 0, 0, self.planes - x.size(1)))


class CifarResNet(nn.Module):
    """Stem conv 16, three stages of n blocks (16/32/64, stride 2 into stages 2 and 3), average pool, fc.

    ``block(inplanes, planes, width, stride)`` builds one block; cfg[j] is block j's inner width.
    """

    def __init__(self, depth, cfg, num_classes, in_channels, image_size, block):
        super().__init__()
        n = (depth - 2) // 6
        self.cfg = list(cfg)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 16
        for s, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(block(inplanes, planes, self.cfg[s * n + i], stride))
                inplanes = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(image_size // 4)  # the reference's AvgPool2d(8) at 32x32
        self.fc = nn.Linear(64, num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)
        self.n = n

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def block_names(self):
        return [f"layer{s + 1}.{i}" for s in range(3) for i in range(self.n)]

    def channel_groups(self):
        return [ChannelGroup(j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"])
                for j, b in enumerate(self.block_names())]


@dataclass
class ResNetOptions:
    detach_shortcut: bool = field(default=False, metadata={
        "help": "cut the gradient through the downsampling shortcut, as the reference does (its bug B1)"})

    def kwargs(self, arch, depth):
        return {"detach_shortcut": True} if self.detach_shortcut else {}


def block_cfg(depth, cfg, label):
    """cfg of a 6n+2 CIFAR ResNet: the given one, checked for 3n entries, or the unpruned 16/32/64."""
    n = (depth - 2) // 6
    cfg = [16] * n + [32] * n + [64] * n if cfg is None else cfg
    if len(cfg) != 3 * n:
        raise UserError(f"cfg has {len(cfg)} entries, {label} needs {3 * n}")
    return cfg


@register_model("resnet", depths=(20, 32, 44, 56, 110), default_depth=56, options=ResNetOptions)
def resnet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, detach_shortcut=False):
    """CIFAR ResNet, basic blocks, zero-padding shortcut, per-block first-conv widths (L1-norm pruning)."""
    cfg = block_cfg(depth, cfg, f"ResNet-{depth}")
    return CifarResNet(depth, cfg, num_classes, in_channels, image_size,
                       functools.partial(BasicBlock, detach_shortcut=detach_shortcut))
