"""Weight-level lottery-ticket pruning (the reference's cifar/lottery-ticket/weight-level/
cifar_prune_iterative.py; reference.md 4.5): remove a fraction of the *currently nonzero* conv weights by
magnitude, so that every round of an iterative sweep removes the same fraction of what remains.

The |w| of all conv weights are sorted ascending with the pruned ones counted as zeros; the threshold is the
value at position (total - nnz) + int(nnz * percent) and a weight survives when |w| > threshold.
--layerwise applies the same rule inside each conv layer instead of over all of them.
"""
from dataclasses import dataclass

from models import list_models, model_entry
from utils.errors import UserError
from utils.hparams import hp
from utils.lottery import LotteryTraining
from utils.masks import layer_densities, magnitude_masks, masks_from_nonzero
from utils.methods import MaskMethod, register_method


@dataclass
class WeightPruneArgs:
    percent: float = hp(0.2, "fraction of the currently nonzero conv weights to remove (a sweep's rounds each "
                             "remove this fraction of what remains)")
    layerwise: bool = hp(False, "prune every conv layer by --percent of its own nonzero weights instead of one "
                                "global threshold over all conv weights (the reference's rule)")

    def __post_init__(self):
        if not 0 < self.percent < 1:
            raise UserError(f"--percent {self.percent}: must lie in (0, 1) (the fraction of the remaining conv weights)")


def select(model, masks=None, percent=0.2, layerwise=False):
    """{conv weight name: bool keep mask}. Without explicit masks (a reference checkpoint) the weights that
    are already zero count as pruned, as in the reference."""
    if not 0 < percent < 1:
        raise UserError(f"--percent {percent}: must lie in (0, 1) (the fraction of the remaining conv weights)")
    current = masks if masks is not None else masks_from_nonzero(model)
    return magnitude_masks(model, percent, scope="layer" if layerwise else "global", granularity="weight",
                           of="remaining", masks=current)


def describe(model, masks, percent=0.2, layerwise=False):
    return {"layer_density": layer_densities(masks)}


@register_method
class LotteryWeightLevel(LotteryTraining, MaskMethod):
    """Dense training saves the init; pruning removes a fraction of what remains; the random-init control
    (scratch.py) re-draws the survivors with the sparsity-scaled He init (MaskMethod.init_model)."""
    key = "lottery_ticket/weight-level"
    name = "lottery-weight-level"
    paper = "Frankle & Carbin, The Lottery Ticket Hypothesis, ICLR 2019 (as re-run by Liu et al., ICLR 2019)"
    archs = {name: model_entry(name).depths for name in list_models(family="cifar")}  # any CIFAR net of the zoo
    Hparams = WeightPruneArgs
    defaults = {"train": {"arch": "vgg16_bn", "depth": 16}, "scratch": {"save": "./logs/lottery/scratch"}}

    def select(self, model, ctx, masks=None):
        return select(model, masks, ctx.hparams.percent, ctx.hparams.layerwise)

    def describe(self, model, masks, ctx):
        return describe(model, masks)
