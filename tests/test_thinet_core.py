"""ThiNet's numerical core (utils/thinet.py) on planted problems whose right answer is known by construction:
channels that contribute nothing, a channel that is a linear function of kept ones, Gram matrices where the
greedy is provably optimal (checked against all subsets), plus the statistics pass against a slow
per-sample loop and the least-squares properties."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import utils.thinet as thinet
from utils.thinet import (ContributionGram, brute_force_removal, greedy_removal, least_squares_scales,
                          reconstruction_error, relative_reconstruction_error, rescale_consumer, select_channels)

f64 = torch.float64


def _gram(consumer, inputs, features_per_channel=None, n_samples=10, seed=0):
    gram = ContributionGram(consumer, features_per_channel)
    gen = torch.Generator().manual_seed(seed)
    for x in inputs:
        gram.update(x, consumer.weight, n_samples, gen)
    return gram


def _cost(A, removed):
    idx = torch.tensor(sorted(removed), dtype=torch.long)
    return float(A[idx][:, idx].sum())


# --- (a) channels the consumer ignores ---------------------------------------------------------------------

def test_zero_weight_channels_are_removed_and_output_is_unchanged():
    torch.manual_seed(0)
    consumer = nn.Conv2d(8, 6, 3, padding=1).double()
    with torch.no_grad():
        consumer.weight[:, [1, 4, 6, 7]] = 0
    gram = _gram(consumer, [torch.relu(torch.randn(16, 8, 10, 10, dtype=f64)) for _ in range(4)])
    # All four cost exactly 0 at every step: the tie rule alone fixes the order.
    assert greedy_removal(gram.A, 4) == [1, 4, 6, 7]
    kept, removed = select_channels(gram.A, 4)
    assert kept == [0, 2, 3, 5] and removed == [1, 4, 6, 7]
    assert reconstruction_error(gram.A, kept) == 0
    w = least_squares_scales(gram.A, kept)
    torch.testing.assert_close(w, torch.ones(4, dtype=f64), atol=1e-6, rtol=0)

    pruned = nn.Conv2d(4, 6, 3, padding=1).double()
    with torch.no_grad():
        pruned.weight.copy_(rescale_consumer(consumer.weight, kept, w))
        pruned.bias.copy_(consumer.bias)
    x = torch.relu(torch.randn(8, 8, 10, 10, dtype=f64))  # fresh inputs, never sampled
    with torch.no_grad():
        torch.testing.assert_close(pruned(x[:, kept]), consumer(x), atol=1e-6, rtol=1e-6)


def test_zero_weight_blocks_of_a_linear_consumer_after_flatten():
    """The fc6 case: a Linear reading a flattened C x 3 x 3 map, each channel owning 9 features."""
    torch.manual_seed(1)
    consumer = nn.Linear(6 * 9, 5).double()
    with torch.no_grad():
        consumer.weight.view(5, 6, 9)[:, [0, 3]] = 0
    gram = _gram(consumer, [torch.relu(torch.randn(20, 6, 3, 3, dtype=f64)) for _ in range(3)], 9)
    kept, removed = select_channels(gram.A, 4)
    assert removed == [0, 3] and kept == [1, 2, 4, 5]
    w = least_squares_scales(gram.A, kept)
    pruned = nn.Linear(4 * 9, 5).double()
    with torch.no_grad():
        pruned.weight.copy_(rescale_consumer(consumer.weight, kept, w, features_per_channel=9))
        pruned.bias.copy_(consumer.bias)
        x = torch.relu(torch.randn(7, 6, 3, 3, dtype=f64))
        torch.testing.assert_close(pruned(x[:, kept].flatten(1)), consumer(x.flatten(1)), atol=1e-6, rtol=1e-6)


# --- (b) a channel that is a linear function of kept ones -------------------------------------------------

def _redundant_pipeline(case, seed):
    """producer conv -> ReLU -> max-pool (-> fixed 1x1 mix) -> consumer, with input channel 5 of the consumer
    equal to x2 ("duplicate": producer filter 5 is a copy of filter 2) or 0.5·x2 + 2·x3 ("combination").

    A per-channel scale can absorb a removed channel only if its kernel is proportional to the kept ones',
    so the consumer's kernels for the related channels are multiples of one kernel K. ThiNet's ICCV greedy
    ranks a lone channel by its own contribution and cannot see redundancy, so channel 5 is given the
    smallest multiple: it is what the greedy removes; the redundancy is what lets least squares repair it.
    """
    g = torch.Generator().manual_seed(seed)
    producer = nn.Conv2d(3, 8, 3, padding=1)
    mixer = nn.Conv2d(8, 8, 1, bias=False)
    consumer = nn.Conv2d(8, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        producer.weight.copy_(torch.randn(producer.weight.shape, generator=g) * 0.3)
        producer.bias.copy_(torch.rand(8, generator=g) * 0.2)
        mixer.weight.copy_(torch.eye(8).view(8, 8, 1, 1))
        consumer.weight.copy_(torch.randn(consumer.weight.shape, generator=g))
        K = torch.randn(6, 3, 3, generator=g)
        if case == "duplicate":
            producer.weight[5] = producer.weight[2]
            producer.bias[5] = producer.bias[2]
            related = {2: 1.0, 5: 0.1}
        else:
            mixer.weight[5, :, 0, 0] = 0
            mixer.weight[5, 2, 0, 0], mixer.weight[5, 3, 0, 0] = 0.5, 2.0
            related = {2: 1.0, 3: -0.8, 5: 0.02}
        for c, a in related.items():
            consumer.weight[:, c] = a * K
    features = nn.Sequential(producer, nn.ReLU(), nn.MaxPool2d(2), mixer)
    return features, consumer


@pytest.mark.parametrize("case", ["duplicate", "combination"])
def test_redundant_channel_is_removed_and_least_squares_restores_the_output(case):
    features, consumer = _redundant_pipeline(case, seed=3)
    gram = ContributionGram(consumer)
    gen = torch.Generator().manual_seed(0)

    def collect(module, inputs):
        # Statistics the way a pruning pass collects them: a pre-hook sees exactly what the consumer receives.
        gram.update(inputs[0], module.weight, 10, gen)

    hook = consumer.register_forward_pre_hook(collect)
    data = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(4):
            consumer(features(torch.randn(32, 3, 16, 16, generator=data)))
    hook.remove()
    assert gram.count == 4 * 32 * 10

    kept, removed = select_channels(gram.A, 7)
    assert removed == [5]
    w = least_squares_scales(gram.A, kept)
    assert relative_reconstruction_error(gram.A, kept, w) < 1e-10

    pruned = nn.Conv2d(7, 6, 3, padding=1, bias=False)
    unscaled = nn.Conv2d(7, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        pruned.weight.copy_(rescale_consumer(consumer.weight, kept, w))
        unscaled.weight.copy_(consumer.weight[:, kept])
        x = features(torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(99)))  # held out
        if case == "duplicate":
            assert torch.equal(x[:, 5], x[:, 2])
        y = consumer(x)
        rel = lambda z: float((z - y).norm() / y.norm())  # noqa: E731
        # Dropping channel 5 matters (so the restoration below is least squares' doing) ...
        assert rel(unscaled(x[:, kept])) > 1e-3
        # ... and the fitted scales put it back.
        assert rel(pruned(x[:, kept])) < 1e-4


# --- (c) greedy against the global optimum and against a direct re-implementation ------------------------

def _planted_gram(case):
    """8-channel Gram matrices where removing the 4 cheapest channels one at a time is globally optimal."""
    g = torch.Generator().manual_seed({"separated": 0, "blocks": 1, "ties": 2}[case])
    if case == "separated":
        # Nearly orthogonal contributions on scales 2^0..2^7 in shuffled order.
        scales = 2.0 ** torch.randperm(8, generator=g).to(f64)
        X = torch.randn(4000, 8, generator=g, dtype=f64) * scales
        return X.T @ X
    if case == "blocks":
        # Four independent pairs of positively correlated channels, pair scales 1, 10, 100, 1000 shuffled.
        base = torch.randn(4000, 4, generator=g, dtype=f64)
        X = torch.empty(4000, 8, dtype=f64)
        pair_scale = 10.0 ** torch.randperm(4, generator=g).to(f64)
        for b in range(4):
            X[:, 2 * b] = pair_scale[b] * base[:, b]
            X[:, 2 * b + 1] = pair_scale[b] * (base[:, b] + 0.3 * torch.randn(4000, generator=g, dtype=f64))
        perm = torch.randperm(8, generator=g)
        return (X.T @ X)[perm][:, perm]
    # Exact ties at the boundary: three channels of cost 4 compete for the last slot.
    return torch.diag(torch.tensor([4.0, 1.0, 4.0, 9.0, 2.0, 9.0, 1.0, 4.0], dtype=f64))


@pytest.mark.parametrize("case", ["separated", "blocks", "ties"])
def test_greedy_equals_brute_force_on_planted_problems(case):
    A = _planted_gram(case)
    greedy = greedy_removal(A, 4)
    best = brute_force_removal(A, 4)  # all 70 subsets
    print(f"{case}: greedy {sorted(greedy)} cost {_cost(A, greedy):.6g}, brute force {best} cost {_cost(A, best):.6g}")
    assert sorted(greedy) == best
    if case == "ties":
        assert best == [0, 1, 4, 6]


def test_greedy_is_not_globally_optimal_when_removed_channels_cancel():
    """A known limitation, pinned so that it is not 'fixed' by accident: two large channels whose
    contributions cancel are jointly free to remove, but each alone looks expensive to the greedy."""
    g = torch.Generator().manual_seed(5)
    X = torch.randn(2000, 6, generator=g, dtype=f64)
    X[:, 1] = -X[:, 0] + 1e-3 * torch.randn(2000, generator=g, dtype=f64)
    X[:, :2] *= 5
    A = X.T @ X
    assert brute_force_removal(A, 2) == [0, 1]
    greedy = greedy_removal(A, 2)
    assert 0 not in greedy and 1 not in greedy
    assert _cost(A, greedy) > 100 * _cost(A, [0, 1])


def _slow_greedy(A, num_remove):
    """ThiNet's loop, quadratic form recomputed from scratch for every candidate."""
    C = A.shape[0]
    removed = []
    for _ in range(num_remove):
        best, best_cost = None, None
        for c in range(C):
            if c in removed:
                continue
            ind = torch.zeros(C, dtype=f64)
            ind[removed + [c]] = 1
            cost = float(ind @ A @ ind)
            if best_cost is None or cost < best_cost:
                best, best_cost = c, cost
        removed.append(best)
    return removed


@pytest.mark.parametrize("seed", range(5))
def test_greedy_matches_direct_reimplementation(seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(200, 16, generator=g, dtype=f64) @ torch.randn(16, 16, generator=g, dtype=f64)
    A = X.T @ X
    assert greedy_removal(A, 16) == _slow_greedy(A, 16)
    assert greedy_removal(A, 8) == _slow_greedy(A, 8)


def test_brute_force_is_never_worse_than_greedy():
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(100, 8, generator=g, dtype=f64) @ torch.randn(8, 8, generator=g, dtype=f64)
        A = X.T @ X
        assert _cost(A, brute_force_removal(A, 4)) <= _cost(A, greedy_removal(A, 4)) + 1e-9


# --- (d) least squares never makes the reconstruction worse ----------------------------------------------

def _random_layer_gram(seed, n_images, n_samples, duplicate=False):
    g = torch.Generator().manual_seed(seed)
    consumer = nn.Conv2d(16, 12, 3, padding=1)
    with torch.no_grad():
        consumer.weight.copy_(torch.randn(consumer.weight.shape, generator=g))
    x = torch.relu(torch.randn(n_images, 16, 6, 6, generator=g, dtype=torch.float32))
    if duplicate:
        x[:, 9] = x[:, 4]
        x[:, 10] = 0  # a silent channel as well
    gram = ContributionGram(consumer)
    gram.update(x, consumer.weight, n_samples, torch.Generator().manual_seed(seed))
    return gram, consumer, x


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["full-rank", "few-samples", "duplicates"])
def test_least_squares_never_increases_the_error(seed, kind):
    n_images, n_samples = {"full-rank": (30, 10), "few-samples": (3, 2), "duplicates": (30, 10)}[kind]
    gram, _, _ = _random_layer_gram(seed, n_images, n_samples, duplicate=kind == "duplicates")
    A = gram.A
    if kind != "full-rank":
        assert torch.linalg.matrix_rank(A) < 16
    for keep in (1, 5, 8, 15, 16):
        kept, _ = select_channels(A, keep)
        w = least_squares_scales(A, kept)
        before, after = reconstruction_error(A, kept), reconstruction_error(A, kept, w)
        assert before >= 0 and after >= 0
        assert after <= before + 1e-12 * gram.total, (keep, before, after)
    for ridge in (0.0, 1e-10):  # ridge 0 takes the gelsd fallback when A_SS is singular
        kept, _ = select_channels(A, 12)
        w = least_squares_scales(A, kept, ridge=ridge)
        assert torch.isfinite(w).all()
        assert reconstruction_error(A, kept, w) <= reconstruction_error(A, kept) + 1e-12 * gram.total


def test_channels_the_samples_say_nothing_about_keep_their_weights():
    """The ridge pulls toward w = 1: a kept channel silent on the calibration data is not zeroed (it may
    fire on other data), and with nothing removed the fit leaves every weight as it was."""
    gram, _, _ = _random_layer_gram(0, 30, 10, duplicate=True)  # channel 10 silent, 9 duplicates 4
    A = gram.A
    assert float(A[10].abs().max()) == 0
    kept = [c for c in range(16) if c not in (0, 1, 2)]
    w = least_squares_scales(A, kept)
    assert float(w[kept.index(10)]) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(least_squares_scales(A, list(range(16))), torch.ones(16, dtype=f64),
                               atol=1e-12, rtol=0)


def test_least_squares_and_errors_agree_with_explicit_samples():
    """The Gram shortcuts equal the sample-matrix definitions: ŵ = argmin ‖ŷ − X̂_S w‖² and the error."""
    g = torch.Generator().manual_seed(7)
    consumer = nn.Conv2d(10, 8, 3, padding=1)
    x = torch.relu(torch.randn(40, 10, 7, 7, generator=g))
    gram = ContributionGram(consumer)
    o, u, v = gram.draw(x.shape, 10, torch.Generator().manual_seed(3))
    X = gram.contributions(x, consumer.weight, o, u, v)
    gram.update(x, consumer.weight, 10, torch.Generator().manual_seed(3))
    torch.testing.assert_close(gram.A, X.T @ X, atol=1e-10, rtol=1e-12)
    y = X.sum(1)
    kept, _ = select_channels(gram.A, 5)
    w = least_squares_scales(gram.A, kept)
    w_ref = torch.linalg.lstsq(X[:, kept], y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    torch.testing.assert_close(w, w_ref, atol=1e-6, rtol=1e-6)
    for ws in (None, w):
        pred = X[:, kept] @ (torch.ones(5, dtype=f64) if ws is None else ws)
        explicit = float(((y - pred) ** 2).sum())
        assert reconstruction_error(gram.A, kept, ws) == pytest.approx(explicit, rel=1e-9)
        assert relative_reconstruction_error(gram.A, kept, ws) == pytest.approx(explicit / float((y ** 2).sum()),
                                                                                rel=1e-9)


# --- the statistics pass against a slow per-sample loop --------------------------------------------------

def _slow_conv_gram(x, conv, o, u, v):
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    ph, pw = conv.padding
    W = conv.weight.detach().double()
    rows = []
    for n in range(x.shape[0]):
        xp = F.pad(x[n].double(), (pw, pw, ph, ph))
        for s in range(o.shape[1]):
            oo, uu, vv = int(o[n, s]), int(u[n, s]), int(v[n, s])
            row = []
            for c in range(x.shape[1]):
                acc = 0.0
                for a in range(kh):
                    for b in range(kw):
                        acc += float(W[oo, c, a, b]) * float(xp[c, uu * sh + a * dh, vv * sw + b * dw])
                row.append(acc)
            rows.append(row)
    X = torch.tensor(rows, dtype=f64)
    return X.T @ X, X


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 1), (3, 2, 0, 1), (1, 1, 0, 1), (1, 2, 0, 1), (3, 1, 2, 2)])
def test_conv_statistics_match_a_slow_loop(kernel, stride, padding, dilation):
    torch.manual_seed(kernel * 100 + stride * 10 + padding)
    conv = nn.Conv2d(5, 4, kernel, stride=stride, padding=padding, dilation=dilation)
    x = torch.relu(torch.randn(3, 5, 7, 7))
    gram = ContributionGram(conv).update(x, conv.weight, 4, torch.Generator().manual_seed(11))
    o, u, v = gram.draw(x.shape, 4, torch.Generator().manual_seed(11))
    A_slow, X_slow = _slow_conv_gram(x, conv, o, u, v)
    assert gram.count == 12
    torch.testing.assert_close(gram.A, A_slow, atol=1e-10, rtol=0)
    # ŷ = Σ_c x̂_c is the consumer's output at (o, u, v) minus its bias.
    y = F.conv2d(x.double(), conv.weight.double(), None, conv.stride, conv.padding, conv.dilation)
    n = torch.arange(3).unsqueeze(1).expand(3, 4)
    torch.testing.assert_close(X_slow.sum(1), y[n, o, u, v].reshape(-1), atol=1e-10, rtol=0)


def test_linear_statistics_match_a_slow_loop():
    torch.manual_seed(4)
    fc = nn.Linear(4 * 3 * 3, 7)
    x = torch.relu(torch.randn(3, 4, 3, 3))
    gram = ContributionGram(fc, features_per_channel=9).update(x, fc.weight, 4, torch.Generator().manual_seed(2))
    o, _, _ = gram.draw(x.shape, 4, torch.Generator().manual_seed(2))
    W, flat = fc.weight.detach().double(), x.flatten(1).double()
    rows = [[sum(float(W[int(o[n, s]), c * 9 + f]) * float(flat[n, c * 9 + f]) for f in range(9)) for c in range(4)]
            for n in range(3) for s in range(4)]
    X = torch.tensor(rows, dtype=f64)
    torch.testing.assert_close(gram.A, X.T @ X, atol=1e-10, rtol=0)
    # features_per_channel=1 treats every input feature as its own channel.
    per_feature = ContributionGram(fc).update(x.flatten(1), fc.weight, 4, torch.Generator().manual_seed(2))
    assert per_feature.A.shape == (36, 36)
    torch.testing.assert_close(per_feature.A.view(4, 9, 4, 9).sum((1, 3)), gram.A, atol=1e-10, rtol=0)


def test_draws_are_deterministic_uniform_and_reach_the_border():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    gram = ContributionGram(conv)
    a = gram.draw((400, 3, 9, 9), 10, torch.Generator().manual_seed(0))
    b = gram.draw((400, 3, 9, 9), 10, torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    o, u, v = a
    assert gram.output_size(9, 9) == (5, 5)
    assert set(o.flatten().tolist()) == set(range(5))
    assert set((u * 5 + v).flatten().tolist()) == set(range(25))  # every output position, corners included


def test_chunked_update_equals_one_block(monkeypatch):
    conv = nn.Conv2d(6, 4, 3, padding=1)
    x = torch.relu(torch.randn(10, 6, 5, 5))
    whole = ContributionGram(conv).update(x, conv.weight, 3, torch.Generator().manual_seed(1))
    monkeypatch.setattr(thinet, "_CHUNK_ELEMENTS", 6 * 9 * 3 * 2)  # two images per block
    chunked = ContributionGram(conv).update(x, conv.weight, 3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(chunked.A, whole.A, atol=1e-12, rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_statistics_equal_cpu():
    conv = nn.Conv2d(6, 4, 3, padding=1)
    x = torch.relu(torch.randn(10, 6, 8, 8))
    cpu = ContributionGram(conv).update(x, conv.weight, 5, torch.Generator().manual_seed(1))
    conv_cuda = conv.cuda()
    cuda = ContributionGram(conv_cuda).update(x.cuda(), conv_cuda.weight, 5, torch.Generator().manual_seed(1))
    assert cuda.A.device.type == "cuda"
    torch.testing.assert_close(cuda.A.cpu(), cpu.A, atol=1e-9, rtol=1e-9)


def test_rejects_what_it_cannot_handle():
    with pytest.raises(ValueError):
        ContributionGram(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError):
        ContributionGram(nn.Linear(10, 3), features_per_channel=3)
    conv = nn.Conv2d(4, 3, 3)
    with pytest.raises(ValueError):
        ContributionGram(conv).update(torch.randn(2, 5, 6, 6), conv.weight)
    with pytest.raises(ValueError):
        greedy_removal(torch.eye(3), 4)
    with pytest.raises(ValueError):
        least_squares_scales(torch.eye(3), [0, 0])
