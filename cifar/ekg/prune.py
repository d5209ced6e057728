"""EKG's sub-network search on a trained network (ekg.md 2.3-2.10): one warm-up pass of SGD over D_subset (the first
--subset-per-class images of each class; lr 1e-3), then, on the frozen weights, greedy steps until the FLOPs kept
fall to --keep-flops (0.45 = the official README's setting: at least 55% of FLOPs removed; counted by --flops-rule
official, which includes BatchNorm): each step scores every channel by activation x gradient of CE + soft-CE to the
ensemble of the sub-networks accepted so far on D_val (the last --val-per-class images of each class, BN batch
statistics), lets the gates whose pruning cost lies below a trimmed Otsu threshold propose one coarse step each,
and keeps the proposal with the lowest CE + soft-CE on D_val. Then the memory bank: the logits of --num-teachers
sub-networks of the history, spread by loss, on the first --bank-images training images (unaugmented).

Writes SAVE/pruned.pth.tar (the sliced network, each sliced kernel rescaled to its full kernel's norm), prune.json
(steps, time per step, FLOPs kept, the history of accepted sub-networks, teachers), memory_bank.pt, and
ekg_search.pt (the search state after every step: a killed search continues from it when rerun with the same
command).

Example: python cifar/ekg/prune.py --dataset cifar10 --keep-flops 0.45 \\
             --model logs/ekg/resnet56/baseline/checkpoint.pth.tar --save logs/ekg/resnet56/pruned
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
