"""Network Slimming's core (Liu et al., ICCV 2017), shared by cifar/network-slimming and imagenet/network-slimming.

Training adds the subgradient of s * sum|gamma| over the BN layers: after backward and before the optimizer step,
s * sign(gamma) is added to each gamma's gradient (sign(0) = 0; beta and everything else untouched; the
optimizer's weight decay still applies to gamma). The reference does this over every BatchNorm2d on CIFAR and over
every BatchNorm2d and BatchNorm1d on ImageNet (``types``).

Pruning gathers |gamma| of those BN layers into one vector of ``total`` values, sorts it ascending and takes
``thre = sorted[int(total * percent)]``; a channel survives iff |gamma| > thre (strictly, so ties at the threshold
go). As in the reference's scripts: a BN whose output feeds a channel-selection layer (PreResNet bn1 and final BN,
every DenseNet BN) stays whole and only the selection narrows; every other BN shrinks with the layer that feeds
it. Unlike the reference, which crashes when a layer keeps no channel (RNP issue #50), such a layer keeps its
strongest channel with a warning, or with ``strict`` the run stops.
"""
import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import hp

BN2D = (nn.BatchNorm2d,)
BN_ALL = (nn.BatchNorm2d, nn.BatchNorm1d)

# "gammas look untrained": for a checkpoint that does not record its training, fewer than MIN_NEAR_ZERO
# of the |gamma| lie below NEAR_ZERO x the largest |gamma|. Sparsity training drives a large share of the
# scales to ~0 (the prunable part); plain training leaves almost none there (init is 0.5).
NEAR_ZERO = 1e-2
MIN_NEAR_ZERO = 0.01


# ------------------------------------------------------------------------------------------ training
class BNSparsity(Hook):
    """After backward, before the step: gamma.grad += s * sign(gamma) for every BN of ``types``."""

    def __init__(self, s, types=(nn.BatchNorm2d,)):
        self.s = float(s)
        self.types = tuple(types)
        self.bns = []

    def on_train_start(self, trainer):
        self.bns = [m for m in trainer.module.modules() if isinstance(m, self.types) and m.weight is not None]
        trainer.log(f"sparsity regularisation: s = {self.s:g} on the gammas of {len(self.bns)} BatchNorm layers "
                    f"({sum(m.num_features for m in self.bns):,} channels)")

    def after_backward(self, trainer):
        add_sparsity_grad(self.bns, self.s)


@torch.no_grad()
def add_sparsity_grad(bns, s):
    for m in bns:
        gamma = m.weight
        if gamma.grad is None:  # a BN outside the loss's graph: the penalty's subgradient alone
            gamma.grad = torch.zeros_like(gamma)
        gamma.grad.add_(torch.sign(gamma.detach()), alpha=s)


@dataclass
class SparsityArgs:
    sparsity_regularization: bool = hp(False, "train with sparsity on the BN scales (L1 subgradient)",
                                       flags=("-sr",))
    s: float = hp(1e-4, "sparsity rate: s * sign(gamma) is added to every BN gamma's gradient")

    def __post_init__(self):  # checked while parsing, before anything is written
        if self.s < 0:
            raise UserError(f"--s {self.s}: the sparsity rate must not be negative")


@dataclass
class SlimmingArgs:
    percent: float = hp(0.5, "fraction of all BN channels below the global threshold, in (0, 1) "
                             "(reference READMEs: VGG-19 0.7, PreResNet-164 and DenseNet-40 0.4 / 0.6)")
    strict: bool = hp(False, "stop with an error when a layer would keep no channel, instead of keeping its "
                             "strongest channel")

    def __post_init__(self):  # checked while parsing, before any file is read
        check_percent(self.percent)


# ------------------------------------------------------------------------------------------- pruning
def bn_layers(model, types=BN2D):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, types)]


def check_percent(percent):
    if not 0 < percent < 1:
        raise UserError(f"--percent {percent}: must lie strictly between 0 and 1")


def global_threshold(model, percent, types=BN2D):
    """(thre, total, index): thre = ascending-sorted |gamma| of all BN layers of ``types`` (the reference: every
    BatchNorm2d on CIFAR, BatchNorm2d and BatchNorm1d on ImageNet) at index int(total*percent)."""
    check_percent(percent)
    gammas = torch.cat([m.weight.detach().abs().flatten() for _, m in bn_layers(model, types)])
    total = gammas.numel()
    index = int(total * percent)  # Python float arithmetic, as the reference: int(5504 * 0.7) = 3852
    return torch.sort(gammas).values[index], total, index


def _group_bn(model, group, types=BN2D):
    """(BN name, channel of that BN for each position of the group): a selection group's positions are
    the selected channels of the BN before it, an ordinary group's are its BN's channels."""
    if group.mask:
        return group.mask[0], model.get_submodule(group.select[0]).selected()
    names = [n for n in group.out if isinstance(model.get_submodule(n), types)]
    if len(names) != 1:
        raise ValueError(f"channel group {group.name} has {len(names)} BatchNorm layers, slimming needs one")
    return names[0], list(range(model.get_submodule(names[0]).num_features))


def _raw_selection(model, percent, types=BN2D):
    """Per channel group: (group, BN name, channels, kept positions by the threshold alone)."""
    thre, _, _ = global_threshold(model, percent, types)
    out, covered = [], set()
    for g in model.channel_groups():
        bn_name, channels = _group_bn(model, g, types)
        alive = model.get_submodule(bn_name).weight.detach().abs() > thre
        out.append((g, bn_name, channels, [p for p, c in enumerate(channels) if alive[c]]))
        covered.add(bn_name)
    missing = [n for n, _ in bn_layers(model, types) if n not in covered]
    if missing:  # their channels would count in the threshold but never be pruned
        raise ValueError(f"BatchNorm layers outside every channel group: {missing}")
    return thre, out


def select(model, percent=0.5, strict=False, types=BN2D):
    """{cfg index: kept positions} for every channel group, by the global BN-scale threshold."""
    thre, groups = _raw_selection(model, percent, types)
    keep = {}
    for g, bn_name, channels, kept in groups:
        if not kept:
            msg = (f"layer {bn_name} keeps no channel at --percent {percent} (all |gamma| <= threshold "
                   f"{float(thre):.4g})")
            if strict:
                raise UserError(msg + "; lower --percent, or drop --strict to keep its strongest channel")
            strength = model.get_submodule(bn_name).weight.detach().abs()[channels]
            best = int(torch.argmax(strength))
            warnings.warn(f"{msg}; keeping its strongest channel {channels[best]} (|gamma| "
                          f"{float(strength[best]):.4g}); the reference crashes here (RNP issue #50)")
            kept = [best]
        keep[g.cfg_index] = kept
    return keep


def _alive_channels(model, keep, types=BN2D):
    """BN name -> set of its channels that survive ``keep`` (a selection group's unselected ones do not)."""
    alive = {}
    for g in model.channel_groups():
        bn_name, channels = _group_bn(model, g, types)
        positions = keep.get(g.cfg_index, range(len(channels)))
        alive[bn_name] = {channels[p] for p in positions}
    return alive


def masked_model(model, keep, types=BN2D):
    """The reference's masked network: a copy with gamma and beta of every pruned BN channel set to 0, so the
    channel outputs exactly 0 before its ReLU."""
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for bn_name, alive in _alive_channels(masked, keep, types).items():
            bn = masked.get_submodule(bn_name)
            dead = torch.ones(bn.num_features, dtype=torch.bool)
            dead[sorted(alive)] = False
            bn.weight[dead] = 0
            bn.bias[dead] = 0
    return masked


def describe(model, keep, percent=0.5, strict=False, types=BN2D):
    """prune.json entries: the threshold and how many BN channels it removed."""
    thre, total, index = global_threshold(model, percent, types)
    _, groups = _raw_selection(model, percent, types)
    alive = _alive_channels(model, keep, types)
    kept = sum(len(a) for a in alive.values())
    return {"threshold": float(thre), "bn_channels": total, "threshold_index": index,
            "bn_channels_pruned": total - kept, "pruned_ratio": (total - kept) / total,
            "layers_kept_strongest_only": [bn for _, bn, _, k in groups if not k]}


def check_source(ckpt, model, path, types=BN2D):
    """Warn (one line) when the checkpoint's BN scales were not trained for sparsity."""
    if "model" in ckpt:  # ours: the training stage recorded its arguments
        args = ckpt.get("args") or {}
        if not args.get("sparsity_regularization"):
            warnings.warn(f"--model {path}: gammas look untrained for slimming: this checkpoint was not trained "
                          f"with sparsity (-sr); train with train.py -sr --s S first")
        return
    gammas = torch.cat([m.weight.detach().abs().flatten() for _, m in bn_layers(model, types)])
    near_zero = float((gammas < NEAR_ZERO * gammas.max()).float().mean())
    if near_zero < MIN_NEAR_ZERO:
        warnings.warn(f"--model {path}: gammas look untrained for slimming: only {100 * near_zero:.2f}% of the "
                      f"{gammas.numel():,} |gamma| lie below {NEAR_ZERO:g} x the largest; "
                      f"train with -sr --s S first")
