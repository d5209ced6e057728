"""Lottery tickets (reference.md 4.5, 4.6, 5.3): iterative densities, rewinding bit for bit to the saved
init (or epoch-K weights), masks held exactly through training, per-layer pruning, structured tickets that
zero exactly the filters the L1-norm rule removes, and the random-init control's re-initialisation."""
import copy
import json
import math

import pytest
import torch

from models import create_model, default_cfg, scale_cfg
from utils.checkpoint import save_checkpoint, spec_fields
from utils.engine import Trainer
from utils.errors import UserError
from utils.masks import iterative_ratios, masks_from_nonzero, rate_for_density, round_density
from utils.methods import PruneContext, choose, get_method, hparams_of

from conftest import stage

pytestmark = pytest.mark.usefixtures("one_thread")

WL, L1 = "lottery_ticket/weight-level", "lottery_ticket/l1-norm-pruning"


def describe(key, model, masks, **hparams):
    method = get_method(key)
    return method.describe(model, masks, PruneContext(hparams_of(method.Hparams, **hparams)))
TINY = ["--arch", "vgg", "--depth", "11", "--width", "0.125"]
QUIET = ["--no-progress", "--no-tensorboard"]
# reference.md 4.1: the L1-norm targets as compact widths
VGG16_A = [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
R56_A = [14, 14, 14, 14, 14, 14, 14, 16, 14] + [32, 28, 28, 28, 28, 28, 28, 28, 28] + [64, 57, 57, 57, 57, 57, 57, 57, 64]
R56_B = [6, 6, 6, 6, 6, 6, 6, 16, 16] + [32, 22, 22, 22, 22, 22, 22, 32, 22] + [64, 57, 57, 57, 57, 57, 57, 57, 64]
R110_A = [8] * 17 + [16] + [32] * 18 + [64] * 18
R110_B = [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17


def data_args(cifar_dir):
    return ["--dataset", "cifar10", "--data", cifar_dir, "--test-subset", "100"]


def random_model(arch, depth, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(arch, depth, **kwargs)


def save_model(model, path, **extra):
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), **extra}, str(path))
    return str(path)


def kept_count(masks):
    return sum(int(m.sum()) for m in masks.values())


@pytest.fixture
def starts(monkeypatch):
    """The state every Trainer.fit starts from (before its hooks run), in call order."""
    captured = []
    original = Trainer.fit

    def fit(self):
        captured.append({k: v.detach().clone() for k, v in self.module.state_dict().items()})
        return original(self)

    monkeypatch.setattr(Trainer, "fit", fit)
    return captured


# ------------------------------------------------------------------------------------- schedules, masks
def test_schedule_helpers():
    assert iterative_ratios(0.2, 3) == [0.2, 0.2, 0.2]
    assert iterative_ratios(0.2, 3, of="all") == pytest.approx([0.2, 0.36, 0.488])
    assert round_density(0.2, 5) == pytest.approx(0.32768)
    assert rate_for_density(0.32768, 5) == pytest.approx(0.2)
    with pytest.raises(UserError, match="--percent"):
        iterative_ratios(1.0, 2)
    with pytest.raises(UserError, match="--rounds"):
        iterative_ratios(0.2, 0)


@pytest.mark.parametrize("layerwise", [False, True], ids=["global", "layerwise"])
def test_rounds_reach_density_one_weight_per_round(layerwise):
    """Round k keeps (1 - p)^k of the conv weights (of each layer with --layerwise), to one weight per round;
    each round's mask lies inside the previous one; one-shot to (1 - p)^k (ratio of all) agrees."""
    model = random_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.25))
    dense = copy.deepcopy(model)
    p, masks = 0.2, None
    g = torch.Generator().manual_seed(1)
    for k in range(1, 5):
        new = choose(WL, model, masks=masks, percent=p, layerwise=layerwise)
        if masks is not None:
            assert all(not bool((new[n] & ~masks[n]).any()) for n in new)  # nothing revives
        masks = new
        units = [[n] for n in masks] if layerwise else [list(masks)]
        for names in units:
            total = sum(masks[n].numel() for n in names)
            kept = sum(int(masks[n].sum()) for n in names)
            assert abs(kept - total * (1 - p) ** k) <= k, (names, k, kept, total * (1 - p) ** k)
        with torch.no_grad():  # "training" between rounds: the survivors move, the pruned stay zero
            for n, w in model.named_parameters():
                if n in masks:
                    w.add_(0.05 * torch.randn(w.shape, generator=g)).mul_(masks[n])
    total = sum(m.numel() for m in masks.values())
    if not layerwise:
        oneshot = choose(WL, dense, percent=iterative_ratios(p, 4, of="all")[-1])
        assert abs(kept_count(oneshot) - total * (1 - p) ** 4) <= 1
    else:  # the global rule does not prune every layer by the ratio: the modes differ
        glob = choose(WL, dense, percent=p)
        assert any(abs(int(m.sum()) - m.numel() * (1 - p)) > 1 for m in glob.values())


def test_reference_checkpoint_masks_come_from_its_zeros():
    """A pruned checkpoint without masks (the reference's) is pruned further from its nonzero pattern."""
    model = random_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.125))
    first = choose(WL, model, percent=0.5)
    with torch.no_grad():
        for n, w in model.named_parameters():
            if n in first:
                w.mul_(first[n])
    again = choose(WL, model, percent=0.5)  # masks=None: read from the zeros
    nonzero = masks_from_nonzero(model)
    assert all(torch.equal(nonzero[n], first[n]) for n in first)
    total = sum(m.numel() for m in first.values())
    assert abs(kept_count(again) - total * 0.25) <= 2


# ------------------------------------------------------------------------------------- tickets
@pytest.fixture(scope="module")
def dense_run(tmp_path_factory, cifar_dir):
    """A tiny dense run of 2 epochs at a constant LR that saves init and epoch-1 weights, and a 1-epoch run
    of the same seed (its final weights must be the epoch-1 weights)."""
    root = tmp_path_factory.mktemp("lottery")
    captured = []
    original = Trainer.fit

    def fit(self):
        captured.append({k: v.detach().clone() for k, v in self.module.state_dict().items()})
        return original(self)

    Trainer.fit = fit
    try:
        common = TINY + data_args(cifar_dir) + QUIET + ["--schedule", "--seed", "3"]
        stage(WL, "train", common + ["--epochs", "2", "--rewind-epoch", "1", "--save", str(root / "dense")])
        stage(WL, "train", common + ["--epochs", "1", "--save", str(root / "one")])
    finally:
        Trainer.fit = original
    return root, captured[0]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_dense_run_saves_init_and_epoch_k(dense_run):
    root, start = dense_run
    init = load(root / "dense" / "init.pth.tar")
    assert init["epoch"] == 0 and init["model"]["arch"] == "vgg"
    assert init["state_dict"].keys() == start.keys()
    assert all(torch.equal(init["state_dict"][k], start[k]) for k in start)  # what training started from
    rewind = load(root / "dense" / "rewind_epoch1.pth.tar")["state_dict"]
    after_one = load(root / "one" / "checkpoint.pth.tar")["state_dict"]
    assert rewind["feature.0.weight"].ne(start["feature.0.weight"]).any()
    assert all(torch.equal(rewind[k], after_one[k]) for k in rewind)
    final = load(root / "dense" / "checkpoint.pth.tar")["state_dict"]
    assert not torch.equal(final["feature.0.weight"], rewind["feature.0.weight"])


@pytest.mark.parametrize("rewind", ["init.pth.tar", "rewind_epoch1.pth.tar"])
def test_ticket_starts_from_the_saved_weights_and_keeps_pruned_weights_zero(dense_run, cifar_dir, starts,
                                                                             tmp_path, rewind):
    root, _ = dense_run
    pruned = tmp_path / "pruned"
    stage(WL, "prune", ["--model", str(root / "dense" / "checkpoint.pth.tar"), "--save", str(pruned),
                        "--percent", "0.5"] + data_args(cifar_dir))
    masks = load(pruned / "pruned.pth.tar")["masks"]
    init = load(root / "dense" / rewind)["state_dict"]
    summary = stage(WL, "ticket", ["--pruned", str(pruned / "pruned.pth.tar"), "--init", str(root / "dense" / rewind),
                                "--epochs", "1", "--save", str(tmp_path / "ticket"), "--seed", "3"]
                          + data_args(cifar_dir) + QUIET)
    start = starts[-1]
    assert start.keys() == init.keys()
    for k, v in start.items():
        if k in masks:
            assert torch.equal(v[masks[k]], init[k][masks[k]]), k   # survivors: the saved weights, bit for bit
            assert torch.all(v[~masks[k]] == 0), k
        else:
            assert torch.equal(v, init[k]), k                       # BN, the head: all rewound
    assert summary["rewind_epoch"] == (0 if rewind == "init.pth.tar" else 1)
    assert summary["density"] == pytest.approx(0.5, abs=1e-3)
    ckpt = load(tmp_path / "ticket" / "checkpoint.pth.tar")
    names = [n for n, _ in create_model("vgg", 11, cfg=ckpt["cfg"]).named_parameters()]
    for k, m in masks.items():
        w = ckpt["state_dict"][k]
        assert torch.all(w[~m] == 0), k                              # pruned weights stayed exactly zero
        assert torch.equal(w != 0, m), k                             # and nothing else is zero
        buf = ckpt["optimizer"]["state"][names.index(k)]["momentum_buffer"]
        assert torch.all(buf[~m] == 0), k                            # no gradient ever reached them
    assert torch.equal(ckpt["masks"]["feature.0.weight"], masks["feature.0.weight"])
    assert not torch.equal(ckpt["state_dict"]["feature.4.weight"], start["feature.4.weight"])  # it trained


@pytest.mark.parametrize("reinit", ["sparse", "dense"])
def test_random_init_control_redraws_the_masked_weights(dense_run, cifar_dir, starts, tmp_path, reinit):
    root, _ = dense_run
    # one big layer so that the std is measured on many weights
    model = random_model("vgg", 11, seed=5, cfg=scale_cfg(default_cfg("vgg", 11), 0.25))
    masks = choose(WL, model, percent=0.75)
    with torch.no_grad():
        for n, w in model.named_parameters():
            if n in masks:
                w.mul_(masks[n])
    path = save_model(model, tmp_path / "pruned.pth.tar", masks=masks)
    stage(WL if reinit == "sparse" else L1, "scratch", ["--scratch", path, "--epochs", "1", "--save",
                                                        str(tmp_path / "s")] + data_args(cifar_dir) + QUIET)
    start = starts[-1]
    name = "feature.22.weight"  # 128 -> 128, 3x3
    w, m = start[name], masks[name]
    assert torch.all(w[~m] == 0) and torch.all(w[m] != 0)
    assert not torch.equal(w[m], model.state_dict()[name][m])
    c_out, c_in = w.shape[:2]
    expected = math.sqrt(2 * c_in / int(m.sum())) if reinit == "sparse" else math.sqrt(2 / (9 * c_out))
    assert w[m].std().item() == pytest.approx(expected, rel=0.1)
    ckpt = load(tmp_path / "s" / "checkpoint.pth.tar")
    assert all(torch.equal(ckpt["state_dict"][n] != 0, masks[n]) for n in masks)


# ------------------------------------------------------------------------------------- structured
@pytest.mark.parametrize("arch,depth,variant,expected", [
    ("vgg", 16, "A", VGG16_A), ("resnet", 56, "A", R56_A), ("resnet", 56, "B", R56_B),
    ("resnet", 110, "A", R110_A), ("resnet", 110, "B", R110_B)])
def test_l1_masks_zero_exactly_the_filters_the_rule_removes(arch, depth, variant, expected):
    model = random_model(arch, depth, seed=depth)
    masks = choose(L1, model, variant=variant)
    keep = choose("cifar/l1-norm-pruning", model, variant=variant)
    groups = {g.cfg_index: g for g in model.channel_groups()}
    producing = {groups[i].out[0] + ".weight": i for i in keep}
    widths, removed = list(model.cfg), []
    for name, m in masks.items():
        rows = m.flatten(1)
        assert torch.all(rows.all(1) | ~rows.any(1)), name           # whole filters only
        kept = torch.nonzero(rows.all(1)).flatten().tolist()
        if name in producing:
            assert kept == keep[producing[name]], name               # exactly the L1 rule's filters
            widths[producing[name]] = len(kept)
            if len(kept) < m.shape[0]:
                removed.append(sorted(set(range(m.shape[0])) - set(kept)))
        else:
            assert bool(m.all()), name                              # every other conv untouched
    assert widths == expected
    assert removed and any(r != [0, 1] for r in removed)  # not filters 0 and 1 of each layer (bug B8)


def test_l1_prune_small_and_random(tmp_path):
    model = random_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.25))
    large = describe(L1, model, choose(L1, model))["kept"]
    small = describe(L1, model, choose(L1, model, prune="small"), prune="small")["kept"]
    rand1 = describe(L1, model, choose(L1, model, prune="random", seed=1), prune="random", seed=1)["kept"]
    rand1b = describe(L1, model, choose(L1, model, prune="random", seed=1), prune="random", seed=1)["kept"]
    rand2 = describe(L1, model, choose(L1, model, prune="random", seed=2), prune="random", seed=2)["kept"]
    assert large == {str(k): v for k, v in choose("cifar/l1-norm-pruning", model).items()}
    assert rand1 == rand1b and rand1 != rand2
    for idx in large:
        assert len(small[idx]) == len(large[idx]) == len(rand1[idx])
        conv = model.get_submodule({str(g.cfg_index): g for g in model.channel_groups()}[idx].out[0])
        scores = conv.weight.detach().abs().flatten(1).sum(1)
        assert scores[small[idx]].max() < scores[large[idx]].min()  # the smallest norms, disjoint from large


def test_structured_ticket_keeps_whole_filters_zero(dense_run, cifar_dir, starts, tmp_path):
    """VGG-16-A (at 1/8 width) as a ticket: after training, exactly the removed filters are zero."""
    common = ["--arch", "vgg", "--depth", "16", "--width", "0.125"] + data_args(cifar_dir) + QUIET + ["--seed", "2"]
    stage(WL, "train", common + ["--epochs", "1", "--save", str(tmp_path / "dense")])
    record = stage(L1, "prune", ["--model", str(tmp_path / "dense" / "checkpoint.pth.tar"),
                                 "--save", str(tmp_path / "p")] + data_args(cifar_dir))
    assert record["cfg_compact"] == scale_cfg(VGG16_A, 0.125) and record["flops_ratio_compact"] > 1
    pruned = load(tmp_path / "p" / "pruned.pth.tar")
    trained = load(tmp_path / "dense" / "checkpoint.pth.tar")["state_dict"]
    for k, v in pruned["state_dict"].items():  # only conv filters were zeroed: BN and the head as trained
        if k in pruned["masks"]:
            assert torch.equal(v, trained[k] * pruned["masks"][k])
        else:
            assert torch.equal(v, trained[k]), k
    init = str(tmp_path / "dense" / "init.pth.tar")
    stage(WL, "ticket", ["--pruned", str(tmp_path / "p" / "pruned.pth.tar"), "--init", init, "--epochs", "1",
                      "--save", str(tmp_path / "ticket"), "--seed", "2"] + data_args(cifar_dir) + QUIET)
    state = load(tmp_path / "ticket" / "checkpoint.pth.tar")["state_dict"]
    for k, m in pruned["masks"].items():
        assert torch.equal(state[k] != 0, m), k
    with open(tmp_path / "p" / "prune.json") as f:
        assert json.load(f)["filters_removed"]["0"] == 4  # conv1_1: 8 -> 4


# ------------------------------------------------------------------------------------- bad input
def test_bad_input_is_a_user_error(dense_run, cifar_dir, tmp_path):
    root, _ = dense_run
    with pytest.raises(UserError, match="--rewind-epoch"):
        stage(WL, "train", TINY + data_args(cifar_dir) + QUIET + ["--epochs", "2", "--rewind-epoch", "2",
                                                                        "--save", str(tmp_path / "x")])
    assert not (tmp_path / "x" / "init.pth.tar").exists()
    for percent in ("1.0", "0"):
        with pytest.raises(UserError, match="--percent"):
            stage(WL, "prune", ["--model", str(root / "dense" / "checkpoint.pth.tar"), "--save",
                                str(tmp_path / "p"), "--percent", percent] + data_args(cifar_dir))
    other = save_model(random_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.25)), tmp_path / "o.pth.tar")
    stage(WL, "prune", ["--model", str(root / "dense" / "checkpoint.pth.tar"), "--save", str(tmp_path / "p"),
                        "--percent", "0.5"] + data_args(cifar_dir))
    with pytest.raises(UserError, match="--init"):
        stage(WL, "ticket", ["--pruned", str(tmp_path / "p" / "pruned.pth.tar"), "--init", other,
                          "--save", str(tmp_path / "t")] + data_args(cifar_dir) + QUIET)
    with pytest.raises(UserError, match="--init"):
        stage(WL, "ticket", ["--pruned", str(tmp_path / "p" / "pruned.pth.tar"), "--save", str(tmp_path / "t")]
                    + data_args(cifar_dir) + QUIET)
    with pytest.raises(UserError, match="already pruned"):
        choose(L1, random_model("vgg", 16), masks={})


# ------------------------------------------------------------------------------------- collecting sweeps
def test_collect_averages_seeds_per_round(tmp_path):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("lottery_collect", ROOT / "lottery_ticket" / "collect.py")
    collect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(collect)
    settings = {"method": "weight-level", "arch": "vgg16_bn", "depth": 16, "width": 1.0, "dataset": "cifar10",
                "percent": 0.2, "layerwise": False, "schedule": "iterative", "variant": "A", "prune": "large",
                "rewind_epoch": 0, "epochs": 160, "lr": 0.1, "train_subset": 0, "test_subset": 0, "extra": []}
    for seed, (t, s) in {1: (0.90, 0.80), 2: (0.92, 0.84)}.items():
        rounds = [{"round": 0, "density": 1.0, "ticket": {"best_prec1": 0.93, "final_prec1": 0.92}},
                  {"round": 1, "density": 0.8, "ticket": {"best_prec1": t, "final_prec1": t - 0.01},
                   "scratch": {"best_prec1": s, "final_prec1": s - 0.01}}]
        (tmp_path / f"lr0.1/seed{seed}").mkdir(parents=True)
        (tmp_path / f"lr0.1/seed{seed}/results.json").write_text(
            json.dumps({"settings": {**settings, "seed": seed}, "rounds": rounds}))
    other = {**settings, "lr": 0.01, "seed": 1}
    (tmp_path / "lr0.01").mkdir()
    (tmp_path / "lr0.01/results.json").write_text(json.dumps({"settings": other, "rounds": [
        {"round": 0, "density": 1.0, "ticket": {"best_prec1": 0.5, "final_prec1": 0.5}}]}))
    text = collect.main([str(tmp_path), "--out", str(tmp_path / "t.md")])
    lines = [line for line in text.splitlines() if line.startswith("| cifar10")]
    assert len(lines) == 3
    assert "| 0.1 | 1 | 0.8000 | 91.00 ± 1.41 (2) | 82.00 ± 2.83 (2) |" in text
    assert "| 0.01 | 0 | 1.0000 | 50.00 (1) | - |" in text
    assert (tmp_path / "t.md").read_text() == text
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results.json"):
        collect.collect([str(tmp_path / "empty")])


def test_sweep_refuses_bad_input_before_any_work(tmp_path, cifar_dir):
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("lottery_iterate_bad", ROOT / "lottery_ticket" / "iterate.py")
    iterate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iterate)
    base = ["--dataset", "cifar10", "--data", cifar_dir] + TINY
    with pytest.raises(UserError, match="--rounds 2"):
        iterate.sweep(["--method", "l1-norm", "--rounds", "2", "--save", str(tmp_path / "a")] + base)
    with pytest.raises(UserError, match="--rounds 0"):
        iterate.sweep(["--rounds", "0", "--save", str(tmp_path / "a")] + base)
    for percent in ("1", "0"):
        with pytest.raises(UserError, match="--percent"):
            iterate.sweep(["--percent", percent, "--save", str(tmp_path / "a")] + base)
    with pytest.raises(UserError, match="--rewind-epoch"):
        iterate.sweep(["--rewind-epoch", "3", "--epochs", "3", "--save", str(tmp_path / "a")] + base)
    assert not (tmp_path / "a").exists()
    # a --save that holds a sweep with other settings is refused, and left as it was
    (tmp_path / "b").mkdir()
    recorded = {"method": "weight-level", "percent": 0.2, "extra": []}
    (tmp_path / "b" / "sweep.json").write_text(json.dumps(recorded))
    with pytest.raises(UserError, match="--percent 0.2"):
        iterate.sweep(["--percent", "0.3", "--save", str(tmp_path / "b")] + base)
    with pytest.raises(UserError, match="flags after --"):
        iterate.sweep(["--percent", "0.2", "--save", str(tmp_path / "b")] + base + ["--", "--amp"])
    assert json.loads((tmp_path / "b" / "sweep.json").read_text()) == recorded
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["sweep.json"]
