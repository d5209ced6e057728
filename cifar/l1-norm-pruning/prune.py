"""Prune a trained VGG-16 / ResNet-56 / ResNet-110 by the L1 norm of its filters (Li et al. 2017).

Keeps exactly what the reference's vggprune.py, res56prune.py and res110prune.py keep: VGG-16-A, and
ResNet-56/110 variants A and B (-v), pruning only the first conv of each residual block. Writes
SAVE/pruned.pth.tar (architecture spec + weights) and SAVE/prune.json (cfg, params, FLOPs, MACs, accuracy).
Example: python cifar/l1-norm-pruning/prune.py --dataset cifar10 -v A --model logs/resnet56/model_best.pth.tar \\
             --save logs/resnet56/pruned_A
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
