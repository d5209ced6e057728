"""Soft Filter Pruning training (pruning_cifar10_resnet.py), or the unpruned baseline with --rate 1
(pruning_cifar10_pretrain.py), of the SFP CIFAR ResNet-20/32/56/110.

Recipe (reference.md 3.1, 4.3): 200 epochs, batch 128, Nesterov SGD momentum 0.9, wd 5e-4, LR 0.01 x the
cumulative --gammas 10 0.2 0.2 0.2 at --schedule 1 60 120 160 (epochs): 0.01, 0.1 from epoch 1, 0.02, 0.004,
0.0008. With --pretrained BASELINE (the reference's --resume: weights only) the LR defaults to 0.001.
Every selected conv keeps its int(C * rate) largest-L2 filters; the others are zeroed before training and
after every --epoch_prune-th epoch (and the last), then trained on ("soft"); accuracy is measured after zeroing.
Layers: --prune-layers all|inner|blocks, or the reference's parameter indices --layer_begin/--layer_end/
--layer_inter (0/162/3 = every conv of ResNet-56 = all). --resume continues an interrupted run of this script.
Reference spellings accepted: --arch resnet56 (= --arch resnet_sfp --depth 56), --learning_rate, --decay,
--save_path, --manualSeed, --batch_size, --epoch_prune.

Examples:
  python cifar/soft-filter-pruning/train.py --dataset cifar10 --arch resnet56 --rate 1 --save logs/sfp/r56/baseline
  python cifar/soft-filter-pruning/train.py --dataset cifar10 --arch resnet56 --rate 0.7 --save logs/sfp/r56/sfp
  python cifar/soft-filter-pruning/train.py --dataset cifar10 --arch resnet56 --rate 0.7 \\
      --pretrained logs/sfp/r56/baseline/checkpoint.pth.tar --save logs/sfp/r56/sfp-pretrained
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "train", __doc__)
