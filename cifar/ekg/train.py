"""Train the network EKG prunes: the CIFAR ResNet with projection shortcuts at the two downsampling blocks and every
width prunable (--arch resnet_ekg, depth 56 by default; 20/32/44/110 too), with cross-entropy. Recipe: 160 epochs,
batch 64, lr 0.1 (x0.1 at 50% and 75%), wd 1e-4 (this repository's CIFAR recipe; EKG's pretrained ResNet-56 is
reported at 93.84% on CIFAR-10 without its recipe).
Example: python cifar/ekg/train.py --dataset cifar10 --depth 56 --save logs/ekg/resnet56/baseline
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
