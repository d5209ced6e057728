"""Datasets (CIFAR-10/100, Fashion-MNIST) and the device-resident loader.

The whole dataset lives on the training device as uint8. Each epoch the reference augmentation runs as
batched tensor ops: zero padding of 4 *before* normalisation (so padded pixels become -mean/std, as with
torchvision's Pad/RandomCrop on PIL images), a uniform random crop back to size (one of 81 offsets), and a
horizontal flip with p=0.5 per image; nothing at test time. Order and augmentation of epoch e come from
a generator seeded with (seed, e), so an epoch can be replayed exactly after a resume, on CPU or CUDA.
The last partial batch is kept (the reference's drop_last=False). A training loader also keeps the padded
set and its mirror image on the device (uint8, about 3.1x the set: 0.5 GB for CIFAR-10), which makes crop +
flip a single gather per batch. CIFAR is read from the official python pickles by this module (files whose
checksums differ, such as subsets and test fixtures, load with a warning); torchvision only downloads.
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


def _cifar_spec(name):
    """torchvision's description of the official files: folder, (file, md5) lists, download url."""
    from torchvision.datasets import CIFAR10, CIFAR100
    return CIFAR10 if name == "cifar10" else CIFAR100


def _cifar_root(name, directory):
    """The folder that holds cifar-10-batches-py (accepts that folder itself too)."""
    sub = _CIFAR_DIRS[name]
    if os.path.isdir(os.path.join(directory, sub)):
        return directory
    if os.path.basename(os.path.normpath(directory)) == sub and os.path.isdir(directory):
        return os.path.dirname(os.path.normpath(directory))
    return None


def _read_cifar_file(folder, fname, num_classes):
    path = os.path.join(folder, fname)
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except Exception as exc:  # a truncated/garbled pickle raises many kinds of exception
        raise UserError(f"{folder}: corrupt CIFAR file {fname} ({type(exc).__name__}: {exc})") from None
    if images.shape[0] != labels.shape[0] or (labels.size and not 0 <= labels.min() <= labels.max() < num_classes):
        raise UserError(f"{folder}: corrupt CIFAR file {fname} ({images.shape[0]} images, {labels.shape[0]} labels, "
                        f"labels must lie in [0, {num_classes}))")
    return images, labels


def _load_cifar(name, root):
    """Read the official python pickles under ``root``/cifar-10-batches-py (or cifar-100-python).

    Files whose checksums differ from the official ones (a subset, a test fixture) are loaded with a warning;
    the meta file is not needed (labels are integers)."""
    from torchvision.datasets.utils import check_integrity
    spec = _cifar_spec(name)
    folder = os.path.join(root, spec.base_folder)
    files = spec.train_list + spec.test_list
    missing = [f for f, _ in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"{folder}: incomplete {name} folder (missing {', '.join(missing)}); {_how_to_get(name)}")
    differing = [f for f, md5 in files if not check_integrity(os.path.join(folder, f), md5)]
    if differing:
        warnings.warn(f"{folder}: CIFAR-format files whose checksums differ from the official ones "
                      f"({', '.join(differing)}; a subset or a test fixture?); loading them anyway", stacklevel=3)
    classes = DATASETS[name].num_classes
    out = []
    for file_list in (spec.train_list, spec.test_list):
        parts = [_read_cifar_file(folder, f, classes) for f, _ in file_list]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        out.append(TensorDataset(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)))
    return out


def _download_cifar(name, root):
    from torchvision.datasets.utils import download_and_extract_archive
    spec = _cifar_spec(name)
    download_and_extract_archive(spec.url, root, filename=spec.filename, md5=spec.tgz_md5)
    return _load_cifar(name, root)


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
        if len(raw) < 4:
            raise ValueError("shorter than an IDX header")
        magic = int.from_bytes(raw[0:4], "big")
        ndim = magic & 0xFF
        if (magic >> 8) != 0x08 or ndim not in (1, 3):
            raise ValueError("not a uint8 IDX file")
        header = 4 + 4 * ndim
        if len(raw) < header:
            raise ValueError("truncated IDX header")
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        if len(raw) != header + int(np.prod(dims)):
            raise ValueError(f"{len(raw) - header} data bytes for shape {dims} (truncated?)")
        data = np.frombuffer(raw, dtype=np.uint8, offset=header)
        return torch.from_numpy(data.reshape(dims).copy())
    except (OSError, ValueError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{path}: corrupt Fashion-MNIST file ({exc})") from None


def _fmnist_dir(directory):
    return directory if all(_find_idx(directory, s) for pair in _FMNIST_FILES.values() for s in pair) else None


def find_fashion_mnist(data_dir=None):
    """The first of ``data_dir`` (else ./data, then Debian's folder) that holds the four IDX files, or None."""
    for d in ([data_dir] if data_dir else ["./data", FASHION_MNIST_SYSTEM_DIR]):
        if os.path.isdir(d) and _fmnist_dir(d):
            return d
    return None


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
def _describe(d):
    return d if os.path.isabs(d) else f"{d} (= {os.path.abspath(d)})"


def load_dataset(name, data_dir=None, download=True):
    """(train, test) TensorDatasets. Lookup: ``data_dir`` (--data), else ./data, else a torchvision
    download into ./data where the network allows, else (Fashion-MNIST) the Debian package's folder."""
    dataset_info(name)
    tried = []
    candidates = [data_dir] if data_dir else ["./data"]
    if name == "fashionmnist" and not data_dir:
        candidates.append(FASHION_MNIST_SYSTEM_DIR)
    for d in candidates:
        tried.append(_describe(d))
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
        where = "there" if os.path.isdir(data_dir) else "(no such folder)"
        raise UserError(f"--data {_describe(data_dir)}: no {name} dataset {where} "
                        f"(expected {_expected_layout(name)}; {_how_to_get(name)})")
    if download and name != "fashionmnist":
        existed = os.path.isdir("./data")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            return _download_cifar(name, "./data")
        except UserError:
            raise
        except Exception as exc:  # no network, a proxy, a partial file: report the lookup below instead
            tried.append(f"a download into ./data (failed: {type(exc).__name__})")
            if not existed and os.path.isdir("./data") and not os.listdir("./data"):
                os.rmdir("./data")  # leave no empty folder behind
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


def _rank_slice(start, stop, world_size, rank):
    """Rank ``rank``'s contiguous part of [start, stop) split like ``torch.tensor_split``."""
    q, r = divmod(stop - start, world_size)
    lo = start + rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


class DeviceLoader:
    """Batches from a uint8 dataset resident on ``device``; augmentation as batched tensor ops.

    Training: the dataset is zero-padded once (uint8, so padded pixels become -mean/std after
    normalisation) and kept next to its mirror image. A batch is then one gather through a strided view
    whose axes are (flipped?, image, row offset, column offset, channel, row, column): a crop at (oy, ox)
    of the flipped padded image at column offset 2*pad - ox is the flip of the crop at (oy, ox), so
    crop + flip cost one indexing kernel per batch on CPU or GPU, followed by the normalisation.

    With ``world_size > 1`` each global batch of the seeded permutation is split across ranks, so the
    union of the ranks' batches is exactly the single-process batch. For evaluation each rank takes a
    contiguous shard of the set.
    """

    def __init__(self, data, batch_size, *, train, mean, std, device="cpu", seed=0, pad=4, flip=True,
                 rank=0, world_size=1, channels_last=False):
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.train, self.device = int(batch_size), bool(train), torch.device(device)
        self.seed, self.pad, self.flip = seed, int(pad), flip
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.epoch = 0
        n, c, h, w = self.images.shape
        self.n, self.h, self.w = n, h, w
        if self.mean.numel() != c or self.std.numel() != c:
            raise ValueError(f"mean/std have {self.mean.numel()}/{self.std.numel()} entries for {c} channels")
        self._crops = None
        self._train_n = n
        if train:
            self._crops = self._crop_view()
            tail = n % self.batch_size
            if 0 < tail < 2 * world_size:
                # BatchNorm in training mode needs 2 values per channel: BatchNorm1d fails on a 1-image batch
                # (so would the reference); such a tail is left out of each epoch instead.
                self._train_n = n - tail
                warnings.warn(f"{n} training images in batches of {self.batch_size} leave a last batch of {tail}; "
                              f"it is skipped each epoch", stacklevel=2)
        if not train and world_size > 1:
            self._shard = _rank_slice(0, n, world_size, rank)

    def _crop_view(self):
        p, (n, c, h, w) = self.pad, self.images.shape
        padded = F.pad(self.images, (p, p, p, p))  # zeros on uint8: black pixels, before normalisation
        both = torch.stack([padded, padded.flip(3)])  # 2 x N x C x (H+2p) x (W+2p), contiguous
        s = both.stride()
        span = 2 * p + 1
        return both.as_strided((2, n, span, span, c, h, w), (s[0], s[1], s[3], s[4], s[2], s[3], s[4]))

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        n = (self._shard[1] - self._shard[0]) if (not self.train and self.world_size > 1) else self._train_n
        return -(-n // self.batch_size)

    def epoch_plan(self, epoch):
        """(permutation, row offsets, column offsets, flips) for ``epoch``: a function of (seed, epoch), drawn
        on the CPU. Entry i of the offsets/flips applies to the i-th image of the epoch (``perm[i]``)."""
        g = _epoch_generator(self.seed, epoch)
        perm = torch.randperm(self.n, generator=g)
        span = 2 * self.pad + 1
        oy = torch.randint(0, span, (self.n,), generator=g)
        ox = torch.randint(0, span, (self.n,), generator=g)
        flips = torch.rand(self.n, generator=g) < 0.5 if self.flip else torch.zeros(self.n, dtype=torch.bool)
        return perm, oy, ox, flips

    def augment(self, idx, oy, ox, flips):
        """Zero-pad, crop at the given offsets and flip the images ``idx`` (uint8 in, uint8 out)."""
        if self._crops is None:
            self._crops = self._crop_view()
        dev = self.device
        idx, oy, ox, flips = (t.to(dev) for t in (idx, oy, ox, flips))
        ox = torch.where(flips, 2 * self.pad - ox, ox)
        return self._crops[flips.long(), idx, oy, ox]

    def normalise(self, x_uint8):
        """uint8 -> float32 exactly as ToTensor() + Normalize(mean, std): x / 255, - mean, / std."""
        x = x_uint8.float().div_(255).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def batches(self, epoch=None, with_indices=False):
        epoch = self.epoch if epoch is None else epoch
        if not self.train:
            lo, hi = self._shard if self.world_size > 1 else (0, self.n)
            for i in range(lo, hi, self.batch_size):
                j = min(i + self.batch_size, hi)
                out = (self.normalise(self.images[i:j]), self.labels[i:j])
                yield out + (torch.arange(i, j, device=self.device),) if with_indices else out
            return
        perm, oy, ox, flips = (t.to(self.device) for t in self.epoch_plan(epoch))
        ox = torch.where(flips, 2 * self.pad - ox, ox)  # column offset into the mirrored copy
        flips = flips.long()
        for i in range(0, self._train_n, self.batch_size):
            lo, hi = _rank_slice(i, min(i + self.batch_size, self._train_n), self.world_size, self.rank)
            idx = perm[lo:hi]
            x = self.normalise(self._crops[flips[lo:hi], idx, oy[lo:hi], ox[lo:hi]])
            out = (x, self.labels[idx])
            yield out + (idx,) if with_indices else out

    def __iter__(self):
        return self.batches()
