"""Train a slimmed ImageNet VGG-11 from scratch: scratch-E (--budget E: 90 epochs, x0.1 every 30; the reference's
main_E.py crashes, bug B5) or scratch-B (--budget B: int(90 x FLOPs(full)/FLOPs(pruned)) epochs, x0.1 every third of
them, no cap), from SAVE/pruned.pth.tar.

Example: python imagenet/network-slimming/scratch.py --data /data/imagenet --budget B \\
             --scratch logs/imagenet-slimming/vgg11/pruned/pruned.pth.tar --save logs/imagenet-slimming/vgg11/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
