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
from utils.masks import layer_densities, magnitude_masks, masks_from_nonzero
from utils.methods import Method, register_method


@dataclass
class WeightPruneArgs:
    percent: float = hp(0.2, "fraction of the currently nonzero conv weights to remove (a sweep's rounds each "
                             "remove this fraction of what remains)")
    layerwise: bool = hp(False, "prune every conv layer by --percent of its own nonzero weights instead of one "
                                "global threshold over all conv weights (the reference's rule)")


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


METHOD = register_method(Method(
    name="lottery-weight-level",
    folder="lottery_ticket/weight-level",
    paper="Frankle & Carbin, The Lottery Ticket Hypothesis, ICLR 2019 (as re-run by Liu et al., ICLR 2019)",
    archs={name: model_entry(name).depths for name in list_models()},  # any conv net of the zoo
    select=select,
    notes={"masks": "select returns {conv weight name: bool mask}: use mask_prune_main"},
))
METHOD.describe = describe          # read by mask_prune_main: per-layer densities into prune.json
METHOD.prune_args = WeightPruneArgs  # prune.py's and the sweep's options of select
