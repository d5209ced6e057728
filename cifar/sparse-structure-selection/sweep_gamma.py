"""Which --sss-gamma gives which depth: Sparse Structure Selection's sparsity training, then its pruning, for a list of
gammas (the paper sweeps gamma; the authors' code does not record which gamma gave ResNet-26/32/41), and a table of
the result per gamma: blocks kept, units per stage, depth, FLOPs ratio, test accuracy of the trained network and of
the pruned one (equal up to rounding: the removed blocks contributed exactly 0).

    python cifar/sparse-structure-selection/sweep_gamma.py                       # ResNet-20 on Fashion-MNIST (CPU)
    python cifar/sparse-structure-selection/sweep_gamma.py --quick               # smoke scale, seconds
    python cifar/sparse-structure-selection/sweep_gamma.py --dataset cifar10 --arch preresnet --depth 164 \\
        --epochs 160 --train-subset 0 --test-subset 0 --gammas 0.001 0.005 0.01 0.02 -- --device cuda

Default scale: ResNet-20, the first 2,000 Fashion-MNIST training images, 2,000 test images, 8 epochs (the study's
scale), gammas 0 0.01 0.02 0.05 0.1 0.2. --quick: 256 / 256 images, 2 epochs, gammas 0 1. Each gamma trains into
OUT/gamma<g>/sparse and prunes into OUT/gamma<g>/pruned (pruned-t<threshold> with --threshold) through the library
calls of train.py and prune.py; finished ones are skipped, so a second run only adds what is new. Flags after -- go
to every training run (train.py's flags).
OUT/sweep.md and OUT/sweep.json hold the table.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from utils import stages  # noqa: E402
from utils.checkpoint import save_json  # noqa: E402
from utils.cli import args_for, given, overrides  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.hparams import OneLineParser  # noqa: E402
from utils.methods import get_method  # noqa: E402

KEY = "cifar/sparse-structure-selection"
DEFAULTS = {"gammas": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2], "epochs": 8, "train_subset": 2000, "test_subset": 2000,
            "out": "sweep_runs/sss-{dataset}-{arch}{depth}"}
QUICK = {"gammas": [0.0, 1.0], "epochs": 2, "train_subset": 256, "test_subset": 256,
         "out": "sweep_runs/sss-{dataset}-{arch}{depth}-quick"}


def parse_args(argv):
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = OneLineParser(prog="sweep_gamma.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gammas", nargs="+", type=float, help="--sss-gamma values (default: 0 0.01 0.02 0.05 0.1 0.2; "
                                                           "--quick: 0 1)")
    p.add_argument("--arch", default="resnet", choices=["resnet", "preresnet"], help="(default: %(default)s)")
    p.add_argument("--depth", type=int, default=20, help="(default: %(default)s)")
    p.add_argument("--dataset", default="fashionmnist", help="(default: %(default)s)")
    p.add_argument("--data", help="dataset folder (default: the scripts' lookup)")
    p.add_argument("--epochs", type=int, help="epochs of each sparsity training (default: 8; --quick: 2)")
    p.add_argument("--train-subset", type=int, help="first N training images (0 = all; default 2000; --quick 256)")
    p.add_argument("--test-subset", type=int, help="first N test images (0 = all; default 2000; --quick 256)")
    p.add_argument("--seed", type=int, default=1, help="(default: %(default)s)")
    p.add_argument("--width", type=float, default=1.0,
                   help="the network's width factor (stem and stages 16/32/64 x this, a multiple of 1/16; "
                        "default: %(default)s; cifar/study.py's ResNets: 0.25)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="prune.py --threshold: remove blocks whose lambda is at most this (default: %(default)s, the "
                        "paper's rule)")
    p.add_argument("--out", help="folder (default: sweep_runs/sss-DATASET-ARCHDEPTH[-quick])")
    p.add_argument("--quick", action="store_true", help="smoke scale: the defaults marked --quick")
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for k in ("gammas", "epochs", "train_subset", "test_subset"):
        if getattr(args, k) is None:
            setattr(args, k, base[k])
    args.out = args.out or base["out"].format(dataset=args.dataset, arch=args.arch, depth=args.depth)
    if not args.threshold >= 0:
        raise UserError(f"--threshold {args.threshold}: must not be negative")
    if any(not g >= 0 for g in args.gammas):
        raise UserError(f"--gammas {' '.join(map(str, args.gammas))}: must not be negative")
    passed = overrides(extra, stages.TrainArgs, stages.DataArgs, what="flags after --")
    for reserved in ("save", "seed", "epochs", "resume", "dataset", "data", "train_subset", "test_subset"):
        if any(reserved in v for v in passed.values()):
            raise UserError(f"flags after --: --{reserved.replace('_', '-')} is the sweep's own flag")
    return args, passed


def run_gamma(method, args, gamma, passed, log):
    """(sparse summary, prune record) of one gamma, each skipped when already finished."""
    folder = os.path.join(args.out, f"gamma{gamma:g}")
    sparse = os.path.join(folder, "sparse")
    pruned = os.path.join(folder, "pruned" if args.threshold == 0 else f"pruned-t{args.threshold:g}")
    data = {"dataset": args.dataset, "train_subset": args.train_subset, "test_subset": args.test_subset,
            **({"data": args.data} if args.data else {}), **passed[stages.DataArgs]}
    summary_path = os.path.join(sparse, "summary.json")
    if not os.path.isfile(summary_path):
        resume = "auto" if os.path.isfile(os.path.join(sparse, "checkpoint.pth.tar")) else None
        train = args_for(stages.TrainArgs, method, "train", seed=args.seed, epochs=args.epochs, save=sparse,
                         progress=False, tensorboard=False, resume=resume, **passed[stages.TrainArgs])
        stages.train(method, given(stages.ModelArgs, arch=args.arch, depth=args.depth),
                     args_for(stages.DataArgs, method, "train", **data), train,
                     given(method.TrainHparams, sss_gamma=gamma),
                     options=given(_options_class(args.arch), block_lambda=True,
                                   **({"width": args.width} if args.width != 1.0 else {})), log=log)
    with open(summary_path) as f:
        summary = json.load(f)
    record_path = os.path.join(pruned, "prune.json")
    if not os.path.isfile(os.path.join(pruned, stages.PRUNED)):
        eval_data = {k: v for k, v in data.items() if k in stages.EvalDataArgs.__dataclass_fields__}
        stages.prune(method, given(stages.PruneArgs, model=os.path.join(sparse, "checkpoint.pth.tar"), save=pruned,
                                   device=passed[stages.TrainArgs].get("device", "auto")),
                     args_for(stages.EvalDataArgs, method, "prune", **eval_data),
                     given(method.Hparams, threshold=args.threshold), log=log)
    with open(record_path) as f:
        return summary, json.load(f)


def _options_class(arch):
    from models import model_entry
    return model_entry(arch).options


def row(gamma, summary, record):
    return {"gamma": gamma, "blocks": f"{record['blocks_pruned']}/{record['blocks_base']}", "units": record["units"],
            "depth": record["depth_pruned"], "flops_ratio": round(record["flops_ratio"], 4),
            "acc_sparse": summary["final_prec1"], "acc_pruned": record["acc_after"],
            "zero_lambdas": len(record["removed_blocks"])}


def table(rows, args):
    rule = "lambda = 0" if args.threshold == 0 else f"lambda <= {args.threshold:g}"
    net = f"{args.arch}-{args.depth}" + (f" x{args.width:g}" if args.width != 1.0 else "")
    lines = [f"Sparse Structure Selection, gamma sweep: {net} on {args.dataset} "
             f"({args.train_subset or 'all'} training / {args.test_subset or 'all'} test images, {args.epochs} "
             f"epoch(s), seed {args.seed}); blocks with {rule} removed; accuracy of the last epoch, %.", "",
             "| gamma | blocks kept | units per stage | depth | FLOPs ratio | acc trained | acc pruned |",
             "|---|---|---|---|---|---|---|"]
    pct = (lambda a: "n/a" if a is None else f"{100 * a:.2f}")  # noqa: E731
    for r in rows:
        units = " ".join(f"({n},{'T' if k else 'F'})" for n, k in r["units"])
        lines.append(f"| {r['gamma']:g} | {r['blocks']} | {units} | {r['depth']} | {r['flops_ratio']:.3f} | "
                     f"{pct(r['acc_sparse'])} | {pct(r['acc_pruned'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args, passed = parse_args(sys.argv[1:] if argv is None else argv)
    method = get_method(KEY)
    os.makedirs(args.out, exist_ok=True)
    rows, start = [], time.time()
    for gamma in args.gammas:
        t = time.time()
        log_path = os.path.join(args.out, f"gamma{gamma:g}.log")
        with open(log_path, "a") as f:
            summary, record = run_gamma(method, args, gamma, passed, log=lambda *a: print(*a, file=f, flush=True))
        rows.append(row(gamma, summary, record))
        print(f"gamma {gamma:g}: {rows[-1]['blocks']} blocks, units {record['units']}, depth {rows[-1]['depth']} "
              f"({time.time() - t:.0f}s; log {log_path})", flush=True)
    text = table(rows, args)
    with open(os.path.join(args.out, "sweep.md"), "w") as f:
        f.write(text)
    save_json({"rows": rows, "threshold": args.threshold, "arch": args.arch, "depth": args.depth,
               "dataset": args.dataset,
               "epochs": args.epochs, "train_subset": args.train_subset, "test_subset": args.test_subset,
               "seed": args.seed, "wall_s": round(time.time() - start, 1)}, os.path.join(args.out, "sweep.json"))
    print(text)
    return rows


if __name__ == "__main__":
    run_main(main)
