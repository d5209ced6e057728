"""Train the architecture EKG found on ImageNet from a fresh initialisation with cross-entropy, the reference's
ImageNet recipe: scratch-E (--budget E: 90 epochs, lr 0.1 x0.1 every 30) or scratch-B (--budget B, the reference's
cap rule: r = FLOPs(base) / FLOPs(pruned); 180 epochs with a step of 60 when r >= 2, else int(90 r) epochs and a step
of a third): the paper's question put to a 2022 method.

Example: python imagenet/ekg/scratch.py --data /data/imagenet --budget B \\
             --scratch logs/imagenet-ekg/resnet50/pruned/pruned.pth.tar --save logs/imagenet-ekg/resnet50/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
