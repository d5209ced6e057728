"""Fine-tune the smaller network of prune.py with its inherited weights (beyond the reference, whose SFP
result is the soft-pruned network itself), or with --masked the full-size SFP network with its zeroed
filters held at zero.

Defaults: 40 epochs at a constant LR 0.001 (the paper's CIFAR fine-tuning), with SFP's optimizer
(batch 128, Nesterov momentum 0.9, wd 5e-4).
Example: python cifar/soft-filter-pruning/finetune.py --refine logs/sfp/r56/pruned/pruned.pth.tar \\
             --dataset cifar10 --save logs/sfp/r56/finetune
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from utils.branches import finetune_main  # noqa: E402
from utils.errors import run_main  # noqa: E402
from utils.methods import import_path  # noqa: E402

sfp = import_path(os.path.join(HERE, "method.py"), "sfp_method")
DEFAULTS = {"epochs": 40, "lr": 0.001, "schedule": [], "gammas": [], "batch_size": 128, "nesterov": True,
            "weight_decay": 5e-4, "save": "./logs/sfp/finetune"}


def main(argv):
    return finetune_main(__doc__, sfp.reference_argv(argv), defaults=DEFAULTS, extra_args=(sfp.MaskedArgs,),
                         hooks_factory=lambda ckpt, model, args: sfp.masked_hooks(ckpt, model, "--refine", args))


if __name__ == "__main__":
    run_main(main)
