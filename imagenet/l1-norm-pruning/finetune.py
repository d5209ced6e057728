"""Fine-tune an L1-norm-pruned ImageNet ResNet-34 with its inherited weights (reference: 20 epochs, constant
lr 0.001, batch 256).

Example: python imagenet/l1-norm-pruning/finetune.py --data /data/imagenet \\
             --refine logs/imagenet-l1/resnet34-A/pruned/pruned.pth.tar --save logs/imagenet-l1/resnet34-A/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
