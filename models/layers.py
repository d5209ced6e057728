"""Building blocks shared by the zoo: channel selection and the description of prunable channels."""
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn

from errors import UserError


STAGE_PLANES = (16, 32, 64)  # the CIFAR ResNets' stem/stage widths at width 1


@dataclass
class ResNetWidthOptions:
    """The ResNets' option: every default width times a factor such that the stem keeps a whole number of channels
    (STEM x width: 16 for the CIFAR ResNets, 64 for the ImageNet ones). A CIFAR ResNet's stage widths are not cfg
    entries, so the factor is kept in its spec (``base_width``, the stem's channels) and a pruned network rebuilds
    at its own width."""
    STEM: ClassVar[int] = 16
    width: float = field(default=1.0, metadata={
        "help": "every default width times this factor, such that the stem's channels (16 on CIFAR, 64 on ImageNet) "
                "times it are whole (small networks for CPU runs)", "new_network": True})

    def __post_init__(self):
        if not (self.width > 0 and float(self.width * self.STEM).is_integer()):
            raise UserError(f"--width {self.width}: must be a positive multiple of 1/{self.STEM} ({self.STEM} x width "
                            f"stem channels)")

    def stem(self):
        return int(self.width * self.STEM)

    def kwargs(self, arch, depth):
        return {} if self.width == 1.0 else {"base_width": self.stem()}


def stage_planes(base_width):
    """The three stages' widths for a stem of ``base_width`` channels (16: 16/32/64)."""
    if not (isinstance(base_width, int) and base_width >= 1):
        raise UserError(f"base_width {base_width!r}: must be a positive whole number")
    return tuple(p * base_width // STAGE_PLANES[0] for p in STAGE_PLANES)


class ChannelSelection(nn.Module):
    """Pass on the channels whose entry in ``indexes`` is nonzero (network slimming's channel_selection).

    ``indexes`` is a float 0/1 buffer under the reference's state_dict key (``...select.indexes``). Unlike
    the reference (an nn.Parameter read back to the CPU on every call) it is a buffer, so DDP needs no
    ``find_unused_parameters``, and the gather index is cached and refreshed whenever it is loaded or set.
    """

    def __init__(self, num_channels, selected=None):
        super().__init__()
        ind = torch.ones(num_channels)
        if selected is not None:
            ind.zero_()
            ind[torch.as_tensor(list(selected), dtype=torch.long)] = 1
        self.register_buffer("indexes", ind)
        self.register_buffer("_index", torch.empty(0, dtype=torch.long), persistent=False)
        self._refresh()

    def _refresh(self):
        self._index = torch.nonzero(self.indexes).flatten().to(self.indexes.device)
        self._all = bool(self._index.numel() == self.indexes.numel())

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._refresh()
        return out

    def selected(self):
        return self._index.tolist()

    def set_selected(self, selected):
        self.indexes.zero_()
        self.indexes[torch.as_tensor(list(selected), dtype=torch.long, device=self.indexes.device)] = 1
        self._refresh()

    def forward(self, x):
        if self._all:
            return x
        return x.index_select(1, self._index)


def check_selection(cfg_index, width, num_channels, selected=None):
    """A selection layer can pass on 1..num_channels channels (cfg entry ``cfg_index``); a wrong cfg would
    otherwise surface as an IndexError while building or a shape error in the first forward."""
    if not 1 <= width <= num_channels:
        raise UserError(f"cfg entry {cfg_index} selects {width} channels, the layer before it has "
                        f"{num_channels} (allowed: 1..{num_channels})")
    if selected is not None:
        selected = list(selected)
        if len(selected) != width or len(set(selected)) != width or not all(0 <= i < num_channels for i in selected):
            raise UserError(f"selected channels of cfg entry {cfg_index} must be {width} distinct indices "
                            f"in [0, {num_channels})")


@dataclass
class ChannelGroup:
    """One prunable set of channels and every tensor that carries it.

    ``cfg_index`` is the entry of ``model.cfg`` that holds the group's width. Pruning the group to a subset
    K (positions 0..width-1) slices dim 0 of every tensor of the ``out`` modules (a conv's filters, its BN's
    four vectors), dim 1 of the ``inp`` modules' weights (the consumers), and for channel selection
    narrows the ``select`` modules' kept set; the ``mask`` BNs feed a selection layer and stay whole.
    ``inp_spatial`` is the number of consecutive input features per channel of the ``inp`` consumers: 1 for a
    conv, H*W for a Linear reading a flattened C x H x W map (ImageNet VGG heads: 49). ``sites`` are the modules
    (identities) whose outputs carry the group's channels after their ReLU: where a data-driven rule (EKG) measures
    activation x gradient.
    """
    cfg_index: int
    name: str
    out: list = field(default_factory=list)
    inp: list = field(default_factory=list)
    select: list = field(default_factory=list)
    mask: list = field(default_factory=list)
    inp_spatial: int = 1
    sites: list = field(default_factory=list)


def selection_group(cfg_index, unit, bn, consumer, compact):
    """The channel group of a selection layer ``unit.select`` between BatchNorm ``unit.bn`` and the layer that
    reads it. Reference layout: the BN stays whole (``mask``) and only the selection narrows; compact layout
    (selection first): the BN holds just the selected channels and narrows with them (``out``)."""
    name = (lambda m: f"{unit}.{m}" if unit else m)
    if compact:
        return ChannelGroup(cfg_index, name("select"), out=[name(bn)], select=[name("select")], inp=[name(consumer)])
    return ChannelGroup(cfg_index, name("select"), mask=[name(bn)], select=[name("select")], inp=[name(consumer)])


def compact_selections(model, **options):
    """``model`` rebuilt with option ``compact`` (each selection before its BN, which keeps only the selected
    channels) plus ``options``, with the same weights: an exactly equivalent network (BN is per channel)."""
    import copy
    from .registry import build_from_spec
    if model.spec.options.get("compact"):
        return copy.deepcopy(model)
    state = dict(model.state_dict())
    for g in model.channel_groups():
        for bn, sel in zip(g.mask, g.select):
            index = torch.tensor(model.get_submodule(sel).selected(), dtype=torch.long)
            for key in ("weight", "bias", "running_mean", "running_var"):
                state[f"{bn}.{key}"] = state[f"{bn}.{key}"].index_select(0, index.to(state[f"{bn}.{key}"].device))
    spec = copy.deepcopy(model.spec)
    spec.options.update(compact=True, **options)
    spec.options["selected"] = [m.selected() for m in model.modules() if isinstance(m, ChannelSelection)]
    compact = build_from_spec(spec)
    compact.load_state_dict(state)
    return compact


def init_conv_fan_out(model, bn_gamma):
    """He fan-out normal convs, BN2d gamma=bn_gamma/beta=0 (the reference's CIFAR init)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, bn_gamma)
            nn.init.zeros_(m.bias)
