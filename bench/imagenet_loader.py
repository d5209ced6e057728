"""Throughput of the ImageNet loaders (utils/imagefolder.py): the reference PIL pipeline against the fast path.

Reference: FolderLoader(mode="reference"), the original code's pipeline: PIL decode + torchvision's
RandomResizedCrop(--crop) + RandomHorizontalFlip in DataLoader worker processes. Fast: FolderLoader(mode="fast"):
the workers read the JPEG bytes and decode them with torchvision.io, crop, resize and flip as tensor ops. Both run
on the CPU with the same files, --workers (default: every usable core), batch size and training transform, in
one process, each for --epochs timed epochs after a warm-up epoch (worker start-up, page cache, first-call
costs). With CUDA present (unless --no-cuda) the fast path is also timed on the GPU: workers read bytes, the
main process decodes each batch with batched nvJPEG (decode_jpeg on cuda) and crops there. Every figure counts
batches delivered normalised on their device: what a training loop would receive.
The last line is ``ratio: X`` = fast (CPU) images/s divided by reference images/s.

Data: ``--data DIR`` (an ImageFolder tree holding train/ and val/; a seeded random --images of train/ are
read), else --images JPEGs (quality 90) written to a temporary tree: ImageNet-like shapes (most 500x375 or
500x333, about a quarter portrait, the rest scattered in size; --long-side scales them all) with photo-like
content (smooth random colour fields at several scales plus sensor-like noise), about 105-110 kB each at the
default size, like ImageNet's training JPEGs. The data line prints the mean image and file size measured.
Example: python bench/imagenet_loader.py --images 1024 --workers 2
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402  (light: torch is imported after parsing)


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DIR", help="an ImageFolder tree with train/ and val/ (default: synthetic JPEGs "
                                                  "in a temp dir)")
    p.add_argument("--images", type=int, default=1024,
                   help="training images per epoch (default 1024; with --data a seeded random subset of train/)")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs of each pipeline after a warm-up epoch "
                                                         "(default 1)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--workers", type=int, default=usable_cores(),
                   help=f"DataLoader worker processes of every pipeline (default: the usable cores, "
                        f"{usable_cores()} here)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads of the main process, which normalises the CPU batches (default 1: "
                        "the cores belong to the workers)")
    p.add_argument("--crop", type=int, default=224, help="training crop side (default 224)")
    p.add_argument("--classes", type=int, default=4, help="class folders of the synthetic tree (default 4)")
    p.add_argument("--long-side", type=int, default=500,
                   help="typical long side of the synthetic images (default 500, ImageNet's); sizes vary around it")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA measurement even if a GPU is present")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images, the subset and the loaders")
    args = p.parse_args(argv)
    for flag in ("images", "epochs", "batch_size", "threads", "crop", "classes"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least 1")
    if args.long_side < 16:
        raise UserError(f"--long-side {args.long_side}: must be at least 16")
    if args.workers < 0:
        raise UserError(f"--workers {args.workers}: must be 0 or more")
    if args.data and not os.path.isdir(args.data):  # before the slow imports: bad input fails fast
        raise UserError(f"--data {args.data}: no such directory (expected an ImageFolder tree with train/ and val/)")
    return args


# ------------------------------------------------------------------------------------------ data
def image_shapes(n, long_side, g):
    """(height, width) of n images shaped like ImageNet's: most 4:3 or 3:2 at the typical long side, a quarter
    portrait, a third scattered (long side 0.8-1.12x, aspect 0.6-0.8)."""
    import torch
    shapes = []
    for u_kind, u_long, u_aspect, u_portrait in torch.rand(n, 4, generator=g, dtype=torch.float64).tolist():
        if u_kind < 0.45:
            long, aspect = long_side, 0.75
        elif u_kind < 0.65:
            long, aspect = long_side, 2 / 3
        else:
            long, aspect = long_side * (0.8 + 0.32 * u_long), 0.6 + 0.2 * u_aspect
        long, short = int(round(long)), max(1, int(round(long * aspect)))
        shapes.append((long, short) if u_portrait < 0.25 else (short, long))
    return shapes


def texture_bank(side, g):
    """One large photo-like uint8 RGB field that the images are cut from: bicubic-upsampled random colour grids at
    four scales (large blobs down to fine texture) plus Gaussian noise. Cutting one bank (a few ms an image) instead
    of synthesising every image (~50 ms) keeps generation a small part of the run; JPEG decode cost depends on the
    pixels and the entropy of the file, which the crops keep."""
    import torch
    import torch.nn.functional as F
    img = torch.zeros(1, 3, side, side)
    octaves = ((8, 1.0), (32, 0.7), (128, 0.6), (400, 0.5))  # (grid cells per bank side, amplitude)
    for cells, amp in octaves:
        grid = torch.rand(1, 3, cells + 1, cells + 1, generator=g)
        img += amp * F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    img = img[0] / sum(a for _, a in octaves)
    img = (img - img.mean()) * 2.5 + 0.5  # stretch the contrast (a sum of fields is greyish)
    # noise sigma 20/255 tuned so that q90 files come out near ImageNet's ~110 kB at 500x375
    return (img * 255 + 20 * torch.randn(3, side, side, generator=g)).clamp(0, 255).to(torch.uint8)


def write_synthetic_tree(root, n, classes, long_side, seed):
    """train/<class>/*.JPEG (n images) and val/<class>/ (one image each, which read_folder needs) under root."""
    import torch
    from torchvision.io import encode_jpeg
    g = torch.Generator().manual_seed(seed)
    shapes = image_shapes(n + classes, long_side, g)
    side = 3 * max(max(s) for s in shapes)  # room for crops at varied offsets
    bank = texture_bank(side, g)
    for k, (h, w) in enumerate(shapes):
        split, index = ("train", k) if k < n else ("val", k - n)
        folder = os.path.join(root, split, f"n{index % classes:08d}")
        os.makedirs(folder, exist_ok=True)
        top, left = (int(torch.randint(0, side - d + 1, (1,), generator=g)) for d in (h, w))
        img = bank[torch.randperm(3, generator=g), top:top + h, left:left + w]  # channel order varies the colours
        if k % 2:
            img = img.flip(-1)
        with open(os.path.join(folder, f"img_{index:06d}.JPEG"), "wb") as f:
            f.write(encode_jpeg(img.contiguous(), quality=90).numpy().tobytes())
    return root


def describe(paths):
    """(mean width, mean height, mean file size in bytes) of the files (PIL reads the headers only)."""
    from PIL import Image
    sizes = [os.path.getsize(p) for p in paths]
    dims = []
    for p in paths:
        with Image.open(p) as im:
            dims.append(im.size)
    n = len(paths)
    return sum(d[0] for d in dims) / n, sum(d[1] for d in dims) / n, sum(sizes) / n


# ------------------------------------------------------------------------------------------ timing
def bench_pipeline(ds, args, mode, device):
    """(images per second, images timed, seconds) of FolderLoader in ``mode`` on ``device``: one warm-up epoch,
    then --epochs timed ones."""
    import torch
    from utils.imagefolder import IMAGENET_MEAN, IMAGENET_STD, FolderLoader
    loader = FolderLoader(ds, args.batch_size, train=True, mean=IMAGENET_MEAN, std=IMAGENET_STD, size=args.crop,
                          device=device, seed=args.seed, workers=args.workers, mode=mode)
    cuda = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def run_epoch(epoch):
        loader.set_epoch(epoch)
        seen = 0
        for x, _y in loader:
            seen += x.shape[0]
        return seen

    run_epoch(0)
    sync()
    start = time.perf_counter()
    seen = sum(run_epoch(e) for e in range(1, args.epochs + 1))
    sync()  # GPU work is asynchronous: the batches are only ready once the device is done
    secs = time.perf_counter() - start
    return seen / secs, seen, secs  # the loader goes with this frame: its workers end before the next one starts


def main(argv=None):
    args = parse_args(argv)
    import torch
    from utils.imagefolder import read_folder
    torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench_imagenet_") as tmp:
        if args.data:
            train, _ = read_folder(args.data)
            if len(train) > args.images:
                pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:args.images]
                train = train.select(pick.sort().values)
            source = f"--data {args.data}"
        else:
            start = time.perf_counter()
            write_synthetic_tree(tmp, args.images, args.classes, args.long_side, args.seed)
            source = f"synthetic JPEG tree (q90, written in {time.perf_counter() - start:.1f} s) in {tmp}"
            train, _ = read_folder(tmp)
        w, h, nbytes = describe(train.paths)
        print(f"data: {source}, {len(train)} training images in {len(train.classes)} classes, mean {w:.0f}x{h:.0f} "
              f"px, mean file {nbytes / 1000:.1f} kB")
        print(f"pipelines: RandomResizedCrop({args.crop}) + flip, batch {args.batch_size}, {args.workers} worker(s), "
              f"{torch.get_num_threads()} main-process thread(s); 1 warm-up epoch, then {args.epochs} timed")
        print("| pipeline | device | decode | img/s | images | seconds |")
        print("|---|---|---|---|---|---|")
        where = "in the workers" if args.workers else "in the main process"
        rows = [("reference", "cpu", f"PIL, {where}"), ("fast", "cpu", f"torchvision.io, {where}")]
        cuda = torch.cuda.is_available() and not args.no_cuda
        if cuda:
            rows.append(("fast", "cuda", "batched nvJPEG, main process"))
        rates = {}
        for mode, device, decode in rows:
            rate, seen, secs = bench_pipeline(train, args, mode, device)
            rates[mode, device] = rate
            print(f"| {mode} | {device} | {decode} | {rate:,.1f} | {seen} | {secs:.4f} |", flush=True)
    if not cuda:
        print("note: " + ("CUDA skipped (--no-cuda)" if args.no_cuda else "CUDA not available") +
              ": the fast path's GPU decode was not timed")
    ref = rates["reference", "cpu"]
    if cuda:
        print(f"fast (cuda) / reference: {rates['fast', 'cuda'] / ref:.2f}")
    print(f"ratio: {rates['fast', 'cpu'] / ref:.2f}")


if __name__ == "__main__":
    run_main(main)
