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

from utils.branches import finetune_main  # noqa: E402
from utils.errors import run_main  # noqa: E402
from utils.methods import get_method  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: finetune_main(__doc__, argv, masked=True,
                                        arch_aliases=get_method("weight-level").arch_aliases))
