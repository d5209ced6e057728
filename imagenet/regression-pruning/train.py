"""Train an unpruned ImageNet VGG-16 (no BN, --arch vgg16) or ResNet-50 (--arch resnet50; --shortcut-bias for the
reference's resnet50_official), the networks regression pruning starts from: 90 epochs, batch 256, lr 0.1 (--lr 0.01 for
VGG-16), x0.1 every 30 epochs.

Example: torchrun --nproc_per_node=8 imagenet/regression-pruning/train.py --data /data/imagenet --arch resnet50 \\
             --device cuda --amp --channels-last --loader fast --save logs/imagenet-regression/resnet50
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
