"""ImageNet model zoo of the reference (reference.md 2.7-2.11), built from per-layer widths like the CIFAR zoo.

* ``imagenet_resnet``: torchvision-layout ResNet (basic blocks for 18/34, bottlenecks for 50/101/152) whose
  parameter names match torchvision's, so its state_dicts load unchanged. Basic blocks: cfg = inner width of
  each block (L1-norm ResNet-34-A/B). Bottlenecks: cfg = [a, b, c] per block = conv1 input, conv1 output, conv2
  output (regression pruning's ResNet-50-2x and ThiNet-30/50/70); a differs from the block input only with
  ``select_input`` (a channel selection in front of conv1, ResNet-50-2x).
* ``imagenet_vgg``: VGG without BN as in regression pruning / ThiNet (``head`` 'fc' = the 4096-4096 head,
  'gap' = global average pool -> Linear), or torchvision's vgg*_bn layout with ``batch_norm``.
* ``imagenet_vgg_slim``: network slimming's VGG-11-BN (cfg = conv widths and 'M's, then the two FC widths).
* ``imagenet_preresnet``: the pre-activation ResNet of Sparse Structure Selection, units per stage as options.

Every model works at any input size >= 32 px; at 224 its FLOPs (utils.flops.count_flops) are the reference's.
``PRESETS`` names the paper's networks (``create_preset``).
"""
import copy
import json
import os
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, ChannelSelection, ResNetWidthOptions, check_selection
from .registry import create_model, register_model, scale_cfg
from .vgg import WidthOptions

STAGE_WIDTHS = (64, 128, 256, 512)
RESNET_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
                 101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def final_map_size(image_size, halvings=5):
    """Side of the last feature map after ``halvings`` stride-2 layers that round up (convs with padding
    k//2, the stem's padded max-pool): 7 at 224, 2 at 64, 1 at 32."""
    for _ in range(halvings):
        image_size = (image_size + 1) // 2
    return image_size


def _linear(in_features, out_features):
    """A Linear left uninitialised (on the current default device), for layers whose init is replaced anyway:
    the library's init of VGG's 100M-weight head costs as long as ours."""
    return nn.utils.skip_init(nn.Linear, in_features, out_features, device=torch.empty(0).device)


def _check_len(cfg, n, label):
    if len(cfg) != n:
        raise UserError(f"cfg has {len(cfg)} entries, {label} needs {n}")


# ------------------------------------------------------------------------------------------------ ResNet
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, width, stride, shortcut_bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(inplanes, planes, stride, shortcut_bias)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 (a -> b), 3x3 (b -> c, the stride), 1x1 (c -> 4 * planes); an optional channel selection gives conv1
    ``a`` of the block's input channels while the shortcut reads all of them (ResNet-50-2x)."""
    expansion = 4

    def __init__(self, inplanes, planes, cfg, stride, shortcut_bias=False, select=False, selected=None):
        super().__init__()
        a, b, c = cfg
        if select:
            self.select = ChannelSelection(inplanes, selected if selected is not None else range(a))
        self.conv1 = nn.Conv2d(a, b, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(b)
        self.conv2 = nn.Conv2d(b, c, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(inplanes, planes * 4, stride, shortcut_bias)

    def forward(self, x):
        out = self.select(x) if hasattr(self, "select") else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _projection(inplanes, outplanes, stride, bias):
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=bias), nn.BatchNorm2d(outplanes))


class ImageNetResNet(nn.Module):
    """conv 7x7/2 - BN - ReLU - maxpool 3/2 - four stages (64/128/256/512 x expansion) - AvgPool2d - fc."""

    def __init__(self, depth, cfg, num_classes, in_channels, image_size, shortcut_bias=False,
                 select_input=False, selected=None, base_width=64):
        super().__init__()
        kind, layers = RESNET_BLOCKS[depth]
        self.kind, self.cfg = kind, list(cfg)
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._blocks = []
        inplanes, b = base_width, 0
        for s, (planes, n) in enumerate(zip(stage_widths(base_width), layers)):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                if kind == "basic":
                    blocks.append(BasicBlock(inplanes, planes, self.cfg[b], stride, shortcut_bias))
                    inplanes = planes
                else:
                    bcfg = self.cfg[3 * b:3 * b + 3]
                    if select_input:
                        check_selection(3 * b, bcfg[0], inplanes, selected[b] if selected else None)
                    elif bcfg[0] != inplanes:
                        raise UserError(f"cfg entry {3 * b} is {bcfg[0]}: block {b}'s conv1 reads the block input "
                                        f"({inplanes} channels) unless select_input is on")
                    blocks.append(Bottleneck(inplanes, planes, bcfg, stride, shortcut_bias, select_input,
                                             selected[b] if selected else None))
                    inplanes = planes * 4
                self._blocks.append(f"layer{s + 1}.{i}")
                b += 1
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        # A module (counted in FLOPs), as the reference's AvgPool2d(7, stride=1); sized so any input works.
        self.avgpool = nn.AvgPool2d(final_map_size(image_size), stride=1)
        # Reads the last stage's full width: the reference's Linear(cfg[-1], ...) (bug B13) only worked because
        # ResNet-34's last block was never pruned.
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He fan-out; the shortcut bias keeps the library default (2.10)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))

    def channel_groups(self):
        if self.kind == "basic":
            return [ChannelGroup(j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"])
                    for j, b in enumerate(self._blocks)]
        groups = []
        for j, b in enumerate(self._blocks):
            if hasattr(self.get_submodule(b), "select"):
                # no BN in front of the selection: narrowing it only narrows conv1's input
                groups.append(ChannelGroup(3 * j, f"{b}.select", select=[f"{b}.select"], inp=[f"{b}.conv1"]))
            groups += [ChannelGroup(3 * j + 1, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"]),
                       ChannelGroup(3 * j + 2, f"{b}.conv2", out=[f"{b}.conv2", f"{b}.bn2"], inp=[f"{b}.conv3"])]
        return groups


def stage_widths(base_width):
    """The four stages' widths: 64/128/256/512 at the default base width of 64."""
    return tuple(w * base_width // 64 for w in STAGE_WIDTHS)


def resnet_default_cfg(depth, base_width=64):
    kind, layers = RESNET_BLOCKS[depth]
    cfg = []
    for s, (planes, n) in enumerate(zip(stage_widths(base_width), layers)):
        if kind == "basic":
            cfg += [planes] * n
        else:
            first_in = base_width if s == 0 else planes * 2  # the previous stage's output, 4 * planes / 2
            cfg += [first_in, planes, planes] + [planes * 4, planes, planes] * (n - 1)
    return cfg


@dataclass
class ImageNetWidthOptions(ResNetWidthOptions):
    STEM: ClassVar[int] = 64


@dataclass
class ImageNetResNetOptions(ImageNetWidthOptions):
    shortcut_bias: bool = field(default=False, metadata={
        "help": "projection-shortcut convs with a bias, as the reference's regression-pruning / ThiNet ResNet-50 "
                "(resnet50_official); default: torchvision's layout"})
    select_input: bool = field(default=False, metadata={
        "help": "bottleneck ResNets: a channel selection in front of each block's conv1, whose cfg entry a may then "
                "be narrower than the block input (ResNet-50-2x)"})

    def kwargs(self, arch, depth):
        out = {}
        if self.width != 1.0:
            base = self.stem()
            out.update(base_width=base, cfg=resnet_default_cfg(depth, base))
        if self.shortcut_bias:
            out["shortcut_bias"] = True
        if self.select_input:
            out["select_input"] = True
        return out


@register_model("imagenet_resnet", depths=tuple(RESNET_BLOCKS), default_depth=50, options=ImageNetResNetOptions,
                family="imagenet")
def imagenet_resnet(depth, num_classes=1000, in_channels=3, image_size=224, cfg=None, shortcut_bias=False,
                    select_input=False, selected=None, base_width=64):
    """ImageNet ResNet, torchvision names; per-block widths (L1-norm ResNet-34, regression / ThiNet ResNet-50)."""
    kind, layers = RESNET_BLOCKS[depth]
    if base_width < 1:
        raise UserError(f"base_width {base_width}: must be at least 1")
    cfg = resnet_default_cfg(depth, base_width) if cfg is None else cfg
    _check_len(cfg, sum(layers) * (1 if kind == "basic" else 3), f"ResNet-{depth}")
    if (select_input or selected is not None) and kind == "basic":
        raise UserError(f"select_input applies to the bottleneck ResNets (50/101/152), not ResNet-{depth}")
    if selected is not None:
        if not select_input:
            raise UserError("selected channels need select_input")
        _check_len(selected, sum(layers), f"the selected lists of ResNet-{depth} (one per block)")
    return ImageNetResNet(depth, cfg, num_classes, in_channels, image_size, shortcut_bias, select_input, selected,
                          base_width)


def resnet50_2x_selected():
    """The 16 input-channel selections of ResNet-50-2x (the reference's models/filter.pkl, reference.md App. A)."""
    with open(os.path.join(DATA_DIR, "resnet50_2x_selection.json")) as f:
        return json.load(f)


# -------------------------------------------------------------------------------------------------- VGG
VGG_CONVS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _features(cfg, in_channels, batch_norm):
    """(features Sequential, [(cfg position, index of the conv)], last width) for convs and 'M' max-pools."""
    layers, convs, c = [], [], in_channels
    for pos, v in enumerate(cfg):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if not isinstance(v, int) or v < 1:
            raise UserError(f"cfg entry {pos} is {v!r}: a conv width must be a positive int (or 'M')")
        convs.append((pos, len(layers)))
        layers.append(nn.Conv2d(c, v, 3, padding=1))  # with bias in every ImageNet VGG (2.8, 2.9, torchvision)
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c = v
    return nn.Sequential(*layers), convs, c


def _check_convs(cfg, depth):
    n = sum(1 for v in cfg if v != "M")
    if n != sum(1 for v in VGG_CONVS[depth] if v != "M"):
        raise UserError(f"cfg has {n} conv widths, VGG-{depth} needs {sum(1 for v in VGG_CONVS[depth] if v != 'M')}")


def _conv_groups(convs, last_consumer, spatial, bn):
    """Each conv's channels: the conv (and its BN) produce them, the next conv or the head reads them."""
    groups = []
    for k, (pos, idx) in enumerate(convs):
        last = k + 1 == len(convs)
        out = [f"features.{idx}"] + ([f"features.{idx + 1}"] if bn else [])
        groups.append(ChannelGroup(pos, f"conv{k + 1}", out=out,
                                   inp=[last_consumer if last else f"features.{convs[k + 1][1]}"],
                                   inp_spatial=spatial if last else 1))
    return groups


class ImageNetVGG(nn.Module):
    """Convs with bias (+ BN with ``batch_norm``), ReLU, 'M' max-pools; head 'fc' = torchvision's avgpool (7x7) -
    4096 - 4096 - classes with dropout, head 'gap' = global average pool - Linear (ThiNet-GAP / -Tiny)."""

    def __init__(self, cfg, num_classes, in_channels, head="fc", batch_norm=False):
        super().__init__()
        self.cfg, self.head, self.batch_norm = list(cfg), head, batch_norm
        self.features, self._convs, c = _features(self.cfg, in_channels, batch_norm)
        if head == "fc":
            # FLOP-free and parameter-free (as torchvision's): identity on the 7x7 map at 224, any size works
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                _linear(c * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                _linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                _linear(4096, num_classes))
        else:
            self.classifier = _linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        if self.head == "fc":
            return self.classifier(self.avgpool(x).flatten(1))
        # the reference's inline AvgPool2d(14, 2) on the 14x14 map (FLOP-free there too), for any map size
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def channel_groups(self):
        if self.head == "fc":
            return _conv_groups(self._convs, "classifier.0", 49, self.batch_norm)
        return _conv_groups(self._convs, "classifier", 1, self.batch_norm)


@dataclass
class ImageNetVGGOptions:
    head: str = field(default="fc", metadata={
        "help": "'fc': the 4096-4096 head on the 7x7 map (VGG-16, regression pruning, ThiNet-Conv); 'gap': global "
                "average pool and one Linear (ThiNet-GAP / -Tiny; the default cfg then drops the last max-pool)",
        "choices": ["fc", "gap"]})
    batch_norm: bool = field(default=False, metadata={
        "help": "BatchNorm after every conv (torchvision's vgg*_bn layout)"})

    def kwargs(self, arch, depth):
        out = {} if self.head == "fc" else {"head": self.head}
        return {**out, "batch_norm": True} if self.batch_norm else out


@register_model("imagenet_vgg", depths=(11, 13, 16, 19), default_depth=16, options=ImageNetVGGOptions,
                family="imagenet")
def imagenet_vgg(depth, num_classes=1000, in_channels=3, image_size=224, cfg=None, head="fc", batch_norm=False):
    """ImageNet VGG without BN (regression pruning, ThiNet) or torchvision's vgg*_bn; torchvision names."""
    if head not in ("fc", "gap"):
        raise UserError(f"head {head!r}: choose 'fc' or 'gap'")
    if cfg is None:
        cfg = list(VGG_CONVS[depth]) if head == "fc" else list(VGG_CONVS[depth][:-1])
    _check_convs(cfg, depth)
    return ImageNetVGG(cfg, num_classes, in_channels, head, batch_norm)


class SlimmingVGG(nn.Module):
    """Network slimming's ImageNet VGG (``slimmingvgg``): conv(bias)-BN-ReLU features, then
    Linear(c*7*7, fc1)-BN1d-ReLU-Linear(fc1, fc2)-BN1d-ReLU-Linear(fc2, classes)."""

    def __init__(self, cfg, num_classes, in_channels):
        super().__init__()
        self.cfg = list(cfg)
        self.features, self._convs, c = _features(self.cfg[:-2], in_channels, batch_norm=True)
        fc1, fc2 = self.cfg[-2:]
        # the reference flattens the 7x7 map of a 224 input directly; identity there, and lets small inputs in
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            _linear(c * 7 * 7, fc1), nn.BatchNorm1d(fc1), nn.ReLU(inplace=True),
            _linear(fc1, fc2), nn.BatchNorm1d(fc2), nn.ReLU(inplace=True),
            _linear(fc2, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.constant_(m.weight, 0.5)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))

    def channel_groups(self):
        n = len(self.cfg)
        return _conv_groups(self._convs, "classifier.0", 49, bn=True) + [
            ChannelGroup(n - 2, "fc1", out=["classifier.0", "classifier.1"], inp=["classifier.3"]),
            ChannelGroup(n - 1, "fc2", out=["classifier.3", "classifier.4"], inp=["classifier.6"])]


class SlimVGGOptions(WidthOptions):
    """--width for slimming's VGG: every conv and hidden FC width times the factor (CPU-scale runs)."""

    def kwargs(self, arch, depth):
        return {} if self.width == 1.0 else {"cfg": scale_cfg(VGG_CONVS[depth] + [4096, 4096], self.width)}


@register_model("imagenet_vgg_slim", depths=(11, 13, 16, 19), default_depth=11, family="imagenet",
                options=SlimVGGOptions)
def imagenet_vgg_slim(depth, num_classes=1000, in_channels=3, image_size=224, cfg=None):
    """ImageNet VGG-BN of network slimming; cfg = conv widths and 'M's, then the two hidden FC widths."""
    cfg = list(VGG_CONVS[depth]) + [4096, 4096] if cfg is None else cfg
    if len(cfg) < 3 or not all(isinstance(v, int) and v >= 1 for v in cfg[-2:]):
        raise UserError("cfg must end with the two hidden FC widths (positive ints)")
    _check_convs(cfg[:-2], depth)
    return SlimmingVGG(cfg, num_classes, in_channels)


# ---------------------------------------------------------------------------- Sparse Structure Selection
# units per stage, (a, b): a = units with a residual branch, b = whether the first (projection) unit keeps its
# branch; with b False a shortcut-only unit (BN - ReLU - 1x1 projection) comes first (reference.md 2.11)
SSS_UNITS = {50: [[3, True], [4, True], [6, True], [3, True]],
             41: [[0, False], [4, True], [6, True], [3, True]],
             32: [[1, False], [4, True], [4, True], [1, True]],
             26: [[0, False], [2, False], [5, False], [1, True]]}


class PreActUnit(nn.Module):
    """BN1 - ReLU (act) - [conv1x1 - BN2 - ReLU - conv3x3 (stride) - BN3 - ReLU - conv1x1] (x lambda) + shortcut;
    the projection shortcut reads act, the identity one x. ``widths`` None: shortcut only."""
    branch_end = "conv3"  # the branch's last layer, into which a block lambda folds

    def __init__(self, inplanes, outplanes, widths, stride, projection, block_lambda=False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=False)  # act feeds two paths
        self.shortcut = nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False) if projection else None
        self.branch = widths is not None
        if self.branch:
            b, c = widths
            self.conv1 = nn.Conv2d(inplanes, b, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(b)
            self.conv2 = nn.Conv2d(b, c, 3, stride=stride, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(c)
            self.conv3 = nn.Conv2d(c, outplanes, 1, bias=False)
            if block_lambda:
                # SSS's scaling factor of the residual branch, a 1-element vector so that torch.cat collects them
                self.lambda_ = nn.Parameter(torch.ones(1))

    def forward(self, x):
        act = self.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(act)
        if not self.branch:
            return short
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if hasattr(self, "lambda_"):
            out = out * self.lambda_.to(out.dtype)  # bf16 autocast stays bf16
        return out + short


class SSSPreResNet(nn.Module):
    """Stem conv 7x7/2 - BN - ReLU - maxpool, four stages of pre-activation bottleneck units (256/512/1024/2048),
    BN - ReLU - average pool - fc (TuSimple's symbol/resnet.py, depth 50)."""

    def __init__(self, units, cfg, num_classes, in_channels, image_size, block_lambda=False):
        super().__init__()
        self.cfg, self.units = list(cfg), units
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._branches = []
        inplanes, w = 64, 0
        for s, (n, keep_first) in enumerate(units):
            out, stride = STAGE_WIDTHS[s] * 4, (1 if s == 0 else 2)
            blocks = []
            if not keep_first:
                blocks.append(PreActUnit(inplanes, out, None, stride, True))
            for i in range(n):
                first = keep_first and i == 0
                name = f"layer{s + 1}.{len(blocks)}"
                blocks.append(PreActUnit(inplanes if first else out, out, self.cfg[w:w + 2],
                                         stride if first else 1, first, block_lambda))
                self._branches.append(name)
                w += 2
            inplanes = out
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(inplanes)
        # a module like the PyTorch ResNets' (MXNet's global pool): counted the same way in FLOPs
        self.avgpool = nn.AvgPool2d(final_map_size(image_size), stride=1)
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):  # MXNet Xavier(gaussian, 'in', 2) = He fan-in normal
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))

    def block_names(self):
        """The units with a residual branch."""
        return list(self._branches)

    def stages(self):
        """Per stage, its units' module names in order (Sparse Structure Selection's view)."""
        return [[f"layer{s + 1}.{i}" for i in range(len(getattr(self, f"layer{s + 1}")))] for s in range(4)]

    def branch_cfg(self):
        """(cfg entries of each branch unit, in block_names order; entries after them)."""
        return [self.cfg[2 * j:2 * j + 2] for j in range(len(self._branches))], []

    def units_depth(self, depth, units):
        return 3 * sum(n for n, _ in units) + 2  # SSS's names: ResNet-41 has 13 branch units

    def channel_groups(self):
        groups = []
        for j, u in enumerate(self._branches):
            groups += [ChannelGroup(2 * j, f"{u}.conv1", out=[f"{u}.conv1", f"{u}.bn2"], inp=[f"{u}.conv2"]),
                       ChannelGroup(2 * j + 1, f"{u}.conv2", out=[f"{u}.conv2", f"{u}.bn3"], inp=[f"{u}.conv3"])]
        return groups


@dataclass
class SSSPreResNetOptions:
    block_lambda: bool = field(default=False, metadata={
        "help": "a learnable scalar per unit scaling its residual branch (Sparse Structure Selection's lambda)"})

    def kwargs(self, arch, depth):
        return {"block_lambda": True} if self.block_lambda else {}


# any number of branch units (0..16) makes a depth: SSS can remove any of them
@register_model("imagenet_preresnet", depths=tuple(3 * k + 2 for k in range(17)), default_depth=50,
                options=SSSPreResNetOptions, family="imagenet")
def imagenet_preresnet(depth, num_classes=1000, in_channels=3, image_size=224, cfg=None, units=None,
                       block_lambda=False):
    """Pre-activation bottleneck ResNet of Sparse Structure Selection (units per stage; cfg = 2 widths per unit)."""
    if units is None and depth not in SSS_UNITS:
        raise UserError(f"depth {depth} is not one of the paper's networks ({', '.join(map(str, sorted(SSS_UNITS)))}): "
                        f"give units")
    units = copy.deepcopy(SSS_UNITS[depth] if units is None else units)
    if len(units) != 4 or not all(len(u) == 2 and int(u[0]) >= 0 for u in units):
        raise UserError(f"units {units!r}: four [number of units, first unit keeps its branch] pairs")
    units = [[int(n), bool(keep)] for n, keep in units]
    if any(keep and n == 0 for n, keep in units):
        raise UserError(f"units {units!r}: a stage whose first unit keeps its branch has at least that unit")
    if 3 * sum(n for n, _ in units) + 2 != depth:
        raise UserError(f"units {units!r} make depth {3 * sum(n for n, _ in units) + 2}, not {depth}")
    if cfg is None:
        cfg = [w for s, (n, _) in enumerate(units) for _ in range(n) for w in (STAGE_WIDTHS[s],) * 2]
    _check_len(cfg, 2 * sum(n for n, _ in units), f"units {units}")
    return SSSPreResNet(units, cfg, num_classes, in_channels, image_size, block_lambda)


# ------------------------------------------------------------------------------------------------ presets
def _thinet_cfg(widths):
    """ThiNet-30/50/70: every block's conv1 and conv2 outputs are the stage's width (reference.md 2.10)."""
    cfg = []
    for s, n in enumerate(RESNET_BLOCKS[50][1]):
        planes = STAGE_WIDTHS[s]
        for i in range(n):
            cfg += [(64 if s == 0 else planes * 2) if i == 0 else planes * 4, widths[s], widths[s]]
    return cfg


RESNET50_2X_CFG = [35, 64, 55, 101, 51, 39, 97, 50, 37, 144, 128, 106, 205, 105, 72, 198, 105, 72, 288, 128, 110,
                   278, 256, 225, 418, 209, 147, 407, 204, 158, 423, 212, 155, 412, 211, 148, 595, 256, 213,
                   606, 512, 433, 1222, 512, 437, 1147, 512, 440]


def _preset_table():
    res34 = resnet_default_cfg(34)
    return {
        # L1-norm pruning (reference.md 4.7)
        "resnet34": ("imagenet_resnet", 34, res34, {}),
        "resnet34-A": ("imagenet_resnet", 34, [64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256,
                                               512, 512, 512], {}),
        "resnet34-B": ("imagenet_resnet", 34, [64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256,
                                               512, 512, 512], {}),
        # regression pruning and ThiNet (2.9, 2.10)
        "resnet50_official": ("imagenet_resnet", 50, resnet_default_cfg(50), {"shortcut_bias": True}),
        "resnet50-2x": ("imagenet_resnet", 50, RESNET50_2X_CFG,
                        {"shortcut_bias": True, "select_input": True, "selected": resnet50_2x_selected()}),
        "thinet-30": ("imagenet_resnet", 50, _thinet_cfg((19, 38, 76, 153)), {"shortcut_bias": True}),
        "thinet-50": ("imagenet_resnet", 50, _thinet_cfg((32, 64, 128, 256)), {"shortcut_bias": True}),
        "thinet-70": ("imagenet_resnet", 50, _thinet_cfg((44, 89, 179, 358)), {"shortcut_bias": True}),
        "vgg_official": ("imagenet_vgg", 16, list(VGG_CONVS[16]), {}),
        "vgg-5x": ("imagenet_vgg", 16, [24, 22, "M", 41, 51, "M", 108, 89, 111, "M", 184, 276, 228, "M",
                                        512, 512, 512, "M"], {}),
        "thinet-conv": ("imagenet_vgg", 16, [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M",
                                             512, 512, 512, "M"], {}),
        "thinet-gap": ("imagenet_vgg", 16, [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M",
                                            512, 512, 512], {"head": "gap"}),
        "thinet-tiny": ("imagenet_vgg", 16, [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M",
                                             128, 128, 256], {"head": "gap"}),
        # network slimming (2.8)
        "slimming-vgg11": ("imagenet_vgg_slim", 11, list(VGG_CONVS[11]) + [4096, 4096], {}),
        # Sparse Structure Selection (2.11)
        **{f"sss-resnet{d}": ("imagenet_preresnet", d, None, {"units": SSS_UNITS[d]}) for d in (26, 32, 41, 50)},
    }


# {name: (arch, depth, cfg, options)} of the networks the paper trains; pass through create_preset
PRESETS = _preset_table()


def create_preset(name, num_classes=1000, in_channels=3, image_size=224, **options):
    """The paper's network ``name`` (a key of PRESETS); ``options`` add to or override the preset's."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    arch, depth, cfg, preset_options = copy.deepcopy(PRESETS[name])
    return create_model(arch, depth, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        cfg=cfg, **{**preset_options, **options})
