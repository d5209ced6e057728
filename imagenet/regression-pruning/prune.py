"""Prune a trained ImageNet VGG-16 (no BN) or ResNet-50 by LASSO regression and least squares (He et al., ICCV 2017):
layer by layer from the input, inputs from the network pruned so far and targets from the original one, 5,000
calibration images x 10 positions per layer; lambda set so that c' to 1.1 c' channels survive; the next layer's
weights and bias refit by least squares. ResNet-50: each bottleneck's conv1 reads a LASSO-selected subset of the
block input (a channel selection, as ResNet-50-2x), conv1 and conv2 outputs are pruned, conv3 is reconstructed
towards the original block output plus the original minus the pruned shortcut. --percent P removes that fraction
of every pruned layer; --widths FILE gives per-layer targets (vgg16_5x.widths, resnet50_2x.widths in this folder:
the published networks' widths). --model takes our checkpoints or torchvision's / the reference's weights (then
--arch vgg16 or resnet50; --shortcut-bias for the reference's resnet50_official).

Example (VGG-16-5x): python imagenet/regression-pruning/prune.py --data /data/imagenet --arch vgg16 \\
             --model logs/imagenet-regression/vgg16/checkpoint.pth.tar \\
             --widths imagenet/regression-pruning/vgg16_5x.widths --save logs/imagenet-regression/vgg16-5x/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
