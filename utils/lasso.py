"""Channel pruning by LASSO regression and least squares (He, Zhang, Sun, ICCV 2017), on Gram matrices.

Per pruned channel group (layer i's output channels, read by a consumer Q = layer i+1):

* **Sampling** (``collect_statistics``): calibration images go through the network pruned so far and through the
  original one; at random output positions of Q (10 per image, every output channel), X is Q's input patch in the
  pruned network and Y the original network's output of Q: the inputs carry the pruning done so far, the targets
  do not (no accumulated error). When Q ends a residual branch, Y also gets the original shortcut output minus
  the pruned one, so the branch absorbs the error that reached the shortcut (He et al.'s multi-branch rule).
* **Selection** (``select_channels``): with Z_i = X_i W_iᵀ channel i's contribution to all n outputs, the LASSO
  min_β (1/2N')‖vec(Y − b) − Σ β_i vec(Z_i)‖² + λ‖β‖₁ (N' = samples x n) depends on the data only through
  G = ZᵀZ (C x C) and g = Zᵀ vec(Y − b) (shared/spec/perf.md 5.2), both formed from the sufficient statistics
  Σxxᵀ, Σxyᵀ of the patches. λ is set so that between c' and c'(1 + tol) channels keep a nonzero β.
* **Reconstruction** (``least_squares``): Q's weights over the kept channels and its bias refit by least squares
  with intercept on the same statistics (the code's ``fc_kernel``); then surgery removes layer i's other filters.

Everything is float64 (but the weight products of a large layer's Gram, see EXACT_GRAM_MACS); the statistics stay
on the calibration device, the C x C and (|S|k² + 1)² solves run on the CPU (milliseconds to a fraction of a second,
``bench/prune_cost.py``).
"""
import copy
import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from utils.errors import UserError
from utils.hparams import hp
from utils.methods import ChannelMethod
from utils.thinet import ConsumerSampler, chosen_layers, consumer_of, paper_layers

# Largest input width (channels x features per channel) of a consumer whose statistics are gathered: Σxxᵀ is a
# d x d float64 matrix (16,384: 2 GB). VGG-16's fc6 (512 x 7 x 7 = 25,088 features) is out of reach, as in He
# et al., who leave conv5 and the classifier alone.
MAX_FEATURES = 16_384
PAPER_IMAGES = 5_000  # the code's 500 batches of 10 images, 10 positions each: 50,000 samples per layer


# ------------------------------------------------------------------------------------------- statistics
class RegressionStats:
    """Running sums of one consumer's sampled inputs x (d = C·q features, channel-major: channel c owns
    [c·q, (c+1)·q)) and targets y (n outputs): Σxxᵀ, Σx, Σxyᵀ, Σy, Σ‖y‖², count, float64."""

    def __init__(self, num_channels, features, outputs, device="cpu"):
        self.C, self.q, self.n = num_channels, features, outputs
        d = num_channels * features
        if d > MAX_FEATURES:
            raise UserError(f"the consumer reads {d:,} input features; the regression's statistics need a "
                            f"{d:,} x {d:,} matrix (at most {MAX_FEATURES:,}): prune another layer")
        kw = dict(dtype=torch.float64, device=device)
        self.sxx = torch.zeros(d, d, **kw)
        self.sx = torch.zeros(d, **kw)
        self.sxy = torch.zeros(d, outputs, **kw)
        self.sy = torch.zeros(outputs, **kw)
        self.syy = torch.zeros((), **kw)
        self.count = 0

    def update(self, x, y):
        """x (m, d), y (m, n): m more samples."""
        x, y = x.double(), y.double()
        self.sxx.addmm_(x.T, x)
        self.sx += x.sum(0)
        self.sxy.addmm_(x.T, y)
        self.sy += y.sum(0)
        self.syy += (y * y).sum()
        self.count += x.shape[0]
        return self

    def cpu(self):
        out = copy.copy(self)
        for k in ("sxx", "sx", "sxy", "sy", "syy"):
            setattr(out, k, getattr(self, k).cpu())
        return out


# Above this many multiply-adds (n·d²/2) the weight products of channel_gram run in float32 (~1e-7 relative
# error in G, accumulated in float64; the same LASSO choices on 256- and 512-channel test layers): VGG-16's
# 512-channel layers take 0.3 s instead of 0.7 s on the 2-core CPU.
EXACT_GRAM_MACS = 1 << 28


def channel_gram(stats, weight, bias=None):
    """(G, g, rows): the LASSO's C x C Gram G[i, j] = <Z_i, Z_j> and g[i] = <Z_i, Y − b> over all samples and
    outputs, with rows = samples x outputs (N' of the objective). ``weight`` is the consumer's (n, C, k, k) or
    (n, C·q); ``bias`` its bias (the target's offset that no channel explains), or None.

    G[i, j] = Σ_{k,l} Σxx[(i,k),(j,l)] (W_kᵀ W_l)[i, j] with W_k = W[:, :, k] (n x C): q² products of C x n x C
    (n·d² multiply-adds, the cost of forming WᵀW once) instead of the N x C x n contribution tensor of the original
    code; the (l, k) term is the (k, l) term transposed, so only l >= k are formed."""
    s = stats.cpu()
    C, q, n = s.C, s.q, s.n
    W = weight.detach().to("cpu", torch.float64).reshape(n, C, q)
    dtype = torch.float64 if n * (C * q) ** 2 // 2 <= EXACT_GRAM_MACS else torch.float32
    Wk = W.to(dtype).permute(2, 0, 1).contiguous()                                  # (q, n, C)
    S4 = s.sxx.view(C, q, C, q)
    G = torch.zeros(C, C, dtype=torch.float64)
    for k in range(q):
        T = S4[:, k, :, k:].permute(2, 0, 1) * torch.matmul(Wk[k].T, Wk[k:]).double()  # (q - k, C, C)
        G += T[0]
        if q - k > 1:
            R = T[1:].sum(0)
            G += R + R.T
    sxy = s.sxy
    if bias is not None:
        sxy = sxy - s.sx[:, None] * bias.detach().to("cpu", torch.float64)[None, :]
    g = (sxy.view(C, q, n) * W.permute(1, 2, 0)).sum((1, 2))
    return G, g, s.count * n


# -------------------------------------------------------------------------------------------- selection
def lasso_path(G, g, rows, max_iter=None):
    """The whole LASSO path on the Gram matrix (sklearn's LARS): (alphas, coefs), alphas decreasing in the
    objective's scale (1/2N' on the squares), coefs (C, len(alphas)); between two breakpoints the solution is
    linear in alpha."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lars_path_gram
    G = np.asarray(G, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    top = float(np.abs(g).max())
    if top == 0:
        return np.zeros(1), np.zeros((G.shape[0], 1))
    # LARS stops once alpha falls below float32's eps in absolute terms: scaled so that alpha_max = 1, the path
    # runs down to 1e-7 of it whatever the activations' scale (the same beta; alpha scales with G and g).
    s = rows / top
    with warnings.catch_warnings():
        # LARS reports degenerate (collinear, silent) regressors and drops them: expected for dead channels
        warnings.simplefilter("ignore", ConvergenceWarning)
        alphas, _, coefs = lars_path_gram(Xy=g * s, Gram=G * s, n_samples=rows, method="lasso",
                                          max_iter=max_iter or max(500, 8 * G.shape[0]))
    return alphas / s, coefs


def lasso_at(alphas, coefs, alpha):
    """The path's solution at ``alpha`` (linear interpolation between breakpoints)."""
    if alpha >= alphas[0]:
        return np.zeros(coefs.shape[0])
    if alpha <= alphas[-1]:
        return coefs[:, -1].copy()
    k = int(np.searchsorted(-alphas, -alpha, side="right")) - 1   # alphas[k] >= alpha > alphas[k + 1]
    t = (alphas[k] - alpha) / (alphas[k] - alphas[k + 1])
    return (1 - t) * coefs[:, k] + t * coefs[:, k + 1]


def _path_points(alphas, coefs, complete=True):
    """(alpha, support) along the path from the largest alpha down: each open interval between breakpoints
    (represented by its midpoint; the support there is the union of its ends') and each breakpoint after it. Below
    the last breakpoint only when the path is ``complete`` (it ended on its own, every useful channel active): a
    path cut by max_iter has a channel entering there whose coefficient is still 0."""
    nz = coefs != 0
    for k in range(len(alphas) - 1):
        yield (alphas[k] + alphas[k + 1]) / 2, nz[:, k] | nz[:, k + 1]
        yield alphas[k + 1], nz[:, k + 1]
    if complete and alphas[-1] > 0:
        yield alphas[-1] / 2, nz[:, -1]


def lasso_factor(G, g, rows):
    """(R, y) with a design of min(C, rank) rows whose LASSO objective, in sklearn's 1/(2·rows) scaling, is the
    Gram objective's up to a constant: RᵀR = G·r/N', Rᵀy = g·r/N'. Lets sklearn's ``Lasso`` (coordinate
    descent) solve the Gram problem without the N' x C design matrix."""
    G = torch.as_tensor(G, dtype=torch.float64)
    g = torch.as_tensor(g, dtype=torch.float64)
    s, V = torch.linalg.eigh(G)
    keep = s > s.max().clamp(min=0) * G.shape[0] * 1e-15
    s, V = s[keep], V[:, keep]
    r = int(keep.sum())
    scale = math.sqrt(r / rows)
    R = scale * (s.sqrt()[:, None] * V.T)
    y = scale * (V.T @ g) / s.sqrt()
    return R.numpy(), y.numpy()


def lasso_cd(G, g, rows, alpha, solver=None):
    """The LASSO at one alpha by coordinate descent (sklearn ``Lasso`` on ``lasso_factor``'s design)."""
    from sklearn.linear_model import Lasso
    R, y = lasso_factor(G, g, rows)
    solver = solver or Lasso(fit_intercept=False, max_iter=100_000, tol=1e-10, precompute=True)
    solver.alpha = alpha
    solver.fit(R, y)
    return solver.coef_.copy()


SOLVERS = ("path", "bisection")


def select_channels(G, g, rows, keep, tolerance=0.1, solver="path", name="layer"):
    """(kept channels sorted, alpha, count): a LASSO penalty at which between ``keep`` and keep·(1 + tolerance)
    channels have a nonzero β (He et al.'s ``rank_tol``), and those channels.

    ``path``: the whole regularisation path once (LARS on G), then the largest alpha whose support lies in the
    range: the first point where it reaches ``keep`` channels when they enter one at a time, so the layer gets
    exactly its target width. ``bisection``: the official code's search, coordinate descent at each alpha,
    halving [0, alpha_max] until the count lands in the range (anywhere in it). A target that no alpha reaches
    (fewer channels contribute anything, or several enter at once) is a UserError."""
    G = torch.as_tensor(G, dtype=torch.float64)
    g = torch.as_tensor(g, dtype=torch.float64)
    C = G.shape[0]
    hi = int(math.floor(keep * (1 + tolerance) + 1e-9))
    if not 1 <= keep <= C:
        raise UserError(f"{name}: cannot keep {keep} of {C} channels")
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r}: choose one of {SOLVERS}")
    if keep == C:
        return list(range(C)), 0.0, C
    live = int((G.diagonal() > 0).sum())
    if live < keep:
        raise UserError(f"{name}: no LASSO penalty keeps {keep} of its {C} channels: only {live} of them contribute "
                        f"anything to the next layer on the calibration images; keep at most {live}")
    alpha_max = float(g.abs().max()) / rows
    if solver == "path":
        # a step adds (or drops) one channel: the path is cut shortly after the band, and run whole only if that
        # part did not reach it (channels dropping out on the way)
        for max_iter in (hi + 8, None):
            alphas, coefs = lasso_path(G.numpy(), g.numpy(), rows, max_iter)
            complete = max_iter is None or len(alphas) <= max_iter  # LARS gives n_iter + 1 points
            counts = []
            for alpha, support in _path_points(alphas, coefs, complete):
                count = int(support.sum())
                counts.append(count)
                if keep <= count <= hi:
                    return np.flatnonzero(support).tolist(), float(alpha), count
            if complete:
                break
        reached = sorted(set(counts))
        raise UserError(f"{name}: no LASSO penalty keeps between {keep} and {hi} of its {C} channels (the path has "
                        f"{_ranges(reached)} nonzero channels{_rank_note(G)}): choose another target")
    from sklearn.linear_model import Lasso
    solver_ = Lasso(fit_intercept=False, max_iter=100_000, tol=1e-10, precompute=True, warm_start=True)
    R, y = lasso_factor(G, g, rows)
    left, right = 0.0, alpha_max
    seen = set()
    for _ in range(100):
        alpha = (left + right) / 2
        solver_.alpha = alpha
        solver_.fit(R, y)
        support = solver_.coef_ != 0
        count = int(support.sum())
        seen.add(count)
        if count > hi:
            left = alpha
        elif count < keep:
            right = alpha
        else:
            return np.flatnonzero(support).tolist(), float(alpha), count
        if right - left <= 1e-15 * alpha_max:
            break
    raise UserError(f"{name}: no LASSO penalty keeps between {keep} and {hi} of its {C} channels (the bisection "
                    f"saw {_ranges(sorted(seen))} nonzero channels{_rank_note(G)}): choose another target")


def _rank_note(G):
    """Why a count may be out of reach when the samples are too few: a LASSO solution has at most rank(G)
    nonzeros."""
    ev = torch.linalg.eigvalsh(G)
    rank = int((ev > ev.max() * G.shape[0] * 1e-13).sum())
    if rank >= G.shape[0]:
        return ""
    return (f"; the calibration samples span only {rank} of the {G.shape[0]} channels' contribution directions, "
            f"more --calib-images may help")


def _ranges(values):
    if not values:
        return "no"
    return ", ".join(str(v) for v in values) if len(values) <= 8 else f"{values[0]} ... {values[-1]}"


# ----------------------------------------------------------------------------------------- least squares
def least_squares(stats, kept, weight, bias=None, intercept=True, ridge=1e-10, gram=None):
    """(new weight, new intercept, error before, error after): the consumer's weights over the kept channels and
    its intercept minimising Σ‖y − W'x_S − b'‖² over the samples (He et al.'s reconstruction, with intercept as
    the code fits it). ``bias`` is the intercept before (the consumer's bias, or None = 0); the errors are
    relative to Σ‖y‖²: before = the kept channels' original weights and that intercept, after = the fit.

    Solved from the (|S|q + 1)² Gram of the kept features by one Cholesky, with a tiny ridge toward the original
    weights (A + εI)θ = B + εθ₀, so that features the samples never excite (silent inputs) keep their weights
    instead of being zeroed. ``intercept`` False fits no offset (a consumer with neither bias nor BN). ``gram``:
    the (G, g) of ``channel_gram`` with the same bias, from which the error before costs O(|S|²) instead of a
    (|S|q)² x n product."""
    s = stats.cpu()
    C, q, n = s.C, s.q, s.n
    kept = torch.as_tensor(list(kept), dtype=torch.long)
    idx = (kept[:, None] * q + torch.arange(q)).flatten()
    m = idx.numel()
    W = weight.detach().to("cpu", torch.float64).reshape(n, C, q)[:, kept].reshape(n, -1)
    b0 = torch.zeros(n, dtype=torch.float64) if bias is None else bias.detach().to("cpu", torch.float64)
    size = m + 1 if intercept else m
    A = torch.empty(size, size, dtype=torch.float64)
    A[:m, :m] = s.sxx[idx[:, None], idx[None, :]]
    B = s.sxy.index_select(0, idx)
    theta0 = W.T
    if intercept:
        sx = s.sx[idx]
        A[:m, m], A[m, :m], A[m, m] = sx, sx, float(s.count)
        B = torch.cat([B, s.sy[None]], 0)
        theta0 = torch.cat([theta0, b0[None]], 0)
    total = float(s.syy)
    # Σ‖y − b₀ − Σ_S Z_i‖² from the channel Gram, else as the quadratic form of θ₀
    if gram is not None:
        G, g = gram
        ybar = total - 2 * float(b0 @ s.sy) + s.count * float(b0 @ b0)
        err0 = ybar - 2 * float(g[kept].sum()) + float(G[kept][:, kept].sum())
    else:
        err0 = total - 2 * float((theta0 * B).sum()) + float((theta0 * (A @ theta0)).sum())
    scale = float(A.diagonal().mean())
    if scale <= 0:  # no sample ever excited a kept feature: nothing to fit
        theta, err1 = theta0, err0
    else:
        eps = ridge * scale
        A.diagonal().add_(eps)  # A is ours (gathered above): the ridge goes in place
        rhs = B + eps * theta0
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            theta = torch.linalg.solve_triangular(L.T, torch.linalg.solve_triangular(L, rhs, upper=False), upper=True)
            # Aθ = B + ε(θ₀ − θ), so Σ‖y − ŷ‖² = Σ‖y‖² − 2<θ, B> + <θ, Aθ> needs no second product
            err1 = total - float((theta * B).sum()) + eps * float((theta * (theta0 - theta)).sum())
        else:
            theta = torch.linalg.lstsq(A, rhs, driver="gelsd").solution
            err1 = (total - 2 * float((theta * B).sum()) + float((theta * (A @ theta)).sum())
                    - eps * float((theta * theta).sum()))
    new_w = theta[:m].T.reshape(n, kept.numel(), q)
    new_b = theta[m] if intercept else None
    rel = (lambda e: max(0.0, e) / total if total > 0 else 0.0)  # noqa: E731
    return new_w, new_b, rel(err0), rel(err1)


def fit_error(stats, kept, weight, bias=None):
    """Relative error Σ‖y − W x_S − b‖² / Σ‖y‖² of a consumer weight over the kept channels (n, |S|, ...) and an
    intercept (None = 0) on other statistics than those it was fit on (held-out samples)."""
    s = stats.cpu()
    q, n = s.q, s.n
    kept = torch.as_tensor(list(kept), dtype=torch.long)
    idx = (kept[:, None] * q + torch.arange(q)).flatten()
    W = weight.detach().to("cpu", torch.float64).reshape(n, -1)
    b = torch.zeros(n, dtype=torch.float64) if bias is None else bias.detach().to("cpu", torch.float64)
    err = (float(s.syy) - 2 * float((W * s.sxy[idx].T).sum()) - 2 * float(b @ s.sy)
           + float((W @ s.sxx[idx][:, idx] * W).sum()) + 2 * float(b @ (W @ s.sx[idx])) + s.count * float(b @ b))
    return max(0.0, err) / float(s.syy) if float(s.syy) > 0 else 0.0


# ----------------------------------------------------------------------------------------- the network
class _Stop(Exception):
    """Raised by a hook once everything a pass needs is captured: the rest of the forward is not needed."""


def _bn_after(model, consumer_name):
    """The BatchNorm applied to the consumer's output, if any: the consumer's channel group names it (conv, bn), or
    a residual block's convN is followed by its bnN."""
    for g in model.channel_groups():
        if g.out and g.out[0] == consumer_name and len(g.out) > 1:
            bn = model.get_submodule(g.out[1])
            if isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm1d)):
                return g.out[1]
    parent, _, leaf = consumer_name.rpartition(".")
    if leaf.startswith("conv"):
        name = f"{parent}.bn{leaf[4:]}" if parent else f"bn{leaf[4:]}"
        try:
            bn = model.get_submodule(name)
        except AttributeError:
            return None
        consumer = model.get_submodule(consumer_name)
        if isinstance(bn, nn.BatchNorm2d) and bn.num_features == consumer.out_channels:
            return name
    return None


def residual_block(model, consumer_name):
    """The residual block whose branch the consumer ends (its output is added to the shortcut), or None: a
    basic block's conv2, a bottleneck's conv3."""
    parent, _, leaf = consumer_name.rpartition(".")
    if not parent:
        return None
    block = model.get_submodule(parent)
    shortcut = callable(getattr(type(block), "shortcut", None)) or hasattr(block, "downsample")
    if not shortcut:
        return None
    last = "conv3" if isinstance(getattr(block, "conv3", None), nn.Conv2d) else "conv2"
    return parent if leaf == last else None


def shortcut_output(block, x):
    """What the block adds its branch to: the CIFAR ResNet's parameter-free ``shortcut(x)``, or the torchvision
    layout's ``downsample`` (identity when None)."""
    if callable(getattr(type(block), "shortcut", None)):
        return block.shortcut(x)
    return x if block.downsample is None else block.downsample(x)


def _bn_scale(bn):
    """a of BN(z) = a·z + c in eval mode, per channel."""
    return (bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)).double()


def _capture(model, x, consumer, block, want_output):
    """One forward of ``model`` stopped at the consumer: its input (or output), and the block's input."""
    got = {}
    handles = []
    if block is not None:
        handles.append(model.get_submodule(block).register_forward_pre_hook(
            lambda m, inp: got.__setitem__("block", inp[0])))
    q = model.get_submodule(consumer)
    if want_output:
        def hook(m, inp, out):
            got["q"] = out
            raise _Stop
        handles.append(q.register_forward_hook(hook))
    else:
        def pre(m, inp):
            got["q"] = inp[0]
            raise _Stop
        handles.append(q.register_forward_pre_hook(pre))
    try:
        model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    if "q" not in got:
        raise ValueError(f"{consumer} was not reached by the forward")
    return got["q"], got.get("block")


class RegressionSampler:
    """Draws one batch's samples of a consumer: (X, Y), inputs from ``current`` (the network pruned so far),
    targets from ``original``, at the same random positions. A residual branch's end gets the shortcut
    correction, original minus pruned shortcut output, expressed before the BN that follows (divided by its
    scale, where that is not zero): the branch then reconstructs original branch + original shortcut − pruned
    shortcut, He et al.'s target."""

    def __init__(self, current, original, consumer_name, fpc=1):
        self.current, self.original, self.consumer_name = current, original, consumer_name
        self.sampler = ConsumerSampler(current.get_submodule(consumer_name), features_per_channel=fpc)
        self.block = residual_block(current, consumer_name)
        self.scale = None
        if self.block is not None:
            bn = _bn_after(current, consumer_name)
            if bn is not None:
                a = _bn_scale(current.get_submodule(bn))
                lam = getattr(current.get_submodule(self.block), "lambda_", None)
                if lam is not None:  # a block lambda (Sparse Structure Selection) scales the branch after its BN
                    a = a * lam.detach().double()
                self.scale = torch.where(a.abs() > 1e-12 * a.abs().max(), 1 / a, torch.zeros_like(a))

    @torch.no_grad()
    def batch(self, x, samples_per_image, generator):
        """(X (m, C·q) float64, Y (m, n) float64) of one batch of images."""
        sp, block = self.sampler, self.block
        xin, bcur = _capture(self.current, x, self.consumer_name, block, want_output=False)
        yout, borg = _capture(self.original, x, self.consumer_name, block, want_output=True)
        if sp.kind != "conv":
            return xin.flatten(1).double(), yout.double()
        u, v = sp.draw_positions(xin.shape, samples_per_image, generator)
        u, v = u.to(xin.device), v.to(xin.device)
        patch = sp.patches(xin, u, v)                                                   # (N, S, kh, kw, C)
        X = patch.permute(0, 1, 4, 2, 3).reshape(-1, sp.num_channels * sp.features).double()
        img = torch.arange(xin.shape[0], device=xin.device)[:, None]
        Y = yout[img, :, u, v].double()                                                 # (N, S, n)
        if block is not None:
            d = shortcut_output(self.original.get_submodule(block), borg) - \
                shortcut_output(self.current.get_submodule(block), bcur)
            d = d[img, :, u, v].double()
            Y = Y + (d * self.scale.to(d.device) if self.scale is not None else d)
        return X, Y.reshape(-1, Y.shape[-1])


@torch.no_grad()
def collect_statistics(current, original, consumer_name, fpc, loader, samples_per_image, generator):
    """The consumer's RegressionStats over ``loader`` (``RegressionSampler``'s samples); returns (stats, name of
    the residual block whose branch the consumer ends, or None)."""
    sampler = RegressionSampler(current, original, consumer_name, fpc)
    sp = sampler.sampler
    stats = None
    for x, _ in loader:
        X, Y = sampler.batch(x, samples_per_image, generator)
        if stats is None:
            stats = RegressionStats(sp.num_channels, sp.features, sp.out_channels, X.device)
        stats.update(X, Y)
    if stats is None:
        raise UserError("no calibration images")
    return stats, sampler.block


def apply_reconstruction(model, consumer_name, new_w, new_b):
    """Write the refit weights into the (already narrowed) consumer; the intercept goes to its bias, or into the
    running mean of the BatchNorm after it (BN(z + b) = BN with mean − b)."""
    q = model.get_submodule(consumer_name)
    with torch.no_grad():
        q.weight.copy_(new_w.reshape(q.weight.shape).to(q.weight))
        if new_b is None:
            return
        if q.bias is not None:
            q.bias.copy_(new_b.to(q.bias))
            return
        bn = model.get_submodule(_bn_after(model, consumer_name))
        bn.running_mean.sub_(new_b.to(bn.running_mean))


def intercept_of(model, consumer_name):
    """(current intercept, whether one can be fit): the consumer's bias, or 0 with a BatchNorm after it to take it;
    neither: no intercept."""
    q = model.get_submodule(consumer_name)
    if q.bias is not None:
        return q.bias.detach(), True
    return None, _bn_after(model, consumer_name) is not None


def prune_by_regression(model, plan, loader, samples_per_image=10, seed=0, tolerance=0.1, solver="path",
                        log=print):
    """He et al.'s schedule: the groups of ``plan`` ([(group name, kept count)], from the input on), each chosen
    on the network pruned so far against the original network's outputs; LASSO selection, least squares with
    intercept, surgery. Returns (pruned network, {cfg index: kept positions}, per-layer records)."""
    from utils.surgery import prune_channels
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    original = copy.deepcopy(model).eval()
    current = model.eval()
    keep, records = {}, []
    for name, target in plan:
        group = {g.name: g for g in current.channel_groups()}[name]
        consumer_name, fpc = consumer_of(current, group, allow_select=True)
        width = current.cfg[group.cfg_index]
        stats, block = collect_statistics(current, original, consumer_name, fpc, loader, samples_per_image,
                                          generator)
        consumer = current.get_submodule(consumer_name)
        bias, intercept = intercept_of(current, consumer_name)
        G, g, rows = channel_gram(stats, consumer.weight, bias)
        kept, alpha, _ = select_channels(G, g, rows, target, tolerance, solver, name)
        new_w, new_b, before, after = least_squares(stats, kept, consumer.weight, bias, intercept, gram=(G, g))
        current = prune_channels(current, {group.cfg_index: kept}).to(device).eval()
        apply_reconstruction(current, consumer_name, new_w, new_b)
        keep[group.cfg_index] = kept
        records.append({"layer": name, "consumer": consumer_name, "channels": width, "target": target,
                        "kept": len(kept), "kept_channels": kept, "alpha": alpha, "samples": stats.count,
                        "residual": block is not None, "error_before": before, "error_after": after})
        log(f"  {name}: {width} -> {len(kept)} channels (target {target}, lambda {alpha:.3g}), reconstruction "
            f"error {before:.4f} -> {after:.4f} (relative, {stats.count:,} samples"
            f"{', residual target' if block is not None else ''})")
    return current, keep, records


# ------------------------------------------------------------------------------------------- the rule
def read_widths(path):
    """A widths file: the pruned network's cfg, comma- or space-separated ('M' for pooling), or a JSON list."""
    import json
    if not os.path.isfile(path):
        raise UserError(f"--widths {path}: no such file")
    text = open(path).read()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines()).strip()
    try:
        values = json.loads(text) if text.startswith("[") else [t for t in text.replace(",", " ").split()]
    except ValueError as exc:
        raise UserError(f"--widths {path}: not a list of widths ({exc})") from None
    out = []
    for v in values:
        if str(v).upper() == "M":
            out.append("M")
            continue
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise UserError(f"--widths {path}: {v!r} is neither a width nor M") from None
    if not out:
        raise UserError(f"--widths {path}: empty")
    return out


@dataclass
class RegressionArgs:
    percent: Optional[float] = hp(None, "fraction of the channels removed from every pruned layer, in (0, 1): each "
                                        "keeps c' = int(C x (1 - percent)) (default 0.5 unless --widths)")
    widths: Optional[str] = hp(None, "a file with the target widths instead: the pruned cfg (e.g. VGG-16-5x's "
                                     "'24,22,M,41,51,M,108,89,111,M,184,276,228,M,512,512,512,M'); every layer "
                                     "narrower there is pruned to it, from the input on")
    layers: list[str] = hp([], "channel groups to prune (with --percent), as prune.json names them, or 'all'; "
                               "default: every VGG conv but the last block's, every ResNet block's groups (a "
                               "bottleneck's input selection, conv1 and conv2)")
    calib_images: int = hp(PAPER_IMAGES, "training images the statistics are sampled on (the code's 500 batches of "
                                         "10: 5,000; capped at the training set's size, with a note)")
    samples_per_image: int = hp(10, "random output positions of the next layer per image, all its outputs at each "
                                    "(the code's 10)")
    calib_batch_size: int = hp(100, "batch size of the statistics passes")
    seed: int = hp(1, "seed of the calibration images and of the positions")
    lasso_solver: str = hp("path", "how lambda is found: 'path' (the whole LARS path on the Gram matrix, the first "
                                   "lambda with c' channels) or 'bisection' (the official code's search, coordinate "
                                   "descent at each lambda)", choices=list(SOLVERS))
    width_tolerance: float = hp(0.1, "a layer may keep up to c' x (1 + this) channels (the code's rank_tol 0.1)")

    def __post_init__(self):  # before any checkpoint is read
        if self.percent is not None and self.widths is not None:
            raise UserError("give --percent or --widths, not both")
        if self.percent is not None and not 0 < self.percent < 1:
            raise UserError(f"--percent {self.percent}: must lie strictly between 0 and 1 (the removed fraction)")
        if self.widths is not None:
            if self.layers:
                raise UserError("--layers goes with --percent; --widths names the pruned layers itself")
            read_widths(self.widths)
        for flag, value in (("--calib-images", self.calib_images), ("--samples-per-image", self.samples_per_image),
                            ("--calib-batch-size", self.calib_batch_size)):
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if not 0 <= self.width_tolerance < 10:
            raise UserError(f"--width-tolerance {self.width_tolerance}: must lie in [0, 10)")


def can_select_input(model):
    return model.spec.arch == "imagenet_resnet" and getattr(model, "kind", None) == "bottleneck"


def with_input_selection(model):
    """The same bottleneck ResNet with a channel selection in front of each block's conv1, selecting everything
    (ResNet-50-2x's layout): the same function, and groups for the block inputs."""
    from models import build_from_spec
    if model.spec.options.get("select_input"):
        return model
    spec = copy.deepcopy(model.spec)
    spec.options["select_input"] = True
    new = build_from_spec(spec)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.endswith(".select.indexes") for k in missing):
        raise ValueError(f"selection layout does not match: missing {missing}, unexpected {unexpected}")
    return new.to(next(model.parameters()).device)


def default_layers(model):
    """He et al.'s layers: VGG every conv but the last block's (VGG-16-5x leaves conv5 whole); a ResNet every
    group: a basic block's first conv, a bottleneck's input selection and both inner convs."""
    if "M" in model.cfg:
        return paper_layers(model)
    return [g.name for g in model.channel_groups()]


def plan_layers(model, hparams):
    """(network to prune, [(group name, kept count)] from the input on). A bottleneck ResNet gets its input
    selections first when the plan prunes one."""
    if hparams.widths is not None:
        targets = read_widths(hparams.widths)
        cfg = model.cfg
        if len(targets) != len(cfg) or any((t == "M") != (c == "M") for t, c in zip(targets, cfg)):
            raise UserError(f"--widths {hparams.widths}: {len(targets)} entries {targets[:6]}... do not match the "
                            f"model's cfg ({len(cfg)} entries: {cfg[:6]}...)")
        for i, (t, c) in enumerate(zip(targets, cfg)):
            if t != "M" and not 1 <= t <= c:
                raise UserError(f"--widths {hparams.widths}: entry {i} is {t}, the model has {c} there (a target "
                                f"must lie in 1..{c})")
        if can_select_input(model) and any(
                t < c for g in range(0, len(cfg), 3) for t, c in [(targets[g], cfg[g])]):
            model = with_input_selection(model)
        by_index = {g.cfg_index: g.name for g in model.channel_groups()}
        narrower = [i for i, (t, c) in enumerate(zip(targets, model.cfg)) if t != "M" and t < c]
        unprunable = [i for i in narrower if i not in by_index]
        if unprunable:
            raise UserError(f"--widths {hparams.widths}: entry {unprunable[0]} is narrower than the model's, but that "
                            f"width is not a prunable layer of {model.spec.arch}-{model.spec.depth}")
        return model, [(by_index[i], targets[i]) for i in sorted(narrower)]
    percent = 0.5 if hparams.percent is None else hparams.percent
    if can_select_input(model) and (not hparams.layers or hparams.layers == ["all"]
                                    or any(n.endswith(".select") for n in hparams.layers)):
        model = with_input_selection(model)
    names = chosen_layers(model, hparams.layers) if hparams.layers else default_layers(model)
    groups = {g.name: g for g in model.channel_groups()}
    order = [g.name for g in model.channel_groups() if g.name in set(names)]
    return model, [(n, max(1, int(model.cfg[groups[n].cfg_index] * (1 - percent)))) for n in order]


class RegressionRule(ChannelMethod):
    """He et al.'s channel pruning as a channel method: layer by layer from the input, inputs from the network
    pruned so far, targets from the original one. The CIFAR and ImageNet folders subclass it with their networks."""
    Hparams = RegressionArgs

    def prune_network(self, model, ctx):
        hp_ = ctx.hparams
        model = model.to(ctx.device)
        model, plan = plan_layers(model, hp_)
        loader = ctx.calibration_loader(hp_.calib_images, hp_.calib_batch_size, seed=hp_.seed)
        what = f"--widths {hp_.widths}" if hp_.widths else f"keeping {1 - (hp_.percent or 0.5):.0%} of each"
        ctx.log(f"regression pruning: {len(plan)} layer(s) of {model.spec.arch}-{model.spec.depth}, {what}, "
                f"{hp_.samples_per_image} positions per image on {loader.num_images} calibration images, "
                f"lambda by {hp_.lasso_solver}")
        pruned, keep, records = prune_by_regression(model, plan, loader, hp_.samples_per_image, hp_.seed,
                                                    hp_.width_tolerance, hp_.lasso_solver, ctx.log)
        ctx.records["layers"] = records
        return keep, pruned.cpu()

    def describe(self, model, keep, ctx):
        hp_ = ctx.hparams
        out = {"layer_records": ctx.records.get("layers", [])}
        if hp_.widths is None:
            out["percent"] = 0.5 if hp_.percent is None else hp_.percent
        return out
