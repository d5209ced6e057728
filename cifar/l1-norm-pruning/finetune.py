"""Fine-tune an L1-norm-pruned network with its inherited weights (reference: 40 epochs, constant lr 0.001).

Example: python cifar/l1-norm-pruning/finetune.py --refine logs/vgg16/pruned/pruned.pth.tar --dataset cifar10 \\
             --save logs/vgg16/finetune
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
