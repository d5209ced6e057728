"""Fine-tune a network pruned by Sparse Structure Selection with its inherited weights (the lambdas folded in): 20
epochs at a constant lr 0.001, Nesterov, wd 1e-4, batch 128, SSS's augmentation. (SSS itself reports the pruned
network as trained, without fine-tuning; this stage is the protocol's fine-tuned column.)

Example: python imagenet/sparse-structure-selection/finetune.py --data /data/imagenet \\
             --refine logs/imagenet-sss/sss0.01/pruned/pruned.pth.tar --save logs/imagenet-sss/sss0.01/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
