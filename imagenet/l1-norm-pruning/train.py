"""Train an ImageNet ResNet-34 (or -18) baseline for L1-norm filter pruning. The paper starts from torchvision's
pretrained ResNet-34 instead: pass its state_dict file to prune.py --model directly.

Recipe (reference.md 3.3): 90 epochs, batch 256, SGD lr 0.1 (x0.1 every 30 epochs), momentum 0.9, wd 1e-4.
Example: torchrun --nproc_per_node=8 imagenet/l1-norm-pruning/train.py --data /data/imagenet --arch resnet \\
             --depth 34 --device cuda --amp --channels-last --loader fast --save logs/imagenet-l1/resnet34
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
