"""Train a weight-level-pruned network from scratch with its mask enforced (reference cifar_E.py / cifar_B.py).

The full-size network keeps the pruned checkpoint's mask; its conv weights are re-drawn from
N(0, sqrt(2 / n)), n = nnz(mask) / C_in (He fan-out for a dense layer, wider as the layer gets sparser),
then masked; BN and Linear keep their default init. --budget E: the baseline's 160 epochs, LR x0.1 at 50%
and 75%. --budget B: int(160 x FLOPs(dense) / FLOPs(nonzero weights)) epochs, same LR fractions;
--flops-ratio-one reproduces the reference's bug B2 (ratio 1, i.e. scratch-B = scratch-E).
Example: python cifar/weight-level/scratch.py --scratch logs/wl/vgg19/p0.3/pruned/pruned.pth.tar --budget B \\
             --dataset cifar10 --save logs/wl/vgg19/p0.3/scratch-B
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
