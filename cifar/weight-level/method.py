"""Unstructured magnitude pruning (Han, Pool, Tran, Dally, NIPS 2015) as the Rethinking reference runs it
(its cifar/weight-level/cifar_prune.py; reference.md 4.4): one-shot, one global threshold over the |w| of
every Conv2d weight (stem, shortcut and transition convs included; Linear, BN and biases are never pruned).

The |w| of all conv weights, in module order, are sorted ascending; the threshold is the value at position
int(total * percent); a weight is kept when |w| > threshold, so ties at the threshold are pruned with it
(``utils.masks.weight_level_masks``, shared with imagenet/weight-level). Fine-tuning and scratch training keep
the pruned weights at exactly zero (masks); scratch-B trains for int(160 * FLOPs(dense) / FLOPs(nonzero weights))
epochs.
"""
from dataclasses import dataclass

from models.bearpaw import VGG_NAMES
from models.registry import model_entry
from utils.hparams import hp
from utils.masks import check_percent, weight_level_masks, weight_level_threshold
from utils.methods import MaskMethod, register_method

ARCHS = {**{name: model_entry(name).depths for name in VGG_NAMES},
         "preresnet_wl": model_entry("preresnet_wl").depths,
         "densenet_wl": model_entry("densenet_wl").depths,
         "densenet_bc": model_entry("densenet_bc").depths}


@dataclass
class WeightLevelArgs:
    percent: float = hp(0.6, "fraction of all conv weights to prune, in (0, 1) (the reference script's default "
                             "0.6; its README and the paper: 0.3/0.8 on CIFAR-10, 0.3/0.5 on CIFAR-100)")

    def __post_init__(self):  # checked while parsing, before any checkpoint is read
        check_percent(self.percent)


@dataclass
class WeightLevelScratchArgs:
    flops_ratio_one: bool = hp(False, "scratch-B: reproduce the reference's bug B2 (the FLOPs of the pruned model "
                                      "are measured before its weights are loaded, so the ratio is 1 and "
                                      "scratch-B trains as long as scratch-E)")


def describe(model, masks, percent=0.6):
    return {"threshold": weight_level_threshold(model, percent)}


def budget(stage, base_epochs):
    """Scratch-B epochs: int(E * FLOPs(dense) / FLOPs(nonzero weights)), or E with --flops-ratio-one (bug B2)."""
    from utils.stages import scratch_budget
    epochs, record = scratch_budget(stage.source, stage.model, stage.info, base_epochs, rule="nonzero",
                                    path=stage.source_path)
    if stage.hparams.flops_ratio_one:
        epochs = base_epochs
        record["flops_ratio_one"] = True
    return epochs, record


@register_method
class WeightLevel(MaskMethod):
    key = "cifar/weight-level"
    name = "weight-level"
    paper = "Han et al., Learning both Weights and Connections for Efficient Neural Networks, NIPS 2015"
    archs = ARCHS
    arch_aliases = {"preresnet": "preresnet_wl", "densenet": "densenet_wl"}  # the reference's cifar.py names
    Hparams = WeightLevelArgs
    ScratchHparams = WeightLevelScratchArgs
    defaults = {"train": {"arch": "vgg19_bn", "depth": 19}}

    def select(self, model, ctx, masks=None):
        return weight_level_masks(model, ctx.hparams.percent, masks=masks)

    def describe(self, model, masks, ctx):
        return describe(model, masks, ctx.hparams.percent)

    def scratch_budget(self, stage, base_epochs):
        return budget(stage, base_epochs)
