"""Train an SFP-pruned architecture from scratch: scratch-E (--budget E, 200 epochs) or scratch-B (--budget B,
int(200 r) epochs, r = FLOPs(full) / FLOPs(pruned), LR milestones [1, int(60 r), int(120 r), int(160 r)]).

Two ways to give the architecture:
  --scratch SAVE/pruned/pruned.pth.tar: prune.py's smaller network, freshly initialised (r by the dense rule).
  --masked --scratch SFP/checkpoint.pth.tar: the reference's way (pruning_resnet_scratch.py /
      pruning_resnet_longer_scratch.py): the full-size network, mask = the SFP weights' nonzero pattern, conv
      weights redrawn from N(0, sqrt(2 / (nnz / C_in))) and masked, the mask held during training; r by the
      nonzero-weight rule (ResNet-56 at rate 0.7: r = 1.3784, 275 epochs, milestones [1, 82, 165, 220]).
--bug-b6 reproduces the reference's int(400 r) epochs (551 for ResNet-56). Model selection uses each epoch's
test accuracy (the reference's scratch scripts use the one measured before training: bug B7, fixed).

Example: python cifar/soft-filter-pruning/scratch.py --masked --scratch logs/sfp/r56/sfp/checkpoint.pth.tar \\
             --budget B --dataset cifar10 --save logs/sfp/r56/scratch-B
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "scratch", __doc__)
