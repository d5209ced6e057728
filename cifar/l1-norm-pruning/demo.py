"""The demo: a whole L1-norm pruning experiment on real Fashion-MNIST, small enough for a 2-core CPU.

Baseline -> prune (VGG-16-A rule) -> fine-tune, scratch-E, scratch-B, each stage run through the same
scripts a paper-scale experiment uses, then a table of accuracy, params and FLOPs per stage (printed and
written as markdown). The scale is reduced on purpose (VGG-16 at a fraction of its widths, a subset of the
training images, a few epochs); the epochs keep the paper's proportions: fine-tune = E/4 at lr 0.001,
scratch-E = E, scratch-B = int(E x FLOPs ratio).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_runs/l1-norm-fashionmnist", help="output folder (replaced)")
    p.add_argument("--epochs", type=int, default=6, help="baseline and scratch-E epochs (default: %(default)s)")
    p.add_argument("--width", type=float, default=0.25, help="VGG-16 width factor (default: %(default)s)")
    p.add_argument("--train-subset", type=int, default=15000, help="training images (default: %(default)s)")
    p.add_argument("--test-subset", type=int, default=0, help="test images, 0 = all 10,000 (default: %(default)s)")
    p.add_argument("--data", default=None, help="Fashion-MNIST folder (default: ./data, then "
                                                 "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    data = ["--dataset", "fashionmnist", "--test-subset", str(args.test_subset)] + \
           (["--data", args.data] if args.data else [])
    train = data + ["--train-subset", str(args.train_subset), "--seed", str(args.seed), "--no-progress"]
    d = lambda name: os.path.join(args.out, name)  # noqa: E731
    pruned = os.path.join(d("pruned"), "pruned.pth.tar")
    ft_epochs = max(1, round(args.epochs / 4))
    stages = [
        ("baseline", "train.py", train + ["--arch", "vgg", "--depth", "16", "--width", str(args.width),
                                          "--epochs", str(args.epochs), "--save", d("baseline")]),
        ("prune", "prune.py", data + ["--model", os.path.join(d("baseline"), "checkpoint.pth.tar"),
                                      "--save", d("pruned")]),
        ("fine-tune", "finetune.py", train + ["--refine", pruned, "--epochs", str(ft_epochs), "--save", d("finetune")]),
        ("scratch-E", "scratch.py", train + ["--scratch", pruned, "--budget", "E", "--epochs", str(args.epochs),
                                             "--save", d("scratch-E")]),
        ("scratch-B", "scratch.py", train + ["--scratch", pruned, "--budget", "B", "--epochs", str(args.epochs),
                                             "--save", d("scratch-B")]),
    ]
    start = time.time()
    for name, script, argv in stages:
        cmd = [sys.executable, os.path.join(HERE, script)] + argv
        print(f"\n=== {name}: {' '.join(os.path.relpath(c) if os.path.exists(c) else c for c in cmd[1:])}",
              flush=True)
        if subprocess.call(cmd) != 0:
            sys.exit(f"demo: stage {name} failed")
    total = time.time() - start

    load = lambda path: json.load(open(path))  # noqa: E731
    prune = load(os.path.join(d("pruned"), "prune.json"))
    rows = []
    for name, folder in [("baseline (unpruned)", "baseline"), ("fine-tuned", "finetune"),
                         ("scratch-E", "scratch-E"), ("scratch-B", "scratch-B")]:
        s = load(os.path.join(d(folder), "summary.json"))
        rows.append((name, s["epochs"], s["final_prec1"], s["best_prec1"], s["params"], s["flops"], s["macs"],
                     s["wall_time_s"]))
    header = ("| stage | epochs | test acc (final) | test acc (best) | params | FLOPs | MACs | time (s) |\n"
              "|---|---|---|---|---|---|---|---|")
    lines = [header]
    for name, ep, fin, best, params, flops, macs, t in rows:
        lines.append(f"| {name} | {ep} | {100 * fin:.2f} | {100 * best:.2f} | {params:,} | {flops:,} | {macs:,} | {t:.0f} |")
    acc_pruned = prune["acc_after"]
    lines.insert(2, f"| pruned, before retraining | - | {100 * acc_pruned:.2f} | - | {prune['params_pruned']:,} | "
                    f"{prune['flops_pruned']:,} | {prune['macs_pruned']:,} | - |" if acc_pruned is not None else
                 f"| pruned, before retraining | - | n/a | - | {prune['params_pruned']:,} | {prune['flops_pruned']:,} | "
                 f"{prune['macs_pruned']:,} | - |")
    n_test = args.test_subset or 10000
    note = (f"L1-norm filter pruning (VGG-16-A rule) on Fashion-MNIST, VGG-16 at width x{args.width} "
            f"(cfg {prune['cfg_base']} -> {prune['cfg']}), {args.train_subset} training images, {n_test} test "
            f"images, baseline {args.epochs} epochs, seed {args.seed}; FLOPs ratio {prune['flops_ratio']:.3f} "
            f"(reference convention). A CPU-scale demo, not the paper's setting (VGG-16 on CIFAR-10, 160 epochs). "
            f"Total time {total / 60:.1f} min.")
    table = "\n".join(lines)
    md = f"# Demo: L1-norm pruning on Fashion-MNIST\n\n{note}\n\n{table}\n"
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write(md)
    print("\n" + note + "\n\n" + table + f"\n\nwritten to {os.path.join(args.out, 'RESULTS.md')}")


if __name__ == "__main__":
    main()
