"""Train a regression-pruning network from scratch: a published one by name (--model vgg-5x or resnet-2x, as the
reference's main_E.py / main_B.py) or one pruned by prune.py (--scratch). scratch-E (--budget E) 90 epochs, x0.1
every 30; scratch-B (--budget B) by the cap rule: 180 epochs / step 60 when FLOPs(base) / FLOPs(pruned) >= 2
(VGG-16-5x), else int(90 r) epochs / a third (ResNet-50-2x: 134 / 44). VGG-16-5x trains at --lr 0.01, as the
reference's README runs it.

Example: python imagenet/regression-pruning/scratch.py --data /data/imagenet --model resnet-2x --budget B \\
             --save logs/imagenet-regression/resnet-2x/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
