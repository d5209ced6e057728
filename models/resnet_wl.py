"""The weight-level folders' CIFAR ResNet (bearpaw pytorch-classification ``resnet``; reference.md 2.6),
the lottery-ticket experiments' unstructured "ResNet-50".

Basic blocks only, depth 6n+2 (n = (depth-2)//6 blocks per stage, so depth 50 -> 8 per stage),
post-activation (conv-BN-ReLU-conv-BN, add, ReLU), stage widths 16/32/64, and where the shape changes the
"option B" shortcut: 1x1 conv (stride 2, no bias) + BN. The reference switches to bottleneck blocks from
depth 54 on with a wrong block count (its bug B12), so only the basic-block depths are offered.
cfg: 3n ints, the output width of each block's first conv (default [16]*n + [32]*n + [64]*n); block
outputs and shortcuts keep 16/32/64. Module names are the reference's, so its state_dicts load unchanged.
Init as the reference: convs He fan-out normal, BN gamma 1 / beta 0, Linear PyTorch's default.
"""
import torch.nn as nn

from .layers import ChannelGroup, init_conv_fan_out
from .registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetWL(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size):
        super().__init__()
        n = (depth - 2) // 6
        self.cfg, self.n = list(cfg), n
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 16
        for s, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(inplanes, planes, self.cfg[s * n + i], 2 if (s > 0 and i == 0) else 1))
                inplanes = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(image_size // 4)  # the reference's AvgPool2d(8) at 32x32
        self.fc = nn.Linear(64, num_classes)
        init_conv_fan_out(self, bn_gamma=1.0)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def block_names(self):
        return [f"layer{s + 1}.{i}" for s in range(3) for i in range(self.n)]

    def channel_groups(self):
        return [ChannelGroup(j, f"{b}.conv1", out=[f"{b}.conv1", f"{b}.bn1"], inp=[f"{b}.conv2"])
                for j, b in enumerate(self.block_names())]


@register_model("resnet_wl", depths=(20, 32, 44, 50), default_depth=50)
def resnet_wl(depth, num_classes=10, in_channels=3, image_size=32, cfg=None):
    """CIFAR ResNet of the weight-level/lottery folders (bearpaw): basic blocks, 1x1 conv+BN shortcut."""
    n = (depth - 2) // 6
    cfg = [16] * n + [32] * n + [64] * n if cfg is None else cfg
    if len(cfg) != 3 * n:
        from utils.errors import UserError
        raise UserError(f"cfg has {len(cfg)} entries, ResNet-{depth} (resnet_wl) needs {3 * n}")
    return ResNetWL(depth, cfg, num_classes, in_channels, image_size)
