"""Prune a trained VGG / ResNet by LASSO regression and least squares (He et al., ICCV 2017), layer by layer from the
input.

For each pruned layer i: forward --calib-images training images (test-time transform) through the network pruned
so far and through the original one; at --samples-per-image random positions of layer i+1 per image, take layer
i+1's input patch from the pruned network and its output from the original one (a ResNet block's last conv: plus
the original shortcut minus the pruned one). Choose layer i's channels by LASSO on their contributions to those
outputs, with lambda set so that c' to c' x 1.1 channels survive (c' = int(C x (1 - --percent)), or the layer's
entry in --widths FILE); refit layer i+1's weights and bias on the kept channels by least squares; remove the
other channels. Reads our checkpoints and the reference main.py's (give --arch/--depth). Writes
SAVE/pruned.pth.tar and SAVE/prune.json (cfg, per layer the kept channels, lambda and the reconstruction error
before / after least squares, params, FLOPs, MACs, test accuracy before / after).

Example: python cifar/regression-pruning/prune.py --dataset cifar10 --percent 0.5 \\
             --model logs/regression/vgg16/baseline/checkpoint.pth.tar --save logs/regression/vgg16/pruned
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
