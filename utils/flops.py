"""Counting FLOPs, MACs and parameters.

Two conventions, both per image:

* ``count_flops`` is the reference repo's (its compute_flops.py, used for every scratch-B budget): forward
  hooks on leaf modules; a multiply-add is 2 FLOPs; conv ``(2*k*k*Cin/groups + bias) * Cout*Hout*Wout``
  (rule ``dense``) or ``(2*nnz(W) + bias*Cout) * Hout*Wout`` (rule ``nonzero``, for unstructured masks);
  linear ``2*numel(W) + numel(b)``; BatchNorm2d ``2*numel(input)`` (BatchNorm1d not counted); every ReLU
  call ``numel(input)``; MaxPool2d/AvgPool2d modules ``k*k*Cout*Hout*Wout``; Upsample ``12*numel(out)``;
  nothing else (functional ops, adds, concatenations, adaptive pools, channel selection).
* ``count_macs`` is the plain multiply-accumulate count of convs and linears, the "FLOPs" of Li et al.'s
  tables. ``torch.utils.flop_counter`` counts exactly 2 x this (tests check it). With ``bn=True`` it adds
  2 x H x W x C per BatchNorm2d (scale and shift): EKG's official rule (ekg.md 3.3).

Both run a copy of the model in eval mode and leave the model untouched.
"""
import copy

import torch
import torch.nn as nn

from models.layers import ChannelSelection


def _probe(model, image_size, in_channels, hook_fn):
    model = copy.deepcopy(model).cpu().float().eval()
    total = [0]
    handles = [m.register_forward_hook(lambda mod, inp, out: total.__setitem__(0, total[0] + hook_fn(mod, inp[0], out)))
               for m in model.modules() if len(list(m.children())) == 0]
    with torch.no_grad():
        model(torch.zeros(1, in_channels, image_size, image_size))
    for h in handles:
        h.remove()
    return int(total[0])


def _conv_out_positions(out):
    return out.shape[2] * out.shape[3]


def count_flops(model, image_size=None, in_channels=None, rule="dense"):
    """FLOPs per image in the reference convention (see module docstring)."""
    spec = getattr(model, "spec", None)
    image_size = image_size or spec.image_size
    in_channels = in_channels or spec.in_channels
    if rule not in ("dense", "nonzero"):
        raise ValueError(f"rule must be 'dense' or 'nonzero', not {rule!r}")

    def flops(m, x, out):
        if isinstance(m, nn.Conv2d):
            bias = 1 if m.bias is not None else 0
            if rule == "dense":
                kk = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
                return (2 * kk + bias) * m.out_channels * _conv_out_positions(out)
            nnz = int(torch.count_nonzero(m.weight))
            return (2 * nnz + bias * m.out_channels) * _conv_out_positions(out)
        if isinstance(m, nn.Linear):
            return 2 * m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        if isinstance(m, nn.BatchNorm2d):
            return 2 * x.numel()
        if isinstance(m, nn.ReLU):
            return x.numel()
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            return k * k * out.numel()
        if isinstance(m, nn.Upsample):
            return 12 * out.numel()
        return 0

    return _probe(model, image_size, in_channels, flops)


def count_macs(model, image_size=None, in_channels=None, rule="dense", bn=False):
    """Multiply-accumulates of convs and linears per image (Li et al.'s "FLOPs"); rule 'nonzero' counts
    only the nonzero conv weights (unstructured masks); ``bn`` adds 2 per BatchNorm2d output (EKG's counter)."""
    spec = getattr(model, "spec", None)
    image_size = image_size or spec.image_size
    in_channels = in_channels or spec.in_channels
    if rule not in ("dense", "nonzero"):
        raise ValueError(f"rule must be 'dense' or 'nonzero', not {rule!r}")

    def macs(m, x, out):
        if isinstance(m, nn.Conv2d):
            if rule == "nonzero":
                return int(torch.count_nonzero(m.weight)) * _conv_out_positions(out)
            kk = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            return kk * m.out_channels * _conv_out_positions(out)
        if isinstance(m, nn.Linear):
            return m.weight.numel()
        if bn and isinstance(m, nn.BatchNorm2d):
            return 2 * out.numel()
        return 0

    return _probe(model, image_size, in_channels, macs)


def count_params(model):
    """Parameters, counting channel-selection vectors as the reference does (they were parameters there)."""
    n = sum(p.numel() for p in model.parameters())
    return n + sum(m.indexes.numel() for m in model.modules() if isinstance(m, ChannelSelection))


def model_costs(model):
    return {"params": count_params(model), "flops": count_flops(model), "macs": count_macs(model)}
