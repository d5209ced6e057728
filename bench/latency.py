"""Inference latency of the paper's pruned CIFAR models against their unpruned networks, beside the FLOPs ratio.

For each setting (L1-norm VGG-16-A, ResNet-56-A/B, ResNet-110-A/B; network slimming VGG-19 at 70%,
PreResNet-164 at 40%, DenseNet-40 at 40%) the unpruned network is built, pruned with the method's own rule
from the method registry, and both are timed on synthetic inputs (random, rotated among 4 buffers) in eval
mode under torch.inference_mode: batch 1 (latency) and batch 64 (throughput), median of repeated calls after
a warm-up. On CUDA (when present, unless --no-cuda) the timing uses CUDA events, 50 warm-up calls,
cudnn.benchmark, channels_last and bf16 autocast.

The networks are untrained: latency depends only on the widths. L1-norm's widths are fixed by its rule; the
slimming widths come from its global threshold applied to seeded random BN scales (|N(0, 1)|), a
representative pattern of what a trained, sparsified network gives. Channel-selection networks (PreResNet,
DenseNet) keep their gather layers after pruning, as in the reference; the table says when that makes them
slower than the FLOPs promise, and by how much.

Columns: FLOPs ratio = FLOPs(base) / FLOPs(pruned) in the reference convention (utils/flops.py); speedup =
latency(base) / latency(pruned); speedup / FLOPs ratio = how much of the promised gain is measured (1.00 =
all of it). The last line is ``ratio: X``, the geometric mean of speedup / FLOPs ratio over all rows.
Example: python bench/latency.py --threads 2 --min-seconds 1
"""
import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402

# name -> (method, arch, depth, rule options)
L1, SLIM = "cifar/l1-norm-pruning", "cifar/network-slimming"
SETTINGS = {
    "vgg16-A": (L1, "vgg", 16, {"variant": "A"}),
    "resnet56-A": (L1, "resnet", 56, {"variant": "A"}),
    "resnet56-B": (L1, "resnet", 56, {"variant": "B"}),
    "resnet110-A": (L1, "resnet", 110, {"variant": "A"}),
    "resnet110-B": (L1, "resnet", 110, {"variant": "B"}),
    "slim-vgg19-70%": (SLIM, "vgg_slim", 19, {"percent": 0.7}),
    "slim-preresnet164-40%": (SLIM, "preresnet", 164, {"percent": 0.4}),
    "slim-densenet40-40%": (SLIM, "densenet", 40, {"percent": 0.4}),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=list(SETTINGS), choices=list(SETTINGS), metavar="NAME",
                   help=f"settings to time (default: all): {', '.join(SETTINGS)}".replace("%", "%%"))
    p.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 64], help="batch sizes (default: 1 64)")
    p.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (default 0: torch's default)")
    p.add_argument("--min-seconds", type=float, default=0.5,
                   help="least timed duration per model and batch size (default 0.5)")
    p.add_argument("--min-reps", type=int, default=3, help="least timed calls per measurement (default 3)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA measurements even if a GPU is present")
    p.add_argument("--seed", type=int, default=0, help="seed of the BN scales and inputs (default 0)")
    args = p.parse_args(argv)
    if any(b < 1 for b in args.batch_sizes) or not args.batch_sizes:
        raise UserError(f"--batch-sizes {args.batch_sizes}: each must be at least 1")
    if args.min_reps < 1 or args.min_seconds < 0 or args.threads < 0:
        raise UserError("--min-reps must be at least 1, --min-seconds and --threads not negative")
    return args


def build_pair(name, seed):
    """(unpruned, pruned) networks of one setting, on the CPU, in eval mode."""
    import torch
    from models import create_model
    from utils.methods import PruneContext, get_method, hparams_of
    from utils.surgery import prune_channels
    key, arch, depth, options = SETTINGS[name]
    method = get_method(key)
    torch.manual_seed(seed)
    base = create_model(arch, depth)
    if key == SLIM:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in base.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g).abs())
    pruned = prune_channels(base, method.select(base, PruneContext(hparams_of(method.Hparams, **options))))
    return base.eval(), pruned.eval()


def time_pair(models, batch, device, args, cuda_opts=False):
    """Median seconds per forward call of each model; the models are called in turn, so a change in the
    machine's load touches both alike."""
    import torch
    spec = models[0].spec
    gen = torch.Generator().manual_seed(args.seed)
    inputs = [torch.randn(batch, spec.in_channels, spec.image_size, spec.image_size, generator=gen)
              for _ in range(4)]
    models = [m.to(device) for m in models]
    inputs = [x.to(device) for x in inputs]
    if cuda_opts:
        models = [m.to(memory_format=torch.channels_last) for m in models]
        inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
    cuda = device == "cuda"
    warmup, least = (50, max(args.min_reps, 20)) if cuda else (2, args.min_reps)
    times = [[] for _ in models]
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda_opts):
        for model in models:
            for i in range(warmup):
                model(inputs[i % 4])
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        i = 0
        while i < least or time.perf_counter() - start < args.min_seconds * len(models):
            for model, record in zip(models, times):
                x = inputs[i % 4]
                if cuda:
                    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    begin.record()
                    model(x)
                    end.record()
                    end.synchronize()
                    record.append(begin.elapsed_time(end) / 1000)
                else:
                    t0 = time.perf_counter()
                    model(x)
                    record.append(time.perf_counter() - t0)
            i += 1
    for m in models:
        m.cpu()
    return [statistics.median(t) for t in times]


def fmt_ms(seconds):
    return f"{1000 * seconds:.2f}"


def main(argv=None):
    args = parse_args(argv)
    import torch
    from utils.flops import count_flops
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    devices = [("cpu", False)]
    if torch.cuda.is_available() and not args.no_cuda:
        torch.backends.cudnn.benchmark = True
        devices.append(("cuda", True))
    print(f"timing: median per call; CPU fp32, {torch.get_num_threads()} thread(s)"
          + ("; CUDA bf16 autocast, channels_last, cudnn.benchmark, CUDA events" if len(devices) > 1 else ""))
    header = ("| setting | device | batch | FLOPs ratio | base ms | pruned ms | speedup | speedup / FLOPs ratio |\n"
              "|---|---|---|---|---|---|---|---|")
    print(header)
    quotients, notes = [], []
    for name in args.models:
        base, pruned = build_pair(name, args.seed)
        flops_ratio = count_flops(base) / count_flops(pruned)
        gathers = "preresnet" in name or "densenet" in name
        for device, cuda_opts in devices:
            for batch in args.batch_sizes:
                t_base, t_pruned = time_pair([base, pruned], batch, device, args, cuda_opts)
                speedup = t_base / t_pruned
                q = speedup / flops_ratio
                quotients.append(q)
                print(f"| {name} | {device} | {batch} | {flops_ratio:.3f} | {fmt_ms(t_base)} | {fmt_ms(t_pruned)} | "
                      f"{speedup:.3f} | {q:.2f} |", flush=True)
                if gathers and q < 1:
                    notes.append(f"{name} ({device}, batch {batch}): measured speedup {speedup:.2f}x is "
                                 f"{100 * (1 - q):.0f}% short of the FLOPs ratio {flops_ratio:.2f}x "
                                 f"(channel-selection gathers and memory traffic that FLOPs do not count)")
    for line in notes:
        print("note: " + line)
    print(f"ratio: {math.exp(sum(math.log(q) for q in quotients) / len(quotients)):.2f}")


if __name__ == "__main__":
    run_main(main)
