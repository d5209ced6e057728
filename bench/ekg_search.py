"""Cost of EKG's search (utils/ekg.py) on ResNet-56 with CIFAR-shaped data: time per search step, and the memory bank
built in one pass.

An untrained ResNet-56 (EKG's: projection shortcuts, 30 gates) with randomised BN statistics searches on --val-images
random 3x32x32 images (the official D_val: 320, in batches of 256 and 64, BN batch statistics) for --steps steps
(each: scores by activation x gradient, trimmed-Otsu candidates, every candidate sub-network evaluated); each step's
time and candidate count are printed, then the mean and the projection for a whole search (the number of steps a
real search takes is not known without trained weights: ekg.md 2.9 expects 60-90; the table gives 60 and 90). Then
the memory bank: --teachers sub-networks of the history over --bank-images images in one pass (batches of 256),
with the images per second and the projection for CIFAR's 50,000 training images.
Example: python bench/ekg_search.py --steps 5 --bank-images 2560
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=int, default=56, help="ResNet depth (6n+2; default 56)")
    p.add_argument("--val-images", type=int, default=320, help="search images (default 320, the official D_val)")
    p.add_argument("--batch-size", type=int, default=256, help="search and bank batch (default 256)")
    p.add_argument("--steps", type=int, default=5, help="search steps timed (default 5)")
    p.add_argument("--bank-images", type=int, default=2560, help="images the bank is timed on (default 2560)")
    p.add_argument("--teachers", type=int, default=5, help="teachers in the bank (default 5)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--quick", action="store_true", help="smoke scale: ResNet-20, 64 images, 2 steps, 128 bank images")
    a = p.parse_args(argv)
    if a.quick:
        a.depth, a.val_images, a.batch_size, a.steps, a.bank_images = 20, 64, 32, 2, 128
    if (a.depth - 2) % 6 or a.depth < 8:
        raise UserError(f"--depth {a.depth}: a 6n+2 ResNet depth")
    for name in ("val_images", "batch_size", "steps", "bank_images", "teachers"):
        if getattr(a, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(a, name)}: must be at least 1")
    return a


def main(argv=None):
    a = parse(argv)
    import torch
    from models import create_model
    from utils import ekg
    from utils.methods import hparams_of
    if a.threads:
        torch.set_num_threads(a.threads)
    print(machine())
    print(f"torch threads: {torch.get_num_threads()}")
    torch.manual_seed(0)
    base = create_model("resnet_ekg", a.depth)
    with torch.no_grad():
        for m in base.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(a.val_images, 3, 32, 32)
    y = torch.arange(a.val_images) % 10
    val = [(x[i:i + a.batch_size], y[i:i + a.batch_size]) for i in range(0, a.val_images, a.batch_size)]
    hp_ = hparams_of(ekg.EKGHparams, keep_flops=0.01, search_batch_size=a.batch_size)
    search = ekg.EKGSearch(base, hp_, val, log=lambda *args: None)
    logits, ce, _ = search.evaluate(search.kept)
    search.ensemble, search.members = logits, 1
    search.history = [{"kept": {str(k): v for k, v in search.kept.items()}, "loss": ce}]
    print(f"ResNet-{a.depth}: {len(search.gates)} gates, FLOPs (official) {search.cost.full:,}; "
          f"{a.val_images} search images in batches of {a.batch_size}")
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        search.step()
        times.append(time.perf_counter() - t0)
        h = search.history[-1]
        print(f"  step {h['step']:>3}: {times[-1]:7.2f} s  {h['candidates']:>2} candidates  {h['gate']:<16} "
              f"FLOPs kept {h['flops_kept']:.4f}")
    mean = sum(times) / len(times)
    print(f"search: {mean:.2f} s per step (mean of {len(times)}); a whole search of 60 / 90 steps: "
          f"{60 * mean / 60:.1f} / {90 * mean / 60:.1f} min (early steps; later ones have smaller networks)")
    teachers = [min(i, len(search.history) - 1) for i in range(a.teachers)]
    from utils.data import DeviceLoader, TensorDataset
    images = torch.randint(0, 256, (a.bank_images, 3, 32, 32), dtype=torch.uint8)  # CIFAR-shaped, as stored
    loader = DeviceLoader(TensorDataset(images, torch.zeros(a.bank_images, dtype=torch.long)), a.batch_size,
                          train=False, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    t0 = time.perf_counter()
    bank, _ = ekg.build_bank(search.base, search.history, teachers, loader, "float16")
    dt = time.perf_counter() - t0
    print(f"memory bank: {a.teachers} teachers x {a.bank_images} images in one pass: {dt:.2f} s "
          f"({a.bank_images / dt:.0f} images/s, {tuple(bank.shape)} float16); CIFAR's 50,000: "
          f"{50000 / (a.bank_images / dt) / 60:.1f} min")


if __name__ == "__main__":
    run_main(main)
