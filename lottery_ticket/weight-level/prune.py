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

from utils.branches import mask_prune_main  # noqa: E402
from utils.errors import run_main  # noqa: E402
from utils.methods import get_method  # noqa: E402

if __name__ == "__main__":
    method = get_method("lottery-weight-level")
    run_main(lambda argv: mask_prune_main(method, __doc__, argv, extra_args=(method.prune_args,)))
