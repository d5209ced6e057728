"""Train the winning ticket: the pruned network's mask on the dense run's saved initialisation (--init
init.pth.tar; or rewind_epochK.pth.tar to rewind to epoch K), with the mask enforced (pruned weights stay
exactly zero). Reference: lottery_ticket.py, 160 epochs at --lr 0.1 or 0.01, x0.1 at 50% and 75%.
Example: python lottery_ticket/weight-level/ticket.py --dataset cifar10 --lr 0.1 \\
             --pruned logs/lottery/vgg16_bn/round_1/pruned.pth.tar --init logs/lottery/vgg16_bn/dense/init.pth.tar \\
             --save logs/lottery/vgg16_bn/round_1/ticket
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "ticket", __doc__)
