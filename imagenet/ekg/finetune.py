"""Fine-tune the ImageNet network EKG found. --knowledge on (default): two independently augmented views of each
image (random-resized crop + flip, then contrast and saturation jitter) in one batch, cross-entropy on both plus
KL at temperature T (default 10 with 1000 classes, as the official op_utils.py; scaled by T) to the adaptive
ensemble of the memory bank's teachers (memory_bank.pt beside --refine, looked up by image index; it stays in host
memory: 12.8 GB per process for all of ImageNet), averaged over the views. --knowledge off: one view, CE (a run of
its own, finetune-ce). Recipe (ours: the official code has no ImageNet path): 100 epochs, batch 256, SGD-Nesterov
lr 0.01 x0.2 at epochs 30, 60 and 80, wd 1e-4. Train on the images the bank holds (--train-subset = prune.py's
--bank-images).

Example: python imagenet/ekg/finetune.py --data /data/imagenet --device cuda --amp --channels-last --loader fast \\
             --refine logs/imagenet-ekg/resnet50/pruned/pruned.pth.tar --save logs/imagenet-ekg/resnet50/finetune
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
