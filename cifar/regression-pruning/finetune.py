"""Fine-tune a regression-pruned network with its inherited (reconstructed) weights: 40 epochs at a constant lr
0.001 (this repository's CIFAR fine-tuning convention).

Example: python cifar/regression-pruning/finetune.py --refine logs/regression/vgg16/pruned/pruned.pth.tar \\
             --dataset cifar10 --save logs/regression/vgg16/finetune
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
