"""Prune a network trained by Sparse Structure Selection (train.py): every residual block whose lambda is exactly 0 is
removed. Where that is the first block of a stage, its shortcut stays as a unit of its own (PreResNet: the 1x1
projection; ResNet: the zero-padding shortcut of stages 2 and 3), so widths and resolution still change there. The
surviving lambdas are folded into the last layer of their branch (PreResNet conv3, ResNet bn2), so the pruned network
is the plain one and computes what the trained network computes. A network without residual blocks or without block
lambdas is a one-line error. --threshold T (default 0, the paper's rule) also removes the blocks whose lambda is at
most T (lambdas left hovering just above 0 by a small final LR).

Writes SAVE/pruned.pth.tar (the spec: units per stage, cfg of the remaining blocks; weights; the base network) and
SAVE/prune.json: units (per stage [blocks with a branch, first block kept its branch]), units_base, removed_blocks,
lambdas, depth_pruned (conv layers of the remaining branches + 2), params / FLOPs / MACs before and after, test
accuracy before and after (equal up to rounding).
Example: python cifar/sparse-structure-selection/prune.py --dataset cifar10 \\
             --model logs/sss/resnet56-sparse/checkpoint.pth.tar --save logs/sss/resnet56-pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
