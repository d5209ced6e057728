"""Datasets (a registry: CIFAR-10/100, Fashion-MNIST) and the device-resident loader.

The raw files are read by torchvision's dataset classes (``CIFAR10``, ``CIFAR100``, ``FashionMNIST``) into uint8
tensors; files whose checksums differ from the official ones (subsets, test fixtures) load with a warning, and a
damaged file is a one-line error naming it. The whole dataset then lives on the training device as uint8. Each
epoch the reference augmentation runs as batched tensor ops: zero padding of 4 *before* normalisation (so padded
pixels become -mean/std, as with torchvision's Pad/RandomCrop on PIL images), a uniform random crop back to size
(one of 81 offsets), and a horizontal flip with p=0.5 per image; nothing at test time. Order and augmentation of
epoch e come from a generator seeded with (seed, e), so an epoch can be replayed exactly after a resume, on CPU or
CUDA. The last partial batch is kept (the reference's drop_last=False). A training loader also keeps the padded
set and its mirror image on the device (uint8, about 3.1x the set: 0.5 GB for CIFAR-10), which makes crop + flip
a single gather per batch.
"""
import gzip
import os
import shutil
import socket
import tempfile
import warnings
from dataclasses import dataclass, field

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
    classes_known: bool = True  # False: an ImageFolder dataset whose tree was not read (its classes are its folders)


@dataclass
class TensorDataset:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self):
        return self.labels.numel()

    def select(self, index):
        index = torch.as_tensor(index, dtype=torch.long)
        return TensorDataset(self.images[index], self.labels[index])


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: what it is, how to find it in a folder and read it, where else to look."""
    info: DatasetInfo
    root_of: object            # folder -> the root its reader takes, or None when the dataset is not there
    read: object               # root -> (train, test) TensorDatasets
    layout: str                # what --data must hold, for messages
    how_to_get: str            # one clause, for messages
    download: object = None    # root -> None: fetch into root (torchvision), where the network allows
    also: tuple = field(default_factory=tuple)  # folders searched after ./data
    folder: bool = False       # an ImageFolder tree read from disk batch by batch (its classes are its folders)


_DATASETS = {}


def register_dataset(entry):
    name = entry.info.name
    if name in _DATASETS:
        raise ValueError(f"dataset {name!r} is registered twice")
    _DATASETS[name] = entry
    return entry


def dataset_names():
    return sorted(_DATASETS)


def dataset_info(name):
    if name not in _DATASETS:
        raise UserError(f"--dataset {name!r} is not supported (choose from {', '.join(dataset_names())})")
    return _DATASETS[name].info


# ----------------------------------------------------------------------------------------------- CIFAR
def _cifar_class(name):
    from torchvision.datasets import CIFAR10, CIFAR100
    return CIFAR10 if name == "cifar10" else CIFAR100


def _cifar_root(name, directory):
    """The folder that holds cifar-10-batches-py (accepts that folder itself too)."""
    sub = _cifar_class(name).base_folder
    if os.path.isdir(os.path.join(directory, sub)):
        return directory
    if os.path.basename(os.path.normpath(directory)) == sub and os.path.isdir(directory):
        return os.path.dirname(os.path.normpath(directory))
    return None


def _lenient(cls, files):
    """``cls`` (torchvision's CIFAR10/100) reading just ``files`` as its training list, with the integrity check
    reduced to the files being there: our callers check the checksums themselves and only warn (a subset, a test
    fixture), and reading one file at a time lets a damaged one be named."""
    class Lenient(cls):
        train_list = [[f, None] for f in files]

        def _check_integrity(self):
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f, _ in self.train_list)

        def _load_meta(self):  # the class names are not needed (labels are integers), nor is the meta file
            self.classes = []

    return Lenient


def _read_cifar(name, root):
    from torchvision.datasets.utils import check_integrity
    cls = _cifar_class(name)
    folder = os.path.join(root, cls.base_folder)
    files = cls.train_list + cls.test_list
    missing = [f for f, _ in files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"{folder}: incomplete {name} folder (missing {', '.join(missing)}); "
                        f"{_DATASETS[name].how_to_get}")
    differing = [f for f, md5 in files if not check_integrity(os.path.join(folder, f), md5)]
    if differing:
        warnings.warn(f"{folder}: CIFAR-format files whose checksums differ from the official ones "
                      f"({', '.join(differing)}; a subset or a test fixture?); loading them anyway", stacklevel=3)
    classes = _DATASETS[name].info.num_classes
    out = []
    for file_list in (cls.train_list, cls.test_list):
        images, labels = [], []
        for fname, _ in file_list:
            try:
                ds = _lenient(cls, [fname])(root, train=True, download=False)
                data = torch.from_numpy(ds.data).permute(0, 3, 1, 2)
                target = torch.as_tensor(ds.targets, dtype=torch.int64)
            except Exception as exc:  # a truncated or garbled pickle raises many kinds of exception
                raise UserError(f"{folder}: corrupt CIFAR file {fname} ({type(exc).__name__}: {exc})") from None
            if data.shape[0] != target.numel() or (target.numel() and not 0 <= int(target.min()) <= int(target.max())
                                                    < classes):
                raise UserError(f"{folder}: corrupt CIFAR file {fname} ({data.shape[0]} images, {target.numel()} "
                                f"labels, labels must lie in [0, {classes}))")
            images.append(data)
            labels.append(target)
        out.append(TensorDataset(torch.cat(images).contiguous(), torch.cat(labels)))
    return out


def _download_cifar(name):
    def download(root):
        from torchvision.datasets.utils import download_and_extract_archive
        cls = _cifar_class(name)
        download_and_extract_archive(cls.url, root, filename=cls.filename, md5=cls.tgz_md5)
    return download


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
# The reference uses the CIFAR-10 constants for CIFAR-100 too (its pipeline C-A)
for _name, _classes, _folder in (("cifar10", 10, "cifar-10-batches-py"), ("cifar100", 100, "cifar-100-python")):
    register_dataset(DatasetEntry(
        DatasetInfo(_name, _classes, 3, 32, _CIFAR_MEAN, _CIFAR_STD),
        root_of=lambda d, n=_name: _cifar_root(n, d), read=lambda r, n=_name: _read_cifar(n, r),
        layout=f"{_folder}/ with the python pickles",
        how_to_get=f"put {_folder}/ from the official python tarball under ./data or pass --data DIR",
        download=_download_cifar(_name)))


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


def _fmnist_dir(directory):
    return directory if all(_find_idx(directory, s) for pair in _FMNIST_FILES.values() for s in pair) else None


def find_fashion_mnist(data_dir=None):
    """The first of ``data_dir`` (else ./data, then Debian's folder) that holds the four IDX files, or None."""
    for d in ([data_dir] if data_dir else ["./data", FASHION_MNIST_SYSTEM_DIR]):
        if os.path.isdir(d) and _fmnist_dir(d):
            return d
    return None


def _read_fmnist(directory):
    """torchvision's FashionMNIST reads ROOT/FashionMNIST/raw/<file> uncompressed: the files (Debian ships them
    gzipped, in a flat folder) are staged there in a temporary folder."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.mnist import read_image_file, read_label_file
    sources = {stem: _find_idx(directory, stem) for pair in _FMNIST_FILES.values() for stem in pair}
    with tempfile.TemporaryDirectory(prefix="fashionmnist-") as tmp:
        raw = os.path.join(tmp, "FashionMNIST", "raw")
        os.makedirs(raw)
        for stem, src in sources.items():
            try:
                with (gzip.open(src, "rb") if src.endswith(".gz") else open(src, "rb")) as f, \
                        open(os.path.join(raw, stem), "wb") as out:
                    shutil.copyfileobj(f, out)
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
                raise UserError(f"{src}: corrupt Fashion-MNIST file ({exc})") from None
        out = []
        for split, (img_stem, lab_stem) in _FMNIST_FILES.items():
            try:
                ds = FashionMNIST(tmp, train=split == "train", download=False)
                images, labels = ds.data, ds.targets
            except Exception:  # which of the two files, and why: read each on its own
                for stem, reader in ((img_stem, read_image_file), (lab_stem, read_label_file)):
                    try:
                        reader(os.path.join(raw, stem))
                    except Exception as exc:
                        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                        raise UserError(f"{sources[stem]}: corrupt Fashion-MNIST file (not a complete IDX file: "
                                        f"truncated or damaged; {detail[:150]})") from None
                raise
            if images.dim() != 3 or images.shape[0] != labels.numel():
                raise UserError(f"{sources[img_stem]}: Fashion-MNIST {split} images and labels differ in number")
            out.append(TensorDataset(images.to(torch.uint8).unsqueeze(1).contiguous(), labels.long()))
    return out


register_dataset(DatasetEntry(
    DatasetInfo("fashionmnist", 10, 1, 28, (0.2860,), (0.3530,)),  # the training set's statistics
    root_of=_fmnist_dir, read=_read_fmnist, layout="train-images-idx3-ubyte[.gz] and the three other IDX files",
    how_to_get="run `make data` (Debian's dataset-fashion-mnist) or pass --data DIR",
    also=(FASHION_MNIST_SYSTEM_DIR,)))


# ------------------------------------------------------------------------------- ImageFolder (ImageNet)
def _folder_root(directory):
    from utils.imagefolder import folder_root
    return folder_root(directory)


def _read_folder(root):
    from utils.imagefolder import read_folder
    return read_folder(root)


register_dataset(DatasetEntry(
    DatasetInfo("imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    root_of=_folder_root, read=_read_folder, layout="train/<class>/<images> and val/<class>/<images> (ImageFolder)",
    how_to_get="pass --data DIR, the folder holding ImageNet's train/ and val/ class folders (any ImageFolder tree "
               "works: the classes are its folders)", folder=True))


def run_info(name, data_dir=None, input_size=None):
    """The DatasetInfo a run uses: the registry's, except that an ImageFolder tree found at ``data_dir`` gives its
    own number of classes, and ``input_size`` (--input-size) the image size its networks are built for."""
    info = dataset_info(name)
    if not _DATASETS[name].folder:
        return info
    import dataclasses
    from utils.imagefolder import count_classes
    n = count_classes(data_dir) if data_dir else None
    return dataclasses.replace(info, num_classes=n or info.num_classes, image_size=input_size or info.image_size,
                               classes_known=n is not None)


def is_folder_dataset(ds):
    return not isinstance(ds, TensorDataset)


def make_loader(ds, batch_size, *, train, info, device="cpu", seed=0, rank=0, world_size=1, channels_last=False,
                folder=None):
    """The loader of a dataset: the device-resident DeviceLoader for in-memory sets (CIFAR, Fashion-MNIST), a
    FolderLoader for ImageFolder trees, with ``folder`` (an ImageNet data-argument object: --loader, --workers,
    --input-size, --augment) choosing its pipeline."""
    common = dict(train=train, mean=info.mean, std=info.std, device=device, seed=seed, rank=rank,
                  world_size=world_size, channels_last=channels_last)
    if not is_folder_dataset(ds):
        return DeviceLoader(ds, batch_size, **common)
    from utils.imagefolder import SSS_MEAN, SSS_STD, FolderLoader
    size = getattr(folder, "input_size", info.image_size)
    if getattr(folder, "augment", "reference") == "sss":
        common.update(mean=SSS_MEAN, std=SSS_STD)  # SSS's own normalisation goes with its augmentation
    return FolderLoader(ds, batch_size, size=size, workers=getattr(folder, "workers", 0),
                        mode=getattr(folder, "loader", "reference"), augment=getattr(folder, "augment", "reference"),
                        **common)


# -------------------------------------------------------------------------------------------- lookup
def _describe(d):
    return d if os.path.isabs(d) else f"{d} (= {os.path.abspath(d)})"


def load_dataset(name, data_dir=None, download=True):
    """(train, test) TensorDatasets. Lookup: ``data_dir`` (--data), else ./data, else a download into ./data
    where the dataset has one and the network allows, else the dataset's other folders (Debian's for
    Fashion-MNIST)."""
    dataset_info(name)
    entry = _DATASETS[name]
    tried = []
    for d in [data_dir] if data_dir else ["./data", *entry.also]:
        tried.append(_describe(d))
        root = entry.root_of(d) if os.path.isdir(d) else None
        if root:
            return entry.read(root)
    if data_dir:
        where = "there" if os.path.isdir(data_dir) else "(no such folder)"
        raise UserError(f"--data {_describe(data_dir)}: no {name} dataset {where} "
                        f"(expected {entry.layout}; {entry.how_to_get})")
    if download and entry.download is not None:
        existed = os.path.isdir("./data")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(20)
        try:
            entry.download("./data")
            return entry.read(entry.root_of("./data"))
        except UserError:
            raise
        except Exception as exc:  # no network, a proxy, a partial file: report the lookup below instead
            tried.append(f"a download into ./data (failed: {type(exc).__name__})")
            if not existed and os.path.isdir("./data") and not os.listdir("./data"):
                os.rmdir("./data")  # leave no empty folder behind
        finally:
            socket.setdefaulttimeout(previous)
    raise UserError(f"{name} not found (tried {', '.join(tried)}); {entry.how_to_get}")


def split_validation(ds, n, seed=0):
    """(train, val): ``n`` training images held out for model selection, the same ones for every run and seed
    (a fixed permutation), the rest in their original order."""
    total = len(ds)
    if not 0 < n < total:
        raise UserError(f"--val-split {n}: must lie in [1, {total - 1}] (the training set has {total} images)")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    val, rest = perm[:n].sort().values, perm[n:].sort().values
    return ds.select(rest), ds.select(val)


def subset(ds, n):
    """n examples for CPU-scale runs, the same every time: the first n of an in-memory set, a fixed random n of an
    ImageFolder tree (whose files are in class order)."""
    if n is None or n <= 0 or n >= len(ds):
        return ds
    if is_folder_dataset(ds):
        return ds.select(torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].sort().values)
    return ds.select(torch.arange(n))


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

    @property
    def num_images(self):
        return self.n

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

    def view_batches(self, views=2, jitter=0.0, epoch=None):
        """Training batches of ``views`` independently augmented copies of each image (crop, flip and, with
        ``jitter`` > 0, contrast and saturation factors in [1 - jitter, 1 + jitter] per image), concatenated view
        by view: (images [views x B, ...], labels [B], dataset indices [B]). View 1 is what ``batches`` yields
        (jitter aside); each further view's draws are a function of (seed, epoch, view), so a resumed run sees the
        same batches."""
        if not self.train:
            raise ValueError("view_batches is for training loaders")
        epoch = self.epoch if epoch is None else epoch
        plans = [self.epoch_plan(epoch)] + [self._view_plan(epoch, v) for v in range(1, views)]
        factors = [self._jitter_plan(epoch, v, jitter) for v in range(views)] if jitter else None
        perm = plans[0][0]
        for i in range(0, self._train_n, self.batch_size):
            lo, hi = _rank_slice(i, min(i + self.batch_size, self._train_n), self.world_size, self.rank)
            idx = perm[lo:hi]
            out = []
            for v, (_, oy, ox, flips) in enumerate(plans):
                x = self.augment(idx, oy[lo:hi], ox[lo:hi], flips[lo:hi]).float().div_(255)
                if factors is not None:
                    x = jitter_colour(x, *(f[lo:hi].to(self.device) for f in factors[v]))
                out.append(self.normalise_float(x))
            yield torch.cat(out), self.labels[idx.to(self.device)], idx.to(self.device)

    def _view_plan(self, epoch, view):
        g = _epoch_generator(self.seed * 7919 + view, epoch)
        span = 2 * self.pad + 1
        oy = torch.randint(0, span, (self.n,), generator=g)
        ox = torch.randint(0, span, (self.n,), generator=g)
        flips = torch.rand(self.n, generator=g) < 0.5 if self.flip else torch.zeros(self.n, dtype=torch.bool)
        return None, oy, ox, flips

    def _jitter_plan(self, epoch, view, amount):
        g = _epoch_generator(self.seed * 7919 + 1000 + view, epoch)
        return tuple(1 + amount * (2 * torch.rand(self.n, generator=g) - 1) for _ in range(2))

    def normalise_float(self, x):
        x = x.sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self):
        return self.batches()


def jitter_colour(x, contrast, saturation):
    """Per image: contrast, then saturation, as torchvision's adjust_contrast / adjust_saturation (a blend with the
    image's mean grey level / its greyscale, clamped to [0, 1]); ``x`` is a float batch in [0, 1]. Saturation
    needs 3 channels and is skipped for grey images."""
    w = torch.tensor([0.2989, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    grey = (x * w).sum(1, keepdim=True) if x.shape[1] == 3 else x
    mean = grey.mean((1, 2, 3), keepdim=True)
    c = contrast.view(-1, 1, 1, 1).to(x.dtype)
    x = (c * x + (1 - c) * mean).clamp_(0, 1)
    if x.shape[1] == 3:
        grey = (x * w).sum(1, keepdim=True)
        s = saturation.view(-1, 1, 1, 1).to(x.dtype)
        x = (s * x + (1 - s) * grey).clamp_(0, 1)
    return x
