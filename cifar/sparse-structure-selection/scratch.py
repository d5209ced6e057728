"""Train the architecture Sparse Structure Selection found (the blocks left per stage) from a fresh initialisation,
without block lambdas: scratch-E (--budget E, 160 epochs) or scratch-B (--budget B, int(160 x FLOPs(base) /
FLOPs(pruned)) epochs, LR x0.1 at 50% and 75%); Nesterov momentum as in the sparsity training.
Example: python cifar/sparse-structure-selection/scratch.py --dataset cifar10 --budget B \\
             --scratch logs/sss/resnet56-pruned/pruned.pth.tar --save logs/sss/resnet56-scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
