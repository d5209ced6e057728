"""imagenet/study.py, the ImageNet scripts on Fashion-MNIST as a JPEG tree: its plan (--dry-run), its bad input,
and the README's table being what the collector makes of the committed run records."""
import os
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, run

STUDY = ROOT / "imagenet" / "study.py"
RESULTS = ROOT / "imagenet" / "study_results" / "fashionmnist-jpeg"


def test_dry_run_plans_both_methods_with_a_shared_trunk_and_relative_paths(tmp_path):
    out = "study_runs/imagenet-fashionmnist-dry"
    proc = run([STUDY, "--dry-run", "--seeds", 1, 2, "--out", out], cwd=ROOT)
    assert not (ROOT / out).exists(), "--dry-run must write nothing"
    commands = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("python "):
            continue
        argv = shlex.split(line)[1:]
        commands[argv[argv.index("--save") + 1]] = argv
    assert len(commands) == 2 * 2 * (1 + 2 * 4)
    for seed in (1, 2):
        for method, model, ratios, script in (("l1-norm", "resnet34", ("A", "B"), "l1-norm-pruning"),
                                              ("weight-level", "resnet50", ("p0.3", "p0.6"), "weight-level")):
            trunk = f"{out}/{method}/{model}/{ratios[0]}/seed{seed}/baseline"
            base = commands[trunk]
            assert base[0] == f"imagenet/{script}/train.py" and base[base.index("--epochs") + 1] == "7"
            assert base[base.index("--width") + 1] == "0.125" and base[base.index("--input-size") + 1] == "32"
            for ratio in ratios:
                run_dir = f"{out}/{method}/{model}/{ratio}/seed{seed}"
                prune = commands[f"{run_dir}/pruned"]
                assert prune[prune.index("--model") + 1] == f"{trunk}/checkpoint.pth.tar"  # one trunk per seed
                ft = commands[f"{run_dir}/finetune"]
                assert ft[ft.index("--epochs") + 1] == ("2" if method == "l1-norm" else "1")  # 20/90, 10/90 of 7
                for budget in ("E", "B"):
                    sc = commands[f"{run_dir}/scratch-{budget}"]
                    assert sc[sc.index("--budget") + 1] == budget and sc[sc.index("--epochs") + 1] == "7"
    assert not any(os.path.isabs(a) for argv in commands.values() for a in argv if "/" in a)


def test_bad_input_is_one_line(tmp_path):
    proc = run([STUDY, "--jobs", 0, "--dry-run"], check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--jobs" in proc.stderr
    proc = run([STUDY, "--methods", "slimming", "--dry-run"], check=False)
    assert proc.returncode == 2 and "--methods" in proc.stderr


@pytest.mark.skipif(not (RESULTS / "runs").is_dir(), reason="no committed ImageNet-path study records")
def test_readme_table_is_the_collector_output_of_the_committed_records():
    from utils.results import collect, markdown
    table = markdown(collect([str(RESULTS / "runs")], "best"), "best")
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| imagenet")]
    assert rows and all(row in readme for row in rows)
    for path in Path(RESULTS / "runs").rglob("*.json"):  # records that name no path of the machine that made them
        assert "/work/" not in path.read_text() and "/tmp/" not in path.read_text(), path
