"""L1-norm filter pruning of ImageNet ResNet-34 (Li et al. 2017; reference.md 4.7): the selection rule.

The 3x3 and 7x7 convs are numbered from 1 (the stem); block j's first conv is 2j. Only blocks' first convs are
pruned, skipping 2, 8, 14, 16, 26, 28, 30 and 32 (the first block of layer1, the first and last blocks of layer2
and layer3, all of layer4); a pruned conv keeps its int(C (1 - p)) filters of largest L1 norm, with p per stage
A = (0.3, 0.3, 0.3, 0) or B = (0.5, 0.6, 0.4, 0). Shortcuts and second convs keep their width.
"""
from dataclasses import dataclass

from utils.hparams import hp
from utils.methods import ChannelMethod, register_method
from utils.recipes import IMAGENET_FINETUNE, IMAGENET_TRAIN, budget_preview, capped_budget
from utils.surgery import keep_largest, l1_filter_scores

SKIP = {2, 8, 14, 16, 26, 28, 30, 32}
FRACTIONS = {"A": (0.3, 0.3, 0.3, 0.0), "B": (0.5, 0.6, 0.4, 0.0)}
STAGE_ENDS = (6, 14, 26)  # last even layer id of stages 1-3


def select(model, variant):
    """{cfg index: kept filter positions} of ResNet-34-A or -B."""
    keep = {}
    for j, group in enumerate(model.channel_groups(), start=1):
        layer_id = 2 * j
        if layer_id in SKIP:
            continue
        stage = sum(layer_id > end for end in STAGE_ENDS)
        conv = model.get_submodule(group.out[0])
        num_keep = int(conv.out_channels * (1 - FRACTIONS[variant][stage]))
        if num_keep < conv.out_channels:
            keep[group.cfg_index] = keep_largest(l1_filter_scores(conv.weight), num_keep)
    return keep


@dataclass
class L1Hparams:
    variant: str = hp("A", "ResNet-34 configuration A or B", flags=("-v",), choices=["A", "B"])


@register_method
class ImageNetL1Norm(ChannelMethod):
    key = "imagenet/l1-norm-pruning"
    name = "l1-norm"
    paper = "Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017"
    archs = {"imagenet_resnet": (18, 34)}
    prune_archs = {"imagenet_resnet": (34,)}
    arch_aliases = {"resnet": "imagenet_resnet"}
    image_folder = True
    flag_aliases = {"model": ("--pretrained",)}  # prune.py --pretrained FILE: torchvision's weights, as a file
    Hparams = L1Hparams
    defaults = {"train": {**IMAGENET_TRAIN, "arch": "imagenet_resnet", "depth": 34, "save": "./logs/imagenet-l1"},
                "prune": {"test_batch_size": 64},
                "finetune": {**IMAGENET_FINETUNE, "epochs": 20},
                "scratch": dict(IMAGENET_TRAIN)}

    def select(self, model, ctx):
        return select(model, ctx.hparams.variant)

    def scratch_budget(self, stage, base_epochs):
        return capped_budget(stage, base_epochs)

    def budget_preview(self, flops_base, flops_pruned):
        return budget_preview(flops_base, flops_pruned)
