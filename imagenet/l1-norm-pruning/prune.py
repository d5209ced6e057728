"""Prune an ImageNet ResNet-34 by the L1 norm of its filters (Li et al. 2017), variant A or B (-v).

--model takes our checkpoints, the reference's, or a bare torchvision-layout state_dict such as torchvision's
resnet34-333f7ec4.pth (then give --arch resnet --depth 34). Keeps what the reference's prune.py keeps; writes
SAVE/pruned.pth.tar and SAVE/prune.json (cfg, params, FLOPs in the reference convention, top-1 before/after).
Example: python imagenet/l1-norm-pruning/prune.py --data /data/imagenet --arch resnet --depth 34 -v A \\
             --model resnet34-333f7ec4.pth --save logs/imagenet-l1/resnet34-A/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
