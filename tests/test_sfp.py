"""Soft Filter Pruning (cifar/soft-filter-pruning) against the reference (reference.md 2.3, 4.3, 5.4, 6.1).

* the SFP ResNet: parameter order (the --layer_* indices), DownsampleA, init, FLOPs;
* one soft-pruning step zeroes exactly the filters an independent numpy port of the reference's ``Mask`` zeroes,
  for the README's layer ranges and others (stem included or not);
* zeroed filters regrow while training and are zeroed again at the epoch end, before the evaluation;
* SFP's LR rule (per-milestone gammas) and its exact resume;
* scratch-B: r, epochs and milestones as recomputed in reference.md 5.4 (and bug B6 behind --bug-b6);
* masked scratch keeps every pruned weight exactly zero under Nesterov momentum and weight decay;
* the physically smaller network equals the soft-pruned one where that is exact;
* bad input through the scripts.
"""
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import PYTHON, ROOT, stage, write_cifar
from models import build_from_spec, create_model
from utils.checkpoint import save_checkpoint, spec_fields
from utils.data import dataset_info
from utils.engine import Hook, TrainConfig, Trainer
from utils.errors import UserError
from utils.flops import count_flops
from utils.methods import StageContext, get_method, import_path
from utils.stages import DataArgs, TrainArgs, lr_steps, validate_train_args

SFP_DIR = ROOT / "cifar" / "soft-filter-pruning"
sfp = import_path(str(SFP_DIR / "method.py"), "sfp_method_under_test")
SFP_KEY = "cifar/soft-filter-pruning"


def budget_stage(ckpt, model, hparams, train_args):
    """The scratch-B stage context of ``ckpt`` (its network ``model``)."""
    return StageContext("scratch-B", hparams, DataArgs(), train_args, dataset_info("cifar10"), model=model,
                        source=ckpt, source_path="ckpt")
pytestmark = pytest.mark.usefixtures("one_thread")

LAST_INDEX = {20: 57, 32: 93, 56: 165, 110: 327}  # the classifier weight's parameter index (reference.md 2.3)
LAYER_END = {20: 54, 32: 90, 56: 162, 110: 324}


# ------------------------------------------------------------------------------------------ helpers
def deterministic_convs(model, seed=0):
    """Conv weights with well-separated filter norms (a per-filter scale from a permutation), no ties."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                c = m.out_channels
                w = rng.standard_normal(m.weight.shape).astype(np.float32)
                w /= np.linalg.norm(w.reshape(c, -1), axis=1).reshape(c, 1, 1, 1)
                scale = (1.0 + 0.25 * rng.permutation(c)).astype(np.float32).reshape(c, 1, 1, 1)
                m.weight.copy_(torch.from_numpy(w * scale))
    return model


def reference_mask(model, rate, layer_begin, layer_end, layer_inter):
    """An independent port of he-y's ``Mask`` (pruning_cifar10_resnet.py): {parameter index: zeroed filters}.

    compress_rate is 1 for every parameter index, ``rate`` for range(begin, end+1, inter); codebooks exist only
    for indices in range(0, last_index, 3); a codebook zeroes the kernel_length-long runs of the
    int(C * (1 - rate)) lowest-L2 filters (numpy argsort)."""
    params = [p.detach().numpy().copy() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    last_index = names.index("classifier.weight")
    compress = {i: 1.0 for i in range(len(params))}
    for i in range(layer_begin, layer_end + 1, layer_inter):
        compress[i] = rate
    out = {}
    for i in range(0, last_index, 3):
        w = params[i]
        if w.ndim != 4:
            continue
        n = w.shape[0]
        pruned_num = int(n * (1 - compress[i]))
        norm2 = np.linalg.norm(w.reshape(n, -1), 2, 1)
        filter_index = norm2.argsort()[:pruned_num]
        kernel_length = w[0].size
        codebook = np.ones(w.size)
        for x in filter_index:
            codebook[x * kernel_length:(x + 1) * kernel_length] = 0
        out[i] = [f for f in range(n) if not codebook[f * kernel_length:(f + 1) * kernel_length].any()]
    return out


def zero_rows(model):
    """{parameter index: all-zero filters} of every conv weight."""
    return {i: torch.nonzero(p.detach().flatten(1).abs().sum(1) == 0).flatten().tolist()
            for i, p in enumerate(model.parameters()) if p.dim() == 4}


class ListLoader:
    """The slice of DeviceLoader's interface the Trainer uses."""

    def __init__(self, batches):
        self.batches = batches

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def tiny_batches(n, size=8, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n)]


def randomise_bn(model, seed, positive_beta=False):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                beta = torch.randn(n, generator=g) * 0.5
                m.bias.copy_(beta.abs() + 0.1 if positive_beta else beta)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


# ----------------------------------------------------------------------------------- the network
@pytest.mark.parametrize("depth", [20, 32, 56, 110])
def test_parameter_order_matches_the_reference(depth):
    model = create_model("resnet_sfp", depth)
    names = [n for n, _ in model.named_parameters()]
    convs = [i for i, p in enumerate(model.parameters()) if p.dim() == 4]
    assert convs == list(range(0, LAYER_END[depth] + 1, 3))
    assert names.index("classifier.weight") == LAST_INDEX[depth]
    assert names[:6] == ["conv_1_3x3.weight", "bn_1.weight", "bn_1.bias", "stage_1.0.conv_a.weight",
                         "stage_1.0.bn_a.weight", "stage_1.0.bn_a.bias"]
    assert [i for i, _ in sfp.conv_indices(model)] == convs


def test_downsample_init_and_flops():
    torch.manual_seed(0)
    model = create_model("resnet_sfp", 20)
    block = model.stage_2[0]
    pool = block.downsample.avg
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 1 and pool.stride == 2
    x = torch.randn(2, 16, 32, 32, requires_grad=True)
    short = block.downsample(x)
    assert short.shape == (2, 32, 16, 16)
    assert torch.equal(short[:, :16], x[:, :, ::2, ::2]) and torch.all(short[:, 16:] == 0)
    short.sum().backward()  # not detached: the gradient reaches the input through the shortcut
    assert torch.equal(x.grad[:, :, ::2, ::2], torch.ones(2, 16, 16, 16))
    assert model.stage_1[1].downsample is None
    # init: He fan-out convs, BN 1/0, classifier He fan-in with zero bias
    conv = model.stage_3[1].conv_b
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.03)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
               for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.classifier.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.15)
    assert torch.all(model.classifier.bias == 0)
    # reference FLOPs convention: functional ReLUs are free, the 1x1 AvgPool modules and AvgPool2d(8) count
    # stem 884,736 + 32,768 (BN); stage 1: 6 x 4,718,592 + 6 x 32,768; stage 2: 2,359,296 + 5 x 4,718,592
    # + 6 x 16,384 + 4,096 (pool); stage 3: 2,359,296 + 5 x 4,718,592 + 6 x 8,192 + 2,048; head 4,096 + 1,290
    assert count_flops(model) == 81_489_162


# ------------------------------------------------------------------------------- one soft step
@pytest.mark.parametrize("depth,begin,end,inter", [
    (20, 0, 54, 3),    # the README's setting: every conv, stem included
    (56, 0, 162, 3),
    (20, 3, 54, 3),    # every block conv, not the stem
    (20, 3, 54, 6),    # conv_a only
    (20, 6, 54, 6),    # conv_b only
    (20, 0, 0, 1),     # the stem only
    (20, 0, 30, 1),    # BN indices in the range are ignored, as in the reference
    (32, 9, 60, 9),
])
def test_one_step_zeroes_what_the_reference_mask_zeroes(depth, begin, end, inter):
    model = deterministic_convs(create_model("resnet_sfp", depth), seed=depth + begin)
    expected = reference_mask(model, 0.7, begin, end, inter)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = sfp.select_layers(model, None, begin, end, inter)
    hook = sfp.SoftFilterPruning(names, 0.7)
    hook.on_train_start(SimpleNamespace(module=model, start_epoch=0))
    got = zero_rows(model)
    assert got == expected
    selected = set(range(begin, end + 1, inter))
    widths = {16: 4, 32: 9, 64: 19}  # int(C * (1 - 0.7)) with float arithmetic
    params = list(model.parameters())
    for i, zeroed in got.items():
        assert len(zeroed) == (widths[params[i].shape[0]] if i in selected else 0), i
    # nothing else changed: the other filters, BN, classifier
    for k, v in model.state_dict().items():
        if v.dim() == 4:
            keep = v.flatten(1).abs().sum(1) != 0
            assert torch.equal(v[keep], before[k][keep]), k
        else:
            assert torch.equal(v, before[k]), k


def test_layer_choices_are_the_reference_ranges():
    model = create_model("resnet_sfp", 56)
    by_range = lambda b, e, i: sfp.select_layers(model, None, b, e, i)  # noqa: E731
    assert sfp.select_layers(model, "all") == by_range(0, 162, 3) == sfp.select_layers(model)
    assert len(by_range(0, 162, 3)) == 55 and by_range(0, 162, 3)[0] == "conv_1_3x3.weight"
    assert sfp.select_layers(model, "inner") == by_range(3, 162, 6)
    assert sfp.select_layers(model, "blocks") == by_range(3, 162, 3)
    assert all(n.endswith("conv_a.weight") for n in sfp.select_layers(model, "inner"))
    with pytest.raises(UserError, match="selects no conv"):
        sfp.select_layers(model, None, 1, 2, 1)
    with pytest.raises(UserError, match="--prune-layers and --layer_begin"):
        sfp.select_layers(model, "inner", 0, 162, 3)


def test_counts_use_the_reference_float_arithmetic():
    assert [len(sfp.filters_to_zero(torch.randn(c, 3, 3, 3), 0.7)) for c in (16, 32, 64)] == [4, 9, 19]
    assert 16 * (1 - 0.7) == pytest.approx(4.8) and int(16 * (1 - 0.7)) == 4
    assert sfp.filters_to_zero(torch.randn(16, 3, 3, 3), 1.0) == []
    for rate in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(UserError, match="--rate"):
            sfp.check_rate(rate)


def test_reference_spellings():
    """The reference's spellings parse to ours: --arch resnet56 is resnet_sfp at depth 56, and its flag names."""
    from utils.cli import parse
    (model, data, train), _, own, _ = parse(get_method(SFP_KEY), "train", "", [
        "--arch", "resnet56", "--learning_rate", "0.1", "--decay=0.0005", "--save_path", "x", "--manualSeed", "7",
        "--batch_size", "32", "--epoch_prune", "2", "--layer_begin", "0", "--layer_end", "162", "--layer_inter", "3"])
    assert (model.arch, model.depth) == ("resnet_sfp", 56)
    assert (train.lr, train.weight_decay, train.save, train.seed, data.batch_size) == (0.1, 0.0005, "x", 7, 32)
    assert (own.epoch_prune, own.layer_begin, own.layer_end, own.layer_inter) == (2, 0, 162, 3)
    (_, _, train), _, _, _ = parse(get_method(SFP_KEY), "train", "", ["--arch", "resnet20", "--pretrained", "p"])
    assert train.lr == sfp.PRETRAINED_LR  # the README's command from a trained model
    (_, _, train), _, _, _ = parse(get_method(SFP_KEY), "train", "", ["--pretrained", "p", "--learning_rate", "0.05"])
    assert train.lr == 0.05


# ------------------------------------------------------------------------------ soft: regrowth
class Probe(Hook):
    """Records, after each step and at the epoch end (after SFP's hook), the zeroed filters."""

    def __init__(self):
        self.steps, self.epoch_end = [], []

    def on_train_start(self, trainer):
        self.start = zero_rows(trainer.module)
        self.start_state = {k: v.clone() for k, v in trainer.module.state_dict().items()}

    def after_step(self, trainer):
        self.steps.append(zero_rows(trainer.module))

    def on_epoch_end(self, trainer, epoch):
        state = {k: v.clone() for k, v in trainer.module.state_dict().items()}
        self.epoch_end.append((zero_rows(trainer.module), state))


def small_trainer(model, hooks, tmp_path, epochs=1, steps=4, **cfg):
    config = TrainConfig(epochs=epochs, lr=cfg.pop("lr", 0.05), progress=False, tensorboard=False, **cfg)
    return Trainer(model, ListLoader(tiny_batches(steps)), ListLoader(tiny_batches(2, seed=9)), config,
                   str(tmp_path), hooks=hooks, log=lambda *a, **k: None)


def test_zeroed_filters_regrow_and_are_zeroed_again_at_the_epoch_end(tmp_path):
    torch.manual_seed(0)
    # a trained-looking start (BN betas > 0: a zeroed channel still passes ReLU(beta)), as with --pretrained
    model = randomise_bn(create_model("resnet_sfp", 20, image_size=8), seed=1, positive_beta=True)
    assert all(not z for z in zero_rows(model).values())
    before, after = Probe(), Probe()  # on_epoch_end runs in list order: around SFP's zeroing
    trainer = small_trainer(model, [before, sfp.SoftFilterPruning(sfp.select_layers(model, "all"), 0.7), after],
                            tmp_path, epochs=2, steps=4, momentum=0.9, weight_decay=5e-4, nesterov=True)
    result = trainer.fit()
    widths = [p.shape[0] for p in model.parameters() if p.dim() == 4]
    counts = [{16: 4, 32: 9, 64: 19}[c] for c in widths]
    # zeroed before the first step (the reference rule on the initial weights); then, with no gradient
    # masking, every zeroed filter moves again within one step
    initial = randomise_bn(create_model("resnet_sfp", 20, image_size=8), seed=1, positive_beta=True)
    assert after.start == reference_mask(_load(initial, before.start_state), 0.7, 0, 54, 3)
    assert [len(z) for z in after.start.values()] == counts
    assert all(not z for z in after.steps[0].values())
    for epoch in range(2):
        pre_zeros, pre_state = before.epoch_end[epoch]
        post_zeros, _ = after.epoch_end[epoch]
        assert all(not z for z in pre_zeros.values())  # regrown during the epoch
        assert [len(z) for z in post_zeros.values()] == counts  # zeroed again: int(C * 0.3) per conv
        # and exactly the reference rule applied to the weights this epoch's training produced
        pre_model = _load(create_model("resnet_sfp", 20, image_size=8), pre_state)
        assert post_zeros == reference_mask(pre_model, 0.7, 0, 54, 3)
    # evaluation came after the zeroing: the saved (zeroed) weights reproduce the logged accuracy
    ckpt = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=True)
    assert zero_rows(_load(create_model("resnet_sfp", 20, image_size=8), ckpt["state_dict"])) == \
        after.epoch_end[1][0]
    from utils.engine import evaluate
    _, acc = evaluate(_load(create_model("resnet_sfp", 20, image_size=8), ckpt["state_dict"]),
                      ListLoader(tiny_batches(2, seed=9)), "cpu")
    assert acc == pytest.approx(result["final_prec1"])


def _load(model, state):
    model.load_state_dict(state)
    return model


def test_from_scratch_a_zeroed_inner_filter_gets_no_gradient(tmp_path):
    """A quirk the reference shares: with BN beta at its init 0, a zeroed conv_a filter's channel is exactly 0
    before its ReLU, whose gradient there is 0; with empty momentum buffers it stays zero. conv_b channels
    reach the loss through the residual sum and regrow."""
    torch.manual_seed(0)
    model = create_model("resnet_sfp", 20, image_size=8)
    probe = Probe()
    trainer = small_trainer(model, [sfp.SoftFilterPruning(sfp.select_layers(model, "all"), 0.7), probe],
                            tmp_path, steps=3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    trainer.fit()
    names = [n for n, _ in model.named_parameters()]
    after = probe.steps[-1]
    for i, zeroed in after.items():
        if names[i].endswith("conv_a.weight") or i == 0:  # dead: the same filters are still zero
            assert zeroed == probe.start[i] and len(zeroed) in (4, 9, 19), names[i]
    # conv_b filters regrow, except where the whole stream channel is zero too (e.g. a dead stem filter)
    conv_b = [i for i in after if names[i].endswith("conv_b.weight")]
    assert sum(len(after[i]) for i in conv_b) < sum(len(probe.start[i]) for i in conv_b) / 4


# ---------------------------------------------------------------------------------- LR schedule
def reference_lr(epoch, base=0.01, schedule=(1, 60, 120, 160), gammas=(10, 0.2, 0.2, 0.2)):
    """pruning_cifar10_resnet.py adjust_learning_rate."""
    lr = base
    for gamma, step in zip(gammas, schedule):
        if epoch >= step:
            lr = lr * gamma
        else:
            break
    return lr


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_sfp_learning_rate_rule_and_exact_resume(tmp_path):
    args = TrainArgs(**{k: v for k, v in sfp.RECIPE.items() if k != "batch_size"})
    validate_train_args(args)
    steps, gammas = lr_steps(args)
    assert (steps, gammas) == ([1, 60, 120, 160], [10, 0.2, 0.2, 0.2])
    model = nn.Linear(2, 2)
    model.spec = None

    def trainer():
        cfg = TrainConfig(epochs=200, lr=0.01, milestones=steps, gammas=gammas, nesterov=True, momentum=0.9,
                          progress=False, tensorboard=False)
        return Trainer(model, ListLoader([]), ListLoader([]), cfg, str(tmp_path), log=lambda *a: None)

    t = trainer()
    lrs = []
    for epoch in range(200):
        lrs.append(t.optimizer.param_groups[0]["lr"])
        if epoch == 70:
            saved = (t.optimizer.state_dict(), t.scheduler.state_dict())
        t.scheduler.step()
    assert lrs == pytest.approx([reference_lr(e) for e in range(200)], rel=1e-12)
    assert [lrs[0], lrs[1], lrs[59], lrs[60], lrs[120], lrs[160], lrs[199]] == pytest.approx(
        [0.01, 0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008])
    resumed = trainer()
    resumed.optimizer.load_state_dict(saved[0])
    resumed.scheduler.load_state_dict(saved[1])
    again = []
    for epoch in range(70, 200):
        again.append(resumed.optimizer.param_groups[0]["lr"])
        resumed.scheduler.step()
    assert again == lrs[70:]
    for bad in ({"gammas": [10, 0.2]}, {"schedule": [0.5, 60, 120, 160]}, {"gammas": [10, 0, 0.2, 0.2]}):
        with pytest.raises(UserError, match="--gammas|--schedule"):
            validate_train_args(TrainArgs(**{**vars(args), **bad}))


# ------------------------------------------------------------------------------------- scratch-B
def soft_pruned(depth, rate=0.7, layers="all", seed=0, **geometry):
    torch.manual_seed(seed)
    model = create_model("resnet_sfp", depth, **geometry)
    sfp.soft_prune(model, sfp.select_layers(model, layers), rate)
    return model


@pytest.mark.parametrize("depth,r", [(56, 1.3784), (110, 1.3788), (20, 1.3768), (32, 1.3778)])
def test_scratch_b_budget_matches_reference(depth, r):
    model = soft_pruned(depth)
    ckpt = {**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}
    unloaded = build_from_spec(model.spec)
    info = dataset_info("cifar10")

    def budget(bug_b6):
        args = TrainArgs(**{k: v for k, v in sfp.RECIPE.items() if k != "batch_size"})
        epochs, record = sfp.sfp_budget(budget_stage(ckpt, unloaded, sfp.ScratchSFPArgs(masked=True, bug_b6=bug_b6),
                                                     args), args.epochs)
        return epochs, record, args

    epochs, record, args = budget(False)
    assert round(record["flops_ratio"], 4) == r
    assert record["flops_base"] == count_flops(create_model("resnet_sfp", depth))
    assert record["flops_pruned"] == count_flops(model, rule="nonzero") < record["flops_base"]
    assert epochs == 275 == int(200 * record["flops_ratio"])
    assert args.schedule == record["schedule"] == [1, 82, 165, 220]
    epochs_b6, _, args_b6 = budget(True)
    assert epochs_b6 == (550 if depth == 20 else 551)
    assert args_b6.schedule == [1, 82, 165, 220]


def test_scratch_b_of_the_smaller_network_uses_the_dense_rule():
    model = soft_pruned(56)
    keep = sfp.select(model, "zeroed")
    small = sfp.shrink(model, keep, "zeroed")
    ckpt = {**spec_fields(small, "cifar10"), "state_dict": small.state_dict(), "base_model": model.spec.to_dict(),
            "prune": {}}
    args = TrainArgs(**{k: v for k, v in sfp.RECIPE.items() if k != "batch_size"})
    epochs, record = sfp.sfp_budget(budget_stage(ckpt, build_from_spec(small.spec), sfp.ScratchSFPArgs(), args),
                                    args.epochs)
    r = count_flops(create_model("resnet_sfp", 56)) / count_flops(small)
    assert record["flops_ratio"] == r and epochs == int(200 * r) and record["flops_rule"] == "dense"
    assert small.cfg == [12] * 9 + [23] * 9 + [45] * 9


# ------------------------------------------------------------------------------- masked scratch
def test_masked_scratch_keeps_pruned_weights_exactly_zero(tmp_path):
    source = soft_pruned(20, image_size=8)
    ckpt = {**spec_fields(source, "cifar10"), "state_dict": source.state_dict()}
    args = sfp.ScratchSFPArgs(masked=True)
    method = get_method(SFP_KEY)
    context = budget_stage(ckpt, source, args, TrainArgs())
    context.masks = method.source_masks(context)
    torch.manual_seed(5)
    fresh = build_from_spec(source.spec)
    method.init_model(fresh, context)
    masks = sfp.masks_of(ckpt, fresh)
    assert all(torch.equal(masks[n], context.masks[n]) for n in masks)
    params = dict(fresh.named_parameters())
    for n, m in masks.items():
        assert torch.equal(params[n] != 0, m), n  # exactly the SFP zeros, everything else redrawn
        assert not torch.equal(params[n], source.state_dict()[n])
    # the redrawn std follows n = nnz / C_in (reference.md 5.3/5.4): a 64-filter conv with 45 alive filters
    w = params["stage_3.1.conv_b.weight"]
    alive = w.flatten(1).abs().sum(1) != 0
    assert int(alive.sum()) == 45
    assert w[alive].std().item() == pytest.approx((2 / (45 * 9 * 64 / 64)) ** 0.5, rel=0.05)
    from utils.masks import MaskHook
    hooks = [MaskHook(context.masks)]  # what the scratch stage adds for a method's mask
    probe = Probe()
    start = {k: v.clone() for k, v in fresh.state_dict().items()}
    trainer = small_trainer(fresh, hooks + [probe], tmp_path, epochs=2, steps=4, lr=0.1, momentum=0.9,
                            nesterov=True, weight_decay=5e-4)
    trainer.fit()
    expected = {i: torch.nonzero(~m.flatten(1).any(1)).flatten().tolist()
                for i, (n, p) in enumerate(fresh.named_parameters()) if (m := masks.get(n)) is not None}
    assert len(probe.steps) == 8 and all(z == expected for z in probe.steps)
    for n, m in masks.items():
        p = dict(fresh.named_parameters())[n]
        assert torch.all(p[~m] == 0), n
        assert not torch.equal(p[m], start[n][m]), n  # the rest trained


# -------------------------------------------------------------------------- the smaller network
def test_smaller_network_equals_the_soft_pruned_one_where_exact():
    torch.manual_seed(0)
    model = randomise_bn(create_model("resnet_sfp", 20), seed=3)
    sfp.soft_prune(model, sfp.select_layers(model, "all"), 0.7)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        full = model(x)

    keep = sfp.select(model, "exact")
    small = sfp.shrink(model, keep, "exact").eval()
    removed = sum(model.cfg[i] - len(k) for i, k in keep.items())
    zeroed = sum(len(sfp.filters_to_zero(torch.ones(c, 1), 0.7)) for c in model.cfg)  # 4/9/19 per block
    assert 0 < removed < zeroed  # some zeroed channels emit a positive constant and must stay
    with torch.no_grad():
        assert torch.allclose(small(x), full, rtol=1e-5, atol=1e-5)
    assert count_flops(small) < count_flops(model)

    # dropping every zeroed filter without care changes the function...
    keep_all = sfp.select(model, "zeroed")
    assert sum(model.cfg[i] - len(k) for i, k in keep_all.items()) == zeroed
    from utils.surgery import prune_channels
    with torch.no_grad():
        assert not torch.allclose(prune_channels(model, keep_all).eval()(x), full, atol=1e-3)
    # ...with the constants folded into the next BN each block is exact away from the image border
    small_z = sfp.shrink(model, keep_all, "zeroed").eval()
    assert small_z.cfg == [12] * 3 + [23] * 3 + [45] * 3
    feats = torch.relu(model.bn_1(model.conv_1_3x3(x)))
    checked = 0
    for name in model.block_names():
        big_b, small_b = model.get_submodule(name), small_z.get_submodule(name)
        with torch.no_grad():
            y_big = big_b.bn_b(big_b.conv_b(torch.relu(big_b.bn_a(big_b.conv_a(feats)))))
            y_small = small_b.bn_b(small_b.conv_b(torch.relu(small_b.bn_a(small_b.conv_a(feats)))))
            assert torch.allclose(y_small[:, :, 1:-1, 1:-1], y_big[:, :, 1:-1, 1:-1], rtol=1e-4, atol=1e-4), name
            if not torch.allclose(y_small, y_big, atol=1e-4):
                checked += 1  # the border differs where a dropped constant was positive
            feats = big_b(feats)
    assert checked > 0


# ---------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sfp_bad")
    data = write_cifar(root / "data", n_train=64, n_test=32, seed=4)
    torch.manual_seed(0)
    for arch, depth, name in (("resnet", 20, "l1_resnet20"), ("vgg", 11, "vgg11"), ("resnet_sfp", 20, "sfp20")):
        model = create_model(arch, depth)
        if arch == "resnet_sfp":
            sfp.soft_prune(model, sfp.select_layers(model), 0.7)
        save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 1},
                        root / f"{name}.pth.tar")
    return root, data



def test_bad_input_is_one_line_naming_the_flag(bad_files):
    """Through the real scripts: exit status 2, one line naming the flag or file, nothing written."""
    root, data = bad_files
    common = ["--dataset", "cifar10", "--data", data, "--no-progress", "--no-tensorboard", "--epochs", "1"]
    cases = {
        "rate0": ([SFP_DIR / "train.py", *common, "--arch", "resnet20", "--rate", "0"], "--rate"),
        "prune_other_arch": ([SFP_DIR / "prune.py", "--dataset", "cifar10", "--data", data,
                              "--model", root / "vgg11.pth.tar"], "vgg11.pth.tar"),
        "arch_of_another_method": ([SFP_DIR / "train.py", *common, "--arch", "resnet", "--depth", "20"], "--arch"),
    }

    def one(item):
        name, (argv, needle) = item
        save = root / "out" / name
        proc = subprocess.run([PYTHON] + [str(a) for a in argv] + ["--save", str(save)], capture_output=True,
                              text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
        return name, needle, save, proc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, cases.items()))
    for name, needle, save, proc in results:
        assert proc.returncode == 2, (name, proc.stderr)
        lines = [line for line in proc.stderr.strip().splitlines() if ": warning: " not in line]
        assert len(lines) == 1 and "error:" in lines[0] and needle in lines[0], (name, proc.stderr)
        assert not save.exists() or not any(save.iterdir()), name


def test_bad_input_in_process(bad_files, tmp_path):
    """The same checks on the rest of the cases, calling the scripts' main (each raises one UserError)."""
    root, data = bad_files
    common = ["--dataset", "cifar10", "--data", str(data), "--no-progress", "--no-tensorboard", "--epochs", "1"]
    train = common + ["--arch", "resnet20"]
    cases = [
        ("train", train + ["--rate", "1.5"], "--rate 1.5"),
        ("train", train + ["--rate", "-0.2"], "--rate"),
        ("train", train + ["--layer_begin", "1", "--layer_end", "2", "--layer_inter", "1"], "selects no conv"),
        ("train", train + ["--prune-layers", "inner", "--layer_end", "54"], "--prune-layers"),
        ("train", train + ["--epoch_prune", "0"], "--epoch_prune"),
        ("train", train + ["--pretrained", str(root / "l1_resnet20.pth.tar")], "holds resnet-20"),
        ("train", train + ["--pretrained", str(root / "missing.pth.tar")], "--pretrained"),
        ("train", train + ["--gammas", "10", "0.2"], "--gammas"),
        ("scratch", common + ["--masked", "--scratch", str(root / "l1_resnet20.pth.tar")], "--scratch"),
        ("scratch", common + ["--scratch", str(root / "sfp20.pth.tar")], "--masked"),
        ("finetune", common + ["--refine", str(root / "sfp20.pth.tar")], "--refine"),
        ("finetune", common + ["--masked", "--refine", str(root / "vgg11.pth.tar")], "holds vgg-11"),
    ]
    for i, (name, argv, needle) in enumerate(cases):
        save = tmp_path / f"case{i}"
        with pytest.raises(UserError, match=needle.replace(".", r"\.")):
            stage(SFP_KEY, name, argv + ["--save", str(save)])
        assert not save.exists() or not any(save.iterdir()), (name, argv)
