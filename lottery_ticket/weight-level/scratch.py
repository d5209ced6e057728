"""Train the random-init control of a weight-level ticket: the same mask on a fresh network whose conv
weights are redrawn from N(0, sqrt(2 / (nnz / C_in))) (reference.md 5.3), trained like the ticket with the
mask enforced. Reference: cifar_scratch_no_longer.py (scratch-E: the dense run's epochs, --budget E).
Example: python lottery_ticket/weight-level/scratch.py --dataset cifar10 --lr 0.1 \\
             --scratch logs/lottery/vgg16_bn/round_1/pruned.pth.tar --save logs/lottery/vgg16_bn/round_1/scratch
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
