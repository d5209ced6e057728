"""Train the random-init control of a structured ticket: the same filter mask on a fresh network (the
model's He fan-out init, masked: the reference's main_scratch_mask.py draws n = k*k*C_out without taking
the density into account), trained like the ticket with the mask enforced (scratch-E, --budget E).
Example: python lottery_ticket/l1-norm-pruning/scratch.py --dataset cifar10 --lr 0.1 \\
             --scratch logs/lottery-l1/resnet56/A/pruned.pth.tar --save logs/lottery-l1/resnet56/A/scratch
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.errors import run_main  # noqa: E402
from utils.lottery import masked_scratch_main  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: masked_scratch_main(__doc__, argv, reinit="dense"))
