"""Train the network EKG prunes on ImageNet: torchvision's ResNet (--depth 18, 34, 50, 101 or 152; default 50) with
every width prunable, cross-entropy, the reference's ImageNet recipe (90 epochs, batch 256, SGD lr 0.1 x0.1 every 30
epochs, momentum 0.9, wd 1e-4). The parameter names are torchvision's: its pretrained weights (a bare state_dict) go
to prune.py --pretrained directly, with --arch resnet50.

Example: torchrun --nproc_per_node=8 imagenet/ekg/train.py --data /data/imagenet --depth 50 \\
             --device cuda --amp --channels-last --loader fast --save logs/imagenet-ekg/resnet50/baseline
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
