"""Shared test helpers: the repo on sys.path, CIFAR-format fixtures written in the real on-disk format,
and a runner for the project's scripts."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
L1 = ROOT / "cifar" / "l1-norm-pruning"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one pytest worker per core: each computes with one thread (two on one core would spin against each other)
    import torch
    torch.set_num_threads(1)
from utils.data import FASHION_MNIST_SYSTEM_DIR, find_fashion_mnist  # noqa: E402


def _fashion_mnist():
    """Where `make test` (utils/get_data.py) found or put Fashion-MNIST: Debian's folder, else the repo's ./data."""
    for d in (FASHION_MNIST_SYSTEM_DIR, str(ROOT / "data")):
        if find_fashion_mnist(d):
            return d
    return FASHION_MNIST_SYSTEM_DIR


FASHION_MNIST = _fashion_mnist()
HAVE_FASHION_MNIST = find_fashion_mnist(FASHION_MNIST) is not None  # else the real-data tests skip


def write_cifar(root, name="cifar10", n_train=500, n_test=200, seed=0):
    """A small dataset in the official python-pickle layout (checksums differ from the real files)."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    folder = Path(root) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(n):
        # class-dependent mean colour so that a model can learn something
        labels = rng.integers(0, classes, n)
        base = (labels[:, None] * 97 % 256).astype(np.int64)
        data = np.clip(base + rng.integers(-40, 40, (n, 3072)), 0, 255).astype(np.uint8)
        return {"data": data, label_key: labels.tolist()}

    if name == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)]
        per = [n_train // 5 + (1 if i < n_train % 5 else 0) for i in range(5)]
        for fname, n in zip(names, per):
            with open(folder / fname, "wb") as f:
                pickle.dump(batch(n), f)
        with open(folder / "test_batch", "wb") as f:
            pickle.dump(batch(n_test), f)
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    else:
        with open(folder / "train", "wb") as f:
            pickle.dump(batch(n_train), f)
        with open(folder / "test", "wb") as f:
            pickle.dump(batch(n_test), f)
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    return str(root)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP spin-waiting makes 2 threads far slower."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("cifar10"))


def run(args, check=True, env=None, timeout=900, cwd=ROOT):
    """Run a command (list) with the test interpreter; returns the CompletedProcess."""
    cmd = [PYTHON] + [str(a) for a in args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


L1_KEY = "cifar/l1-norm-pruning"


def stage(key, name, argv, log=print):
    """A stage script's command line run in this process (no interpreter start-up): its record."""
    from utils.cli import main
    return main(key, name, name, [str(a) for a in argv], log=log)


def run_in_process(script, argv):
    """A script run as ``python script argv...`` would, but in this process (no interpreter start-up): its exit
    status, stdout and stderr, a traceback included. For checks of what a user sees (one-line errors, exit codes);
    what only a separate process shows (signals, the interpreter itself) still needs ``run``."""
    import contextlib
    import io
    import runpy
    import signal
    import traceback
    import warnings
    from types import SimpleNamespace
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, signal.getsignal(signal.SIGTERM), warnings.formatwarning, warnings.filters[:]
    sys.argv = [str(script)] + [str(a) for a in argv]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("always")  # as a fresh process shows each warning
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # what a process would die of, printed as it would be
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = saved[0]
        signal.signal(signal.SIGTERM, saved[1])
        warnings.formatwarning = saved[2]
        warnings.filters[:] = saved[3]
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def write_jpeg_tree(root, classes=3, train_per_class=6, val_per_class=2, seed=0, sizes=((40, 52), (48, 36), (33, 61))):
    """A small ImageFolder tree (train/<class>/*.JPEG, val/<class>/*.JPEG) of real JPEG files of varied sizes, each
    class a different mean colour so that a model can learn something."""
    import torch
    from torchvision.io import encode_jpeg
    g = torch.Generator().manual_seed(seed)
    for split, per in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = Path(root) / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                h, w = sizes[(c + i) % len(sizes)]
                base = torch.tensor([(c * 97) % 256, (c * 57 + 80) % 256, (c * 31 + 160) % 256]).view(3, 1, 1)
                img = (base + torch.randint(-40, 40, (3, h, w), generator=g)).clamp(0, 255).to(torch.uint8)
                (folder / f"img{i}.JPEG").write_bytes(encode_jpeg(img, quality=90).numpy().tobytes())
    return str(root)


def small_vgg16(seed=0, width=0.25):
    """The CIFAR VGG-16 (L1 variant) at a fraction of its widths, seeded: the data-driven rules' test network."""
    import torch
    from models import create_model, default_cfg, scale_cfg
    torch.manual_seed(seed)
    return create_model("vgg", 16, cfg=scale_cfg(default_cfg("vgg", 16), width))


def cifar_eval_loader(data, n=120, batch=40):
    """An evaluation DeviceLoader over the first ``n`` training images of a CIFAR-format folder."""
    from utils.data import DeviceLoader, TensorDataset, dataset_info, load_dataset
    info = dataset_info("cifar10")
    train, _ = load_dataset("cifar10", data)
    return DeviceLoader(TensorDataset(train.images[:n], train.labels[:n]), batch, train=False, mean=info.mean,
                        std=info.std)
