"""CIFAR ResNet (basic blocks, depth 6n+2) with per-block inner widths: the L1-norm-pruning network.

cfg: 3n ints, the output width of each block's first conv (block outputs stay 16/32/64, times --width). Downsampling
blocks use the reference's parameter-free shortcut: 2x2 average pool, then zero channels appended. The
reference builds that shortcut from ``x.data`` (no gradient through it, bug B1); ``detach_shortcut=True``
reproduces that, the default lets the gradient through.

Sparse Structure Selection (cifar/sparse-structure-selection) adds two options: ``block_lambda``, a learnable
scalar per block multiplying its residual branch (after bn2, before the add), and ``units``, the blocks left per
stage after whole blocks were removed (see ``stage_units``). Both off, the network is the L1-norm one unchanged.
"""
import functools
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, ResNetWidthOptions, init_conv_fan_out, stage_planes
from .registry import register_model


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU; subclasses say what the shortcut is."""

    branch = True
    branch_end = "bn2"  # the branch's last layer, into which a block lambda folds

    def __init__(self, inplanes, planes, width, stride, block_lambda=False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if block_lambda:
            self.lambda_ = nn.Parameter(torch.ones(1))  # SSS's scale of the residual branch

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "lambda_"):
            out = out * self.lambda_.to(out.dtype)  # bf16 autocast stays bf16
        return self.relu(out + self.shortcut(x))


def pad_shortcut(x, planes, detach=False):
    """The reference's parameter-free downsampling shortcut: 2x2 average pool, zero channels appended."""
    if detach:
        x = x.detach()
    x = F.avg_pool2d(x, 2, 2)
    return F.pad(x, (0, 0, 0, 0, 0, planes - x.size(1)))


class BasicBlock(Block):
    """The L1-norm network's block: parameter-free shortcut (2x2 average pool, zero channels appended)."""

    def __init__(self, inplanes, planes, width, stride, detach_shortcut=False, block_lambda=False):
        super().__init__(inplanes, planes, width, stride, block_lambda)
        self.downsample = stride != 1 or inplanes != planes
        self.planes = planes
        self.detach_shortcut = detach_shortcut

    def shortcut(self, x):
        if not self.downsample:
            return x
        return pad_shortcut(x, self.planes, self.detach_shortcut)


class ShortcutUnit(nn.Module):
    """A downsampling block whose residual branch Sparse Structure Selection removed: its shortcut alone. The
    block's final ReLU is left out: its input is a ReLU's output, so the shortcut is non-negative already."""
    branch = False

    def __init__(self, inplanes, planes, stride, detach_shortcut=False):
        super().__init__()
        self.planes, self.detach_shortcut = planes, detach_shortcut

    def forward(self, x):
        return pad_shortcut(x, self.planes, self.detach_shortcut)


class CifarResNet(nn.Module):
    """Stem conv, three stages of n blocks (16/32/64 at ``base_width`` 16; stride 2 into stages 2 and 3), average
    pool, fc.

    ``block(inplanes, planes, width, stride)`` builds one block; cfg[j] is the j-th block's inner width.
    ``units`` (SSS): per stage [blocks with a residual branch, whether the stage's first block keeps its branch];
    when it does not and its shortcut is not the identity, ``shortcut_unit(inplanes, planes, stride)`` comes first.
    """

    def __init__(self, depth, cfg, num_classes, in_channels, image_size, block, units=None, shortcut_unit=None,
                 base_width=16):
        super().__init__()
        n = (depth - 2) // 6
        self.cfg = list(cfg)
        self.units = stage_units(units, n, 3, f"ResNet-{depth}")
        widths = stage_planes(base_width)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes, j, self._branches = widths[0], 0, []
        for s, planes in enumerate(widths):
            count, keep_first = self.units[s]
            stride = 1 if s == 0 else 2
            blocks = []
            if not keep_first and (stride != 1 or inplanes != planes):
                blocks.append(shortcut_unit(inplanes, planes, stride))
                inplanes, stride = planes, 1
            for i in range(count):
                self._branches.append(f"layer{s + 1}.{len(blocks)}")
                blocks.append(block(inplanes, planes, self.cfg[j], stride if i == 0 else 1))
                inplanes, j = planes, j + 1
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(image_size // 4)  # the reference's AvgPool2d(8) at 32x32
        self.fc = nn.Linear(widths[2], num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)
        self.n = n

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def block_names(self):
        """The blocks with a residual branch (all of them unless SSS removed some)."""
        return list(self._branches)

    def stages(self):
        """Per stage, its blocks' module names in order (Sparse Structure Selection's view)."""
        return [[f"layer{s + 1}.{i}" for i in range(len(getattr(self, f"layer{s + 1}")))] for s in range(3)]

    def branch_cfg(self):
        """(cfg entries of each branch block, in block_names order; entries after them)."""
        return [[w] for w in self.cfg], []

    def units_depth(self, depth, units):
        return depth  # a network with blocks removed keeps the depth of the one it came from (its units say more)

    def channel_groups(self):
        return [ChannelGroup(j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"])
                for j, b in enumerate(self.block_names())]


def stage_units(units, n, stages, label):
    """``units`` checked and normalised to [[int, bool], ...] (None: every block of every stage, [[n, True], ...])."""
    if units is None:
        return [[n, True] for _ in range(stages)]
    if (not isinstance(units, (list, tuple)) or len(units) != stages
            or not all(isinstance(u, (list, tuple)) and len(u) == 2 for u in units)):
        raise UserError(f"units {units!r}: {stages} [blocks with a branch, first block keeps its branch] pairs")
    units = [[int(c), bool(k)] for c, k in units]
    for c, k in units:
        if not 0 <= c <= n or (k and c == 0):
            raise UserError(f"units {units!r}: {label} has 0..{n} blocks per stage, and a stage whose first block "
                            f"keeps its branch has at least that block")
    return units


@dataclass
class ResNetOptions(ResNetWidthOptions):
    detach_shortcut: bool = field(default=False, metadata={
        "help": "cut the gradient through the downsampling shortcut, as the reference does (its bug B1)"})
    block_lambda: bool = field(default=False, metadata={
        "help": "a learnable scalar per residual block scaling its branch (Sparse Structure Selection's lambda)",
        "new_network": True})

    def kwargs(self, arch, depth):
        flags = {k: True for k in ("detach_shortcut", "block_lambda") if getattr(self, k)}
        return {**super().kwargs(arch, depth), **flags}


def block_cfg(depth, cfg, label, units=None, base_width=16):
    """cfg of a 6n+2 CIFAR ResNet: the given one, checked for one entry per block (3n, or as many as ``units``
    keeps), or the unpruned stage widths (16/32/64 at base width 16)."""
    n = (depth - 2) // 6
    counts = [n] * 3 if units is None else [int(u[0]) for u in units]
    cfg = [w for c, w in zip(counts, stage_planes(base_width)) for _ in range(c)] if cfg is None else cfg
    if len(cfg) != sum(counts):
        raise UserError(f"cfg has {len(cfg)} entries, {label}{'' if units is None else f' with units {units}'} "
                        f"needs {sum(counts)}")
    return cfg


@register_model("resnet", depths=(20, 32, 44, 56, 110), default_depth=56, options=ResNetOptions)
def resnet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, detach_shortcut=False, block_lambda=False,
           units=None, base_width=16):
    """CIFAR ResNet, basic blocks, zero-padding shortcut, per-block first-conv widths (L1-norm pruning)."""
    units = stage_units(units, (depth - 2) // 6, 3, f"ResNet-{depth}") if units is not None else None
    cfg = block_cfg(depth, cfg, f"ResNet-{depth}", units, base_width)
    return CifarResNet(depth, cfg, num_classes, in_channels, image_size,
                       functools.partial(BasicBlock, detach_shortcut=detach_shortcut, block_lambda=block_lambda),
                       units, functools.partial(ShortcutUnit, detach_shortcut=detach_shortcut), base_width)
