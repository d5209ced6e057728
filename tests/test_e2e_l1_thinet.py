"""The L1-norm demo (`make demo`'s script, at a smaller scale) and ThiNet on the demo's own trained baseline, on
real Fashion-MNIST: every stage must learn (accuracy bar), and the stages keep the paper's proportions
(scratch-B epochs from the measured FLOPs ratio). The two share one trained trunk (the demo's baseline).

Bars: final test accuracy over 3 seeds (tests/measure_margins.py, 2026-11-29; chance is 0.10) was
demo 0.625-0.730 (lowest per stage: baseline 0.671, fine-tune 0.648, scratch-E 0.625, scratch-B 0.685) and
ThiNet 0.617-0.766 (fine-tune 0.627, scratch-E 0.617, scratch-B 0.761); the bar of 0.50 lies 12 points or more
below every one of them."""
import pytest

from conftest import HAVE_FASHION_MNIST

pytestmark = [pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Fashion-MNIST (make test gets it)"),
              pytest.mark.usefixtures("one_thread")]
BAR = 0.50


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import e2e
    return e2e.demo(tmp_path_factory.mktemp("demo"), seed=1)


def test_the_demo_prints_its_table_and_every_stage_learns(demo_run):
    import e2e
    assert "| scratch-B |" in demo_run["stdout"]
    results = (demo_run["root"] / "RESULTS.md").read_text()
    for stage in ("baseline (unpruned)", "fine-tuned", "pruned, before retraining", "scratch-E", "scratch-B"):
        assert f"| {stage} |" in results
    prune = demo_run["prune"]
    # VGG-16-A at width 1/4: conv1_1 and conv4_1..conv5_3 halved
    assert prune["cfg_base"] == [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M", 128, 128, 128]
    assert prune["cfg"] == [8, 16, "M", 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M", 64, 64, 64]
    assert prune["flops_pruned"] < prune["flops_base"] and prune["params_pruned"] < prune["params_base"]
    epochs = e2e.DEMO["epochs"]
    assert demo_run["finetune"]["epochs"] == 1 and demo_run["scratch-E"]["epochs"] == epochs
    assert demo_run["scratch-B"]["epochs"] == int(epochs * prune["flops_base"] / prune["flops_pruned"]) > epochs
    for name in ("baseline", "finetune", "scratch-E", "scratch-B"):
        s = demo_run[name]
        assert s["final_prec1"] >= BAR, f"{name} reached only {s['final_prec1']:.3f} on Fashion-MNIST"
        assert s["params"] == (prune["params_base"] if name == "baseline" else prune["params_pruned"])
    # fine-tuning starts from the pruned weights: it must beat the pruned, un-retrained network
    assert demo_run["finetune"]["final_prec1"] > prune["acc_after"]


def test_thinet_on_the_demo_baseline(demo_run, tmp_path):
    import e2e
    res = e2e.thinet(tmp_path, 1, demo_run["root"] / "baseline" / "checkpoint.pth.tar")
    prune = res["prune"]
    assert prune["method"] == "thinet" and prune["percent"] == e2e.THINET["percent"]
    # the paper's layers (all but the last block) halved, the last block untouched
    assert prune["cfg"] == [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 128, 128, 128]
    records = prune["layer_records"]
    assert len(records) == 10 and all(r["samples"] == e2e.THINET["calib_images"] * 10 for r in records)
    assert all(0 <= r["error_after"] <= r["error_before"] for r in records)
    # least squares earns its place on a trained network: the mean error drops
    assert sum(r["error_after"] for r in records) < 0.95 * sum(r["error_before"] for r in records)
    epochs = e2e.THINET["epochs"]
    assert res["scratch-B"]["epochs"] == int(epochs * prune["flops_base"] / prune["flops_pruned"]) > epochs
    for name in ("finetune", "scratch-E", "scratch-B"):
        assert res[name]["final_prec1"] >= BAR, f"thinet {name} reached only {res[name]['final_prec1']:.3f}"
        assert res[name]["cfg"] == prune["cfg"]
    assert res["finetune"]["final_prec1"] > prune["acc_after"]
