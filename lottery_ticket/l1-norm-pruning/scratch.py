"""Train the random-init control of a structured ticket: the same filter mask on a fresh network (the
model's He fan-out init, masked: the reference's main_scratch_mask.py draws n = k*k*C_out without taking
the density into account), trained like the ticket with the mask enforced (scratch-E, --budget E).
Example: python lottery_ticket/l1-norm-pruning/scratch.py --dataset cifar10 --lr 0.1 \\
             --scratch logs/lottery-l1/resnet56/A/pruned.pth.tar --save logs/lottery-l1/resnet56/A/scratch
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
