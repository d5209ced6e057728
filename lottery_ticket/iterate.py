"""Iterative lottery-ticket sweep: train dense, then N rounds of (prune p of what remains, rewind the survivors
to the saved init, train the ticket), with the same mask trained from a fresh random init beside each ticket.

Round k's network keeps (1 - p)^k of the conv weights (weight level; one weight per round of rounding).
Layout under --save: round_0/ (the dense run: init.pth.tar, checkpoint.pth.tar, summary.json),
round_k/ (pruned.pth.tar + prune.json: the mask; ticket/ and scratch/: the two trainings with their
checkpoints and summary.json; round.json: the round's summary, written last), then results.json and
RESULTS.md (one row per round). Rerunning the same command resumes: finished rounds and stages are skipped,
an interrupted training continues from its checkpoint (--resume auto).
--method l1-norm does the structured version (one round: the L1-norm targets of VGG-16-A, ResNet-56/110-A/B
as filter masks). Flags after "--" go to every training stage (e.g. -- --device cuda --amp).
Example: python lottery_ticket/iterate.py --method weight-level --arch vgg16_bn --depth 16 --dataset cifar10 \\
             --rounds 5 --percent 0.2 --lr 0.1 --save logs/lottery/vgg16_bn/lr0.1 -- --device cuda
"""
import json
import os
import sys
from dataclasses import dataclass
from typing import Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dataclasses import replace  # noqa: E402

from models import model_entry  # noqa: E402
from utils import stages  # noqa: E402
from utils.checkpoint import check_writable, load_checkpoint, run_lock, save_json  # noqa: E402
from utils.cli import overrides  # noqa: E402
from utils.data import dataset_names, load_dataset  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.hparams import build_parser, hp, parse, to_dict  # noqa: E402
from utils.lottery import RewindArgs, TicketArgs, rewind_name, ticket  # noqa: E402
from utils.masks import iterative_ratios, round_density  # noqa: E402
from utils.methods import NoHparams, get_method, hparams_of  # noqa: E402

METHODS = {  # the method (lottery_ticket/*/method.py) and defaults of the paper's settings
    "weight-level": {"key": "lottery_ticket/weight-level", "arch": "vgg16_bn", "depth": 16},
    "l1-norm": {"key": "lottery_ticket/l1-norm-pruning", "arch": "vgg", "depth": 16},
}
# what must not change between a sweep's runs in the same --save (--rounds may grow)
SETTINGS = ("method", "arch", "depth", "width", "dataset", "percent", "layerwise", "schedule", "variant", "prune",
            "rewind_epoch", "epochs", "lr", "seed", "train_subset", "test_subset", "extra")


@dataclass
class SweepArgs:
    method: str = hp("weight-level", "weight-level (unstructured magnitude masks) or l1-norm (filter masks)",
                     choices=sorted(METHODS))
    arch: Optional[str] = hp(None, "architecture (default: vgg16_bn for weight-level, vgg for l1-norm)")
    depth: Optional[int] = hp(None, "depth (default 16)")
    width: float = hp(1.0, "VGG: scale every default layer width by this factor (small models for CPU runs)")
    dataset: str = hp("cifar10", "dataset", choices=dataset_names())
    data: Optional[str] = hp(None, "dataset folder (see train.py --help)")
    save: str = hp("./logs/lottery", "output folder of the sweep")
    dense: Optional[str] = hp(None, "folder of the dense run (default SAVE/round_0); sweeps that share a dense "
                                    "run (e.g. -v A and -v B) point at the same folder")
    rounds: int = hp(5, "pruning rounds (l1-norm: 1, its targets are fixed widths)")
    percent: float = hp(0.2, "weight level: fraction of the remaining conv weights pruned per round")
    layerwise: bool = hp(False, "weight level: prune each conv layer by --percent (default: one global threshold)")
    schedule: str = hp("iterative", "iterative: round k prunes the previous ticket; oneshot: round k prunes the "
                                    "dense model straight to density (1 - p)^k", choices=["iterative", "oneshot"])
    variant: str = hp("A", "l1-norm: ResNet-56/110 configuration A or B", flags=("-v",), choices=["A", "B"])
    prune: str = hp("large", "l1-norm: keep the large, small or random filters", choices=["large", "small", "random"])
    rewind_epoch: int = hp(0, "rewind the tickets to the weights after this many epochs of the dense run "
                              "(0 = to the initialisation, as the reference)")
    scratch: bool = hp(True, "also train the random-init control of every round")
    allow_empty_layers: bool = hp(False, "weight level: go on when a round leaves a conv layer without weights "
                                         "(by default that is an error)")
    epochs: int = hp(160, "epochs of every training (dense, ticket, random init)")
    lr: float = hp(0.1, "initial learning rate of every training (the paper compares 0.1 and 0.01)")
    seed: int = hp(1, "random seed")
    train_subset: int = hp(0, "train on the first N training images only (0 = all)")
    test_subset: int = hp(0, "evaluate on the first N test images only (0 = all)")


def split_extra(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def load_json(path):
    with open(path) as f:
        return json.load(f)


def check_settings(args, extra, save, log):
    """The sweep's settings, recorded at its first run and compared at every rerun."""
    current = {**{k: v for k, v in to_dict(args).items() if k in SETTINGS}, "extra": list(extra)}
    path = os.path.join(save, "sweep.json")
    if os.path.exists(path):
        recorded = load_json(path)
        for key in SETTINGS:
            if key in recorded and recorded[key] != current[key]:
                flag = "flags after --" if key == "extra" else "--" + key.replace("_", "-")
                raise UserError(f"--save {save} holds a sweep run with {flag} {recorded[key]}, not {current[key]}; "
                                "choose another --save")
        log(f"resuming the sweep in {save}")
    save_json({**current, "rounds": args.rounds}, path)


def run_training(directory, fn, train_args, log):
    """A training stage unless it is finished; an interrupted one resumes from its checkpoint."""
    summary = os.path.join(directory, "summary.json")
    if os.path.exists(summary):
        log(f"== {directory}: done, skipped")
        return load_json(summary)
    log(f"== {directory}")
    return fn(replace(train_args, save=directory, resume="auto"))


def table(rows):
    pct = (lambda a: "-" if a is None else f"{100 * a:.2f}")  # noqa: E731
    lines = ["| round | density | target density | acc. after pruning | winning ticket (final / best) | "
             "random init (final / best) |", "|---|---|---|---|---|---|"]
    for r in rows:
        t, s = r.get("ticket") or {}, r.get("scratch") or {}
        lines.append(f"| {r['round']} | {r['density']:.4f} | {r['target_density']:.4f} | {pct(r.get('acc_after'))} | "
                     f"{pct(t.get('final_prec1'))} / {pct(t.get('best_prec1'))} | "
                     f"{pct(s.get('final_prec1'))} / {pct(s.get('best_prec1'))} |")
    return "\n".join(lines)


def sweep(argv=None, log=print):
    own, extra = split_extra(argv)
    (args,) = parse(build_parser(__doc__, SweepArgs), (SweepArgs,), own)
    method = METHODS[args.method]
    args.arch = args.arch or method["arch"]
    args.depth = args.depth or method["depth"]
    if args.method == "l1-norm" and args.rounds != 1:
        raise UserError(f"--rounds {args.rounds}: the l1-norm targets are fixed widths, so --method l1-norm has "
                        "one round")
    if args.rounds < 1:
        raise UserError(f"--rounds {args.rounds}: must be at least 1")
    if args.method == "weight-level" and not 0 < args.percent < 1:
        raise UserError(f"--percent {args.percent}: must lie in (0, 1)")
    if not 0 <= args.rewind_epoch < args.epochs:
        raise UserError(f"--rewind-epoch {args.rewind_epoch}: must lie in [0, --epochs {args.epochs})")
    ratios = iterative_ratios(args.percent, args.rounds, of="all" if args.schedule == "oneshot" else "remaining")
    load_dataset(args.dataset, args.data)  # a missing dataset stops the sweep before it records anything
    check_writable(args.save)
    with run_lock(args.save):
        created = not os.path.exists(os.path.join(args.save, "sweep.json"))
        check_settings(args, extra, args.save, log)
        try:
            return run_sweep(args, extra, method, ratios, log)
        except BaseException:
            if created and not any(f.endswith(".pth.tar") for _, _, files in os.walk(args.save) for f in files):
                # nothing was trained or pruned: leave nothing behind that would block the corrected command
                os.unlink(os.path.join(args.save, "sweep.json"))
                for folder, _, _ in sorted(os.walk(args.save), reverse=True):
                    if folder != args.save and not os.listdir(folder):
                        os.rmdir(folder)
            raise


def run_sweep(args, extra, method, ratios, log):
    rule = get_method(method["key"])
    given = overrides(extra, stages.DataArgs, stages.TrainArgs)
    data = stages.DataArgs(dataset=args.dataset, data=args.data, test_subset=args.test_subset,
                           train_subset=args.train_subset, **given[stages.DataArgs])
    train = stages.TrainArgs(**{"epochs": args.epochs, "lr": args.lr, "seed": args.seed, **given[stages.TrainArgs]})
    eval_data = stages.EvalDataArgs(dataset=data.dataset, data=data.data, test_batch_size=data.test_batch_size,
                                    test_subset=data.test_subset)
    entry = model_entry(args.arch)
    options = None
    if entry.options is not None:
        options = entry.options(**({"width": args.width} if "width" in entry.options.__dataclass_fields__ else {}))
    elif args.width != 1.0:
        raise UserError(f"--width applies to the VGGs, not {entry.name}")
    dense_dir = args.dense or os.path.join(args.save, "round_0")
    dense = run_training(dense_dir, lambda t: stages.train(rule, stages.ModelArgs(args.arch, args.depth), data, t,
                                                           RewindArgs(args.rewind_epoch), options=options, log=log),
                         train, log)
    init = os.path.join(dense_dir, rewind_name(args.rewind_epoch))
    if not os.path.exists(init):
        raise UserError(f"--dense {dense_dir}: holds no {rewind_name(args.rewind_epoch)} (train it with "
                        f"--rewind-epoch {args.rewind_epoch})")
    trained = os.path.join(dense_dir, "checkpoint.pth.tar")
    rows = [{"round": 0, "density": 1.0, "target_density": 1.0, "ticket": {k: dense[k] for k in
                                                                           ("final_prec1", "best_prec1")}}]
    for k in range(1, args.rounds + 1):
        rd = os.path.join(args.save, f"round_{k}")
        marker = os.path.join(rd, "round.json")
        if os.path.exists(marker):
            log(f"== {rd}: done, skipped")
            rows.append(load_json(marker))
            trained = os.path.join(rd, "ticket", "checkpoint.pth.tar")
            continue
        pruned = os.path.join(rd, "pruned.pth.tar")
        source = os.path.join(dense_dir, "checkpoint.pth.tar") if args.schedule == "oneshot" else trained
        if not os.path.exists(pruned):
            log(f"== {rd}: prune {source}")
            if args.method == "weight-level":
                options_ = hparams_of(rule.Hparams, percent=ratios[k - 1], layerwise=args.layerwise)
            else:
                options_ = hparams_of(rule.Hparams, variant=args.variant, prune=args.prune, seed=args.seed)
            stages.prune(rule, stages.PruneArgs(model=source, save=rd), eval_data, options_,
                         empty_ok=args.allow_empty_layers, log=log)
        record = load_checkpoint(pruned, "--pruned")["prune"]
        won = run_training(os.path.join(rd, "ticket"),
                           lambda t: ticket(rule, TicketArgs(pruned=pruned, init=init), data, t, log=log), train, log)
        control = None
        if args.scratch:
            control = run_training(os.path.join(rd, "scratch"),
                                   lambda t: stages.scratch(rule, stages.ScratchArgs(scratch=pruned, budget="E"), data,
                                                            t, NoHparams(), log=log), train, log)
        target = round_density(args.percent, k) if args.method == "weight-level" else record["density"]
        keep = ("final_prec1", "best_prec1", "epochs")
        row = {"round": k, "density": record["density"], "target_density": target,
               "masked_weights": record["masked_weights"],
               "masked_weights_kept": record["masked_weights"] - record["masked_weights_pruned"],
               "acc_before": record["acc_before"], "acc_after": record["acc_after"],
               "ticket": {x: won[x] for x in keep}, "scratch": control and {x: control[x] for x in keep}}
        save_json(row, marker)
        rows.append(row)
        trained = os.path.join(rd, "ticket", "checkpoint.pth.tar")
    save_json({"settings": load_json(os.path.join(args.save, "sweep.json")), "rounds": rows},
              os.path.join(args.save, "results.json"))
    md = table(rows)
    with open(os.path.join(args.save, "RESULTS.md"), "w") as f:
        f.write(f"# Lottery ticket sweep: {args.method}, {args.arch}-{args.depth}, {args.dataset}, lr {args.lr}\n\n"
                f"{md}\n")
    log(md)
    return rows


if __name__ == "__main__":
    run_main(sweep)
