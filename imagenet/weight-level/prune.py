"""Prune an ImageNet network by weight magnitude (Han et al. 2015), as the reference's imagenet/weight-level/prune.py.

One global threshold over the |w| of every conv weight (stem and downsample convs included; the Linear head, BN
and biases are never pruned): the value at position int(total * percent) of the ascending sort; weights with
|w| > threshold are kept, the others set to exactly 0. The network keeps its size; the masks (bool, True = kept)
are saved with it. --model: torchvision's pretrained state_dict file (vgg16_bn-6c64b313.pth, resnet50-0676ba61.pth;
give --arch vgg16_bn or --arch resnet50), the reference's checkpoint (also --arch), or ours. Writes
SAVE/pruned.pth.tar and SAVE/prune.json: nonzero params, FLOPs (nonzero-weight rule, at --input-size) and MACs
before/after, density, threshold, top-1 before/after when --data is given, and the scratch-B budget for 90 epochs
(scratch_b_epochs / scratch_b_lr_step, and the bug-B3 values with --flops-ratio-one).
Example: python imagenet/weight-level/prune.py --data /data/imagenet --arch vgg16_bn --percent 0.3 \\
             --model vgg16_bn-6c64b313.pth --save logs/imagenet-wl/vgg16_bn/p0.3/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
