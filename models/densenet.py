"""DenseNet (basic layers, depth 3n+4, DenseNet-40 in the paper) with channel selection.

cfg: 3n+3 ints; the channels each dense layer's conv reads (n per block), each transition's conv reads,
and the classifier reads. Growth and transition outputs are not pruned. ``selected`` as in PreResNet.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ChannelGroup, ChannelSelection, check_selection, init_conv_fan_out
from .registry import register_model


class DenseLayer(nn.Module):
    def __init__(self, inplanes, width, growth, drop_rate, selected):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelection(inplanes, selected if selected is not None else range(width))
        self.conv1 = nn.Conv2d(width, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate

    def forward(self, x):
        out = self.conv1(self.relu(self.select(self.bn1(x))))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return torch.cat((x, out), 1)


class Transition(nn.Module):
    def __init__(self, inplanes, outplanes, width, selected):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelection(inplanes, selected if selected is not None else range(width))
        self.conv1 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return F.avg_pool2d(self.conv1(self.relu(self.select(self.bn1(x)))), 2)


class DenseNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size, growth, compression, drop_rate,
                 selected):
        super().__init__()
        n = (depth - 4) // 3
        self.cfg, self.n = list(cfg), n
        selected = selected or [None] * (3 * n + 3)
        inplanes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False)
        k = 0
        for b in range(3):
            layers = []
            for _ in range(n):
                check_selection(k, self.cfg[k], inplanes, selected[k])
                layers.append(DenseLayer(inplanes, self.cfg[k], growth, drop_rate, selected[k]))
                inplanes += growth
                k += 1
            setattr(self, f"dense{b + 1}", nn.Sequential(*layers))
            if b < 2:
                out = int(inplanes // compression)
                check_selection(k, self.cfg[k], inplanes, selected[k])
                setattr(self, f"trans{b + 1}", Transition(inplanes, out, self.cfg[k], selected[k]))
                inplanes = out
                k += 1
        self.bn = nn.BatchNorm2d(inplanes)
        check_selection(k, self.cfg[k], inplanes, selected[k])
        self.select = ChannelSelection(inplanes, selected[k] if selected[k] is not None else range(cfg[k]))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(image_size // 4)
        self.fc = nn.Linear(self.cfg[-1], num_classes)
        init_conv_fan_out(self, bn_gamma=0.5)

    def forward(self, x):
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.dense3(self.trans2(self.dense2(x)))
        x = self.relu(self.select(self.bn(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def _selection_units(self):
        names = []
        for b in range(3):
            names += [f"dense{b + 1}.{i}" for i in range(self.n)]
            if b < 2:
                names.append(f"trans{b + 1}")
        return names

    def channel_groups(self):
        groups = [ChannelGroup(k, f"{u}.select", mask=[f"{u}.bn1"], select=[f"{u}.select"], inp=[f"{u}.conv1"])
                  for k, u in enumerate(self._selection_units())]
        groups.append(ChannelGroup(len(self.cfg) - 1, "select", mask=["bn"], select=["select"], inp=["fc"]))
        return groups


def default_cfg(n, growth, compression):
    cfg, inplanes = [], 2 * growth
    for b in range(3):
        for _ in range(n):
            cfg.append(inplanes)
            inplanes += growth
        cfg.append(inplanes)  # transition (or, after the last block, classifier) input
        if b < 2:
            inplanes = int(inplanes // compression)
    return cfg


@register_model("densenet", depths=(40, 100), default_depth=40)
def densenet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, growth_rate=12,
             compression_rate=1, drop_rate=0.0, selected=None):
    """DenseNet with basic (non-bottleneck) layers and channel selection (network slimming's DenseNet)."""
    n = (depth - 4) // 3
    cfg = default_cfg(n, growth_rate, compression_rate) if cfg is None else cfg
    if len(cfg) != 3 * n + 3:
        from utils.errors import UserError
        raise UserError(f"cfg has {len(cfg)} entries, DenseNet-{depth} needs {3 * n + 3}")
    return DenseNet(depth, cfg, num_classes, in_channels, image_size, growth_rate, compression_rate,
                    drop_rate, selected)
