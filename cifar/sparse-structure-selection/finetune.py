"""Fine-tune a network pruned by Sparse Structure Selection with its inherited weights (lambdas folded in): 40 epochs
at a constant lr 0.001, batch 64, Nesterov momentum 0.9, wd 1e-4.
Example: python cifar/sparse-structure-selection/finetune.py --dataset cifar10 \\
             --refine logs/sss/resnet56-pruned/pruned.pth.tar --save logs/sss/resnet56-finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
