"""utils/results.py: the paper-style table from run folders (mean, std, several seeds, missing runs) and plots."""
import csv
import io
import json
import os
import statistics

import pytest

from conftest import ROOT, run
from utils.results import collect, csv_text, markdown, plot_family, write_outputs


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _retrained(pruned, acc=0.7):
    """fine-tune, scratch-E and scratch-B records beside the pruned model's folder, each at ``acc``."""
    for stage in ("finetune", "scratch-E", "scratch-B"):
        run_dir = os.path.join(os.path.dirname(pruned), stage)
        _write(os.path.join(run_dir, "summary.json"),
               {"stage": stage, "best_prec1": acc, "final_prec1": acc, "args": {"save": run_dir},
                "source": os.path.join(pruned, "pruned.pth.tar")})


def make_experiment(root, seed, accs, variant="A", arch="resnet", depth=56, method="l1-norm", skip=(),
                    absolute=True):
    """One seed's run folders as the run scripts lay them out; ``accs`` = stage -> (best, final)."""
    exp = os.path.join(root, f"{arch}{depth}-{variant}", f"seed{seed}")
    base_ckpt = os.path.join(exp, "baseline", "checkpoint.pth.tar")
    pruned_ckpt = os.path.join(exp, "pruned", "pruned.pth.tar")
    _write(os.path.join(exp, "baseline", "summary.json"),
           {"stage": "baseline", "best_prec1": accs["baseline"][0], "final_prec1": accs["baseline"][1],
            "arch": arch, "depth": depth, "dataset": "cifar10", "seed": seed,
            "args": {"save": os.path.join(exp, "baseline")}})
    _write(os.path.join(exp, "pruned", "prune.json"),
           {"method": method, "variant": variant, "source": base_ckpt, "params_base": 853018,
            "params_pruned": 773336, "flops_base": 252572938, "flops_pruned": 226390090 if variant == "A" else 183137866,
            "arch": arch, "depth": depth, "dataset": "cifar10"})
    for stage in ("finetune", "scratch-E", "scratch-B"):
        if stage in skip:
            continue
        src = pruned_ckpt if absolute else os.path.relpath(pruned_ckpt)
        summary = {"stage": stage, "best_prec1": accs[stage][0], "final_prec1": accs[stage][1], "seed": seed,
                   "args": {"refine" if stage == "finetune" else "scratch": src, "save": os.path.join(exp, stage)}}
        if absolute:
            summary["source"] = src
        _write(os.path.join(exp, stage, "summary.json"), summary)


ACCS = [{"baseline": (0.931, 0.930), "finetune": (0.929, 0.925), "scratch-E": (0.928, 0.920), "scratch-B": (0.932, 0.931)},
        {"baseline": (0.933, 0.931), "finetune": (0.931, 0.927), "scratch-E": (0.930, 0.924), "scratch-B": (0.930, 0.928)},
        {"baseline": (0.935, 0.932), "finetune": (0.927, 0.926), "scratch-E": (0.932, 0.925), "scratch-B": (0.934, 0.933)}]


@pytest.fixture
def runs(tmp_path):
    root = str(tmp_path / "logs")
    for seed, accs in enumerate(ACCS, start=1):
        make_experiment(root, seed, accs, "A")
    # variant B: two seeds, the second without scratch-B (still running), and no scratch-E at all
    make_experiment(root, 1, ACCS[0], "B", skip=("scratch-E",))
    make_experiment(root, 2, ACCS[1], "B", skip=("scratch-E", "scratch-B"))
    return root


def test_mean_std_and_run_counts_over_seeds(runs):
    rows = collect([runs], "best")
    a = rows[("cifar10", "resnet-56", "l1-norm", "A")]
    assert a["runs"] == 3
    for stage in ("baseline", "finetune", "scratch-E", "scratch-B"):
        assert sorted(a[stage]) == sorted(acc[stage][0] for acc in ACCS)
    b = rows[("cifar10", "resnet-56", "l1-norm", "B")]
    assert len(b["baseline"]) == 2 and len(b["finetune"]) == 2 and b["scratch-E"] == [] and len(b["scratch-B"]) == 1
    final = collect([runs], "final")[("cifar10", "resnet-56", "l1-norm", "A")]
    assert sorted(final["finetune"]) == sorted(acc["finetune"][1] for acc in ACCS)

    table = markdown(rows, "best")
    line_a = next(line for line in table.splitlines() if "| A |" in line)
    ft = [acc["finetune"][0] for acc in ACCS]
    assert f"{100 * statistics.fmean(ft):.2f} ± {100 * statistics.stdev(ft):.2f} (3)" in line_a
    line_b = next(line for line in table.splitlines() if "| B |" in line)
    cells = [c.strip() for c in line_b.strip("|").split("|")]
    assert cells[6] == "missing"  # scratch-E never ran: missing, not zero
    assert cells[7] == f"{100 * ACCS[0]['scratch-B'][0]:.2f} (1)"  # one run: no std
    assert "0.00" not in cells[6]
    assert cells[10] == f"{100 * (1 - 183137866 / 252572938):.1f}%"


def test_csv_has_mean_std_and_counts_and_blank_for_missing(runs):
    rows = list(csv.DictReader(io.StringIO(csv_text(collect([runs])))))
    by = {r["pruned_model"]: r for r in rows}
    assert int(by["A"]["finetune_runs"]) == 3 and int(by["B"]["scratch-E_runs"]) == 0
    assert by["B"]["scratch-E_mean"] == "" and by["B"]["scratch-E_std"] == ""
    assert float(by["A"]["scratch-B_mean"]) == pytest.approx(statistics.fmean(a["scratch-B"][0] for a in ACCS))
    assert float(by["A"]["baseline_std"]) == pytest.approx(statistics.stdev(a["baseline"][0] for a in ACCS))
    assert int(by["A"]["flops_pruned"]) == 226390090


def test_relative_sources_from_the_args_are_linked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_experiment("logs", 1, ACCS[0], absolute=False)
    row = collect(["logs"])[("cifar10", "resnet-56", "l1-norm", "A")]
    assert len(row["finetune"]) == 1 and len(row["scratch-B"]) == 1


@pytest.mark.parametrize("keep_original", [False, True])
def test_a_copied_or_moved_tree_of_runs_collects_where_it_is_now(runs, tmp_path, keep_original):
    """Recorded paths are the old machine's: the copy is read through the saved-folder -> current-folder map,
    never from the original (a value changed in the copy shows), and a moved tree gives the same table."""
    import shutil
    before = collect([runs], "best")
    copy = str(tmp_path / "elsewhere" / "archive")
    shutil.copytree(runs, copy, symlinks=True)
    if not keep_original:
        shutil.rmtree(runs)
    else:  # a stage of the copy differs from the original: the copy's number must be the one collected
        path = os.path.join(copy, "resnet56-A", "seed1", "finetune", "summary.json")
        with open(path) as f:
            summary = json.load(f)
        summary["best_prec1"] = 0.5
        _write(path, summary)
    after = collect([copy], "best")
    assert set(after) == set(before)
    for key, row in after.items():
        # keyed by folder: where the runs are now
        by_folder = ("baseline_runs", "baseline_histories", "baseline_stages")
        for stage in ("finetune", "scratch-E", "scratch-B"):  # by_seed holds the same values as the stage lists
            assert sorted(v for _, v in row["by_seed"].get(stage, [])) == sorted(row[stage]), (key, stage)
        row = {k: v for k, v in row.items() if k not in by_folder + ("by_seed",)}
        expected = {k: v for k, v in before[key].items() if k not in by_folder + ("by_seed",)}
        if keep_original and key[3] == "A":
            expected["finetune"] = sorted([0.5] + [a["finetune"][0] for a in ACCS[1:]])
            row = dict(row, finetune=sorted(row["finetune"]))
        assert row == expected, key


def test_plot_has_labelled_axes_and_a_series_per_stage(runs, tmp_path):
    rows = collect([runs])
    fig = plot_family(rows, ("cifar10", "resnet-56", "l1-norm"), "best")
    flops_ax, params_ax = fig.axes[:2]
    assert "FLOPs" in flops_ax.get_xlabel() and "accuracy" in flops_ax.get_ylabel()
    assert "param" in params_ax.get_xlabel()
    labels = [t.get_text() for t in flops_ax.get_legend().get_texts()]
    assert labels[0].startswith("baseline") and {"fine-tuned", "scratch-E", "scratch-B"} <= set(labels)
    written = write_outputs(rows, str(tmp_path / "out"), "best")
    png = [p for p in written if p.endswith(".png")]
    assert len(png) == 1 and open(png[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png[0]) > 10000


def test_command_line(runs, tmp_path):
    out = tmp_path / "results"
    proc = run(["-m", "utils.results", runs, "--out", out, "--no-plot"], cwd=ROOT)
    assert (out / "results.md").read_text().count("| cifar10 |") == 2
    assert (out / "results.csv").exists() and not list(out.glob("*.png"))
    assert "missing" in proc.stdout
    proc = run(["-m", "utils.results", tmp_path / "nothing", "--out", out], cwd=ROOT, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "nothing" in proc.stderr


def test_a_moved_tree_made_with_relative_save_paths_collects(tmp_path, monkeypatch):
    """As the scripts record a run started with --save logs/...: args.save relative, sources absolute (of the old
    place); after moving the tree, every stage must still be found (not 'missing')."""
    import shutil
    old = tmp_path / "old"
    old.mkdir()
    monkeypatch.chdir(old)
    exp = os.path.join("logs", "r56", "seed1")
    base_ckpt = os.path.abspath(os.path.join(exp, "baseline", "checkpoint.pth.tar"))
    pruned_ckpt = os.path.abspath(os.path.join(exp, "pruned", "pruned.pth.tar"))
    _write(os.path.join(exp, "baseline", "summary.json"),
           {"stage": "baseline", "best_prec1": 0.9, "final_prec1": 0.9, "arch": "resnet", "depth": 56,
            "dataset": "cifar10", "args": {"save": os.path.join(exp, "baseline")}})
    _write(os.path.join(exp, "pruned", "prune.json"),
           {"method": "l1-norm", "variant": "A", "source": base_ckpt, "arch": "resnet", "depth": 56,
            "dataset": "cifar10", "flops_base": 2, "flops_pruned": 1, "params_base": 2, "params_pruned": 1})
    for i, stage in enumerate(("finetune", "scratch-E", "scratch-B")):
        _write(os.path.join(exp, stage, "summary.json"),
               {"stage": stage, "best_prec1": 0.8 + i / 100, "final_prec1": 0.8, "source": pruned_ckpt,
                "args": {"save": os.path.join(exp, stage)}})
    new = tmp_path / "elsewhere" / "runs"
    new.parent.mkdir()
    shutil.move(str(old / "logs"), str(new))
    monkeypatch.chdir(tmp_path)
    rows = collect([str(new)])
    row = rows[("cifar10", "resnet-56", "l1-norm", "A")]
    assert row["baseline"] == [0.9]
    assert row["finetune"] == [0.8] and row["scratch-E"] == [0.8 + 1 / 100] and row["scratch-B"] == [0.8 + 2 / 100]
    assert "missing" not in markdown(rows, "best").splitlines()[-1]


def test_plot_counts_a_shared_baseline_once_and_keeps_equal_costs_apart(tmp_path):
    """Two ratios pruned from the same two trunks: the band is over 2 runs (not 4) with their std; stages at the
    same FLOPs are drawn at different x; ticks read 120K, not 120000."""
    root = str(tmp_path / "logs")
    for seed, acc in ((1, 0.90), (2, 0.80)):
        base = os.path.join(root, f"seed{seed}", "baseline")
        _write(os.path.join(base, "summary.json"), {"stage": "baseline", "best_prec1": acc, "final_prec1": acc,
                                                    "arch": "vgg", "depth": 16, "dataset": "d",
                                                    "args": {"save": base, "width": 0.25}})
        for pct in (0.3, 0.5):
            pruned = os.path.join(root, f"seed{seed}", f"p{pct}", "pruned")
            _write(os.path.join(pruned, "prune.json"),
                   {"method": "m", "percent": pct, "source": os.path.join(base, "checkpoint.pth.tar"),
                    "flops_base": 200000, "flops_pruned": 120000, "params_base": 100000, "params_pruned": 120000})
            _retrained(pruned)
    rows = collect([root])
    assert {k[1] for k in rows} == {"vgg-16 x0.25"}  # the width is part of the model's name
    for key, row in rows.items():
        assert len(row["baseline"]) == 2  # each row: its own two trunks
    fig = plot_family(rows, ("d", "vgg-16 x0.25", "m"), "best")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "baseline (2 runs)"
    band = [p for p in ax.patches if p.get_alpha() == 0.08]
    assert len(band) == 1
    assert band[0].get_height() == pytest.approx(2 * 100 * statistics.stdev([0.9, 0.8]))  # +- one std of 2 runs
    drawn = {c.get_label(): c.lines[0] for c in ax.containers}
    assert set(drawn) == {"fine-tuned", "scratch-E", "scratch-B"}
    assert {x for line in drawn.values() for x in line.get_xdata()} == {120000}  # the data stay the costs
    fig.canvas.draw()
    screen = {line.get_transform().transform((line.get_xdata()[0], line.get_ydata()[0]))[0] for line in drawn.values()}
    assert len(screen) == 3  # same FLOPs, three distinct positions on the screen
    assert ax.xaxis.get_major_formatter()(120000, 0) == "120K"
    assert ax.xaxis.get_major_formatter()(1500000, 0) == "1.5M"
    # a third ratio pruned so far from seed 1's trunk only: still one shared band, not a series per pruned model
    base = os.path.join(root, "seed1", "baseline")
    pruned = os.path.join(root, "seed1", "p0.7", "pruned")
    _write(os.path.join(pruned, "prune.json"),
           {"method": "m", "percent": 0.7, "source": os.path.join(base, "checkpoint.pth.tar"),
            "flops_base": 200000, "flops_pruned": 60000, "params_base": 100000, "params_pruned": 60000})
    _retrained(pruned)
    rows = collect([root])
    assert len(rows) == 3
    ax = plot_family(rows, ("d", "vgg-16 x0.25", "m"), "best").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "baseline (2 runs)"


def test_out_on_an_existing_file_is_a_one_line_error(runs, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    proc = run(["-m", "utils.results", runs, "--out", target, "--no-plot"], cwd=ROOT, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--out" in proc.stderr
    assert target.read_text() == "x"


def test_records_written_by_the_stages_hold_no_absolute_path_and_a_moved_tree_collects(cifar_dir, tmp_path):
    """prune.json and summary.json name their source relative to their own folder (no path of the machine that
    made them), and the collector links such a tree wherever it has been moved."""
    import shutil
    from conftest import L1_KEY, stage
    quiet = ["--no-progress", "--no-tensorboard"]
    data = ["--dataset", "cifar10", "--data", cifar_dir, "--train-subset", "100", "--test-subset", "50"]
    root = tmp_path / "runs" / "vgg16" / "seed1"
    stage(L1_KEY, "train", data + ["--arch", "vgg", "--depth", "16", "--width", "0.0625", "--epochs", "1", "--save",
                                   root / "baseline"] + quiet, log=lambda *a: None)
    stage(L1_KEY, "prune", data[:4] + ["--model", root / "baseline" / "checkpoint.pth.tar", "--save", root / "pruned"],
          log=lambda *a: None)
    for name, flags in (("finetune", ["--refine", root / "pruned" / "pruned.pth.tar"]),
                        ("scratch-B", ["--scratch", root / "pruned" / "pruned.pth.tar", "--budget", "B"])):
        stage(L1_KEY, name.split("-")[0], data + flags + ["--epochs", "1", "--save", root / name] + quiet,
              log=lambda *a: None)
    prune = json.loads((root / "pruned" / "prune.json").read_text())
    assert prune["source"] == os.path.join("..", "baseline", "checkpoint.pth.tar") and "folder" not in prune
    for name in ("finetune", "scratch-B"):
        summary = json.loads((root / name / "summary.json").read_text())
        assert summary["source"] == os.path.join("..", "pruned", "pruned.pth.tar") and "folder" not in summary
    moved = tmp_path / "elsewhere" / "archive"
    shutil.move(str(tmp_path / "runs"), str(moved))
    row = collect([str(moved)])[("cifar10", "vgg-16 x0.0625", "l1-norm", "A")]
    assert len(row["baseline"]) == len(row["finetune"]) == len(row["scratch-B"]) == 1


def test_convergence_check_names_each_failing_condition(tmp_path):
    """check_convergence on planted records: a converged three-seed row passes; a baseline under the bar, one
    still improving in its last quarter, one without per-epoch accuracies, a spread column and a missing seed are
    each reported, with the row and the run."""
    from utils.results import check_convergence
    root = str(tmp_path / "good")
    for seed, accs in enumerate(ACCS, start=1):
        make_experiment(root, seed, accs)
        path = os.path.join(root, "resnet56-A", f"seed{seed}", "baseline", "summary.json")
        with open(path) as f:
            rec = json.load(f)
        best = rec["best_prec1"]  # reached in epoch 6 of 8, the last two within 0.2 points of it
        _write(path, {**rec, "prec1_history": [0.80, 0.85, 0.87, 0.88, 0.89, best, best - 0.001, best - 0.002]})
    assert check_convergence(collect([root], "best")) == []

    bad = str(tmp_path / "bad")
    histories = {1: [0.5, 0.6, 0.7, 0.8, 0.85, 0.875, 0.874, 0.873],        # under 88%
                 2: [0.80, 0.85, 0.87, 0.88, 0.88, 0.88, 0.89, 0.90],         # +2 points in its last 2 epochs
                 3: None}                                                     # no history recorded
    spread = [dict(a) for a in ACCS]
    spread[2]["scratch-B"] = (0.90, 0.90)  # scratch-B: 93.2, 93.0, 90.0 -> std 1.79 points
    for seed, accs in enumerate(spread, start=1):
        make_experiment(bad, seed, accs, skip=("scratch-E",) if seed == 3 else ())
        path = os.path.join(bad, "resnet56-A", f"seed{seed}", "baseline", "summary.json")
        with open(path) as f:
            rec = json.load(f)
        _write(path, {**rec, **({"prec1_history": histories[seed]} if histories[seed] else {})})
    problems = check_convergence(collect([bad], "best"))
    assert any("resnet-56 / l1-norm / A: baseline seed1: best 87.50% < 88%" in p for p in problems), problems
    assert any("baseline seed2: still improving, best 90.00% in the last 1 of its last 2 epochs against 89.00% in "
               "the 1 before" in p
               for p in problems), problems
    assert any("baseline seed3: no per-epoch accuracies" in p for p in problems), problems
    assert "resnet-56 / l1-norm / A: scratch-B std 1.79 >= 1.5 points" in problems, problems
    assert "resnet-56 / l1-norm / A: scratch-E has 2 run(s), not 3" in problems, problems
    assert len(problems) == 5


def planted_trunks(root, history, **record):
    """Three seeds of ACCS whose baselines record ``history`` per epoch (and ``record``'s fields); their rows."""
    for seed, accs in enumerate(ACCS, start=1):
        make_experiment(root, seed, accs)
        path = os.path.join(root, "resnet56-A", f"seed{seed}", "baseline", "summary.json")
        with open(path) as f:
            rec = json.load(f)
        _write(path, {**rec, **record, "prec1_history": history})
    return collect([root], "best")


@pytest.mark.parametrize("stage", ["sparsity", "sfp"])
def test_convergence_check_holds_a_penalized_trunk_to_flatness_only(tmp_path, stage):
    """A trunk trained under its method's penalty (recorded stage 'sparsity' or 'sfp') under the bar is not a
    failure (its accuracy is the method's result); still improving in its last quarter is, as for any trunk."""
    from utils.results import check_convergence
    flat = [0.5, 0.6, 0.7, 0.75, 0.76, 0.77, 0.768, 0.769]
    rising = [0.5, 0.6, 0.7, 0.75, 0.76, 0.77, 0.79, 0.80]
    for name, history in (("flat", flat), ("rising", rising)):
        problems = check_convergence(planted_trunks(str(tmp_path / name), history, stage=stage))
        if name == "flat":
            assert problems == []
        else:
            assert len(problems) == 3 and all("still improving, best 80.00%" in p for p in problems), problems
    plain = planted_trunks(str(tmp_path / "plain"), flat)  # the same history as a plain baseline fails the bar
    assert sum("best 77.00% < 88%" in p for p in check_convergence(plain)) == 3


def test_comparison_pairs_scratch_with_fine_tuning_by_seed(runs):
    """scratch - fine-tuned per seed (the same trunk and pruned model), mean ± std and the seeds where scratch is
    at least as good; a seed without both runs is left out; per method, the mean over rows."""
    from utils.results import comparison, paired
    rows = collect([runs], "best")
    a = rows[("cifar10", "resnet-56", "l1-norm", "A")]
    # ACCS: fine-tuned 92.9, 93.1, 92.7; scratch-E 92.8, 93.0, 93.2; scratch-B 93.2, 93.0, 93.4
    assert paired(a, "scratch-E") == pytest.approx([-0.001, -0.001, 0.005])
    assert paired(a, "scratch-B") == pytest.approx([0.003, -0.001, 0.007])
    b = rows[("cifar10", "resnet-56", "l1-norm", "B")]  # scratch-B on seed 1 only, no scratch-E
    assert paired(b, "scratch-B") == pytest.approx([0.003]) and paired(b, "scratch-E") == []
    text = comparison(rows)
    assert "| cifar10 | resnet-56 | l1-norm | A | +0.10 ± 0.35 (1/3) | +0.30 ± 0.40 (2/3) |" in text, text
    assert "| cifar10 | resnet-56 | l1-norm | B | missing | +0.30 (1/1) |" in text, text
    # per method: scratch-E over one row (+0.10), scratch-B over two (+0.30 and +0.30)
    assert "| l1-norm | +0.10 (1/1) | +0.30 (2/2) |" in text, text


def test_convergence_check_takes_the_lr_drop_opening_the_last_quarter_as_levelled_off(tmp_path):
    """The recipe's second LR drop (at 75% of the epochs) opens the last quarter: the step it gives is not
    'still improving', nor is one low epoch at the quarter's start; a best still rising within it is."""
    from utils.results import check_convergence
    step = [0.70, 0.80, 0.82, 0.84, 0.85, 0.86, 0.860, 0.862, 0.861, 0.889, 0.892, 0.891]  # +2.7 at the drop
    dip = step[:9] + [0.870, 0.892, 0.891]                                               # a low first epoch
    climb = step[:9] + [0.880, 0.886, 0.892]                                             # best +0.6 at the end
    for name, history, failures in (("step", step, 0), ("dip", dip, 0), ("climb", climb, 3)):
        problems = check_convergence(planted_trunks(str(tmp_path / name), history))
        assert len(problems) == failures, problems
        assert all("best 89.20% in the last 1 of its last 3 epochs against 88.60% in the 2 before" in p
                   for p in problems), problems


def test_an_extra_stage_is_blank_for_methods_without_it_and_missing_where_unfinished(runs):
    """EKG's fine-tune without the bank (stage finetune-ce) is a column of its own: '-' in the rows of a method
    that has no such stage, 'missing' in a row of a method that has it but whose runs have not finished."""
    root = os.path.join(runs, "ekg")
    for seed, accs in enumerate(ACCS, start=1):
        make_experiment(root, seed, accs, "k0.6", method="ekg")
        make_experiment(root, seed, accs, "k0.45", method="ekg")
        exp = os.path.join(root, "resnet56-k0.6", f"seed{seed}")
        _write(os.path.join(exp, "finetune-ce", "summary.json"),
               {"stage": "finetune-ce", "best_prec1": 0.91 + seed / 100, "final_prec1": 0.9, "seed": seed,
                "args": {"refine": os.path.join(exp, "pruned", "pruned.pth.tar"),
                         "save": os.path.join(exp, "finetune-ce")}})
    rows = collect([runs], "best")
    lines = markdown(rows, "best").splitlines()
    assert lines[2].endswith("| FLOPs pruned | fine-tuned (CE only) |") and "- = a stage the method does not" in lines[0]
    cell = {tuple(c.strip() for c in line.strip("|").split("|")[2:4]): line.strip("|").split("|")[-1].strip()
            for line in lines[4:] if line.startswith("|")}
    assert cell[("ekg", "k0.6")] == "93.00 ± 1.00 (3)"
    assert cell[("ekg", "k0.45")] == "missing"
    assert cell[("l1-norm", "A")] == cell[("l1-norm", "B")] == "-"
    legend = {f: [t.get_text() for t in plot_family(rows, ("cifar10", "resnet-56", f), "best").axes[0].get_legend()
                  .get_texts()] for f in ("ekg", "l1-norm")}
    assert "fine-tuned (CE only)" in legend["ekg"] and "fine-tuned (CE only)" not in legend["l1-norm"]


def test_plot_draws_per_model_trunks_as_a_series_not_one_band(tmp_path):
    """SFP-like: each rate trained its own trunk, so one band would average two different networks; the baseline
    is a series at each pruned model, with that model's trunks' mean, and no band or horizontal line."""
    root = str(tmp_path / "logs")
    for rate, acc, flops in ((0.7, 0.90, 150000), (0.6, 0.80, 120000)):
        for seed in (1, 2):
            base = os.path.join(root, f"rate{rate}", f"seed{seed}", "sfp")
            _write(os.path.join(base, "summary.json"), {"stage": "sfp", "best_prec1": acc + 0.01 * seed,
                                                        "final_prec1": acc, "arch": "resnet_sfp", "depth": 20,
                                                        "dataset": "d", "args": {"save": base}})
            pruned = os.path.join(root, f"rate{rate}", f"seed{seed}", "pruned")
            _write(os.path.join(pruned, "prune.json"),
                   {"method": "sfp", "rate": rate, "source": os.path.join(base, "checkpoint.pth.tar"),
                    "flops_base": 200000, "flops_pruned": flops, "params_base": 100000, "params_pruned": flops // 2})
            _retrained(pruned)
    rows = collect([root])
    family = next(iter({k[:3] for k in rows}))
    assert len(rows) == 2
    ax = plot_family(rows, family, "best").axes[0]
    assert not [p for p in ax.patches if p.get_alpha() == 0.08]  # no band
    assert not [line for line in ax.get_lines() if list(line.get_xdata()) == [0, 1]]  # no axhline
    drawn = {c.get_label(): c.lines[0] for c in ax.containers}
    assert set(drawn) == {"baseline (each its own trunk)", "fine-tuned", "scratch-E", "scratch-B"}
    base = drawn["baseline (each its own trunk)"]
    got = dict(zip(base.get_xdata(), base.get_ydata()))
    assert got == pytest.approx({150000: 91.5, 120000: 81.5})
