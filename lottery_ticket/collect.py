"""Collect lottery-ticket sweeps into one table: winning ticket vs random init, mean ± sample std over seeds.

Every results.json (written by iterate.py) under the given folders is one sweep; sweeps with the same
settings but different seeds are averaged per round (the paper reports the mean of 5 CIFAR runs).
Accuracy is the best test accuracy over epochs (--metric best, what the reference records) or the last
epoch's (--metric final). Writes the markdown table to --out (and prints it).
Example: python lottery_ticket/collect.py logs/lottery --out results/lottery.md
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from utils.errors import UserError, run_main  # noqa: E402
from utils.results import fmt_acc  # noqa: E402

KEY = ("dataset", "method", "arch", "depth", "width", "variant", "prune", "schedule", "percent", "layerwise",
       "rewind_epoch", "epochs", "lr", "train_subset")


def setting(s):
    """The part of a sweep's settings that defines a row (not the seed, nor the flags passed after --, which
    are mostly about the device)."""
    s = dict(s)
    if s.get("method") == "l1-norm":
        s["percent"] = s["layerwise"] = s["schedule"] = None
    else:
        s["variant"] = s["prune"] = None
    return tuple(s.get(k) for k in KEY)


def collect(roots, metric="best"):
    rows = {}
    found = 0
    for root in roots:
        if not os.path.isdir(root):
            raise UserError(f"{root}: no such folder")
        for folder, _, files in sorted(os.walk(root)):
            if "results.json" not in files:
                continue
            with open(os.path.join(folder, "results.json")) as f:
                data = json.load(f)
            found += 1
            for r in data["rounds"]:
                row = rows.setdefault(setting(data["settings"]) + (r["round"],),
                                      {"density": [], "ticket": [], "scratch": [], "seeds": []})
                row["density"].append(r["density"])
                row["seeds"].append(data["settings"].get("seed"))
                for kind in ("ticket", "scratch"):
                    if r.get(kind):
                        row[kind].append(r[kind][f"{metric}_prec1"])
    if not found:
        raise UserError(f"no results.json under {', '.join(roots)} (run lottery_ticket/iterate.py first)")
    return rows


def markdown(rows, metric):
    lines = [f"Test accuracy (%), {metric} over epochs: mean ± sample std (number of runs). Round 0 is the dense "
             "network.", "",
             "| dataset | model | mask | lr | round | density | winning ticket | random init |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted(rows, key=lambda k: tuple("" if v is None else str(v) for v in k[:-1]) + (k[-1],)):
        d = dict(zip(KEY + ("round",), key))
        r = rows[key]
        if d["method"] == "l1-norm":
            mask = f"L1-norm {d['variant']} ({d['prune']})"
        else:
            mask = (f"{'layerwise' if d['layerwise'] else 'global'} {d['schedule']}, p={d['percent']}"
                    + (f", rewind {d['rewind_epoch']}" if d["rewind_epoch"] else ""))
        model = f"{d['arch']}-{d['depth']}" + (f" x{d['width']}" if d["width"] != 1.0 else "")
        if d["train_subset"]:  # a reduced run: say so in the row
            model += f" ({d['train_subset']} images)"
        lines.append(f"| {d['dataset']} | {model} | {mask} | {d['lr']} | {d['round']} | "
                     f"{statistics.fmean(r['density']):.4f} | {fmt_acc(r['ticket'])} | "
                     f"{'-' if d['round'] == 0 else fmt_acc(r['scratch'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", help="folders holding sweeps (searched recursively)")
    p.add_argument("--out", default=None, help="markdown file to write (default: print only)")
    p.add_argument("--metric", choices=["best", "final"], default="best", help="accuracy per run (default: best)")
    args = p.parse_args(argv)
    text = markdown(collect(args.roots, args.metric), args.metric)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
    print(text, end="")
    return text


if __name__ == "__main__":
    run_main(main)
