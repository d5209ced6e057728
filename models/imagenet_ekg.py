"""The ImageNet ResNet of EKG (imagenet/ekg): torchvision's ResNet-18/34/50/101/152 with every width prunable.

Layout and parameter names are torchvision's (``conv1``, ``bn1``, ``layerS.B.conv1`` ..., ``downsample.0/.1``,
``fc``), so ``torchvision.models.resnet50().state_dict()`` loads strict and the network computes the same function.
Stem conv 7x7/2 - BN - ReLU - max-pool 3/2, four stages, the reference zoo's ``AvgPool2d`` head (the same FLOPs as
``imagenet_resnet`` in the reference convention: ReLU and pooling modules counted), FC with bias.

cfg is one width per channel group, i.e. per set of channels the architecture ties:

* bottleneck nets (50/101/152): ``[stem, stage1, stage2, stage3, stage4]`` then ``[conv1, conv2]`` per block. The
  stem is its own group because layer1.0 reads it through a projection (``downsample``); a stage's residual
  stream (its first block's projection, every ``conv3`` of the stage, and what reads them) is one group, since
  the additions tie those channels.
* basic nets (18/34): ``[stage1, stage2, stage3, stage4]`` then ``conv1`` per block. The stem's output IS stage 1's
  stream (layer1.0 adds it unprojected), so stage 1's group includes the stem and has no separate entry.

Default widths: stage s has 64 x 2^s (basic) or 256 x 2^s (bottleneck) channels; a block's inner widths are its
planes (64 x 2^s). The identity modules hold the activations EKG scores (``ChannelGroup.sites``); they compute
nothing: ``gate`` after the stem's ReLU (before the max-pool), ``gate1`` / ``gate2`` after a block's inner ReLUs,
``gate_out`` after its addition + ReLU.
"""
from dataclasses import dataclass

import torch.nn as nn

from errors import UserError

from .imagenet import RESNET_BLOCKS, ImageNetWidthOptions, final_map_size
from .layers import ChannelGroup
from .registry import register_model

EXPANSION = {"basic": 1, "bottleneck": 4}


class EKGBasicBlock(nn.Module):
    def __init__(self, inplanes, width, planes, stride, project):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.gate1 = nn.Identity()
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(inplanes, planes, stride) if project else None
        self.gate_out = nn.Identity()

    def forward(self, x):
        out = self.gate1(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.gate_out(self.relu(out + shortcut))


class EKGBottleneck(nn.Module):
    def __init__(self, inplanes, widths, planes, stride, project):
        super().__init__()
        w1, w2 = widths
        self.conv1 = nn.Conv2d(inplanes, w1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.gate1 = nn.Identity()
        self.conv2 = nn.Conv2d(w1, w2, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2)
        self.gate2 = nn.Identity()
        self.conv3 = nn.Conv2d(w2, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(inplanes, planes, stride) if project else None
        self.gate_out = nn.Identity()

    def forward(self, x):
        out = self.gate1(self.relu(self.bn1(self.conv1(x))))
        out = self.gate2(self.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.gate_out(self.relu(out + shortcut))


def _projection(inplanes, planes, stride):
    """torchvision's projection shortcut: 1x1 conv with the block's stride, then BN."""
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))


class EKGImageNetResNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size):
        super().__init__()
        kind, layers = RESNET_BLOCKS[depth]
        self.kind, self.layers, self.cfg = kind, layers, list(cfg)
        bottleneck = kind == "bottleneck"
        self.n_stage = 5 if bottleneck else 4  # cfg entries before the blocks' inner widths
        stem = self.cfg[0]
        stages = self.cfg[1:5] if bottleneck else self.cfg[0:4]
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Identity()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.blocks = []
        inplanes, b = stem, 0
        for s, n in enumerate(layers):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                # torchvision's projections, whatever the widths (pruning neither adds nor removes one): the first
                # block of every bottleneck stage (layer1.0: 64 -> 256) and of basic stages 2-4
                project = i == 0 and (bottleneck or s > 0)
                if bottleneck:
                    inner = self.cfg[self.n_stage + 2 * b:self.n_stage + 2 * b + 2]
                    block = EKGBottleneck(inplanes, inner, stages[s], stride, project)
                else:
                    block = EKGBasicBlock(inplanes, self.cfg[self.n_stage + b], stages[s], stride, project)
                blocks.append(block)
                self.blocks.append(f"layer{s + 1}.{i}")
                inplanes, b = stages[s], b + 1
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(final_map_size(image_size), stride=1)  # the reference zoo's head (FLOPs)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(self.gate(self.relu(self.bn1(self.conv1(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    def channel_groups(self):
        """Bottleneck: the stem (cfg 0), the 4 stage streams (cfg 1-4), then conv1 and conv2 of each block (cfg 5...).
        Basic: the 4 stage streams, stage 1's including the stem (cfg 0-3), then each block's conv1 (cfg 4...)."""
        bottleneck = self.kind == "bottleneck"
        last = "conv3" if bottleneck else "conv2"
        last_bn = "bn3" if bottleneck else "bn2"
        groups = []
        if bottleneck:
            groups.append(ChannelGroup(0, "stem", out=["conv1", "bn1"],
                                       inp=["layer1.0.conv1", "layer1.0.downsample.0"], sites=["gate"]))
        for s, n in enumerate(self.layers):
            blocks = [f"layer{s + 1}.{i}" for i in range(n)]
            projected = bottleneck or s > 0
            out = [f"{blocks[0]}.downsample.0", f"{blocks[0]}.downsample.1"] if projected else ["conv1", "bn1"]
            out += [m for b in blocks for m in (f"{b}.{last}", f"{b}.{last_bn}")]
            inp = [f"{b}.conv1" for b in (blocks[1:] if projected else blocks)]
            inp += [f"layer{s + 2}.0.conv1", f"layer{s + 2}.0.downsample.0"] if s < 3 else ["fc"]
            sites = ([] if projected else ["gate"]) + [f"{b}.gate_out" for b in blocks]
            groups.append(ChannelGroup(s + (1 if bottleneck else 0), f"stage{s + 1}", out=out, inp=inp, sites=sites))
        for j, b in enumerate(self.blocks):
            if bottleneck:
                groups += [ChannelGroup(self.n_stage + 2 * j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"],
                                        inp=[f"{b}.conv2"], sites=[f"{b}.gate1"]),
                           ChannelGroup(self.n_stage + 2 * j + 1, f"{b}.conv2", out=[f"{b}.conv2", f"{b}.bn2"],
                                        inp=[f"{b}.conv3"], sites=[f"{b}.gate2"])]
            else:
                groups.append(ChannelGroup(self.n_stage + j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"],
                                           inp=[f"{b}.conv2"], sites=[f"{b}.gate1"]))
        return groups


def ekg_default_cfg(depth, base_width=64):
    """torchvision's widths as this network's cfg (see the module docstring), with ``base_width`` stem channels."""
    kind, layers = RESNET_BLOCKS[depth]
    planes = [base_width * 2 ** s for s in range(4)]
    streams = [p * EXPANSION[kind] for p in planes]
    if kind == "basic":
        return streams + [p for p, n in zip(planes, layers) for _ in range(n)]
    return [base_width] + streams + [w for p, n in zip(planes, layers) for _ in range(n) for w in (p, p)]


def cfg_length(depth):
    kind, layers = RESNET_BLOCKS[depth]
    return 4 + sum(layers) if kind == "basic" else 5 + 2 * sum(layers)


@dataclass
class ImageNetEKGOptions(ImageNetWidthOptions):
    def kwargs(self, arch, depth):
        return {} if self.width == 1.0 else {"cfg": ekg_default_cfg(depth, self.stem())}


@register_model("imagenet_resnet_ekg", depths=tuple(RESNET_BLOCKS), default_depth=50, options=ImageNetEKGOptions,
                family="imagenet")
def imagenet_resnet_ekg(depth, num_classes=1000, in_channels=3, image_size=224, cfg=None):
    """ImageNet ResNet of EKG: torchvision's layout and names, the stem, stage streams and inner widths all
    prunable."""
    cfg = ekg_default_cfg(depth) if cfg is None else list(cfg)
    kind, _ = RESNET_BLOCKS[depth]
    if len(cfg) != cfg_length(depth):
        what = ("4 stage widths (stage 1's is the stem's), then one conv1 width per block" if kind == "basic" else
                "the stem width, 4 stage widths, then the conv1 and conv2 widths of each block")
        raise UserError(f"cfg has {len(cfg)} entries, EKG's ImageNet ResNet-{depth} needs {cfg_length(depth)} "
                        f"({what})")
    if any(not isinstance(w, int) or w < 1 for w in cfg):
        raise UserError(f"cfg {cfg}: every width must be a whole number of at least 1")
    return EKGImageNetResNet(depth, cfg, num_classes, in_channels, image_size)
