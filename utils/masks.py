"""Weight masks: magnitude pruning (unstructured or by filter), mask enforcement during training, the
reference's sparse re-initialisation, and interchange with ``torch.nn.utils.prune``.

A mask set is ``{parameter name: bool tensor of the parameter's shape}`` (True = kept). It travels in
checkpoints under ``masks`` next to the plain state_dict, so ``torch.load(..., weights_only=True)`` reads it.

Selection rules (reference.md 4.4, 4.5): the scores of the pool are sorted ascending, the threshold is the
score at position ``int(total * ratio)`` (or ``(total - nnz) + int(nnz * ratio)`` when pruning a ratio of
the weights that remain), and a weight is kept when its score is strictly greater. Used by
cifar/weight-level and imagenet/weight-level (``weight_level_masks``), lottery_ticket/ and the SFP scratch runs
with ``--masked``.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from utils.engine import Hook
from utils.errors import UserError
from utils.hparams import hp

SCOPES = ("global", "layer")
GRANULARITIES = ("weight", "filter")


def conv_weights(model):
    """{name: parameter} of every Conv2d weight, in module order (the reference's pruning pool)."""
    return {f"{name}.weight": m.weight for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def masks_from_nonzero(model, names=None):
    """Masks that keep exactly the nonzero entries of the given (default: all conv) weights."""
    params = dict(model.named_parameters())
    names = list(conv_weights(model)) if names is None else list(names)
    return {n: params[n].detach().ne(0).cpu() for n in names}


def _scores(weight, granularity, norm):
    w = weight.detach().float().cpu()
    if granularity == "weight":
        return w.abs()
    return w.flatten(1).norm(p=norm, dim=1)  # one score per output filter


def _expand(keep, weight, granularity):
    if granularity == "weight":
        return keep
    return keep.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight).clone()


def _threshold_keep(scores, alive, ratio, of):
    """Keep mask over ``scores`` (flat) by the reference's sorted-threshold rule; ``alive`` = current mask."""
    total = scores.numel()
    if ratio == 0:
        return alive.clone()
    dead = int((~alive).sum())
    if of == "all":
        index = int(total * ratio)
    else:  # a ratio of what remains: the dead come first in the ascending order (their score is 0)
        index = dead + int((total - dead) * ratio)
    if index <= 0:
        return alive.clone()
    scores = torch.where(alive, scores, torch.zeros_like(scores))
    index = min(index, total - 1)
    thre = scores.kthvalue(index + 1).values  # = sort()[index], without sorting ResNet-50's 23M weights
    return (scores > thre) & alive


def magnitude_masks(model, ratio, *, scope="global", granularity="weight", norm=1, of="all", masks=None,
                    names=None):
    """Masks that remove ``ratio`` of the pool by magnitude.

    scope: 'global' (one threshold over all listed weights) or 'layer' (each layer by the ratio).
    granularity: 'weight' (|w|) or 'filter' (the L1 or L2 ``norm`` of each output filter; zeroes whole filters).
    of: 'all' (ratio of every weight/filter) or 'remaining' (ratio of those the current ``masks`` keep).
    names: the parameters in the pool (default: every Conv2d weight).
    """
    if not 0 <= ratio < 1:
        raise UserError(f"--percent {ratio}: must lie in [0, 1)")
    if scope not in SCOPES or granularity not in GRANULARITIES or of not in ("all", "remaining"):
        raise ValueError(f"bad scope/granularity/of: {scope}/{granularity}/{of}")
    params = dict(model.named_parameters())
    names = list(conv_weights(model)) if names is None else list(names)
    current = masks or {}
    scores, alive = {}, {}
    for n in names:
        w = params[n].detach()
        if n in current:
            w = w * current[n].to(w.device)
        scores[n] = _scores(w, granularity, norm)
        m = current.get(n)
        if m is None:
            alive[n] = torch.ones_like(scores[n], dtype=torch.bool)
        elif granularity == "weight":
            alive[n] = m.cpu().bool().clone()
        else:
            alive[n] = m.cpu().flatten(1).any(1)
    out = {}
    if scope == "layer":
        for n in names:
            keep = _threshold_keep(scores[n].flatten(), alive[n].flatten(), ratio, of)
            out[n] = _expand(keep.view_as(scores[n]), params[n], granularity)
    else:
        flat_s = torch.cat([scores[n].flatten() for n in names])
        flat_a = torch.cat([alive[n].flatten() for n in names])
        keep = _threshold_keep(flat_s, flat_a, ratio, of)
        pos = 0
        for n in names:
            k = scores[n].numel()
            out[n] = _expand(keep[pos:pos + k].view_as(scores[n]), params[n], granularity)
            pos += k
    return out


# ------------------------------------------------------- the weight-level rule (cifar/ and imagenet/weight-level)
def check_percent(percent):
    if not 0 < percent < 1:
        raise UserError(f"--percent {percent}: must lie in (0, 1) (the fraction of conv weights to prune)")


def weight_level_masks(model, percent, masks=None):
    """{conv weight name: bool keep mask} by the reference's unstructured rule, the same in its cifar_prune.py and
    ImageNet prune.py (reference.md 4.4, 4.9): one global threshold over the |w| of every Conv2d weight (stem,
    shortcut and transition convs included; Linear, BN and biases never), the value at position int(total *
    percent) of the ascending sort; a weight is kept when |w| > threshold. Weights that ``masks`` already removed
    count as zeros (they sort first and stay pruned)."""
    check_percent(percent)
    return magnitude_masks(model, percent, scope="global", granularity="weight", of="all", masks=masks)


def weight_level_threshold(model, percent):
    """That rule's threshold: sorted_ascending(|w| of all conv weights)[int(total * percent)]."""
    flat = torch.cat([w.detach().float().cpu().abs().flatten() for w in conv_weights(model).values()])
    # the k-th smallest is that sorted entry, without a second full sort of ResNet-50's 23M weights
    return float(flat.kthvalue(int(flat.numel() * percent) + 1).values)


@torch.no_grad()
def apply_masks(model, masks):
    params = dict(model.named_parameters())
    for n, m in masks.items():
        params[n].mul_(m.to(device=params[n].device, dtype=params[n].dtype))


def density(masks):
    """Fraction of the masked weights that are kept."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / max(total, 1)


def empty_layers(masks):
    return [n for n, m in masks.items() if not bool(m.any())]


def check_masks(model, masks, path, flag):
    """A mask set must name parameters of ``model`` with their shapes."""
    params = dict(model.named_parameters())
    for n, m in masks.items():
        if n not in params or tuple(m.shape) != tuple(params[n].shape):
            raise UserError(f"{flag} {path}: mask {n} does not fit {model.spec.arch}-{model.spec.depth}")


class MaskHook(Hook):
    """Keep masked weights exactly zero: the masks are applied before training, the gradients are masked
    before each step (the reference's rule), and the weights re-masked after it, so momentum and weight
    decay cannot revive a pruned weight either."""

    def __init__(self, masks):
        self.masks = {n: m.bool() for n, m in masks.items()}
        self._pairs = None

    def on_train_start(self, trainer):
        params = dict(trainer.module.named_parameters())
        self._pairs = [(params[n], m.to(device=params[n].device, dtype=params[n].dtype))
                       for n, m in self.masks.items()]
        with torch.no_grad():
            for p, m in self._pairs:
                p.mul_(m)

    def after_backward(self, trainer):
        for p, m in self._pairs:
            if p.grad is not None:
                p.grad.mul_(m)

    def after_step(self, trainer):
        with torch.no_grad():
            for p, m in self._pairs:
                p.mul_(m)


@torch.no_grad()
def sparse_reinit(model, masks, generator=None):
    """Fresh weights for a masked network (reference.md 5.3): each masked conv weight is drawn from
    N(0, sqrt(2 / n)) with n = nnz(mask) / C_in (He fan-out for a dense layer, wider as it gets sparser),
    then masked. Other parameters keep the model's own initialisation."""
    params = dict(model.named_parameters())
    for n, m in masks.items():
        w = params[n]
        nnz = int(m.sum())
        if nnz == 0:
            w.zero_()
            continue
        std = math.sqrt(2.0 / (nnz / w.shape[1]))
        w.copy_(torch.randn(w.shape, generator=generator, dtype=w.dtype) * std)
        w.mul_(m.to(w.dtype))


# --------------------------------------------------------------------- torch.nn.utils.prune interchange
def to_torch_prune(model, masks):
    """Reparametrise ``model`` in place the way torch.nn.utils.prune does (``weight_orig`` + ``weight_mask``
    buffers and a forward pre-hook), one ``custom_from_mask`` per masked parameter."""
    from torch.nn.utils import prune
    modules = dict(model.named_modules())
    for n, m in masks.items():
        module_name, _, attr = n.rpartition(".")
        prune.custom_from_mask(modules[module_name], attr, m.to(getattr(modules[module_name], attr).device))
    return model


def from_torch_prune(model):
    """Undo torch.nn.utils.prune reparametrisations in place; return the masks they held (weights stay
    multiplied by their mask, as ``prune.remove`` leaves them)."""
    from torch.nn.utils import prune
    masks = {}
    for module_name, module in model.named_modules():
        for attr in [k[:-5] for k, _ in list(module.named_buffers(recurse=False)) if k.endswith("_mask")]:
            if hasattr(module, attr + "_orig"):
                masks[f"{module_name}.{attr}" if module_name else attr] = getattr(module, attr + "_mask").bool().cpu()
                prune.remove(module, attr)
    return masks


def split_torch_prune_state(state):
    """A state_dict saved from a model pruned with torch.nn.utils.prune (``X.weight_orig``, ``X.weight_mask``)
    as (plain state_dict, masks); a plain state_dict comes back unchanged with no masks."""
    plain, masks = {}, {}
    for k, v in state.items():
        if k.endswith("_orig") and k[:-5] + "_mask" in state:
            base = k[:-5]
            mask = state[base + "_mask"].bool()
            plain[base] = v * mask.to(v.dtype)
            masks[base] = mask.cpu()
        elif k.endswith("_mask") and k[:-5] + "_orig" in state:
            continue
        else:
            plain[k] = v
    return plain, masks


def join_torch_prune_state(state, masks):
    """Our (state_dict, masks) as the state_dict a torch.nn.utils.prune-pruned model saves."""
    out = {}
    for k, v in state.items():
        if k in masks:
            out[k + "_orig"] = v
            out[k + "_mask"] = masks[k].to(v.dtype)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------- iterative schedules, structured masks
def iterative_ratios(rate, rounds, of="remaining"):
    """Per-round ratios for ``magnitude_masks(..., of=of)`` of an iterative schedule that removes ``rate`` of
    the remaining weights each round, so that round k leaves a density of ``(1 - rate) ** k``.

    of='remaining' (the lottery ticket's rule: each round prunes the currently nonzero weights): ``rate``
    every round. of='all' (a one-shot pruner applied to the dense pool, e.g. cifar/weight-level's
    ``--percent``): ``1 - (1 - rate) ** k`` at round k.
    """
    if not 0 <= rate < 1:
        raise UserError(f"--percent {rate}: must lie in [0, 1)")
    if rounds < 1:
        raise UserError(f"--rounds {rounds}: must be at least 1")
    if of == "remaining":
        return [rate] * rounds
    if of == "all":
        return [1 - (1 - rate) ** k for k in range(1, rounds + 1)]
    raise ValueError(f"of must be 'remaining' or 'all', not {of!r}")


def round_density(rate, k):
    """Target density after k rounds of pruning ``rate`` of what remains."""
    return (1 - rate) ** k


def rate_for_density(density, rounds):
    """The per-round rate that reaches ``density`` after ``rounds`` rounds (e.g. 0.2 per round: 5 rounds
    give 0.328)."""
    if not 0 < density <= 1:
        raise UserError(f"density {density}: must lie in (0, 1]")
    return 1 - density ** (1 / rounds)


def masks_from_keep(model, keep, names=None):
    """Filter masks of a structured selection ``{cfg index: kept positions}`` (as ``method.select`` returns):
    the producing conv of each listed channel group loses its other output filters; every other conv
    weight (default pool: all of them) is kept whole. Only conv weights are masked, as the reference's
    mask implementation of filter pruning does."""
    params = dict(model.named_parameters())
    masks = {n: torch.ones_like(params[n], dtype=torch.bool, device="cpu")
             for n in (list(conv_weights(model)) if names is None else names)}
    groups = {g.cfg_index: g for g in model.channel_groups()}
    for idx, kept in keep.items():
        name = groups[idx].out[0] + ".weight"
        if name not in masks:
            raise ValueError(f"{name} (cfg entry {idx}) is not in the masked pool")
        rows = torch.zeros(masks[name].shape[0], dtype=torch.bool)
        rows[torch.as_tensor(list(kept), dtype=torch.long)] = True
        masks[name] &= rows.view(-1, *([1] * (masks[name].dim() - 1)))
    return masks


def checkpoint_masks(ckpt, model, path, flag):
    """The masks a pruned checkpoint carries (``masks``), or for a checkpoint without them (the reference's
    pruned.pth.tar) the nonzero pattern of its conv weights."""
    if "masks" in ckpt:
        masks = {n: m.bool().cpu() for n, m in ckpt["masks"].items()}
        check_masks(model, masks, path, flag)
        return masks
    state = ckpt["state_dict"]
    missing = [n for n in conv_weights(model) if n not in state]
    if missing:
        raise UserError(f"{flag} {path}: no masks and no weight {missing[0]} to read them from")
    masks = {n: state[n].ne(0).cpu() for n in conv_weights(model)}
    check_masks(model, masks, path, flag)  # e.g. a reference lottery file: compact cfg, full-size weights
    return masks


def layer_densities(masks):
    """{name: fraction kept} per masked weight."""
    return {n: int(m.sum()) / max(m.numel(), 1) for n, m in masks.items()}


# ------------------------------------------------------------------------- export (cifar/weight-level)
@dataclass
class ExportArgs:
    model: Optional[str] = hp(None, "masked checkpoint to convert (pruned.pth.tar, or a fine-tune / scratch "
                                    "checkpoint of a masked run)")
    out: Optional[str] = hp(None, "output file: the architecture spec and, under 'state_dict', the state_dict of "
                                  "the network reparametrised by torch.nn.utils.prune (X.weight_orig, X.weight_mask)")
    dataset: str = hp("cifar10", "dataset (the number of classes of a checkpoint without a spec)",
                      choices=["cifar10", "cifar100", "fashionmnist"])
    arch: Optional[str] = hp(None, "architecture; checked against the checkpoint (needed for the reference's)")
    depth: Optional[int] = hp(None, "depth; checked against the checkpoint (needed for the reference's)")


def export_torch_prune(args, log=print):
    """Write a masked checkpoint in torch.nn.utils.prune's form: load it into a network reparametrised with
    ``prune.custom_from_mask`` (so the keys are exactly the ones torch produces) and save that state_dict."""
    import os
    from models import build_from_spec
    from utils.checkpoint import check_writable, save_checkpoint, spec_fields
    from utils.data import dataset_info
    from utils.stages import load_source
    if not args.out:
        raise UserError("--out is required")
    if args.model and os.path.abspath(args.out) == os.path.abspath(args.model):
        raise UserError(f"--out {args.out}: would overwrite --model")
    info = dataset_info(args.dataset)
    ckpt, model = load_source(args.model, "--model", info, args.arch, args.depth)
    masks = checkpoint_masks(ckpt, model, args.model, "--model")
    apply_masks(model, masks)
    state = join_torch_prune_state(model.state_dict(), masks)
    reparametrised = to_torch_prune(build_from_spec(model.spec), masks)
    reparametrised.load_state_dict(state)  # strict: the keys are torch's own
    check_writable(os.path.dirname(os.path.abspath(args.out)), "--out")
    save_checkpoint({**spec_fields(model, ckpt.get("dataset", info.name)), "state_dict": state},
                    os.path.abspath(args.out))
    log(f"{model.spec.arch}-{model.spec.depth}: {len(masks)} masked weights (density {density(masks):.4f}) in "
        f"torch.nn.utils.prune form -> {args.out}")
    return state
