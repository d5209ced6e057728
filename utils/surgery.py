"""Pruning surgery, generic over the zoo.

A model describes its prunable channels with ``channel_groups()`` (see models.layers.ChannelGroup). Given
the channels to keep per group, ``prune_channels`` builds the physically smaller model from the narrower
cfg and copies the surviving weights; ``zero_channels`` instead zeroes the removed channels in a copy of
the full model (the mask-implementation view of the same pruning, used to check surgery and to measure
a masked model's accuracy).
"""
import copy

import torch

from models import build_from_spec
from utils.errors import UserError


def _normalise_keep(model, keep):
    groups = {g.cfg_index: g for g in model.channel_groups()}
    out = {}
    for idx, kept in keep.items():
        if idx not in groups:
            raise ValueError(f"cfg entry {idx} is not a prunable channel group of {model.spec.arch}")
        g = groups[idx]
        width = model.cfg[idx]
        kept = sorted(int(k) for k in kept)
        if not kept:
            raise UserError(f"layer {g.name} would be pruned to zero channels")
        if len(set(kept)) != len(kept) or kept[0] < 0 or kept[-1] >= width:
            raise ValueError(f"bad channel list for {g.name}: indices must be distinct and in [0, {width})")
        out[idx] = (g, torch.tensor(kept, dtype=torch.long))
    return out


def _tensors_of(state, module):
    prefix = module + "."
    return [k for k, v in state.items() if k.startswith(prefix) and "." not in k[len(prefix):] and v.dim() >= 1]


def _selection(model, name):
    return model.get_submodule(name)


def prune_channels(model, keep):
    """Return the smaller model that keeps ``keep[cfg_index]`` (positions) of each listed group."""
    plan = _normalise_keep(model, keep)
    state = model.state_dict()
    spec = copy.deepcopy(model.spec)
    slices = {}  # tensor key -> {dim: index}
    new_selected = {}
    for idx, (g, kept) in plan.items():
        spec.cfg[idx] = int(kept.numel())
        for m in g.out:
            for key in _tensors_of(state, m):
                slices.setdefault(key, {})[0] = kept
        inp_index = kept
        if g.inp_spatial != 1:  # a flattened map: channel k is features k*S .. k*S+S-1
            inp_index = (kept[:, None] * g.inp_spatial + torch.arange(g.inp_spatial)).flatten()
        for m in g.inp:
            slices.setdefault(m + ".weight", {})[1] = inp_index
        for m in g.select:
            sel = torch.tensor(_selection(model, m).selected(), dtype=torch.long)
            new_selected[m] = sel[kept].tolist()
    if new_selected or "selected" in spec.options:
        selections = [n for n, mod in model.named_modules() if hasattr(mod, "set_selected")]
        spec.options["selected"] = [new_selected.get(n, _selection(model, n).selected()) for n in selections]
    new_model = build_from_spec(spec)
    new_state = {}
    for key, tensor in state.items():
        for dim, index in slices.get(key, {}).items():
            tensor = tensor.index_select(dim, index.to(tensor.device))
        new_state[key] = tensor
    for m, sel in new_selected.items():
        ind = torch.zeros_like(state[m + ".indexes"])
        ind[torch.tensor(sel, dtype=torch.long)] = 1
        new_state[m + ".indexes"] = ind
    for g in model.channel_groups():
        # a BN kept whole in front of a selection: the channels it no longer passes on get gamma = beta = 0, as
        # the reference's slimming scripts leave them (so a later round or an analysis sorts no stale scales)
        for bn, m in zip(g.mask, g.select):
            dead = torch.ones(state[bn + ".weight"].numel(), dtype=torch.bool)
            dead[new_selected.get(m, _selection(model, m).selected())] = False
            for key in (bn + ".weight", bn + ".bias"):
                new_state[key] = new_state[key].masked_fill(dead.to(new_state[key].device), 0)
    new_model.load_state_dict(new_state)
    return new_model


def zero_channels(model, keep):
    """A copy of ``model`` in which every channel not in ``keep`` outputs exactly zero before its ReLU (a channel
    that only a selection passes on: is ignored by its consumers)."""
    plan = _normalise_keep(model, keep)
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for idx, (g, kept) in plan.items():
            removed = torch.ones(model.cfg[idx], dtype=torch.bool)
            removed[kept] = False
            for m in g.out:
                mod = masked.get_submodule(m)
                mod.weight[removed] = 0
                if mod.bias is not None:
                    mod.bias[removed] = 0
            for m, s in zip(g.mask, g.select):
                sel = torch.tensor(_selection(model, s).selected(), dtype=torch.long)
                bn = masked.get_submodule(m)
                bn.weight[sel[removed]] = 0
                bn.bias[sel[removed]] = 0
            if g.select and not g.mask and not g.out:
                # a selection straight off the residual stream (ResNet-50-2x): nothing produces these channels
                # alone, so the consumers ignore them instead
                for m in g.inp:
                    w = masked.get_submodule(m).weight
                    w[:, removed.repeat_interleave(g.inp_spatial)] = 0
    return masked


def l1_filter_scores(conv_weight):
    """Sum of |W| over each output filter (Li et al.)."""
    return conv_weight.detach().abs().flatten(1).sum(1)


def keep_largest(scores, num_keep):
    """Indices (ascending) of the ``num_keep`` largest scores; ties go to the later index, as the
    reference's ``argsort(...)[::-1][:num_keep]`` does on distinct values."""
    order = torch.argsort(scores, stable=True)
    return sorted(order.flip(0)[:num_keep].tolist())
