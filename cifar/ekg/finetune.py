"""Fine-tune the network EKG found, as the official code does with --Knowledge (the default, --knowledge on): two
independently augmented views of each image (flip, pad-4 crop, contrast and saturation jitter) in one batch,
cross-entropy on both plus KL at temperature 4 (scaled by T) to the adaptive ensemble of the memory bank's teachers
(memory_bank.pt beside --refine, looked up by image index), averaged over the views. --knowledge off: one view,
cross-entropy only (the official README command as of its HEAD). Recipe: 100 epochs, batch 128, SGD-Nesterov lr 0.01
x0.2 at epochs 30, 60 and 80, wd 5e-4. Train on the images the bank was built on (prune.py --bank-images =
--train-subset).
Example: python cifar/ekg/finetune.py --dataset cifar10 --refine logs/ekg/resnet56/pruned/pruned.pth.tar \\
             --save logs/ekg/resnet56/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
