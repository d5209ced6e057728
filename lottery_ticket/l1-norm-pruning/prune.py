"""Zero whole filters of a trained VGG-16 / ResNet-56 / ResNet-110 by the L1-norm targets of Li et al.
(VGG-16-A, ResNet-56/110-A/B with -v; the rule of cifar/l1-norm-pruning), keeping the network full-size so
that a ticket can be rewound to its initialisation. --prune large keeps the filters with the largest L1
norms (Li et al.), small the smallest, random a random subset of the same size. Exactly the filters not
kept are zeroed (the reference zeroes filters 0 and 1 only, its bug B8). Writes SAVE/pruned.pth.tar
(full-size weights and masks) and SAVE/prune.json (kept filters, the compact equivalent's cfg and FLOPs).
Example: python lottery_ticket/l1-norm-pruning/prune.py --dataset cifar10 -v A \\
             --model logs/lottery-l1/resnet56/dense/checkpoint.pth.tar --save logs/lottery-l1/resnet56/A
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
