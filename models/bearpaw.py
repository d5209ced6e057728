"""The weight-level CIFAR models (reference.md 2.6): bearpaw pytorch-classification style, no channel
selection, built from per-layer widths.

``vgg11`` .. ``vgg19`` and ``vgg11_bn`` .. ``vgg19_bn``: 3x3 convs **with bias** (+ BN for ``_bn``) and ReLU,
'M' = 2x2 max-pool (4 of them), a FLOP-free 2x2 average pool, then Linear(cfg[-1], classes) (the reference
hard-codes 512, equal to cfg[-1] for the default widths). Conv He fan-in normal with bias 0, BN 1/0,
Linear N(0, 0.01) with bias 0. cfg: the conv widths with 'M' entries, as in models/vgg.py.

``preresnet_wl``: the weight-level folder's pre-activation ResNet. The reference computes the blocks per
stage as n = (depth - 2) // 9 for both block types (bottleneck when depth >= 44, else basic), so depth 110
is a 12-bottleneck-per-stage network; the lottery-ticket copy uses (depth - 2) // 6 (reference bug B11), so
n is an explicit option ``blocks``. cfg: per block [conv1 width, conv2 width] (bottleneck; conv3 gives
4 x planes) or [conv1 width] (basic; conv2 gives planes). Conv He fan-out, BN 1/0, Linear library default.

``densenet_wl``: the weight-level DenseNet as its scripts build it: basic (BN-ReLU-3x3) layers whatever the
depth, n = (depth - 4) / 3 per block, transitions to floor(C // compression_rate) channels. Depth 40 is
DenseNet-40; depth 100 with compression_rate 2 is the 32-layers-per-block network the reference trains as
"DenseNet-100" (bug B10, 4.07M parameters). cfg: the growth (new channels) of each layer.

``densenet_bc``: a true DenseNet-BC (bottleneck BN-ReLU-1x1 to 4k, BN-ReLU-3x3 to k; n = (depth - 4) / 6 per
block; compression 0.5, i.e. compression_rate 2): DenseNet-BC-100 (k = 12) of the paper's Table 6. cfg: per
layer [bottleneck width, growth]. Both DenseNets: conv He fan-out, BN 1/0, Linear library default.

Module names are the reference's (``features.N``, ``layer1.0.conv1``, ``dense1.0.conv1``, ``trans1.conv1``,
``fc``), so its checkpoints load unchanged.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelGroup, ResNetWidthOptions, init_conv_fan_out, stage_planes
from .registry import register_model
from .densenet import DenseNetOptions
from .vgg import DEFAULT_CFG as VGG_CFG
from .vgg import WidthOptions


def _user_error(message):
    return UserError(message)


def _check_widths(cfg, arch):
    bad = [v for v in cfg if v != "M" and (not isinstance(v, int) or v < 1)]
    if bad:
        raise _user_error(f"cfg of {arch} holds {bad[0]!r}: widths must be positive integers")


# ------------------------------------------------------------------------------------------------ VGG
class BearpawVGG(nn.Module):
    def __init__(self, cfg, num_classes, in_channels, batch_norm):
        super().__init__()
        self.cfg = list(cfg)
        self.batch_norm = batch_norm
        layers, self._conv_pos, c = [], [], in_channels
        for pos, v in enumerate(self.cfg):
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            self._conv_pos.append((pos, len(layers)))
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.kernel_size[0] * m.kernel_size[1] * m.in_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_in))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        # the reference's inline AvgPool2d(2) on the 2x2 map (FLOP-free); adaptive so 28x28 inputs work too
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)

    def channel_groups(self):
        groups = []
        for k, (pos, idx) in enumerate(self._conv_pos):
            consumer = f"features.{self._conv_pos[k + 1][1]}" if k + 1 < len(self._conv_pos) else "classifier"
            out = [f"features.{idx}"] + ([f"features.{idx + 1}"] if self.batch_norm else [])
            groups.append(ChannelGroup(pos, f"conv{k + 1}", out=out, inp=[consumer]))
        return groups


def _register_vgg(depth, batch_norm):
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")

    def build(depth, num_classes=10, in_channels=3, image_size=32, cfg=None):
        cfg = list(VGG_CFG[depth]) if cfg is None else list(cfg)
        n_conv, expected = sum(v != "M" for v in cfg), sum(v != "M" for v in VGG_CFG[depth])
        if n_conv != expected:
            raise _user_error(f"cfg has {n_conv} conv widths, {name} needs {expected}")
        _check_widths(cfg, name)
        return BearpawVGG(cfg, num_classes, in_channels, batch_norm)

    build.__doc__ = (f"VGG-{depth}{' with BN' if batch_norm else ''} for CIFAR, weight-level (bearpaw) variant: "
                     f"conv bias, single linear head.")
    register_model(name, depths=(depth,), default_depth=depth, options=WidthOptions)(build)


for _depth in sorted(VGG_CFG):
    for _bn in (False, True):
        _register_vgg(_depth, _bn)

VGG_NAMES = tuple(f"vgg{d}{s}" for d in sorted(VGG_CFG) for s in ("", "_bn"))


# ------------------------------------------------------------------------------------------ PreResNet
class PreBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, widths, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)  # one module called twice: the reference's FLOP count
        self.conv1 = nn.Conv2d(inplanes, widths[0], 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[0])
        self.conv2 = nn.Conv2d(widths[0], planes, 3, padding=1, bias=False)
        self.downsample = _shortcut(inplanes, planes, stride)

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + (x if self.downsample is None else self.downsample(x))


class PreBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, widths, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, widths[0], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[0])
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(widths[1])
        self.conv3 = nn.Conv2d(widths[1], planes * 4, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * 4, stride)

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


def _shortcut(inplanes, outplanes, stride):
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False))  # on the raw x, no BN


class WeightLevelPreResNet(nn.Module):
    def __init__(self, cfg, n, bottleneck, num_classes, in_channels, image_size, base_width=16):
        super().__init__()
        self.cfg, self.n, self.bottleneck = list(cfg), n, bottleneck
        block = PreBottleneck if bottleneck else PreBasicBlock
        per = 2 if bottleneck else 1
        widths = stage_planes(base_width)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        inplanes = widths[0]
        for s, planes in enumerate(widths):
            blocks = []
            for i in range(n):
                b = s * n + i
                stride = 2 if (s > 0 and i == 0) else 1
                blocks.append(block(inplanes, planes, self.cfg[per * b:per * b + per], stride))
                inplanes = planes * block.expansion
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(image_size // 4)
        self.fc = nn.Linear(inplanes, num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))

    def channel_groups(self):
        groups = []
        names = [f"layer{s + 1}.{i}" for s in range(3) for i in range(self.n)]
        for b, name in enumerate(names):
            if self.bottleneck:
                groups += [ChannelGroup(2 * b, f"{name}.conv1", out=[f"{name}.conv1", f"{name}.bn2"],
                                        inp=[f"{name}.conv2"]),
                           ChannelGroup(2 * b + 1, f"{name}.conv2", out=[f"{name}.conv2", f"{name}.bn3"],
                                        inp=[f"{name}.conv3"])]
            else:
                groups.append(ChannelGroup(b, f"{name}.conv1", out=[f"{name}.conv1", f"{name}.bn2"],
                                           inp=[f"{name}.conv2"]))
        return groups


@register_model("preresnet_wl", depths=(20, 56, 110, 164), default_depth=110, options=ResNetWidthOptions)
def preresnet_wl(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, blocks=None, base_width=16):
    """Pre-activation ResNet of the weight-level experiments (bearpaw): no channel selection, blocks per
    stage n = (depth-2)//9 unless ``blocks`` is given, bottleneck from depth 44."""
    n = (depth - 2) // 9 if blocks is None else int(blocks)
    if n < 1:
        raise _user_error(f"blocks {blocks}: a PreResNet needs at least 1 block per stage")
    bottleneck = depth >= 44
    per = 2 if bottleneck else 1
    default = [w for planes in stage_planes(base_width) for _ in range(n) for w in [planes] * per]
    cfg = default if cfg is None else list(cfg)
    if len(cfg) != 3 * n * per:
        raise _user_error(f"cfg has {len(cfg)} entries, preresnet_wl-{depth} with {n} blocks per stage needs "
                          f"{3 * n * per}")
    _check_widths(cfg, "preresnet_wl")
    return WeightLevelPreResNet(cfg, n, bottleneck, num_classes, in_channels, image_size, base_width)


# ------------------------------------------------------------------------------------------- DenseNet
class DenseBasic(nn.Module):
    def __init__(self, inplanes, growth, drop_rate):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return torch.cat((x, out), 1)


class DenseBottleneck(nn.Module):
    def __init__(self, inplanes, width, growth, drop_rate):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return torch.cat((x, out), 1)


class DenseTransition(nn.Module):
    def __init__(self, inplanes, outplanes):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, outplanes, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return F.avg_pool2d(self.conv1(self.relu(self.bn1(x))), 2)  # functional: FLOP-free, as the reference


class WeightLevelDenseNet(nn.Module):
    """layers: per dense layer, (growth,) for basic layers or (bottleneck width, growth) for bottlenecks."""

    def __init__(self, cfg, n, bottleneck, num_classes, in_channels, image_size, growth_rate, compression_rate,
                 drop_rate):
        super().__init__()
        self.cfg, self.n, self.bottleneck = list(cfg), n, bottleneck
        per = 2 if bottleneck else 1
        inplanes = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False)
        for b in range(3):
            layers = []
            for i in range(n):
                w = self.cfg[per * (b * n + i):per * (b * n + i) + per]
                if bottleneck:
                    layers.append(DenseBottleneck(inplanes, w[0], w[1], drop_rate))
                else:
                    layers.append(DenseBasic(inplanes, w[0], drop_rate))
                inplanes += w[-1]
            setattr(self, f"dense{b + 1}", nn.Sequential(*layers))
            if b < 2:
                out = int(math.floor(inplanes // compression_rate))
                if out < 1:
                    raise _user_error(f"compression_rate {compression_rate} leaves transition {b + 1} no channels")
                setattr(self, f"trans{b + 1}", DenseTransition(inplanes, out))
                inplanes = out
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(image_size // 4)
        self.fc = nn.Linear(inplanes, num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)

    def forward(self, x):
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.dense3(self.trans2(self.dense2(x)))
        x = self.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))

    def channel_groups(self):
        """Bottleneck widths only: a layer's new channels sit at an offset inside every later concatenation,
        which a ChannelGroup cannot describe (basic DenseNets therefore have no channel groups)."""
        if not self.bottleneck:
            return []
        names = [f"dense{b + 1}.{i}" for b in range(3) for i in range(self.n)]
        return [ChannelGroup(2 * k, f"{u}.conv1", out=[f"{u}.conv1", f"{u}.bn2"], inp=[f"{u}.conv2"])
                for k, u in enumerate(names)]


def _densenet(arch, depth, n, bottleneck, cfg, growth_rate, compression_rate, drop_rate, num_classes,
              in_channels, image_size):
    if growth_rate < 1 or compression_rate <= 0:
        raise _user_error(f"{arch}: growth_rate must be >= 1 and compression_rate > 0")
    per = 2 if bottleneck else 1
    default = ([4 * growth_rate, growth_rate] if bottleneck else [growth_rate]) * (3 * n)
    cfg = default if cfg is None else list(cfg)
    if len(cfg) != 3 * n * per:
        raise _user_error(f"cfg has {len(cfg)} entries, {arch}-{depth} needs {3 * n * per}")
    _check_widths(cfg, arch)
    return WeightLevelDenseNet(cfg, n, bottleneck, num_classes, in_channels, image_size, growth_rate,
                               compression_rate, drop_rate)


@register_model("densenet_wl", depths=(40, 100), default_depth=40, options=DenseNetOptions)
def densenet_wl(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, growth_rate=12,
                compression_rate=1, drop_rate=0.0):
    """DenseNet as the weight-level scripts build it: basic layers at every depth, (depth-4)/3 per block
    (depth 100 with compression_rate 2 is the reference's 'DenseNet-100', bug B10)."""
    return _densenet("densenet_wl", depth, (depth - 4) // 3, False, cfg, growth_rate, compression_rate, drop_rate,
                     num_classes, in_channels, image_size)


@register_model("densenet_bc", depths=(40, 100), default_depth=100, options=DenseNetOptions)
def densenet_bc(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, growth_rate=12,
                compression_rate=2, drop_rate=0.0):
    """DenseNet-BC: bottleneck layers (1x1 to 4k, 3x3 to k), (depth-4)/6 per block, transitions halve the
    channels (DenseNet-BC-100, k=12, of the paper's Table 6)."""
    return _densenet("densenet_bc", depth, (depth - 4) // 6, True, cfg, growth_rate, compression_rate, drop_rate,
                     num_classes, in_channels, image_size)
