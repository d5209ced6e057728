"""Unstructured magnitude pruning (Han, Pool, Tran, Dally, NIPS 2015) as the Rethinking reference runs it
(its cifar/weight-level/cifar_prune.py; reference.md 4.4): one-shot, one global threshold over the |w| of
every Conv2d weight (stem, shortcut and transition convs included; Linear, BN and biases are never pruned).

The |w| of all conv weights, in module order, are sorted ascending; the threshold is the value at position
int(total * percent); a weight is kept when |w| > threshold, so ties at the threshold are pruned with it.
Fine-tuning and scratch training keep the pruned weights at exactly zero (masks); scratch-B trains for
int(160 * FLOPs(dense) / FLOPs(nonzero weights)) epochs.
"""
from dataclasses import dataclass

import torch

from models.bearpaw import VGG_NAMES
from models.registry import model_entry
from utils.branches import scratch_budget
from utils.errors import UserError
from utils.hparams import hp
from utils.masks import conv_weights, magnitude_masks
from utils.methods import Method, register_method

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


def check_percent(percent):
    if not 0 < percent < 1:
        raise UserError(f"--percent {percent}: must lie in (0, 1) (the fraction of conv weights to prune)")


def select(model, masks=None, percent=0.6):
    """{conv weight name: bool keep mask}: the reference's global threshold over all conv weights.
    Weights that ``masks`` already removed count as zeros (they sort first and stay pruned)."""
    check_percent(percent)
    return magnitude_masks(model, percent, scope="global", granularity="weight", of="all", masks=masks)


def threshold(model, percent):
    """The reference's threshold value: sorted_ascending(|w| of all conv weights)[int(total * percent)]."""
    flat = torch.cat([w.detach().float().cpu().abs().flatten() for w in conv_weights(model).values()])
    return float(flat.sort().values[int(flat.numel() * percent)])


def describe(model, masks, percent=0.6):
    return {"threshold": threshold(model, percent)}


def budget(ckpt, model, info, train_args, check, extra):
    """Scratch-B epochs: int(E * FLOPs(dense) / FLOPs(nonzero weights)), or E with --flops-ratio-one (bug B2)."""
    epochs, record = scratch_budget(ckpt, model, info, train_args.epochs, check, rule="nonzero")
    if extra.flops_ratio_one:
        epochs = train_args.epochs
        record["flops_ratio_one"] = True
    return epochs, record


METHOD = register_method(Method(
    name="weight-level",
    folder="cifar/weight-level",
    paper="Han et al., Learning both Weights and Connections for Efficient Neural Networks, NIPS 2015",
    archs=ARCHS,
    select=select,
    describe=describe,
    arch_aliases={"preresnet": "preresnet_wl", "densenet": "densenet_wl"},  # the reference's cifar.py names
    notes={"masks": "select returns {conv weight name: bool mask}, not kept channels: use mask_prune_main"},
))
# what the scripts plug into utils.branches
METHOD.budget = budget
METHOD.prune_args = (WeightLevelArgs,)
METHOD.scratch_args = (WeightLevelScratchArgs,)
