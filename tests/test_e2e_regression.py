"""Regression pruning (He et al. 2017) end to end on real Fashion-MNIST: VGG-16 at width 1/8 trained 3 epochs, half of
the channels of conv1_1..conv4_3 removed by LASSO with least-squares reconstruction, then fine-tune, scratch-E and
scratch-B through cifar/regression-pruning's scripts (tests/e2e.py's ``regression``, about 80 s on one thread).

Bars: final test accuracy over 3 seeds (tests/measure_margins.py --only regression --seeds 1 2 3, 2026-11-29; chance is
0.10) was baseline 0.640-0.677, fine-tune 0.631-0.675, scratch-E 0.617-0.632, scratch-B 0.703-0.728; the bar of 0.50
lies 11 points or more below every one of them. The pruned network before any retraining scored 0.636-0.668, 0.001 to
0.009 below its baseline (least squares restores what the removed channels gave): its bar is the baseline minus 0.05."""
import pytest

from conftest import HAVE_FASHION_MNIST

pytestmark = [pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Fashion-MNIST (make test gets it)"),
              pytest.mark.usefixtures("one_thread")]
BAR = 0.50
PRUNED_DROP = 0.05


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import e2e
    return e2e.regression(tmp_path_factory.mktemp("regression"), seed=1)


def test_regression_pruning_end_to_end(run):
    import e2e
    prune = run["prune"]
    assert prune["method"] == "regression-pruning" and prune["percent"] == e2e.REGRESSION["percent"]
    # VGG-16 at width 1/8: conv1_1..conv4_3 halved (each exactly at its target), conv5 untouched
    assert prune["cfg_base"] == [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64]
    assert prune["cfg"] == [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 64, 64, 64]
    records = prune["layer_records"]
    assert len(records) == 10 and all(r["samples"] == e2e.REGRESSION["calib_images"] * 10 for r in records)
    assert all(0 <= r["error_after"] <= r["error_before"] for r in records)
    # least squares on a trained network: the reconstruction error falls several-fold
    assert sum(r["error_after"] for r in records) < 0.5 * sum(r["error_before"] for r in records)
    base = run["baseline"]["final_prec1"]
    assert prune["acc_before"] == pytest.approx(base, abs=1e-9)
    assert prune["acc_after"] >= base - PRUNED_DROP, f"pruned {prune['acc_after']:.3f} against baseline {base:.3f}"
    epochs = e2e.REGRESSION["epochs"]
    assert run["scratch-B"]["epochs"] == int(epochs * prune["flops_base"] / prune["flops_pruned"]) > epochs
    for name in ("baseline", "finetune", "scratch-E", "scratch-B"):
        assert run[name]["final_prec1"] >= BAR, f"regression {name} reached only {run[name]['final_prec1']:.3f}"
        if name != "baseline":
            assert run[name]["cfg"] == prune["cfg"]
