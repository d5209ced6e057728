"""Prune a trained VGG / ResNet with ThiNet (Luo et al., ICCV 2017), layer by layer from the input.

For each pruned layer i: forward --calib-images training images (test-time transform) through the network pruned
so far, sample --samples-per-image random outputs of layer i+1 per image, choose the channels of layer i whose
summed contribution to those outputs is smallest (ThiNet's greedy) until int(C x (1 - --percent)) are left,
rescale layer i+1's kept input weights by least squares, and remove the channels; then, with --ft-between-iters N,
N SGD steps of fine-tuning. Layers: the paper's rule by default (VGG: every conv but the last block's; ResNet:
each block's first conv), or --layers. Reads our checkpoints and the reference main.py's (give --arch/--depth).
Writes SAVE/pruned.pth.tar and SAVE/prune.json (cfg, kept channels and reconstruction error before / after least
squares per layer, params, FLOPs, MACs, test accuracy before / after).

Example: python cifar/thinet/prune.py --dataset cifar10 --percent 0.5 \\
             --model logs/thinet/vgg16/baseline/checkpoint.pth.tar --save logs/thinet/vgg16/pruned
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
