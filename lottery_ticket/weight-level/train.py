"""Train the dense network of a weight-level lottery-ticket experiment. Before the first step its random
initialisation is saved as SAVE/init.pth.tar (what the winning ticket is rewound to); with --rewind-epoch K
the weights after K epochs are saved too (SAVE/rewind_epochK.pth.tar, for late rewinding).

Reference recipe (cifar/lottery-ticket/weight-level/cifar.py): vgg16_bn (or the CIFAR ResNet-50, --arch
resnet_wl --depth 50), 160 epochs, batch 64, SGD lr 0.1 or 0.01 (x0.1 at 50% and 75%), momentum 0.9, wd 1e-4.
Example: python lottery_ticket/weight-level/train.py --dataset cifar10 --arch vgg16_bn --depth 16 --lr 0.1 \\
             --save logs/lottery/vgg16_bn/dense
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
