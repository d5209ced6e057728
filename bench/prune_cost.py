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
such pass. selection ms and least squares ms: best of --reps calls (3). The network is unpruned for every layer, so
layer i sees the full widths before it (a pruned prefix would only be cheaper). Errors on an untrained network
with random inputs say how the numbers behave, not what ThiNet achieves on trained weights.
Regression pruning (He et al. 2017, utils/lasso.py) gets its own table from the same pass: for the first
--regression-images images (default 5,000 x 10 positions = 50,000 samples per layer, the official code's count) a
forward hook on every consumer accumulates the regression's statistics (Σxxᵀ, Σxyᵀ of the consumer's input
patches and all its outputs at each sampled position); then per layer the channel Gram (C x C, from Σxxᵀ and the
weights), the LASSO selection at --keep (the whole LARS path, 'path'; and the official code's lambda bisection
with coordinate descent, 'bisection', for comparison) and the least squares with intercept over the kept channels,
with the relative errors Σ‖y − ŷ‖² / Σ‖y‖² before (kept channels, original weights) and after the fit, also on the
held-out images (--bisection: the bisection too, and whether it keeps the same channels). Its "statistics s" is
the forward up to the consumer over the first --regression-images images plus the regression's own updates;
"selection + LS ms" (Gram + path + least squares) is what the method costs per layer beyond that pass.
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
    p.add_argument("--reps", type=int, default=3, help="timed calls of each selection and least squares, the best "
                                                        "is reported (default 3)")
    p.add_argument("--bisection", action="store_true",
                   help="also time the official code's lambda bisection (coordinate descent at each lambda; "
                        "seconds per layer) next to the path")
    p.add_argument("--regression-images", type=int, default=5000,
                   help="images of the pass whose samples feed the regression's statistics (default 5000, the "
                        "official code's 500 x 10; 0: no regression table)")
    p.add_argument("--batch-size", type=int, default=250, help="images per forward (default 250)")
    p.add_argument("--keep", type=float, default=0.5, help="kept fraction of each layer's channels (default 0.5)")
    p.add_argument("--threads", type=int, default=2, help="CPU intra-op threads (default 2)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="where the forward and the statistics run (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, images and samples (default 0)")
    args = p.parse_args(argv)
    if args.quick:
        args.images = 1000
        args.regression_images = min(args.regression_images, 1000)
    if args.regression_images < 0:
        raise UserError(f"--regression-images {args.regression_images}: must not be negative")
    if args.holdout_images < 0:
        raise UserError(f"--holdout-images {args.holdout_images}: must not be negative")
    if args.images < 1 or args.samples_per_image < 1 or args.batch_size < 1 or args.threads < 1 or args.reps < 1:
        raise UserError("--images, --samples-per-image, --batch-size, --threads and --reps must be at least 1")
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
    from utils.lasso import RegressionStats
    from utils.thinet import (ConsumerSampler, ContributionGram, least_squares_scales, relative_reconstruction_error,
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
                       "forward": 0.0, "update": 0.0, "sampler": ConsumerSampler(consumer),
                       "reg": None, "reg_holdout": None, "reg_update": 0.0, "reg_forward": 0.0})

    clock = {"start": 0.0, "hooks": 0.0, "holdout": False, "images": 0}
    gen = torch.Generator().manual_seed(args.seed + 1)
    reg_gen = torch.Generator().manual_seed(args.seed + 3)

    def regression_collector(layer):
        """Forward hook: the regression's samples (input patch, all outputs) at random positions of the consumer."""
        def hook(module, inputs, output):
            key = "reg_holdout" if clock["holdout"] else "reg"
            if not clock["holdout"] and clock["images"] >= args.regression_images:
                return
            arrived = time.perf_counter()
            sp, x = layer["sampler"], inputs[0]
            if sp.kind == "conv":
                u, v = sp.draw_positions(x.shape, args.samples_per_image, reg_gen)
                u, v = u.to(x.device), v.to(x.device)
                X = sp.patches(x, u, v).permute(0, 1, 4, 2, 3).reshape(-1, sp.num_channels * sp.features)
                img = torch.arange(x.shape[0], device=x.device)[:, None]
                Y = output[img, :, u, v].reshape(-1, sp.out_channels)
            else:
                X, Y = x.flatten(1), output
            if layer[key] is None:
                layer[key] = RegressionStats(sp.num_channels, sp.features, sp.out_channels, X.device)
            layer[key].update(X, Y)
            if device == "cuda":
                torch.cuda.synchronize()
            spent = time.perf_counter() - arrived
            if not clock["holdout"]:
                layer["reg_update"] += spent
                clock["hooks"] += spent
        return hook

    def collector(layer):
        def hook(module, inputs):
            if clock["holdout"]:
                layer["holdout"].update(inputs[0], module.weight, args.samples_per_image, gen)
                return
            arrived = time.perf_counter()
            forward = arrived - clock["start"] - clock["hooks"]
            layer["forward"] += forward
            if clock["images"] < args.regression_images:  # the regression samples only the first images
                layer["reg_forward"] += forward
            layer["gram"].update(inputs[0], module.weight, args.samples_per_image, gen)
            if device == "cuda":
                torch.cuda.synchronize()
            spent = time.perf_counter() - arrived
            layer["update"] += spent
            clock["hooks"] += spent
        return hook

    handles = [layer["module"].register_forward_pre_hook(collector(layer)) for layer in layers]
    if args.regression_images:
        handles += [layer["module"].register_forward_hook(regression_collector(layer)) for layer in layers]
    data = torch.Generator(device=device).manual_seed(args.seed + 2)

    def feed(images):
        with torch.no_grad():
            for start in range(0, images, args.batch_size):
                x = torch.randn(min(args.batch_size, images - start), 3, 32, 32, generator=data, device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
                clock["start"], clock["hooks"] = time.perf_counter(), 0.0
                model(x)
                clock["images"] += x.shape[0]

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
        t_sel, (kept, _) = best_of(lambda: select_channels(A, keep_count), args.reps)
        t_ls, w = best_of(lambda: least_squares_scales(A, kept), args.reps)
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
    if args.regression_images:
        regression_table(args, layers)


def regression_table(args, layers):
    from utils.lasso import channel_gram, fit_error, least_squares, select_channels
    reg_samples = layers[0]["reg"].count
    images = min(args.regression_images, args.images)
    print(f"\nregression pruning (He et al.): {reg_samples} samples per layer ({images} images x "
          f"{args.samples_per_image} positions, every output), keep {args.keep}; best of {args.reps} (bisection: 1)")
    print("| layer | consumer | C | kept | statistics s | Gram ms | LASSO path ms | least squares ms "
          "| selection + LS ms | bisection ms (same channels?) | error before | error after | held-out before "
          "| held-out after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for layer in layers:
        st, module = layer["reg"], layer["module"]
        C = st.C
        keep_count = max(1, int(C * args.keep))
        bias = module.bias
        t_gram, (G, g, rows) = best_of(lambda: channel_gram(st, module.weight, bias), args.reps)
        t_sel, (kept, alpha, count) = best_of(lambda: select_channels(G, g, rows, keep_count, solver="path"),
                                              args.reps)
        t_ls, (new_w, new_b, before, after) = best_of(lambda: least_squares(st, kept, module.weight, bias,
                                                                            gram=(G, g)), args.reps)
        bisection = "n/a"
        if args.bisection:
            t_bis, (kept_b, _, count_b) = best_of(lambda: select_channels(G, g, rows, keep_count, solver="bisection"),
                                                  1)
            bisection = f"{1000 * t_bis:.0f} ({'same' if kept_b == kept else f'{count_b} kept'})"
        total = t_gram + t_sel + t_ls
        worst = max(worst, total)
        held = layer["reg_holdout"]
        old_w = module.weight.detach().reshape(module.weight.shape[0], C, -1)[:, kept]
        held_out = ("n/a", "n/a") if held is None else (f"{fit_error(held, kept, old_w, bias):.4f}",
                                                        f"{fit_error(held, kept, new_w, new_b):.4f}")
        stats = layer["reg_forward"] + layer["reg_update"]
        print(f"| {layer['name']} | {layer['consumer']} | {C} | {len(kept)} | {stats:.2f} | {1000 * t_gram:.1f} | "
              f"{1000 * t_sel:.1f} | {1000 * t_ls:.1f} | {1000 * total:.1f} | {bisection} | {before:.4f} | "
              f"{after:.4f} | {held_out[0]} | {held_out[1]} |", flush=True)
    print(f"regression: slowest layer's selection + least squares {worst:.3f} s")


if __name__ == "__main__":
    run_main(main)
