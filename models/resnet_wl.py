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

from .registry import register_model
from .resnet import Block, CifarResNet, block_cfg


class BasicBlock(Block):
    """bearpaw's block: where the shape changes, a 1x1 conv (stride 2, no bias) + BN shortcut."""

    def __init__(self, inplanes, planes, width, stride):
        super().__init__(inplanes, planes, width, stride)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)


@register_model("resnet_wl", depths=(20, 32, 44, 50), default_depth=50)
def resnet_wl(depth, num_classes=10, in_channels=3, image_size=32, cfg=None):
    """CIFAR ResNet of the weight-level/lottery folders (bearpaw): basic blocks, 1x1 conv+BN shortcut."""
    cfg = block_cfg(depth, cfg, f"ResNet-{depth} (resnet_wl)")
    return CifarResNet(depth, cfg, num_classes, in_channels, image_size, BasicBlock)
