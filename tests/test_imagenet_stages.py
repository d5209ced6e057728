"""The ImageNet stage scripts on a generated JPEG tree: a run killed after its first epoch and resumed ends
bit-identical to an uninterrupted one (loader workers included), and torchrun with 2 CPU ranks trains with one
writer and reports the exact accuracy of the saved model."""
import json
import os
import subprocess

import pytest
import torch

from conftest import PYTHON, ROOT, write_jpeg_tree
from test_resume import assert_same_run, finish, kill_after_first_epoch, start

TRAIN = ROOT / "imagenet" / "l1-norm-pruning" / "train.py"
NET = ["--arch", "resnet", "--depth", "18", "--width", "0.125", "--input-size", "32"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=4, train_per_class=16, val_per_class=5)


def args(tree, save, *extra):
    return [TRAIN, "--data", tree, *NET, "--epochs", 3, "--batch-size", 16, "--test-batch-size", 8, "--lr", 0.05,
            "--schedule", 2, "--workers", 2, "--no-progress", "--device", "cpu", "--save", save, *extra]


def test_killed_and_resumed_run_is_bit_identical(tree, tmp_path, loader="fast"):
    """One loader is enough here: both draw every augmentation from (seed, epoch, image) alone, which
    test_imagefolder.py checks for each (the same batches with 0 and 2 workers, and on 2 ranks)."""
    ref, got = tmp_path / "ref", tmp_path / "got"
    finish(start(args(tree, ref, "--loader", loader)))
    kill_after_first_epoch(args(tree, got, "--loader", loader), got)
    assert_same_run(ref, got)
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["args"]["loader"] == loader and summary["args"]["input_size"] == 32


def test_torchrun_two_ranks_on_a_jpeg_tree(tree, tmp_path):
    from models import build_from_spec
    from utils.data import dataset_info, load_dataset, make_loader
    from utils.engine import evaluate
    save = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                          "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + \
        [str(a) for a in args(tree, save, "--workers", 1, "--epochs", 2)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert sorted(os.listdir(save)) == ["checkpoint.pth.tar", "model_best.pth.tar", "summary.json", "tensorboard"]
    summary = json.loads((save / "summary.json").read_text())
    assert summary["world_size"] == 2 and proc.stdout.count("baseline done") == 1
    ckpt = torch.load(save / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    _, val = load_dataset("imagenet", tree)  # 20 images: evaluation shards of 10 and 10, batches of 8
    info = dataset_info("imagenet")
    _, acc = evaluate(model, make_loader(val, 8, train=False, info=info, folder=_Size(32)), "cpu")
    assert summary["final_prec1"] == pytest.approx(acc, abs=1e-12)


class _Size:
    def __init__(self, size):
        self.input_size, self.workers, self.loader, self.augment = size, 0, "reference", "reference"
