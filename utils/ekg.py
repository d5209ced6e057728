"""EKG (Lee & Song, "Ensemble Knowledge Guided Sub-network Search and Fine-tuning for Filter Pruning", ECCV 2022)
as its official TensorFlow code runs (../shared/spec/ekg.md), shared by cifar/ekg and any folder that declares
networks with gated channel groups (``ChannelGroup.sites``).

Search (prune.py), on frozen weights after one warm-up pass:
  gates        one per channel group: its width C, a keep-rate r (keeps max(ceil(C r), 1) channels) and a coarse
               step max(1/C, search_step / (convs writing the group)); the kept channels are the best by score
  scores       activation x gradient at the group's sites, |sum over batch and positions| per site and batch, of
               J = CE(labels) + soft-CE(softmax(ensemble logits)), on D_val with BN in batch-statistics mode
  candidates   each gate whose cost (the scores the next coarse step would remove) lies at or below a trimmed
               Otsu threshold proposes to shrink by its step (or, past the target, to the widest width within it)
  selection    argmin over candidates of CE + soft-CE to the ensemble on D_val, each sub-network run with BN in
               batch-statistics mode without touching any running statistic
  ensemble     the running mean of the accepted sub-networks' D_val logits (the full network first)
  stop         when FLOPs(sub-network) / FLOPs(network) <= keep_flops (the fraction KEPT)
Memory bank: K teachers from the history, evenly spread by loss; their logits on the unaugmented training images.
Fine-tuning (finetune.py --knowledge on): two augmented views, CE + adaptive-ensemble KD from the bank.

Data: in-memory sets (CIFAR, Fashion-MNIST: D_val a list of device batches, views by DeviceLoader.view_batches) and
ImageFolder trees (ImageNet: D_val decoded once into a device cache up to --search-cache-gb, the rest re-decoded at
every pass, FolderBatches; the bank built in one pass over the tree in dataset order; the two views by
FolderViewLoader, the bank kept in host memory).

Every sub-network is the full network sliced to its kept channels with each conv / FC kernel rescaled to the
Frobenius norm of the unsliced kernel, which is what the official masked forward computes.
"""
import copy
import hashlib
import math
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import UserError
from utils.flops import count_flops, count_macs
from utils.hparams import hp
from utils.surgery import prune_channels

BANK = "memory_bank.pt"
SEARCH_STATE = "ekg_search.pt"
SEARCH_CACHE_GB = 8.0  # of D_val's decoded crops kept on the search device (ImageFolder datasets)


# ------------------------------------------------------------------------------------------------ options
@dataclass
class EKGHparams:
    keep_flops: float = hp(0.45, "search until FLOPs(sub-network) / FLOPs(network) <= this: the fraction of FLOPs "
                                 "KEPT (the official --search_target_rate; its README's 0.45 removes >= 55%)")
    flops_rule: str = hp("official", "FLOPs of the target: official = conv + FC multiply-accumulates + 2 per "
                                     "BatchNorm output (EKG's counter); reference = this project's FLOPs",
                         choices=["official", "reference"])
    search_step: float = hp(0.2, "coarse step: a gate loses max(1 channel, this / (convs writing its channels)) of "
                                 "its width per search step")
    otsu_trim: float = hp(0.2, "fraction of the gates' costs trimmed from each end before the Otsu threshold")
    subset_per_class: int = hp(256, "warm-up images: the first N of each class of the training set (D_subset)")
    val_per_class: int = hp(32, "search images: the last N of each class of the training set (D_val)")
    search_batch_size: int = hp(256, "batch of the warm-up, the search and the memory bank (BN batch statistics)")
    warmup_epochs: int = hp(1, "passes of SGD over D_subset before the search (the only weight update before "
                               "fine-tuning; 0 = none)")
    warmup_lr: float = hp(1e-3, "warm-up learning rate (Nesterov 0.9, weight decay 5e-4)")
    num_teachers: int = hp(5, "memory bank: K teachers from the search history, evenly spread by loss")
    bank_images: int = hp(0, "memory bank over the first N training images: the fine-tune's --train-subset "
                             "(0 = all)")
    bank_dtype: str = hp("float16", "storage of the bank's logits", choices=["float16", "float32"])
    memory_bank: bool = hp(True, "build the memory bank (finetune.py --knowledge on reads it)")
    quirk_history0: bool = hp(False, "the official first history entry: the last candidate of step 1 with the "
                                     "full network's loss (default: the full network)")
    quirk_fine_rounding: bool = hp(False, "the official fine search: trial keep-rates rounded to 2 decimals, "
                                          "which can move 0 or 2 channels of a 64-channel gate (default: one "
                                          "channel at a time)")
    seed: int = hp(1, "shuffle of D_subset and D_val (the official NumPy seed 1)")

    def __post_init__(self):
        if not 0 < self.keep_flops < 1:
            raise UserError(f"--keep-flops {self.keep_flops}: the fraction of FLOPs kept lies in (0, 1)")
        for name in ("subset_per_class", "val_per_class", "search_batch_size", "num_teachers"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if not 0 < self.search_step <= 1:
            raise UserError(f"--search-step {self.search_step}: must lie in (0, 1]")
        if not 0 <= self.otsu_trim < 0.5:
            raise UserError(f"--otsu-trim {self.otsu_trim}: must lie in [0, 0.5)")
        if self.warmup_epochs < 0 or self.bank_images < 0:
            raise UserError("--warmup-epochs and --bank-images must be >= 0")


@dataclass
class EKGFolderHparams(EKGHparams):
    """The search's options on an ImageFolder dataset (ImageNet): D_val is decoded from files."""
    search_cache_gb: float = hp(SEARCH_CACHE_GB, "keep up to this many GB (1e9 bytes) of D_val's decoded crops "
                                                 "(uint8) on the search device; the images beyond are decoded again "
                                                 "at every pass over D_val (ImageNet's 32 x 1000 at 224 px: 4.8 GB; "
                                                 "0 = decode every pass); changes no result")

    def __post_init__(self):
        super().__post_init__()
        if not self.search_cache_gb >= 0:
            raise UserError(f"--search-cache-gb {self.search_cache_gb}: must be 0 or more")


def official_temperature(num_classes):
    """The official fine-tuning's KD temperature (op_utils.py): 10 with 1000 classes, else 4."""
    return 10.0 if num_classes == 1000 else 4.0


@dataclass
class EKGFinetuneHparams:
    knowledge: str = hp("on", "on: two augmented views, CE + adaptive-ensemble KD from the memory bank next to "
                              "--refine (the paper's fine-tuning, the official --Knowledge); off: one view, CE "
                              "(the official README command)", choices=["on", "off"])
    kd_temperature: Optional[float] = hp(None, "KD temperature T; default: the official op_utils.py's, 10 with 1000 "
                                               "classes (ImageNet), else 4; the KL term is scaled by T, not T^2, as "
                                               "the official code does")
    colour_jitter: float = hp(0.2, "with --knowledge on: contrast and saturation factors in [1-x, 1+x] per image "
                                   "and view (the official draws them per batch; its +-0.2 brightness on the "
                                   "0-255 scale is left out); 0 = flip and crop only")

    def __post_init__(self):
        if self.kd_temperature is not None and not self.kd_temperature > 0:
            raise UserError(f"--kd-temperature {self.kd_temperature}: must be positive")
        if not 0 <= self.colour_jitter < 1:
            raise UserError(f"--colour-jitter {self.colour_jitter}: must lie in [0, 1)")


# ------------------------------------------------------------------------------------------------ gates
@dataclass
class Gate:
    index: int        # cfg entry
    name: str
    channels: int     # C of the unpruned network
    step: float       # coarse step, a fraction of C
    sites: list


def gates_of(model, search_step):
    """The model's gated channel groups; a group written by n convs steps by max(1/C, search_step / n)."""
    out = []
    for g in model.channel_groups():
        if not g.sites:
            continue
        writers = sum(isinstance(model.get_submodule(m), nn.Conv2d) for m in g.out) or 1
        c = model.cfg[g.cfg_index]
        out.append(Gate(g.cfg_index, g.name, c, max(1.0 / c, search_step / writers), list(g.sites)))
    if not out:
        raise UserError(f"{model.spec.arch} has no gated channel groups (EKG needs sites to score)")
    return out


def kept_count(channels, rate):
    """Channels a gate keeps at keep-rate ``rate``: those ranked below max(C r, 1), C r in float32 (the official
    variables), i.e. ceil(C r) for a fractional product, at least 1."""
    product = float(np.float32(channels) * np.float32(rate))
    return int(min(channels, max(1, math.ceil(product))))


def trimmed_otsu(costs, trim):
    """The threshold between the two classes that Otsu's criterion t (m - t) (mean_low - mean_high)^2 separates
    best, over the costs with ceil(trim n) dropped from each end; inf (every gate) with fewer than 3 left."""
    values = sorted(costs)
    k = math.ceil(trim * len(values))
    values = values[k:len(values) - k]
    m = len(values)
    if m < 3:
        return math.inf
    best, best_t = -1.0, 1
    for t in range(1, m - 1):
        low, high = sum(values[:t]) / t, sum(values[t:]) / (m - t)
        crit = t * (m - t) * (low - high) ** 2
        if crit > best:
            best, best_t = crit, t
    return (values[best_t - 1] + values[best_t]) / 2


def gate_cost(scores, rate, step):
    """The importance the next coarse step would remove: scores sorted ascending, entries [round((1-r) C),
    round((1-r+s) C))."""
    c = scores.numel()
    ordered = scores.sort().values
    return float(ordered[round((1 - rate) * c):round((1 - rate + step) * c)].sum())


# ------------------------------------------------------------------------------------------------ sub-networks
def sub_network(base, kept):
    """``base`` sliced to ``kept`` ({cfg index: kept positions}) with every sliced conv / FC kernel rescaled to the
    Frobenius norm of the unsliced one (ekg.md 2.4, 2.11), on ``base``'s device (built there: surgery builds on the
    default device, and a CUDA search must not build, initialise and run its candidates on the CPU)."""
    keep = {i: k for i, k in kept.items() if len(k) < base.cfg[i]}
    device = next(base.parameters()).device
    if keep:
        with torch.device(device):
            net = prune_channels(base, keep).to(device)
    else:
        net = copy.deepcopy(base)
    with torch.no_grad():
        for name, mod in net.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                full = base.get_submodule(name).weight
                if full.shape != mod.weight.shape:
                    norm = mod.weight.norm()
                    if norm > 0:
                        mod.weight.mul_(full.norm() / norm)
    return net


def batch_stat_forward(net, x):
    """``net(x)`` with BatchNorm in batch-statistics mode, updating no running statistic (they go to copies)."""
    state = {**dict(net.named_parameters()), **{k: v.clone() for k, v in net.named_buffers()}}
    was = net.training
    net.train()
    try:
        return torch.func.functional_call(net, state, (x,))
    finally:
        net.train(was)


def soft_ce(target_logits, logits):
    """Cross-entropy of ``logits`` to the soft labels softmax(target_logits), per sample."""
    return -(F.softmax(target_logits, 1) * F.log_softmax(logits, 1)).sum(1)


PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)  # parameterless modules the reference rule counts


def _calls(model, types):
    """[(name, input shape, output shape)] of every call of the modules of ``types`` (a shared module once per call),
    in call order, in one forward of a float CPU copy at the network's input size."""
    probe = copy.deepcopy(model).cpu().float().eval()
    calls = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append((n, tuple(i[0].shape), tuple(o.shape))))
             for n, m in probe.named_modules() if isinstance(m, types)]
    with torch.no_grad():
        probe(torch.zeros(1, model.spec.in_channels, model.spec.image_size, model.spec.image_size))
    for h in hooks:
        h.remove()
    return calls


def _call_groups(model, calls):
    """The cfg index of the channel group each call's output carries (an int width: no group): found by running the
    network rebuilt with a width of its own for every group, each unlike any width of the calls of ``model``."""
    from models import build_from_spec
    groups = sorted({g.cfg_index for g in model.channel_groups()})
    taken = {shape[1] for _, _, shape in calls}
    probe_widths = [w for w in range(1, len(groups) + len(taken) + 1) if w not in taken][:len(groups)]
    spec = model.spec.to_dict()
    for i, w in zip(groups, probe_widths):
        spec["cfg"][i] = w
    owner = dict(zip(probe_widths, groups))
    probed = _calls(build_from_spec(spec), PER_CHANNEL)
    if [n for n, _, _ in probed] != [n for n, _, _ in calls]:
        raise RuntimeError(f"{model.spec.arch}: its calls of {', '.join(t.__name__ for t in PER_CHANNEL)} change with "
                           f"its widths; EKG's width cost cannot model it")
    out = []
    for (name, _, full), (_, _, small) in zip(calls, probed):
        if small[1] in owner:
            out.append(("group", owner[small[1]]))
        elif small[1] == full[1]:
            out.append(full[1])
        else:
            raise RuntimeError(f"{name}: {full[1]} channels that no channel group of {model.spec.arch} explains")
    return out


class WidthCost:
    """FLOPs of the network as a function of its group widths, exact and without building it: each conv / FC costs
    a fixed amount per (input channel x output channel) and each BN per channel, at the unpruned network's spatial
    sizes; by the reference rule each call of a ReLU, max-pool or average-pool module (count_flops: numel of the input,
    k x k x numel of the output) also costs a fixed amount per channel, of the group its output carries. ``check``
    compares it with the real counter on a built network."""

    def __init__(self, model, rule):
        self.rule, self.cfg = rule, list(model.cfg)
        out_of, in_of = {}, {}
        for g in model.channel_groups():
            out_of.update({m: ("group", g.cfg_index) for m in g.out})
            in_of.update({m: ("group", g.cfg_index) for m in g.inp})
        probe = copy.deepcopy(model).cpu().float().eval()
        shapes = {}
        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, o.shape))
                 for n, m in probe.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
        with torch.no_grad():
            probe(torch.zeros(1, model.spec.in_channels, model.spec.image_size, model.spec.image_size))
        for h in hooks:
            h.remove()
        per_mac = 1 if rule == "official" else 2
        self.terms = []  # (per in x out, input width, output width, per output channel)
        for name, mod in model.named_modules():
            if name not in shapes:
                continue
            hw = shapes[name][2] * shapes[name][3] if len(shapes[name]) == 4 else 1
            bias = getattr(mod, "bias", None) is not None and rule == "reference"
            if isinstance(mod, nn.Conv2d):
                if mod.groups != 1:
                    raise UserError(f"{name}: EKG's width cost does not model grouped convolutions")
                kk = mod.kernel_size[0] * mod.kernel_size[1]
                self.terms.append((per_mac * kk * hw, in_of.get(name, mod.in_channels),
                                   out_of.get(name, mod.out_channels), bias * hw))
            elif isinstance(mod, nn.Linear):
                self.terms.append((per_mac, in_of.get(name, mod.in_features), out_of.get(name, mod.out_features),
                                   int(bias)))
            else:
                self.terms.append((0, 1, out_of.get(name, mod.num_features), 2 * hw))
        calls = _calls(model, PER_CHANNEL) if rule == "reference" else []
        if calls:
            modules = dict(model.named_modules())
            for (name, inp, out), width in zip(calls, _call_groups(model, calls)):
                mod = modules[name]
                if isinstance(mod, nn.ReLU):
                    per_channel = math.prod(inp) // inp[1]
                else:
                    k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
                    per_channel = k * k * math.prod(out) // out[1]
                self.terms.append((0, 1, width, per_channel))
        self.full = self(self.cfg)

    def __call__(self, widths):
        """FLOPs at ``widths``: a whole cfg, or {cfg index: width} over the unpruned cfg."""
        if isinstance(widths, dict):
            widths = [widths.get(i, w) for i, w in enumerate(self.cfg)]

        def width(ref):
            return widths[ref[1]] if isinstance(ref, tuple) else ref
        return sum(a * width(i) * width(o) + c * width(o) for a, i, o, c in self.terms)

    def check(self, net):
        """The real counter's FLOPs of ``net``; an error if the width cost disagrees (a layer it does not model)."""
        counted = count_macs(net, bn=True) if self.rule == "official" else count_flops(net)
        if counted != self(net.cfg):
            raise RuntimeError(f"EKG's width cost {self(net.cfg)} != counted FLOPs {counted} of {net.spec.arch} cfg "
                               f"{net.cfg}: the network has layers the width cost does not model")
        return counted


# ------------------------------------------------------------------------------------------------ the search
def class_split(labels, first, last, seed):
    """(D_subset, D_val) positions: the first ``first`` and the last ``last`` images of each class (in dataset
    order), each set shuffled once with ``seed`` (ekg.md 2.2). A class with fewer than first + last images is an
    error: the two sets must not overlap."""
    g = torch.Generator().manual_seed(seed)
    sub, val = [], []
    for c in labels.unique().tolist():
        where = torch.nonzero(labels == c).flatten()
        if where.numel() < first + last:
            raise UserError(f"class {c} has {where.numel()} training images, fewer than --subset-per-class {first} "
                            f"+ --val-per-class {last}")
        sub.append(where[:first])
        val.append(where[-last:].flip(0))
    sub, val = torch.cat(sub), torch.cat(val)
    return sub[torch.randperm(sub.numel(), generator=g)], val[torch.randperm(val.numel(), generator=g)]


class FolderBatches:
    """D_val of an ImageFolder dataset as the search reads it, pass after pass: batches (normalised images, labels) on
    the device, the same at every pass. The first images, as many whole batches as ``cache_bytes`` hold as uint8
    crops, are decoded once and kept on the device; the others are decoded again at every pass by a loader over just
    them (they start on a batch boundary, so the batches are those of one loader over all the images). The loaders
    are asked for unnormalised pixel values (mean 0, std 1/255), which round back to the exact uint8 crops;
    normalising those is the FolderLoader's own arithmetic, so every batch equals the plain loader's bit for bit.

    ``loader_of(images, info, batch_size)``: an evaluation loader (PruneContext.loader_of)."""

    def __init__(self, images, info, batch_size, loader_of, cache_bytes):
        import dataclasses
        c, size = info.in_channels, info.image_size
        n = len(images)
        self.cached = min(n, int(cache_bytes // (c * size * size)) // batch_size * batch_size)
        raw = dataclasses.replace(info, mean=(0.0,) * c, std=(1 / 255,) * c)
        head = loader_of(images.select(torch.arange(self.cached)), raw, batch_size) if self.cached else None
        self.tail = loader_of(images.select(torch.arange(self.cached, n)), raw, batch_size) if self.cached < n else None
        device = (head if head is not None else self.tail).device
        self.mean = torch.tensor(info.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(info.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.labels = images.labels.to(device)
        self.head = [(self._uint8(x), y) for x, y in head] if head is not None else []

    @staticmethod
    def _uint8(x):
        return x.round_().clamp_(0, 255).to(torch.uint8)

    def _normalise(self, x_uint8):
        return x_uint8.float().div_(255).sub_(self.mean).div_(self.std)

    def __len__(self):
        return len(self.head) + (len(self.tail) if self.tail is not None else 0)

    def __iter__(self):
        for x, y in self.head:
            yield self._normalise(x), y
        if self.tail is not None:
            for x, y in self.tail:
                yield self._normalise(self._uint8(x)), y


class EKGSearch:
    """The search of ekg.md 2.5-2.9 on ``base`` (frozen; warmed up by the caller) over ``val`` batches
    [(images, labels), ...] (a list, or any iterable giving the same batches at every pass with their ``labels``:
    FolderBatches) with BN batch statistics. ``state_path``: after every accepted step the whole state is
    written there, and a search started with an existing state of the same configuration continues from it."""

    def __init__(self, base, hparams, val, log=print, state_path=None, fingerprint=None):
        self.base, self.hp, self.val, self.log = base, hparams, val, log
        self.gates = gates_of(base, hparams.search_step)
        self.cost = WidthCost(base, hparams.flops_rule)
        self.state_path, self.fingerprint = state_path, fingerprint
        self.labels = val.labels if hasattr(val, "labels") else torch.cat([y for _, y in val])
        self.rates = {g.index: 1.0 for g in self.gates}
        self.kept = {g.index: list(range(g.channels)) for g in self.gates}
        self.ensemble, self.members, self.history, self.steps, self.elapsed = None, 0, [], 0, 0.0

    # ---------------------------------------------------------------- state
    def widths(self, kept=None):
        kept = self.kept if kept is None else kept
        return {i: len(k) for i, k in kept.items()}

    def ratio(self, kept=None):
        return self.cost(self.widths(kept)) / self.cost.full

    def state(self):
        return {"fingerprint": self.fingerprint, "rates": {str(k): v for k, v in self.rates.items()},
                "kept": {str(k): v for k, v in self.kept.items()}, "ensemble": self.ensemble, "members": self.members,
                "history": self.history, "steps": self.steps, "elapsed": self.elapsed,
                "state_dict": self.base.state_dict()}

    def load(self, state):
        self.rates = {int(k): float(v) for k, v in state["rates"].items()}
        self.kept = {int(k): list(v) for k, v in state["kept"].items()}
        self.ensemble, self.members = state["ensemble"].to(self.labels.device), int(state["members"])
        self.history, self.steps, self.elapsed = list(state["history"]), int(state["steps"]), float(state["elapsed"])
        self.base.load_state_dict(state["state_dict"])

    def save(self):
        if self.state_path is not None:
            save_checkpoint(self.state(), self.state_path)

    def resume(self):
        """Continue a saved search of the same configuration; True if there was one."""
        if self.state_path is None or not os.path.exists(self.state_path):
            return False
        state = load_checkpoint(self.state_path, "--save")
        if state.get("fingerprint") != self.fingerprint:
            raise UserError(f"--save: {self.state_path} holds an EKG search of another network or other options; "
                            f"choose another --save, or delete that file to start over")
        self.load(state)
        self.log(f"resumed the search at step {self.steps} (FLOPs kept {self.ratio():.4f})")
        return True

    # ---------------------------------------------------------------- measurements
    def evaluate(self, kept):
        """(D_val logits, CE, CE + soft-CE to the ensemble) of the sub-network ``kept``."""
        net = sub_network(self.base, kept)
        with torch.no_grad():
            logits = torch.cat([batch_stat_forward(net, x).float() for x, _ in self.val])
        ce = float(F.cross_entropy(logits, self.labels))
        score = ce if self.ensemble is None else ce + float(soft_ce(self.ensemble, logits).mean())
        return logits, ce, score

    def scores(self):
        """Per gate, per channel of the unpruned network: sum over D_val batches and sites of |sum a dJ/da| (0 for
        a pruned channel), J = CE + soft-CE to the ensemble, summed over the batch / the search batch size."""
        net = sub_network(self.base, self.kept)
        for p in net.parameters():
            p.requires_grad_(False)  # gradients of the activations only
        acts = {}

        def keep_act(name):
            def hook(mod, inp, out):
                out.requires_grad_(True)
                acts[name] = out
            return hook

        sites = {s: g for g in self.gates for s in g.sites}
        handles = [net.get_submodule(s).register_forward_hook(keep_act(s)) for s in sites]
        total = {g.index: torch.zeros(g.channels, dtype=torch.float64) for g in self.gates}
        start = 0
        try:
            for x, y in self.val:
                acts.clear()
                with torch.enable_grad():
                    z = batch_stat_forward(net, x).float()
                    j = F.cross_entropy(z, y, reduction="sum")
                    j = j + soft_ce(self.ensemble[start:start + len(y)], z).sum()
                    names = list(acts)
                    grads = torch.autograd.grad(j / self.hp.search_batch_size, [acts[n] for n in names])
                for name, grad in zip(names, grads):
                    g = sites[name]
                    per_channel = (acts[name].detach() * grad).sum((0, 2, 3)).abs().double().cpu()
                    total[g.index][torch.tensor(self.kept[g.index])] += per_channel
                start += len(y)
        finally:
            for h in handles:
                h.remove()
        return total

    # ---------------------------------------------------------------- the loop
    def shrink(self, gate, scores, count):
        """The gate's ``count`` best kept channels by score (a pruned channel never returns), in index order."""
        kept = torch.tensor(self.kept[gate.index])
        best = kept[scores[kept].argsort(descending=True, stable=True)[:count]]
        return sorted(best.tolist())

    def candidate(self, gate, scores):
        """(kept, rate) of the gate's proposal: one coarse step; past the target, the widest width that meets it."""
        current = len(self.kept[gate.index])
        rate = round(self.rates[gate.index] - gate.step, 5)
        count = min(kept_count(gate.channels, rate), current - 1)
        trial = dict(self.widths())
        trial[gate.index] = count
        if self.cost(trial) / self.cost.full < self.hp.keep_flops:
            count, rate = self.fine_search(gate, count, rate, current, trial)
        kept = dict(self.kept)
        kept[gate.index] = self.shrink(gate, scores, count)
        return kept, rate

    def fine_search(self, gate, count, rate, current, trial):
        """Raise the gate's width from ``count`` while the FLOPs kept stay within the target (ekg.md 2.6)."""
        target = self.hp.keep_flops
        if self.hp.quirk_fine_rounding:  # the official: rates raised by 1/C, each rounded to 2 decimals
            r = rate
            while True:
                nxt = round(r + 1.0 / gate.channels, 2)
                n = min(kept_count(gate.channels, nxt), current - 1)
                trial[gate.index] = n
                if nxt >= self.rates[gate.index] or self.cost(trial) / self.cost.full > target:
                    return min(kept_count(gate.channels, r), current - 1), r
                r = nxt
        while count + 1 < current:
            trial[gate.index] = count + 1
            if self.cost(trial) / self.cost.full > target:
                break
            count += 1
        return count, count / gate.channels

    def step(self):
        t0 = time.time()
        scores = self.scores()
        costs = {g.index: gate_cost(scores[g.index], self.rates[g.index], g.step) for g in self.gates
                 if self.rates[g.index] > 0 and len(self.kept[g.index]) > 1}
        if not costs:
            raise UserError(f"EKG: every gate is down to one channel at FLOPs kept {self.ratio():.4f}, above "
                            f"--keep-flops {self.hp.keep_flops}")
        tau = trimmed_otsu(list(costs.values()), self.hp.otsu_trim)
        chosen = [g for g in self.gates if g.index in costs and costs[g.index] <= tau]
        best = None
        for gate in chosen:
            kept, rate = self.candidate(gate, scores[gate.index])
            logits, ce, score = self.evaluate(kept)
            if best is None or score < best[0]:
                best = (score, gate, kept, rate, logits, ce)
        score, gate, kept, rate, logits, ce = best
        if self.hp.quirk_history0 and self.steps == 0:
            # the official entry 0: the gates as the candidate loop of step 1 left them (its last candidate)
            last = self.candidate(chosen[-1], scores[chosen[-1].index])[0]
            self.history[0].update(widths={str(k): len(v) for k, v in last.items()},
                                   kept={str(k): list(v) for k, v in last.items()})
        self.kept[gate.index], self.rates[gate.index] = kept[gate.index], rate
        self.steps += 1
        self.history.append({"step": self.steps, "gate": gate.name, "widths": {str(k): len(v) for k, v in
                                                                                self.kept.items()},
                             "kept": {str(k): list(v) for k, v in self.kept.items()}, "loss": ce, "score": score,
                             "flops_kept": self.ratio(), "candidates": len(chosen)})
        self.ensemble = (self.members * self.ensemble + logits) / (self.members + 1)
        self.members += 1
        self.elapsed += time.time() - t0
        self.save()
        self.log(f"step {self.steps}: {gate.name} -> {len(kept[gate.index])} of {gate.channels} channels "
                 f"({len(chosen)} candidates), loss {ce:.4f}, score {score:.4f}, FLOPs kept {self.ratio():.4f} "
                 f"({time.time() - t0:.2f} s)")

    def run(self, prepare=None):
        """Search until the target; returns {cfg index: kept positions}. ``prepare(network)`` (the warm-up) runs
        first unless a saved search is resumed."""
        if not self.resume():
            if prepare is not None:
                prepare(self.base)
            logits, ce, _ = self.evaluate(self.kept)
            self.ensemble, self.members = logits, 1
            self.history = [{"step": 0, "gate": None, "widths": {str(k): len(v) for k, v in self.kept.items()},
                             "kept": {str(k): list(v) for k, v in self.kept.items()}, "loss": ce, "score": None,
                             "flops_kept": 1.0, "candidates": 0}]
            self.save()
        while self.ratio() > self.hp.keep_flops:
            self.step()
        return {i: list(k) for i, k in self.kept.items()}



# ------------------------------------------------------------------------------------------------ memory bank
def pick_teachers(history, k):
    """Indices into ``history`` of the K teachers (ekg.md 2.10): without the last entry (the pruned network),
    sorted by loss (ties by position), the entry nearest each of L_min + i (L_max - L_min) / K, i = 0..K-1, not
    chosen before; ordered from the lowest loss. Fewer entries than K: all of them."""
    pool = sorted(range(len(history) - 1), key=lambda i: (history[i]["loss"], i))
    if not pool:
        raise UserError("EKG: the search took no step, so there is no teacher for the memory bank")
    k = min(k, len(pool))
    lo, hi = history[pool[0]]["loss"], history[pool[-1]]["loss"]
    chosen = []
    for i in range(k):
        target = lo + i * (hi - lo) / k
        free = [j for j in pool if j not in chosen]
        chosen.append(min(free, key=lambda j: (abs(history[j]["loss"] - target), pool.index(j))))
    return chosen


def labels_digest(labels):
    return hashlib.sha1(labels.to(torch.int64).cpu().numpy().tobytes()).hexdigest()


def build_bank(base, history, teachers, loader, dtype):
    """Logits [N, classes, K] of the teacher sub-networks on the loader's images (in its order, unaugmented), BN in
    batch-statistics mode, all teachers in one pass over the images; the labels alongside, to check against the
    fine-tune's training set."""
    nets = [sub_network(base, {int(i): k for i, k in history[t]["kept"].items()}) for t in teachers]
    n = loader.num_images  # filled in place: ImageNet's bank (1.28M x 1000 x 5 in float16) is 12.8 GB
    out, labels, start = None, torch.empty(n, dtype=torch.long), 0
    with torch.no_grad():
        for x, y in loader:
            z = torch.stack([batch_stat_forward(net, x).float() for net in nets], 2).to(getattr(torch, dtype)).cpu()
            if out is None:
                out = torch.empty((n,) + tuple(z.shape[1:]), dtype=z.dtype)
            out[start:start + len(y)], labels[start:start + len(y)] = z, y.cpu()
            start += len(y)
    if start != n:
        raise RuntimeError(f"the bank's loader gave {start} images, not its {n}")
    return out, labels


# ------------------------------------------------------------------------------------------------ fine-tuning
def kl_t(p, q, t):
    """T x KL(softmax(p/T) || softmax(q/T)) per sample (the official scales by T, not T^2)."""
    log_p = F.log_softmax(p / t, 1)
    return t * (log_p.exp() * (log_p - F.log_softmax(q / t, 1))).sum(1)


def ensemble_target(teachers, students, t):
    """The adaptive ensemble of ekg.md 2.12: teacher 0 (the lowest loss) always, teacher k when the batch's summed
    KL_T(t0 || t_k) is below the student's summed KL_T(t0 || mean of the views); the mean of those logits."""
    t0 = teachers[..., 0]
    d_student = kl_t(t0, torch.stack(students).mean(0).detach(), t).sum()
    selected = [0] + [k for k in range(1, teachers.shape[-1]) if kl_t(t0, teachers[..., k], t).sum() < d_student]
    return teachers[..., selected].mean(-1), selected


def kd_objective(temperature):
    """CE on each view + KL_T from the adaptive ensemble of the bank's teachers, averaged over the views; the
    targets are (labels, teacher logits [B, classes, K])."""
    def objective(trainer, inputs, outputs, targets):
        y, teachers = targets
        views = list(outputs.float().chunk(outputs.shape[0] // y.shape[0]))
        target, _ = ensemble_target(teachers.float(), views, temperature)
        return sum(F.cross_entropy(s, y) + kl_t(target, s, temperature).mean() for s in views) / len(views)
    return objective


class KnowledgeLoader:
    """Two augmented views per image, with the labels and the bank's teacher logits looked up by dataset index:
    batches (images [2B, ...], (labels [B], teachers [B, classes, K])). ``loader``: anything with ``view_batches``
    (DeviceLoader, FolderViewLoader). The bank sits on ``bank_device`` (default the loader's: an in-memory set's);
    a folder dataset's stays in host memory (ImageNet's: 12.8 GB) and only each batch's rows move."""

    def __init__(self, loader, bank, jitter, bank_device=None):
        self.loader, self.jitter = loader, jitter
        self.bank = bank.to(loader.device if bank_device is None else bank_device)

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y, idx in self.loader.view_batches(2, self.jitter):
            yield x, (y, self.bank[idx.to(self.bank.device)].to(x.device, non_blocking=True))


class FolderViews(torch.utils.data.Dataset):
    """Key (index, epoch) -> (uint8 views [V, C, S, S], label, index): one training view per seed of ``seeds``, each
    drawn exactly as the FolderLoader draws its one view with that seed (the reference augmentation: torchvision's
    RandomResizedCrop + flip, or the fast loader's sampler of it), the file decoded once. With ``decode_here`` off
    (the fast loader on CUDA) the JPEG bytes instead, decoded and cropped on the device by FolderViewLoader."""

    def __init__(self, ds, size, seeds, mode, decode_here):
        from utils.imagefolder import _reference_transform
        self.ds, self.size, self.seeds, self.mode, self.decode_here = ds, size, list(seeds), mode, decode_here
        self.transform = _reference_transform(True, size, "reference")

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        from utils.imagefolder import _decode_error, decode, seeded_global_rng, train_view
        index, epoch = key
        path, label = self.ds.paths[index], self.ds.labels[index]
        if self.mode == "reference":
            from torchvision.datasets.folder import pil_loader
            try:
                img = pil_loader(path)
            except Exception as exc:  # PIL raises several kinds on a damaged file
                raise _decode_error(path, exc) from None
            views = []
            for seed in self.seeds:
                with seeded_global_rng(seed, epoch, index):
                    views.append(self.transform(img))
            return torch.stack(views), label, index
        from torchvision.io import read_file
        data = read_file(path)
        if not self.decode_here:
            return data, label, index
        img = decode([data], [path], "cpu")[0]
        return torch.stack([train_view(img, s, epoch, index, self.size).contiguous() for s in self.seeds]), label, index


def _collate_bytes(batch):
    return [b[0] for b in batch], torch.stack([b[1] for b in batch]), torch.tensor([b[2] for b in batch])


class FolderViewLoader:
    """The two-view, index-returning path of a training FolderLoader (ImageNet), as DeviceLoader.view_batches is for
    in-memory sets: the same batches, order, epochs and torchrun split (the FolderLoader's own sampler), each image
    decoded once and cropped ``views`` times. View 1 is the FolderLoader's view (same seed); view v draws with seed
    x 7919 + v, so a resumed run sees the same batches. Reference augmentation only (not --augment sss)."""

    def __init__(self, loader, views=2):
        if not loader.train:
            raise ValueError("FolderViewLoader is for training loaders")
        if loader.augment != "reference":
            raise UserError(f"--augment {loader.augment}: EKG's two views are the reference augmentation (random-"
                            f"resized crop + flip, then --colour-jitter); use --augment reference")
        self.base, self.views, self.device = loader, int(views), loader.device
        self.seeds = [loader.seed] + [loader.seed * 7919 + v for v in range(1, self.views)]
        decode_here = not loader.on_device
        workers = loader.loader.num_workers
        self.loader = torch.utils.data.DataLoader(
            FolderViews(loader.ds, loader.size, self.seeds, loader.mode, decode_here), batch_sampler=loader.sampler,
            num_workers=workers, persistent_workers=workers > 0, collate_fn=None if decode_here else _collate_bytes,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers > 0 else None)

    def set_epoch(self, epoch):
        self.base.set_epoch(epoch)

    @property
    def num_images(self):
        return self.base.num_images

    def __len__(self):
        return len(self.base)

    def _device_views(self, datas, index, epoch):
        from utils.imagefolder import decode, train_view
        images = decode(datas, [self.base.ds.paths[i] for i in index], self.device)
        return torch.stack([torch.stack([train_view(img, s, epoch, i, self.base.size) for s in self.seeds])
                            for img, i in zip(images, index)])

    def _jitter_plan(self, epoch, view, amount):
        """Contrast and saturation factors in [1 - amount, 1 + amount] of every image, for ``view`` of ``epoch``."""
        g = torch.Generator().manual_seed((int(self.base.seed) * 7919 + 1000 + view) * 1_000_003 + int(epoch))
        n = len(self.base.ds)
        return tuple(1 + amount * (2 * torch.rand(n, generator=g) - 1) for _ in range(2))

    def view_batches(self, views=2, jitter=0.0):
        """(images [views x B, ...] view by view, labels [B], dataset indices [B]) on the device; ``jitter`` > 0: per
        image and view, contrast then saturation factors in [1 - jitter, 1 + jitter] (utils.data.jitter_colour)."""
        from utils.data import jitter_colour
        from utils.imagefolder import _worker_error
        if views != self.views:
            raise ValueError(f"this loader draws {self.views} views, not {views}")
        epoch, base = self.base.epoch, self.base
        factors = [self._jitter_plan(epoch, v, jitter) for v in range(self.views)] if jitter else None
        try:
            for x, y, index in self.loader:
                if not isinstance(x, torch.Tensor):  # JPEG bytes: decoded and cropped on the device
                    x = self._device_views(x, index.tolist(), epoch)
                x = x.to(self.device, non_blocking=True)
                b = x.shape[0]
                x = x.transpose(0, 1).reshape(self.views * b, *x.shape[2:]).float().div_(255)
                if factors is not None:
                    contrast = torch.cat([f[0][index] for f in factors]).to(self.device)
                    saturation = torch.cat([f[1][index] for f in factors]).to(self.device)
                    x = jitter_colour(x, contrast, saturation)
                x = x.sub_(base.mean).div_(base.std)
                if base.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x, y.to(self.device, non_blocking=True), index.to(self.device, non_blocking=True)
        except (RuntimeError, UserError) as exc:
            raise _worker_error(exc) from None


# ------------------------------------------------------------------------------------------------ the method
FINETUNE_RECIPE = {"epochs": 100, "lr": 0.01, "schedule": [30, 60, 80], "schedule_unit": "epoch", "gamma": 0.2,
                   "nesterov": True, "weight_decay": 5e-4, "batch_size": 128}


def state_digest(model):
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def warm_up(model, loader, epochs, lr):
    """``epochs`` passes of SGD (Nesterov 0.9, weight decay 5e-4, CE, BN updating) over full batches of ``loader``
    (ekg.md 2.3)."""
    from utils.engine import train_steps
    steps = epochs * max(1, loader.num_images // loader.batch_size)
    if steps:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        train_steps(model, loader, steps, opt)


class EKGRule:
    """EKG as a search method (mixed into utils.methods.SearchMethod by the folders): prune.py searches and
    builds the memory bank, finetune.py distils from it; train.py and scratch.py are plain CE."""
    name = "ekg"
    paper = ("Lee and Song, Ensemble Knowledge Guided Sub-network Search and Fine-tuning for Filter Pruning, "
             "ECCV 2022")
    Hparams = EKGHparams
    FinetuneHparams = EKGFinetuneHparams

    def select(self, model, ctx):
        return self.prune_network(model, ctx)[0]

    def prune_network(self, model, ctx):
        hp_ = ctx.hparams
        from utils.data import is_folder_dataset
        train, info = ctx.training_set()
        folder = is_folder_dataset(train)
        sub_idx, val_idx = class_split(train.labels, hp_.subset_per_class, hp_.val_per_class, hp_.seed)
        base = copy.deepcopy(model).to(ctx.device)
        if folder:  # decoded from files: kept on the device as far as --search-cache-gb allows, else re-decoded
            cache = int(getattr(hp_, "search_cache_gb", SEARCH_CACHE_GB) * 1e9)
            val = FolderBatches(train.select(val_idx), info, hp_.search_batch_size, ctx.loader_of, cache)
            ctx.log(f"D_val: {val.cached} of {len(val_idx)} images decoded once and kept on {ctx.device}, the rest "
                    f"decoded at every pass")
        else:
            val = list(ctx.loader_of(train.select(val_idx), info, hp_.search_batch_size))
        search_options = {k: v for k, v in vars(hp_).items()
                          if k not in ("num_teachers", "bank_images", "bank_dtype", "memory_bank", "search_cache_gb")}
        # a folder dataset's crops depend on the crop size and the decoder too
        read = (getattr(ctx.folder, "input_size", None), getattr(ctx.folder, "loader", None)) if folder else ()
        fingerprint = hashlib.sha1(repr((state_digest(model), sorted(search_options.items()), ctx.dataset,
                                         str(ctx.device)) + read).encode()).hexdigest()
        path = os.path.join(ctx.save, SEARCH_STATE) if ctx.save else None
        if path:
            os.makedirs(ctx.save, exist_ok=True)
        search = EKGSearch(base, hp_, val, ctx.log, path, fingerprint)
        ctx.log(f"EKG: {len(search.gates)} gates, FLOPs ({hp_.flops_rule}) {search.cost.full:,}, target: keep "
                f"<= {hp_.keep_flops} ({len(sub_idx)} warm-up / {len(val_idx)} search images)")
        t0 = time.time()

        def prepare(net):
            warm_up(net, ctx.loader_of(train.select(sub_idx), info, hp_.search_batch_size), hp_.warmup_epochs,
                    hp_.warmup_lr)

        kept = search.run(prepare)
        base = base.cpu()
        pruned = sub_network(base, kept)
        flops = search.cost.check(pruned)
        record = {"gates": len(search.gates), "search_steps": search.steps, "search_time_s": round(search.elapsed, 3),
                  "time_per_step_s": round(search.elapsed / max(search.steps, 1), 3), "flops_rule": hp_.flops_rule,
                  "flops_kept": flops / search.cost.full, "ekg_flops_base": search.cost.full, "ekg_flops_pruned": flops,
                  "history": [{k: h[k] for k in ("step", "gate", "loss", "score", "flops_kept", "candidates")}
                              for h in search.history]}
        if hp_.memory_bank:
            record.update(self._bank(ctx, base, search.history, train, info))
        record["total_time_s"] = round(time.time() - t0, 3)
        ctx.records["ekg"] = record
        keep = {i: k for i, k in kept.items() if len(k) < model.cfg[i]}
        return keep, pruned

    def _bank(self, ctx, base, history, train, info):
        from utils.data import subset
        hp_ = ctx.hparams
        teachers = pick_teachers(history, hp_.num_teachers)
        images = subset(train, hp_.bank_images)
        t0 = time.time()
        loader = ctx.loader_of(images, info, hp_.search_batch_size)
        logits, labels = build_bank(base.to(ctx.device), history, teachers, loader, hp_.bank_dtype)
        base.cpu()
        # the tensors under "state_dict": read back by utils.checkpoint.load_checkpoint, checksum included
        ctx.files[BANK] = {"state_dict": {"logits": logits, "labels": labels}, "dataset": ctx.dataset,
                           "bank_images": hp_.bank_images, "labels_sha1": labels_digest(labels), "teachers": teachers,
                           "teacher_losses": [history[t]["loss"] for t in teachers]}
        ctx.log(f"memory bank: {len(teachers)} teachers (history entries {teachers}), logits {tuple(logits.shape)} "
                f"{hp_.bank_dtype} in {time.time() - t0:.1f} s")
        return {"teachers": teachers, "teacher_losses": [history[t]["loss"] for t in teachers],
                "bank_shape": list(logits.shape), "bank_time_s": round(time.time() - t0, 3)}

    def describe(self, model, keep, ctx):
        return ctx.records.get("ekg", {})

    # ------------------------------------------------------------ fine-tuning with the memory bank
    def stage_name(self, stage):
        """The fine-tune without the memory bank is its own run ("finetune-ce"), beside the paper's three."""
        if stage.stage == "finetune" and stage.hparams.knowledge == "off":
            return "finetune-ce"
        return super().stage_name(stage)

    def _knowledge(self, stage):
        return stage.stage == "finetune" and stage.hparams.knowledge == "on"

    def bank_path(self, stage):
        return os.path.join(os.path.dirname(os.path.abspath(stage.source_path)), BANK)

    def validate(self, stage):
        if stage.stage == "finetune" and stage.hparams.kd_temperature is None:  # recorded as the value used
            stage.hparams.kd_temperature = official_temperature(stage.info.num_classes)
        if not self._knowledge(stage):
            return
        if getattr(stage.data, "augment", "reference") != "reference":
            raise UserError(f"--augment {stage.data.augment} with --knowledge on: EKG's two views are the reference "
                            f"augmentation (random-resized crop + flip, then --colour-jitter); use --augment reference "
                            f"or --knowledge off")
        path = self.bank_path(stage)
        if not os.path.exists(path):
            raise UserError(f"--refine {stage.source_path}: no memory bank {path} beside it (prune.py builds it unless "
                            f"--no-memory-bank); fine-tune with --knowledge off, or prune again")
        bank = load_checkpoint(path, "--refine")
        if bank["dataset"] != stage.data.dataset or bank["bank_images"] != stage.data.train_subset:
            raise UserError(f"--train-subset {stage.data.train_subset} / --dataset {stage.data.dataset}: the memory "
                            f"bank {path} holds the first {bank['bank_images'] or 'all'} training images of "
                            f"{bank['dataset']}; fine-tune on the same images")
        if stage.data.val_split:
            raise UserError(f"--val-split {stage.data.val_split}: with --knowledge on the fine-tune trains on the "
                            f"images of the memory bank, all of them; use --knowledge off to hold some out")
        stage.loaded["bank"] = bank

    def train_loader(self, stage, loader):
        if not self._knowledge(stage):
            return loader
        from utils.imagefolder import FolderLoader
        bank = stage.loaded["bank"]["state_dict"]
        folder = isinstance(loader, FolderLoader)
        if not folder and not hasattr(loader, "view_batches"):
            raise UserError(f"--dataset {stage.data.dataset}: EKG's fine-tuning with --knowledge on needs a loader of "
                            f"two views with image indices (in-memory datasets, ImageFolder trees)")
        labels = loader.ds.labels if folder else loader.labels
        if labels.numel() != bank["labels"].numel() or not torch.equal(labels.cpu(), bank["labels"]):
            raise UserError(f"--refine {stage.source_path}: the memory bank's {bank['labels'].numel()} images are not "
                            f"this run's {labels.numel()} training images")
        if folder:  # the bank stays in host memory; each batch's rows go to the device
            return KnowledgeLoader(FolderViewLoader(loader, 2), bank["logits"], stage.hparams.colour_jitter, "cpu")
        return KnowledgeLoader(loader, bank["logits"], stage.hparams.colour_jitter)

    def objective(self, stage):
        if not self._knowledge(stage):
            return None
        return kd_objective(stage.hparams.kd_temperature or official_temperature(stage.info.num_classes))
