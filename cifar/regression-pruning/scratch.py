"""Train a regression-pruned architecture from scratch: scratch-E (--budget E, the baseline's 160 epochs) or
scratch-B (--budget B, int(160 x FLOPs(base) / FLOPs(pruned)) epochs, LR drops at 50% and 75%).

Example: python cifar/regression-pruning/scratch.py --scratch logs/regression/vgg16/pruned/pruned.pth.tar \\
             --budget B --dataset cifar10 --save logs/regression/vgg16/scratch-B
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
