"""Train a Sparse Structure Selection network from scratch: the one prune.py wrote (--scratch SAVE/pruned.pth.tar), or a
published one (--model resnet-26, resnet-32 or resnet-41: the pre-activation ResNet-50 with the units SSS removed),
without lambdas, with SSS's recipe: scratch-E (--budget E) 100 epochs, x0.1 at 30, 60, 90; scratch-B (--budget B)
int(100 r) epochs, x0.1 every int(0.3 E): 117 / [35, 70, 105] for ResNet-41, 145 / [43, 86, 129] for ResNet-32,
179 / [53, 106, 159] for ResNet-26, the authors' table; for a pruned.pth.tar, r from its measured FLOPs.

Example: python imagenet/sparse-structure-selection/scratch.py --data /data/imagenet --model resnet-41 --budget B \\
             --save logs/imagenet-sss/resnet-41/scratch-B
         python imagenet/sparse-structure-selection/scratch.py --data /data/imagenet --budget E \\
             --scratch logs/imagenet-sss/sss0.01/pruned/pruned.pth.tar --save logs/imagenet-sss/sss0.01/scratch-E
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
