"""DenseNet (basic layers, depth 3n+4, DenseNet-40 in the paper) with channel selection.

cfg: 3n+3 ints; the channels each dense layer's conv reads (n per block), each transition's conv reads,
and the classifier reads. Growth and transition outputs are not pruned. ``selected`` as in PreResNet.

``compact=True`` (``compact_model()`` converts) is the same function as a deployable network: every selection in
front of its BatchNorm, which keeps only the selected channels, and every produced channel that no later
layer selects removed from the conv that makes it (``produced``: the output widths of the stem, each dense
layer and each transition, in that order; a dense layer none of whose outputs is read disappears). The
selections then index the smaller concatenations.
"""
import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError

from .layers import ChannelSelection, check_selection, compact_selections, init_conv_fan_out, selection_group
from .registry import build_from_spec, register_model


@dataclass
class DenseNetOptions:
    """The DenseNets' option: the transitions' compression (the reference's --compressionRate)."""
    compression_rate: Optional[float] = field(default=None, metadata={
        "help": "transitions keep floor(C // this) channels (the reference's --compressionRate; 2 for its "
                "densenet-100); default: the architecture's", "flags": ("--compressionRate",)})

    def __post_init__(self):
        if self.compression_rate is not None and not self.compression_rate > 0:
            raise UserError(f"--compression-rate {self.compression_rate}: must be positive")

    def kwargs(self, arch, depth):
        return {} if self.compression_rate is None else {"compression_rate": self.compression_rate}


class DenseLayer(nn.Module):
    def __init__(self, inplanes, width, growth, drop_rate, selected, compact=False):
        super().__init__()
        self.compact = compact
        self.bn1 = nn.BatchNorm2d(width if compact else inplanes)
        self.select = ChannelSelection(inplanes, selected if selected is not None else range(width))
        self.conv1 = nn.Conv2d(width, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate

    def forward(self, x):
        pre = self.bn1(self.select(x)) if self.compact else self.select(self.bn1(x))
        out = self.conv1(self.relu(pre))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return torch.cat((x, out), 1)


class Unread(nn.Module):
    """A compact network's dense layer whose outputs no later layer reads: nothing is computed."""

    def forward(self, x):
        return x


class Transition(nn.Module):
    def __init__(self, inplanes, outplanes, width, selected, compact=False):
        super().__init__()
        self.compact = compact
        self.bn1 = nn.BatchNorm2d(width if compact else inplanes)
        self.select = ChannelSelection(inplanes, selected if selected is not None else range(width))
        self.conv1 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        pre = self.bn1(self.select(x)) if self.compact else self.select(self.bn1(x))
        return F.avg_pool2d(self.conv1(self.relu(pre)), 2)


class DenseNet(nn.Module):
    def __init__(self, depth, cfg, num_classes, in_channels, image_size, growth, compression, drop_rate,
                 selected, compact=False, produced=None):
        super().__init__()
        n = (depth - 4) // 3
        self.cfg, self.n, self.compact = list(cfg), n, compact
        produced = list(produced) if produced is not None else default_produced(n, growth, compression)
        self.produced = produced
        # one entry per selection layer in module order (a dense layer of produced width 0 has none)
        pending = iter(selected) if selected is not None else None
        take = (lambda: next(pending) if pending is not None else None)  # noqa: E731
        inplanes = produced[0]
        self.conv1 = nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False)
        k = 0
        for b in range(3):
            layers = []
            for _ in range(n):
                width = produced[k + 1]
                if width == 0:
                    layers.append(Unread())
                else:
                    chosen = take()
                    check_selection(k, self.cfg[k], inplanes, chosen)
                    layers.append(DenseLayer(inplanes, self.cfg[k], width, drop_rate, chosen, compact))
                inplanes += width
                k += 1
            setattr(self, f"dense{b + 1}", nn.Sequential(*layers))
            if b < 2:
                chosen = take()
                check_selection(k, self.cfg[k], inplanes, chosen)
                setattr(self, f"trans{b + 1}", Transition(inplanes, produced[k + 1], self.cfg[k], chosen, compact))
                inplanes = produced[k + 1]
                k += 1
        self.bn = nn.BatchNorm2d(self.cfg[k] if compact else inplanes)
        chosen = take()
        check_selection(k, self.cfg[k], inplanes, chosen)
        self.select = ChannelSelection(inplanes, chosen if chosen is not None else range(cfg[k]))
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(image_size // 4)
        self.fc = nn.Linear(self.cfg[-1], num_classes)
        init_conv_fan_out(self, bn_gamma=0.5)

    def forward(self, x):
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.dense3(self.trans2(self.dense2(x)))
        x = self.relu(self.bn(self.select(x)) if self.compact else self.select(self.bn(x)))
        return self.fc(self.avgpool(x).flatten(1))

    def _selection_units(self):
        names = []
        for b in range(3):
            names += [f"dense{b + 1}.{i}" for i in range(self.n)]
            if b < 2:
                names.append(f"trans{b + 1}")
        return names

    def channel_groups(self):
        groups = [selection_group(k, u, "bn1", "conv1", self.compact) for k, u in enumerate(self._selection_units())
                  if not isinstance(self.get_submodule(u), Unread)]
        groups.append(selection_group(len(self.cfg) - 1, "", "bn", "fc", self.compact))
        return groups

    def _blocks(self):
        """Per dense block: its concatenation's producers [(conv name, output width)] in order, and the units
        that read it through a selection ('' = the final selection)."""
        units, widths = self._selection_units(), iter(self.produced)
        out, k = [], 0
        for b in range(3):
            convs = ["conv1" if b == 0 else f"trans{b}.conv1"] + [f"dense{b + 1}.{i}.conv1" for i in range(self.n)]
            readers = units[k:k + self.n] + ([units[k + self.n]] if b < 2 else [""])
            out.append(([(c, next(widths)) for c in convs], readers))
            k += self.n + 1
        return out

    def _selection_of(self, unit):
        module = self.get_submodule(unit) if unit else self
        return None if isinstance(module, Unread) else module.select

    def compact_model(self):
        """The equivalent deployable network (see the module docstring): selections before their BNs, and the
        produced channels that no later selection reads cut from the convs that make them."""
        compact = compact_selections(self)  # BNs after the selections, same concatenations
        state = dict(compact.state_dict())
        produced, selected = [], []
        for producers, readers in self._blocks():
            starts = [sum(w for _, w in producers[:i]) for i in range(len(producers))]
            # backwards through the block: a dense layer none of whose outputs a live reader selects is dead, and
            # so are its own reads (a layer reads only what comes before it, so one pass settles it)
            final = self._selection_of(readers[-1])  # the transition / final selection: always live
            read, keep = set(final.selected()), {}
            for i in range(len(producers) - 1, -1, -1):
                width = producers[i][1]
                keep[i] = [c for c in range(width) if starts[i] + c in read]
                if not keep[i] and i == 0:
                    keep[i] = [0]  # the stem / a transition: a conv cannot have no output
                if i and keep[i]:  # dense layer i - 1 (producer i) is live: what it reads is needed
                    sel = self._selection_of(readers[i - 1])
                    read.update(sel.selected() if sel is not None else ())
            renumber, kept_total = {}, 0
            for i, ((conv, width), start) in enumerate(zip(producers, starts)):
                for c in keep[i]:
                    renumber[start + c] = kept_total
                    kept_total += 1
                produced.append(len(keep[i]))
                if i and not keep[i]:  # a dense layer nobody reads: it goes whole
                    unit = conv.rsplit(".", 1)[0]
                    for key in [key for key in state if key.startswith(unit + ".")]:
                        del state[key]
                elif len(keep[i]) < width:
                    state[f"{conv}.weight"] = state[f"{conv}.weight"][torch.tensor(keep[i], dtype=torch.long)]
            for j, unit in enumerate(readers):
                sel = self._selection_of(unit)
                alive = j == len(readers) - 1 or keep[j + 1]
                if sel is not None and alive:
                    selected.append([renumber[c] for c in sel.selected()])
        spec = copy.deepcopy(self.spec)
        spec.options.update(compact=True, produced=produced, selected=selected)
        small = build_from_spec(spec)
        # the selections' indexes are the renumbered ones the spec built; every other tensor comes from ``state``
        loaded = small.load_state_dict({k: v for k, v in state.items() if not k.endswith(".indexes")}, strict=False)
        wrong = loaded.unexpected_keys + [k for k in loaded.missing_keys if not k.endswith(".indexes")]
        if wrong:
            raise RuntimeError(f"compact DenseNet: state does not fit ({wrong[:3]})")
        return small


def default_produced(n, growth, compression):
    """Output widths of the stem, each dense layer and each transition, in module order."""
    produced, inplanes = [2 * growth], 2 * growth
    for b in range(3):
        produced += [growth] * n
        inplanes += n * growth
        if b < 2:
            inplanes = int(inplanes // compression)
            produced.append(inplanes)
    return produced


def default_cfg(n, growth, compression):
    cfg, inplanes = [], 2 * growth
    for b in range(3):
        for _ in range(n):
            cfg.append(inplanes)
            inplanes += growth
        cfg.append(inplanes)  # transition (or, after the last block, classifier) input
        if b < 2:
            inplanes = int(inplanes // compression)
    return cfg


@register_model("densenet", depths=(40, 100), default_depth=40, options=DenseNetOptions, selection=True)
def densenet(depth, num_classes=10, in_channels=3, image_size=32, cfg=None, growth_rate=12,
             compression_rate=1, drop_rate=0.0, selected=None, compact=False, produced=None):
    """DenseNet with basic (non-bottleneck) layers and channel selection (network slimming's DenseNet)."""
    n = (depth - 4) // 3
    cfg = default_cfg(n, growth_rate, compression_rate) if cfg is None else cfg
    if len(cfg) != 3 * n + 3:
        raise UserError(f"cfg has {len(cfg)} entries, DenseNet-{depth} needs {3 * n + 3}")
    if produced is not None and len(produced) != 3 * n + 3:
        raise UserError(f"produced has {len(produced)} entries, DenseNet-{depth} needs {3 * n + 3}")
    return DenseNet(depth, cfg, num_classes, in_channels, image_size, growth_rate, compression_rate,
                    drop_rate, selected, compact, produced)
