"""Fine-tune a weight-level-pruned ImageNet network with its inherited weights and its mask enforced (pruned
weights stay exactly 0; reference main_finetune.py: 10 epochs, constant lr 0.001, batch 256).

--refine: our pruned.pth.tar (masks inside) or the reference's (the mask is its nonzero conv weights; give --arch
vgg16_bn or --arch resnet50).
Example: python imagenet/weight-level/finetune.py --data /data/imagenet \\
             --refine logs/imagenet-wl/vgg16_bn/p0.3/pruned/pruned.pth.tar \\
             --save logs/imagenet-wl/vgg16_bn/p0.3/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
