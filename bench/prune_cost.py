"""Cost of ThiNet's pruning computation on CIFAR VGG-16, layer by layer (utils/thinet.py).

For every conv layer i (conv1_1 .. conv5_3) the consumer is the next conv, or for conv5_3 the classifier's
first Linear (which reads the 512 globally pooled features, one feature per channel). Random CIFAR-shaped
images (N(0, 1), 3x32x32) go through the untrained network in eval mode, and a forward pre-hook on every
consumer accumulates its ContributionGram at --samples-per-image random (output channel, position) samples per
image: the paper's 10 per image over 10,000 images is 100,000 samples per layer. Then, per layer, ThiNet's
greedy selection at --keep (C·keep channels kept, rounded down) and the least-squares scales of the kept
channels, with the relative reconstruction error Σ(ŷ − X̂_S w)² / Σŷ² over the samples before the scales
(w = 1) and after them, and the same two errors on --holdout-images further images that neither the selection
nor the scales saw: the greedy and the fit are both tuned to the calibration samples, and the gap between
the two pairs of columns is how much of that does not carry over.

Columns: statistics s = what a statistics pass for that layer alone costs: the forward up to the consumer's
input (timed between hooks, so one shared pass measures every prefix) plus that consumer's Gram updates ("of
which Gram s"); in ThiNet's protocol, which prunes and fine-tunes one layer at a time, each layer needs its own
such pass. selection ms and least squares ms: best of 3 calls. The network is unpruned for every layer, so
layer i sees the full widths before it (a pruned prefix would only be cheaper). Errors on an untrained network
with random inputs say how the numbers behave, not what ThiNet achieves on trained weights.
Example: python bench/prune_cost.py --quick
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import machine  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10000, help="calibration images (default 10000, as ThiNet)")
    p.add_argument("--quick", action="store_true", help="1000 images (overrides --images)")
    p.add_argument("--holdout-images", type=int, default=1000,
                   help="further images for the held-out errors, not timed (default 1000; 0: none)")
    p.add_argument("--samples-per-image", type=int, default=10, help="samples per image and layer (default 10)")
    p.add_argument("--batch-size", type=int, default=250, help="images per forward (default 250)")
    p.add_argument("--keep", type=float, default=0.5, help="kept fraction of each layer's channels (default 0.5)")
    p.add_argument("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="where the forward and the statistics run (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, images and samples (default 0)")
    args = p.parse_args(argv)
    if args.quick:
        args.images = 1000
    if args.holdout_images < 0:
        raise UserError(f"--holdout-images {args.holdout_images}: must not be negative")
    if args.images < 1 or args.samples_per_image < 1 or args.batch_size < 1 or args.threads < 1:
        raise UserError("--images, --samples-per-image, --batch-size and --threads must be at least 1")
    if not 0 < args.keep <= 1:
        raise UserError(f"--keep {args.keep}: must be in (0, 1]")
    return args


def layer_names(cfg):
    """conv{block}_{index}, VGG's own names, in forward order."""
    names, block, idx = [], 1, 0
    for v in cfg:
        if v == "M":
            block, idx = block + 1, 0
        else:
            idx += 1
            names.append(f"conv{block}_{idx}")
    return names


def best_of(fn, reps=3):
    best, result = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None):
    args = parse_args(argv)
    import torch
    from models import create_model
    from utils.thinet import (ContributionGram, least_squares_scales, relative_reconstruction_error,
                              select_channels)
    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device")
    print(machine())
    torch.manual_seed(args.seed)
    model = create_model("vgg", 16).to(device).eval()
    modules = dict(model.named_modules())
    layers = []
    for name, group in zip(layer_names(model.cfg), model.channel_groups()):
        consumer_name = group.inp[0]
        consumer = modules[consumer_name]
        layers.append({"name": name, "consumer": consumer_name, "module": consumer,
                       "gram": ContributionGram(consumer), "holdout": ContributionGram(consumer),
                       "forward": 0.0, "update": 0.0})

    clock = {"start": 0.0, "hooks": 0.0, "holdout": False}
    gen = torch.Generator().manual_seed(args.seed + 1)

    def collector(layer):
        def hook(module, inputs):
            if clock["holdout"]:
                layer["holdout"].update(inputs[0], module.weight, args.samples_per_image, gen)
                return
            arrived = time.perf_counter()
            layer["forward"] += arrived - clock["start"] - clock["hooks"]
            layer["gram"].update(inputs[0], module.weight, args.samples_per_image, gen)
            if device == "cuda":
                torch.cuda.synchronize()
            spent = time.perf_counter() - arrived
            layer["update"] += spent
            clock["hooks"] += spent
        return hook

    handles = [layer["module"].register_forward_pre_hook(collector(layer)) for layer in layers]
    data = torch.Generator(device=device).manual_seed(args.seed + 2)

    def feed(images):
        with torch.no_grad():
            for start in range(0, images, args.batch_size):
                x = torch.randn(min(args.batch_size, images - start), 3, 32, 32, generator=data, device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
                clock["start"], clock["hooks"] = time.perf_counter(), 0.0
                model(x)

    wall = time.perf_counter()
    feed(args.images)
    wall = time.perf_counter() - wall
    clock["holdout"] = True
    feed(args.holdout_images)
    for h in handles:
        h.remove()

    samples = layers[0]["gram"].count
    print(f"pass: {args.images} random images, batch {args.batch_size}, {args.samples_per_image} samples per image "
          f"= {samples} samples per layer, {device}, {torch.get_num_threads()} thread(s); keep {args.keep}; "
          f"one shared forward with all {len(layers)} hooks took {wall:.1f} s; held-out errors on "
          f"{args.holdout_images} further images")
    print("| layer | consumer | C | kept | statistics s | of which Gram s | selection ms | least squares ms "
          "| error before | error after | held-out before | held-out after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    sequential = 0.0
    for layer in layers:
        A = layer["gram"].A
        C = A.shape[0]
        keep_count = max(1, int(C * args.keep))
        t_sel, (kept, _) = best_of(lambda: select_channels(A, keep_count))
        t_ls, w = best_of(lambda: least_squares_scales(A, kept))
        before = relative_reconstruction_error(A, kept)
        after = relative_reconstruction_error(A, kept, w)
        held = layer["holdout"].A
        held_out = ("n/a", "n/a") if held is None else (
            f"{relative_reconstruction_error(held, kept):.4f}", f"{relative_reconstruction_error(held, kept, w):.4f}")
        stats = layer["forward"] + layer["update"]
        sequential += stats
        print(f"| {layer['name']} | {layer['consumer']} | {C} | {len(kept)} | {stats:.2f} | {layer['update']:.2f} | "
              f"{1000 * t_sel:.2f} | {1000 * t_ls:.2f} | {before:.4f} | {after:.4f} | {held_out[0]} | {held_out[1]} |",
              flush=True)
    print(f"statistics for all layers as separate passes (ThiNet's one-layer-at-a-time protocol): {sequential:.1f} s")


if __name__ == "__main__":
    run_main(main)
