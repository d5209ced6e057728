"""A whole weight-level experiment on real Fashion-MNIST through the scripts' command lines (tests/e2e.py):
train -> prune (50% of the conv weights) -> fine-tune, scratch-E, scratch-B. Every retrained model must learn
(accuracy bar), scratch-B must train int(E x FLOPs(dense) / FLOPs(nonzero)) epochs, and the final weights of
every stage must keep the mask's zeros. CPU scale: VGG-11-BN at 1/8 width, 2400 training images.

Bar: final test accuracy over 3 seeds (tests/measure_margins.py, 2026-11-29; chance is 0.10) was 0.738-0.776
(lowest per stage: baseline 0.750, fine-tune 0.748, scratch-E 0.744, scratch-B 0.738); the bar lies 13 points
below the lowest."""
import pytest
import torch

from conftest import HAVE_FASHION_MNIST

pytestmark = [pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Fashion-MNIST (make test gets it)"),
              pytest.mark.usefixtures("one_thread")]
BAR = 0.60


def test_weight_level_experiment_on_fashion_mnist(tmp_path):
    import e2e
    res = e2e.weight_level(tmp_path, seed=1)
    c = e2e.WEIGHT_LEVEL
    pruned = tmp_path / "pruned" / "pruned.pth.tar"
    prune = res["prune"]
    total = prune["masked_weights"]
    assert abs(prune["masked_weights_pruned"] - c["percent"] * total) <= 2 + 0.01 * total  # + ties at the threshold
    assert prune["flops_pruned"] < prune["flops_base"] and prune["params_pruned"] < prune["params_base"]
    assert prune["acc_before"] >= BAR and prune["acc_after"] > 0.3
    masks = torch.load(pruned, weights_only=True)["masks"]

    summaries = {name: res[name] for name in ("baseline", "finetune", "scratch-E", "scratch-B")}
    assert summaries["finetune"]["epochs"] == 1
    assert summaries["scratch-E"]["epochs"] == c["epochs"]
    assert summaries["scratch-B"]["epochs"] == int(c["epochs"] * prune["flops_base"] / prune["flops_pruned"]) > c["epochs"]
    for name, s in summaries.items():
        assert s["final_prec1"] >= BAR, f"{name} reached only {s['final_prec1']:.3f} on Fashion-MNIST"
        if name != "baseline":
            assert s["density"] == pytest.approx(prune["density"])
            assert s["flops_nonzero"] == prune["flops_pruned"] and s["params_nonzero"] == prune["params_pruned"]

    inherited = torch.load(pruned, weights_only=True)["state_dict"]
    for name in ("finetune", "scratch-E", "scratch-B"):
        ckpt = torch.load(tmp_path / name / "checkpoint.pth.tar", weights_only=True)
        assert ckpt["epoch"] == summaries[name]["epochs"]
        for key, mask in masks.items():
            w = ckpt["state_dict"][key]
            assert torch.equal(ckpt["masks"][key], mask)
            assert torch.all(w[~mask] == 0), f"{name}: a pruned weight of {key} came back"
            assert torch.count_nonzero(w) == int(mask.sum()), f"{name}: {key} lost kept weights"
        first = next(iter(masks))
        moved = (ckpt["state_dict"][first] - inherited[first]).abs().max()
        if name == "finetune":
            assert 0 < moved < 0.5 * inherited[first].abs().max()  # small steps from the inherited weights
        else:  # re-initialised: unrelated to the inherited weights
            corr = torch.corrcoef(torch.stack([ckpt["state_dict"][first][masks[first]],
                                               inherited[first][masks[first]]]))[0, 1]
            assert abs(corr) < 0.5
