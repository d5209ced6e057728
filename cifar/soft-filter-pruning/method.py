"""Soft Filter Pruning (He, Kang, Dong, Fu, Yang, IJCAI 2018): the soft-pruning hook, the layer choice, and
the rule that turns a soft-pruned network into the physically smaller one.

Soft pruning (reference.md 4.3, he-y's ``Mask``): in every selected conv, the int(C_out * (1 - rate))
filters of smallest L2 norm are set to zero (weights only; BN, shortcut and classifier untouched), once
before training and after the training part of every ``epoch_prune``-th epoch and of the last one. Between
two zeroings every weight trains normally, so zeroed filters regrow and the zeroed set can change.

Physically smaller network (beyond the reference, which keeps the masked full-size net): see ``select``.
"""
import copy
import math
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import create_model
from utils.checkpoint import load_state, model_from_checkpoint
from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import hp
from utils.masks import sparse_reinit
from utils.methods import ChannelMethod, register_method
from utils.surgery import prune_channels

ARCH = "resnet_sfp"
DEPTHS = (20, 32, 56, 110)
LAYER_CHOICES = ("all", "inner", "blocks")

# The reference recipe (pruning_cifar10_resnet.py and the README commands, reference.md 3.1 / 4.3 / 5.4).
RECIPE = {"batch_size": 128, "epochs": 200, "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
          "schedule_unit": "epoch", "schedule": [1, 60, 120, 160], "gammas": [10, 0.2, 0.2, 0.2]}
PRETRAINED_LR = 0.001  # the README's SFP command: 10x smaller when starting from a trained model

# The reference scripts' flag spellings that ours name differently (--batch_size, --epoch_prune, --layer_begin ...
# are accepted as they are: every flag with an underscore also takes that spelling).
FLAG_ALIASES = {"lr": ("--learning_rate",), "weight_decay": ("--decay",), "save": ("--save_path",),
                "seed": ("--manualSeed",)}


# ------------------------------------------------------------------------------------------ layers
def conv_indices(model):
    """[(parameter index, name)] of every conv weight, indexed as the reference enumerates
    ``model.parameters()`` (its --layer_begin/--layer_end/--layer_inter count in these indices)."""
    convs = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    return [(i, n) for i, (n, _) in enumerate(model.named_parameters()) if n in convs]


def select_layers(model, prune_layers=None, layer_begin=None, layer_end=None, layer_inter=None):
    """Names of the conv weights soft pruning acts on.

    prune_layers: 'all' (stem + both convs of every block: the reference README's setting), 'inner'
    (each block's conv_a only: the channels a physically smaller network can drop), 'blocks' (conv_a and
    conv_b, not the stem). Or the reference's parameter indices: range(layer_begin, layer_end + 1,
    layer_inter), of which the conv weights count (its masks exist only at conv indices).
    """
    convs = conv_indices(model)
    by_index = dict(convs)
    if any(v is not None for v in (layer_begin, layer_end, layer_inter)):
        if prune_layers is not None:
            raise UserError("--prune-layers and --layer_begin/--layer_end/--layer_inter choose the same thing: "
                            "give one of them")
        begin = 0 if layer_begin is None else layer_begin
        end = convs[-1][0] if layer_end is None else layer_end
        inter = 3 if layer_inter is None else layer_inter
        if begin < 0 or inter < 1 or end < begin:
            raise UserError(f"--layer_begin {begin} --layer_end {end} --layer_inter {inter}: need "
                            f"0 <= begin <= end and inter >= 1")
        names = [by_index[i] for i in range(begin, end + 1, inter) if i in by_index]
        if not names:
            raise UserError(f"--layer_begin {begin} --layer_end {end} --layer_inter {inter} selects no conv weight "
                            f"(they sit at parameter indices {convs[0][0]}, {convs[1][0]}, ..., {convs[-1][0]})")
        return names
    choice = prune_layers or "all"
    if choice == "all":
        return [n for _, n in convs]
    if choice == "inner":
        return [n for _, n in convs if n.endswith("conv_a.weight")]
    if choice == "blocks":
        return [n for _, n in convs if n.endswith(("conv_a.weight", "conv_b.weight"))]
    raise UserError(f"--prune-layers {choice!r}: choose from {', '.join(LAYER_CHOICES)}")


def check_rate(rate):
    if not (0 < rate <= 1) or math.isnan(rate):
        raise UserError(f"--rate {rate}: the kept fraction of filters must lie in (0, 1]")


# ---------------------------------------------------------------------------------------- the rule
def filters_to_zero(weight, rate):
    """Positions of the int(C_out * (1 - rate)) filters with the smallest L2 norm (ties: lower index first)."""
    count = int(weight.shape[0] * (1 - rate))  # float arithmetic as the reference: 16 * (1 - 0.7) = 4.8 -> 4
    if count <= 0:
        return []
    norms = weight.detach().flatten(1).float().norm(p=2, dim=1).cpu()
    return sorted(torch.argsort(norms, stable=True)[:count].tolist())


@torch.no_grad()
def soft_prune(model, names, rate):
    """Zero the smallest filters of each named conv weight in place; {name: zeroed positions}."""
    params = dict(model.named_parameters())
    zeroed = {}
    for n in names:
        w = params[n]
        idx = filters_to_zero(w, rate)
        if idx:
            w[torch.tensor(idx, device=w.device)] = 0
        zeroed[n] = idx
    return zeroed


class SoftFilterPruning(Hook):
    """Soft-prune at train start and after the training part of every ``epoch_prune``-th and the last epoch
    (before that epoch's evaluation). Nothing is masked in between: zeroed filters keep training."""

    def __init__(self, names, rate, epoch_prune=1):
        self.names, self.rate, self.epoch_prune = list(names), rate, epoch_prune
        self.last = {}

    def on_train_start(self, trainer):
        if trainer.start_epoch == 0:  # a resumed run continues from weights saved after the right zeroing
            self.last = soft_prune(trainer.module, self.names, self.rate)

    def on_epoch_end(self, trainer, epoch):
        if epoch % self.epoch_prune == 0 or epoch == trainer.cfg.epochs - 1:
            self.last = soft_prune(trainer.module, self.names, self.rate)


@dataclass
class SFPArgs:
    rate: float = hp(0.7, "kept fraction of filters in every pruned layer (0.7 zeroes 3 of every 10); 1 = the unpruned "
                          "baseline (pruning_cifar10_pretrain.py)")
    prune_layers: Optional[str] = hp(None, "which convs are soft-pruned: all (stem and every block conv, the "
                                           "reference's setting; default), inner (each block's conv_a), blocks "
                                           "(conv_a and conv_b)", choices=list(LAYER_CHOICES))
    layer_begin: Optional[int] = hp(None, "reference spelling: first parameter index of the pruned range "
                                          "(conv weights sit at multiples of 3; default 0)")
    layer_end: Optional[int] = hp(None, "reference spelling: last parameter index (54/90/162/324 for "
                                        "ResNet-20/32/56/110 = the last conv; default)")
    layer_inter: Optional[int] = hp(None, "reference spelling: index step (default 3 = every conv)")
    epoch_prune: int = hp(1, "soft-prune after every N-th epoch (and after the last)")
    pretrained: Optional[str] = hp(None, "start from this trained checkpoint's weights only (the reference's "
                                         "--resume); the LR then defaults to 0.001")


def check_training(arch, depth, sfp):
    """train.py's options, checked before anything is written; the names of the soft-pruned conv weights."""
    check_rate(sfp.rate)
    if arch != ARCH:
        raise UserError(f"--arch {arch}: Soft Filter Pruning is set up for the {ARCH} network "
                        f"(or its names resnet20/32/56/110)")
    if sfp.epoch_prune < 1:
        raise UserError(f"--epoch_prune {sfp.epoch_prune}: must be at least 1")
    return select_layers(create_model(ARCH, depth), sfp.prune_layers, sfp.layer_begin, sfp.layer_end,
                         sfp.layer_inter)


def load_pretrained(model, info, sfp):
    """Copy --pretrained's weights into the new model (weights only, as the reference's --resume: no epoch,
    optimizer or schedule)."""
    if not sfp.pretrained:
        return
    from utils.checkpoint import load_checkpoint
    ckpt = load_checkpoint(sfp.pretrained, "--pretrained")
    spec = model.spec
    source = model_from_checkpoint(ckpt, sfp.pretrained, "--pretrained", spec.arch, spec.depth, info,
                                   load_weights=False)
    if source.spec.cfg != spec.cfg:
        raise UserError(f"--pretrained {sfp.pretrained}: holds a pruned network (cfg {source.spec.cfg}), "
                        f"not the full {spec.arch}-{spec.depth}")
    load_state(model, ckpt["state_dict"], sfp.pretrained, "--pretrained")


# ------------------------------------------------------------------------------ the smaller network
def _bn_constant(bn):
    """What an eval-mode BN emits for an all-zero input channel, after the ReLU that follows it."""
    zero = torch.zeros(1, bn.num_features, 1, 1, dtype=bn.weight.dtype)
    bn = copy.deepcopy(bn).cpu().eval()
    with torch.no_grad():
        return F.relu(bn(zero)).flatten()


def zeroed_filters(conv):
    return (conv.weight.detach().flatten(1).abs().sum(1) == 0).cpu()


def select(model, remove="zeroed"):
    """{cfg index: kept conv_a filters} of the physically smaller network.

    Only the inner channels (conv_a's filters) can go: the residual stream (stem, every conv_b, the
    shortcuts) is shared by all blocks of a stage, and a stream channel is zero only if every contributor
    zeroes it, which SFP's per-layer choice practically never does; those zeroed filters stay (as zeros).
    A zeroed conv_a filter still leaves ReLU(BN(0)) = a constant per channel in conv_b's input.
    remove='exact': drop the zeroed filters whose constant is 0 (eval mode): the outputs do not change.
    remove='zeroed': drop every zeroed conv_a filter, the small network of He et al.; the constant's effect
    on conv_b is folded into the next BN's running mean (``shrink``), exact away from the image border.
    """
    if remove not in ("exact", "zeroed"):
        raise UserError(f"--remove {remove!r}: choose exact or zeroed")
    keep = {}
    for g in model.channel_groups():
        conv, bn = model.get_submodule(g.out[0]), model.get_submodule(g.out[1])
        drop = zeroed_filters(conv)
        if remove == "exact":
            drop &= _bn_constant(bn) == 0
        if drop.any():
            keep[g.cfg_index] = torch.nonzero(~drop).flatten().tolist()
    return keep


def shrink(model, keep, remove="zeroed"):
    """prune_channels, plus (remove='zeroed') the dropped constants folded into conv_b's BN running mean."""
    small = prune_channels(model, keep)
    if remove != "zeroed":
        return small
    groups = {g.cfg_index: g for g in model.channel_groups()}
    with torch.no_grad():
        for idx, kept in keep.items():
            g = groups[idx]
            const = _bn_constant(model.get_submodule(g.out[1]))
            dropped = torch.ones(const.numel(), dtype=torch.bool)
            dropped[torch.tensor(kept, dtype=torch.long)] = False
            conv_b = model.get_submodule(g.inp[0])
            # conv_b of a constant map c_j gives c_j * sum(W[:, j]) wherever the kernel lies inside the image
            shift = (conv_b.weight.detach().cpu()[:, dropped].sum((2, 3)) * const[dropped]).sum(1)
            bn_b = small.get_submodule(g.inp[0].replace("conv_b", "bn_b"))
            bn_b.running_mean -= shift.to(bn_b.running_mean)
    return small


def describe(model, keep, remove="zeroed"):
    zero, positive = 0, 0
    for g in model.channel_groups():
        z = zeroed_filters(model.get_submodule(g.out[0]))
        zero += int(z.sum())
        positive += int((z & (_bn_constant(model.get_submodule(g.out[1])) > 0)).sum())
    stream = sum(int(zeroed_filters(m).sum()) for n, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and not n.endswith("conv_a"))
    return {"remove": remove, "inner_zeroed": zero, "inner_zeroed_constant_nonzero": positive,
            "inner_removed": sum(model.cfg[i] - len(k) for i, k in keep.items()),
            "stream_zeroed_kept": stream}


def check_source(ckpt, model, path):
    if not any(zeroed_filters(m).any() for m in model.modules() if isinstance(m, nn.Conv2d)):
        warnings.warn(f"--model {path}: no conv filter is zero; was it trained with soft filter pruning "
                      f"(train.py --rate < 1)?")


# ---------------------------------------------------------------------------- fine-tune and scratch
@dataclass
class MaskedArgs:
    masked: bool = hp(False, "train the full-size network with the SFP checkpoint's zero pattern as a fixed mask "
                             "(the reference's scratch runs) instead of prune.py's smaller network")


@dataclass
class ScratchSFPArgs(MaskedArgs):
    bug_b6: bool = hp(False, "scratch-B: reproduce the reference's int(400 r) epochs (bug B6) instead of "
                             "int(E r) with E = --epochs 200")


def check_source_kind(ckpt, model, flag, masked):
    if model.spec.arch != ARCH:
        raise UserError(f"{flag}: the checkpoint holds {model.spec.arch}-{model.spec.depth}; the SFP scripts take "
                        f"{ARCH} checkpoints")
    if not masked and "prune" not in ckpt:
        raise UserError(f"{flag}: the checkpoint holds a full-size network (not prune.py's output); pass --masked "
                        f"to use its zero pattern as the mask, or the pruned.pth.tar of prune.py")


def masks_of(ckpt, model):
    """{conv weight name: nonzero pattern} of the checkpoint's weights (every conv, as the reference)."""
    state = ckpt["state_dict"]
    return {f"{n}.weight": state[f"{n}.weight"].ne(0) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def stretch_schedule(schedule, r):
    """[1, int(60 r), int(120 r), int(160 r)]: the one-epoch warm-up stays, the other milestones stretch."""
    return [m if m <= 1 else int(m * r) for m in schedule]


def sfp_budget(stage, base_epochs):
    """scratch-B epochs int(E r) (int(2 E r) with --bug-b6), r = FLOPs(full) / FLOPs(pruned).

    --masked: both counted with the nonzero-weight rule on the SFP weights (reference.md 5.4); the smaller
    network: the dense rule (its zeroed stream filters are re-drawn, so they compute)."""
    from utils.stages import scratch_budget
    args, train_args = stage.hparams, stage.train
    epochs, record = scratch_budget(stage.source, stage.model, stage.info, base_epochs * (2 if args.bug_b6 else 1),
                                    rule="nonzero" if args.masked else "dense", path=stage.source_path)
    if train_args.schedule_unit == "epoch":
        train_args.schedule = stretch_schedule(train_args.schedule, record["flops_ratio"])
    record.update({"flops_rule": "nonzero" if args.masked else "dense", "bug_b6": args.bug_b6,
                   "schedule": list(train_args.schedule)})
    return epochs, record


@dataclass
class RemoveArgs:
    remove: str = hp("zeroed", "which zeroed conv_a filters leave the network: zeroed (all) or exact (those "
                               "whose removal changes no output)", choices=["zeroed", "exact"])


FINETUNE = {"epochs": 40, "lr": 0.001, "schedule": [], "gammas": [], "batch_size": 128, "nesterov": True,
            "weight_decay": 5e-4, "save": "./logs/sfp/finetune"}


@register_method
class SFP(ChannelMethod):
    key = "cifar/soft-filter-pruning"
    name = "sfp"
    paper = "He et al., Soft Filter Pruning for Accelerating Deep Convolutional Neural Networks, IJCAI 2018"
    archs = {ARCH: DEPTHS}
    arch_aliases = {f"resnet{d}": (ARCH, d) for d in DEPTHS}  # the reference's --arch resnet56
    flag_aliases = FLAG_ALIASES
    Hparams = RemoveArgs
    TrainHparams = SFPArgs
    FinetuneHparams = MaskedArgs
    ScratchHparams = ScratchSFPArgs
    defaults = {"train": {"arch": ARCH, "depth": 56, "save": "./logs/sfp", **RECIPE},
                "prune": {"save": "./logs/sfp/pruned"}, "finetune": FINETUNE,
                "scratch": {"save": "./logs/sfp/scratch", **RECIPE}}
    defaults_when = {"train": {"pretrained": {"lr": PRETRAINED_LR}}}  # the README's command from a trained model

    penalized_run = "sfp"

    def trains_penalized(self, stage):
        """Soft pruning at a rate below 1."""
        return stage.hparams.rate != 1

    def validate(self, stage):
        if stage.stage == "train":
            check_training(stage.arch, stage.depth, stage.hparams)
        elif stage.stage == "finetune" or stage.stage.startswith("scratch"):
            flag = "--refine" if stage.stage == "finetune" else "--scratch"
            check_source_kind(stage.source, stage.model, flag, stage.hparams.masked)

    def init_model(self, model, stage):
        if stage.stage == "train":
            load_pretrained(model, stage.info, stage.hparams)
        elif stage.stage.startswith("scratch") and stage.masks is not None:
            sparse_reinit(model, stage.masks)

    def train_hooks(self, stage):
        if stage.stage != "train":
            return []
        names = check_training(stage.model.spec.arch, stage.model.spec.depth, stage.hparams)
        return [] if stage.hparams.rate == 1 else [SoftFilterPruning(names, stage.hparams.rate,
                                                                     stage.hparams.epoch_prune)]

    def source_masks(self, stage):
        return masks_of(stage.source, stage.model) if stage.hparams.masked else None

    def scratch_budget(self, stage, base_epochs):
        return sfp_budget(stage, base_epochs)

    def select(self, model, ctx):
        return select(model, ctx.hparams.remove)

    def shrink(self, model, keep, ctx):
        return shrink(model, keep, ctx.hparams.remove)

    def describe(self, model, keep, ctx):
        return describe(model, keep, ctx.hparams.remove)

    def check_source(self, ckpt, model, path):
        check_source(ckpt, model, path)
