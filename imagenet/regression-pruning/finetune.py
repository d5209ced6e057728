"""Fine-tune a regression-pruned ImageNet network with its inherited (least-squares reconstructed) weights: constant
lr 0.001, batch 256 (the reference has no fine-tuning for this method: it evaluated He et al.'s released Caffe
models; choose --epochs).

Example: python imagenet/regression-pruning/finetune.py --data /data/imagenet --epochs 10 \\
             --refine logs/imagenet-regression/resnet50-2x/pruned/pruned.pth.tar \\
             --save logs/imagenet-regression/resnet50-2x/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
