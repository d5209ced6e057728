"""Pruning surgery over the whole zoo: physically removing channels gives the same function as zeroing
them in the full network, the pruned network has the narrower cfg/shapes, and its spec rebuilds it."""
import random

import pytest
import torch
import torch.nn as nn

from models import build_from_spec, create_model, list_models
from utils.errors import UserError
from utils.surgery import keep_largest, l1_filter_scores, prune_channels, zero_channels

SMALL = {"vgg": 11, "vgg_slim": 11, "resnet": 20, "preresnet": 20, "densenet": 40, "resnet_sfp": 20, "resnet_ekg": 20}
# weight-level (bearpaw) models: each VGG has its one depth; preresnet_wl-20 is the basic-block variant
WEIGHT_LEVEL_SMALL = {**{f"vgg{d}{bn}": d for d in (11, 13, 16, 19) for bn in ("", "_bn")},
                      "preresnet_wl": 20, "densenet_wl": 40, "densenet_bc": 40}
SMALL.update(WEIGHT_LEVEL_SMALL)
SMALL.setdefault("resnet_wl", 20)  # the lottery-ticket / weight-level CIFAR ResNet
RTOL, ATOL = 1e-4, 1e-5
CIFAR_ARCHS = list_models(family="cifar")  # the ImageNet zoo: test_imagenet_models.py


pytestmark = pytest.mark.usefixtures("one_thread")


def randomised(arch, seed, **kw):
    torch.manual_seed(seed)
    model = create_model(arch, SMALL[arch], **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                # both signs of gamma, so that zeroed/pruned channels matter either way
                m.weight.copy_((torch.rand(n, generator=g) + 0.5) * torch.sign(torch.randn(n, generator=g)))
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
    return model.eval()


def random_keep(model, rng, fraction=0.5):
    groups = model.channel_groups()
    chosen = rng.sample(groups, max(1, int(len(groups) * fraction)))
    keep = {}
    for g in chosen:
        width = model.cfg[g.cfg_index]
        k = rng.randint(1, width - 1) if width > 1 else 1
        keep[g.cfg_index] = sorted(rng.sample(range(width), k))
    return keep


def expected_tensors(model, keep):
    """Every tensor of the pruned network, sliced independently from the group description."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    groups = {g.cfg_index: g for g in model.channel_groups()}
    for idx, kept in keep.items():
        g = groups[idx]
        kept = torch.tensor(kept)
        for m in g.out:
            for key in [k for k in state if k.rsplit(".", 1)[0] == m and state[k].dim() >= 1]:
                state[key] = state[key][kept]
        for m in g.inp:
            state[m + ".weight"] = state[m + ".weight"][:, kept]
    for g in groups.values():
        # a BN kept whole before a selection: gamma and beta are zero where the (new) selection no longer reads
        for bn, sel in zip(g.mask, g.select):
            old = model.get_submodule(sel).selected()
            now = [old[k] for k in keep[g.cfg_index]] if g.cfg_index in keep else old
            dead = torch.ones(state[bn + ".weight"].numel(), dtype=torch.bool)
            dead[now] = False
            for key in (bn + ".weight", bn + ".bias"):
                state[key] = torch.where(dead, torch.zeros_like(state[key]), state[key])
    return state


@pytest.mark.parametrize("arch", CIFAR_ARCHS)
@pytest.mark.parametrize("seed", [0, 1])
def test_prune_equals_zero(arch, seed):
    model = randomised(arch, seed)
    rng = random.Random(100 * seed + len(arch))
    if not model.channel_groups():
        pytest.skip(f"{arch} has no channel groups (unstructured pruning only)")
    keep = random_keep(model, rng, fraction=0.6)
    assert keep
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    pruned = prune_channels(model, keep).eval()
    masked = zero_channels(model, keep).eval()
    with torch.no_grad():
        out_full, out_pruned, out_masked = model(x), pruned(x), masked(x)
    assert torch.allclose(out_pruned, out_masked, rtol=RTOL, atol=ATOL)
    assert not torch.allclose(out_pruned, out_full, rtol=RTOL, atol=ATOL)  # the pruning did something
    # the source model is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    # cfg: the listed groups shrank to the kept count, everything else is unchanged
    expected_cfg = list(model.cfg)
    for idx, kept in keep.items():
        expected_cfg[idx] = len(kept)
    assert pruned.cfg == expected_cfg
    assert pruned.spec.cfg == expected_cfg
    assert pruned.spec.arch == arch and pruned.spec.depth == model.spec.depth

    groups = {g.cfg_index: g for g in model.channel_groups()}
    for idx, kept in keep.items():
        g = groups[idx]
        for m in g.out:
            mod = pruned.get_submodule(m)
            assert mod.weight.shape[0] == len(kept)
        for m in g.inp:
            assert pruned.get_submodule(m).weight.shape[1] == len(kept)
        for m in g.mask:  # the BN before a selection layer keeps its full width
            assert pruned.get_submodule(m).num_features == model.get_submodule(m).num_features
        for s in g.select:
            old = model.get_submodule(s).selected()
            assert pruned.get_submodule(s).selected() == [old[k] for k in kept]

    # the surviving weights are the kept slices of the originals, all other tensors are copied
    exp = expected_tensors(model, keep)
    got = pruned.state_dict()
    assert set(got) == set(exp)
    for k, v in got.items():
        if k.endswith("select.indexes"):
            continue  # checked through selected() above
        assert v.shape == exp[k].shape, k
        assert torch.equal(v, exp[k]), k

    # the spec alone rebuilds the pruned network
    rebuilt = build_from_spec(pruned.spec.to_dict())
    rebuilt.load_state_dict(pruned.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), out_pruned)


@pytest.mark.parametrize("arch", CIFAR_ARCHS)
def test_prune_everything_but_one_channel_everywhere(arch):
    model = randomised(arch, 7)
    keep = {g.cfg_index: [model.cfg[g.cfg_index] - 1] for g in model.channel_groups()}
    pruned = prune_channels(model, keep).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(pruned(x), zero_channels(model, keep).eval()(x), rtol=RTOL, atol=ATOL)
    assert all(pruned.cfg[i] == 1 for i in keep)


@pytest.mark.parametrize("arch", CIFAR_ARCHS)
def test_pruning_to_zero_channels_is_a_user_error(arch):
    model = create_model(arch, SMALL[arch])
    if not model.channel_groups():
        pytest.skip(f"{arch} has no channel groups (unstructured pruning only)")
    g = model.channel_groups()[1]
    with pytest.raises(UserError, match=g.name):
        prune_channels(model, {g.cfg_index: []})
    with pytest.raises(UserError):
        zero_channels(model, {g.cfg_index: []})


def test_bad_keep_lists_are_rejected():
    model = create_model("resnet", 20)
    g = model.channel_groups()[0]
    with pytest.raises(ValueError):
        prune_channels(model, {g.cfg_index: [0, 0, 1]})
    with pytest.raises(ValueError):
        prune_channels(model, {g.cfg_index: [16]})
    with pytest.raises(ValueError):
        prune_channels(model, {g.cfg_index: [-1, 2]})
    with pytest.raises(ValueError):
        prune_channels(model, {999: [0]})


def test_unsorted_keep_list_keeps_original_order():
    model = randomised("resnet", 3)
    g = model.channel_groups()[2]
    pruned = prune_channels(model, {g.cfg_index: [9, 2, 5]})
    w = model.get_submodule(g.out[0]).weight
    assert torch.equal(pruned.get_submodule(g.out[0]).weight, w[[2, 5, 9]])


@pytest.mark.parametrize("arch", ["preresnet", "densenet"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pruning_twice_composes_selections(arch, seed):
    model = randomised(arch, 10 + seed)
    rng = random.Random(seed)
    keep1 = random_keep(model, rng, fraction=0.6)
    first = prune_channels(model, keep1).eval()
    # second round on the pruned network: some groups again, some for the first time
    keep2 = {}
    for g in rng.sample(first.channel_groups(), len(first.channel_groups()) // 2) + \
            [g for g in first.channel_groups() if g.cfg_index in keep1][:3]:
        width = first.cfg[g.cfg_index]
        if width > 1:
            keep2[g.cfg_index] = sorted(rng.sample(range(width), rng.randint(1, width - 1)))
    assert any(i in keep1 for i in keep2)
    second = prune_channels(first, keep2).eval()

    union = {}
    for idx in set(keep1) | set(keep2):
        positions = keep1.get(idx, list(range(model.cfg[idx])))
        union[idx] = [positions[k] for k in keep2[idx]] if idx in keep2 else positions
    masked = zero_channels(model, union).eval()
    once = prune_channels(model, union).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out2 = second(x)
        assert torch.allclose(out2, masked(x), rtol=RTOL, atol=ATOL)
        assert torch.allclose(out2, once(x), rtol=RTOL, atol=ATOL)
    assert second.cfg == once.cfg
    # the selection layers of the twice-pruned network pass on the original channels of the union
    for g in model.channel_groups():
        for s in g.select:
            orig = model.get_submodule(s).selected()
            expect = [orig[k] for k in union.get(g.cfg_index, range(len(orig)))]
            assert second.get_submodule(s).selected() == expect
    assert {k: v.shape for k, v in second.state_dict().items()} == \
        {k: v.shape for k, v in once.state_dict().items()}
    rebuilt = build_from_spec(second.spec)
    rebuilt.load_state_dict(second.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), out2)


def test_l1_helpers():
    w = torch.zeros(4, 2, 1, 1)
    w[:, 0, 0, 0] = torch.tensor([1.0, -4.0, 2.0, 3.0])
    w[:, 1, 0, 0] = torch.tensor([0.5, 0.0, -0.5, 0.0])
    scores = l1_filter_scores(w)
    assert torch.equal(scores, torch.tensor([1.5, 4.0, 2.5, 3.0]))
    assert keep_largest(scores, 2) == [1, 3]
    assert keep_largest(scores, 3) == [1, 2, 3]
    assert keep_largest(scores, 4) == [0, 1, 2, 3]
