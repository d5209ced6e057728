"""The numerical core of regression pruning (utils/lasso.py), on planted problems and against explicit oracles: the
Gram formulation equals the explicit N·n x C design of He et al. (sklearn's Lasso on it is the oracle of the
selection, numpy's lstsq with intercept of the reconstruction); the lambda search lands in [c', 1.1 c']; both
solvers choose the same channels; a target that depends on c' channels only is recovered exactly."""
import numpy as np
import pytest
import torch

from utils.errors import UserError
from utils.lasso import (RegressionStats, channel_gram, lasso_at, lasso_cd, lasso_path, least_squares,
                         select_channels)

pytestmark = pytest.mark.usefixtures("one_thread")


def layer(seed, C=8, q=9, n=6, N=400, planted=None, scales=None, bias=None, dead=()):
    """Random patches X (N, C·q), consumer weight W (n, C, 3, 3) and targets Y. ``planted``: Y = Σ_{i in planted}
    scales_i Z_i + bias (an exact linear map of those channels' contributions), else Y = Σ_i Z_i + noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, C, q, generator=g, dtype=torch.float64)
    for i in dead:
        X[:, i] = 0
    X = X.reshape(N, C * q)
    W = torch.randn(n, C, q, generator=g, dtype=torch.float64)
    Z = torch.einsum("sik,oik->soi", X.view(N, C, q), W)                      # (N, n, C): Z_i per sample, output
    if planted is None:
        Y = Z.sum(-1) + 0.3 * torch.randn(N, n, generator=g, dtype=torch.float64)
    else:
        s = torch.ones(C, dtype=torch.float64) if scales is None else scales
        Y = sum(s[i] * Z[..., i] for i in planted)
    if bias is not None:
        Y = Y + bias
    return X, W.reshape(n, C, 3, 3) if q == 9 else W.reshape(n, C * q), Y, Z


def stats_of(X, Y, C, q, chunks=3):
    st = RegressionStats(C, q, Y.shape[1])
    for xs, ys in zip(X.chunk(chunks), Y.chunk(chunks)):
        st.update(xs, ys)
    return st


def explicit_design(Z, Y, bias=None):
    """He et al.'s LASSO design: rows (sample, output), one column per channel; targets minus the bias."""
    N, n, C = Z.shape
    y = Y if bias is None else Y - bias
    return Z.reshape(N * n, C).numpy(), y.reshape(N * n).numpy()


def test_channel_gram_is_the_explicit_design_gram():
    X, W, Y, Z = layer(0)
    b = torch.linspace(-1, 1, 6, dtype=torch.float64)
    G, g, rows = channel_gram(stats_of(X, Y, 8, 9), W, b)
    D, y = explicit_design(Z, Y, b)
    assert rows == D.shape[0]
    assert np.allclose(G.numpy(), D.T @ D, rtol=1e-10, atol=1e-8)
    assert np.allclose(g.numpy(), D.T @ y, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_selection_equals_sklearn_lasso_on_the_explicit_design(seed):
    """A small random layer: at the lambda each solver settles on, the kept channels are exactly the nonzero
    coefficients of sklearn's Lasso on the explicit N·n x C design (same lambda, same 1/2N' scaling), the path's
    coefficients equal Lasso's, the count lies in [c', 1.1 c'], and the two solvers keep the same channels."""
    from sklearn.linear_model import Lasso
    X, W, Y, Z = layer(seed)
    G, g, rows = channel_gram(stats_of(X, Y, 8, 9), W)
    D, y = explicit_design(Z, Y)
    keep = 4
    chosen = {}
    for solver in ("path", "bisection"):
        kept, alpha, count = select_channels(G, g, rows, keep, solver=solver)
        assert keep <= count <= int(1.1 * keep) and len(kept) == count
        oracle = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(D, y)
        assert np.flatnonzero(oracle.coef_).tolist() == kept, solver
        chosen[solver] = kept
        if solver == "path":
            alphas, coefs = lasso_path(G, g, rows)
            assert np.allclose(lasso_at(alphas, coefs, alpha), oracle.coef_, rtol=1e-5, atol=1e-8)
        cd = lasso_cd(G, g, rows, alpha)
        assert np.allclose(cd, oracle.coef_, rtol=1e-5, atol=1e-8)
    assert chosen["path"] == chosen["bisection"]


def test_the_lambda_search_lands_in_the_tolerance_band_on_a_wider_layer():
    """C = 40, c' = 20: the band [20, 22] holds three counts; the path takes the first lambda with 20 channels,
    the bisection stops anywhere in the band."""
    X, W, Y, _ = layer(4, C=40, n=8, N=300)
    G, g, rows = channel_gram(stats_of(X, Y, 40, 9), W)
    kept, _, count = select_channels(G, g, rows, 20, solver="path")
    assert count == 20 == len(kept)
    kept_b, _, count_b = select_channels(G, g, rows, 20, solver="bisection")
    assert 20 <= count_b <= 22


@pytest.mark.parametrize("solver", ["path", "bisection"])
def test_lasso_keeps_exactly_the_channels_the_target_depends_on(solver):
    """Planted: the target is the contribution of channels {1, 3, 4, 6} only (the others contribute nothing to
    it, though they feed the layer): the LASSO at c' = 4 keeps exactly those, and least squares then restores the
    layer output (relative error < 1e-4; here it is exact up to rounding)."""
    planted = [1, 3, 4, 6]
    X, W, Y, _ = layer(5, planted=planted)
    st = stats_of(X, Y, 8, 9)
    G, g, rows = channel_gram(st, W)
    kept, _, _ = select_channels(G, g, rows, 4, solver=solver)
    assert kept == planted
    new_w, new_b, before, after = least_squares(st, kept, W)
    fit = X.view(-1, 8, 9)[:, kept].reshape(len(X), -1) @ new_w.reshape(6, -1).T + new_b
    assert ((fit - Y).norm() / Y.norm()) ** 2 < 1e-4
    assert after < 1e-12 and before == pytest.approx(0, abs=1e-12)  # the original weights already fit it


def test_an_exact_linear_map_of_c_channels_is_recovered_exactly():
    """Planted: Y = Σ_{i in S} s_i Z_i + b with random scales s and a bias b: the LASSO finds S and least squares with
    intercept recovers the weights s_i W_i and the bias b exactly."""
    planted = [0, 2, 5]
    scales = torch.tensor([1.7, 1, -0.6, 1, 1, 2.3, 1, 1], dtype=torch.float64)
    bias = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.25, -0.75], dtype=torch.float64)
    X, W, Y, _ = layer(6, planted=planted, scales=scales, bias=bias)
    st = stats_of(X, Y, 8, 9)
    G, g, rows = channel_gram(st, W)  # no bias given: the LASSO sees b as an unexplained offset
    kept, _, _ = select_channels(G, g, rows, 3)
    assert kept == planted
    new_w, new_b, before, after = least_squares(st, kept, W, torch.zeros(6, dtype=torch.float64))
    expect = W.reshape(6, 8, 9)[:, planted] * scales[planted].view(1, -1, 1)
    assert torch.allclose(new_w, expect, atol=1e-9) and torch.allclose(new_b, bias, atol=1e-9)
    assert after < 1e-15 < before


def test_least_squares_is_lstsq_with_intercept():
    X, W, Y, _ = layer(7)
    st = stats_of(X, Y, 8, 9)
    kept = [0, 3, 4, 7]
    new_w, new_b, before, after = least_squares(st, kept, W, ridge=0)
    A = np.hstack([X.view(-1, 8, 9)[:, kept].reshape(len(X), -1).numpy(), np.ones((len(X), 1))])
    sol = np.linalg.lstsq(A, Y.numpy(), rcond=None)[0]
    assert np.allclose(new_w.reshape(6, -1).numpy(), sol[:-1].T, atol=1e-8)
    assert np.allclose(new_b.numpy(), sol[-1], atol=1e-8)
    resid = ((A @ sol - Y.numpy()) ** 2).sum() / (Y.numpy() ** 2).sum()
    assert after == pytest.approx(resid, rel=1e-6) and before > after
    Wk = W.reshape(6, 8, 9)[:, kept].reshape(6, -1).numpy()
    plain = ((A[:, :-1] @ Wk.T - Y.numpy()) ** 2).sum() / (Y.numpy() ** 2).sum()
    assert before == pytest.approx(plain, rel=1e-6)
    G, g, _ = channel_gram(st, W)  # the error before from the channel Gram: the same number
    assert least_squares(st, kept, W, gram=(G, g))[2] == pytest.approx(before, rel=1e-9)
    # without an intercept (a consumer with neither bias nor BN): plain least squares
    w0, b0, _, _ = least_squares(st, kept, W, intercept=False, ridge=0)
    sol0 = np.linalg.lstsq(A[:, :-1], Y.numpy(), rcond=None)[0]
    assert b0 is None and np.allclose(w0.reshape(6, -1).numpy(), sol0.T, atol=1e-8)


def test_silent_kept_channels_keep_their_weights():
    """A kept channel whose input is always zero: nothing says what its weights should be, the fit leaves them."""
    X, W, Y, _ = layer(8, dead=(2,))
    st = stats_of(X, Y, 8, 9)
    new_w, _, _, after = least_squares(st, [1, 2, 5], W)
    assert torch.allclose(new_w[:, 1], W.reshape(6, 8, 9)[:, 2], atol=1e-6) and after < 1


@pytest.mark.parametrize("solver", ["path", "bisection"])
def test_a_target_no_lambda_reaches_is_one_error(solver):
    X, W, Y, _ = layer(9, dead=(0, 1, 2, 3, 4))
    G, g, rows = channel_gram(stats_of(X, Y, 8, 9), W)
    with pytest.raises(UserError, match="only 3 of them contribute"):
        select_channels(G, g, rows, 4, solver=solver, name="conv3")
    kept, _, _ = select_channels(G, g, rows, 3, solver=solver)
    assert kept == [5, 6, 7]


def test_fit_error_on_other_samples():
    """The error of given weights on statistics they were not fit on equals the explicit residual."""
    X, W, Y, _ = layer(11)
    kept = [1, 2, 6]
    new_w, new_b, _, after = least_squares(stats_of(X[:200], Y[:200], 8, 9), kept, W)
    from utils.lasso import fit_error
    held = stats_of(X[200:], Y[200:], 8, 9)
    fit = X[200:].view(-1, 8, 9)[:, kept].reshape(200, -1) @ new_w.reshape(6, -1).T + new_b
    explicit = float(((fit - Y[200:]) ** 2).sum() / (Y[200:] ** 2).sum())
    assert fit_error(held, kept, new_w, new_b) == pytest.approx(explicit, rel=1e-8)
    assert fit_error(stats_of(X[:200], Y[:200], 8, 9), kept, new_w, new_b) == pytest.approx(after, rel=1e-6)
