"""Train the unpruned pre-activation ResNet-50 of Sparse Structure Selection (sss=False in the authors' code) with its
recipe: Nesterov SGD, lr 0.1, wd 1e-4, batch 128, 100 epochs, x0.1 at 30, 60 and 90, SSS's augmentation
(--augment sss).

Example: torchrun --nproc_per_node=4 imagenet/sparse-structure-selection/train.py --data /data/imagenet \\
             --device cuda --amp --channels-last --save logs/imagenet-sss/resnet50
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
