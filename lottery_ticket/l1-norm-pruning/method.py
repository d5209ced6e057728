"""L1-norm lottery-ticket pruning (the reference's cifar/lottery-ticket/l1-norm-pruning/lottery_vggprune.py,
lottery_resprune.py, lottery_res110prune.py; reference.md 4.6): the filters Li et al.'s rule removes (VGG-16-A,
ResNet-56/110-A/B, imported from cifar/l1-norm-pruning) are zeroed in the full-size network instead of cut
out, so the survivors can be rewound to the initialisation.

--prune large keeps, per pruned layer, the filters with the largest L1 norms (Li et al.); small keeps as many
with the smallest norms; random a seeded random subset of the same size. Only conv weights are masked, as in
the reference (a zeroed filter's BN still trains its beta). The reference indexes with a float 0/1 array, which
modern PyTorch reads as indices 0 and 1, so it zeroes only filters 0 and 1 of each layer (its bug B8); here
exactly the filters that are not kept are zeroed.
"""
from dataclasses import dataclass

import torch

from models import model_entry

from utils.errors import UserError
from utils.flops import model_costs
from utils.hparams import hp
from utils.lottery import LotteryTraining
from utils.masks import apply_masks, masks_from_keep
from utils.methods import MaskMethod, get_method, hparams_of, register_method
from utils.surgery import l1_filter_scores, prune_channels


@dataclass
class FilterPruneArgs:
    variant: str = hp("A", "ResNet-56/110 configuration A or B (VGG-16 has only A)", flags=("-v",),
                      choices=["A", "B"])
    prune: str = hp("large", "which filters survive, as many per layer as Li et al.'s rule keeps: the largest L1 "
                             "norms, the smallest, or a random subset", choices=["large", "small", "random"])
    seed: int = hp(1, "random seed of --prune random")


def reselect(model, keep, how, seed=1):
    """As many filters per group as ``keep`` (the largest-L1 choice) holds, chosen by ``how``."""
    if how == "large":
        return {idx: sorted(int(i) for i in kept) for idx, kept in keep.items()}
    if how not in ("small", "random"):
        raise UserError(f"--prune {how}: choose large, small or random")
    groups = {g.cfg_index: g for g in model.channel_groups()}
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for idx in sorted(keep):
        conv = model.get_submodule(groups[idx].out[0])
        if how == "small":
            order = torch.argsort(l1_filter_scores(conv.weight), stable=True)
        else:
            order = torch.randperm(conv.out_channels, generator=generator)
        out[idx] = sorted(order[:len(keep[idx])].tolist())
    return out


def kept_filters(model, masks):
    """{cfg index: kept positions} of the channel groups whose producing conv lost filters."""
    keep = {}
    for g in model.channel_groups():
        rows = masks[g.out[0] + ".weight"].flatten(1).any(1)
        if not bool(rows.all()):
            keep[g.cfg_index] = torch.nonzero(rows).flatten().tolist()
    return keep


def select(model, masks=None, variant="A", prune="large", seed=1):
    """{conv weight name: bool mask}: whole output filters of the layers the L1-norm targets prune."""
    if masks is not None:
        raise UserError("--model: this checkpoint is already pruned (it carries masks); the L1-norm targets are "
                        "fixed widths, so prune the dense trained model")
    rule = get_method("cifar/l1-norm-pruning")
    keep = reselect(model, rule.select(model, _context(rule, variant)), prune, seed)
    return masks_from_keep(model, keep)


def _context(rule, variant):
    from utils.methods import PruneContext
    return PruneContext(hparams_of(rule.Hparams, variant=variant))


def describe(model, masks, variant="A", prune="large", seed=1):
    """The kept filters and the physically pruned network they amount to (Li et al.'s sizes)."""
    keep = kept_filters(model, masks)
    compact = prune_channels(model, keep)
    base, small = model_costs(model), model_costs(compact)
    return {"kept": {str(k): v for k, v in keep.items()},
            "filters_removed": {str(k): model.cfg[k] - len(v) for k, v in keep.items()},
            "cfg_compact": list(compact.spec.cfg), "params_compact": small["params"], "flops_compact": small["flops"],
            "flops_ratio_compact": base["flops"] / small["flops"]}


@register_method
class LotteryL1Norm(LotteryTraining, MaskMethod):
    """Dense training saves the init; pruning masks Li et al.'s filters; the random-init control (scratch.py)
    keeps the model's own He fan-out init (n = k*k*C_out, density not taken into account) under the mask, as the
    reference's main_scratch_mask.py does."""
    key = "lottery_ticket/l1-norm-pruning"
    name = "lottery-l1-norm"
    paper = "Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017, as lottery tickets (Liu et al., ICLR 2019)"
    archs = {"vgg": model_entry("vgg").depths, "resnet": model_entry("resnet").depths}
    prune_archs = {"vgg": (16,), "resnet": (56, 110)}
    Hparams = FilterPruneArgs
    defaults = {"train": {"arch": "vgg", "depth": 16}, "scratch": {"save": "./logs/lottery/scratch"}}

    def select(self, model, ctx, masks=None):
        hp_ = ctx.hparams
        return select(model, masks, hp_.variant, hp_.prune, hp_.seed)

    def describe(self, model, masks, ctx):
        hp_ = ctx.hparams
        return describe(model, masks, hp_.variant, hp_.prune, hp_.seed)

    def init_model(self, model, stage):
        if stage.stage.startswith("scratch") and stage.masks is not None:
            apply_masks(model, stage.masks)
