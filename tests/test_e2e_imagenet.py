"""The ImageNet path end to end on real data: Fashion-MNIST written as an ImageFolder JPEG tree (3-channel, 36 px,
300 training and 50 validation images per class), ResNet-34 at width 1/8 trained through imagenet/l1-norm-pruning's
scripts on 32 px random-resized crops (the fast loader), pruned by the ResNet-34-A rule, fine-tuned, scratch-E and
scratch-B by the cap rule.

Bars: final validation accuracy over 3 seeds (tests/measure_margins.py --only imagenet_l1, 2026-11-29; chance is
0.10) was 0.616-0.750 (lowest per stage: baseline 0.690, fine-tune 0.690, scratch-E 0.712, scratch-B 0.616); the bar
of 0.50 lies 11 points or more below every one of them."""
import pytest

from conftest import HAVE_FASHION_MNIST

pytestmark = [pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="needs Fashion-MNIST (make test gets it)"),
              pytest.mark.usefixtures("one_thread")]
BAR = 0.50


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import e2e
    return e2e.imagenet_l1(tmp_path_factory.mktemp("imagenet_l1"), seed=1)


def test_imagenet_scripts_on_fashion_mnist_jpegs(run):
    import e2e
    prune = run["prune"]
    # ResNet-34-A at width 1/8: stages 1-3 keep int(0.7 C) of the blocks the rule prunes, layer4 whole
    assert prune["cfg"] == [8, 5, 5, 16, 11, 11, 16, 32, 22, 22, 22, 22, 32, 64, 64, 64]
    assert prune["method"] == "l1-norm" and prune["variant"] == "A"
    epochs = e2e.IMAGENET["epochs"]
    ratio = prune["flops_base"] / prune["flops_pruned"]
    assert run["scratch-B"]["epochs"] == int(epochs * ratio) > epochs  # the cap rule below r = 2
    assert run["scratch-B"]["lr_step"] == int(run["scratch-B"]["epochs"] / 3)
    assert run["finetune"]["epochs"] == 1 and run["scratch-E"]["epochs"] == epochs
    for name in ("baseline", "finetune", "scratch-E", "scratch-B"):
        s = run[name]
        assert s["args"]["dataset"] == "imagenet" and s["args"]["input_size"] == 32 and s["args"]["loader"] == "fast"
        assert s["final_prec1"] >= BAR, f"{name} reached only {s['final_prec1']:.3f} on the Fashion-MNIST JPEG tree"
        assert s["params"] == (prune["params_base"] if name == "baseline" else prune["params_pruned"])
    assert run["finetune"]["final_prec1"] > prune["acc_after"] - 0.02  # starts from the pruned weights
