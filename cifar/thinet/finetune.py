"""Fine-tune a ThiNet-pruned network with its inherited (rescaled) weights: 40 epochs at a constant lr 0.001 (the
paper's CIFAR fine-tuning convention of this repository; ThiNet's own ImageNet recipe is in imagenet/thinet).

Example: python cifar/thinet/finetune.py --refine logs/thinet/vgg16/pruned/pruned.pth.tar --dataset cifar10 \\
             --save logs/thinet/vgg16/finetune
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
