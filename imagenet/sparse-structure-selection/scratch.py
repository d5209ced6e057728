"""Train a published Sparse Structure Selection network from scratch (--model resnet-26, resnet-32 or resnet-41: the
pre-activation ResNet-50 with the units SSS removed) with SSS's recipe: scratch-E (--budget E) 100 epochs, x0.1 at
30, 60, 90; scratch-B (--budget B) int(100 r) epochs, x0.1 every int(0.3 E): 117 / [35, 70, 105] for ResNet-41,
145 / [43, 86, 129] for ResNet-32, 179 / [53, 106, 159] for ResNet-26, the authors' table.

Example: python imagenet/sparse-structure-selection/scratch.py --data /data/imagenet --model resnet-41 --budget B \\
             --save logs/imagenet-sss/resnet-41/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
