"""What must never give a silently wrong result: a resume with other arguments, two processes on one folder, a
prune over a finished one, a damaged checkpoint, a scratch-B budget without its base or far above the usual, a
failed sweep that blocks its corrected rerun; and what must end in one line rather than a traceback: SIGTERM, a
full disk. Plus the files' permissions and every script's --help / run script's --dry-run."""
import errno
import glob
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from conftest import L1, L1_KEY, PYTHON, ROOT, stage, write_cifar

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TINY = ["--arch", "vgg", "--depth", "11", "--width", "0.125", "--no-progress", "--no-tensorboard",
        "--train-subset", "64", "--test-subset", "32", "--seed", "2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("safety_data"), n_train=64, n_test=32, seed=8)


def quiet(*args, **kwargs):
    pass


def train(data, save, *extra):
    return stage(L1_KEY, "train", ["--dataset", "cifar10", "--data", data, *TINY, "--epochs", "1", "--save", str(save),
                                *map(str, extra)])


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    save = tmp_path_factory.mktemp("safety_run") / "base"
    train(data, save)
    return save


# ------------------------------------------------------------------------------------------ resume identity
def test_resume_with_other_arguments_is_refused_naming_the_first_flag(data, trained, tmp_path):
    from utils.errors import UserError
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    summary = (run / "summary.json").read_bytes()
    for flags, named in ((["--lr", "0.001"], "--lr"), (["--epochs", "2"], "--epochs"),
                         (["--schedule", "0.5"], "--schedule"), (["--seed", "3"], "--seed")):
        with pytest.raises(UserError, match=f"recorded with {named} .*this command gives {named} "):
            train(data, run, "--resume", "auto", *flags)
        assert (run / "summary.json").read_bytes() == summary  # not rewritten with the new arguments
    # where things are and how they are shown may change
    again = train(data, run, "--resume", "auto", "--device", "cpu", "--test-batch-size", "7", "--progress")
    assert again["epochs"] == 1


# ------------------------------------------------------------------------------------------- one writer
def test_a_second_process_on_the_same_folder_stops_with_one_line(data, tmp_path):
    from utils.checkpoint import LOCK_NAME, run_lock
    from utils.errors import UserError
    save = tmp_path / "run"
    with run_lock(str(save)):
        with pytest.raises(UserError, match=f"another process \\(pid {os.getpid()}\\)"):
            with run_lock(str(save)):
                pass
        proc = subprocess.run([PYTHON, L1 / "train.py", "--dataset", "cifar10", "--data", data, *TINY, "--epochs", "1",
                               "--save", save], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if ": warning: " not in line]
        assert len(lines) == 1 and "--save" in lines[0] and str(os.getpid()) in lines[0], proc.stderr
        assert os.listdir(save) == [LOCK_NAME]  # the refused process wrote nothing
    assert os.listdir(save) == []  # the lock goes with its holder
    with run_lock(str(save)):  # and can be taken again
        pass


# ------------------------------------------------------------------------------------------ prune once
def vgg16_checkpoint(path):
    """An untrained eighth-width VGG-16 in our checkpoint format (L1-norm's VGG rule is for depth 16)."""
    from models import create_model, default_cfg, scale_cfg
    from utils.checkpoint import save_checkpoint, spec_fields
    vgg16 = create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.125))
    save_checkpoint({**spec_fields(vgg16, "cifar10"), "state_dict": vgg16.state_dict()}, path)
    return str(path)


def test_prune_refuses_a_folder_that_holds_a_pruned_model(data, tmp_path):
    from utils.errors import UserError
    out = tmp_path / "pruned"
    argv = ["--model", vgg16_checkpoint(tmp_path / "v16.pth.tar"), "--dataset", "cifar10", "--data", data,
            "--save", str(out)]
    stage(L1_KEY, "prune", argv, log=quiet)
    blob = (out / "pruned.pth.tar").read_bytes()
    with pytest.raises(UserError, match="--save .* already holds a pruned model"):
        stage(L1_KEY, "prune", argv, log=quiet)
    assert (out / "pruned.pth.tar").read_bytes() == blob
    # a prune killed after prune.json, before pruned.pth.tar (its completion mark), is simply redone
    (out / "pruned.pth.tar").unlink()
    stage(L1_KEY, "prune", argv, log=quiet)
    assert (out / "pruned.pth.tar").exists()


# -------------------------------------------------------------------------------------------- checksums
def test_a_checkpoint_damaged_after_writing_is_named_as_corrupt(tmp_path):
    from models import create_model
    from test_errors import flip_tensor_bytes
    from utils.checkpoint import load_checkpoint, save_checkpoint, spec_fields
    from utils.errors import UserError
    model = create_model("resnet", 20)
    path = tmp_path / "ok.pth.tar"
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 3}, path)
    ckpt = load_checkpoint(str(path))
    assert "checksum" not in ckpt and ckpt["epoch"] == 3  # verified, then dropped
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in model.state_dict().items())
    shutil.copy(path, tmp_path / "bad.pth.tar")
    flip_tensor_bytes(tmp_path / "bad.pth.tar")
    torch.load(tmp_path / "bad.pth.tar", weights_only=True)  # torch itself notices nothing
    with pytest.raises(UserError, match=r"--refine .*bad\.pth\.tar: corrupt checkpoint"):
        load_checkpoint(str(tmp_path / "bad.pth.tar"), "--refine")
    # a file written without a checksum (the reference's) still loads
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, tmp_path / "ref.pth.tar")
    assert load_checkpoint(str(tmp_path / "ref.pth.tar"))["epoch"] == 1


def test_written_files_are_readable_like_any_other_file(tmp_path):
    from utils.checkpoint import save_checkpoint, save_json
    save_checkpoint({"state_dict": {}}, tmp_path / "a.pth.tar")
    save_json({"a": 1}, tmp_path / "a.json")
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.pth.tar", "a.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name


# ------------------------------------------------------------------------------------------- scratch-B
def test_scratch_b_base_comes_from_the_checkpoint_not_a_default_network(tmp_path):
    """A width-0.25 VGG checkpoint that is not prune.py's output: its own spec is the base (ratio 1, with a
    warning), never the default-width network (which would give 15x the epochs)."""
    from models import create_model, default_cfg, scale_cfg
    from utils.stages import scratch_budget
    from utils.data import dataset_info
    info = dataset_info("cifar10")
    model = create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.25))
    ours = {"model": model.spec.to_dict(), "state_dict": model.state_dict()}
    with pytest.warns(UserWarning, match="no record of an unpruned base network"):
        epochs, record = scratch_budget(ours, model, info, 160, path="x.pth.tar")
    assert epochs == 160 and record["flops_ratio"] == 1 and record["flops_base_from"] == "own spec"
    # the reference's pruned.pth.tar has no spec at all: its base is the default network, as main_B.py builds it
    epochs, record = scratch_budget({"cfg": model.cfg, "state_dict": {}}, model, info, 160)
    assert record["flops_base_from"] == "default cfg" and epochs > 160 * 10


def test_scratch_b_far_above_the_cap_warns_and_says_so(data, tmp_path):
    from utils.errors import UserError
    stage(L1_KEY, "prune", ["--model", vgg16_checkpoint(tmp_path / "v16.pth.tar"), "--dataset", "cifar10", "--data",
                            data, "--save", str(tmp_path / "p")], log=quiet)
    argv = ["--scratch", str(tmp_path / "p" / "pruned.pth.tar"), "--budget", "B", "--dataset", "cifar10", "--data",
            data, "--train-subset", "64", "--test-subset", "32", "--epochs", "2", "--no-progress", "--no-tensorboard"]
    with pytest.raises(UserError, match="--budget-cap 0"):
        stage(L1_KEY, "scratch", argv + ["--budget-cap", "0", "--save", str(tmp_path / "s0")])
    with pytest.warns(UserWarning, match="above --budget-cap 1.2"):
        summary = stage(L1_KEY, "scratch", argv + ["--budget-cap", "1.2", "--save", str(tmp_path / "s")])
    assert summary["budget_over_cap"] is True and summary["budget_cap"] == 1.2
    assert summary["epochs"] == int(2 * summary["flops_ratio"]) > 2 * 1.2  # trained as computed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = stage(L1_KEY, "scratch", argv + ["--save", str(tmp_path / "s10")])
    assert summary["budget_over_cap"] is False  # under the default cap (10): no warning
    assert not [w for w in caught if "budget" in str(w.message)]


# ------------------------------------------------------------------------------------- failed sweep
def test_a_sweep_that_fails_leaves_nothing_that_blocks_the_corrected_command(data, tmp_path):
    iterate = runpy.run_path(str(ROOT / "lottery_ticket" / "iterate.py"))
    from utils.errors import UserError
    save = tmp_path / "sweep"
    common = ["--arch", "vgg11_bn", "--depth", "11", "--width", "0.125", "--dataset", "cifar10", "--rounds", "1",
              "--epochs", "1", "--train-subset", "64", "--test-subset", "32", "--save", str(save)]
    with pytest.raises(UserError, match="--data"):
        iterate["sweep"](common + ["--data", str(tmp_path / "nowhere")], log=quiet)
    assert not (save / "sweep.json").exists()
    # a failure after the settings were recorded (the first training refuses its batch size) takes them back
    with pytest.raises(UserError, match="--batch-size"):
        iterate["sweep"](common + ["--data", data, "--", "--batch-size", "1"], log=quiet)
    assert not (save / "sweep.json").exists() and not glob.glob(str(save / "**" / "*"), recursive=True)
    # the corrected command (other settings) is not refused as "holds a sweep run with ..."
    rows = iterate["sweep"](common + ["--data", data, "--lr", "0.05", "--", "--no-progress", "--no-tensorboard"],
                            log=quiet)
    assert [r["round"] for r in rows] == [0, 1]


# ------------------------------------------------------------------------------ one line, not a traceback
def test_sigterm_ends_with_one_line_and_leaves_a_resumable_run(data, tmp_path):
    save = tmp_path / "run"
    proc = subprocess.Popen([PYTHON, L1 / "train.py", "--dataset", "cifar10", "--data", data, *TINY,
                             "--epochs", "50", "--save", save], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (save / "checkpoint.pth.tar").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = [line for line in err.splitlines() if ": warning: " not in line and line.strip()]
    assert len(lines) == 1 and "terminated" in lines[0] and "Traceback" not in err, err
    left = os.listdir(save)
    assert not [n for n in left if n.endswith(".tmp") or n == ".lock"], left
    assert torch.load(save / "checkpoint.pth.tar", weights_only=True)["epoch"] >= 1


def test_a_failed_write_is_one_error_naming_the_file_and_leaves_no_temporary(tmp_path):
    from utils.checkpoint import _atomic_write, save_checkpoint
    from utils.errors import UserError

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(UserError, match=r"out\.json: cannot write \(No space left on device\)"):
        _atomic_write(str(tmp_path / "out.json"), full)
    assert os.listdir(tmp_path) == []
    with pytest.raises(UserError, match="cannot write"):
        save_checkpoint({"state_dict": {}}, str(tmp_path / "missing_folder" / "c.pth.tar"))


def _can_mount_tmpfs():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root and unshare to mount a small tmpfs")
def test_training_onto_a_full_disk_is_one_line(data, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    cmd = " ".join(["mount -t tmpfs -o size=400k none", str(disk), "&&", "exec", PYTHON, str(L1 / "train.py"),
                    "--dataset cifar10 --data", data, *TINY, "--arch vgg --depth 16 --width 0.25 --epochs 1",
                    "--save", str(disk / "run")])
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in proc.stderr.splitlines() if ": warning: " not in line and line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and "No space left on device" in lines[0] and ".pth.tar: cannot write" in lines[0], lines


# ------------------------------------------------------------------------------- every script's help
SCRIPTS = sorted(str(p.relative_to(ROOT)) for pattern in ("cifar/*/*.py", "cifar/*.py", "lottery_ticket/*.py",
                                                          "lottery_ticket/*/*.py", "bench/*.py")
                 for p in ROOT.glob(pattern)
                 if "__main__" in p.read_text() and p.name != "method.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(ROOT / script), run_name="__main__")
    finally:
        signal.signal(signal.SIGTERM, handler)
    out = capsys.readouterr().out
    assert done.value.code in (0, None), script
    assert out.startswith("usage:") and len(out.splitlines()) > 5, out[:500]


RUN_SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/**/run_*.sh"))


@pytest.mark.parametrize("how", ["flag", "env"])
def test_every_run_script_has_a_dry_run_that_runs_nothing(how, tmp_path):
    assert len(RUN_SCRIPTS) >= 15
    for script in RUN_SCRIPTS:
        save = tmp_path / script.replace("/", "_")
        # the ImageNet scripts need a data tree and pretrained weights named (a dry run does not read them)
        needed = ["--data", str(tmp_path / "imagenet"), "--pretrained", str(tmp_path / "w.pth")] \
            if script.startswith("imagenet/") else []
        argv = ["bash", script, "--save", str(save)] + needed + (["--dry-run"] if how == "flag" else [])
        env = {**ENV, "PYTHON": "false"} if how == "flag" else {**ENV, "DRY": "1", "PYTHON": "false"}
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (script, proc.stderr)
        assert "false " in proc.stdout and ".py" in proc.stdout, (script, proc.stdout)
        assert not save.exists(), script


@pytest.mark.parametrize("words,named", [(["--save"], "--save needs a value"), (["--seeds"], "--seeds needs a value"),
                                         (["--seeds", "1 x"], "--seeds takes whole numbers"),
                                         (["--bogus"], "unknown option --bogus")])
def test_every_run_script_refuses_a_bad_shared_option_in_one_line(words, named):
    """The shared parser (utils/experiment_lib.sh): a flag with its value missing, bad seeds, an unknown flag."""
    for script in RUN_SCRIPTS:
        proc = subprocess.run(["bash", script, "--dry-run", *words], cwd=ROOT, env={**ENV, "PYTHON": "false"},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == "", (script, proc.stdout, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1 and named in proc.stderr, (script, proc.stderr)
        assert proc.stderr.split(":")[1].strip() == "error", (script, proc.stderr)


def test_shared_parser_leaves_a_scripts_own_options_to_it(tmp_path):
    """A method's option is parsed by its method_option before the shared ones; --dataset only where the script
    has one; what follows "--" reaches every stage."""
    slim = subprocess.run(["bash", "cifar/network-slimming/run_vgg19.sh", "cifar100", "--percent", "0.3", "--s", "1e-3",
                           "--save", str(tmp_path / "s"), "--dry-run", "--", "--device", "cuda"], cwd=ROOT,
                          env={**ENV, "PYTHON": "false"}, capture_output=True, text=True, timeout=60)
    assert slim.returncode == 0, slim.stderr
    assert "--percent 0.3" in slim.stdout and "--s 1e-3" in slim.stdout and "--dataset cifar100" in slim.stdout
    assert all(line.endswith("--device cuda") for line in slim.stdout.splitlines() if "train.py" in line)
    wl = subprocess.run(["bash", "imagenet/weight-level/run_resnet50.sh", "--dataset", "cifar10", "--dry-run"], cwd=ROOT,
                        env={**ENV, "PYTHON": "false"}, capture_output=True, text=True, timeout=60)
    assert wl.returncode == 2 and "unknown option --dataset" in wl.stderr, wl.stderr
