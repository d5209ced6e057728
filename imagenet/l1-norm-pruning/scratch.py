"""Train an L1-norm-pruned ImageNet ResNet-34 from scratch: scratch-E (--budget E: 90 epochs, step 30) or
scratch-B (--budget B, the reference's cap rule: r = FLOPs(base)/FLOPs(pruned); 180 epochs, step 60 when r >= 2,
else int(90 r) epochs and a step of a third: 106 epochs / step 35 for ResNet-34-A, 118 / 39 for -B).

Example: python imagenet/l1-norm-pruning/scratch.py --data /data/imagenet --budget B \\
             --scratch logs/imagenet-l1/resnet34-A/pruned/pruned.pth.tar --save logs/imagenet-l1/resnet34-A/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
