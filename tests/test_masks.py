"""utils/masks.py: magnitude masks in every mode against an independent numpy oracle of the reference's
sorted-threshold rule, iterative pruning of the remaining weights, MaskHook under SGD with momentum and
weight decay, the sparse re-initialisation's std rule, and the torch.nn.utils.prune interchange."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune as torch_prune

from models import create_model
from utils.data import DeviceLoader, TensorDataset
from utils.engine import TrainConfig, Trainer
from utils.errors import UserError
from utils.masks import (MaskHook, apply_masks, conv_weights, density, from_torch_prune, join_torch_prune_state,
                         magnitude_masks, masks_from_nonzero, sparse_reinit, split_torch_prune_state,
                         to_torch_prune)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_vgg(seed=0, batch_norm=True):
    torch.manual_seed(seed)
    return create_model("vgg11_bn" if batch_norm else "vgg11", 11,
                        cfg=[8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32])


def quantised(model, levels=16, seed=0):
    """Conv weights on a coarse grid (many exact ties, also at the threshold), both signs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in conv_weights(model).values():
            w.copy_((torch.randint(-levels, levels + 1, w.shape, generator=g).float()) / levels)
    return model


# ------------------------------------------------------------------------------- numpy oracle
def oracle_keep(scores, alive, ratio, of):
    """The reference's rule on a flat pool: dead entries score 0; sort ascending; threshold at
    int(total * ratio) (of all) or dead + int(alive * ratio) (of the remaining); keep > threshold."""
    scores = np.where(alive, scores, 0.0).astype(np.float32)
    total, dead = scores.size, int((~alive).sum())
    index = int(total * ratio) if of == "all" else dead + int((total - dead) * ratio)
    thre = np.sort(scores, kind="stable")[index]
    return (scores > thre) & alive


def oracle_masks(model, ratio, scope, granularity, norm, of, masks=None):
    weights = {n: w.detach().numpy().copy() for n, w in conv_weights(model).items()}
    scores, alive = {}, {}
    for n, w in weights.items():
        m = masks[n].numpy() if masks else np.ones(w.shape, bool)
        w = w * m
        if granularity == "weight":
            scores[n], alive[n] = np.abs(w), m
        else:
            flat = w.reshape(w.shape[0], -1)
            scores[n] = (np.abs(flat).sum(1) if norm == 1 else np.sqrt((flat.astype(np.float64) ** 2).sum(1)))
            alive[n] = m.reshape(w.shape[0], -1).any(1)
    if scope == "layer":
        keep = {n: oracle_keep(scores[n].ravel(), alive[n].ravel(), ratio, of).reshape(scores[n].shape)
                for n in weights}
    else:
        flat = oracle_keep(np.concatenate([scores[n].ravel() for n in weights]),
                           np.concatenate([alive[n].ravel() for n in weights]), ratio, of)
        keep, pos = {}, 0
        for n in weights:
            k = scores[n].size
            keep[n] = flat[pos:pos + k].reshape(scores[n].shape)
            pos += k
    if granularity == "filter":
        keep = {n: np.broadcast_to(k.reshape(-1, *([1] * (weights[n].ndim - 1))), weights[n].shape)
                for n, k in keep.items()}
    return keep


MODES = [(scope, gran, norm, of) for scope in ("global", "layer") for gran in ("weight", "filter")
         for norm in ((1, 2) if gran == "filter" else (1,)) for of in ("all", "remaining")]


@pytest.mark.parametrize("scope,granularity,norm,of", MODES, ids=lambda v: str(v))
@pytest.mark.parametrize("weights", ["random", "ties"])
def test_magnitude_masks_match_the_oracle(scope, granularity, norm, of, weights):
    model = tiny_vgg(1)
    if weights == "ties":
        quantised(model)
    # a previous round's mask, so that 'remaining' differs from 'all'
    first = magnitude_masks(model, 0.4, scope=scope, granularity=granularity, norm=norm)
    for ratio in (0.3, 0.55):
        got = magnitude_masks(model, ratio, scope=scope, granularity=granularity, norm=norm, of=of, masks=first)
        expected = oracle_masks(model, ratio, scope, granularity, norm, of, masks=first)
        assert list(got) == list(conv_weights(model))
        for n in got:
            assert got[n].dtype == torch.bool and got[n].shape == conv_weights(model)[n].shape
            assert np.array_equal(got[n].numpy(), expected[n]), (n, ratio)
            assert not (got[n] & ~first[n]).any()  # nothing pruned comes back
    # a first round from the dense network
    got = magnitude_masks(model, 0.3, scope=scope, granularity=granularity, norm=norm, of=of)
    expected = oracle_masks(model, 0.3, scope, granularity, norm, of)
    assert all(np.array_equal(got[n].numpy(), expected[n]) for n in got)


def test_ties_at_the_threshold_are_pruned():
    model = quantised(tiny_vgg(2), levels=4)
    masks = magnitude_masks(model, 0.3)
    flat = torch.cat([w.detach().abs().flatten() for w in conv_weights(model).values()])
    thre = flat.sort().values[int(flat.numel() * 0.3)]
    for n, w in conv_weights(model).items():
        assert torch.equal(masks[n], w.detach().abs() > thre)
    ties = (flat == thre).sum().item()
    assert ties > 1  # the grid makes the threshold a tied value...
    assert (~torch.cat([m.flatten() for m in masks.values()])).sum().item() > int(flat.numel() * 0.3) + 1  # all go


def test_filter_masks_zero_whole_filters():
    model = tiny_vgg(3)
    masks = magnitude_masks(model, 0.5, scope="layer", granularity="filter", norm=2)
    for n, m in masks.items():
        rows = m.flatten(1)
        assert torch.all(rows.all(1) | ~rows.any(1))  # each filter wholly kept or wholly pruned
        kept = int(rows.all(1).sum())
        assert kept == m.shape[0] - int(m.shape[0] * 0.5) - 1 or kept == m.shape[0] - int(m.shape[0] * 0.5)


@pytest.mark.parametrize("p", [0.2, 0.35])
def test_iterative_remaining_density(p):
    model = tiny_vgg(4)
    total = sum(w.numel() for w in conv_weights(model).values())
    masks = None
    for k in range(1, 6):
        masks = magnitude_masks(model, p, of="remaining", masks=masks)
        kept = sum(int(m.sum()) for m in masks.values())
        assert abs(kept - total * (1 - p) ** k) <= k, (k, kept, total * (1 - p) ** k)
        assert density(masks) == pytest.approx(kept / total)


def test_bad_ratio_and_mode():
    model = tiny_vgg(5)
    with pytest.raises(UserError, match="--percent"):
        magnitude_masks(model, 1.0)
    with pytest.raises(UserError, match="--percent"):
        magnitude_masks(model, -0.1)
    with pytest.raises(ValueError):
        magnitude_masks(model, 0.2, scope="network")


# --------------------------------------------------------------------------------- MaskHook
def _train(model, save_dir, hooks=()):
    """Three epochs of three steps: SGD lr 0.1, momentum 0.9, weight decay 5e-3 (all of them would move a
    zero weight that is not held at zero)."""
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randint(0, 256, (96, 3, 32, 32), generator=g, dtype=torch.uint8),
                       torch.randint(0, 10, (96,), generator=g))
    norm = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    save_dir.mkdir()
    trainer = Trainer(model, DeviceLoader(ds, 32, train=True, **norm), DeviceLoader(ds, 96, train=False, **norm),
                      TrainConfig(epochs=3, lr=0.1, momentum=0.9, weight_decay=5e-3, progress=False,
                                  tensorboard=False), str(save_dir), hooks=hooks, log=lambda *a: None)
    trainer.fit()
    return model


@pytest.mark.parametrize("batch_norm", [True, False])
def test_mask_hook_keeps_pruned_weights_exactly_zero(batch_norm, tmp_path):
    model = tiny_vgg(6, batch_norm)
    masks = magnitude_masks(model, 0.6)
    before = {n: w.detach().clone() for n, w in conv_weights(model).items()}
    _train(model, tmp_path / "masked", hooks=[MaskHook(masks)])
    for n, w in conv_weights(model).items():
        assert torch.all(w[~masks[n]] == 0), n
        assert not torch.equal(w[masks[n]], before[n][masks[n]])  # the kept weights did train
    # the same training without the hook revives pruned weights (what the hook prevents)
    control = tiny_vgg(6, batch_norm)
    apply_masks(control, masks)
    _train(control, tmp_path / "control")
    assert any(bool((w[~masks[n]] != 0).any()) for n, w in conv_weights(control).items())


# ---------------------------------------------------------------------------- sparse_reinit
def test_sparse_reinit_std_rule():
    torch.manual_seed(7)
    conv = nn.Conv2d(64, 128, 3, bias=False)
    model = nn.Sequential(conv)
    g = torch.Generator().manual_seed(8)
    for dens in (1.0, 0.5, 0.1):
        mask = torch.rand(conv.weight.shape, generator=g) < dens
        sparse_reinit(model, {"0.weight": mask}, generator=torch.Generator().manual_seed(9))
        w = conv.weight.detach()
        nnz = int(mask.sum())
        expected = math.sqrt(2.0 * conv.in_channels / nnz)  # n = nnz / C_in
        assert torch.all(w[~mask] == 0)
        assert w[mask].std().item() == pytest.approx(expected, rel=0.03)
        if dens == 1.0:  # a dense layer gets He fan-out: sqrt(2 / (k * k * C_out))
            assert expected == pytest.approx(math.sqrt(2.0 / (9 * 128)))
    sparse_reinit(model, {"0.weight": torch.zeros_like(mask)})
    assert torch.all(conv.weight == 0)  # an empty layer stays zero (the reference would draw N(0, inf))


def test_sparse_reinit_leaves_other_parameters():
    model = tiny_vgg(10)
    masks = magnitude_masks(model, 0.5)
    others = {k: v.clone() for k, v in model.state_dict().items() if k not in masks}
    sparse_reinit(model, masks)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in others.items())


# ----------------------------------------------------------------------- torch.nn.utils.prune
def test_torch_prune_round_trip_same_output_and_masks():
    model = tiny_vgg(11).eval()
    masks = magnitude_masks(model, 0.5)
    ours = copy.deepcopy(model)
    apply_masks(ours, masks)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = ours(x)
    reparam = to_torch_prune(copy.deepcopy(model), masks).eval()
    with torch.no_grad():
        assert torch.allclose(reparam(x), expected, atol=1e-6)
    state = reparam.state_dict()
    assert all(n + "_orig" in state and n + "_mask" in state and n not in state for n in masks)
    # our (state, masks) -> torch's keys: the same keys and values torch itself holds
    joined = join_torch_prune_state(ours.state_dict(), masks)
    assert set(joined) == set(state)
    for k in masks:
        assert torch.equal(joined[k + "_mask"], state[k + "_mask"])
    fresh = to_torch_prune(tiny_vgg(12), masks).eval()
    fresh.load_state_dict(joined)
    with torch.no_grad():
        assert torch.allclose(fresh(x), expected, atol=1e-6)
    # and back
    plain, back = split_torch_prune_state(state)
    assert set(back) == set(masks) and all(torch.equal(back[n], masks[n]) for n in masks)
    restored = tiny_vgg(13).eval()
    restored.load_state_dict(plain)
    with torch.no_grad():
        assert torch.allclose(restored(x), expected, atol=1e-6)
    undone = from_torch_prune(reparam)
    assert all(torch.equal(undone[n], masks[n]) for n in masks)
    assert not any(k.endswith(("_orig", "_mask")) for k in reparam.state_dict())
    with torch.no_grad():
        assert torch.allclose(reparam(x), expected, atol=1e-6)


def test_torch_global_unstructured_imports():
    """A network pruned by torch itself (global L1 unstructured over the convs) reads back as our masks."""
    model = tiny_vgg(14).eval()
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    torch_prune.global_unstructured(convs, pruning_method=torch_prune.L1Unstructured, amount=0.4)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    plain, masks = split_torch_prune_state(model.state_dict())
    assert set(masks) == set(conv_weights(tiny_vgg(0)))
    assert density(masks) == pytest.approx(0.6, abs=1e-3)
    ours = tiny_vgg(15).eval()
    ours.load_state_dict(plain)
    with torch.no_grad():
        assert torch.allclose(ours(x), expected, atol=1e-6)
    nonzero = masks_from_nonzero(ours)
    assert all(torch.equal(nonzero[n], masks[n]) for n in masks)
