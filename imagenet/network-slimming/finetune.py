"""Fine-tune a slimmed ImageNet VGG-11 (reference: 5 epochs, constant lr 0.001, batch 256): --refine SAVE/pruned.pth.tar
for the physically pruned network, or --refine SAVE/masked.pth.tar for the reference's mask implementation (the full
network; the zeroed channels keep zero gamma and beta: their gradients are masked after every backward).

Example: python imagenet/network-slimming/finetune.py --data /data/imagenet \\
             --refine logs/imagenet-slimming/vgg11/pruned/masked.pth.tar --save logs/imagenet-slimming/vgg11/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
