"""Train the structured winning ticket: the L1 filter mask on the dense run's saved initialisation (--init
init.pth.tar, or rewind_epochK.pth.tar), with the mask enforced. Reference: main_lottery.py, 160 epochs at
--lr 0.1 or 0.01, x0.1 at 50% and 75%. As in the reference only conv weights are masked: the BN after a
zeroed filter keeps training its beta, so the channel carries a learned constant.
Example: python lottery_ticket/l1-norm-pruning/ticket.py --dataset cifar10 --lr 0.1 \\
             --pruned logs/lottery-l1/resnet56/A/pruned.pth.tar --init logs/lottery-l1/resnet56/dense/init.pth.tar \\
             --save logs/lottery-l1/resnet56/A/ticket
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "ticket", __doc__)
