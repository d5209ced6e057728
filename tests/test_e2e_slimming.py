"""A whole Network Slimming experiment on real Fashion-MNIST through the scripts' command lines (tests/e2e.py):
sparsity training -> prune 40% of the BN channels -> fine-tune, scratch-E, scratch-B. Every stage must learn and
keep the paper's proportions.

Bar: final test accuracy over 3 seeds (tests/measure_margins.py, 2026-11-29; chance is 0.10) was 0.663-0.774
(lowest per stage: sparse 0.714, fine-tune 0.715, scratch-E 0.663, scratch-B 0.747); the bar lies 11 points
below the lowest."""
import pytest
import torch

from conftest import HAVE_FASHION_MNIST

pytestmark = [pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Fashion-MNIST (make test gets it)"),
              pytest.mark.usefixtures("one_thread")]
BAR = 0.55


def test_slimming_experiment_on_fashion_mnist(tmp_path):
    import e2e
    res = e2e.slimming(tmp_path, seed=1)
    c = e2e.SLIMMING
    sparse = res["sparse"]
    assert sparse["arch"] == "vgg_slim" and sparse["args"]["sparsity_regularization"] and sparse["args"]["s"] == c["s"]
    assert sparse["stage"] == "sparsity"

    prune = res["prune"]
    assert prune["bn_channels"] == 344 and prune["threshold_index"] == int(344 * c["percent"])
    assert prune["bn_channels_pruned"] >= int(344 * c["percent"]) + 1
    assert prune["flops_pruned"] < prune["flops_base"] and prune["params_pruned"] < prune["params_base"]
    # the masked network (pruned gamma/beta = 0) and the physically pruned one are the same function
    assert prune["acc_masked"] == prune["acc_after"]
    assert not prune["layers_kept_strongest_only"]

    assert res["finetune"]["epochs"] == 1
    assert res["scratch-E"]["epochs"] == c["epochs"]
    assert res["scratch-B"]["epochs"] == int(c["epochs"] * prune["flops_base"] / prune["flops_pruned"]) > c["epochs"]
    assert res["scratch-B"]["flops_ratio"] == pytest.approx(prune["flops_ratio"])
    for name in ("sparse", "finetune", "scratch-E", "scratch-B"):
        assert res[name]["final_prec1"] >= BAR, f"{name} reached only {res[name]['final_prec1']:.3f} on Fashion-MNIST"
        if name != "sparse":
            assert res[name]["params"] == prune["params_pruned"] and res[name]["cfg"] == prune["cfg"]
    # fine-tuning starts from the pruned weights; scratch runs start afresh
    ft = torch.load(tmp_path / "finetune" / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    assert ft["args"]["epochs"] == 1 and ft["args"]["lr"] == 0.001
    assert res["finetune"]["final_prec1"] > prune["acc_after"]
