"""The training engine (hook order and state, LR schedule, checkpoints, model_best, summary.json, resume of a
finished run, --save reuse) and the hparams command line of the four L1-norm scripts."""
import argparse
import dataclasses
import hashlib
import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn as nn

from conftest import L1, L1_KEY, PYTHON, ROOT, stage, write_cifar
from utils.data import DeviceLoader, TensorDataset
from utils.engine import Hook, TrainConfig, Trainer
from utils.stages import milestones

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
NORM = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def dataset(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                         torch.randint(0, 10, (n,), generator=g))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def make_trainer(save, hooks=(), n=96, batch=32, epochs=3, lr=0.1, schedule=(), **cfg):
    torch.manual_seed(0)
    ds = dataset(n)
    config = TrainConfig(epochs=epochs, lr=lr, milestones=milestones(list(schedule), epochs), progress=False,
                         tensorboard=False, **cfg)
    return Trainer(TinyNet(), DeviceLoader(ds, batch, train=True, seed=1, **NORM),
                   DeviceLoader(ds, 64, train=False, **NORM), config, str(save), hooks=hooks, log=lambda *a: None)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


# ------------------------------------------------------------------------------------------------ hooks
class Recorder(Hook):
    """Records every call and checks the documented state at each one."""

    def __init__(self):
        self.events, self.before = [], None

    def on_train_start(self, trainer):
        assert trainer.optimizer is not None
        self.events.append("train_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(("epoch_start", epoch))
        assert trainer.module.training

    def extra_loss(self, trainer, inputs, outputs, targets):
        self.events.append("extra_loss")
        assert outputs.shape == (inputs.shape[0], 10) and outputs.requires_grad
        self.before = snapshot(trainer.module)  # the weights this step starts from
        return None

    def after_backward(self, trainer):
        self.events.append("after_backward")
        for name, p in trainer.module.named_parameters():
            assert p.grad is not None, f"{name}: no gradient in after_backward"
            assert torch.equal(p, self.before[name]), f"{name}: weights changed before the optimizer step"

    def after_step(self, trainer):
        self.events.append("after_step")
        changed = [n for n, p in trainer.module.named_parameters() if not torch.equal(p, self.before[n])]
        assert changed, "after_step does not see the updated weights"

    def on_epoch_end(self, trainer, epoch):
        self.events.append(("epoch_end", epoch))
        ckpt = os.path.join(trainer.save_dir, Trainer.CHECKPOINT)
        saved = torch.load(ckpt, weights_only=True)["epoch"] if os.path.exists(ckpt) else 0
        assert saved == epoch, "on_epoch_end must run before this epoch's checkpoint is written"


def test_hooks_are_called_in_the_documented_order_with_the_documented_state(tmp_path):
    rec = Recorder()
    trainer = make_trainer(tmp_path, hooks=[rec], n=96, batch=32, epochs=2)
    evaluate = trainer.evaluate

    def recorded_evaluate(*args, **kwargs):
        rec.events.append("evaluate")
        return evaluate(*args, **kwargs)

    trainer.evaluate = recorded_evaluate
    trainer.fit()
    step = ["extra_loss", "after_backward", "after_step"]
    expected = ["train_start"]
    for epoch in range(2):
        expected += [("epoch_start", epoch)] + step * 3 + [("epoch_end", epoch), "evaluate"]
    assert rec.events == expected


class Mask(Hook):
    """Zero half the classifier rows at the start and after every optimizer step."""

    def __init__(self, reapply=True):
        self.reapply, self.mask = reapply, None

    def on_train_start(self, trainer):
        w = trainer.module.fc.weight
        self.mask = torch.ones_like(w)
        self.mask[::2] = 0
        with torch.no_grad():
            w.mul_(self.mask)

    def after_step(self, trainer):
        if self.reapply:
            with torch.no_grad():
                trainer.module.fc.weight.mul_(self.mask)


class ZerosStayZero(Hook):
    def __init__(self):
        self.checked = 0

    def after_step(self, trainer):
        assert torch.count_nonzero(trainer.module.fc.weight[::2]) == 0
        self.checked += 1


def test_mask_hook_keeps_pruned_weights_exactly_zero_under_momentum_and_weight_decay(tmp_path):
    check = ZerosStayZero()
    trainer = make_trainer(tmp_path, hooks=[Mask(), check], epochs=3, momentum=0.9, weight_decay=1e-4)
    trainer.fit()
    assert check.checked == 9
    ckpt = torch.load(tmp_path / Trainer.CHECKPOINT, weights_only=True)
    assert torch.count_nonzero(ckpt["state_dict"]["fc.weight"][::2]) == 0
    assert torch.count_nonzero(ckpt["state_dict"]["fc.weight"][1::2]) > 0
    # control: masking only once, the gradients revive the pruned rows
    control = make_trainer(tmp_path / "control", hooks=[Mask(reapply=False)], epochs=1, momentum=0.9,
                           weight_decay=1e-4)
    os.makedirs(control.save_dir)
    control.fit()
    assert torch.count_nonzero(control.module.fc.weight[::2]) > 0


# --------------------------------------------------------------------------------------------- schedule
class LRLog(Hook):
    def __init__(self):
        self.lrs = []

    def on_epoch_start(self, trainer, epoch):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("epochs, schedule, expected", [
    (8, [0.5, 0.75], [0.1] * 4 + [0.01] * 2 + [0.001] * 2),
    (10, [0.5, 0.75], [0.1] * 5 + [0.01] * 2 + [0.001] * 3),  # int(7.5) = 7
    (6, [], [0.1] * 6),
])
def test_multistep_lr_at_int_fractions_of_the_epochs(tmp_path, epochs, schedule, expected):
    assert milestones(schedule, epochs) == [int(f * epochs) for f in schedule]
    log = LRLog()
    trainer = make_trainer(tmp_path, hooks=[log], n=16, batch=16, epochs=epochs, schedule=schedule)
    trainer.fit()
    assert log.lrs == pytest.approx(expected, rel=1e-9)
    assert [h["lr"] for h in trainer.history] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------------- model_best
def test_model_best_rewritten_only_on_strict_improvement(tmp_path):
    accs = [0.5, 0.5, 0.7, 0.6, 0.7]
    trainer = make_trainer(tmp_path, n=16, batch=16, epochs=len(accs))
    trainer.evaluate = lambda *a, top5=False, **k: (1.0, accs[trainer.epoch]) + ((1.0,) if top5 else ())
    best = tmp_path / Trainer.BEST
    seen = []

    class Watch(Hook):
        def on_epoch_start(self, tr, epoch):
            if epoch:
                seen.append((torch.load(best, weights_only=True)["epoch"], os.stat(best).st_mtime_ns,
                             hashlib.sha256(best.read_bytes()).hexdigest()))

    trainer.hooks.append(Watch())
    trainer.fit()
    final = torch.load(best, weights_only=True)
    seen.append((final["epoch"], os.stat(best).st_mtime_ns, hashlib.sha256(best.read_bytes()).hexdigest()))
    assert [s[0] for s in seen] == [1, 1, 3, 3, 3]
    assert seen[0][1:] == seen[1][1:] and seen[2][1:] == seen[3][1:] == seen[4][1:]  # untouched, not rewritten
    assert final["best_prec1"] == 0.7
    assert torch.load(tmp_path / Trainer.CHECKPOINT, weights_only=True)["best_prec1"] == 0.7


# ------------------------------------------------------------------------------ real stage, in-process
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine_run")
    data = write_cifar(root / "data", n_train=128, n_test=64, seed=4)
    argv = ["--dataset", "cifar10", "--data", data, "--arch", "vgg", "--depth", "11", "--width", "0.125",
            "--epochs", "3", "--seed", "5", "--no-progress", "--no-tensorboard", "--save", str(root / "run")]
    summary = stage(L1_KEY, "train", argv)
    return root / "run", argv, summary


REQUIRED_KEYS = {"arch", "depth", "dataset", "cfg", "state_dict", "epoch", "best_prec1", "optimizer", "scheduler",
                 "rng"}


def test_checkpoints_hold_the_documented_keys_and_load_weights_only(finished_run):
    save, _, _ = finished_run
    for name in (Trainer.CHECKPOINT, Trainer.BEST):
        ckpt = torch.load(save / name, map_location="cpu", weights_only=True)
        assert REQUIRED_KEYS <= set(ckpt), REQUIRED_KEYS - set(ckpt)
        assert (ckpt["arch"], ckpt["depth"], ckpt["dataset"]) == ("vgg", 11, "cifar10")
        assert ckpt["cfg"] == [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64]
        assert isinstance(ckpt["rng"]["torch"], torch.Tensor)
        assert ckpt["scheduler"]["milestones"] == {1: 1, 2: 1}
    assert torch.load(save / Trainer.CHECKPOINT, weights_only=True)["epoch"] == 3


def test_summary_json_has_results_costs_and_the_full_arguments(finished_run):
    from utils.stages import DataArgs, ModelArgs, TrainArgs
    save, _, returned = finished_run
    summary = json.loads((save / "summary.json").read_text())
    for key in ("final_prec1", "best_prec1", "epochs", "params", "flops", "macs", "wall_time_s", "seed", "args"):
        assert key in summary, key
    ckpt = torch.load(save / Trainer.CHECKPOINT, weights_only=True)
    assert summary["final_prec1"] == ckpt["history"][-1]["prec1"] == returned["final_prec1"]
    assert summary["best_prec1"] == max(h["prec1"] for h in ckpt["history"])
    assert summary["epochs"] == 3 and summary["seed"] == 5
    assert summary["params"] > 0 and summary["flops"] > summary["macs"] > 0
    assert summary["wall_time_s"] > 0 and not math.isnan(summary["wall_time_s"])
    fields = {f.name for cls in (ModelArgs, DataArgs, TrainArgs) for f in dataclasses.fields(cls)}
    assert fields <= set(summary["args"]), fields - set(summary["args"])
    assert summary["args"]["width"] == 0.125 and summary["args"]["epochs"] == 3
    assert summary["args"]["schedule"] == [0.5, 0.75]


def test_resuming_a_finished_run_changes_nothing(finished_run, capsys):
    save, argv, _ = finished_run
    files = {n: (save / n).read_bytes() for n in (Trainer.CHECKPOINT, Trainer.BEST)}
    before = json.loads((save / "summary.json").read_text())
    capsys.readouterr()
    again = stage(L1_KEY, "train", argv + ["--resume", "auto"])
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch    " not in out, out  # no epoch trained again
    for n, blob in files.items():
        assert (save / n).read_bytes() == blob, f"{n} rewritten by resuming a finished run"
    assert (again["final_prec1"], again["best_prec1"], again["epochs"]) == \
        (before["final_prec1"], before["best_prec1"], before["epochs"])
    after = json.loads((save / "summary.json").read_text())
    assert after["final_prec1"] == before["final_prec1"] and after["train_time_s"] == before["train_time_s"]


# ----------------------------------------------------------------------------------- the command line
SCRIPT_FLAGS = {
    "train.py": ["--dataset", "--arch", "--depth", "--save", "--epochs", "--lr", "--seed", "--data", "--resume",
                 "--batch-size", "--test-batch-size", "--momentum", "--weight-decay"],
    "prune.py": ["--dataset", "--model", "--save", "-v", "--arch", "--depth", "--data", "--test-batch-size"],
    "finetune.py": ["--refine", "--dataset", "--arch", "--depth", "--save", "--epochs", "--lr", "--seed", "--data",
                    "--resume"],
    "scratch.py": ["--scratch", "--dataset", "--arch", "--depth", "--save", "--epochs", "--lr", "--seed", "--data",
                   "--resume", "--budget"],
}


@pytest.fixture(scope="module")
def cli(finished_run):
    """--help of the four scripts, and train.py into a --save that holds a run, without --resume (concurrently)."""
    save, argv, _ = finished_run
    jobs = {name: [L1 / name, "--help"] for name in SCRIPT_FLAGS}
    jobs["reuse"] = [L1 / "train.py"] + argv
    before = {n: (save / n).read_bytes() for n in os.listdir(save) if n.endswith(".tar")}

    def go(args):
        return subprocess.run([PYTHON] + [str(a) for a in args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {k: pool.submit(go, a) for k, a in jobs.items()}
        results = {k: f.result() for k, f in futures.items()}
    return results, before, save


@pytest.mark.parametrize("script", sorted(SCRIPT_FLAGS))
def test_help_lists_the_reference_flags(cli, script):
    proc = cli[0][script]
    assert proc.returncode == 0, proc.stderr
    words = set(proc.stdout.replace(",", " ").replace("[", " ").replace("]", " ").split())
    missing = [f for f in SCRIPT_FLAGS[script] if f not in words]
    assert not missing, f"{script} --help lacks {missing}"
    if script != "prune.py":  # every bool flag has its --no- form
        for flag in ("--progress", "--tensorboard", "--amp", "--compile", "--channels-last"):
            assert flag in words and "--no-" + flag[2:] in words, flag


def test_save_reuse_without_resume_is_refused_in_one_line(cli):
    results, before, save = cli
    proc = results["reuse"]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1 and "--save" in lines[0] and "--resume" in lines[0], proc.stderr
    assert {n: (save / n).read_bytes() for n in before} == before


def test_bool_fields_are_flag_pairs_and_never_type_bool():
    """Every stage script of every method: bool options are --x / --no-x pairs, never argparse type=bool."""
    from utils.cli import build, parse
    from utils.methods import get_method, list_methods
    checked = 0
    for key in list_methods():
        method = get_method(key)
        for name in ("train", "prune", "finetune", "scratch"):
            parser, _, _ = build(method, name, name)
            for action in parser._actions:
                assert action.type is not bool, f"{key} {name}: {action.option_strings} uses type=bool"
                if isinstance(action, argparse.BooleanOptionalAction):
                    flag = next(s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-"))
                    assert "--no-" + flag[2:] in action.option_strings
                    checked += 1
            flag = "--no-progress" if name != "prune" else None
            if flag:
                (_, _, train), _, _, _ = parse(method, name, name, [flag])
                assert train.progress is False
    assert checked > 40
    for path in list((ROOT / "utils").glob("*.py")) + list(ROOT.glob("cifar/*/*.py")):
        assert "type=bool" not in path.read_text().replace(" ", ""), path


def test_milestones_follow_the_reference_and_never_fall_on_epoch_zero():
    from utils.stages import milestones
    assert milestones([0.5, 0.75], 160) == [80, 120]
    assert milestones([0.5, 0.75], 243) == [121, 182]  # scratch-B of VGG-16-A, as the reference's int()
    assert milestones([0.5, 0.75], 1) == []  # a drop at 0 would skip the base LR entirely
    assert milestones([], 40) == []


def test_model_flags_apply_only_where_they_mean_something():
    """An architecture's options are flags of the scripts that train it; given for another --arch, one error."""
    from models.resnet import ResNetOptions
    from models.vgg import L1VGGOptions
    from utils.cli import parse
    from utils.errors import UserError
    from utils.methods import get_method
    method = get_method(L1_KEY)
    for argv, flag in ((["--arch", "vgg", "--detach-shortcut"], "--detach-shortcut"),
                       (["--arch", "resnet", "--bn1d-init", "ones"], "--bn1d-init")):
        with pytest.raises(UserError, match=f"^{flag} applies to --arch"):
            parse(method, "train", "", argv)
    _, options, _, _ = parse(method, "train", "", ["--arch", "resnet", "--depth", "56", "--detach-shortcut"])
    assert isinstance(options, ResNetOptions) and options.kwargs("resnet", 56) == {"detach_shortcut": True}
    _, options, _, _ = parse(method, "train", "", ["--arch", "resnet", "--depth", "56", "--width", "0.5"])
    assert options.kwargs("resnet", 56) == {"base_width": 8}  # both families take --width, each its own meaning
    _, options, _, _ = parse(method, "train", "", ["--arch", "vgg", "--width", "0.25", "--bn1d-init", "ones"])
    assert isinstance(options, L1VGGOptions)
    kwargs = options.kwargs("vgg", 16)
    assert kwargs["bn1d_init"] == "ones" and kwargs["cfg"][0] == 16
    with pytest.raises(UserError, match="--width 0"):
        parse(method, "train", "", ["--arch", "vgg", "--width", "0"])
    from models import create_model
    head = create_model("vgg", 11, bn1d_init="ones").classifier[1]
    assert torch.equal(head.weight, torch.ones(512))
    head = create_model("vgg", 11).classifier[1]  # U(0, 1), PyTorch 0.3.1's default
    assert 0 <= head.weight.min() and head.weight.max() <= 1 and head.weight.std() > 0.1


# ------------------------------------------------------------------ what a method passes into the engine
def test_any_iterable_of_batches_is_a_loader_and_the_objective_and_optimizer_are_passed_in(tmp_path):
    """A plain list of (inputs, targets) trains (no set_epoch, no len needed); the objective replaces the
    cross-entropy (here a planted one: only class 0's logit is pushed up); the optimizer factory is used."""
    torch.manual_seed(0)
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))) for _ in range(3)]
    made = []

    def adam(module, config):
        opt = torch.optim.Adam(module.parameters(), lr=config.lr)
        made.append(opt)
        return opt

    def push_class0(trainer, inputs, outputs, targets):
        return -outputs[:, 0].mean()

    model = TinyNet()
    trainer = Trainer(model, iter_forever(batches), batches, TrainConfig(epochs=2, lr=0.05, progress=False,
                                                                         tensorboard=False),
                      str(tmp_path), log=lambda *a: None, objective=push_class0, optimizer=adam)
    with torch.no_grad():
        before = model(batches[0][0])[:, 0].mean().item()
    trainer.fit()
    assert len(made) == 1 and isinstance(trainer.optimizer, torch.optim.Adam)
    with torch.no_grad():
        after = model(batches[0][0])[:, 0].mean().item()
    assert after > before + 1.0  # the objective, not the cross-entropy, was minimised
    assert [h["epoch"] for h in trainer.history] == [1, 2]


class iter_forever:
    """An iterable over fixed batches without set_epoch or __len__ (re-iterable, like a list)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_a_schedule_may_step_every_iteration(tmp_path):
    log = LRLog()
    steps = []

    def per_step(optimizer, config, steps_per_epoch):
        steps.append(steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 ** i), "step"

    torch.manual_seed(0)
    ds = dataset(64)
    trainer = Trainer(TinyNet(), DeviceLoader(ds, 16, train=True, seed=1, **NORM), DeviceLoader(ds, 64, train=False,
                                                                                                  **NORM),
                      TrainConfig(epochs=2, lr=0.1, progress=False, tensorboard=False), str(tmp_path), hooks=[log],
                      log=lambda *a: None, schedule=per_step)
    trainer.fit()
    assert steps == [4]  # the factory is told the epoch's length
    assert log.lrs == pytest.approx([0.1, 0.1 * 0.5 ** 4])  # 4 steps of halving within the first epoch


def test_val_split_selects_on_held_out_training_images_not_the_test_set(tmp_path):
    """--val-split N: N training images (the same for every seed) are held out; model_best is the epoch best on
    them, and best_prec1 is that epoch's test accuracy, not the best test accuracy."""
    from utils.data import split_validation
    ds = dataset(100, seed=3)
    train, val = split_validation(ds, 20)
    assert train.labels.numel() == 80 and val.labels.numel() == 20
    again, val2 = split_validation(ds, 20)
    assert torch.equal(val.images, val2.images)  # a fixed permutation: the same held-out images every time
    merged = torch.cat([train.images, val.images])
    assert sorted(map(bytes, merged.flatten(1).numpy())) == sorted(map(bytes, ds.images.flatten(1).numpy()))
    test_accs, val_accs = [0.5, 0.9, 0.6, 0.7], [0.3, 0.2, 0.8, 0.4]
    trainer = Trainer(TinyNet(), DeviceLoader(train, 40, train=True, seed=1, **NORM),
                      DeviceLoader(ds, 50, train=False, **NORM),
                      TrainConfig(epochs=4, lr=0.1, progress=False, tensorboard=False), str(tmp_path),
                      log=lambda *a: None, val_loader=DeviceLoader(val, 50, train=False, **NORM))
    real = trainer.evaluate

    def planted(model=None, loader=None, top5=False):
        loss, _ = real(model, loader)
        accs = val_accs if loader is trainer.val_loader else test_accs
        return (loss, accs[trainer.epoch]) + ((1.0,) if top5 else ())

    trainer.evaluate = planted
    result = trainer.fit()
    assert result["selected_on"] == "val" and result["best_epoch"] == 3
    assert result["best_prec1"] == 0.6 and result["best_val_prec1"] == 0.8  # not the best test accuracy, 0.9
    assert torch.load(tmp_path / Trainer.BEST, weights_only=True)["epoch"] == 3
    assert [h["val_prec1"] for h in trainer.history] == val_accs


def test_val_split_through_a_script(tmp_path):
    data = write_cifar(tmp_path / "data", n_train=96, n_test=32, seed=6)
    summary = stage(L1_KEY, "train", ["--dataset", "cifar10", "--data", data, "--arch", "vgg", "--depth", "11",
                                      "--width", "0.125", "--epochs", "2", "--val-split", "32", "--no-progress",
                                      "--no-tensorboard", "--save", tmp_path / "run"], log=lambda *a: None)
    assert summary["selected_on"] == "val" and summary["args"]["val_split"] == 32
    assert 0 <= summary["best_val_prec1"] <= 1 and summary["best_epoch"] in (1, 2)
    from utils.errors import UserError
    with pytest.raises(UserError, match="--val-split 96"):
        stage(L1_KEY, "train", ["--dataset", "cifar10", "--data", data, "--val-split", "96", "--epochs", "1",
                                "--save", tmp_path / "bad"], log=lambda *a: None)


def test_top5_is_recorded_and_counts_a_label_anywhere_in_the_five_best_logits():
    from utils.engine import evaluate_topk

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x

    logits = torch.tensor([[9., 8, 7, 6, 5, 4, 0], [0, 1, 2, 3, 4, 5, 9], [5, 4, 3, 2, 1, 0, 9]])
    labels = torch.tensor([0, 1, 5])  # top-1; 6th best; last
    loss, top1, top5 = evaluate_topk(Fixed(), [(logits, labels)], "cpu")
    assert top1 == pytest.approx(1 / 3) and top5 == pytest.approx(1 / 3)
    labels = torch.tensor([4, 2, 0])  # 5th best, 5th best, 2nd best: all in the top 5, none top-1
    _, top1, top5 = evaluate_topk(Fixed(), [(logits, labels)], "cpu")
    assert top1 == 0 and top5 == 1


def test_linear_lr_scaling_and_gradual_warm_up():
    """Goyal et al.: batch 1024 at the recipe's lr 0.1 for 256 -> 0.4, reached linearly over the warm-up epochs from
    0.1, per iteration; the milestones' drops apply afterwards."""
    from utils.engine import TrainConfig, epoch_schedule
    from utils.stages import TrainArgs, effective_lr
    args = TrainArgs(lr=0.1, lr_scale="linear", lr_base_batch=256, warmup_epochs=2)
    assert effective_lr(args, 1024) == pytest.approx(0.4) and effective_lr(TrainArgs(lr=0.1), 1024) == 0.1
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.4)
    config = TrainConfig(epochs=6, lr=0.4, milestones=[4], warmup_epochs=2, warmup_start_lr=0.1)
    sched, unit = epoch_schedule(opt, config, steps_per_epoch=5)
    assert unit == "step"
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.25) and lrs[10] == pytest.approx(0.4)
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:11]))  # rising every iteration of the warm-up
    assert lrs[19] == pytest.approx(0.4) and lrs[20] == pytest.approx(0.04)  # epoch 4: x0.1


def test_warmup_from_starts_a_stage_at_that_lr_and_reaches_lr_after_the_warm_up(tmp_path):
    """--warmup-from: epoch 1 starts at it, epoch 2 (after one warm-up epoch) at --lr; without it a warm-up starts at
    --lr (Goyal et al.'s, for --lr-scale linear); without --warmup-epochs it is refused."""
    from utils.checkpoint import load_checkpoint
    from utils.errors import UserError
    data = write_cifar(tmp_path / "data", n_train=64, n_test=32, seed=3)
    tiny = ["--dataset", "cifar10", "--data", data, "--arch", "vgg", "--depth", "11", "--width", "0.125",
            "--batch-size", "16", "--epochs", "3", "--schedule", "--lr", "0.1", "--no-progress", "--no-tensorboard"]
    quiet = dict(log=lambda *a: None)
    stage(L1_KEY, "train", tiny + ["--warmup-epochs", "1", "--warmup-from", "0.01", "--save", tmp_path / "w"], **quiet)
    history = load_checkpoint(str(tmp_path / "w" / "checkpoint.pth.tar"))["history"]
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.1, 0.1])
    stage(L1_KEY, "train", tiny + ["--warmup-epochs", "1", "--lr-scale", "linear", "--lr-base-batch", "4",
                                   "--save", tmp_path / "g"], **quiet)
    history = load_checkpoint(str(tmp_path / "g" / "checkpoint.pth.tar"))["history"]
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.4, 0.4])  # from --lr to --lr x 16/4
    with pytest.raises(UserError, match="--warmup-from"):
        stage(L1_KEY, "train", tiny + ["--warmup-from", "0.01", "--save", tmp_path / "n"], **quiet)
    assert not (tmp_path / "n").exists()
