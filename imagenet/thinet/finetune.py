"""Fine-tune a ThiNet-pruned ImageNet network with its inherited (least-squares rescaled) weights: constant lr 0.001,
batch 256 (the paper fine-tunes for a few epochs between and after the layers; choose --epochs).

Example: python imagenet/thinet/finetune.py --data /data/imagenet --epochs 10 \\
             --refine logs/imagenet-thinet/thinet50/pruned/pruned.pth.tar --save logs/imagenet-thinet/thinet50/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
