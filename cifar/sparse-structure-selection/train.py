"""Sparsity training for Sparse Structure Selection (Huang and Wang 2018): the network with a scalar lambda per residual
block (--block-lambda, on by default), trained jointly with it; one backward pass per step feeds Nesterov SGD on the
weights (momentum 0.9, wd 1e-4) and the APG-NAG step on the lambdas (soft-threshold by lr x --sss-gamma, lambda >= 0,
no weight decay). The lambdas still at 0 after training are the blocks prune.py removes; each epoch's log line says
how many. --no-block-lambda trains the plain network (the unpruned baseline) with the same recipe.
(--sss-gamma is the sparsity strength; --gamma stays the LR decay factor of every training script.)

--arch preresnet (pre-activation bottleneck ResNet, 9n+2: PreResNet-164, the default) or resnet (basic blocks, 6n+2:
ResNet-56). Recipe: 160 epochs, batch 64, lr 0.1 (x0.1 at 50% and 75%), Nesterov, wd 1e-4.
Example: python cifar/sparse-structure-selection/train.py --dataset cifar10 --arch resnet --depth 56 \\
             --sss-gamma 0.01 --save logs/sss/resnet56-sparse
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
