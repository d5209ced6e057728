"""torchrun with 2 CPU ranks (gloo): one writer, one log, and a reported accuracy that is the exact accuracy of
the saved model on the whole (odd-sized) test set; DeviceLoader shards partition every global batch."""
import json
import os
import subprocess

import pytest
import torch

from conftest import L1, PYTHON, ROOT, write_cifar

N_TRAIN, N_TEST = 256, 203  # 203: uneven evaluation shards (102 + 101)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("dist_data"), n_train=N_TRAIN, n_test=N_TEST, seed=11)


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory):
    save = tmp_path_factory.mktemp("ddp") / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                          "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(L1 / "train.py"), "--dataset", "cifar10", "--data", data, "--arch", "vgg", "--depth", "11",
           "--width", "0.125", "--epochs", "2", "--batch-size", "64", "--test-batch-size", "50",
           "--no-progress", "--device", "cpu", "--save", str(save)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return proc, save


def test_torchrun_two_ranks_exit_zero_and_rank0_writes_once(ddp_run):
    proc, save = ddp_run
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    names = sorted(os.listdir(save))
    assert names == ["checkpoint.pth.tar", "model_best.pth.tar", "summary.json", "tensorboard"], names
    events = os.listdir(save / "tensorboard")
    assert len(events) == 1 and events[0].startswith("events.out.tfevents"), events
    summary = json.loads((save / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    # every line once: rank 1 prints nothing of its own (counted as substrings: the ranks' lines can interleave)
    out = proc.stdout
    assert out.count("baseline: ") == 1, out
    assert "2 process(es)" in out
    for k in (1, 2):
        assert out.count(f"epoch {k:>4}/2") == 1, out
    assert out.count("baseline done") == 1, out
    ckpt = torch.load(save / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["state_dict"])


def test_reported_accuracy_is_exact_on_the_saved_model(ddp_run, data):
    from models import build_from_spec
    from utils.data import DeviceLoader, dataset_info, load_dataset
    from utils.engine import evaluate
    proc, save = ddp_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((save / "summary.json").read_text())
    ckpt = torch.load(save / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    info = dataset_info("cifar10")
    _, test = load_dataset("cifar10", data, download=False)
    assert test.labels.numel() == N_TEST
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks ran
    try:
        loader = DeviceLoader(test, 50, train=False, mean=info.mean, std=info.std)
        loss, acc = evaluate(model, loader, "cpu")
    finally:
        torch.set_num_threads(threads)
    correct = round(acc * N_TEST)
    assert summary["final_prec1"] == ckpt["last_prec1"] == correct / N_TEST == acc, \
        (summary["final_prec1"], acc)
    assert ckpt["history"][-1]["test_loss"] == pytest.approx(loss, rel=1e-4)
    best = torch.load(save / "model_best.pth.tar", map_location="cpu", weights_only=True)
    assert summary["best_prec1"] == best["best_prec1"] == max(h["prec1"] for h in ckpt["history"])


def _loader(ds, train, rank, world, batch=64):
    from utils.data import DeviceLoader
    return DeviceLoader(ds, batch, train=train, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), seed=7,
                        rank=rank, world_size=world)


@pytest.mark.parametrize("n", [203, 256])
def test_deviceloader_rank_shards_partition_each_global_batch(n):
    from utils.data import TensorDataset
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                       torch.randint(0, 10, (n,), generator=g))
    single, r0, r1 = _loader(ds, True, 0, 1), _loader(ds, True, 0, 2), _loader(ds, True, 1, 2)
    assert len(r0) == len(r1) == len(single) == -(-n // 64)
    for epoch in (0, 3):
        whole = list(single.batches(epoch, with_indices=True))
        parts = zip(r0.batches(epoch, with_indices=True), r1.batches(epoch, with_indices=True))
        seen = []
        for (x, y, idx), ((x0, y0, i0), (x1, y1, i1)) in zip(whole, parts, strict=True):
            assert abs(i0.numel() - i1.numel()) <= 1 and i0.numel() + i1.numel() == idx.numel()
            assert torch.equal(torch.cat([i0, i1]), idx)  # rank 0 takes the front, rank 1 the back
            assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)  # same crops/flips
            seen.append(idx)
        assert torch.equal(torch.sort(torch.cat(seen)).values, torch.arange(n))  # an epoch sees every image once
    # evaluation: contiguous, disjoint shards covering the test set, in order
    e0, e1 = _loader(ds, False, 0, 2, 50), _loader(ds, False, 1, 2, 50)
    i0 = torch.cat([i for _, _, i in e0.batches(with_indices=True)])
    i1 = torch.cat([i for _, _, i in e1.batches(with_indices=True)])
    assert torch.equal(torch.cat([i0, i1]), torch.arange(n))
    assert abs(i0.numel() - i1.numel()) <= 1
