"""Inference latency of the paper's pruned CIFAR models against their unpruned networks, beside the FLOPs ratio.

For each setting (L1-norm VGG-16-A, ResNet-56-A/B, ResNet-110-A/B; network slimming VGG-19 at 70%,
PreResNet-164 at 40%, DenseNet-40 at 40%) the unpruned network is built, pruned with the method's own rule
from the method registry, and both are timed on synthetic inputs (random, rotated among 4 buffers) in eval
mode under torch.inference_mode: batch 1 (latency) and batch 64 (throughput), median of repeated calls after
a warm-up. On CUDA (when present, unless --no-cuda) the timing uses CUDA events, 50 warm-up calls,
cudnn.benchmark, channels_last and bf16 autocast.

The networks are untrained: latency depends only on the widths. L1-norm's widths are fixed by its rule; the
slimming widths come from its global threshold applied to seeded random BN scales (|N(0, 1)|), a
representative pattern of what a trained, sparsified network gives.

Both networks of a pair are timed in their deployed form (--form deployed, the default): every BN that directly
follows a conv folded into it (torch.fx's conv-BN fusion, eval mode), and a channel-selection network (the
slimmed PreResNet and DenseNet) in its compact form (utils/compact.py: the gather before the BN, unread produced
channels removed). --form reference times the networks as the reference builds them (BN layers, the BN in front
of each selection at full width) to show what the deployment buys.

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
    p.add_argument("--profile", action="store_true",
                   help="also print, per setting, where the time goes (torch.profiler, by operator, CPU, the first "
                        "batch size) for the unpruned and the pruned network")
    p.add_argument("--form", choices=["deployed", "reference"], default="deployed",
                   help="deployed: BN folded into convs, channel selections compacted; reference: as pruned "
                        "(default: %(default)s)")
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


def deployed(model):
    """The inference form of a network: compact if it has channel selections, each conv-BN pair folded."""
    from torch.fx.experimental.optimization import fuse
    spec = model.spec
    if hasattr(model, "compact_model"):
        model = model.compact_model().eval()
    fused = fuse(model)
    fused.spec = spec  # the timing reads the input geometry from it
    return fused


def time_pair(models, batch, device, args, cuda_opts=False):
    """([median seconds per forward call of each model], memory format): every variant is called in turn, so a
    change in the machine's load touches all alike. Both networks run in the same memory format: on the CPU the
    deployed form tries both and keeps the one in which the pruned network (the last model) is faster, as its
    deployment would (oneDNN prefers channels_last for some layer shapes, contiguous for others); on CUDA
    channels_last with bf16."""
    import copy
    import torch
    spec = models[0].spec
    gen = torch.Generator().manual_seed(args.seed)
    inputs = [torch.randn(batch, spec.in_channels, spec.image_size, spec.image_size, generator=gen)
              for _ in range(4)]
    cuda = device == "cuda"
    formats = ["channels_last"] if cuda_opts else (["contiguous", "channels_last"] if args.form == "deployed"
                                                  else ["contiguous"])
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    variants = []  # (model index, format name, module, inputs)
    for i, m in enumerate(models):
        for f in formats:
            module = copy.deepcopy(m).to(device).to(memory_format=layouts[f])
            variants.append((i, f, module, [x.to(device).contiguous(memory_format=layouts[f]) for x in inputs]))
    warmup, least = (50, max(args.min_reps, 20)) if cuda else (2, args.min_reps)
    times = [[] for _ in variants]
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda_opts):
        for _, _, module, xs in variants:
            for i in range(warmup):
                module(xs[i % 4])
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        i = 0
        while i < least or time.perf_counter() - start < args.min_seconds * len(variants):
            for (_, _, module, xs), record in zip(variants, times):
                x = xs[i % 4]
                if cuda:
                    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    begin.record()
                    module(x)
                    end.record()
                    end.synchronize()
                    record.append(begin.elapsed_time(end) / 1000)
                else:
                    t0 = time.perf_counter()
                    module(x)
                    record.append(time.perf_counter() - t0)
            i += 1
    medians = {(index, fmt): statistics.median(record) for (index, fmt, _, _), record in zip(variants, times)}
    chosen = min(formats, key=lambda f: medians[(len(models) - 1, f)])
    return [medians[(i, chosen)] for i in range(len(models))], chosen


SHORT = {"contiguous": "NCHW", "channels_last": "NHWC"}


def profile_pair(name, base, pruned, batch, layout, seed, macs):
    """Milliseconds per call by operator (self CPU time) of both networks, beside their conv MACs: where the
    speedup that the FLOPs promise is lost (per-MAC efficiency of the convs, operators FLOPs do not weigh)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(batch, base.spec.in_channels, base.spec.image_size, base.spec.image_size,
                    generator=torch.Generator().manual_seed(seed)).contiguous(memory_format=fmt)
    per_op, reps = {}, 3
    for label, model in (("base", base), ("pruned", pruned)):
        model = model.to(memory_format=fmt)
        with torch.inference_mode():
            model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(reps):
                    model(x)
        for event in prof.key_averages():
            per_op.setdefault(event.key, {})[label] = event.self_cpu_time_total / reps / 1000
    ops = sorted(per_op, key=lambda k: -max(per_op[k].values()))[:8]
    print(f"\nprofile of {name} (batch {batch}, {SHORT[layout]}; ms per call, self CPU time):")
    print("| operator | base ms | pruned ms | ratio |\n|---|---|---|---|")
    for op in ops:
        b, p = per_op[op].get("base", 0.0), per_op[op].get("pruned", 0.0)
        print(f"| {op} | {b:.1f} | {p:.1f} | {b / p:.2f} |" if p else f"| {op} | {b:.1f} | {p:.1f} | - |")
    conv = [sum(v.get(label, 0.0) for k, v in per_op.items() if "convolution" in k) for label in ("base", "pruned")]
    print(f"conv MACs {macs[0] / 1e6:.1f}M -> {macs[1] / 1e6:.1f}M per image (x{macs[0] / macs[1]:.2f} fewer); conv time "
          f"{conv[0]:.1f} -> {conv[1]:.1f} ms (x{conv[0] / conv[1]:.2f} faster): the pruned convs run at "
          f"{100 * (conv[0] / macs[0]) / (conv[1] / macs[1]):.0f}% of the unpruned ones' speed per MAC")
    return per_op


def fmt_ms(seconds):
    return f"{1000 * seconds:.2f}"


def main(argv=None):
    args = parse_args(argv)
    import torch
    from utils.flops import count_flops, count_macs
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    devices = [("cpu", False)]
    if torch.cuda.is_available() and not args.no_cuda:
        torch.backends.cudnn.benchmark = True
        devices.append(("cuda", True))
    print(f"timing: median per call, {args.form} form; CPU fp32, {torch.get_num_threads()} thread(s)"
          + ("; CUDA bf16 autocast, channels_last, cudnn.benchmark, CUDA events" if len(devices) > 1 else ""))
    header = ("| setting | device | batch | FLOPs ratio | base ms | pruned ms | speedup | speedup / FLOPs ratio | "
              "layout |\n|---|---|---|---|---|---|---|---|---|")
    print(header)
    quotients, notes, profiles = [], [], []
    for name in args.models:
        base, pruned = build_pair(name, args.seed)
        flops_ratio = count_flops(base) / count_flops(pruned)
        macs = (count_macs(base), count_macs(pruned))
        if args.form == "deployed":
            base, pruned = deployed(base), deployed(pruned)
        for device, cuda_opts in devices:
            for batch in args.batch_sizes:
                (t_base, t_pruned), layout = time_pair([base, pruned], batch, device, args, cuda_opts)
                speedup = t_base / t_pruned
                q = speedup / flops_ratio
                quotients.append(q)
                print(f"| {name} | {device} | {batch} | {flops_ratio:.3f} | {fmt_ms(t_base)} | {fmt_ms(t_pruned)} | "
                      f"{speedup:.3f} | {q:.2f} | {SHORT[layout]} |", flush=True)
                if q < 0.8:
                    notes.append(f"{name} ({device}, batch {batch}): measured speedup {speedup:.2f}x is "
                                 f"{100 * (1 - q):.0f}% short of the FLOPs ratio {flops_ratio:.2f}x")
                if args.profile and device == "cpu" and batch == args.batch_sizes[0]:
                    profiles.append((name, base, pruned, batch, layout, macs))
    for line in notes:
        print("note: " + line)
    for name, base, pruned, batch, layout, macs in profiles:
        profile_pair(name, base, pruned, batch, layout, args.seed, macs)
    print(f"ratio: {math.exp(sum(math.log(q) for q in quotients) / len(quotients)):.2f}")


if __name__ == "__main__":
    run_main(main)
