"""Turn a soft-pruned SFP network into the physically smaller one (beyond the reference, which keeps the
full-size network with zeroed filters; He et al.'s get_small_model.py does this for ImageNet).

Only each block's conv_a filters can go (cfg = conv_a widths): the residual stream (stem, conv_b, shortcuts)
is shared by every block of a stage, so its zeroed filters stay as zeros. A zeroed conv_a filter still
feeds conv_b the constant ReLU(BN(0)) of its channel.
  --remove zeroed (default): drop every zeroed conv_a filter (He et al.'s small model); the dropped constants'
      effect on conv_b is folded into the following BN's running mean, exact except at the image border.
  --remove exact: drop only the zeroed filters whose constant is 0: identical outputs (eval mode).
Writes SAVE/pruned.pth.tar and SAVE/prune.json (cfg, params, FLOPs, test accuracy before and after).

Example: python cifar/soft-filter-pruning/prune.py --dataset cifar10 --model logs/sfp/r56/sfp/checkpoint.pth.tar \\
             --save logs/sfp/r56/pruned
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "prune", __doc__)
