"""Fine-tune the smaller network of prune.py with its inherited weights (beyond the reference, whose SFP
result is the soft-pruned network itself), or with --masked the full-size SFP network with its zeroed
filters held at zero.

Defaults: 40 epochs at a constant LR 0.001 (the paper's CIFAR fine-tuning), with SFP's optimizer
(batch 128, Nesterov momentum 0.9, wd 5e-4).
Example: python cifar/soft-filter-pruning/finetune.py --refine logs/sfp/r56/pruned/pruned.pth.tar \\
             --dataset cifar10 --save logs/sfp/r56/finetune
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
