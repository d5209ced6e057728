"""EKG's sub-network search on a trained ImageNet ResNet (ekg.md 2.3-2.10), on the ImageFolder tree of --data: one
warm-up pass of SGD over D_subset (the first --subset-per-class images of each class, evaluation crops, lr 1e-3),
then, on the frozen weights, greedy steps until the FLOPs kept fall to --keep-flops (default 0.55: the poster's
ResNet-50 at 45.0% fewer FLOPs; counted by --flops-rule official, with BatchNorm): each step scores every channel by
activation x gradient of CE + soft-CE to the ensemble of the sub-networks accepted so far on D_val (the last
--val-per-class images of each class, BN batch statistics), lets the gates whose pruning cost lies below a trimmed
Otsu threshold propose one coarse step each, and keeps the proposal with the lowest CE + soft-CE on D_val. D_val is
decoded once into a cache on the device up to --search-cache-gb; images beyond it are decoded again at every pass.
Then the memory bank: the logits of --num-teachers sub-networks of the history, spread by loss, on the first
--bank-images training images (0 = all; the fine-tune's --train-subset), in one pass over the tree; it takes
N x classes x teachers x 2 bytes (all of ImageNet: 12.8 GB).

Writes SAVE/pruned.pth.tar, prune.json (steps, time per step, FLOPs kept, history, teachers, scratch-B budget),
memory_bank.pt and ekg_search.pt (the state after every step: a killed search continues when rerun).
--model takes our checkpoints or torchvision's weights (--pretrained FILE, with --arch resnet18 ... resnet152).

Example: python imagenet/ekg/prune.py --data /data/imagenet --arch resnet50 --pretrained resnet50-0676ba61.pth \\
             --keep-flops 0.55 --device cuda --workers 8 --save logs/imagenet-ekg/resnet50/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
