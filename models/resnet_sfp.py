"""The CIFAR ResNet that Soft Filter Pruning uses (he-y/soft-filter-pruning ``models/resnet.py``, reference.md 2.3).

Basic blocks, depth 6n+2, stage widths 16/32/64. It differs from the L1-norm ``resnet`` in ways that matter for
exactness: the module and state_dict names are the original's (``conv_1_3x3``, ``stage_1.0.conv_a``, ...,
``classifier``); ReLU is functional, so the reference FLOP counter does not count it; the downsampling shortcut
(DownsampleA) is an ``AvgPool2d(kernel_size=1, stride=2)`` module (strided subsampling, counted by the FLOP hook)
followed by concatenated zero channels, and it is not detached; the classifier is He fan-in initialised.

Parameter enumeration order is the reference's, which its ``--layer_begin/--layer_end/--layer_inter`` flags
index: 0 = stem conv, 1-2 = its BN, then per block [conv_a, bn_a.w, bn_a.b, conv_b, bn_b.w, bn_b.b], so every
conv weight sits at a multiple of 3 (0..54 for ResNet-20, ..162 for 56) and the classifier weight follows.

cfg: 3n ints, the output width of each block's conv_a (its inner width). Block outputs, the stem and the
shortcuts keep 16/32/64: those residual-stream channels are shared by every block of a stage.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, ResNetWidthOptions, stage_planes
from .registry import register_model

DEPTHS = (20, 32, 44, 56, 110)


class DownsampleA(nn.Module):
    """Stride-2 subsampling, then zero channels appended up to ``planes`` (the original doubles the width)."""

    def __init__(self, planes):
        super().__init__()
        self.avg = nn.AvgPool2d(kernel_size=1, stride=2)
        self.planes = planes

    def forward(self, x):
        x = self.avg(x)
        return torch.cat((x, x.new_zeros(x.size(0), self.planes - x.size(1), x.size(2), x.size(3))), 1)


class ResNetBasicblock(nn.Module):
    def __init__(self, inplanes, planes, width, stride):
        super().__init__()
        self.conv_a = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(width)
        self.conv_b = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(planes)
        self.downsample = DownsampleA(planes) if (stride != 1 or inplanes != planes) else None

    def forward(self, x):
        out = F.relu(self.bn_a(self.conv_a(x)))
        out = self.bn_b(self.conv_b(out))
        return F.relu((x if self.downsample is None else self.downsample(x)) + out)


class CifarResNetSFP(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size, base_width=16):
        super().__init__()
        n = (depth - 2) // 6
        self.cfg, self.n = list(cfg), n
        widths = stage_planes(base_width)
        self.conv_1_3x3 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(widths[0])
        inplanes = widths[0]
        for s, planes in enumerate(widths):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(ResNetBasicblock(inplanes, planes, self.cfg[s * n + i], stride))
                inplanes = planes
            setattr(self, f"stage_{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(image_size // 4)  # AvgPool2d(8) at 32x32
        self.classifier = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)  # fan-in
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return self.classifier(self.avgpool(x).flatten(1))

    def block_names(self):
        return [f"stage_{s + 1}.{i}" for s in range(3) for i in range(self.n)]

    def channel_groups(self):
        return [ChannelGroup(j, f"{b}.conv_a", out=[f"{b}.conv_a", f"{b}.bn_a"], inp=[f"{b}.conv_b"])
                for j, b in enumerate(self.block_names())]


@register_model("resnet_sfp", depths=DEPTHS, default_depth=56, options=ResNetWidthOptions)
def resnet_sfp(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, base_width=16):
    """CIFAR ResNet of Soft Filter Pruning (he-y's names, functional ReLU, DownsampleA); per-block conv_a widths."""
    n = (depth - 2) // 6
    cfg = [w for w in stage_planes(base_width) for _ in range(n)] if cfg is None else cfg
    if len(cfg) != 3 * n:
        raise UserError(f"cfg has {len(cfg)} entries, ResNet-{depth} needs {3 * n}")
    return CifarResNetSFP(depth, cfg, num_classes, in_channels, image_size, base_width)
