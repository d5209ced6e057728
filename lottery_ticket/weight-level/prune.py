"""Prune a fraction (--percent) of the currently nonzero conv weights of a trained network by magnitude:
one global threshold over all conv weights (the reference's cifar_prune_iterative.py), or each layer by
the fraction (--layerwise). Pass a ticket trained in an earlier round to prune it again: every round
removes --percent of what remains, so k rounds leave (1 - p)^k. Writes SAVE/pruned.pth.tar (the full-size
network with the pruned weights zeroed, and its masks) and SAVE/prune.json (density, per-layer density,
nonzero FLOPs, accuracy before and after).
Example: python lottery_ticket/weight-level/prune.py --dataset cifar10 --percent 0.2 \\
             --model logs/lottery/vgg16_bn/dense/checkpoint.pth.tar --save logs/lottery/vgg16_bn/round_1
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
