"""Train the architecture EKG found from a fresh initialisation with cross-entropy: scratch-E (--budget E, 160
epochs) or scratch-B (--budget B, int(160 x FLOPs(base) / FLOPs(pruned)) epochs in this project's FLOPs convention,
LR x0.1 at 50% and 75%), the paper's question put to EKG's architecture.
Example: python cifar/ekg/scratch.py --dataset cifar10 --budget B \\
             --scratch logs/ekg/resnet56/pruned/pruned.pth.tar --save logs/ekg/resnet56/scratch-B
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
