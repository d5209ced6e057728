"""Train the unpruned baseline for regression pruning on CIFAR (VGG, ResNet): the same networks and recipe as the
L1-norm baseline (160 epochs, batch 64, SGD lr 0.1 x0.1 at 50% and 75%, momentum 0.9, wd 1e-4).

Example: python cifar/regression-pruning/train.py --dataset cifar10 --arch resnet --depth 56 \\
             --save logs/regression/resnet56/baseline
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
