"""The CIFAR ResNet of EKG (Lee & Song, ECCV 2022; ../shared/spec/ekg.md 2.1), with every width prunable.

Basic blocks, depth 6n+2, stages 16/32/64 of n blocks; the first block of stages 2 and 3 has a projection shortcut
(1x1 conv with stride 2, then BN, no ReLU: "option B", the official code's ``conv3``/``bn3``), the others the
identity. No conv has a bias; the head is global average pooling and an FC with bias.

cfg: 3 + 3n ints. cfg[0:3] are the stage widths: the residual stream of a stage (the stem's or the projection's
output, every conv2 of the stage, and what reads them) is one channel group, since the additions tie those
channels. cfg[3:] are the inner widths of the blocks (each conv1's output). The identity modules ``gate`` (after the
stem's ReLU), ``gate1`` (after a block's bn1 + ReLU) and ``gate2`` (after its addition + ReLU) hold the activations
where EKG measures importance; they compute nothing.

PyTorch's padding=1 on the stride-2 convs samples one pixel off TF's 'SAME' (which pads only bottom/right): the
official weights would need asymmetric padding to load; this network trains in PyTorch and does not load them.
"""
import torch.nn as nn

from errors import UserError

from .layers import ChannelGroup, ResNetWidthOptions, init_conv_fan_out, stage_planes
from .registry import register_model

class EKGBlock(nn.Module):
    def __init__(self, inplanes, width, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.gate1 = nn.Identity()
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.project = stride != 1
        if self.project:
            self.conv3 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
        self.gate2 = nn.Identity()

    def forward(self, x):
        out = self.gate1(self.bn1(self.conv1(x)).relu())
        out = self.bn2(self.conv2(out))
        shortcut = self.bn3(self.conv3(x)) if self.project else x
        return self.gate2((out + shortcut).relu())


class EKGResNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size):
        super().__init__()
        n = (depth - 2) // 6
        self.n, self.cfg = n, list(cfg)
        stage_w, inner = self.cfg[:3], self.cfg[3:]
        self.conv1 = nn.Conv2d(in_channels, stage_w[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stage_w[0])
        self.gate = nn.Identity()
        inplanes = stage_w[0]
        for s in range(3):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(EKGBlock(inplanes, inner[s * n + i], stage_w[s], stride))
                inplanes = stage_w[s]
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(stage_w[2], num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)

    def forward(self, x):
        x = self.gate(self.bn1(self.conv1(x)).relu())
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def channel_groups(self):
        """3 stage groups (cfg 0-2: the residual streams) then one group per block's conv1 (cfg 3...)."""
        n, groups = self.n, []
        for s in range(3):
            blocks = [f"layer{s + 1}.{i}" for i in range(n)]
            out = ["conv1", "bn1"] if s == 0 else [f"{blocks[0]}.conv3", f"{blocks[0]}.bn3"]
            out += [m for b in blocks for m in (f"{b}.conv2", f"{b}.bn2")]
            readers = blocks if s == 0 else blocks[1:]
            inp = [f"{b}.conv1" for b in readers]
            inp += [f"layer{s + 2}.0.conv1", f"layer{s + 2}.0.conv3"] if s < 2 else ["fc"]
            sites = (["gate"] if s == 0 else []) + [f"{b}.gate2" for b in blocks]
            groups.append(ChannelGroup(s, f"stage{s + 1}", out=out, inp=inp, sites=sites))
        for j in range(3 * n):
            b = f"layer{j // n + 1}.{j % n}"
            groups.append(ChannelGroup(3 + j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"],
                                       sites=[f"{b}.gate1"]))
        return groups


@register_model("resnet_ekg", depths=(20, 32, 44, 56, 110), default_depth=56, options=ResNetWidthOptions)
def resnet_ekg(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, base_width=16):
    """CIFAR ResNet of EKG: projection shortcuts (option B), stage widths and block inner widths all prunable."""
    n = (depth - 2) // 6
    stages = stage_planes(base_width)  # every width is a cfg entry: base_width only shapes the default
    cfg = list(stages) + [w for w in stages for _ in range(n)] if cfg is None else list(cfg)
    if len(cfg) != 3 + 3 * n:
        raise UserError(f"cfg has {len(cfg)} entries, EKG's ResNet-{depth} needs {3 + 3 * n} (3 stage widths, then "
                        f"{3 * n} block inner widths)")
    return EKGResNet(depth, cfg, num_classes, in_channels, image_size)
