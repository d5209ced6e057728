"""Prune a sparsity-trained ImageNet VGG-11-BN by one global threshold on |gamma| over every BatchNorm2d and
BatchNorm1d (reference: prune.py --percent 0.5). Writes SAVE/pruned.pth.tar (the physically pruned network),
SAVE/masked.pth.tar (the full network with the pruned channels zeroed: the reference's mask implementation) and
SAVE/prune.json (cfg, threshold, params, FLOPs, accuracy of the masked and the pruned network).

Example: python imagenet/network-slimming/prune.py --data /data/imagenet --percent 0.5 \\
             --model logs/imagenet-slimming/vgg11/checkpoint.pth.tar --save logs/imagenet-slimming/vgg11/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
