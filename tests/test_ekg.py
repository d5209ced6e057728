"""EKG (utils/ekg.py, cifar/ekg): FLOPs rule, gates, the search's invariants, teachers, memory bank, distillation,
and exact resumption of the search and of the fine-tuning."""
import copy
import math

import numpy as np
import pytest
import torch

from conftest import stage, write_cifar
from models import create_model
from utils import ekg
from utils.checkpoint import load_checkpoint, save_checkpoint, spec_fields
from utils.data import DeviceLoader, TensorDataset, jitter_colour
from utils.flops import count_flops, count_macs, count_params
from utils.methods import hparams_of

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "cifar/ekg"
QUIET = ["--no-progress", "--no-tensorboard"]
SEARCH = ["--subset-per-class", "8", "--val-per-class", "6", "--search-batch-size", "30", "--keep-flops", "0.75",
          "--num-teachers", "3", "--bank-images", "300"]


def randomised(model, seed=0):
    """Random BN statistics and affine parameters, so that no channel is interchangeable with another."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


# ------------------------------------------------------------------------------------------------ FLOPs
def test_full_resnet56_counts_ekg_numbers():
    """ekg.md 3.3: 126.837M FLOPs by the official rule (conv + FC MACs + 2 per BN output), 125.748M conv + FC MACs,
    855,770 trainable parameters."""
    m = create_model("resnet_ekg", 56)
    assert count_macs(m, bn=True) == 126_837_376
    assert count_macs(m) == 125_747_840
    assert count_params(m) == 855_770
    assert len(m.channel_groups()) == 30 and len(ekg.gates_of(m, 0.2)) == 30


@pytest.mark.parametrize("rule", ["official", "reference"])
def test_width_cost_equals_the_counters(rule):
    base = create_model("resnet_ekg", 20)
    cost = ekg.WidthCost(base, rule)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        cfg = [int(torch.randint(1, w + 1, (1,), generator=g)) for w in base.cfg]
        net = create_model("resnet_ekg", 20, cfg=cfg)
        assert cost(cfg) == (count_macs(net, bn=True) if rule == "official" else count_flops(net))


def test_coarse_steps_and_float32_keep_counts():
    gates = {g.name: g for g in ekg.gates_of(create_model("resnet_ekg", 56), 0.2)}
    assert gates["stage1"].step == 1 / 16 and gates["stage2"].step == 1 / 32 and gates["stage3"].step == 0.02
    assert gates["layer1.0.conv1"].step == 0.2
    assert ekg.kept_count(16, 0.8) == 13 and ekg.kept_count(64, 0.98) == 63 and ekg.kept_count(16, 0.75) == 12
    assert ekg.kept_count(16, 0.0) == 1 and ekg.kept_count(16, -0.2) == 1


def test_trimmed_otsu_splits_two_planted_clusters():
    low, high = [1.0, 1.1, 0.9, 1.2, 1.05], [9.0, 9.5, 8.7, 9.2, 9.9]
    costs = low + high + [0.0, 50.0]  # the trimmed ends
    tau = ekg.trimmed_otsu(costs, 0.2)
    assert max(low) < tau < min(high)
    assert tau == (1.2 + 8.7) / 2
    assert ekg.trimmed_otsu([1.0, 2.0], 0.2) == math.inf


# ------------------------------------------------------------------------------------------------ gates
def masked_forward(model, kept, x):
    """The full network with every pruned channel zeroed at each site of its group (the official masked forward)."""
    masks = {}
    for g in model.channel_groups():
        m = torch.zeros(model.cfg[g.cfg_index])
        m[kept.get(g.cfg_index, list(range(model.cfg[g.cfg_index])))] = 1
        for s in g.sites:
            masks[s] = m.view(1, -1, 1, 1)
    handles = [model.get_submodule(s).register_forward_hook(lambda mod, i, o, s=s: o * masks[s]) for s in masks]
    try:
        return model(x)
    finally:
        for h in handles:
            h.remove()


def test_gates_tie_exactly_the_channels_the_architecture_ties():
    """Pruning stage and block groups physically gives the masked full network's outputs, and the sliced kernels
    keep their norms."""
    from utils.surgery import prune_channels
    torch.manual_seed(0)
    base = randomised(create_model("resnet_ekg", 20)).eval()
    g = torch.Generator().manual_seed(2)
    kept = {i: sorted(torch.randperm(w, generator=g)[:max(1, w // 2 + i % 3)].tolist()) for i, w in enumerate(base.cfg)}
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        pruned = prune_channels(base, kept).eval()
        assert torch.allclose(pruned(x), masked_forward(base, kept, x), atol=1e-5)
        sub = ekg.sub_network(base, kept)
    for name, mod in sub.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.allclose(mod.weight.norm(), base.get_submodule(name).weight.norm(), rtol=1e-5), name
    assert sub.cfg == [len(kept[i]) for i in range(len(base.cfg))]


# ------------------------------------------------------------------------------------------------ the search
@pytest.fixture(scope="module")
def search_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, 16, 16, generator=g)
    y = torch.arange(60) % 10
    return [(x[:30], y[:30]), (x[30:], y[30:])]


def new_search(search_data, state_path=None, **options):
    torch.manual_seed(0)
    base = randomised(create_model("resnet_ekg", 20, image_size=16))
    hp_ = hparams_of(ekg.EKGHparams, keep_flops=options.pop("keep_flops", 0.75), search_batch_size=30, **options)
    return ekg.EKGSearch(base, hp_, search_data, log=lambda *a: None, state_path=state_path, fingerprint="f")


def test_candidate_evaluation_leaves_every_bn_statistic_unchanged(search_data):
    s = new_search(search_data)
    before = {k: v.clone() for k, v in s.base.state_dict().items()}
    kept = {i: list(range(max(1, len(k) - 3))) for i, k in s.kept.items()}
    s.evaluate(kept)
    s.ensemble = torch.zeros(60, 10)
    s.scores()
    for k, v in s.base.state_dict().items():
        assert torch.equal(v, before[k]), k
    net = ekg.sub_network(s.base, kept)
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    out = ekg.batch_stat_forward(net, search_data[0][0])
    assert all(torch.equal(v, buffers[k]) for k, v in net.named_buffers())
    net.train()  # the same as a training-mode forward, i.e. batch statistics
    assert torch.allclose(out, net(search_data[0][0]), atol=1e-5)


@pytest.fixture(scope="module")
def searched(search_data):
    s = new_search(search_data)
    s.run()
    return s


def test_search_meets_the_target_within_one_channel_and_averages_the_ensemble(searched):
    s = searched
    kept = s.kept
    assert s.ratio() <= 0.75
    last = s.history[-1]
    gate = next(g for g in s.gates if g.name == last["gate"])
    wider = s.widths()
    wider[gate.index] += 1
    assert wider[gate.index] > gate.channels or s.cost(wider) / s.cost.full > 0.75, \
        "one more channel of the last gate would still meet the target: the search stopped short"
    assert len(s.history) == s.steps + 1 and s.history[0]["widths"] == {str(g.index): g.channels for g in s.gates}
    assert all(s.history[i]["flops_kept"] > 0.75 for i in range(len(s.history) - 1))
    # kept sets only shrink
    for a, b in zip(s.history, s.history[1:]):
        assert all(set(b["kept"][k]) <= set(a["kept"][k]) for k in a["kept"])
    assert kept == {int(k): v for k, v in s.history[-1]["kept"].items()}
    # the ensemble is the running mean of the accepted sub-networks' logits (the full network first)
    logits = [s.evaluate({int(k): v for k, v in h["kept"].items()})[0] for h in s.history]
    assert torch.allclose(s.ensemble, torch.stack(logits).mean(0), atol=1e-5)


def test_search_resumes_exactly_after_a_kill(search_data, searched, tmp_path, monkeypatch):
    ref = searched
    path = tmp_path / "state.pt"
    killed = new_search(search_data, path)
    saves = [0]
    original = ekg.EKGSearch.save

    def dying_save(self):
        original(self)
        saves[0] += 1
        if saves[0] == 3:  # the initial state and two steps written
            raise KeyboardInterrupt

    monkeypatch.setattr(ekg.EKGSearch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    monkeypatch.setattr(ekg.EKGSearch, "save", original)
    again = new_search(search_data, path)
    # other weights in the network: the resumed search must take them from the state file
    again.base.load_state_dict(create_model("resnet_ekg", 20, image_size=16).state_dict())
    again.run()
    assert again.kept == ref.kept
    assert [h["loss"] for h in again.history] == [h["loss"] for h in ref.history]
    assert torch.equal(again.ensemble, ref.ensemble)
    other = new_search(search_data, path)
    other.fingerprint = "another"
    with pytest.raises(Exception, match="another network or other options"):
        other.run()


def test_teachers_are_spread_evenly_by_loss():
    losses = [0.10, 0.50, 0.20, 0.31, 0.42, 0.11, 0.90, 0.60, 0.05]  # the last entry (the pruned network) excluded
    history = [{"loss": v} for v in losses]
    # targets 0.1 + k (0.9 - 0.1) / 5 = 0.10, 0.26, 0.42, 0.58, 0.74 -> the nearest entry not chosen before
    # (0.74: 0.60 is taken, 0.90 is nearer than 0.50)
    assert ekg.pick_teachers(history, 5) == [0, 3, 4, 7, 6]
    assert ekg.pick_teachers(history[:3], 5) == [0, 1]  # fewer entries than K: all of them, by loss


# ------------------------------------------------------------------------------------------------ distillation
def test_kd_loss_equals_its_formula_on_a_toy_batch():
    t = 4.0
    y = torch.tensor([0, 2])
    s1 = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 1.5]])
    s2 = torch.tensor([[1.0, 1.5, -0.5], [0.3, -0.2, 0.9]])
    teachers = torch.tensor([[[3.0, 2.9, 0.0], [0.0, 0.2, -3.0], [-1.0, -1.1, 0.0]],
                             [[0.0, 0.1, 2.0], [0.5, 0.3, -2.0], [2.0, 2.1, 0.0]]])  # [B, classes, K]

    def kl(p, q):
        ps, qs = np.exp(p / t) / np.exp(p / t).sum(), np.exp(q / t) / np.exp(q / t).sum()
        return t * float((ps * (np.log(ps) - np.log(qs))).sum())

    tn = teachers.numpy()
    mean_s = ((s1 + s2) / 2).numpy()
    d_student = sum(kl(tn[b, :, 0], mean_s[b]) for b in range(2))
    chosen = [0] + [k for k in (1, 2) if sum(kl(tn[b, :, 0], tn[b, :, k]) for b in range(2)) < d_student]
    target = tn[:, :, chosen].mean(2)
    expected = 0
    for s in (s1.numpy(), s2.numpy()):
        ce = np.mean([-(s[b, y[b]] - np.log(np.exp(s[b]).sum())) for b in range(2)])
        expected += ce + np.mean([kl(target[b], s[b]) for b in range(2)])
    expected /= 2
    got = ekg.kd_objective(t)(None, torch.cat([s1, s2]), torch.cat([s1, s2]), (y, teachers))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    _, selected = ekg.ensemble_target(teachers, [s1, s2], t)
    assert selected == chosen and 0 < len(chosen) < 3  # the toy batch selects some teachers, not all


def test_float16_bank_changes_no_teacher_prediction_and_hardly_the_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(512, 10, 5, generator=g) * 6
    half = logits.half().float()
    y = torch.where(torch.rand(512, generator=g) < 0.8, logits[..., 0].argmax(1), torch.randint(0, 10, (512,),
                                                                                                  generator=g))
    for k in range(5):  # each teacher's accuracy is the same from the float16 bank (a near tie may flip one image)
        acc32, acc16 = ((logits[..., k].argmax(1) == y).float().mean(), (half[..., k].argmax(1) == y).float().mean())
        assert abs(float(acc32 - acc16)) <= 1 / 512
    s = torch.randn(1024, 10, generator=g)
    f = ekg.kd_objective(4.0)
    assert float(f(None, s, s, (y, half))) == pytest.approx(float(f(None, s, s, (y, logits))), rel=1e-3)


# ------------------------------------------------------------------------------------------------ loaders
def small_loader(n=40, seed=3):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(n) % 10)
    return DeviceLoader(data, 16, train=True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), seed=seed, pad=2)


def test_first_view_is_the_plain_batch_and_views_are_reproducible():
    loader = small_loader()
    loader.set_epoch(2)
    plain = list(loader.batches(with_indices=True))
    views = list(loader.view_batches(2, 0.0))
    again = list(loader.view_batches(2, 0.0))
    for (x, y, i), (v, y2, i2), (w, _, _) in zip(plain, views, again):
        assert torch.equal(i, i2) and torch.equal(y, y2)
        first, second = v.chunk(2)
        assert torch.equal(first, x) and not torch.equal(second, x)
        assert torch.equal(v, w)
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader.view_batches(2, 0.0)))[0], views[0][0])


def test_colour_jitter_is_torchvision_contrast_then_saturation():
    from torchvision.transforms.v2 import functional as TF
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 6, 6, generator=g)
    c, s = torch.tensor([0.8, 1.0, 1.2]), torch.tensor([1.15, 0.85, 1.0])
    got = jitter_colour(x.clone(), c, s)
    for k in range(3):
        want = TF.adjust_saturation(TF.adjust_contrast(x[k], float(c[k])), float(s[k]))
        assert torch.allclose(got[k], want, atol=1e-6)


def test_bank_lookup_by_index_returns_the_stored_logits_after_shuffling():
    loader = small_loader()
    bank = torch.randn(40, 10, 3)
    kl = ekg.KnowledgeLoader(loader, bank, 0.1)
    seen = []
    for epoch in range(2):
        kl.set_epoch(epoch)
        order = []
        for x, (y, teachers) in kl:
            idx = torch.cat([torch.nonzero((bank == t).all(-1).all(-1)).flatten() for t in teachers])
            assert torch.equal(teachers, bank[idx]) and torch.equal(y, loader.labels[idx])
            assert x.shape[0] == 2 * y.shape[0]
            order += idx.tolist()
        assert sorted(order) == list(range(40))
        seen.append(order)
    assert seen[0] != seen[1] and seen[0] != list(range(40))  # shuffled, differently per epoch


# ------------------------------------------------------------------------------------------------ the scripts
@pytest.fixture(scope="module")
def ekg_run(tmp_path_factory):
    """A random ResNet-20 (EKG's) searched and banked through prune.py on a small CIFAR-10 in the pickle format."""
    root = tmp_path_factory.mktemp("ekg")
    data = write_cifar(root / "data", n_train=300, n_test=60)
    torch.manual_seed(0)
    model = randomised(create_model("resnet_ekg", 20))
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, root / "base.pth.tar")
    record = stage(KEY, "prune", ["--dataset", "cifar10", "--data", data, "--model", root / "base.pth.tar",
                                  "--save", root / "pruned"] + SEARCH, log=lambda *a: None)
    return root, data, record


def test_prune_writes_the_pruned_network_bank_and_history(ekg_run):
    root, data, rec = ekg_run
    assert rec["flops_kept"] <= 0.75 and rec["search_steps"] == len(rec["history"]) - 1 > 0
    assert rec["time_per_step_s"] > 0 and rec["gates"] == 12
    bank = load_checkpoint(root / "pruned" / "memory_bank.pt", "--refine")
    assert bank["state_dict"]["logits"].shape == (300, 10, 3) and bank["state_dict"]["logits"].dtype == torch.float16
    assert bank["teachers"] == ekg.pick_teachers(rec["history"], 3)
    pruned = load_checkpoint(root / "pruned" / "pruned.pth.tar")
    assert pruned["model"]["cfg"] == rec["cfg"] and rec["cfg"] != rec["cfg_base"]


def test_finetune_with_knowledge_resumes_bit_identical_after_a_kill(ekg_run, tmp_path, monkeypatch):
    from utils import engine
    root, data, _ = ekg_run
    args = ["--dataset", "cifar10", "--data", data, "--refine", root / "pruned" / "pruned.pth.tar", "--train-subset",
            "300", "--test-subset", "60", "--epochs", "2", "--batch-size", "50"] + QUIET
    ref = stage(KEY, "finetune", args + ["--save", tmp_path / "ref"], log=lambda *a: None)
    assert ref["args"]["knowledge"] == "on"
    original, calls = engine.save_checkpoint, [0]

    def dying(obj, path):
        original(obj, path)
        calls[0] += 1
        if str(path).endswith("checkpoint.pth.tar") and obj["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "save_checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        stage(KEY, "finetune", args + ["--save", tmp_path / "got"], log=lambda *a: None)
    monkeypatch.setattr(engine, "save_checkpoint", original)
    stage(KEY, "finetune", args + ["--save", tmp_path / "got", "--resume", "auto"], log=lambda *a: None)
    a = torch.load(tmp_path / "ref" / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(tmp_path / "got" / "checkpoint.pth.tar", weights_only=True)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_finetune_refuses_another_training_set_and_a_missing_bank(ekg_run, tmp_path):
    from utils.errors import UserError
    root, data, _ = ekg_run
    args = ["--dataset", "cifar10", "--data", data, "--refine", root / "pruned" / "pruned.pth.tar", "--epochs", "1",
            "--save", tmp_path / "ft"] + QUIET
    with pytest.raises(UserError, match="memory bank .* holds the first 300"):
        stage(KEY, "finetune", args + ["--train-subset", "200"], log=lambda *a: None)
    assert not (tmp_path / "ft").exists()
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "pruned.pth.tar").write_bytes((root / "pruned" / "pruned.pth.tar").read_bytes())
    with pytest.raises(UserError, match="no memory bank"):
        stage(KEY, "finetune", args[:4] + ["--refine", lonely / "pruned.pth.tar"] + args[6:], log=lambda *a: None)
    rec = stage(KEY, "finetune", args[:4] + ["--refine", lonely / "pruned.pth.tar", "--knowledge", "off"] + args[6:]
                + ["--test-subset", "60", "--train-subset", "100"], log=lambda *a: None)
    assert rec["epochs"] == 1


def test_scratch_b_trains_the_flops_ratio(ekg_run, tmp_path):
    root, data, rec = ekg_run
    out = stage(KEY, "scratch", ["--dataset", "cifar10", "--data", data, "--scratch",
                                 root / "pruned" / "pruned.pth.tar", "--budget", "B", "--epochs", "2",
                                 "--train-subset", "100", "--test-subset", "60", "--save", tmp_path / "b"] + QUIET,
                log=lambda *a: None)
    assert out["epochs"] == int(2 * rec["flops_base"] / rec["flops_pruned"]) and out["cfg"] == rec["cfg"]


def test_search_quirks_change_what_they_say(search_data, searched):
    plain = searched
    quirky = new_search(search_data, quirk_history0=True)
    quirky.run()
    assert quirky.history[0]["widths"] != plain.history[0]["widths"]
    assert quirky.history[0]["loss"] == plain.history[0]["loss"]
    assert [h["widths"] for h in quirky.history[1:]] == [h["widths"] for h in plain.history[1:]]
    assert copy.deepcopy(quirky.kept) == plain.kept
