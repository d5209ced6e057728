"""Pre-activation bottleneck ResNet (depth 9n+2, PreResNet-164 in the paper) with channel selection.

cfg: 9n+1 ints; per block [channels selected after bn1, conv1 width, conv2 width], then the channels
selected after the final BN. ``selected`` (optional) lists, per selection layer in module order, which
BN channels are passed on; None means the first cfg[i] channels.

``compact=True`` is the same function with each selection moved in front of its BatchNorm, which then holds
only the selected channels (``compact_model()`` converts): the reference's layout normalises every channel of the
residual stream and gathers afterwards, which costs time that no FLOPs count shows.
"""
import torch.nn as nn

from errors import UserError

from .layers import (ChannelGroup, ChannelSelection, check_selection, compact_selections, init_conv_fan_out,
                     selection_group)
from .registry import register_model


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, cfg, stride, selected, compact=False):
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

    def forward(self, x):
        pre = self.bn1(self.select(x)) if self.compact else self.select(self.bn1(x))
        out = self.conv1(self.relu(pre))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreResNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size, selected, compact=False):
        super().__init__()
        self.compact = compact
        n = (depth - 2) // 9
        self.cfg, self.n = list(cfg), n
        selected = selected or [None] * (3 * n + 1)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        inplanes = 16
        for s, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                b = s * n + i
                stride = 2 if (s > 0 and i == 0) else 1
                check_selection(3 * b, self.cfg[3 * b], inplanes, selected[b])
                blocks.append(Bottleneck(inplanes, planes, self.cfg[3 * b:3 * b + 3], stride, selected[b], compact))
                inplanes = planes * 4
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

    def channel_groups(self):
        groups = []
        for b, name in enumerate(f"layer{s + 1}.{i}" for s in range(3) for i in range(self.n)):
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


def default_cfg(n):
    cfg = []
    for planes, first_in in ((16, 16), (32, 64), (64, 128)):
        cfg += [first_in, planes, planes] + [planes * 4, planes, planes] * (n - 1)
    return cfg + [256]


@register_model("preresnet", depths=(20, 47, 56, 164), default_depth=164)
def preresnet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, selected=None, compact=False):
    """Pre-activation bottleneck ResNet with channel selection (network slimming's PreResNet)."""
    n = (depth - 2) // 9
    cfg = default_cfg(n) if cfg is None else cfg
    if len(cfg) != 9 * n + 1:
        raise UserError(f"cfg has {len(cfg)} entries, PreResNet-{depth} needs {9 * n + 1}")
    return PreResNet(depth, cfg, num_classes, in_channels, image_size, selected, compact)
