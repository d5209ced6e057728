"""Fine-tune a weight-level-pruned network with its inherited weights and its mask enforced (pruned weights
stay exactly 0; reference cifar_finetune.py: 40 epochs, constant lr 0.001).

--refine: our pruned.pth.tar (masks inside), the reference's (the mask is its nonzero conv weights; give
--arch/--depth), or a torch.nn.utils.prune state_dict (X.weight_orig / X.weight_mask).
Example: python cifar/weight-level/finetune.py --refine logs/wl/vgg19/p0.3/pruned/pruned.pth.tar \\
             --dataset cifar10 --save logs/wl/vgg19/p0.3/finetune
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from utils.cli import script  # noqa: E402

if __name__ == "__main__":
    script(__file__, "finetune", __doc__)
