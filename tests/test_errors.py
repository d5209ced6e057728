"""Bad input through the real scripts: a non-zero exit, exactly one line on stderr naming the flag or the file,
no traceback, nothing written. And divergence: NaN loss stops training, keeping the last good checkpoint."""
import os
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from conftest import L1, PYTHON, ROOT, run_in_process, write_cifar

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL = ["--arch", "vgg", "--depth", "11", "--width", "0.125", "--no-progress", "--no-tensorboard",
         "--train-subset", "128", "--test-subset", "64"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoints and data the bad commands point at (built in-process: no training needed)."""
    from models import create_model, default_cfg, scale_cfg
    from utils.checkpoint import save_checkpoint, spec_fields
    root = tmp_path_factory.mktemp("bad_input")
    data = write_cifar(root / "data", n_train=128, n_test=64, seed=2)
    torch.manual_seed(0)
    resnet = create_model("resnet", 20, cfg=scale_cfg(default_cfg("resnet", 20), 0.25))
    save_checkpoint({**spec_fields(resnet, "cifar10"), "state_dict": resnet.state_dict(), "epoch": 1,
                     "best_prec1": 0.1}, root / "resnet20.pth.tar")
    vgg16 = create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.125))
    save_checkpoint({**spec_fields(vgg16, "cifar10"), "state_dict": vgg16.state_dict(), "epoch": 1,
                     "best_prec1": 0.1}, root / "vgg16.pth.tar")
    # the reference's main.py layout, holding a half-width VGG-16 without its cfg: wrong shapes for vgg-16
    half = create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), 0.5))
    state = {"module." + k: v for k, v in half.state_dict().items()}  # saved from nn.DataParallel
    torch.save({"epoch": 160, "best_prec1": 93.5, "state_dict": state, "optimizer": {}},
               root / "reference_wrong_shape.pth.tar")
    (root / "random.pth.tar").write_bytes(random.Random(0).randbytes(4096))
    blob = (root / "resnet20.pth.tar").read_bytes()
    (root / "truncated.pth.tar").write_bytes(blob[: len(blob) // 2])
    (root / "regular_file").write_text("not a folder\n")
    wl = create_model("vgg11_bn", 11, cfg=scale_cfg(default_cfg("vgg11_bn", 11), 0.125))
    save_checkpoint({**spec_fields(wl, "cifar10"), "state_dict": wl.state_dict(), "epoch": 1, "best_prec1": 0.1},
                    root / "vgg11_bn.pth.tar")
    (root / "notes.txt").write_text("epoch 1: 0.93\n" * 20)  # a text file given as a checkpoint
    save_checkpoint({**spec_fields(vgg16, "cifar10"), "state_dict": vgg16.state_dict(), "epoch": 1,
                     "best_prec1": 0.1}, root / "flipped.pth.tar")
    flip_tensor_bytes(root / "flipped.pth.tar")
    return {"root": root, "data": data}


def flip_tensor_bytes(path, n=4096):
    """Invert ``n`` bytes in the middle of the largest tensor record of a torch zip checkpoint: the file still
    loads (torch.load checks no CRC) and only the stored checksum can tell."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray(Path(path).read_bytes())
    off = info.header_offset  # local file header: 30 bytes, then the name and the extra field
    start = off + 30 + int.from_bytes(raw[off + 26:off + 28], "little") + \
        int.from_bytes(raw[off + 28:off + 30], "little") + (info.file_size - n) // 2
    raw[start:start + n] = bytes(b ^ 0xFF for b in raw[start:start + n])
    Path(path).write_bytes(bytes(raw))


def cases(f):
    root, data = f["root"], f["data"]
    train = [L1 / "train.py", "--dataset", "cifar10", "--data", data, *SMALL, "--epochs", "1"]
    prune = [L1 / "prune.py", "--dataset", "cifar10", "--data", data]
    ft = [L1 / "finetune.py", "--dataset", "cifar10", "--data", data, "--epochs", "1", "--no-progress"]
    s = lambda name: root / "out" / name  # noqa: E731  the --save folder of each case
    return {
        # name: (argv, what the one line must name, the --save folder that must stay absent or empty)
        "missing_dataset": ([L1 / "train.py", "--dataset", "cifar10", "--data", "/nonexistent/cifar", *SMALL,
                             "--save", s("missing_dataset")], "--data", s("missing_dataset")),
        "unknown_arch": (train + ["--arch", "alexnet", "--save", s("unknown_arch")], "--arch", s("unknown_arch")),
        "unknown_depth": (train + ["--arch", "resnet", "--depth", "21", "--save", s("unknown_depth")], "--depth",
                          s("unknown_depth")),
        "prune_other_arch": (prune + ["--model", root / "resnet20.pth.tar", "--arch", "vgg", "--depth", "16",
                                      "--save", s("prune_other_arch")], "resnet20.pth.tar", s("prune_other_arch")),
        "finetune_other_arch": (ft + ["--refine", root / "resnet20.pth.tar", "--arch", "vgg",
                                      "--save", s("finetune_other_arch")], "resnet20.pth.tar",
                                s("finetune_other_arch")),
        "prune_reference_wrong_shape": (prune + ["--model", root / "reference_wrong_shape.pth.tar", "--arch", "vgg",
                                                 "--depth", "16", "--save", s("prune_ref")],
                                        "reference_wrong_shape.pth.tar", s("prune_ref")),
        "finetune_reference_wrong_shape": (ft + ["--refine", root / "reference_wrong_shape.pth.tar", "--arch", "vgg",
                                                 "--depth", "16", "--save", s("ft_ref")],
                                           "reference_wrong_shape.pth.tar", s("ft_ref")),
        "variant_not_a_or_b": (prune + ["--model", root / "vgg16.pth.tar", "-v", "C", "--save", s("variant")], "-v",
                               s("variant")),
        "corrupt_random_bytes": (prune + ["--model", root / "random.pth.tar", "--save", s("random")],
                                 "random.pth.tar", s("random")),
        "corrupt_truncated_prune": (prune + ["--model", root / "truncated.pth.tar", "--save", s("trunc_p")],
                                    "truncated.pth.tar", s("trunc_p")),
        "corrupt_truncated_finetune": (ft + ["--refine", root / "truncated.pth.tar", "--save", s("trunc_f")],
                                       "truncated.pth.tar", s("trunc_f")),
        "corrupt_truncated_resume": (train + ["--resume", root / "truncated.pth.tar", "--save", s("trunc_r")],
                                     "truncated.pth.tar", s("trunc_r")),
        "resume_not_a_training_checkpoint": (train + ["--depth", "16", "--resume", root / "vgg16.pth.tar",
                                                      "--save", s("resume_plain")], "vgg16.pth.tar",
                                             s("resume_plain")),
        "unwritable_save_train": (train + ["--save", root / "regular_file" / "run"], "--save",
                                  root / "regular_file" / "run"),
        "unwritable_save_prune": (prune + ["--model", root / "vgg16.pth.tar", "--save", root / "regular_file" / "p"],
                                  "--save", root / "regular_file" / "p"),
        "epochs_zero": (train + ["--epochs", "0", "--save", s("epochs_zero")], "--epochs", s("epochs_zero")),
        "batch_size_zero": (train + ["--batch-size", "0", "--save", s("batch_zero")], "--batch-size",
                            s("batch_zero")),
        "batch_size_one": (train + ["--batch-size", "1", "--save", s("batch_one")], "--batch-size", s("batch_one")),
        "train_subset_negative": (train + ["--train-subset", "-5", "--save", s("subset_neg")], "--train-subset",
                                  s("subset_neg")),
        "lr_nan": (train + ["--lr", "nan", "--save", s("lr_nan")], "--lr", s("lr_nan")),
        "lr_inf": (train + ["--lr", "inf", "--save", s("lr_inf")], "--lr", s("lr_inf")),
        "momentum_nan": (train + ["--momentum", "nan", "--save", s("mom_nan")], "--momentum", s("mom_nan")),
        "text_file_as_checkpoint": (prune + ["--model", root / "notes.txt", "--save", s("text")], "notes.txt",
                                    s("text")),
        "flipped_bytes_checkpoint": (prune + ["--model", root / "flipped.pth.tar", "--save", s("flipped")],
                                     "flipped.pth.tar", s("flipped")),
        "flipped_bytes_finetune": (ft + ["--refine", root / "flipped.pth.tar", "--save", s("flipped_ft")],
                                   "flipped.pth.tar", s("flipped_ft")),
        "weight_level_empty_layers": ([ROOT / "cifar" / "weight-level" / "prune.py", "--dataset", "cifar10",
                                       "--data", data, "--model", root / "vgg11_bn.pth.tar", "--percent", "0.9999",
                                       "--save", s("wl_empty")], "--percent",
                                      s("wl_empty")),
    }


def run_script(argv):
    return subprocess.run([PYTHON] + [str(a) for a in argv], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)


# a few cases also as separate processes: the one-line contract must hold for the interpreter as users start it
IN_A_PROCESS = ("missing_dataset", "corrupt_random_bytes", "text_file_as_checkpoint", "unwritable_save_train")


@pytest.fixture(scope="module")
def results(files, one_thread):
    """Every bad command, run as the script would run (in this process: no interpreter start-up per case), and
    IN_A_PROCESS also as real processes, in parallel."""
    table = cases(files)
    jobs = {name: argv for name, (argv, _, _) in table.items()}
    nan_save = files["root"] / "out" / "nan"
    jobs["nan_lr"] = [L1 / "train.py", "--dataset", "cifar10", "--data", files["data"], *SMALL, "--epochs", "2",
                      "--lr", "1e30", "--save", nan_save]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_script, jobs[name]) for name in IN_A_PROCESS}
        out = {name: run_in_process(argv[0], argv[1:]) for name, argv in jobs.items()}
        out.update({f"{name} (process)": f.result() for name, f in futures.items()})
    return out


def error_lines(stderr):
    """stderr without the one-line warnings the fixture's non-official checksums cause."""
    return [line for line in stderr.splitlines() if line.strip() and ": warning: " not in line]


CASE_NAMES = ["missing_dataset", "unknown_arch", "unknown_depth", "prune_other_arch", "finetune_other_arch",
              "prune_reference_wrong_shape", "finetune_reference_wrong_shape", "variant_not_a_or_b",
              "corrupt_random_bytes", "corrupt_truncated_prune", "corrupt_truncated_finetune",
              "corrupt_truncated_resume", "resume_not_a_training_checkpoint", "unwritable_save_train",
              "unwritable_save_prune", "epochs_zero", "batch_size_zero", "batch_size_one", "train_subset_negative",
              "lr_nan", "lr_inf", "momentum_nan", "text_file_as_checkpoint", "flipped_bytes_checkpoint",
              "flipped_bytes_finetune", "weight_level_empty_layers"]


def test_case_table_is_complete(files):
    assert sorted(cases(files)) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES + [f"{n} (process)" for n in IN_A_PROCESS])
def test_bad_input_is_one_line_and_writes_nothing(name, files, results):
    argv, named, save = cases(files)[name.replace(" (process)", "")]
    proc = results[name]
    assert proc.returncode != 0, f"{name}: exit 0\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, f"{name}: expected one line on stderr, got:\n{proc.stderr}"
    assert "error" in lines[0] and named in lines[0], f"{name}: {lines[0]!r} does not name {named!r}"
    if name.startswith("flipped"):
        assert "corrupt" in lines[0], lines[0]
    if name == "text_file_as_checkpoint":
        assert "text file" in lines[0], lines[0]
    assert not os.path.exists(save) or os.listdir(save) == [], f"{name}: wrote {os.listdir(save)}"
    written = [p for p in Path(files["root"]).rglob("*") if p.name in ("pruned.pth.tar", "prune.json",
                                                                       "checkpoint.pth.tar", "summary.json")]
    assert not written, written


def test_absurd_lr_stops_with_one_line_about_the_loss(files, results):
    proc = results["nan_lr"]
    save = files["root"] / "out" / "nan"
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "loss" in lines[0], proc.stderr
    diverged = int(re.search(r"epoch (\d+)", lines[0]).group(1))
    ckpt_path = save / "checkpoint.pth.tar"
    if ckpt_path.exists():  # only epochs before the divergence may be saved
        assert torch.load(ckpt_path, weights_only=True)["epoch"] < diverged
    assert not (save / "summary.json").exists()
    assert not [p for p in save.rglob("*.tmp")]


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    from models import create_model, default_cfg, scale_cfg
    from utils.data import DeviceLoader, TensorDataset
    from utils.engine import Hook, TrainConfig, Trainer
    from utils.errors import TrainingDiverged

    class NaNFrom(Hook):
        """The extra loss is NaN from epoch ``start`` (0-based) on."""

        def __init__(self, start):
            self.start = start

        def extra_loss(self, trainer, inputs, outputs, targets):
            return torch.tensor(float("nan")) if trainer.epoch >= self.start else None

    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8),
                       torch.randint(0, 10, (64,), generator=g))
    norm = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    torch.manual_seed(0)
    model = create_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.125))
    trainer = Trainer(model, DeviceLoader(ds, 32, train=True, **norm), DeviceLoader(ds, 64, train=False, **norm),
                      TrainConfig(epochs=4, lr=0.05, progress=False, tensorboard=False), str(tmp_path),
                      hooks=[NaNFrom(1)], log=lambda *a: None)
    with pytest.raises(TrainingDiverged, match=r"loss became nan in epoch 2"):
        trainer.fit()
    ckpt = torch.load(tmp_path / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and len(ckpt["history"]) == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    fresh = create_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.125))
    fresh.load_state_dict(ckpt["state_dict"])
    assert not list(tmp_path.glob("*.tmp"))
