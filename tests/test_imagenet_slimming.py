"""Network slimming on ImageNet's VGG-11-BN (reference.md 4.2, 5.5): the global threshold over every BatchNorm2d and
BatchNorm1d keeps what an oracle of the reference's prune.py keeps (cfg with 'M's and the two FC widths), the
mask implementation keeps its zeroed channels at zero through fine-tuning, and scratch-B has no cap."""
import json

import pytest
import torch
import torch.nn as nn

from conftest import stage, write_jpeg_tree
from models import create_model
from utils.checkpoint import load_checkpoint, save_checkpoint, spec_fields

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "imagenet/network-slimming"
QUIET = ["--no-progress", "--no-tensorboard"]
NOLOG = (lambda *a, **k: None)  # noqa: E731
SMALL = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M", 128, 128]


def reference_prune(model, percent):
    """The reference's imagenet/network-slimming/prune.py, restated: |gamma| of every BN2d and BN1d in module order,
    thre = sorted[int(total * percent)], masks |gamma| > thre; cfg = mask sums with 'M' at every MaxPool2d."""
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))]
    gammas = torch.cat([m.weight.detach().abs() for m in bns])
    thre = gammas.sort().values[int(gammas.numel() * percent)]
    cfg, masks = [], []
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            mask = m.weight.detach().abs() > thre
            masks.append(mask)
            cfg.append(int(mask.sum()))
        elif isinstance(m, nn.MaxPool2d):
            cfg.append("M")
    return cfg, masks, gammas.numel(), int(gammas.numel() * percent)


def sparse_checkpoint(path, cfg=SMALL, image_size=32, classes=10, seed=0):
    torch.manual_seed(seed)
    model = create_model("imagenet_vgg_slim", 11, num_classes=classes, image_size=image_size, cfg=cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.copy_(torch.rand(m.num_features) ** 3 * torch.sign(torch.randn(m.num_features)))
    save_checkpoint({**spec_fields(model, "imagenet"), "state_dict": model.state_dict(), "epoch": 1,
                     "args": {"sparsity_regularization": True, "s": 1e-5}}, path)
    return model


@pytest.mark.parametrize("percent", [0.3, 0.5, 0.7])
def test_prune_keeps_what_the_reference_keeps(tmp_path, percent):
    model = sparse_checkpoint(tmp_path / "sparse.pth.tar")
    record = stage(KEY, "prune", ["--arch", "vgg", "--depth", 11, "--model", tmp_path / "sparse.pth.tar",
                                  "--percent", percent, "--save", tmp_path / "p"], log=NOLOG)
    cfg, masks, total, index = reference_prune(model, percent)
    assert record["cfg"] == cfg and record["bn_channels"] == total and record["threshold_index"] == index
    pruned = load_checkpoint(str(tmp_path / "p" / "pruned.pth.tar"))
    kept = [torch.nonzero(m).flatten().tolist() for m in masks]
    groups = [int(k) for k in sorted(pruned["kept"], key=int)]
    assert [pruned["kept"][str(g)] for g in groups] == kept
    masked = load_checkpoint(str(tmp_path / "p" / "masked.pth.tar"))
    assert masked["mask_implementation"] and masked["model"]["cfg"] == SMALL and masked["pruned_cfg"] == cfg
    bn_names = [n for n, m in model.named_modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))]
    for name, mask in zip(bn_names, masks):
        for key in ("weight", "bias"):
            value = masked["state_dict"][f"{name}.{key}"]
            assert torch.all(value[~mask] == 0), name
            assert torch.equal(value[mask], model.state_dict()[f"{name}.{key}"][mask]), name


def test_full_vgg11_threshold_index_is_the_references(tmp_path):
    """10,944 BN channels (reference.md 4.2), int(10944 x 0.5) = 5472."""
    from models.imagenet import VGG_CONVS
    model = sparse_checkpoint(tmp_path / "full.pth.tar", cfg=VGG_CONVS[11] + [4096, 4096], image_size=224,
                              classes=1000)
    from utils.slimming import BN_ALL, global_threshold
    _, total, index = global_threshold(model, 0.5, types=BN_ALL)
    assert (total, index) == (10_944, 5_472)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=3, train_per_class=8, val_per_class=2)


def test_stages_sparsity_mask_finetune_and_scratch_b(tree, tmp_path):
    data = ["--data", tree, "--input-size", 32, "--workers", 0, "--test-batch-size", 6]
    train = data + ["--batch-size", 8, "--seed", 1] + QUIET
    s = stage(KEY, "train", train + ["--arch", "vgg11_bn", "--width", 0.125, "--s", 0.01, "--epochs", 1,
                                     "--save", tmp_path / "sparse"], log=NOLOG)
    assert s["args"]["sparsity_regularization"] and s["stage"] == "sparsity"
    prune = stage(KEY, "prune", data + ["--model", tmp_path / "sparse" / "checkpoint.pth.tar", "--percent", 0.5,
                                        "--save", tmp_path / "p"], log=NOLOG)
    assert prune["acc_masked"] == pytest.approx(prune["acc_after"], abs=1e-9)  # the same function
    masked = load_checkpoint(str(tmp_path / "p" / "masked.pth.tar"))
    dead = {k: v == 0 for k, v in masked["state_dict"].items() if k.endswith(".weight") and v.dim() == 1}
    stage(KEY, "finetune", train + ["--refine", tmp_path / "p" / "masked.pth.tar", "--epochs", 1, "--lr", 0.05,
                                    "--save", tmp_path / "ft-masked"], log=NOLOG)
    after = load_checkpoint(str(tmp_path / "ft-masked" / "checkpoint.pth.tar"))["state_dict"]
    for key, zero in dead.items():
        if zero.any():
            assert torch.all(after[key][zero] == 0) and torch.all(after[key[:-6] + "bias"][zero] == 0), key
    assert any(not torch.equal(after[k], masked["state_dict"][k]) for k in dead)  # it did train
    ft = stage(KEY, "finetune", train + ["--refine", tmp_path / "p" / "pruned.pth.tar", "--epochs", 1,
                                         "--save", tmp_path / "ft"], log=NOLOG)
    assert ft["params"] == prune["params_pruned"]
    b = stage(KEY, "scratch", train + ["--scratch", tmp_path / "p" / "pruned.pth.tar", "--budget", "B", "--epochs", 2,
                                       "--save", tmp_path / "sb"], log=NOLOG)
    r = prune["flops_base"] / prune["flops_pruned"]
    assert b["epochs"] == int(2 * r) and b["lr_step"] == int(b["epochs"] / 3) and "no cap" in b["budget_rule"]
    assert prune["scratch_b_epochs"] == int(90 * r) and prune["scratch_b_lr_step"] == int(int(90 * r) / 3)
    from utils.errors import UserError
    with pytest.raises(UserError, match="mask implementation"):
        stage(KEY, "scratch", train + ["--scratch", tmp_path / "p" / "masked.pth.tar", "--save", tmp_path / "x"],
              log=NOLOG)
    assert json.loads((tmp_path / "p" / "prune.json").read_text())["cfg"] == prune["cfg"]
