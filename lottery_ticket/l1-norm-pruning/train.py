"""Train the dense network of an L1-norm lottery-ticket experiment (VGG-16, ResNet-56, ResNet-110). Before
the first step its random initialisation is saved as SAVE/init.pth.tar; with --rewind-epoch K the weights
after K epochs too (SAVE/rewind_epochK.pth.tar).

Reference recipe (cifar/lottery-ticket/l1-norm-pruning/main.py): 160 epochs, batch 64, SGD lr 0.1 or 0.01
(x0.1 at 50% and 75%), momentum 0.9, wd 1e-4.
Example: python lottery_ticket/l1-norm-pruning/train.py --dataset cifar10 --arch resnet --depth 56 --lr 0.1 \\
             --save logs/lottery-l1/resnet56/dense
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
