"""Sparsity training of network slimming's ImageNet VGG-11-BN (reference: main.py --arch vgg11_bn --s 0.00001):
s * sign(gamma) added to every BatchNorm2d and BatchNorm1d gamma gradient (on by default here; --no-sparsity-regularization
trains a plain baseline), 90 epochs, batch 256, lr 0.1 (x0.1 every 30), momentum 0.9, wd 1e-4.

Example: torchrun --nproc_per_node=8 imagenet/network-slimming/train.py --data /data/imagenet --arch vgg11_bn \\
             --s 0.00001 --device cuda --amp --channels-last --loader fast --save logs/imagenet-slimming/vgg11
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
