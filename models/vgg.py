"""CIFAR VGG in the reference's two variants, built from a per-layer width list.

``vgg``: the L1-norm variant (head Linear(cfg[-1], 512) - BatchNorm1d - ReLU - Linear(512, classes)).
``vgg_slim``: the network-slimming variant (head Linear(cfg[-1], classes)).
cfg: widths of the 3x3 convs (each followed by BN and ReLU) with 'M' for a 2x2 max-pool. Module names
(``feature.N``, ``classifier.N``) are the reference's, so its state_dicts load unchanged.
"""
from dataclasses import dataclass, field

import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, init_conv_fan_out
from .registry import default_cfg, register_model, scale_cfg

DEFAULT_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class VGG(nn.Module):
    def __init__(self, cfg, num_classes, in_channels, head, bn1d_init="uniform"):
        super().__init__()
        self.cfg = list(cfg)
        self.head = head
        layers, self._conv_pos, c = [], [], in_channels
        for pos, v in enumerate(self.cfg):
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                self._conv_pos.append((pos, len(layers)))
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.feature = nn.Sequential(*layers)
        if head == "l1":
            self.classifier = nn.Sequential(nn.Linear(c, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                            nn.Linear(512, num_classes))
        else:
            self.classifier = nn.Linear(c, num_classes)
        init_conv_fan_out(self, bn_gamma=0.5)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                # PyTorch 0.3.1, which the reference ran, drew BN gamma from U(0, 1); modern default is 1.
                if bn1d_init == "uniform":
                    nn.init.uniform_(m.weight, 0, 1)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.feature(x)
        # The reference's inline AvgPool2d(2) on the 2x2 map (FLOP-free); adaptive so 28x28 inputs work too.
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)

    def channel_groups(self):
        groups = []
        for k, (pos, idx) in enumerate(self._conv_pos):
            if k + 1 < len(self._conv_pos):
                consumer = f"feature.{self._conv_pos[k + 1][1]}"
            else:
                consumer = "classifier.0" if self.head == "l1" else "classifier"
            groups.append(ChannelGroup(pos, f"conv{k + 1}", out=[f"feature.{idx}", f"feature.{idx + 1}"],
                                       inp=[consumer]))
        return groups


@dataclass
class WidthOptions:
    """The VGGs' option: every default width times a factor (small networks for CPU-scale runs)."""
    # new_network: it only shapes a network built from scratch (a checkpoint's widths are its own)
    width: float = field(default=1.0, metadata={"help": "scale every default layer width by this factor (small "
                                                          "models for CPU runs)", "new_network": True})

    def __post_init__(self):
        if not self.width > 0:
            raise UserError(f"--width {self.width}: must be positive")

    def kwargs(self, arch, depth):
        return {} if self.width == 1.0 else {"cfg": scale_cfg(default_cfg(arch, depth), self.width)}


@dataclass
class L1VGGOptions(WidthOptions):
    bn1d_init: str = field(default="uniform", metadata={
        "help": "init of the head's BatchNorm1d gamma; 'uniform' = U(0, 1), PyTorch 0.3.1's default that the "
                "reference ran with; 'ones' = today's default", "choices": ["uniform", "ones"], "new_network": True})

    def kwargs(self, arch, depth):
        out = super().kwargs(arch, depth)
        return out if self.bn1d_init == "uniform" else {**out, "bn1d_init": self.bn1d_init}


def _check_cfg(cfg, depth):
    n_conv = sum(1 for v in cfg if v != "M")
    expected = sum(1 for v in DEFAULT_CFG[depth] if v != "M")
    if n_conv != expected:
        raise UserError(f"cfg has {n_conv} conv widths, VGG-{depth} needs {expected}")


@register_model("vgg", depths=(11, 13, 16, 19), default_depth=16, options=L1VGGOptions)
def vgg(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, bn1d_init="uniform"):
    """VGG for CIFAR, L1-norm-pruning variant (512-BN-ReLU head), no conv bias."""
    cfg = list(DEFAULT_CFG[depth]) if cfg is None else cfg
    _check_cfg(cfg, depth)
    return VGG(cfg, num_classes, in_channels, head="l1", bn1d_init=bn1d_init)


@register_model("vgg_slim", depths=(11, 13, 16, 19), default_depth=19, options=WidthOptions)
def vgg_slim(depth, num_classes=10, in_channels=3, image_size=32, cfg=None):
    """VGG for CIFAR, network-slimming variant (single linear head), no conv bias."""
    cfg = list(DEFAULT_CFG[depth]) if cfg is None else cfg
    _check_cfg(cfg, depth)
    return VGG(cfg, num_classes, in_channels, head="slim")
