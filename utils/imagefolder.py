"""ImageFolder datasets (the ImageNet layout: ``<root>/train/<class>/*.JPEG``, ``<root>/val/<class>/*``) and their
two loaders, chosen by one flag (``--loader``):

* ``reference``: the reference's pipeline (reference.md 1.2) through a torch DataLoader with worker processes:
  PIL decode, torchvision's RandomResizedCrop(size) + RandomHorizontalFlip for training, Resize(size * 256/224) +
  CenterCrop(size) for evaluation; workers return uint8 crops, normalisation runs on the training device.
* ``fast``: workers only read JPEG bytes; decoding is ``torchvision.io.decode_jpeg`` on a whole batch at once (on
  the GPU when the run is on CUDA, else in the workers), then the random-resized crop and flip run as tensor ops on
  the device, with crops drawn from the same distribution as torchvision's (tests compare the statistics).

Both are exact about epochs and seeds: the images of epoch e come in the order of a permutation seeded by (seed, e);
each image's augmentation is a function of (seed, e, its index) alone, so it does not depend on the number of
workers, on which rank reads it or on a resume; under torchrun every global batch is split across ranks so that
the union of the ranks' batches is the single-process batch (as the CIFAR DeviceLoader does; this is what
DistributedSampler would give without its padding, which repeats images). Evaluation shards the set contiguously
and the engine sums the counts, so accuracies are exact.

A file that cannot be decoded stops the run with a one-line error naming it (no silent skip that would change
what an epoch is); ``python -m utils.imagefolder --check DIR`` decodes a whole tree beforehand.
"""
import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass

import torch

from utils.errors import UserError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# SSS (MXNet ImageRecordIter, reference.md 2.11): mean/std on the 0-255 scale, PCA lighting of AlexNet
SSS_MEAN = tuple(v / 255 for v in (123.68, 116.28, 103.53))
SSS_STD = tuple(v / 255 for v in (58.395, 57.12, 57.375))
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


# ------------------------------------------------------------------------------------------- the data
@dataclass
class FolderDataset:
    """One split of an ImageFolder tree: file paths and integer labels (classes sorted by folder name)."""
    root: str
    paths: list
    labels: torch.Tensor
    classes: list

    def __len__(self):
        return len(self.paths)

    def select(self, index):
        index = torch.as_tensor(index, dtype=torch.long)
        return FolderDataset(self.root, [self.paths[i] for i in index.tolist()], self.labels[index], self.classes)


def _scan(split_dir, class_to_idx=None):
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
    if class_to_idx is None:
        try:
            _, class_to_idx = find_classes(split_dir)
        except FileNotFoundError:
            raise UserError(f"{split_dir}: no class folders (expected {split_dir}/<class>/<image>)") from None
    empty = [c for c in sorted(class_to_idx) if not os.path.isdir(os.path.join(split_dir, c)) or not any(
        f.lower().endswith(IMG_EXTENSIONS) for f in os.listdir(os.path.join(split_dir, c)))]
    if empty:
        raise UserError(f"{split_dir}: class folder {empty[0]!r} holds no image ({len(empty)} such folder(s); "
                        f"every class of train/ needs images in each split)")
    samples = make_dataset(split_dir, class_to_idx, extensions=IMG_EXTENSIONS)
    return FolderDataset(split_dir, [p for p, _ in samples], torch.tensor([c for _, c in samples], dtype=torch.long),
                         sorted(class_to_idx, key=class_to_idx.get))


def folder_root(directory):
    """``directory`` when it holds train/ and val/, else None."""
    ok = all(os.path.isdir(os.path.join(directory, s)) for s in ("train", "val"))
    return directory if ok else None


def count_classes(root):
    """The number of class folders of ``root``/train, or None when there is no such folder."""
    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        return None
    return sum(1 for e in os.scandir(train) if e.is_dir()) or None


def read_folder(root):
    """(train, val) FolderDatasets of an ImageFolder tree; val uses train's classes (and must have all of them)."""
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(root, split)):
            raise UserError(f"--data {root}: no {split}/ folder (expected {root}/train/<class>/... and "
                            f"{root}/val/<class>/...)")
    train = _scan(os.path.join(root, "train"))
    extra = sorted(set(os.listdir(os.path.join(root, "val"))) - set(train.classes)
                   - {f for f in os.listdir(os.path.join(root, "val")) if not os.path.isdir(os.path.join(root, "val", f))})
    if extra:
        raise UserError(f"--data {root}: val/ has class folder {extra[0]!r} that train/ lacks")
    val = _scan(os.path.join(root, "val"), {c: i for i, c in enumerate(train.classes)})
    return train, val


# ------------------------------------------------------------------------------------- augmentation
def _seed_of(seed, epoch, index):
    """The seed of one image's augmentation in one epoch: a function of (seed, epoch, index) only."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 10_000_019 + int(index)) % (2 ** 63)


def _generator(seed, epoch, index):
    return torch.Generator().manual_seed(_seed_of(seed, epoch, index))


@contextlib.contextmanager
def seeded_global_rng(seed, epoch, index):
    """torchvision's transforms draw from the global CPU RNG: seed it per image, and restore it after. Only the CPU
    generator: torch.manual_seed also seeds every other backend, about 0.5 ms a call here, 200x this."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(_seed_of(seed, epoch, index))
        yield


def crop_params(height, width, g, scale=SCALE, ratio=RATIO):
    """(top, left, h, w) of a random-resized crop, drawn like torchvision's RandomResizedCrop.get_params (10
    attempts at a log-uniform aspect ratio and uniform area, else a central crop of the clamped ratio), from
    generator ``g`` instead of the global RNG."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    draws = torch.rand(10, 4, generator=g, dtype=torch.float64).tolist()
    for u_area, u_ratio, u_top, u_left in draws:
        target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u_ratio)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(u_top * (height - h + 1)), int(u_left * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_view(img, seed, epoch, index, size, interpolation="bilinear"):
    """A decoded uint8 CHW image (any device) -> its random-resized, randomly flipped size x size crop."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    g = _generator(seed, epoch, index)
    top, left, h, w = crop_params(img.shape[-2], img.shape[-1], g)
    flip = bool(torch.rand(1, generator=g) < 0.5)
    out = TF.resized_crop(img, top, left, h, w, [size, size], interpolation=InterpolationMode(interpolation),
                          antialias=True)
    return out.flip(-1) if flip else out


def resize_size(size):
    """The evaluation resize for a crop of ``size``: 256 for 224, in the same proportion otherwise."""
    return int(round(size * 256 / 224))


def eval_view(img, size):
    from torchvision.transforms.v2 import functional as TF
    return TF.center_crop(TF.resize(img, [resize_size(size)], antialias=True), [size, size])


class Lighting:
    """AlexNet-style PCA lighting noise (SSS's recipe), on a float CHW image in [0, 1]."""

    def __init__(self, std):
        self.std = std

    def __call__(self, img, g):
        alpha = torch.randn(3, generator=g) * self.std
        rgb = (torch.tensor(PCA_EIGVEC) * alpha * torch.tensor(PCA_EIGVAL)).sum(1)
        return img + rgb.view(3, 1, 1).to(img)


def _reference_transform(train, size, augment):
    """torchvision's transforms on a PIL image, as the reference composes them (without ToTensor/Normalize, which
    run on the device): uint8 CHW out."""
    from torchvision.transforms import InterpolationMode, v2
    if not train:
        return v2.Compose([v2.Resize(resize_size(size)), v2.CenterCrop(size), v2.PILToTensor()])
    if augment == "sss":
        return v2.Compose([v2.RandomResizedCrop(size, interpolation=InterpolationMode.BICUBIC),
                           v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4), v2.PILToTensor()])
    return v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), v2.PILToTensor()])


def _decode_error(path, exc):
    return UserError(f"{path}: cannot decode image ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                     f"remove or replace the file (check a tree with python -m utils.imagefolder --check DIR)")


# --------------------------------------------------------------------------------------- the datasets
class _ReferenceSet(torch.utils.data.Dataset):
    """Key (index, epoch) -> (uint8 crop, label), seeded per image."""

    def __init__(self, ds, train, size, seed, augment):
        self.ds, self.train, self.seed, self.augment = ds, train, seed, augment
        self.transform = _reference_transform(train, size, augment)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        index, epoch = key
        from torchvision.datasets.folder import pil_loader
        path = self.ds.paths[index]
        try:
            img = pil_loader(path)
        except Exception as exc:  # PIL raises several kinds on a damaged file
            raise _decode_error(path, exc) from None
        if not self.train:
            return self.transform(img), self.ds.labels[index]
        with seeded_global_rng(self.seed, epoch, index):
            out = self.transform(img)
        return out, self.ds.labels[index]


class _FastSet(torch.utils.data.Dataset):
    """Key (index, epoch) -> (JPEG bytes, label) when decoding happens on the device, else the decoded crop."""

    def __init__(self, ds, train, size, seed, decode_here):
        self.ds, self.train, self.size, self.seed, self.decode_here = ds, train, size, seed, decode_here

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        from torchvision.io import read_file
        index, epoch = key
        data = read_file(self.ds.paths[index])
        if not self.decode_here:
            return data, self.ds.labels[index]
        img = decode([data], [self.ds.paths[index]], "cpu")[0]
        view = train_view(img, self.seed, epoch, index, self.size) if self.train else eval_view(img, self.size)
        return view.contiguous(), self.ds.labels[index]


def decode(datas, paths, device):
    """JPEG/PNG bytes -> uint8 RGB CHW images. On CUDA a batch of JPEGs decodes in one call (batched nvJPEG); what the
    GPU decoder refuses (ImageNet holds a PNG named .JPEG and some CMYK JPEGs) decodes on the CPU and is moved over."""
    from torchvision.io import ImageReadMode, decode_jpeg
    if torch.device(device).type == "cuda":
        try:
            return decode_jpeg(list(datas), mode=ImageReadMode.RGB, device=device)
        except Exception:
            out = []
            for d, p in zip(datas, paths):
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
                except Exception:
                    out.append(_decode_on_cpu(d, p).to(device))
            return out
    return [_decode_on_cpu(d, p) for d, p in zip(datas, paths)]


def _decode_on_cpu(data, path):
    from torchvision.io import ImageReadMode, decode_image
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except Exception as exc:  # torchvision raises RuntimeError for a damaged file, ValueError for an unknown format
        raise _decode_error(path, exc) from None


def _collate_list(batch):
    return [b[0] for b in batch], torch.stack([b[1] for b in batch])


# ----------------------------------------------------------------------------------------- the loader
def _rank_slice(start, stop, world_size, rank):
    q, r = divmod(stop - start, world_size)
    lo = start + rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


class _Batches(torch.utils.data.Sampler):
    """This rank's keys (index, epoch) of each global batch of the epoch (a seeded permutation in training)."""

    def __init__(self, n, batch_size, train, seed, rank, world_size, drop):
        self.n, self.batch_size, self.train, self.seed = n, batch_size, train, seed
        self.rank, self.world_size, self.drop = rank, world_size, drop
        self.epoch = 0

    def _bounds(self):
        if self.train:
            return 0, self.n - self.drop
        return _rank_slice(0, self.n, self.world_size, self.rank)

    def __len__(self):
        lo, hi = self._bounds()
        return -(-(hi - lo) // self.batch_size)

    def __iter__(self):
        lo, hi = self._bounds()
        if self.train:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
            for i in range(lo, hi, self.batch_size):
                a, b = _rank_slice(i, min(i + self.batch_size, hi), self.world_size, self.rank)
                yield [(order[j], self.epoch) for j in range(a, b)]
        else:
            for i in range(lo, hi, self.batch_size):
                yield [(j, 0) for j in range(i, min(i + self.batch_size, hi))]


class FolderLoader:
    """Batches (normalised float images on ``device``, labels) of a FolderDataset; see the module docstring."""

    def __init__(self, ds, batch_size, *, train, mean, std, size=224, device="cpu", seed=0, rank=0, world_size=1,
                 workers=4, mode="reference", augment="reference", channels_last=False):
        if mode not in ("reference", "fast"):
            raise UserError(f"--loader {mode!r}: choose reference or fast")
        if augment not in ("reference", "sss"):
            raise UserError(f"--augment {augment!r}: choose reference or sss")
        if augment == "sss" and mode == "fast":
            raise UserError("--augment sss runs on the reference loader only (its colour jitter is PIL's)")
        self.ds, self.batch_size, self.train = ds, int(batch_size), bool(train)
        self.device, self.size, self.seed, self.mode = torch.device(device), int(size), seed, mode
        self.augment, self.channels_last = augment, channels_last
        self.epoch = 0
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        n = len(ds)
        drop = 0
        tail = n % self.batch_size
        if train and 0 < tail < 2 * world_size:  # BatchNorm needs 2 images per batch (see DeviceLoader)
            drop = tail
            warnings.warn(f"{n} training images in batches of {self.batch_size} leave a last batch of {tail}; it is "
                          f"skipped each epoch", stacklevel=2)
        self.sampler = _Batches(n, self.batch_size, self.train, seed, rank, world_size, drop)
        self.on_device = mode == "fast" and self.device.type == "cuda"
        if mode == "fast":
            dataset = _FastSet(ds, self.train, self.size, seed, decode_here=not self.on_device)
        else:
            dataset = _ReferenceSet(ds, self.train, self.size, seed, augment)
        workers = max(0, int(workers))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=workers, persistent_workers=workers > 0,
            collate_fn=_collate_list if self.on_device else None, pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers > 0 else None)

    def set_epoch(self, epoch):
        self.epoch = self.sampler.epoch = int(epoch)

    @property
    def num_images(self):
        return len(self.ds)

    def __len__(self):
        return len(self.sampler)

    def normalise(self, x_uint8):
        x = x_uint8.float().div_(255).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _device_views(self, datas, keys):
        """Decode a batch on the device and crop it there (the fast path on CUDA)."""
        paths = [self.ds.paths[i] for i, _ in keys]
        images = decode(datas, paths, self.device)
        if self.train:
            views = [train_view(img, self.seed, e, i, self.size) for img, (i, e) in zip(images, keys)]
        else:
            views = [eval_view(img, self.size) for img in images]
        return torch.stack(views)

    def __iter__(self):
        batches = iter(self.sampler)
        try:
            for x, y in self.loader:
                keys = next(batches)
                if self.on_device:
                    x = self._device_views(x, keys)
                x = self.normalise(x.to(self.device, non_blocking=True))
                if self.augment == "sss" and self.train:
                    x = self._lighting(x, keys)
                yield x, y.to(self.device, non_blocking=True)
        except (RuntimeError, UserError) as exc:
            # a worker's UserError comes back with the worker's traceback in its message: keep the message alone
            raise _worker_error(exc) from None

    def _lighting(self, x, keys):
        # PCA lighting after normalisation is the same shift divided by std; drawn per image, seeded like the crop
        light = Lighting(0.1)
        shifts = torch.stack([light(torch.zeros(3, 1, 1), _generator(self.seed + 7919, e, i)) for i, e in keys])
        return x + shifts.to(x) / self.std.view(1, -1, 1, 1)


def _worker_error(exc):
    text = str(exc)
    marker = "UserError: "
    if "\n" in text and marker in text:
        return UserError(text.rsplit(marker, 1)[1].strip().splitlines()[0])
    return exc


# ------------------------------------------------------------------------------------------ check
def check_tree(root, log=print):
    """Decode every image of an ImageFolder tree; returns the list of files that fail."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    bad = []
    train, val = read_folder(root)
    for ds in (train, val):
        for p in ds.paths:
            try:
                decode_image(read_file(p), mode=ImageReadMode.RGB)
            except Exception as exc:
                bad.append(p)
                log(f"{p}: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}")
    log(f"{len(train) + len(val):,} images checked, {len(bad)} cannot be decoded")
    return bad


if __name__ == "__main__":
    import argparse
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from utils.errors import run_main

    def _main(argv):
        p = argparse.ArgumentParser(description="Decode every image of an ImageFolder tree (train/ and val/) and "
                                                "list those that fail.")
        p.add_argument("--check", required=True, metavar="DIR", help="the tree's root (holding train/ and val/)")
        args = p.parse_args(argv)
        sys.exit(1 if check_tree(args.check) else 0)

    run_main(_main)


def write_fashion_mnist_tree(root, data=None, train_per_class=300, val_per_class=50, size=36):
    """Fashion-MNIST written once as an ImageFolder JPEG tree (train/<class>/, val/<class>/): the first images of
    each class of its training and test sets, 3-channel, upscaled to ``size`` px, JPEG quality 90: real images for
    the ImageNet scripts at CPU scale. A tree already written (its ``done`` mark) is reused."""
    import torch.nn.functional as F
    from torchvision.io import encode_jpeg
    from utils.data import load_dataset
    if os.path.exists(os.path.join(root, "done")):
        return str(root)
    train, test = load_dataset("fashionmnist", data)
    for split, ds, per in (("train", train, train_per_class), ("val", test, val_per_class)):
        for c in range(10):
            folder = os.path.join(root, split, f"class{c}")
            os.makedirs(folder, exist_ok=True)
            index = torch.nonzero(ds.labels == c).flatten()[:per]
            images = F.interpolate(ds.images[index].float(), size=(size, size), mode="bilinear", align_corners=False)
            images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
            for i, img in zip(index.tolist(), images):
                with open(os.path.join(folder, f"{i}.JPEG"), "wb") as f:
                    f.write(encode_jpeg(img.contiguous(), quality=90).numpy().tobytes())
    with open(os.path.join(root, "done"), "w"):
        pass
    return str(root)
