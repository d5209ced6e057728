"""cifar/study.py, the CPU-scale reproduction study: the commands and folder layout it plans for every method
(--dry-run), its bad-input errors, and a real smoke run on Fashion-MNIST that writes the table, skips finished
runs on a second invocation and resumes an interrupted one. Also the collector's side of the study: a shared
trunk reached through a symlink, and pruned models labelled by the ratio their source was trained with."""
import json
import os
import shlex
import time

import pytest

from conftest import HAVE_FASHION_MNIST, ROOT, run, write_cifar

pytestmark = pytest.mark.usefixtures("one_thread")

STUDY = ROOT / "cifar" / "study.py"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
E = 10  # the default E
# (method, model folder, ratio folders, trunk folder, trunk shared by the ratios)
SETTINGS = [
    ("l1-norm", "vgg16", ["A"], "baseline", True),
    ("l1-norm", "resnet56", ["A", "B"], "baseline", True),
    ("network-slimming", "vgg11", ["p0.5", "p0.6"], "sparse", True),
    ("network-slimming", "preresnet20", ["p0.4", "p0.6"], "sparse", True),
    ("sfp", "resnet20", ["rate0.7", "rate0.6"], "sfp", False),
    ("thinet", "vgg16", ["p0.3", "p0.5"], "baseline", True),
    ("thinet", "resnet20", ["p0.5"], "baseline", True),
    ("regression-pruning", "vgg16", ["p0.33", "p0.5"], "baseline", True),
    ("regression-pruning", "resnet20", ["p0.5"], "baseline", True),
    ("weight-level", "vgg11_bn", ["p0.3", "p0.8"], "baseline", True),
    ("weight-level", "preresnet20", ["p0.3", "p0.8"], "baseline", True),
    ("sss", "resnet20", ["gamma0.075", "gamma0.09"], "sparse", False),
    ("ekg", "resnet20", ["k0.6", "k0.45"], "baseline", True),
]
# plain trunks trained by an earlier method: (method, model) -> (that method, its ratio folder)
TRUNK_FROM = {("thinet", "vgg16"): ("l1-norm", "A"), ("regression-pruning", "vgg16"): ("l1-norm", "A"),
              ("regression-pruning", "resnet20"): ("thinet", "p0.5")}


def dry_run(out, *flags):
    """{--save folder: argv} of every planned command, in order, and the comment lines."""
    proc = run([STUDY, "--dry-run", "--out", out, *flags])
    commands, comments = {}, []
    for line in proc.stdout.splitlines():
        if line.startswith("# "):
            comments.append(line)
            continue
        argv = shlex.split(line)
        assert argv[0] == "python", line
        commands[argv[argv.index("--save") + 1]] = argv[1:]
    return commands, comments


def flag(argv, name):
    return argv[argv.index(name) + 1]


def test_dry_run_plans_every_method_seed_model_and_ratio(tmp_path):
    out = tmp_path / "study"
    commands, comments = dry_run(out)
    assert not out.exists(), "--dry-run must write nothing"

    expected = set()
    for method, model, ratios, trunk, shared in SETTINGS:
        for seed in (1, 2, 3):
            for i, ratio in enumerate(ratios):
                run_dir = out / method / model / ratio / f"seed{seed}"
                trunk_dir = (out / method / model / ratios[0] / f"seed{seed}" / trunk) if shared else run_dir / trunk
                if (method, model) in TRUNK_FROM:
                    first, first_ratio = TRUNK_FROM[method, model]
                    trunk_dir = out / first / model / first_ratio / f"seed{seed}" / trunk
                    assert f"# {run_dir / trunk} -> {trunk_dir} (shared trunk)" in comments
                elif not shared or i == 0:
                    expected.add(str(trunk_dir))
                for stage in ("pruned", "finetune", "scratch-E", "scratch-B") + (("finetune-ce",) if method == "ekg"
                                                                                else ()):
                    expected.add(str(run_dir / stage))

                prune = commands[str(run_dir / "pruned")]
                assert prune[0].endswith(os.path.join(method_folder(method), "prune.py"))
                # the prune step reads the real trunk folder (the collector finds the baseline via its source)
                assert flag(prune, "--model") == str(trunk_dir / "checkpoint.pth.tar")
                assert flag(prune, "--dataset") == "fashionmnist"
                train = commands[str(trunk_dir)]
                assert train[0].endswith("train.py") and flag(train, "--epochs") == str(E)
                assert flag(train, "--seed") == str(seed) and flag(train, "--train-subset") == "24000"

                ft = commands[str(run_dir / "finetune")]
                assert flag(ft, "--refine") == str(run_dir / "pruned" / "pruned.pth.tar")
                if method == "ekg":  # its own fine-tune: 100/160 of E at lr 0.01, with and without the memory bank
                    assert flag(ft, "--epochs") == "6" and flag(ft, "--lr") == "0.01" and "--knowledge" not in ft
                    ce = commands[str(run_dir / "finetune-ce")]
                    assert flag(ce, "--knowledge") == "off" and flag(ce, "--epochs") == "6"
                    assert flag(prune, "--bank-images") == "24000"  # the fine-tune's training images
                else:
                    assert flag(ft, "--epochs") == "2" and flag(ft, "--lr") == "0.001"  # E x 40/160 (SFP 40/200)
                se, sb = commands[str(run_dir / "scratch-E")], commands[str(run_dir / "scratch-B")]
                assert flag(se, "--budget") == "E" and flag(sb, "--budget") == "B"
                # scratch-B gets the trunk's E, never a count: the script multiplies by the FLOPs ratio
                assert flag(sb, "--epochs") == flag(se, "--epochs") == str(E)
                # ... and is otherwise scratch-E's command (but for --budget and the --save folder, last)
                i = sb.index("--budget") + 1
                assert sb[:i] + ["E"] + sb[i + 1:-1] == se[:-1]
                for argv in (ft, se, sb):
                    assert flag(argv, "--seed") == str(seed) and flag(argv, "--test-subset") == "2000"
    assert set(commands) == expected
    assert len(commands) == 3 * (2 + 3 * 4 + 2 + 4 * 4 + 2 + 2 * 4 + 2 + 3 * 4 + 2 + 3 * 4 + 2 + 4 * 4 + 2 + 2 * 4
                                 + 1 + 2 * 5) - 3 * len(TRUNK_FROM)

    # each method's own trunk recipe
    s1 = out / "network-slimming" / "vgg11" / "p0.5" / "seed1"
    slim = commands[str(s1 / "sparse")]
    assert "--sparsity-regularization" in slim and float(flag(slim, "--s")) == pytest.approx(1e-4 * 10)  # x 10
    pre = commands[str(out / "network-slimming" / "preresnet20" / "p0.4" / "seed1" / "sparse")]
    assert float(flag(pre, "--s")) == pytest.approx(1e-5 * 10) and flag(pre, "--arch") == "preresnet"
    assert flag(slim, "--arch") == "vgg_slim" and flag(slim, "--width") == "0.1875"
    for rate in ("0.7", "0.6"):
        sfp = commands[str(out / "sfp" / "resnet20" / f"rate{rate}" / "seed1" / "sfp")]
        assert flag(sfp, "--rate") == rate and flag(sfp, "--arch") == "resnet_sfp"
        assert flag(sfp, "--prune-layers") == "inner"  # every conv collapsed the trunk at x0.25 (docstring)
        assert sfp[sfp.index("--schedule") + 1:sfp.index("--schedule") + 5] == ["1", "3", "6", "8"]
    assert flag(commands[str(out / "l1-norm" / "resnet56" / "A" / "seed1" / "baseline")], "--depth") == "56"
    # the ResNets at --resnet-width; L1's ResNet-56 and SFP's ResNet-20 at twice that, slimming's PreResNet-20 at
    # four times (full width)
    assert flag(commands[str(out / "thinet" / "resnet20" / "p0.5" / "seed1" / "baseline")], "--width") == "0.25"
    assert flag(commands[str(out / "l1-norm" / "resnet56" / "A" / "seed1" / "baseline")], "--width") == "0.5"
    assert flag(sfp, "--width") == "0.5" and float(flag(pre, "--width")) == 1.0
    # slimming's PreResNet-20 warms up in its lr-0.1 runs (trunk, scratch), and no other run does
    warm = {str(out / "network-slimming" / "preresnet20" / p / f"seed{k}" / run) for p in ("p0.4", "p0.6")
            for k in (1, 2, 3) for run in ("scratch-E", "scratch-B")}
    warm |= {str(out / "network-slimming" / "preresnet20" / "p0.4" / f"seed{k}" / "sparse") for k in (1, 2, 3)}
    assert {save for save, argv in commands.items() if "--warmup-epochs" in argv} == warm
    assert all(flag(commands[w], "--warmup-epochs") == "1" and flag(commands[w], "--warmup-from") == "0.0125"
               for w in warm)
    b = out / "l1-norm" / "resnet56" / "B" / "seed2"
    assert flag(commands[str(b / "pruned")], "--variant") == "B"
    assert f"# {b / 'baseline'} -> {out / 'l1-norm' / 'resnet56' / 'A' / 'seed2' / 'baseline'} (shared trunk)" \
        in comments
    for gamma in ("0.075", "0.09"):  # one SSS trunk per gamma, with block lambdas, at twice the ResNet width
        sss = commands[str(out / "sss" / "resnet20" / f"gamma{gamma}" / "seed1" / "sparse")]
        assert flag(sss, "--sss-gamma") == gamma and "--block-lambda" in sss and flag(sss, "--arch") == "resnet"
        assert flag(sss, "--width") == "0.5"
    wl = commands[str(out / "weight-level" / "preresnet20" / "p0.8" / "seed3" / "pruned")]
    assert flag(wl, "--percent") == "0.8"
    # weight-level's PreResNet-20 at twice the ResNet width too (x0.25: a baseline under the bar, docstring)
    assert flag(commands[str(out / "weight-level" / "preresnet20" / "p0.3" / "seed3" / "baseline")], "--width") == "0.5"
    assert flag(commands[str(out / "weight-level" / "vgg11_bn" / "p0.3" / "seed3" / "baseline")], "--width") == "0.1875"
    assert flag(commands[str(out / "ekg" / "resnet20" / "k0.6" / "seed1" / "baseline")], "--width") == "0.5"
    # rows run outermost (a method's model, every ratio and seed), in the study's order, so that they finish one
    # after another; within a row, every seed-1 command before any seed-2 one
    rows = [tuple(os.path.relpath(s, out).split(os.sep)[:2]) for s in commands]
    order = [(method, model) for method, model, *_ in SETTINGS]
    assert [row for n, row in enumerate(rows) if n == 0 or rows[n - 1] != row] == order
    for row in order:
        seeds = [int(s.split("seed")[-1].split(os.sep)[0]) for s, r in zip(commands, rows) if r == row]
        assert seeds == sorted(seeds) and set(seeds) == {1, 2, 3}


def method_folder(method):
    return {"l1-norm": "l1-norm-pruning", "network-slimming": "network-slimming", "sfp": "soft-filter-pruning",
            "thinet": "thinet", "regression-pruning": "regression-pruning", "weight-level": "weight-level",
            "sss": "sparse-structure-selection", "ekg": "ekg"}[method]


def test_dry_run_options_select_and_scale(tmp_path):
    out = tmp_path / "q"
    commands, _ = dry_run(out, "--quick", "--methods", "sfp", "l1-norm", "--models", "resnet", "--seeds", "4")
    saves = sorted(os.path.relpath(s, out) for s in commands)
    assert {s.split(os.sep)[0] for s in saves} == {"l1-norm", "sfp"}
    assert {s.split(os.sep)[1] for s in saves} == {"resnet56", "resnet20"}
    assert all(s.split(os.sep)[3] == "seed4" for s in saves)
    trunk = commands[str(out / "l1-norm" / "resnet56" / "A" / "seed4" / "baseline")]
    assert flag(trunk, "--epochs") == "2" and flag(trunk, "--train-subset") == "256"
    assert "--no-tensorboard" in trunk  # --quick: no tensorboard

    commands, _ = dry_run(out, "--methods", "l1-norm", "--models", "vgg16", "--epochs", "12",
                          "--train-subset", "500", "--width", "0.5", "--seeds", "1")
    base = commands[str(out / "l1-norm" / "vgg16" / "A" / "seed1" / "baseline")]
    assert flag(base, "--epochs") == "12" and flag(base, "--width") == "0.5" and flag(base, "--train-subset") == "500"
    assert flag(commands[str(out / "l1-norm" / "vgg16" / "A" / "seed1" / "finetune")], "--epochs") == "3"
    assert len(commands) == 5


@pytest.mark.parametrize("flags, needle", [
    (["--epochs", "0"], "--epochs 0"),
    (["--seeds", "1", "1"], "--seeds 1 1"),
    (["--seeds", "x"], "--seeds"),
    (["--methods", "no-such-method"], "--methods"),
    (["--models", "densenet"], "--models densenet"),
    (["--methods", "sfp", "--models", "vgg"], "--models vgg"),
    (["--train-subset", "-1"], "--train-subset -1"),
    (["--train-subset", "70000"], "--train-subset 70000"),
    (["--test-subset", "20000"], "--test-subset 20000"),
    (["--width", "0"], "--width 0"),
    (["--resnet-width", "0.1"], "--resnet-width 0.1"),
    (["--data", "/no/such/folder"], "--data /no/such/folder"),
    (["--jobs", "0"], "--jobs 0"),
    (["--slimming-s-scale", "-1"], "--slimming-s-scale -1"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, flags, needle):
    out = tmp_path / "study"
    proc = run([STUDY, "--out", out, *flags], check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and needle in lines[0], proc.stderr
    assert not out.exists()


def test_out_at_another_scale_is_refused(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"scale": {"dataset": "fashionmnist", "epochs": 2,
                                                          "train_subset": 256, "test_subset": 256, "width": 0.125}}))
    proc = run([STUDY, "--out", out, "--methods", "l1-norm", "--dry-run"], check=False)
    assert proc.returncode == 2 and "another scale" in proc.stderr and "--epochs 2 there, 10 here" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = run([STUDY, "--out", tmp_path / "file", "--dry-run"], check=False)
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_a_failed_stage_stops_the_study_and_blocks_what_depends_on_it(tmp_path):
    """A stage's own one-line error is shown from its log; the study exits non-zero with one line; with
    --keep-going every step that depends on the failed one is reported blocked, none runs."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "study"
    args = [STUDY, "--quick", "--methods", "l1-norm", "--out", out, "--data", empty]
    proc = run(args + ["--jobs", "1"], check=False, env=ENV)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "study.py: error: 1 step(s) failed (l1-norm/vgg16/A/seed1 baseline), 13 not run; see the failed steps' "
        "log.txt, fix, and run the same command again"]
    assert "l1-norm/vgg16/A/seed1 baseline: FAILED (exit 2)" in proc.stdout
    assert f"train.py: error: --data {empty}: no fashionmnist dataset there" in proc.stdout  # from its log.txt
    assert "resnet56" not in proc.stdout  # stopped at the first failure

    proc = run(args + ["--jobs", "2", "--keep-going"], check=False, env=ENV)
    assert proc.returncode == 2 and "2 step(s) failed" in proc.stderr and "12 not run" in proc.stderr
    blocked = [line for line in proc.stdout.splitlines() if ": blocked (" in line]
    assert len(blocked) == 12 and any("resnet56/B/seed1 pruned: blocked" in line for line in blocked)
    assert not list(out.rglob("summary.json")) and not list(out.rglob("prune.json"))


# ------------------------------------------------------------------------------------ the collector
def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_collector_finds_a_shared_trunk_through_its_symlink(tmp_path):
    from utils.results import collect
    seed = tmp_path / "m" / "r56" / "A" / "seed1"
    _write(seed / "baseline" / "summary.json", {"stage": "baseline", "best_prec1": 0.9, "arch": "resnet",
                                                "depth": 56, "dataset": "fashionmnist"})
    other = tmp_path / "m" / "r56" / "B" / "seed1"
    other.mkdir(parents=True)
    os.symlink(os.path.join("..", "..", "A", "seed1", "baseline"), other / "baseline")
    # B's prune step was given the symlinked path: still the same run
    for ratio, src in (("A", seed / "baseline"), ("B", other / "baseline")):
        d = tmp_path / "m" / "r56" / ratio / "seed1"
        _write(d / "pruned" / "prune.json", {"method": "l1-norm", "variant": ratio,
                                             "source": str(src / "checkpoint.pth.tar"),
                                             "flops_base": 10, "flops_pruned": 8, "params_base": 5, "params_pruned": 4})
        _write(d / "finetune" / "summary.json", {"stage": "finetune", "best_prec1": 0.8 if ratio == "A" else 0.7,
                                                 "source": str(d / "pruned" / "pruned.pth.tar")})
    rows = collect([str(tmp_path)])
    assert set(rows) == {("fashionmnist", "resnet-56", "l1-norm", "A"), ("fashionmnist", "resnet-56", "l1-norm", "B")}
    for (_, _, _, ratio), row in rows.items():
        assert row["baseline"] == [0.9] and row["finetune"] == [0.8 if ratio == "A" else 0.7]


def test_sfp_rows_are_labelled_by_the_rate_their_source_was_trained_with():
    from utils.stages import source_options
    from utils.results import pruned_label
    ckpt = {"args": {"rate": 0.6, "epoch_prune": 1, "epochs": 8, "lr": 0.01, "arch": "resnet_sfp", "depth": 20,
                     "seed": 3, "train_subset": 2000, "dataset": "fashionmnist"}}
    options = source_options(ckpt)
    assert options == {"rate": 0.6, "epoch_prune": 1}  # the shared model/data/training flags are left out
    assert pruned_label({"method": "sfp", "remove": "zeroed", "source_options": options}) == "rate 0.6"
    # the prune step's own ratio wins; no ratio at all stays "pruned"
    assert pruned_label({"percent": 0.7, "source_options": {"sparsity_regularization": True, "s": 1e-4}}) == "70%"
    assert pruned_label({"variant": "B", "source_options": {}}) == "B"
    assert pruned_label({"source_options": source_options({})}) == "pruned"


def _study_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("study", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trunks_shared_across_methods_are_the_same_run(tmp_path):
    """A plain trunk of the same model, scale and seed as an earlier method's is linked to it, not trained again:
    the study's plan says which, and training each method's own trunk gives the same weights bit for bit."""
    import torch
    study = _study_module()
    data = write_cifar(tmp_path / "data", n_train=96, n_test=32)
    _, cfg, methods, _, _ = study.parse_args(["--quick", "--dataset", "cifar10", "--data", data, "--epochs", "1",
                                              "--train-subset", "96", "--test-subset", "32",
                                              "--out", str(tmp_path / "study")])
    out = cfg["out"]
    links = {s.link[0]: s.link[1] for s in study.plan(cfg, methods, None, [1]) if s.link}
    across = {link: real for link, real in links.items()
              if os.path.relpath(link, out).split(os.sep)[0] != os.path.relpath(real, out).split(os.sep)[0]}
    assert across == {os.path.join(out, m, model, ratio, "seed1", "baseline"):
                      os.path.join(out, first, model, first_ratio, "seed1", "baseline")
                      for m, model, ratio, first, first_ratio in [
                          ("thinet", "vgg16", "p0.3", "l1-norm", "A"), ("thinet", "vgg16", "p0.5", "l1-norm", "A"),
                          ("regression-pruning", "vgg16", "p0.33", "l1-norm", "A"),
                          ("regression-pruning", "vgg16", "p0.5", "l1-norm", "A"),
                          ("regression-pruning", "resnet20", "p0.5", "thinet", "p0.5")]}

    def trained(folder):  # the trunk of the method and model that folder is under, planned on its own and run
        method, model = os.path.relpath(folder, out).split(os.sep)[:2]
        step = next(s for s in study.plan(cfg, [method], None, [1])
                    if s.kind == "train" and s.save.startswith(os.path.join(out, method, model, "")))
        if not os.path.isfile(os.path.join(step.save, "summary.json")):
            step.call.run(log=lambda *a, **k: None)
        ckpt = torch.load(os.path.join(step.save, "checkpoint.pth.tar"), weights_only=True)
        return ckpt["state_dict"], ckpt["history"]

    for link, real in sorted(across.items()):
        (weights, history), (ref_weights, ref_history) = trained(link), trained(real)
        assert history == ref_history, link
        assert weights.keys() == ref_weights.keys()
        assert all(torch.equal(weights[k], ref_weights[k]) for k in weights), link


# ------------------------------------------------------------------------------------ a real run
@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Debian's dataset-fashion-mnist")
def test_quick_study_on_fashion_mnist_writes_the_table_skips_and_resumes(tmp_path):
    out = tmp_path / "quick"
    args = [STUDY, "--quick", "--methods", "l1-norm", "--models", "vgg", "--out", out, "--jobs", "1"]
    start = time.time()
    proc = run(args, env=ENV, timeout=600)
    elapsed = time.time() - start
    assert elapsed < 120, f"the quick L1 study took {elapsed:.0f}s"
    assert "5 step(s) run, 0 skipped" in proc.stdout and "total wall time" in proc.stdout

    seed = out / "l1-norm" / "vgg16" / "A" / "seed1"
    prune = json.loads((seed / "pruned" / "prune.json").read_text())
    assert prune["source"] == os.path.join("..", "baseline", "checkpoint.pth.tar")  # relative to its folder
    assert (prune["arch"], prune["depth"], prune["dataset"], prune["variant"]) == ("vgg", 16, "fashionmnist", "A")
    summaries = {s: json.loads((seed / s / "summary.json").read_text())
                 for s in ("baseline", "finetune", "scratch-E", "scratch-B")}
    assert summaries["baseline"]["epochs"] == summaries["scratch-E"]["epochs"] == 2
    assert summaries["finetune"]["epochs"] == 1
    assert summaries["scratch-B"]["epochs"] == int(2 * prune["flops_base"] / prune["flops_pruned"])
    assert all(summaries[s]["args"]["train_subset"] == 256 for s in summaries)
    # each log opens with the stage's command as typed in the repo root (committed logs name no machine's path)
    assert (seed / "baseline" / "log.txt").read_text().startswith("$ python cifar/l1-norm-pruning/train.py ")

    md = (out / "results" / "results.md").read_text()
    assert "CPU-scale study on fashionmnist" in md and "the first 256 training images" in md
    rows = [line for line in _table_lines(md) if line.startswith("| fashionmnist |")]
    assert len(rows) == 1 and rows[0].startswith("| fashionmnist | vgg-16 x0.125 | l1-norm | A | ")  # at --width
    assert "missing" not in rows[0] and rows[0].count("(1)") == 4
    paired = md.split("Scratch against fine-tuned, paired by seed", 1)[1]  # then scratch - fine-tuned, one seed
    lines = [line for line in paired.splitlines() if line.startswith(("| fashionmnist |", "| l1-norm |"))]
    assert len(lines) == 2 and all(line.count("/1)") == 2 for line in lines), lines  # the row, the method
    assert (out / "results" / "results.csv").read_text().count("\n") == 2

    # a second invocation trains nothing; only OUT/study.json records it (for the table's wall time)
    files = [p for p in sorted(out.rglob("*.json")) + sorted(out.rglob("*.pth.tar")) if p.name != "study.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    proc = run(args, env=ENV, timeout=600)
    assert "0 step(s) run, 5 skipped" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    runs = json.loads((out / "study.json").read_text())["invocations"]
    assert [r["steps_run"] for r in runs] == [5, 0]

    # an interrupted stage (checkpoint, no summary) continues with --resume auto; nothing else runs
    (seed / "scratch-B" / "summary.json").unlink()
    proc = run(args, env=ENV, timeout=600)
    assert "1 step(s) run, 4 skipped" in proc.stdout and "scratch-B (resuming)" in proc.stdout
    log = (seed / "scratch-B" / "log.txt").read_text()
    assert "--resume auto" in log and "resumed from" in log
    assert json.loads((seed / "scratch-B" / "summary.json").read_text())["epochs"] == summaries["scratch-B"]["epochs"]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if "scratch-B" not in str(p))


# ------------------------------------------------------------------------------------ the published study
PUBLISHED = ROOT / "cifar" / "study_results" / "fashionmnist"


def _table_lines(text):
    """The first table of a markdown text (results.md goes on with the scratch vs fine-tuned comparison)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_header_describes_the_settings_of_the_rows_in_the_table_only(tmp_path):
    """results.md's opening names a method's own settings (SFP's schedule, EKG's fine-tune, slimming's s, a row's
    warm-up, a wider row's width) only where its rows are in the run tree: the committed export's too."""
    study = _study_module()
    cfg = json.loads((PUBLISHED / "study.json").read_text())["scale"]
    marks = {"sfp": "SFP: LR milestones", "ekg": "EKG 6 at lr 0.01", "network-slimming": "Network slimming's s"}
    everything = {name: [m.name for m in plan.models] for name, plan in study.METHODS.items()}
    full = study.header(cfg, [1, 2, 3], "", 0, [], everything)
    assert all(mark in full for mark in marks.values()) and "warm up linearly" in full and "x0.5 and x1 where" in full
    for row in ("weight-level/vgg11_bn", "network-slimming/vgg11"):
        (tmp_path / row).mkdir(parents=True)
    part = study.header(cfg, [1, 2, 3], "", 0, [], study.rows_in(tmp_path))
    assert marks["network-slimming"] in part and "(weight-level)" in part and "(network-slimming)" in part
    assert not any(m in part for m in (marks["sfp"], marks["ekg"], "warm up linearly", "where the model column says so",
                                       "SFP's 200"))
    committed = (PUBLISHED / "results" / "results.md").read_text().split("\nTest accuracy", 1)[0]
    rows = study.rows_in(PUBLISHED / "runs")
    for name, mark in marks.items():
        assert (mark in committed) == (name in rows), name
    assert ("warm up linearly" in committed) == ("preresnet20" in rows.get("network-slimming", []))


def test_readme_study_table_is_the_collector_output_of_the_committed_runs():
    """The README's table is what utils/results.py makes of the study's own run records (committed under
    cifar/study_results/fashionmnist/runs: every summary.json and prune.json, paths as recorded)."""
    from utils.results import collect, markdown
    table = _table_lines(markdown(collect([str(PUBLISHED / "runs")], "best"), "best"))
    assert len(table) > 2
    assert _table_lines((PUBLISHED / "results" / "results.md").read_text()) == table
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The Fashion-MNIST study", 1)[1].split("\n## ", 1)[0]
    assert "\n".join(table) in section
    images = [part.split('"', 1)[0] for part in section.split('src="')[1:]]
    assert images and all((ROOT / image).is_file() for image in images), images


def test_every_committed_row_converged_on_three_seeds_and_no_record_names_a_machine_path():
    """The published study's own records meet the conditions its conclusions need (utils.results.check_convergence,
    the study's footer): every trunk flat over the last quarter of its epochs, every plainly trained one at least
    88%, every column three runs with a sample std under 1.5 points; and no summary.json or prune.json holds an
    absolute path, nor the command line a log.txt opens with (the records are committed: paths are relative to the
    run tree, commands to the repository root)."""
    from utils.results import check_convergence, collect
    rows = collect([str(PUBLISHED / "runs")], "best")
    assert rows
    assert check_convergence(rows, bar=0.88, tolerance=0.005, max_std=0.015, runs=3) == []

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []
    records = [p for name in ("summary.json", "prune.json") for p in (PUBLISHED / "runs").rglob(name)]
    assert records
    absolute = [(str(p), s) for p in records for s in strings(json.loads(p.read_text())) if os.path.isabs(s)]
    assert absolute == []
    commands = [(str(p), line) for p in (PUBLISHED / "runs").rglob("log.txt")
                for line in p.read_text().splitlines() if line.startswith("$ ")]
    assert len(commands) >= len(records)  # every stage's log opens with its command, a resumed one adds one
    absolute = [(p, word) for p, line in commands for word in shlex.split(line[2:]) if os.path.isabs(word)]
    assert absolute == []


@pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Debian's dataset-fashion-mnist")
def test_a_killed_study_keeps_its_time_and_steps_and_the_next_one_goes_on(tmp_path):
    """OUT/study.json is brought up to date after every step, and a plain kill (SIGTERM) stops the stages and
    records the invocation too, so the table's wall time counts a study that was stopped; rerun, it goes on."""
    import signal
    import subprocess
    import sys
    out = tmp_path / "quick"
    args = [str(STUDY), "--quick", "--methods", "l1-norm", "--models", "vgg", "--out", str(out), "--jobs", "1",
            "--no-plot"]
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, env={**os.environ, **ENV, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = out / "study.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        runs = json.loads(record.read_text()).get("invocations", []) if record.is_file() else []
        if runs and runs[-1]["steps_run"] >= 1:
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("no step finished in 300 s")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted after" in err, err
    first = json.loads(record.read_text())["invocations"]
    assert len(first) == 1 and 1 <= first[0]["steps_run"] < 5 and first[0]["wall_s"] > 0

    again = run(args, env=ENV, timeout=600)
    runs = json.loads(record.read_text())["invocations"]
    assert len(runs) == 2 and runs[0] == first[0]
    # what finished is skipped (a stage that ended as the kill came counts as done), the rest runs
    assert f"{runs[1]['steps_run']} step(s) run, {5 - runs[1]['steps_run']} skipped" in again.stdout
    assert 1 <= runs[1]["steps_run"] <= 5 - first[0]["steps_run"]
    md = (out / "results" / "results.md").read_text()
    assert "over 2 invocation(s) that ran steps" in md


QUICK_SCALE = {"dataset": "fashionmnist", "epochs": 2, "train_subset": 256, "test_subset": 256, "width": 0.125,
               "resnet_width": 0.25, "slimming_s_scale": 10}


def _finished_row(out, model, ratios, acc, skip=()):
    """A finished l1-norm row of the --quick plan (seed 1), records only: the trunk under the first ratio, the
    others linked to it, as the study lays them out; a stage in ``skip`` is left unfinished."""
    arch, depth = {"vgg16": ("vgg", 16), "resnet56": ("resnet", 56)}[model]
    first = out / "l1-norm" / model / ratios[0] / "seed1"
    for n, ratio in enumerate(ratios):
        seed = out / "l1-norm" / model / ratio / "seed1"
        seed.mkdir(parents=True)
        if n:
            os.symlink(os.path.join("..", "..", ratios[0], "seed1", "baseline"), seed / "baseline",
                       target_is_directory=True)
        else:
            (seed / "baseline").mkdir()
            (seed / "baseline" / "summary.json").write_text(json.dumps(
                {"stage": "baseline", "best_prec1": acc, "final_prec1": acc, "arch": arch, "depth": depth,
                 "dataset": "fashionmnist", "prec1_history": [acc - 0.1, acc], "seed": 1}))
            (seed / "baseline" / "checkpoint.pth.tar").write_bytes(b"weights")
        (seed / "pruned").mkdir()
        (seed / "pruned" / "prune.json").write_text(json.dumps(
            {"method": "l1-norm", "variant": ratio, "arch": arch, "depth": depth, "dataset": "fashionmnist",
             "source": os.path.relpath(first / "baseline" / "checkpoint.pth.tar", seed / "pruned")}))
        (seed / "pruned" / "pruned.pth.tar").write_bytes(b"weights")
        for stage in ("finetune", "scratch-E", "scratch-B"):
            if (ratio, stage) in skip:
                continue
            (seed / stage).mkdir()
            (seed / stage / "summary.json").write_text(json.dumps(
                {"stage": stage, "best_prec1": acc - 0.01, "final_prec1": acc - 0.01, "seed": 1,
                 "source": os.path.join("..", "pruned", "pruned.pth.tar")}))
            (seed / stage / "log.txt").write_text(f"{stage}\n")


def _study_json(out, *invocations, scale=QUICK_SCALE):
    (out / "study.json").write_text(json.dumps({"scale": scale, "invocations": [
        {"started": started, "wall_s": wall, "steps_run": 5} for started, wall in invocations]}))


def test_export_adds_finished_rows_to_the_committed_study_and_refuses_to_mix(tmp_path):
    """--export DEST: a study run in parts is committed row by row. Only rows whose every step finished are
    copied (records and the shared trunks' links, no checkpoint); exporting again adds the rows finished since,
    keeps the ones already there, merges the invocations into DEST/study.json (the wall time counts every part)
    and regenerates DEST/results from every row; a row there with other records, DEST at another scale, or a
    DEST that is not an export is refused with one line, DEST untouched."""
    from utils.results import collect, markdown
    out, dest = tmp_path / "study", tmp_path / "published"
    export = [STUDY, "--quick", "--out", out, "--methods", "l1-norm", "--no-plot", "--export", dest]
    _finished_row(out, "vgg16", ["A"], 0.9)
    _finished_row(out, "resnet56", ["A", "B"], 0.8, skip={("B", "scratch-B")})
    _study_json(out, ("2026-11-30 06:00:00", 600.0))
    proc = run(export)
    assert "1 row(s) added" in proc.stdout and "(l1-norm/vgg16)" in proc.stdout, proc.stdout
    assert "1 unfinished, left out (l1-norm/resnet56)" in proc.stdout, proc.stdout
    runs = dest / "runs"
    assert sorted(str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file()) == sorted(
        f"l1-norm/vgg16/A/seed1/{f}" for f in ("baseline/summary.json", "pruned/prune.json", "finetune/summary.json",
                                               "finetune/log.txt", "scratch-E/summary.json", "scratch-E/log.txt",
                                               "scratch-B/summary.json", "scratch-B/log.txt"))
    md = (dest / "results" / "results.md").read_text()
    assert "wall time 10.0 min over 1 invocation(s) that ran steps" in md and "seeds 1 for every row" in md
    assert "--export" not in md

    # the part that finishes the ResNet row: the same invocation went on, then a second one
    (out / "l1-norm" / "resnet56" / "B" / "seed1" / "scratch-B").mkdir()
    (out / "l1-norm" / "resnet56" / "B" / "seed1" / "scratch-B" / "summary.json").write_text(json.dumps(
        {"stage": "scratch-B", "best_prec1": 0.81, "final_prec1": 0.81, "seed": 1,
         "source": os.path.join("..", "pruned", "pruned.pth.tar")}))
    _study_json(out, ("2026-11-30 06:00:00", 900.0), ("2026-11-30 09:00:00", 300.0))
    proc = run(export)
    assert "1 row(s) added" in proc.stdout and "(l1-norm/resnet56)" in proc.stdout and "1 already there" in proc.stdout
    assert os.readlink(runs / "l1-norm" / "resnet56" / "B" / "seed1" / "baseline") == \
        os.path.join("..", "..", "A", "seed1", "baseline")
    assert not list(dest.rglob("*.pth.tar"))
    assert [i["wall_s"] for i in json.loads((dest / "study.json").read_text())["invocations"]] == [900.0, 300.0]
    md = (dest / "results" / "results.md").read_text()
    assert "wall time 20.0 min over 2 invocation(s) that ran steps" in md
    rows = collect([str(runs)], "best")
    assert len(rows) == 3 and all(r["scratch-B"] for r in rows.values())
    assert _table_lines(md) == _table_lines(markdown(rows, "best")) == _table_lines(
        markdown(collect([str(out)], "best"), "best"))

    # a second study's other run of a row that is there: refused, nothing written
    other = tmp_path / "other"
    _finished_row(other, "vgg16", ["A"], 0.7)
    _study_json(other, ("2026-12-01 06:00:00", 60.0))
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    proc = run([STUDY, "--quick", "--out", other, "--methods", "l1-norm", "--export", dest], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"study.py: error: --export {dest}: l1-norm/vgg16 is there with other records (another run of that row); "
        f"remove it there first, or leave the row out (--methods, --models)"], proc.stderr
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before

    _study_json(other, ("2026-12-01 06:00:00", 60.0), scale={**QUICK_SCALE, "epochs": 3})
    proc = run([STUDY, "--quick", "--epochs", "3", "--out", other, "--export", dest], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"study.py: error: --export {dest}: holds a study at another scale; export into a new folder"], proc.stderr
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "table.md").write_text("| table |\n")
    proc = run([STUDY, "--quick", "--epochs", "3", "--out", other, "--export", tmp_path / "notes"], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"study.py: error: --export {tmp_path / 'notes'}: has files but no study.json, not a study's export; remove "
        f"it first (its records would mix with these)"], proc.stderr
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before