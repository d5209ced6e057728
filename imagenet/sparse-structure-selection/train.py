"""Sparse Structure Selection's training on ImageNet: the authors' pre-activation ResNet-50 with a scalar lambda per
residual unit (--block-lambda, on by default) scaling conv3's output, trained jointly with it: one backward pass per
step feeds Nesterov SGD on the weights and the APG-NAG step on the lambdas (soft-threshold by lr x --sss-gamma,
lambda >= 0, no weight decay; --sss-gamma is the sparsity strength, --gamma stays the LR decay factor). Each epoch's
log line says how many lambdas are 0: the units prune.py removes. --no-block-lambda trains the plain network
(sss=False in the authors' code: the unpruned base). Recipe: Nesterov SGD, lr 0.1, wd 1e-4, batch 128, 100 epochs,
x0.1 at 30, 60 and 90, SSS's augmentation (--augment sss).

Example: torchrun --nproc_per_node=4 imagenet/sparse-structure-selection/train.py --data /data/imagenet \\
             --sss-gamma 0.01 --device cuda --amp --channels-last --save logs/imagenet-sss/resnet50-sss0.01
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
