"""Datasets (CIFAR-10/100, Fashion-MNIST) and the device-resident loader.

The whole dataset lives on the training device as uint8. Each epoch the reference augmentation runs as
batched tensor ops: zero padding of 4 *before* normalisation (so padded pixels become -mean/std, as with
torchvision's Pad/RandomCrop on PIL images), a uniform random crop back to size (one of 81 offsets), and a
horizontal flip with p=0.5 per image; nothing at test time. Order and augmentation of epoch e come from
a generator seeded with (seed, e), so an epoch can be replayed exactly after a resume, on CPU or CUDA.
The last partial batch is kept (the reference's drop_last=False).
"""
import gzip
import os
import pickle
import socket
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from utils.errors import UserError

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple
    std: tuple


# The reference uses the CIFAR-10 constants for CIFAR-100 too (its pipeline C-A); Fashion-MNIST's are the
# usual training-set statistics.
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
DATASETS = {
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, _CIFAR_MEAN, _CIFAR_STD),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, _CIFAR_MEAN, _CIFAR_STD),
    "fashionmnist": DatasetInfo("fashionmnist", 10, 1, 28, (0.2860,), (0.3530,)),
}


def dataset_info(name):
    if name not in DATASETS:
        raise UserError(f"--dataset {name!r} is not supported (choose from {', '.join(DATASETS)})")
    return DATASETS[name]


@dataclass
class TensorDataset:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N


# ----------------------------------------------------------------------------------------------- CIFAR
_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _cifar_class(name):
    from torchvision.datasets import CIFAR10, CIFAR100
    base = CIFAR10 if name == "cifar10" else CIFAR100

    class Lenient(base):
        """torchvision's reader, accepting CIFAR-format files whose checksums differ (subsets, fixtures)."""

        def _check_integrity(self):
            if super()._check_integrity():
                return True
            folder = os.path.join(self.root, self.base_folder)
            names = [f[0] for f in self.train_list + self.test_list]
            if all(os.path.isfile(os.path.join(folder, n)) for n in names):
                warnings.warn(f"{folder}: CIFAR-format files whose checksums differ from the official ones "
                              "(a subset or a test fixture?); loading them anyway", stacklevel=2)
                return True
            return False
    return Lenient


def _cifar_root(name, directory):
    """The folder that holds cifar-10-batches-py (accepts that folder itself too)."""
    sub = _CIFAR_DIRS[name]
    if os.path.isdir(os.path.join(directory, sub)):
        return directory
    if os.path.basename(os.path.normpath(directory)) == sub and os.path.isdir(directory):
        return os.path.dirname(os.path.normpath(directory))
    return None


def _load_cifar(name, root, download=False):
    cls = _cifar_class(name)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("once")
        for train in (True, False):
            try:
                ds = cls(root, train=train, download=download)
            except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
                raise UserError(f"{root}: corrupt CIFAR files ({type(exc).__name__}: {exc})") from None
            images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
            out.append(TensorDataset(images, torch.tensor(ds.targets, dtype=torch.long)))
    return out


# --------------------------------------------------------------------------------------- Fashion-MNIST
_FMNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_idx(directory, stem):
    for sub in ("", "FashionMNIST/raw", "fashion-mnist", "raw"):
        for ext in ("", ".gz"):
            p = os.path.join(directory, sub, stem + ext)
            if os.path.isfile(p):
                return p
    return None


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        magic = int.from_bytes(raw[0:4], "big")
        ndim = magic & 0xFF
        if (magic >> 8) != 0x08 or ndim not in (1, 3):
            raise ValueError("not a uint8 IDX file")
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return torch.from_numpy(data.reshape(dims).copy())
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: corrupt Fashion-MNIST file ({exc})") from None


def _fmnist_dir(directory):
    return directory if all(_find_idx(directory, s) for pair in _FMNIST_FILES.values() for s in pair) else None


def _load_fmnist(directory):
    out = []
    for split in ("train", "test"):
        img_stem, lab_stem = _FMNIST_FILES[split]
        images = _read_idx(_find_idx(directory, img_stem)).unsqueeze(1).contiguous()
        labels = _read_idx(_find_idx(directory, lab_stem)).long()
        if images.shape[0] != labels.shape[0]:
            raise UserError(f"{directory}: Fashion-MNIST {split} images and labels differ in number")
        out.append(TensorDataset(images, labels))
    return out


# -------------------------------------------------------------------------------------------- lookup
def load_dataset(name, data_dir=None, download=True):
    """(train, test) TensorDatasets. Lookup: ``data_dir`` (--data), else ./data, else a torchvision
    download into ./data where the network allows, else (Fashion-MNIST) the Debian package's folder."""
    dataset_info(name)
    tried = []
    candidates = [data_dir] if data_dir else ["./data"]
    if name == "fashionmnist" and not data_dir:
        candidates.append(FASHION_MNIST_SYSTEM_DIR)
    for d in candidates:
        tried.append(d)
        if not os.path.isdir(d):
            continue
        if name == "fashionmnist":
            if _fmnist_dir(d):
                return _load_fmnist(d)
        else:
            root = _cifar_root(name, d)
            if root:
                return _load_cifar(name, root)
    if data_dir:
        raise UserError(f"--data {data_dir}: no {name} dataset there "
                        f"(expected {_expected_layout(name)}; {_how_to_get(name)})")
    if download and name != "fashionmnist":
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            return _load_cifar(name, "./data", download=True)
        except Exception:  # no network, a proxy, a partial file: report the lookup below instead
            tried.append("download into ./data (failed)")
        finally:
            socket.setdefaulttimeout(previous)
    raise UserError(f"{name} not found (tried {', '.join(tried)}); {_how_to_get(name)}")


def _expected_layout(name):
    if name == "fashionmnist":
        return "train-images-idx3-ubyte[.gz] and the three other IDX files"
    return f"{_CIFAR_DIRS[name]}/ with the python pickles"


def _how_to_get(name):
    if name == "fashionmnist":
        return "install Debian's dataset-fashion-mnist or pass --data DIR"
    return f"put {_CIFAR_DIRS[name]}/ from the official python tarball under ./data or pass --data DIR"


def subset(ds, n):
    """The first n examples (deterministic; for CPU-scale runs)."""
    if n is None or n <= 0 or n >= ds.labels.numel():
        return ds
    return TensorDataset(ds.images[:n], ds.labels[:n])


# ---------------------------------------------------------------------------------------- the loader
def _epoch_generator(seed, epoch):
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


class DeviceLoader:
    """Batches from a uint8 dataset resident on ``device``; augmentation as batched tensor ops.

    With ``world_size > 1`` each global batch of the seeded permutation is split across ranks, so the
    union of the ranks' batches is exactly the single-process batch. For evaluation each rank takes a
    contiguous shard of the set.
    """

    def __init__(self, data, batch_size, *, train, mean, std, device="cpu", seed=0, pad=4, flip=True,
                 rank=0, world_size=1, channels_last=False):
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.train, self.device = int(batch_size), bool(train), torch.device(device)
        self.seed, self.pad, self.flip = seed, pad, flip
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.epoch = 0
        n, _, h, w = self.images.shape
        self.n, self.h, self.w = n, h, w
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)
        if not train and world_size > 1:
            self._shard = torch.tensor_split(torch.arange(n, device=device), world_size)[rank]

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        n = self._shard.numel() if (not self.train and self.world_size > 1) else self.n
        return -(-n // self.batch_size)

    def epoch_plan(self, epoch):
        """(permutation, row offsets, column offsets, flips) for ``epoch``: a function of (seed, epoch)."""
        g = _epoch_generator(self.seed, epoch)
        perm = torch.randperm(self.n, generator=g)
        span = 2 * self.pad + 1
        oy = torch.randint(0, span, (self.n,), generator=g)
        ox = torch.randint(0, span, (self.n,), generator=g)
        flips = torch.rand(self.n, generator=g) < 0.5 if self.flip else torch.zeros(self.n, dtype=torch.bool)
        return perm, oy, ox, flips

    def augment(self, idx, oy, ox, flips):
        """Zero-pad, crop at the given offsets and flip the images ``idx`` (uint8 in, uint8 out)."""
        x = self.images[idx]
        p = self.pad
        x = F.pad(x, (p, p, p, p))  # zeros on uint8: black pixels, before normalisation
        rows = (oy.view(-1, 1) + self._rows.view(1, -1))  # B x H
        cols = (ox.view(-1, 1) + self._cols.view(1, -1))  # B x W
        cols = torch.where(flips.view(-1, 1), cols.flip(1), cols)
        b = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1, 1)
        c = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
        return x[b, c, rows.view(rows.shape[0], 1, -1, 1), cols.view(cols.shape[0], 1, 1, -1)]

    def normalise(self, x_uint8):
        x = (x_uint8.float().div_(255) - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batches(self, epoch=None, with_indices=False):
        epoch = self.epoch if epoch is None else epoch
        if not self.train:
            order = self._shard if self.world_size > 1 else torch.arange(self.n, device=self.device)
            for i in range(0, order.numel(), self.batch_size):
                idx = order[i:i + self.batch_size]
                out = (self.normalise(self.images[idx]), self.labels[idx])
                yield out + (idx,) if with_indices else out
            return
        perm, oy, ox, flips = (t.to(self.device) for t in self.epoch_plan(epoch))
        for i in range(0, self.n, self.batch_size):
            sel = torch.arange(i, min(i + self.batch_size, self.n), device=self.device)
            if self.world_size > 1:
                sel = torch.tensor_split(sel, self.world_size)[self.rank]
            idx = perm[sel]
            x = self.normalise(self.augment(idx, oy[sel], ox[sel], flips[sel]))
            out = (x, self.labels[idx])
            yield out + (idx,) if with_indices else out

    def __iter__(self):
        return self.batches()
