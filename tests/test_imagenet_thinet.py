"""ThiNet on ImageNet networks: prune.py runs the shared algorithm on VGG-16 (no BN, conv5 untouched) and ResNet-50
(both inner convs of every bottleneck), and scratch.py trains the published networks by name with the cap rule of
reference.md 5.5 (ThiNet-70: 141 epochs, step 47; r >= 2: 180 / 60, where the reference crashes, bug B4)."""
import pytest
import torch

from conftest import stage, write_jpeg_tree
from models import create_model
from models.imagenet import VGG_CONVS
from utils.checkpoint import save_checkpoint, spec_fields

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "imagenet/thinet"
QUIET = ["--no-progress", "--no-tensorboard"]
NOLOG = (lambda *a, **k: None)  # noqa: E731


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=3, train_per_class=8, val_per_class=2)


def data(tree):
    return ["--data", tree, "--input-size", 32, "--workers", 0, "--test-batch-size", 6]


@pytest.mark.parametrize("name,expected", [("thinet-70", (141, 47)), ("thinet-30", (180, 60)),
                                           ("thinet-tiny", (180, 60))])
def test_published_networks_get_the_cap_rule(name, expected):
    from test_imagenet_published import budget
    epochs, schedule, record, _ = budget(KEY, name)
    assert (epochs, record["lr_step"]) == expected
    assert schedule == list(range(expected[1], epochs, expected[1]))


def test_scratch_trains_a_published_network_by_name(tree, tmp_path):
    s = stage(KEY, "scratch", data(tree) + ["--model", "thinet-70", "--budget", "E", "--epochs", 1, "--batch-size", 8,
                                            "--save", tmp_path / "e"] + QUIET, log=NOLOG)
    assert s["source"] == "published:thinet-70" and s["cfg"][1] == 44 and s["epochs"] == 1
    from utils.errors import UserError
    with pytest.raises(UserError, match="give one network"):
        stage(KEY, "scratch", data(tree) + ["--model", "thinet-70", "--scratch", tmp_path / "x.pth.tar",
                                            "--save", tmp_path / "f"] + QUIET, log=NOLOG)


def test_prune_vgg16_leaves_conv5_and_resnet50_prunes_both_inner_convs(tree, tmp_path):
    torch.manual_seed(0)
    vgg = create_model("imagenet_vgg", 16, num_classes=3, image_size=32,
                       cfg=[c if c == "M" else c // 16 for c in VGG_CONVS[16]])
    save_checkpoint({**spec_fields(vgg, "imagenet"), "state_dict": vgg.state_dict()}, tmp_path / "vgg.pth.tar")
    rec = stage(KEY, "prune", data(tree) + ["--model", tmp_path / "vgg.pth.tar", "--percent", 0.5, "--calib-images",
                                            12, "--save", tmp_path / "pv"], log=NOLOG)
    assert rec["cfg"] == [2, 2, "M", 4, 4, "M", 8, 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M"]
    assert all(r["error_after"] <= r["error_before"] + 1e-9 for r in rec["layer_records"])
    resnet = create_model("imagenet_resnet", 50, num_classes=3, image_size=32, base_width=8)
    save_checkpoint({**spec_fields(resnet, "imagenet"), "state_dict": resnet.state_dict()}, tmp_path / "r.pth.tar")
    rec = stage(KEY, "prune", data(tree) + ["--model", tmp_path / "r.pth.tar", "--percent", 0.7, "--calib-images", 6,
                                            "--samples-per-image", 2, "--save", tmp_path / "pr"], log=NOLOG)
    # ThiNet-30's shape at 1/8 width: b = c = int(0.3 x 8/16/32/64), the block inputs a untouched
    widths = [2, 4, 9, 19]
    expected = []
    for s, n in enumerate((3, 4, 6, 3)):
        for i in range(n):
            a = (8 if s == 0 else 16 * 2 ** s) if i == 0 else 32 * 2 ** s
            expected += [a, widths[s], widths[s]]
    assert rec["cfg"] == expected
