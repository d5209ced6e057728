"""Sparse Structure Selection (Huang and Wang, ECCV 2018) on CIFAR: a scalar lambda per residual block trained with
APG-NAG under an L1 penalty (--sss-gamma), then every block whose lambda reached 0 removed (the rule: utils/sss.py,
shared with imagenet/sparse-structure-selection). Networks: the pre-activation bottleneck ResNet (preresnet, the
paper's ResNet-164) and the basic-block ResNet (resnet, ResNet-56), with --block-lambda (on by default here).

The reference (Rethinking) has no CIFAR SSS; the recipe is this repository's CIFAR one (160 epochs, batch 64, lr 0.1
x0.1 at 50% and 75%, wd 1e-4) with SSS's Nesterov momentum in every stage.
"""
from models import model_entry
from utils.methods import register_method
from utils.sss import SSSRule

NESTEROV = {"nesterov": True}


@register_method
class SparseStructureSelection(SSSRule):
    key = "cifar/sparse-structure-selection"
    name = "sss"
    paper = "Huang and Wang, Data-Driven Sparse Structure Selection for Deep Neural Networks, ECCV 2018"
    archs = {a: model_entry(a).depths for a in ("preresnet", "resnet")}
    defaults = {"train": {"arch": "preresnet", "depth": 164, "block_lambda": True, "save": "./logs/sss", **NESTEROV},
                "finetune": dict(NESTEROV), "scratch": dict(NESTEROV)}
