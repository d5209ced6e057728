"""Collect finished runs into the paper's tables and plots: every number from the runs' own files.

    python -m utils.results logs/ --out results/            # tables (markdown + CSV) and plots (PNG)
    python -m utils.results logs/l1-norm logs/slimming --out results/ --metric final --no-plot

Each ``prune.json`` under the given folders is one pruned model: its ``source`` names the baseline
checkpoint (whose folder holds the baseline's ``summary.json``), and the fine-tune / scratch-E / scratch-B
runs are the ``summary.json`` files whose source is that pruned checkpoint. Runs of the same setting
(dataset, model, method, pruned model) with different seeds are one row: mean ± sample std over the runs
that finished, with their number. A stage with no finished run shows as ``missing``, never as zero.
comparison.md answers the paper's question per row and per method: scratch-E and scratch-B minus fine-tuned,
paired by seed.
Accuracy is the best test accuracy over epochs (``--metric best``, what the reference records and the
paper reports) or the last epoch's (``--metric final``). A tree of runs copied or moved elsewhere (another
machine, an archive of the JSON files alone) still collects: recorded paths are mapped to where the runs are now.
"""
import argparse
import csv
import io
import json
import math
import os
import statistics
import sys

STAGES = ("baseline", "finetune", "scratch-E", "scratch-B")
# runs some methods add beside the paper's three, as extra columns when a table has them: EKG's fine-tune without
# its memory bank (one view, cross-entropy: the official README command)
EXTRA_STAGES = {"finetune-ce": "fine-tuned (CE only)"}
STAGE_TITLES = {"baseline": "baseline", "finetune": "fine-tuned", "scratch-E": "scratch-E", "scratch-B": "scratch-B"}
COLUMNS = ["dataset", "model", "method", "pruned model", "baseline", "fine-tuned", "scratch-E", "scratch-B",
           "params", "FLOPs", "FLOPs pruned", "params pruned"]


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        from utils.errors import UserError
        raise UserError(f"{path}: not a readable results file ({exc})") from None


def _norm(path, moves=()):
    """A recorded path as it is here: moved with its run tree (see ``moves``), symlinks resolved (a run reached
    through a symlink, a shared baseline, is the same run)."""
    if path is None:
        return None
    path = os.path.normpath(path)
    for old, new in moves:
        if path == old or path.startswith(old + os.sep):
            path = new + path[len(old):]
            break
    return os.path.realpath(path)


def moves_of(summaries):
    """(old root, new root) pairs, longest first, of run trees copied or moved since they ran: each summary
    records the folder it was saved to; where that differs from the folder it lies in now, the path
    components they end with in common name the run and the rest is the root that moved. Recorded sources
    under an old root are then read under the new one."""
    moves = set()
    for folder, s in summaries:
        saved = s.get("folder") or (s.get("args") or {}).get("save")
        if not saved or not os.path.isabs(saved):
            continue
        old, new = os.path.normpath(saved).split(os.sep), folder.split(os.sep)
        tail = 0
        while tail < min(len(old), len(new)) - 1 and old[-1 - tail] == new[-1 - tail]:
            tail += 1
        if tail and old != new:
            moves.add((os.sep.join(old[:-tail]), os.sep.join(new[:-tail])))
    return sorted(moves, key=lambda m: -len(m[0]))


def _recorded_path(folder, path):
    """A path a record holds: relative to the record's own folder (records written since paths became relative),
    or absolute as the machine that made it saw it (older records)."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(folder, path))


def _source_of(summary, folder):
    """The checkpoint a fine-tune / scratch run started from."""
    if summary.get("source"):
        return _recorded_path(folder, summary["source"])
    args = summary.get("args") or {}
    for key in ("refine", "scratch", "pruned"):
        if args.get(key):
            return args[key]
    return None


def pruned_label(record):
    """How the paper names a pruned model: the variant, the ratio or the rate of its rule, given to the prune
    step or, failing that, to the training of its source (``source_options``: SFP's --rate, Sparse Structure
    Selection's --sss-gamma)."""
    for rec in (record, record.get("source_options") or {}):
        if rec.get("variant"):
            return str(rec["variant"])
        if rec.get("widths"):  # per-layer targets from a file (regression pruning's --widths vgg16_5x.widths)
            return os.path.splitext(os.path.basename(str(rec["widths"])))[0]
        for key, fmt in (("percent", "{:.0%}"), ("rate", "rate {:g}"), ("sss_gamma", "gamma {:g}"),
                         ("keep_flops", "FLOPs kept {:g}")):
            if rec.get(key) is not None:
                return fmt.format(rec[key])
    return "pruned"


def scan(roots):
    """(prune records, summaries, folders): records and summaries are lists of (real folder, dict), each run once
    however it is reached; folders maps every path a run folder is reached by (its own, or a symlink such as a
    shared trunk's) to its real path."""
    prunes, summaries, folders, seen = [], [], {}, set()
    for root in roots:
        if not os.path.isdir(root):
            from utils.errors import UserError
            raise UserError(f"{root}: no such folder")
        for folder, dirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            folders[os.path.abspath(folder)] = real
            for d in list(dirs):
                sub = os.path.realpath(os.path.join(folder, d))
                if sub in seen or sub == real:  # reached before (a symlink to a run, or a cycle): name it only
                    folders[os.path.abspath(os.path.join(folder, d))] = sub
                    dirs.remove(d)
            if real in seen:
                continue
            seen.add(real)
            if "prune.json" in files:
                prunes.append((real, _load(os.path.join(folder, "prune.json"))))
            if "summary.json" in files:
                summaries.append((real, _load(os.path.join(folder, "summary.json"))))
    return prunes, summaries, folders


class Locator:
    """Where a run folder recorded in another run's files is now. Recorded paths are absolute paths of the
    machine and place the runs were made in (or relative to the folder they were started from): they are
    mapped through the moves of the tree (``moves_of``), and failing that matched by their trailing path
    components against the run folders found here (the longest match, if it is unique and at least the last
    two components), so a tree copied, moved or renamed at its top still links up."""

    def __init__(self, folders, moves):
        self.folders, self.moves = folders, moves
        self.reals = set(folders.values())
        self._parts = {alias: alias.split(os.sep) for alias in folders}

    def find(self, path):
        if path is None:
            return None
        mapped = _norm(path, self.moves)
        if mapped in self.reals:
            return mapped
        parts = os.path.normpath(path).split(os.sep)
        best, best_len, tie = None, 1, False
        for alias, alias_parts in self._parts.items():
            n = 0
            while n < min(len(parts), len(alias_parts)) and parts[-1 - n] == alias_parts[-1 - n]:
                n += 1
            if n > best_len:
                best, best_len, tie = self.folders[alias], n, False
            elif n == best_len and best is not None and self.folders[alias] != best:
                tie = True
        return best if best is not None and not tie else mapped


def collect(roots, metric="best"):
    """Rows of the paper's table: {key fields, stage -> [accuracies], params, flops, ...}."""
    prunes, summaries, folders = scan(roots)
    by_folder = {folder: s for folder, s in summaries}
    locate = Locator(folders, moves_of(summaries + prunes))
    branches = {}  # pruned checkpoint's folder -> {stage: summary}
    for folder, s in summaries:
        if s.get("stage") in ("finetune", "scratch-E", "scratch-B") or s.get("stage") in EXTRA_STAGES:
            src = _source_of(s, folder)
            if src:
                branches.setdefault(locate.find(os.path.dirname(os.path.normpath(src))), []).append(s)
    key_of = f"{metric}_prec1"
    rows = {}
    for folder, rec in sorted(prunes, key=lambda p: p[0]):
        base_folder = (locate.find(os.path.dirname(_recorded_path(folder, rec["source"]))) if rec.get("source")
                       else None)
        base = by_folder.get(base_folder)
        arch = rec.get("arch") or (base or {}).get("arch") or "?"
        depth = rec.get("depth") or (base or {}).get("depth") or ""
        dataset = rec.get("dataset") or (base or {}).get("dataset") or "?"
        key = (dataset, model_label(arch, depth, rec, base), rec.get("method", "?"), pruned_label(rec))
        row = rows.setdefault(key, {"runs": 0, **{s: [] for s in STAGES}, "params": [], "flops": [],
                                    "params_pruned": [], "flops_pruned": [], "baseline_runs": {},
                                    "baseline_histories": {}, "baseline_stages": {}, "by_seed": {}})
        row["runs"] += 1
        if base and base.get(key_of) is not None:
            row["baseline"].append(base[key_of])
            row["baseline_runs"][base_folder] = base[key_of]
            row["baseline_histories"][base_folder] = base.get("prec1_history")
            row["baseline_stages"][base_folder] = base.get("stage", "baseline")
        for s in branches.get(folder, []):
            if s.get(key_of) is not None:
                row.setdefault(s["stage"], []).append(s[key_of])
                row["by_seed"].setdefault(s["stage"], []).append((s.get("seed"), s[key_of]))
        for k, rk in (("params", "params_base"), ("flops", "flops_base"), ("params_pruned", "params_pruned"),
                      ("flops_pruned", "flops_pruned")):
            if rec.get(rk) is not None:
                row[k].append(rec[rk])
    return rows


def check_convergence(rows, *, bar=0.88, tolerance=0.005, max_std=0.015, runs=3, last=0.25):
    """What keeps a table from carrying a conclusion, one line per failure (none: it can): a baseline run (a
    trunk) that still improved over its last ``last`` of epochs (the best of that stretch's second half beats the
    best of its first half by more than ``tolerance``: the best-over-epochs accuracy the table reports was still
    rising), or whose record has no per-epoch accuracies; a plainly trained one (recorded stage 'baseline')
    whose best accuracy is under ``bar``; a column with other than ``runs`` runs, or whose sample std is
    ``max_std`` or more. Accuracies as fractions. A trunk trained under its method's penalty (slimming's and SSS's
    'sparsity', SFP's 'sfp') is held to the flatness rule only: its accuracy is the method's trade-off, not a
    sign that the scale is too small, and its architecture's plain baseline is what shows that."""
    problems = []
    for key in sorted(rows):
        r, name = rows[key], " / ".join(map(str, key[1:]))
        stages = r.get("baseline_stages", {})
        for folder, hist in sorted(r["baseline_histories"].items()):
            where = f"{name}: baseline {os.path.basename(os.path.dirname(folder))}"
            if not hist:
                problems.append(f"{where}: no per-epoch accuracies in its summary.json")
                continue
            q = max(1, math.ceil(len(hist) * last))
            if stages.get(folder, "baseline") == "baseline" and max(hist) < bar:
                problems.append(f"{where}: best {100 * max(hist):.2f}% < {100 * bar:g}%")
            # within the last quarter, not against the epochs before it: the recipe's LR drop at 75% of the
            # epochs opens that quarter, and the step it gives is not a sign of training left undone; best against
            # best, so one low epoch at the quarter's start (or SFP's LR drop at 80%) does not decide it either
            half = q // 2
            if half and max(hist[-half:]) - max(hist[-q:-half]) > tolerance:
                problems.append(f"{where}: still improving, best {100 * max(hist[-half:]):.2f}% in the last {half} "
                                f"of its last {q} epochs against {100 * max(hist[-q:-half]):.2f}% in the "
                                f"{q - half} before")
        for stage in STAGES + tuple(s for s in EXTRA_STAGES if r.get(s)):
            values = r.get(stage, [])
            if len(values) != runs:
                problems.append(f"{name}: {stage} has {len(values)} run(s), not {runs}")
            elif runs > 1 and statistics.stdev(values) >= max_std:
                problems.append(f"{name}: {stage} std {100 * statistics.stdev(values):.2f} >= "
                                f"{100 * max_std:g} points")
    return problems


def model_label(arch, depth, record, base):
    """arch-depth (vgg11_bn, not vgg11_bn-11), with the width factor of a model built at other than its
    default widths (``--width``): vgg-16 x0.25."""
    label = f"{arch}-{depth}" if depth and str(depth) not in str(arch) else str(arch)
    width = record.get("width")
    if width is None:
        width = ((base or {}).get("args") or {}).get("width")
    return label if width in (None, 1, 1.0) else f"{label} x{width:g}"


def mean_std(values):
    if not values:
        return None, None, 0
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None), len(values)


def fmt_acc(values):
    m, s, n = mean_std(values)
    if m is None:
        return "missing"
    text = f"{100 * m:.2f}"
    if s is not None:
        text += f" ± {100 * s:.2f}"
    return text + f" ({n})"


def fmt_count(values):
    if not values:
        return "missing"
    v = statistics.fmean(values)
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}K"


def extra_stages(rows):
    """The EXTRA_STAGES some row of the table has, in their order."""
    return [s for s in EXTRA_STAGES if any(r.get(s) for r in rows.values())]


def fmt_extra(row, stage, method_has_it):
    """An extra stage's cell: '-' where the row's method has no such stage at all (no row of it ran one), so that
    'missing' keeps meaning runs that have not finished."""
    return fmt_acc(row.get(stage, [])) if method_has_it else "-"


def markdown(rows, metric):
    extra = extra_stages(rows)
    methods_with = {s: {k[2] for k, r in rows.items() if r.get(s)} for s in extra}
    lines = [f"Test accuracy (%), {metric} over epochs: mean ± sample std (number of runs); params and FLOPs "
             "(reference convention) of the unpruned -> pruned model; ratio = FLOPs pruned away"
             + ("; - = a stage the method does not have." if extra else "."), "",
             "| dataset | model | method | pruned model | baseline | fine-tuned | scratch-E | scratch-B | "
             "params | FLOPs | FLOPs pruned |" + "".join(f" {EXTRA_STAGES[s]} |" for s in extra),
             "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(extra)]
    for key in sorted(rows):
        r = rows[key]
        fl, fp = r["flops"], r["flops_pruned"]
        ratio = f"{100 * (1 - statistics.fmean(fp) / statistics.fmean(fl)):.1f}%" if fl and fp else "missing"
        lines.append("| " + " | ".join(list(key) + [fmt_acc(r[s]) for s in STAGES] + [
            f"{fmt_count(r['params'])} -> {fmt_count(r['params_pruned'])}",
            f"{fmt_count(r['flops'])} -> {fmt_count(r['flops_pruned'])}", ratio]
            + [fmt_extra(r, s, key[2] in methods_with[s]) for s in extra]) + " |")
    return "\n".join(lines) + "\n"


COMPARED = ("scratch-E", "scratch-B")  # each against fine-tuned: the paper's question


def paired(row, stage, against="finetune"):
    """(differences stage - against, one per seed that has exactly one run of each), as fractions."""
    runs = {}
    for name in (stage, against):
        for seed, acc in row["by_seed"].get(name, []):
            runs.setdefault(seed, {}).setdefault(name, []).append(acc)
    return [r[stage][0] - r[against][0] for seed, r in sorted(runs.items(), key=lambda kv: str(kv[0]))
            if seed is not None and len(r.get(stage, [])) == 1 and len(r.get(against, [])) == 1]


def fmt_diff(diffs):
    if not diffs:
        return "missing"
    m, s, n = mean_std(diffs)
    text = f"{100 * m:+.2f}" + (f" ± {100 * s:.2f}" if s is not None else "")
    return text + f" ({sum(d >= 0 for d in diffs)}/{n})"


def comparison(rows):
    """The paper's question, row by row and per method: scratch-E and scratch-B against fine-tuning, paired by
    seed (the same trunk, pruned model and seed), so the trunk's seed-to-seed spread cancels."""
    lines = ["Scratch against fine-tuned, paired by seed: scratch - fine-tuned in points, mean ± sample std over "
             "the seeds with both runs (seeds where scratch is at least as good / seeds).", "",
             "| dataset | model | method | pruned model | " + " | ".join(f"{s} - fine-tuned" for s in COMPARED)
             + " |", "|---|---|---|---|" + "---|" * len(COMPARED)]
    per_method = {}
    for key in sorted(rows):
        diffs = [paired(rows[key], s) for s in COMPARED]
        lines.append("| " + " | ".join(list(key) + [fmt_diff(d) for d in diffs]) + " |")
        for s, d in zip(COMPARED, diffs):
            if d:
                per_method.setdefault(key[2], {}).setdefault(s, []).append(statistics.fmean(d))
    lines += ["", "Per method, over its rows: the mean of the rows' mean differences (rows where scratch is at "
              "least as good / rows).", "",
              "| method | " + " | ".join(f"{s} - fine-tuned" for s in COMPARED) + " |",
              "|---|" + "---|" * len(COMPARED)]
    for method in sorted(per_method):
        cells = []
        for s in COMPARED:
            means = per_method[method].get(s, [])
            cells.append(f"{100 * statistics.fmean(means):+.2f} ({sum(m >= 0 for m in means)}/{len(means)})"
                         if means else "missing")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows):
    out = io.StringIO()
    w = csv.writer(out)
    header = ["dataset", "model", "method", "pruned_model"]
    for s in STAGES:
        header += [f"{s}_mean", f"{s}_std", f"{s}_runs"]
    header += ["params", "params_pruned", "flops", "flops_pruned", "flops_pruned_away"]
    extra = extra_stages(rows)
    for s in extra:
        header += [f"{s}_mean", f"{s}_std", f"{s}_runs"]
    w.writerow(header)
    for key in sorted(rows):
        r = rows[key]
        line = list(key)
        for s in STAGES:
            m, sd, n = mean_std(r[s])
            line += ["" if m is None else f"{m:.6f}", "" if sd is None else f"{sd:.6f}", n]
        mean = (lambda v: statistics.fmean(v) if v else None)
        p, pp, f, fp = mean(r["params"]), mean(r["params_pruned"]), mean(r["flops"]), mean(r["flops_pruned"])
        line += ["" if v is None else int(round(v)) for v in (p, pp, f, fp)]
        line.append("" if not (f and fp) else f"{1 - fp / f:.6f}")
        for s in extra:
            m, sd, n = mean_std(r.get(s, []))
            line += ["" if m is None else f"{m:.6f}", "" if sd is None else f"{sd:.6f}", n]
        w.writerow(line)
    return out.getvalue()


def _si(value, _pos=None):
    """Axis tick labels: 120K, 1.5M, 2G instead of 120000 (long numbers run into each other)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def plot_family(rows, family, metric):
    """Figure for one (dataset, model, method): accuracy against FLOPs and against params, one series per stage (extra
    stages too, where the method has them) across the pruned models; the baseline as a horizontal band over its
    distinct runs (a trunk shared by several pruned models counts once), or, where each pruned model has a trunk of
    its own (SFP's rate, SSS's gamma), as a series at the pruned models, since one band would average different
    networks. The stages' points are drawn a few points apart on the screen (their x values stay the costs), so that
    equal costs do not hide each other."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import offset_copy
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    keys = sorted((k for k in rows if k[:3] == family), key=lambda k: -statistics.fmean(rows[k]["flops_pruned"] or [0]))
    markers = {"baseline": "x", "finetune": "o", "scratch-E": "s", "scratch-B": "^"}  # an extra stage: "D"
    shift = {"baseline": 12, "finetune": -6, "scratch-E": 0, "scratch-B": 6}  # screen points; an extra stage: -12
    trunks = [rows[k].get("baseline_runs") or {} for k in keys]
    base_runs = {folder: acc for t in trunks for folder, acc in t.items()}
    # own trunks: no trunk serves two pruned models (a shared trunk with a seed still unfinished stays a band)
    own_trunks = len(keys) > 1 and sum(map(len, trunks)) == len(base_runs)
    titles = {**STAGE_TITLES, **EXTRA_STAGES, "baseline": "baseline (each its own trunk)"}
    stages = (("baseline",) if own_trunks else ()) + ("finetune", "scratch-E", "scratch-B") + tuple(EXTRA_STAGES)
    for ax, cost, xlabel in ((axes[0], "flops_pruned", "FLOPs per image (reference convention)"),
                             (axes[1], "params_pruned", "parameters")):
        if base_runs and not own_trunks:
            m, s, n = mean_std(list(base_runs.values()))
            ax.axhline(100 * m, color="black", lw=1, label=f"baseline ({n} run{'s' if n > 1 else ''})")
            if s:
                ax.axhspan(100 * (m - s), 100 * (m + s), color="black", alpha=0.08)
        for stage in stages:
            pts = [(statistics.fmean(rows[k][cost]), *mean_std(rows[k][stage])[:2], k[3])
                   for k in keys if rows[k].get(stage) and rows[k][cost]]
            if not pts:
                continue
            xs, ys, es = [p[0] for p in pts], [100 * p[1] for p in pts], [100 * (p[2] or 0) for p in pts]
            ax.errorbar(xs, ys, yerr=es, marker=markers.get(stage, "D"), capsize=3, label=titles[stage],
                        color="black" if stage == "baseline" else None,
                        transform=offset_copy(ax.transData, fig=fig, x=shift.get(stage, -12), units="points"))
            # drawn through an offset transform, the points do not enter the axis limits by themselves
            ax.update_datalim([(x, y + d) for x, y, e in zip(xs, ys, es) for d in (-e, e)])
            for x, y, lbl in zip(xs, ys, [p[3] for p in pts]):
                if stage == "finetune":
                    ax.annotate(lbl, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.margins(x=0.1, y=0.05)
        ax.autoscale_view()
        ax.xaxis.set_major_formatter(FuncFormatter(_si))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test accuracy (%), {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{family[2]}: {family[1]} on {family[0]}")
    fig.tight_layout()
    return fig


def family_filename(family):
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in family) + ".png"


def write_outputs(rows, out, metric, plot=True, document=None):
    """results.md (``document``, or the table alone), results.csv, comparison.md and the plots into ``out``; their
    paths, results.md first."""
    from utils.checkpoint import _atomic_write
    os.makedirs(out, exist_ok=True)
    written = []
    for name, text in (("results.md", document or markdown(rows, metric)), ("results.csv", csv_text(rows)),
                       ("comparison.md", comparison(rows))):
        path = os.path.join(out, name)
        _atomic_write(path, lambda f, t=text: f.write(t.encode()))
        written.append(path)
    if plot:
        import matplotlib.pyplot as plt
        for family in sorted({k[:3] for k in rows}):
            fig = plot_family(rows, family, metric)
            path = os.path.join(out, family_filename(family))
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            plt.close(fig)
            _atomic_write(path, lambda f, b=buf.getvalue(): f.write(b))
            written.append(path)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="folders holding runs (searched recursively)")
    p.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    p.add_argument("--metric", choices=["best", "final"], default="best",
                   help="best test accuracy over epochs (the reference's) or the last epoch's (default: best)")
    p.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                   help="write a PNG per (dataset, model, method); needs matplotlib (default: on)")
    args = p.parse_args(argv)
    from utils.errors import UserError
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UserError("--plot needs matplotlib (pip install matplotlib), or pass --no-plot") from None
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: exists and is not a folder (the tables and plots go into a folder)")
    rows = collect(args.runs, args.metric)
    if not rows:
        raise UserError(f"no prune.json under {' '.join(args.runs)}: nothing to tabulate")
    for path in write_outputs(rows, args.out, args.metric, args.plot):
        print(f"wrote {path}")
    print(markdown(rows, args.metric))
    print(comparison(rows))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from utils.errors import run_main
    run_main(main)
