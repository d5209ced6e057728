"""Training throughput (images/s) of the project's engine against a reference-style training loop.

Reference style (the original code's CIFAR loop): torchvision CIFAR10 + PIL Pad/RandomCrop/RandomHorizontalFlip/
ToTensor/Normalize in a DataLoader (``--workers``), fp32, contiguous memory format, SGD step per batch.
Ours: utils.engine.Trainer.train_epoch over utils.data.DeviceLoader (the dataset on the device as uint8, the
same augmentation as tensor ops); on CUDA also bf16 autocast and channels_last. Same model, batch, optimizer
(SGD momentum 0.9, wd 1e-4) and images, one process, one warm-up epoch each, then timed epochs. The last
line is ``ratio: X`` = engine images/s / reference images/s on the same device (the GPU when present).

Data: ``--data DIR`` (CIFAR-10 python pickles) or a synthetic CIFAR-format set in a temporary folder.
Example: python bench/train_step.py --arch resnet --depth 20 --images 2560 --workers 1
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from bench.loader import cifar_root, reference_dataset, write_synthetic_cifar10  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DIR", help="CIFAR-10 python pickles (default: a synthetic set)")
    p.add_argument("--arch", default="resnet", help="model (default: resnet)")
    p.add_argument("--depth", type=int, default=20, help="depth (default: 20)")
    p.add_argument("--images", type=int, default=1280, help="training images per epoch (default 1280)")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs of each loop after a warm-up (default 1)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64, the reference's)")
    p.add_argument("--workers", type=int, default=1, help="reference DataLoader workers (default 1, the reference's)")
    p.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (default 0: torch's default)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for flag in ("images", "epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    if args.workers < 0 or args.threads < 0:
        raise UserError("--workers and --threads must not be negative")
    return args


def make_model(args, device):
    import torch
    from models import create_model
    torch.manual_seed(args.seed)
    return create_model(args.arch, args.depth).to(device)


def bench_reference(root, args, device):
    import torch
    import torch.nn.functional as F
    ds = reference_dataset(root, args.images)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0, pin_memory=device == "cuda",
                                         generator=torch.Generator().manual_seed(args.seed))
    model = make_model(args, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def run_epoch():
        seen = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += x.shape[0]
        return seen
    return timed(run_epoch, args.epochs, device)


def bench_engine(train, args, device):
    from utils.data import DeviceLoader, dataset_info
    from utils.dist import DistInfo
    from utils.engine import TrainConfig, Trainer
    import torch
    info = dataset_info("cifar10")
    cuda = torch.device(device).type == "cuda"
    loader = DeviceLoader(train, args.batch_size, train=True, mean=info.mean, std=info.std, device=device,
                          seed=args.seed, channels_last=cuda)
    config = TrainConfig(epochs=args.epochs + 1, lr=0.01, amp=cuda, channels_last=cuda, progress=False,
                         tensorboard=False)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        trainer = Trainer(make_model(args, device), loader, None, config, tmp, DistInfo(device=torch.device(device)),
                          log=lambda *a, **k: None)
        epoch = [0]

        def run_epoch():
            trainer.train_epoch(epoch[0])
            epoch[0] += 1
            return train.labels.numel()
        return timed(run_epoch, args.epochs, device)


def timed(run_epoch, epochs, device):
    import torch
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    run_epoch()
    sync()
    start = time.perf_counter()
    seen = sum(run_epoch() for _ in range(epochs))
    sync()
    return seen / (time.perf_counter() - start)


def main(argv=None):
    args = parse_args(argv)
    data_root = cifar_root(args.data) if args.data else None
    import torch
    from utils.data import load_dataset, subset
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available")
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench_train_data_") as tmp:
        root = data_root or write_synthetic_cifar10(tmp, args.images, seed=args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # checksums of a subset / synthetic set differ: expected
            train, _ = load_dataset("cifar10", root)
        train = subset(train, args.images)
        print(f"model: {args.arch}-{args.depth}, {train.labels.numel()} images, batch {args.batch_size}, "
              f"device {device}, {torch.get_num_threads()} CPU thread(s); 1 warm-up epoch, {args.epochs} timed")
        ref = bench_reference(root, args, device)
        print(f"reference loop (PIL DataLoader, {args.workers} worker(s), fp32): {ref:,.1f} img/s", flush=True)
        ours = bench_engine(train, args, device)
        extras = ", bf16 autocast, channels_last" if device.startswith("cuda") else ", fp32"
        print(f"engine (DeviceLoader + Trainer{extras}): {ours:,.1f} img/s")
    print(f"ratio: {ours / ref:.2f}")


if __name__ == "__main__":
    run_main(main)
