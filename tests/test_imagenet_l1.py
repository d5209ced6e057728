"""ImageNet L1-norm pruning of ResNet-34 (reference.md 4.7, 5.5): prune.py on a torchvision-layout state_dict keeps
exactly what an oracle of the reference's prune.py rules keeps, writes the cfgs of 4.7 with the params and FLOPs of
2.13, and scratch-B gets the cap rule's 106 epochs / step 35 (A) and 118 / step 39 (B)."""
import json

import numpy as np
import pytest
import torch

from conftest import stage
from models import build_from_spec
from utils.checkpoint import load_checkpoint
from utils.methods import StageContext, get_method

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "imagenet/l1-norm-pruning"
CFG = {"A": [64, 44, 44, 128, 89, 89, 128, 256, 179, 179, 179, 179, 256, 512, 512, 512],
       "B": [64, 32, 32, 128, 51, 51, 128, 256, 153, 153, 153, 153, 256, 512, 512, 512]}
SIZES = {"A": (20_151_764, 6_212_499_416), "B": (19_469_372, 5_576_203_448)}  # reference.md 2.13
BASE = (21_797_672, 7_340_393_960)
BUDGET = {"A": (106, 35), "B": (118, 39)}  # reference.md 5.5


def reference_rule(state, variant):
    """The reference's imagenet/l1-norm-pruning/prune.py, restated over a state_dict: number the non-1x1 convs in
    module order from 1; for an even id not in the skip list, keep the int(C (1 - p)) filters of largest L1 norm
    (argsort descending, first num_keep), p by the id's stage."""
    skip = [2, 8, 14, 16, 26, 28, 30, 32]
    prune_prob = {"A": [0.3, 0.3, 0.3, 0.0], "B": [0.5, 0.6, 0.4, 0.0]}[variant]
    out, layer_id = {}, 0
    for key, w in state.items():
        if not key.endswith("weight") or w.dim() != 4 or w.shape[2] == 1:
            continue
        layer_id += 1
        if layer_id % 2 == 1 or layer_id in skip:
            continue
        stage_ = 0 if layer_id <= 6 else 1 if layer_id <= 14 else 2 if layer_id <= 26 else 3
        num_keep = int(w.shape[0] * (1 - prune_prob[stage_]))
        l1 = np.abs(w.numpy()).reshape(w.shape[0], -1).sum(1)
        out[key] = sorted(np.argsort(l1)[::-1][:num_keep].tolist())
    return out


@pytest.fixture(scope="module")
def torchvision_weights(tmp_path_factory):
    import torchvision
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tv") / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    return path


@pytest.mark.parametrize("variant", ["A", "B"])
def test_prune_keeps_the_references_filters_with_its_sizes_and_budget(torchvision_weights, tmp_path, variant):
    save = tmp_path / "pruned"
    record = stage(KEY, "prune", ["--arch", "resnet", "--depth", 34, "-v", variant, "--model", torchvision_weights,
                                  "--save", save], log=lambda *a: None)
    assert record["cfg"] == CFG[variant]
    assert (record["params_base"], record["flops_base"]) == BASE
    assert (record["params_pruned"], record["flops_pruned"]) == SIZES[variant]
    assert json.loads((save / "prune.json").read_text())["cfg"] == CFG[variant]
    assert (record["scratch_b_epochs"], record["scratch_b_lr_step"]) == BUDGET[variant]  # announced for scratch.py
    state = torch.load(torchvision_weights, weights_only=True)
    expected = reference_rule(state, variant)
    ckpt = load_checkpoint(str(save / "pruned.pth.tar"))
    pruned = ckpt["state_dict"]
    default = [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    assert len(expected) == sum(c != w for c, w in zip(CFG[variant], default))  # every layer the rule prunes
    for key, kept in expected.items():  # the kept filters, their weights and the next conv's input channels
        assert torch.equal(pruned[key], state[key][kept]), key
        nxt = key.replace("conv1", "conv2")
        assert torch.equal(pruned[nxt], state[nxt][:, kept]), nxt
    # scratch-B by the cap rule
    method = get_method(KEY)
    model = build_from_spec(ckpt["model"])
    from utils.cli import args_for
    from utils.stages import ScratchArgs, TrainArgs
    train = args_for(TrainArgs, method, "scratch")
    ctx = StageContext("scratch-B", None, None, train, None, model=model, source=ckpt, source_path=str(save))
    epochs, rec = method.scratch_budget(ctx, train.epochs)
    assert (epochs, rec["lr_step"]) == BUDGET[variant]
    assert train.schedule == list(range(BUDGET[variant][1], epochs, BUDGET[variant][1]))
    assert args_for(ScratchArgs, method, "scratch").budget == "E" and train.lr == 0.1 and train.epochs == 90


def test_pretrained_weights_of_another_architecture_are_a_one_line_error(tmp_path):
    import torchvision
    from conftest import ROOT, run_in_process
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    proc = run_in_process(ROOT / KEY / "prune.py", ["--arch", "resnet", "--depth", 34, "--model", path,
                                                    "--save", tmp_path / "p"])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"--model {path}: weights do not fit imagenet_resnet-34" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_reference_checkpoint_layouts_load(tmp_path):
    """The reference's ImageNet checkpoints: DataParallel over the whole model (module.) or, for its VGGs, over the
    features only (features.module.); and --pretrained is prune.py's name for a torchvision weights file."""
    from utils.checkpoint import load_checkpoint
    state = {"features.0.weight": torch.ones(1), "classifier.0.bias": torch.zeros(1)}
    torch.save({"state_dict": {k.replace("features.", "features.module."): v for k, v in state.items()},
                "epoch": 90}, tmp_path / "vgg.pth.tar")
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "dp.pth.tar")
    for name in ("vgg.pth.tar", "dp.pth.tar"):
        assert sorted(load_checkpoint(str(tmp_path / name))["state_dict"]) == sorted(state)
    from utils.cli import build
    parser, _, _ = build(get_method(KEY), "prune", "")
    assert parser.parse_args(["--pretrained", "r34.pth"]).model == "r34.pth"
