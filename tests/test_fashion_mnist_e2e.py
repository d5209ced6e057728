"""A whole L1-norm experiment on real Fashion-MNIST (Debian's dataset-fashion-mnist), through the demo:
baseline, prune, fine-tune, scratch-E, scratch-B must all learn (accuracy bar) and keep the paper's
proportions (scratch-B epochs from the measured FLOPs ratio)."""
import json
import os

import pytest

from conftest import FASHION_MNIST, HAVE_FASHION_MNIST, L1, run

pytestmark = pytest.mark.skipif(not HAVE_FASHION_MNIST,
                                reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")

EPOCHS = 4
BAR = 0.72  # chance is 0.10; these small runs reach about 0.8


def test_l1_norm_experiment_on_fashion_mnist(tmp_path):
    out = tmp_path / "demo"
    proc = run([L1 / "demo.py", "--epochs", EPOCHS, "--train-subset", 8000, "--test-subset", 2000,
                "--out", out], timeout=1800)
    assert "| scratch-B |" in proc.stdout
    results = (out / "RESULTS.md").read_text()
    for stage in ("baseline (unpruned)", "fine-tuned", "pruned, before retraining", "scratch-E", "scratch-B"):
        assert f"| {stage} |" in results

    prune = json.loads((out / "pruned" / "prune.json").read_text())
    # VGG-16-A at width 1/4: conv1_1 and conv4_1..conv5_3 halved
    assert prune["cfg_base"] == [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M", 128, 128, 128]
    assert prune["cfg"] == [8, 16, "M", 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M", 64, 64, 64]
    assert prune["flops_pruned"] < prune["flops_base"] and prune["params_pruned"] < prune["params_base"]

    summaries = {name: json.loads((out / name / "summary.json").read_text())
                 for name in ("baseline", "finetune", "scratch-E", "scratch-B")}
    assert summaries["finetune"]["epochs"] == 1
    assert summaries["scratch-E"]["epochs"] == EPOCHS
    assert summaries["scratch-B"]["epochs"] == int(EPOCHS * prune["flops_base"] / prune["flops_pruned"])
    assert summaries["scratch-B"]["epochs"] > EPOCHS
    for name, s in summaries.items():
        assert s["final_prec1"] >= BAR, f"{name} reached only {s['final_prec1']:.3f} on Fashion-MNIST"
        assert s["params"] == (prune["params_base"] if name == "baseline" else prune["params_pruned"])
    # fine-tuning starts from the pruned weights: it must beat the pruned, un-retrained network
    assert summaries["finetune"]["final_prec1"] > prune["acc_after"]
