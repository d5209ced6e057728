"""Pre-activation bottleneck ResNet (depth 9n+2, PreResNet-164 in the paper) with channel selection.

cfg: 9n+1 ints; per block [channels selected after bn1, conv1 width, conv2 width], then the channels
selected after the final BN. ``selected`` (optional) lists, per selection layer in module order, which
BN channels are passed on; None means the first cfg[i] channels.

``compact=True`` is the same function with each selection moved in front of its BatchNorm, which then holds
only the selected channels (``compact_model()`` converts): the reference's layout normalises every channel of the
residual stream and gathers afterwards, which costs time that no FLOPs count shows.

Sparse Structure Selection (cifar/sparse-structure-selection) adds ``block_lambda`` (a learnable scalar per block
multiplying conv3's output before the add) and ``units`` (the blocks left per stage after whole blocks were
removed, as in models/resnet.py: a stage whose first block lost its branch starts with its 1x1 shortcut alone).
cfg then has 3 entries per remaining block, and ``selected`` one per remaining block, then the final one.
"""
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from errors import UserError

from .layers import (ChannelGroup, ChannelSelection, ResNetWidthOptions, check_selection, compact_selections,
                     init_conv_fan_out, selection_group, stage_planes)
from .registry import register_model
from .resnet import stage_units


class Bottleneck(nn.Module):
    branch = True
    branch_end = "conv3"  # the branch's last layer, into which a block lambda folds

    def __init__(self, inplanes, planes, cfg, stride, selected, compact=False, block_lambda=False):
        super().__init__()
        self.compact = compact
        self.bn1 = nn.BatchNorm2d(cfg[0] if compact else inplanes)
        self.select = ChannelSelection(inplanes, selected if selected is not None else range(cfg[0]))
        self.conv1 = nn.Conv2d(cfg[0], cfg[1], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg[1])
        self.conv2 = nn.Conv2d(cfg[1], cfg[2], 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cfg[2])
        self.conv3 = nn.Conv2d(cfg[2], planes * 4, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False))
        if block_lambda:
            self.lambda_ = nn.Parameter(torch.ones(1))  # SSS's scale of the residual branch

    def forward(self, x):
        pre = self.bn1(self.select(x)) if self.compact else self.select(self.bn1(x))
        out = self.conv1(self.relu(pre))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if hasattr(self, "lambda_"):
            out = out * self.lambda_.to(out.dtype)  # bf16 autocast stays bf16
        return out + (x if self.downsample is None else self.downsample(x))


class ShortcutUnit(nn.Module):
    """A block whose residual branch Sparse Structure Selection removed and whose shortcut is not the identity:
    its 1x1 projection alone (same module name, so its weight carries over)."""
    branch = False

    def __init__(self, inplanes, outplanes, stride):
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False))

    def forward(self, x):
        return self.downsample(x)


class PreResNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size, selected, compact=False, block_lambda=False,
                 units=None, base_width=16):
        super().__init__()
        self.compact = compact
        n = (depth - 2) // 9
        self.cfg, self.n = list(cfg), n
        self.units = units = stage_units(units, n, 3, f"PreResNet-{depth}")
        selected = selected or [None] * (sum(c for c, _ in units) + 1)
        widths = stage_planes(base_width)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        inplanes, b, self._branches = widths[0], 0, []
        for s, planes in enumerate(widths):
            count, keep_first = units[s]
            stride = 1 if s == 0 else 2
            blocks = []
            if not keep_first:  # every stage's first block has a projection shortcut (16 -> 64 in stage 1)
                blocks.append(ShortcutUnit(inplanes, planes * 4, stride))
                inplanes, stride = planes * 4, 1
            for i in range(count):
                check_selection(3 * b, self.cfg[3 * b], inplanes, selected[b])
                self._branches.append(f"layer{s + 1}.{len(blocks)}")
                blocks.append(Bottleneck(inplanes, planes, self.cfg[3 * b:3 * b + 3], stride if i == 0 else 1,
                                         selected[b], compact, block_lambda))
                inplanes, b = planes * 4, b + 1
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(self.cfg[-1] if compact else inplanes)
        check_selection(len(self.cfg) - 1, self.cfg[-1], inplanes, selected[-1])
        self.select = ChannelSelection(inplanes, selected[-1] if selected[-1] is not None else range(cfg[-1]))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(image_size // 4)
        self.fc = nn.Linear(self.cfg[-1], num_classes)
        init_conv_fan_out(self, bn_gamma=0.5)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.relu(self.bn(self.select(x)) if self.compact else self.select(self.bn(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def block_names(self):
        """The blocks with a residual branch (all of them unless SSS removed some)."""
        return list(self._branches)

    def stages(self):
        """Per stage, its blocks' module names in order (Sparse Structure Selection's view)."""
        return [[f"layer{s + 1}.{i}" for i in range(len(getattr(self, f"layer{s + 1}")))] for s in range(3)]

    def branch_cfg(self):
        """(cfg entries of each branch block, in block_names order; entries after them)."""
        return [self.cfg[3 * b:3 * b + 3] for b in range(len(self._branches))], self.cfg[-1:]

    def units_depth(self, depth, units):
        return depth  # a network with blocks removed keeps the depth of the one it came from (its units say more)

    def channel_groups(self):
        groups = []
        for b, name in enumerate(self._branches):
            groups += [
                selection_group(3 * b, name, "bn1", "conv1", self.compact),
                ChannelGroup(3 * b + 1, f"{name}.conv1", out=[f"{name}.conv1", f"{name}.bn2"],
                             inp=[f"{name}.conv2"]),
                ChannelGroup(3 * b + 2, f"{name}.conv2", out=[f"{name}.conv2", f"{name}.bn3"],
                             inp=[f"{name}.conv3"]),
            ]
        groups.append(selection_group(len(self.cfg) - 1, "", "bn", "fc", self.compact))
        return groups

    def compact_model(self):
        """The equivalent network with every BatchNorm after its selection (see the module docstring)."""
        return compact_selections(self)


def default_cfg(n, units=None, base_width=16):
    cfg, widths = [], stage_planes(base_width)
    for s, planes in enumerate(widths):
        first_in = widths[0] if s == 0 else widths[s - 1] * 4  # the stem, or the previous stage's output
        count, keep_first = (n, True) if units is None else units[s]
        cfg += [w for i in range(count) for w in ((first_in if i == 0 and keep_first else planes * 4), planes, planes)]
    return cfg + [widths[2] * 4]


@dataclass
class PreResNetOptions(ResNetWidthOptions):
    block_lambda: bool = field(default=False, metadata={
        "help": "a learnable scalar per residual block scaling its branch (Sparse Structure Selection's lambda)",
        "new_network": True})

    def kwargs(self, arch, depth):
        return {**super().kwargs(arch, depth), **({"block_lambda": True} if self.block_lambda else {})}


@register_model("preresnet", depths=(20, 47, 56, 164), default_depth=164, options=PreResNetOptions,
                selection=True)
def preresnet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, selected=None, compact=False,
              block_lambda=False, units=None, base_width=16):
    """Pre-activation bottleneck ResNet with channel selection (network slimming's PreResNet)."""
    n = (depth - 2) // 9
    units = stage_units(units, n, 3, f"PreResNet-{depth}") if units is not None else None
    cfg = default_cfg(n, units, base_width) if cfg is None else cfg
    blocks = 3 * n if units is None else sum(c for c, _ in units)
    if len(cfg) != 3 * blocks + 1:
        label = f"PreResNet-{depth}" + ("" if units is None else f" with units {units}")
        raise UserError(f"cfg has {len(cfg)} entries, {label} needs {3 * blocks + 1}")
    return PreResNet(depth, cfg, num_classes, in_channels, image_size, selected, compact, block_lambda, units,
                     base_width)
