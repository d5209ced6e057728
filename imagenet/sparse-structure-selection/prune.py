"""Prune the pre-activation ResNet-50 trained by Sparse Structure Selection (train.py): every residual unit whose lambda
is exactly 0 is removed; when it is the first unit of a stage its 1x1 projection shortcut stays (BN - ReLU - conv1x1,
stride 2), as the authors' ResNet-26/32/41 have it. The surviving lambdas are folded into conv3, so the pruned
network is the plain one and computes what the trained one computes. Writes SAVE/pruned.pth.tar and SAVE/prune.json:
units per stage in the paper's notation ([units with a residual branch, first unit kept its branch]; ResNet-41 is
[[0, false], [4, true], [6, true], [3, true]]), the depth (3 x units + 2), the lambdas, params / FLOPs before and
after, the scratch-B budget scratch.py will use (int(100 r) epochs, steps of int(0.3 E)), and the test accuracy before
and after. A network without residual units or without lambdas is a one-line error. --threshold T (default 0,
the paper's rule) also removes the units whose lambda is at most T.

Example: python imagenet/sparse-structure-selection/prune.py --data /data/imagenet \\
             --model logs/imagenet-sss/resnet50-sss0.01/checkpoint.pth.tar --save logs/imagenet-sss/sss0.01/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
