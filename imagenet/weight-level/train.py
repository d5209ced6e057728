"""Train an ImageNet baseline for weight-level pruning: vgg16_bn (the default: imagenet_vgg-16 with BN, torchvision's
layout) or resnet50. The paper prunes torchvision's pretrained weights instead: pass that state_dict file to
prune.py --model directly.

Recipe (reference.md 3.3): 90 epochs, batch 256, SGD lr 0.1 (x0.1 every 30 epochs), momentum 0.9, wd 1e-4.
Example: torchrun --nproc_per_node=8 imagenet/weight-level/train.py --data /data/imagenet --arch resnet50 \\
             --device cuda --amp --channels-last --loader fast --save logs/imagenet-wl/resnet50/baseline
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
