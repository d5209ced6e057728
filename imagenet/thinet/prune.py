"""Prune a trained ImageNet VGG-16 or ResNet-50 with ThiNet: layer by layer from the input, each layer's channels chosen
by how little the next layer's output changes without them (greedy on 10,000 calibration images x 10 samples), the
next layer's kept weights rescaled by least squares. --model takes our checkpoints or torchvision's weights
(then --arch vgg16 or resnet50).

Example (ThiNet-50): python imagenet/thinet/prune.py --data /data/imagenet --arch resnet50 --percent 0.5 \\
             --model resnet50-0676ba61.pth --save logs/imagenet-thinet/thinet50/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
