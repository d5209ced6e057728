"""ThiNet's numerical core (Luo, Wu, Lin, ICCV 2017), independent of any model.

ThiNet decides which channels of layer i to drop by how little the consumer (layer i+1) output changes without
them. Everything it needs reduces to one C x C Gram matrix per consumer (shared/spec/perf.md 5.2): with X̂ the
(samples x C) matrix of per-input-channel contributions to randomly drawn consumer outputs, A = X̂ᵀX̂, the
target is ŷ = X̂·1, so ŷᵀŷ = 1ᵀA1 and X̂ᵀŷ = A·1. The greedy selection, the least-squares scales and the
reconstruction errors are all quadratic forms of A, so the 100,000 x C sample matrix of the original code is
never stored. Math is float64 throughout: A sums ~10⁵ outer products, and the greedy compares quadratic forms
that differ in their last digits when channels are nearly redundant.

Who calls what: a forward pre-hook on the consumer feeds ``ContributionGram.update``; then
``select_channels`` (the greedy) and ``least_squares_scales`` on ``gram.A``; then ``rescale_consumer`` for the
consumer's new weight (dropping layer i's filters is the surgery code's job).
"""
import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.engine import train_steps
from utils.errors import UserError
from utils.hparams import hp
from utils.methods import ChannelMethod

# Largest number of float64 elements of one gathered (samples x C x k x k) block: bounds the memory of an
# update (~32 MB per block) whatever the batch size, on a CPU or a GPU alike.
_CHUNK_ELEMENTS = 1 << 22


def sample_positions(n_images, n_samples, out_channels, out_height, out_width, generator=None):
    """Draw ThiNet's random consumer outputs: per image ``n_samples`` (o, u, v), each uniform.

    Drawn as three ``randint`` calls in the order o, u, v, each of shape (n_images, n_samples), on the
    generator's device: the fixed order is what makes a seeded generator reproduce an update exactly (the
    tests rely on it). A Linear consumer is the case out_height = out_width = 1 (u, v still drawn, so the
    random stream does not depend on the consumer's kind).
    """
    device = generator.device if generator is not None else torch.device("cpu")
    shape = (n_images, n_samples)
    o = torch.randint(out_channels, shape, generator=generator, device=device)
    u = torch.randint(out_height, shape, generator=generator, device=device)
    v = torch.randint(out_width, shape, generator=generator, device=device)
    return o, u, v


class ConsumerSampler:
    """The geometry of one consumer layer (layer i+1), for sampling its outputs: where a drawn output position
    reads its input (kernel, stride, dilation, padding) and how many channels feed it. Shared by ThiNet's
    ``ContributionGram`` and the regression method's statistics (utils/lasso.py).

    ``features_per_channel`` is for a Linear consumer after a flatten of C x H x W: channel c owns the
    contiguous features [c·H·W, (c+1)·H·W), and its contribution is the whole block's (ThiNet's fc6 case).
    """

    def __init__(self, consumer, features_per_channel=None):
        if isinstance(consumer, nn.Conv2d):
            if consumer.groups != 1:
                raise ValueError(f"grouped convolution (groups={consumer.groups}) is not supported: a channel "
                                 "would feed only its group's outputs")
            if consumer.padding_mode != "zeros":
                raise ValueError(f"padding_mode {consumer.padding_mode!r}: only zero padding is supported")
            if features_per_channel not in (None, 1):
                raise ValueError("features_per_channel applies to a Linear consumer only")
            self.kind = "conv"
            self.kernel_size = tuple(consumer.kernel_size)
            self.stride = tuple(consumer.stride)
            self.dilation = tuple(consumer.dilation)
            self.pad = _conv_pad(consumer)
            self.out_channels = consumer.out_channels
            self.num_channels = consumer.in_channels
            self.features_per_channel = 1
        elif isinstance(consumer, nn.Linear):
            fpc = 1 if features_per_channel is None else int(features_per_channel)
            if fpc < 1 or consumer.in_features % fpc:
                raise ValueError(f"features_per_channel={features_per_channel} does not divide "
                                 f"in_features={consumer.in_features}")
            self.kind = "linear"
            self.out_channels = consumer.out_features
            self.num_channels = consumer.in_features // fpc
            self.features_per_channel = fpc
        else:
            raise TypeError(f"consumer must be nn.Conv2d or nn.Linear, not {type(consumer).__name__}")

    @property
    def features(self):
        """Input features one sample reads per channel: k·k for a conv, the block of a flattened map for a Linear."""
        if self.kind == "conv":
            return self.kernel_size[0] * self.kernel_size[1]
        return self.features_per_channel

    def output_size(self, height, width):
        if self.kind == "linear":
            return 1, 1
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom, left, right = self.pad
        return ((height + top + bottom - dh * (kh - 1) - 1) // sh + 1,
                (width + left + right - dw * (kw - 1) - 1) // sw + 1)

    def _output_hw(self, x_shape):
        out_h, out_w = self.output_size(x_shape[2], x_shape[3]) if self.kind == "conv" else (1, 1)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"input {tuple(x_shape)} is smaller than the consumer's receptive field")
        return out_h, out_w

    def draw(self, x_shape, n_samples, generator=None):
        """The (o, u, v) that ``ContributionGram.update`` with the same generator state would use, for a batch of
        this shape."""
        out_h, out_w = self._output_hw(x_shape)
        return sample_positions(x_shape[0], n_samples, self.out_channels, out_h, out_w, generator)

    def draw_positions(self, x_shape, n_samples, generator=None):
        """(u, v): ``n_samples`` output positions per image, each with all output channels (He et al.'s sampling)."""
        out_h, out_w = self._output_hw(x_shape)
        device = generator.device if generator is not None else torch.device("cpu")
        shape = (x_shape[0], n_samples)
        u = torch.randint(out_h, shape, generator=generator, device=device)
        v = torch.randint(out_w, shape, generator=generator, device=device)
        return u, v

    def patches(self, x, u, v):
        """The input patch under each drawn output position, (N, S, kh, kw, C), by advanced indexing: the batch of
        (image, sample) pairs is one indexing op, with no loop over samples."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom, left, right = self.pad
        xp = F.pad(x, (left, right, top, bottom))
        dev = x.device
        rows = u.unsqueeze(-1) * sh + torch.arange(kh, device=dev) * dh                # (N, S, kh)
        cols = v.unsqueeze(-1) * sw + torch.arange(kw, device=dev) * dw                # (N, S, kw)
        img = torch.arange(x.shape[0], device=dev).view(-1, 1, 1, 1)
        return xp[img, :, rows.unsqueeze(-1), cols.unsqueeze(-2)]

    def _check_input(self, x, weight):
        if self.kind == "conv":
            if x.dim() != 4 or x.shape[1] != self.num_channels:
                raise ValueError(f"conv consumer with {self.num_channels} input channels got input "
                                 f"{tuple(x.shape)}; expected (N, {self.num_channels}, H, W)")
            expected = (self.out_channels, self.num_channels) + self.kernel_size
        else:
            x = x.flatten(1)
            if x.shape[1] != self.num_channels * self.features_per_channel:
                raise ValueError(f"Linear consumer with {self.num_channels * self.features_per_channel} inputs "
                                 f"got input {tuple(x.shape)}")
            expected = (self.out_channels, self.num_channels * self.features_per_channel)
        if tuple(weight.shape) != expected:
            raise ValueError(f"weight {tuple(weight.shape)} does not match the consumer's {expected}")
        if weight.device != x.device:
            raise ValueError(f"weight on {weight.device}, input on {x.device}")
        return x


class ContributionGram(ConsumerSampler):
    """Running Gram matrix A = X̂ᵀX̂ (float64) of ThiNet's per-channel contributions for one consumer layer.

    Only the consumer's geometry is kept, not the module, so the same accumulator serves a consumer whose
    weight is passed separately (e.g. the original network's, while the input comes from a partly pruned one).
    """

    def __init__(self, consumer, features_per_channel=None):
        super().__init__(consumer, features_per_channel)
        self.A = None  # created on the first update's device
        self.count = 0

    @property
    def total(self):
        """1ᵀA1 = Σ ŷ², the energy of the sampled outputs: the denominator of relative errors."""
        return 0.0 if self.A is None else float(self.A.sum())

    def contributions(self, x, weight, o, u, v):
        """X̂ for the given draws: (N·S, C) float64 rows ordered image-major; row Σ = consumer output − bias."""
        x = self._check_input(x.detach(), weight)
        weight = weight.detach()
        o, u, v = (t.to(x.device) for t in (o, u, v))
        n_img, n_samp = o.shape
        per_image = n_samp * self.num_channels * self.features
        step = max(1, _CHUNK_ELEMENTS // max(per_image, 1))
        parts = []
        for start in range(0, n_img, step):
            sl = slice(start, start + step)
            if self.kind == "conv":
                parts.append(self._conv_chunk(x[sl], weight, o[sl], u[sl], v[sl]))
            else:
                parts.append(self._linear_chunk(x[sl], weight, o[sl]))
        if not parts:
            return torch.zeros(0, self.num_channels, dtype=torch.float64, device=x.device)
        return torch.cat(parts).reshape(n_img * n_samp, self.num_channels)

    def update(self, x, weight, n_samples=10, generator=None):
        """Add one batch's samples: ``x`` exactly as the consumer receives it (after ReLU, pool, flatten)."""
        with torch.no_grad():
            o, u, v = self.draw(x.shape, n_samples, generator)
            xhat = self.contributions(x, weight, o, u, v)
            if self.A is None:
                self.A = torch.zeros(self.num_channels, self.num_channels, dtype=torch.float64, device=x.device)
            elif self.A.device != xhat.device:
                raise ValueError(f"input on {xhat.device}, statistics accumulated on {self.A.device}")
            self.A.addmm_(xhat.T, xhat)
            self.count += xhat.shape[0]
        return self

    def _conv_chunk(self, x, weight, o, u, v):
        patch = self.patches(x, u, v)                                                  # (N, S, kh, kw, C)
        return torch.einsum("nsabc,nscab->nsc", patch.double(), weight[o].double())

    def _linear_chunk(self, x, weight, o):
        n, s = o.shape
        prod = weight[o].double() * x.double().unsqueeze(1)                            # (N, S, F)
        return prod.view(n, s, self.num_channels, self.features_per_channel).sum(-1)


def _conv_pad(conv):
    """(top, bottom, left, right) zero padding, resolving 'same'/'valid' the way PyTorch does."""
    if conv.padding == "valid":
        return 0, 0, 0, 0
    if conv.padding == "same":
        pads = []
        for k, d in zip(conv.kernel_size, conv.dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = conv.padding
    return ph, ph, pw, pw


def _gram(A):
    """A as a CPU float64 square matrix: selection and the small solves are O(C²)-O(C³) with C ≤ a few
    thousand, cheaper on the CPU than the per-step synchronisations of a GPU, and device-independent."""
    A = torch.as_tensor(A).detach().to("cpu", torch.float64)
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"Gram matrix must be square, got shape {tuple(A.shape)}")
    if not torch.isfinite(A).all():
        raise ValueError("Gram matrix has NaN or inf entries")
    return A


def _kept_index(kept, C):
    idx = torch.as_tensor(list(kept), dtype=torch.long)
    if idx.numel() and (idx.min() < 0 or idx.max() >= C):
        raise ValueError(f"kept channels {list(kept)} out of range for {C} channels")
    if idx.unique().numel() != idx.numel():
        raise ValueError(f"kept channels {list(kept)} has repeats")
    return idx


def greedy_removal(A, num_remove):
    """ThiNet's ICCV greedy: removed channels in the order chosen, ties to the smallest index.

    Adding c to the removed set T raises 1_TᵀA1_T by g_c = A_cc + 2·Σ_{t∈T} A_ct, so keeping g up to date
    (one column add per step) gives the same choices as re-evaluating every quadratic form, in O(C²) total
    instead of O(C³) (or O(samples·C²) for the original code's norm over the raw samples).
    """
    A = _gram(A)
    C = A.shape[0]
    if not 0 <= num_remove <= C:
        raise ValueError(f"cannot remove {num_remove} of {C} channels")
    g = A.diagonal().clone()
    blocked = torch.zeros(C, dtype=torch.bool)
    removed = []
    for _ in range(num_remove):
        # torch.argmin returns the first minimum, which is the smallest-index tie rule.
        j = int(torch.argmin(g.masked_fill(blocked, float("inf"))))
        removed.append(j)
        blocked[j] = True
        g += 2 * A[:, j]
    return removed


def brute_force_removal(A, num_remove):
    """The globally optimal removed set (sorted) by trying every subset: a reference for the greedy in
    tests. Subsets come in lexicographic order and only a strictly smaller cost replaces the best, so ties
    go to the lexicographically smallest set, the subset form of the greedy's smallest-index rule."""
    A = _gram(A)
    C = A.shape[0]
    if not 0 <= num_remove <= C:
        raise ValueError(f"cannot remove {num_remove} of {C} channels")
    best, best_cost = None, None
    for subset in itertools.combinations(range(C), num_remove):
        idx = torch.tensor(subset, dtype=torch.long)
        cost = float(A[idx][:, idx].sum())
        if best_cost is None or cost < best_cost:
            best, best_cost = list(subset), cost
    return best


def select_channels(A, keep_count):
    """(kept channels sorted, removed channels in greedy order) for a layer that keeps ``keep_count``."""
    C = _gram(A).shape[0]
    if not 0 <= keep_count <= C:
        raise ValueError(f"cannot keep {keep_count} of {C} channels")
    removed = greedy_removal(A, C - keep_count)
    gone = set(removed)
    return [c for c in range(C) if c not in gone], removed


def least_squares_scales(A, kept, ridge=1e-10):
    """ThiNet's per-channel scales ŵ = argmin ‖ŷ − X̂_S w‖² (no intercept), from the Gram alone.

    Solved as w = 1 + δ with A_SS δ = A_ST·1_T, the same normal equations as A_SS w = (A·1)_S but with the
    right-hand side formed without cancellation, and with the ridge pulling δ toward 0, i.e. w toward the
    unscaled weights rather than toward zero. That choice matters when A_SS is singular (duplicate or silent
    kept channels): the fit then never scales a channel the samples say nothing about, and the error after
    the fit can never exceed the error before it (w = 1 is always a candidate). The ridge is relative to the
    mean of diag(A_SS) so it means the same at any activation scale. If Cholesky still fails, a minimum-norm
    least-squares solve (gelsd) gives the δ closest to 0 among the exact minimisers. w[i] belongs to kept[i].
    """
    A = _gram(A)
    C = A.shape[0]
    S = _kept_index(kept, C)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if S.numel() == 0:
        return torch.zeros(0, dtype=torch.float64)
    T = torch.ones(C, dtype=torch.bool)
    T[S] = False
    A_SS = A[S][:, S]
    rhs = A[S][:, T].sum(1)
    scale = float(A_SS.diagonal().mean())
    if scale <= 0:
        # Every kept channel was silent on the calibration data: there is nothing to fit.
        return torch.ones(S.numel(), dtype=torch.float64)
    M = A_SS + ridge * scale * torch.eye(S.numel(), dtype=torch.float64)
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) == 0:
        delta = torch.cholesky_solve(rhs.unsqueeze(1), L).squeeze(1)
    else:
        delta = torch.linalg.lstsq(M, rhs.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    return 1 + delta


def reconstruction_error(A, kept, w=None):
    """Σ over samples of (ŷ − X̂_S w)², before least squares when ``w`` is None (kept channels unscaled).

    Evaluated as rᵀAr with r = 1 − w on the kept channels and 1 on the removed ones (ŷ − X̂_S w = X̂ r): the
    same value as 1ᵀA1 − 2wᵀ(A1)_S + wᵀA_SS w, but without subtracting two large nearly equal numbers, so a
    near-perfect fit reads as a small number instead of rounding noise. Negative rounding noise of a PSD
    form is clamped to 0.
    """
    A = _gram(A)
    C = A.shape[0]
    S = _kept_index(kept, C)
    r = torch.ones(C, dtype=torch.float64)
    if w is not None:
        w = torch.as_tensor(w).detach().to("cpu", torch.float64).flatten()
        if w.numel() != S.numel():
            raise ValueError(f"{w.numel()} scales for {S.numel()} kept channels")
        r[S] = 1 - w
    else:
        r[S] = 0
    return max(0.0, float(r @ A @ r))


def relative_reconstruction_error(A, kept, w=None):
    """``reconstruction_error`` divided by 1ᵀA1 = Σŷ², so layers of different activation scale compare."""
    total = float(_gram(A).sum())
    err = reconstruction_error(A, kept, w)
    return err / total if total > 0 else 0.0


def rescale_consumer(weight, kept, w, features_per_channel=1):
    """The consumer's weight over the kept input channels, each channel's slice times its scale.

    Dim 1 is the input-channel dim of both Conv2d (O, C, kh, kw) and Linear (O, F) weights; for a Linear
    after a flatten, channel c is the feature block [c·fpc, (c+1)·fpc). The product is formed in float64 and
    cast back, so a float32 weight is rounded once. The kept channels come out in the order of ``kept``, each
    scaled by the w at the same position (as ``least_squares_scales`` returns them).
    """
    kept_idx = _kept_index(kept, weight.shape[1] // max(int(features_per_channel), 1))
    w = torch.as_tensor(w).detach().to(weight.device, torch.float64).flatten()
    if w.numel() != kept_idx.numel():
        raise ValueError(f"{w.numel()} scales for {kept_idx.numel()} kept channels")
    fpc = int(features_per_channel)
    if weight.dim() == 2:
        if fpc < 1 or weight.shape[1] % fpc:
            raise ValueError(f"features_per_channel={features_per_channel} does not divide {weight.shape[1]}")
        cols = (kept_idx.unsqueeze(1) * fpc + torch.arange(fpc)).flatten().to(weight.device)
        scale = w.repeat_interleave(fpc).view(1, -1)
    elif weight.dim() == 4:
        if fpc != 1:
            raise ValueError("features_per_channel applies to a Linear weight only")
        cols = kept_idx.to(weight.device)
        scale = w.view(1, -1, 1, 1)
    else:
        raise ValueError(f"weight must be 2-D (Linear) or 4-D (Conv2d), got {tuple(weight.shape)}")
    with torch.no_grad():
        return (weight.detach().index_select(1, cols).double() * scale).to(weight.dtype)


# ------------------------------------------------------------------------------- the whole-network schedule
def consumer_of(model, group, allow_select=False):
    """(consumer module name, features per channel) of a channel group ThiNet can prune: its channels feed
    exactly one conv or Linear (layer i+1) and pass through no channel selection. ``allow_select`` also takes a
    selection straight off the residual stream (ResNet-50-2x's input selection, which the regression method
    prunes): nothing produces its channels alone, the consumer reads the selected ones."""
    selection = allow_select and group.select and not group.mask and not group.out
    if (group.select and not selection) or group.mask or len(group.inp) != 1:
        raise ValueError(f"{group.name}: ThiNet needs a group whose channels feed exactly one layer")
    module = model.get_submodule(group.inp[0])
    if not isinstance(module, (nn.Conv2d, nn.Linear)):
        raise ValueError(f"{group.name}: its consumer {group.inp[0]} is a {type(module).__name__}")
    fpc = 1
    if isinstance(module, nn.Linear):
        if selection:
            width = model.cfg[group.cfg_index]
        else:
            producer = model.get_submodule(group.out[0])
            width = getattr(producer, "out_channels", None) or getattr(producer, "num_features")
        fpc = module.in_features // width
    return group.inp[0], fpc


@torch.no_grad()
def layer_gram(model, consumer_name, fpc, loader, samples_per_image, generator):
    """The consumer's Gram matrix from ``model`` (eval mode) over every batch of ``loader``: the input the
    consumer receives, captured by a forward pre-hook (post-ReLU and post-pooling, as ThiNet samples it)."""
    consumer = model.get_submodule(consumer_name)
    gram = ContributionGram(consumer, features_per_channel=fpc)

    def hook(module, inputs):
        gram.update(inputs[0], module.weight, samples_per_image, generator)

    was_training = model.training
    model.eval()
    handle = consumer.register_forward_pre_hook(hook)
    try:
        for x, _ in loader:
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    return gram


def prune_layer_by_layer(model, groups, keep_fraction, loader, samples_per_image=10, seed=0, between=None,
                         log=print):
    """ThiNet's schedule: the groups in order from the input, each one's statistics taken on the network pruned
    so far; greedy selection, least-squares rescaling of the consumer, surgery; then ``between(model)`` (a short
    fine-tune) if given. Returns (pruned network, {cfg index: kept positions}, per-layer records)."""
    from utils.surgery import prune_channels
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    current = model
    keep, records = {}, []
    for name in groups:
        group = {g.name: g for g in current.channel_groups()}[name]
        consumer_name, fpc = consumer_of(current, group)
        width = current.cfg[group.cfg_index]
        count = max(1, int(width * keep_fraction))
        gram = layer_gram(current, consumer_name, fpc, loader, samples_per_image, generator)
        kept, _ = select_channels(gram.A, count)
        w = least_squares_scales(gram.A, kept)
        before, after = relative_reconstruction_error(gram.A, kept), relative_reconstruction_error(gram.A, kept, w)
        weight = current.get_submodule(consumer_name).weight.detach()
        scaled = rescale_consumer(weight, kept, w, fpc)
        current = prune_channels(current, {group.cfg_index: kept}).to(device)  # surgery rebuilds on the CPU
        with torch.no_grad():
            current.get_submodule(consumer_name).weight.copy_(scaled)
        keep[group.cfg_index] = kept
        records.append({"layer": name, "consumer": consumer_name, "channels": width, "kept": len(kept),
                        "kept_channels": kept, "samples": gram.count, "error_before": before, "error_after": after})
        log(f"  {name}: {width} -> {len(kept)} channels, reconstruction error {before:.4f} -> {after:.4f} "
            f"(relative, {gram.count:,} samples)")
        if between is not None:
            between(current)
    return current, keep, records


# ------------------------------------------------------------------------------------- the method rule
PAPER_IMAGES = 10_000  # 10 images per class x 1,000 ImageNet classes, 10 samples each (100,000 samples)


@dataclass
class ThiNetArgs:
    percent: float = hp(0.5, "fraction of the channels removed from every pruned layer, in (0, 1): each keeps "
                             "int(C x (1 - percent)) (ThiNet-50: 0.5; ThiNet-30 keeps 30%: 0.7)")
    layers: list[str] = hp([], "channel groups to prune, in any order (they are pruned from the input on): group "
                               "names as prune.json lists them (conv1 ... for the VGGs, layer1.0.conv1 ... for the "
                               "ResNets), or 'all'; default: the paper's rule (every VGG conv but the last block's; "
                               "every ResNet block's first conv)")
    calib_images: int = hp(PAPER_IMAGES, "training images the statistics are sampled on (the paper's 10,000; "
                                         "capped at the training set's size, with a note)")
    samples_per_image: int = hp(10, "random (output channel, position) samples of the next layer per image (the "
                                    "paper's 10)")
    calib_batch_size: int = hp(100, "batch size of the statistics passes")
    seed: int = hp(1, "seed of the calibration images and of the samples")
    ft_between_iters: int = hp(0, "SGD steps of fine-tuning after each pruned layer (0: prune.py only prunes; "
                                  "the run scripts pass the paper's schedule)")
    ft_lr: float = hp(0.001, "learning rate of the fine-tuning between layers (the paper's, momentum 0.9, wd 5e-4)")
    ft_batch_size: int = hp(64, "batch size of the fine-tuning between layers")

    def __post_init__(self):  # before any file is read
        if not 0 < self.percent < 1:
            raise UserError(f"--percent {self.percent}: must lie strictly between 0 and 1 (the removed fraction)")
        for flag, value in (("--calib-images", self.calib_images), ("--samples-per-image", self.samples_per_image),
                            ("--calib-batch-size", self.calib_batch_size), ("--ft-batch-size", self.ft_batch_size)):
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if self.ft_between_iters < 0 or not self.ft_lr > 0:
            raise UserError(f"--ft-between-iters {self.ft_between_iters} / --ft-lr {self.ft_lr}: iterations must "
                            f"not be negative, the LR must be positive")


def paper_layers(model):
    """The groups ThiNet prunes by default: in a VGG (a cfg with pooling) every conv before the last block, as
    ThiNet-Conv leaves conv5 (the last pooling followed by a conv starts that block); in a ResNet every channel
    group (a basic block's first conv; a bottleneck's first two, as ThiNet-30/50/70)."""
    groups = model.channel_groups()
    if "M" in model.cfg:
        last_pool = max(i for i, v in enumerate(model.cfg) if v == "M" and any(x != "M" for x in model.cfg[i + 1:]))
        return [g.name for g in groups if g.cfg_index < last_pool and not g.select]
    return [g.name for g in groups if not g.select]


def chosen_layers(model, layers):
    names = [g.name for g in model.channel_groups()]
    if not layers:
        return paper_layers(model)
    if layers == ["all"]:
        return names
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise UserError(f"--layers {' '.join(unknown)}: not a prunable layer of {model.spec.arch}-{model.spec.depth} "
                        f"(its layers: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
    return [n for n in names if n in set(layers)]  # from the input on


class ThiNetRule(ChannelMethod):
    """ThiNet's rule as a channel method: layer by layer from the input, calibration images from the dataset,
    an optional short fine-tune between layers. The CIFAR and ImageNet folders subclass it with their networks."""
    Hparams = ThiNetArgs

    def prune_network(self, model, ctx):
        hp_ = ctx.hparams
        layers = chosen_layers(model, hp_.layers)
        model = model.to(ctx.device)
        loader = ctx.calibration_loader(hp_.calib_images, hp_.calib_batch_size, seed=hp_.seed)
        between = self._fine_tune(ctx) if hp_.ft_between_iters else None
        ctx.log(f"thinet: {len(layers)} layer(s) of {model.spec.arch}-{model.spec.depth}, keeping "
                f"{1 - hp_.percent:.0%} of each, {hp_.samples_per_image} samples per image on "
                f"{loader.num_images} calibration images")
        pruned, keep, records = prune_layer_by_layer(model, layers, 1 - hp_.percent, loader, hp_.samples_per_image,
                                                     hp_.seed, between, ctx.log)
        ctx.records["layers"] = records
        return keep, pruned.cpu()

    @staticmethod
    def _fine_tune(ctx):
        """ThiNet's short fine-tune after each layer: SGD, momentum 0.9, wd 5e-4, on augmented training images."""
        hp_ = ctx.hparams
        train = ctx.calibration_loader(hp_.calib_images, hp_.ft_batch_size, train_transform=True, seed=hp_.seed)

        def fine_tune(network):
            opt = torch.optim.SGD(network.parameters(), lr=hp_.ft_lr, momentum=0.9, weight_decay=5e-4)
            train_steps(network, train, hp_.ft_between_iters, opt, log=ctx.log)
        return fine_tune

    def describe(self, model, keep, ctx):
        return {"layer_records": ctx.records.get("layers", []), "keep_fraction": 1 - ctx.hparams.percent}
