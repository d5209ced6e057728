"""Kill-and-resume: a run SIGKILLed at random points and continued with --resume auto must end bit-identical
to an uninterrupted run (model, optimizer, scheduler, best accuracy), for baseline training, fine-tuning and
scratch-B."""
import glob
import json
import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from conftest import L1, PYTHON, ROOT, write_cifar

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TRAIN = ["--dataset", "cifar10", "--arch", "vgg", "--depth", "11", "--width", "0.125", "--epochs", "5",
         "--batch-size", "64", "--no-progress", "--no-tensorboard", "--seed", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("resume_data"), n_train=384, n_test=64, seed=5)


def start(args):
    return subprocess.Popen([PYTHON] + [str(a) for a in args], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-2000:]}"
    return out


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a, b, where="ckpt"):
    """Recursive exact equality: tensors with torch.equal, everything else with ==."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(ref_dir, got_dir):
    ref, got = load(Path(ref_dir) / "checkpoint.pth.tar"), load(Path(got_dir) / "checkpoint.pth.tar")
    assert got["epoch"] == ref["epoch"]
    assert set(got["state_dict"]) == set(ref["state_dict"])
    for k, v in ref["state_dict"].items():
        assert torch.equal(v, got["state_dict"][k]), f"state_dict[{k}] differs after kill/resume"
    assert_same(ref["optimizer"], got["optimizer"], "optimizer")
    assert_same(ref["scheduler"], got["scheduler"], "scheduler")
    assert got["best_prec1"] == ref["best_prec1"]
    assert got["last_prec1"] == ref["last_prec1"]
    assert [h["prec1"] for h in got["history"]] == [h["prec1"] for h in ref["history"]]
    assert [h["train_loss"] for h in got["history"]] == [h["train_loss"] for h in ref["history"]]
    best_ref, best_got = load(Path(ref_dir) / "model_best.pth.tar"), load(Path(got_dir) / "model_best.pth.tar")
    assert best_got["epoch"] == best_ref["epoch"]
    assert_same(best_ref["state_dict"], best_got["state_dict"], "model_best state_dict")
    # nothing half-written left behind, and a summary that agrees
    leftovers = [p for p in glob.glob(os.path.join(got_dir, "**", "*"), recursive=True)
                 if p.endswith(".tmp") or os.path.basename(p).startswith(".write-test.")]
    assert not leftovers, f"stale temporary files: {leftovers}"
    summary = json.loads((Path(got_dir) / "summary.json").read_text())
    ref_summary = json.loads((Path(ref_dir) / "summary.json").read_text())
    for key in ("final_prec1", "best_prec1", "epochs", "params", "flops"):
        assert summary[key] == ref_summary[key], key


def plant_torn_write(save_dir, rng):
    """What a SIGKILL inside save_checkpoint/save_json leaves: a partial mkstemp file next to the target."""
    if not os.path.isdir(save_dir):
        return
    name = rng.choice(["checkpoint.pth.tar", "model_best.pth.tar", "summary.json"])
    suffix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))
    target = Path(save_dir) / "checkpoint.pth.tar"
    blob = target.read_bytes()[: rng.randint(1, 4000)] if target.exists() else b"\x80\x02partial"
    (Path(save_dir) / f"{name}.{suffix}.tmp").write_bytes(blob)


def checkpoint_epoch(save_dir):
    path = Path(save_dir) / "checkpoint.pth.tar"
    return load(path)["epoch"] if path.exists() else 0


def test_train_killed_at_random_points_resumes_bit_identical(data, tmp_path):
    ref_dir, got_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    ref = start([L1 / "train.py", *TRAIN, "--data", data, "--save", ref_dir])

    rng = random.Random(20240611)
    kills, resumed_from, attempts, epoch_time = [], [], 0, 0.3
    while True:
        attempts += 1
        assert attempts <= 6, "did not finish within 6 attempts"
        proc = start([L1 / "train.py", *TRAIN, "--data", data, "--save", got_dir, "--resume", "auto"])
        if len(kills) < 3:
            # Wait until training is under way (the header is printed right before the first epoch), let 0 or
            # 1 more epochs finish, then kill at a seeded random moment within about an epoch: mid-epoch,
            # during evaluation, or while checkpoint/model_best/summary are being written.
            for line in proc.stdout:
                if line.startswith("baseline:"):
                    break
            for _ in range(rng.randint(0, 1)):
                found = re.search(r"\(([0-9.]+)s\)$", proc.stdout.readline().strip())
                epoch_time = float(found.group(1)) if found else epoch_time
            time.sleep(rng.uniform(0.0, 1.3 * max(epoch_time, 0.05)))
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        if proc.returncode == -signal.SIGKILL:
            kills.append(checkpoint_epoch(got_dir))
            if len(kills) == 1 or rng.random() < 0.5:
                plant_torn_write(got_dir, rng)
            continue
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-2000:]}"
        resumed_from.append("resumed from" in out)
        break

    finish(ref)
    assert len(kills) >= 2, f"only {len(kills)} kills landed before the run finished ({kills})"
    assert any(e > 0 for e in kills), f"no kill landed after a checkpoint was written (epochs at kill: {kills})"
    assert any(e < 5 for e in kills), f"every kill landed after the last epoch ({kills})"
    assert resumed_from == [True]
    assert_same_run(ref_dir, got_dir)


def kill_after_first_epoch(args, save_dir, timeout=300):
    """Start, SIGKILL as soon as the first checkpoint exists, then resume with --resume auto to the end."""
    proc = start(args)
    path = Path(save_dir) / "checkpoint.pth.tar"
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before it could be killed:\n{out}\n{err}"
    assert load(path)["epoch"] >= 1
    out = finish(start(args + ["--resume", "auto"]))
    assert "resumed from" in out
    return out


@pytest.fixture(scope="module")
def pruned(data, tmp_path_factory):
    """A VGG-16 (1/8 width) checkpoint pruned by prune.py's code path (in-process; training not needed)."""
    from models import create_model, default_cfg, scale_cfg
    from conftest import L1_KEY, stage
    from utils.checkpoint import save_checkpoint, spec_fields
    root = tmp_path_factory.mktemp("pruned")
    torch.manual_seed(0)
    model = create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.125))
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 1,
                     "best_prec1": 0.0}, root / "base.pth.tar")
    stage(L1_KEY, "prune", ["--model", str(root / "base.pth.tar"), "--save", str(root / "p"), "--dataset", "cifar10",
                            "--data", data], log=lambda *a: None)
    return root / "p" / "pruned.pth.tar"


def test_finetune_and_scratch_b_resume_bit_identical(data, pruned, tmp_path):
    common = ["--dataset", "cifar10", "--data", data, "--no-progress", "--no-tensorboard", "--batch-size", "64"]
    ft = [L1 / "finetune.py", "--refine", pruned, "--epochs", "2", *common]
    sc = [L1 / "scratch.py", "--scratch", pruned, "--budget", "B", "--epochs", "2", *common]
    jobs = {
        "ft_ref": lambda: finish(start(ft + ["--save", tmp_path / "ft_ref"])),
        "ft_kill": lambda: kill_after_first_epoch(ft + ["--save", tmp_path / "ft_kill"], tmp_path / "ft_kill"),
        "sc_ref": lambda: finish(start(sc + ["--save", tmp_path / "sc_ref"])),
        "sc_kill": lambda: kill_after_first_epoch(sc + ["--save", tmp_path / "sc_kill"], tmp_path / "sc_kill"),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(f) for k, f in jobs.items()}
        for f in futures.values():
            f.result()
    assert_same_run(tmp_path / "ft_ref", tmp_path / "ft_kill")
    assert_same_run(tmp_path / "sc_ref", tmp_path / "sc_kill")
    summary = json.loads((tmp_path / "sc_kill" / "summary.json").read_text())
    assert summary["stage"] == "scratch-B" and summary["base_epochs"] == 2
    assert summary["epochs"] == int(2 * summary["flops_ratio"]) > 2
    assert load(tmp_path / "sc_kill" / "checkpoint.pth.tar")["epoch"] == summary["epochs"]
