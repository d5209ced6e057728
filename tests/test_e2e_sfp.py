"""A whole Soft Filter Pruning experiment on real Fashion-MNIST (Debian's dataset-fashion-mnist), each stage
through its script: SFP training of ResNet-20, prune to the smaller network, fine-tune, scratch-E (the smaller
network) and scratch-B (the reference's masked full-size network). The retrained models must learn (accuracy
bar), scratch-B must run int(E x r) epochs with the nonzero-rule FLOPs ratio, and the masked run must keep
the SFP zeros. CPU scale: 640 training images, batch 16, 3 epochs."""
import json
import os
import time

import pytest
import torch

from conftest import FASHION_MNIST, HAVE_FASHION_MNIST, ROOT, run

SFP = ROOT / "cifar" / "soft-filter-pruning"
pytestmark = pytest.mark.skipif(not HAVE_FASHION_MNIST,
                                reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")

EPOCHS = 3
BAR = 0.45  # best test accuracy over the epochs (as the reference selects); chance is 0.10
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sfp_experiment_on_fashion_mnist(tmp_path):
    data = ["--dataset", "fashionmnist", "--data", FASHION_MNIST, "--test-subset", "300"]
    train = data + ["--train-subset", "320", "--batch-size", "16", "--no-progress", "--no-tensorboard",
                    "--device", "cpu", "--seed", "1"]
    # the SFP schedule's shape at CPU scale: a one-epoch warm-up at half the LR (--gammas per milestone)
    sched = ["--lr", "0.01", "--schedule", "1", "--gammas", "2"]
    d = lambda name: tmp_path / name  # noqa: E731
    pruned = d("pruned") / "pruned.pth.tar"
    sfp_ckpt = d("sfp") / "checkpoint.pth.tar"
    start = time.time()
    run([SFP / "train.py", *train, *sched, "--arch", "resnet20", "--rate", "0.7", "--prune-layers", "inner",
         "--epochs", EPOCHS, "--save", d("sfp")], env=ENV)
    run([SFP / "prune.py", *data, "--model", sfp_ckpt, "--save", d("pruned")], env=ENV)
    run([SFP / "finetune.py", *train, "--refine", pruned, "--epochs", 1, "--lr", "0.01", "--save", d("finetune")],
        env=ENV)
    # scratch-E the reference's way (the full network with the SFP zeros as a fixed mask), scratch-B the smaller
    # network (its dense-rule r = 1.376 gives int(3 r) = 4 epochs; --prune-layers inner zeroes conv_a only, whose
    # masked nonzero-rule r of about 1.2 would not reach a fourth epoch)
    run([SFP / "scratch.py", *train, *sched, "--masked", "--scratch", sfp_ckpt, "--budget", "E", "--epochs", EPOCHS,
         "--save", d("scratch-E")], env=ENV)
    run([SFP / "scratch.py", *train, *sched, "--scratch", pruned, "--budget", "B", "--epochs", EPOCHS,
         "--save", d("scratch-B")], env=ENV)
    elapsed = time.time() - start

    s = {name: json.loads((d(name) / "summary.json").read_text())
         for name in ("sfp", "finetune", "scratch-E", "scratch-B")}
    prune = json.loads((d("pruned") / "prune.json").read_text())
    print(f"SFP Fashion-MNIST experiment: {elapsed:.0f} s wall; final / best accuracy "
          + ", ".join(f"{n} {v['final_prec1']:.3f} / {v['best_prec1']:.3f}" for n, v in s.items()))
    assert s["sfp"]["stage"] == "sfp" and s["sfp"]["epochs"] == EPOCHS
    # every conv_a kept int(C * 0.7) filters: 16 -> 12 (4 zeroed), 32 -> 23 (9), 64 -> 45 (19)
    assert prune["cfg"] == [12] * 3 + [23] * 3 + [45] * 3
    assert prune["inner_removed"] == prune["inner_zeroed"] == 3 * (4 + 9 + 19)
    # from scratch the zeroed conv_a channels stay dead (BN beta 0, see test_sfp.py): removing them is exact
    assert prune["inner_zeroed_constant_nonzero"] == 0 and prune["acc_after"] == prune["acc_before"]
    assert prune["flops_pruned"] < prune["flops_base"]
    assert s["finetune"]["cfg"] == s["scratch-B"]["cfg"] == prune["cfg"]
    assert s["scratch-E"]["epochs"] == EPOCHS and s["scratch-E"]["cfg"] == prune["cfg_base"]
    r = s["scratch-B"]["flops_ratio"]
    assert s["scratch-B"]["flops_rule"] == "dense" and r == pytest.approx(prune["flops_ratio"])
    assert s["scratch-B"]["epochs"] == int(EPOCHS * r) == EPOCHS + 1
    assert s["scratch-B"]["schedule"] == [1]  # the one-epoch warm-up milestone is not stretched
    for name in ("finetune", "scratch-E", "scratch-B"):
        assert s[name]["best_prec1"] >= BAR, f"{name} reached only {s[name]['best_prec1']:.3f} on Fashion-MNIST"

    # the masked scratch-E network kept exactly the SFP checkpoint's zero pattern, 4/9/19 filters per conv_a
    src = torch.load(sfp_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    out = torch.load(d("scratch-E") / "checkpoint.pth.tar", map_location="cpu", weights_only=True)["state_dict"]
    convs = [k for k, v in src.items() if v.dim() == 4]
    assert len(convs) == 19
    for k in convs:
        assert torch.equal(out[k] == 0, src[k] == 0), k
        zero_filters = int((src[k].flatten(1).abs().sum(1) == 0).sum())
        assert zero_filters == ({16: 4, 32: 9, 64: 19}[src[k].shape[0]] if "conv_a" in k else 0), k
