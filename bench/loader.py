"""Throughput of the device-resident DeviceLoader against the reference CIFAR input pipeline.

Reference (the original code's pipeline C-A): torchvision's CIFAR10 dataset with the PIL transforms
Pad(4) -> RandomCrop(32) -> RandomHorizontalFlip -> ToTensor -> Normalize, in a torch DataLoader with batch 64,
shuffle and ``--workers`` worker processes (the reference used 1; persistent here, so worker start-up is not
counted against it). Ours: utils.data.DeviceLoader with the same augmentation, batch and normalisation.
Both run on this machine in one process, each for ``--epochs`` full epochs after a warm-up epoch; with CUDA
present the DeviceLoader is also timed on the GPU. The last line is ``ratio: X`` = DeviceLoader (CPU)
images/s divided by reference images/s.

Data: ``--data DIR`` (the CIFAR-10 python pickles, DIR holding cifar-10-batches-py or that folder itself),
else a synthetic CIFAR-format set written to a temporary folder.
Example: python bench/loader.py --images 50000 --epochs 2 --workers 1
"""
import argparse
import os
import pickle
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402  (light: torch is imported after parsing)

BATCHES_DIR = "cifar-10-batches-py"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DIR", help="CIFAR-10 python pickles (default: a synthetic set in a temp dir)")
    p.add_argument("--images", type=int, default=10000,
                   help="training images per epoch (the first N; default 10000, CIFAR-10 has 50000)")
    p.add_argument("--epochs", type=int, default=1,
                   help="timed epochs of each pipeline after a warm-up epoch (default 1; the DeviceLoader repeats "
                        "whole epochs until --min-seconds have passed)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="least timed duration of each DeviceLoader measurement, in whole epochs (default 1.0)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64, the reference's)")
    p.add_argument("--workers", type=int, default=2,
                   help="reference DataLoader worker processes (default 2; the reference used 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads for the CPU DeviceLoader (default 1: one core, against the "
                        "reference's workers)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA measurement even if a GPU is present")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images and of the loaders")
    args = p.parse_args(argv)
    if args.min_seconds < 0:
        raise UserError(f"--min-seconds {args.min_seconds}: must be 0 or more")
    for flag in ("images", "epochs", "batch_size", "threads"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be 0 or more")
    return args


# ------------------------------------------------------------------------------------------ data
def write_synthetic_cifar10(root, n_train, n_test=100, seed=0):
    """Random images in the official CIFAR-10 python layout (5 training batches, test_batch, batches.meta)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, BATCHES_DIR)
    os.makedirs(folder, exist_ok=True)

    def dump(fname, obj):
        with open(os.path.join(folder, fname), "wb") as f:
            pickle.dump(obj, f, protocol=2)

    bounds = np.linspace(0, n_train, 6).astype(int)
    for i in range(5):
        n = int(bounds[i + 1] - bounds[i])
        dump(f"data_batch_{i + 1}", {"batch_label": f"synthetic {i + 1}",
                                     "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                     "labels": rng.integers(0, 10, n).tolist()})
    dump("test_batch", {"batch_label": "synthetic test", "data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                        "labels": rng.integers(0, 10, n_test).tolist()})
    dump("batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": n_train // 5,
                          "num_vis": 3072})
    return root


def cifar_root(directory):
    if os.path.isdir(os.path.join(directory, BATCHES_DIR)):
        return directory
    if os.path.basename(os.path.normpath(directory)) == BATCHES_DIR:
        return os.path.dirname(os.path.normpath(directory))
    raise UserError(f"--data {directory}: no {BATCHES_DIR}/ there (the CIFAR-10 python pickles)")


def reference_dataset(root, n):
    """torchvision's CIFAR10 with the reference transforms, on the first n training images."""
    import torchvision.transforms as T
    from torchvision.datasets import CIFAR10
    from utils.data import dataset_info

    class AnyCifar10(CIFAR10):
        # accept CIFAR-format files whose checksums differ (a subset, the synthetic set); reading is torchvision's
        def _check_integrity(self):
            return True

        def _load_meta(self):
            self.classes = [str(i) for i in range(10)]

    info = dataset_info("cifar10")
    transform = T.Compose([T.Pad(4), T.RandomCrop(32), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(info.mean, info.std)])
    ds = AnyCifar10(root, train=True, transform=transform)
    ds.data, ds.targets = ds.data[:n], ds.targets[:n]
    return ds


# ------------------------------------------------------------------------------------------ timing
def time_epochs(run_epoch, epochs, sync=lambda: None, min_seconds=0.0):
    """One warm-up epoch, then at least ``epochs`` full epochs and at least ``min_seconds``;
    returns (seconds, images seen, epochs timed)."""
    run_epoch(-1)
    sync()
    start = time.perf_counter()
    seen = done = 0
    while done < epochs or time.perf_counter() - start < min_seconds:
        seen += run_epoch(done)
        done += 1
        if done >= epochs:
            sync()
    return time.perf_counter() - start, seen, done


def bench_reference(root, args):
    import torch
    ds = reference_dataset(root, args.images)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(args.seed))

    def run_epoch(_):
        seen = 0
        for x, _y in loader:
            seen += x.shape[0]
        return seen
    return time_epochs(run_epoch, args.epochs)


def bench_device_loader(train, args, device):
    import torch
    from utils.data import DeviceLoader, dataset_info
    info = dataset_info("cifar10")
    loader = DeviceLoader(train, args.batch_size, train=True, mean=info.mean, std=info.std, device=device,
                          seed=args.seed)

    def run_epoch(epoch):
        seen = 0
        for x, _y in loader.batches(epoch + 1):
            seen += x.shape[0]
        return seen
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    return time_epochs(run_epoch, args.epochs, sync, args.min_seconds)


def main(argv=None):
    args = parse_args(argv)
    data_root = cifar_root(args.data) if args.data else None  # before the slow imports: bad input fails fast
    import torch
    from utils.data import load_dataset, subset
    torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        if data_root:
            root = data_root
            source = f"--data {args.data}"
        else:
            root = write_synthetic_cifar10(tmp, args.images, seed=args.seed)
            source = f"synthetic CIFAR-format set in {tmp}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # checksums of a subset/synthetic set differ: expected here
            train, _ = load_dataset("cifar10", root)
        train = subset(train, args.images)
        n = train.labels.numel()
        print(f"data: {source}, {n} training images, batch {args.batch_size}, 1 warm-up epoch then timed epochs")

        secs, seen, done = bench_reference(root, args)
        ref = seen / secs
        print(f"reference (torchvision CIFAR10 + PIL Pad/RandomCrop/RandomHorizontalFlip/ToTensor/Normalize, "
              f"DataLoader {args.workers} workers): {ref:,.0f} img/s ({done} epoch(s), {seen} images in {secs:.2f} s)")

        secs, seen, done = bench_device_loader(train, args, "cpu")
        ours = seen / secs
        print(f"device loader (cpu, {args.threads} thread(s)): {ours:,.0f} img/s "
              f"({done} epoch(s), {seen} images in {secs:.2f} s)")

        if torch.cuda.is_available() and not args.no_cuda:
            secs, seen, done = bench_device_loader(train, args, "cuda")
            gpu = seen / secs
            print(f"device loader (cuda, {torch.cuda.get_device_name()}): {gpu:,.0f} img/s "
                  f"({done} epoch(s), {seen} images in {secs:.2f} s; {gpu / ref:.1f}x the reference)")
    print(f"ratio: {ours / ref:.1f}")


if __name__ == "__main__":
    run_main(main)
