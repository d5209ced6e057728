"""imagenet/weight-level (reference.md 4.4, 4.9, 5.5, 6.1 B3, 7.12): prune.py on torchvision's ResNet-50 state_dict
and on a small VGG-BN keeps exactly what an oracle of the reference's prune.py keeps (ties at the threshold
included), prune.json has the nonzero-rule FLOPs and scratch-B's epochs with and without the bug-B3 flag (the same
scratch.py then trains), --arch vgg16_bn / resnet50 build torchvision's layouts, fine-tune and scratch on a JPEG
tree keep the mask, and the run scripts chain the stages with the reference's recipe."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import ROOT, stage, write_jpeg_tree
from models import build_from_spec, create_model
from utils.checkpoint import save_checkpoint, spec_fields
from utils.errors import UserError
from utils.flops import count_flops
from utils.methods import StageContext, get_method

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "imagenet/weight-level"
HERE = ROOT / "imagenet" / "weight-level"
TINY = ["--input-size", 32, "--workers", 0, "--batch-size", 8, "--test-batch-size", 8, "--no-progress",
        "--no-tensorboard", "--device", "cpu"]


def quiet(*args):
    pass


def quantise(state, levels, seed):
    """Conv weights (4-D) on a coarse grid, so that the threshold is a value many weights share."""
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(-levels, levels + 1, v.shape, generator=g).float() / (4 * levels)
                if k.endswith("weight") and v.dim() == 4 else v) for k, v in state.items()}


def reference_prune(state, percent):
    """The reference's imagenet/weight-level/prune.py restated over a state_dict: the |w| of every Conv2d weight
    (the 4-D ones), thre = sort(|w|)[int(total * percent)], keep |w| > thre. (threshold, {key: keep}) in numpy."""
    convs = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    pool = np.concatenate([np.abs(state[k].numpy()).ravel() for k in convs])
    k = int(pool.size * percent)
    thre = np.partition(pool, k)[k]  # = np.sort(pool)[k], in linear time (ResNet-50 has 23M conv weights)
    return thre, {k: np.abs(state[k].numpy()) > thre for k in convs}


def conv_positions(model):
    """{conv weight key: output positions H*W} at the model's input size."""
    sizes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: sizes.__setitem__(n + ".weight", o.shape[2] * o.shape[3]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, model.spec.image_size, model.spec.image_size))
    for h in hooks:
        h.remove()
    return sizes


def check_pruned(source, save, percent):
    """The pruned checkpoint against the oracle; prune.json's nonzero FLOPs and scratch-B budgets by hand."""
    ckpt = torch.load(Path(save) / "pruned.pth.tar", map_location="cpu", weights_only=True)
    record = json.loads((Path(save) / "prune.json").read_text())
    thre, keep = reference_prune(source, percent)
    assert set(ckpt["masks"]) == set(keep)
    for k, expected in keep.items():
        assert np.array_equal(ckpt["masks"][k].numpy(), expected), k
        assert torch.equal(ckpt["state_dict"][k], source[k] * torch.from_numpy(expected).float()), k
    for k, v in source.items():  # Linear, BN, conv biases, running statistics: untouched
        if k not in keep:
            assert torch.equal(ckpt["state_dict"][k], v), k
    removed = {k: int((~v).sum()) for k, v in keep.items()}
    total = sum(v.size for v in keep.values())
    assert record["threshold"] == float(thre) and record["flops_rule"] == "nonzero"
    assert (record["masked_weights"], record["masked_weights_pruned"]) == (total, sum(removed.values()))
    model = build_from_spec(ckpt["model"])
    positions = conv_positions(model)
    f_dense = count_flops(model)
    zeros = {k: int((source[k] == 0).sum()) for k in keep}  # the grid's zeros: nonzero FLOPs before pruning too
    f_sparse = f_dense - sum(2 * removed[k] * positions[k] for k in keep)
    assert record["flops_base"] == f_dense - sum(2 * zeros[k] * positions[k] for k in keep)
    assert record["flops_dense"] == f_dense and record["flops_pruned"] == f_sparse
    epochs = int(90 * f_dense / f_sparse)  # reference.md 5.5: no cap, StepLR(int(E / 3))
    assert (record["scratch_b_epochs"], record["scratch_b_lr_step"]) == (epochs, int(epochs / 3))
    assert (record["scratch_b_epochs_flops_ratio_one"], record["scratch_b_lr_step_flops_ratio_one"]) == (90, 30)
    return ckpt, record, thre


def budget(path, arch=None, epochs=90):
    """What scratch.py --budget B computes for a pruned checkpoint: (epochs, record, the run's TrainArgs)."""
    from utils.cli import args_for
    from utils.stages import ImageDataArgs, TrainArgs, data_info, load_source
    method = get_method(KEY)
    data = args_for(ImageDataArgs, method, "scratch")
    info = data_info(data)
    ckpt, model = load_source(str(path), "--scratch", info, arch, None, method=method)
    train = args_for(TrainArgs, method, "scratch", epochs=epochs)
    ctx = StageContext("scratch-B", method.ScratchHparams(), data, train, info,
                       model=model, source=ckpt, source_path=str(path))
    return (*method.scratch_budget(ctx, epochs), train)


# ====================================================================== torchvision's ResNet-50, 224 px
@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    import torchvision
    root = tmp_path_factory.mktemp("resnet50")
    torch.manual_seed(0)
    state = quantise(torchvision.models.resnet50().state_dict(), levels=60, seed=1)
    torch.save(state, root / "resnet50.pth")  # a bare state_dict, as torchvision's resnet50-0676ba61.pth
    stage(KEY, "prune", ["--arch", "resnet50", "--percent", 0.3, "--model", root / "resnet50.pth",
                         "--save", root / "p"], log=quiet)
    return state, root


def test_resnet50_prune_is_the_references_with_its_flops_and_budgets(resnet50):
    state, root = resnet50
    ckpt, record, thre = check_pruned(state, root / "p", 0.3)
    assert record["masked_weights"] == 23_454_912  # every conv of ResNet-50: stem, bottlenecks, downsamples
    assert "layer1.0.downsample.0.weight" in ckpt["masks"] and "fc.weight" not in ckpt["masks"]
    pool = np.concatenate([np.abs(state[k].numpy()).ravel() for k in ckpt["masks"]])
    assert (pool == thre).sum() > 1 and record["masked_weights_pruned"] > int(pool.size * 0.3) + 1  # ties went too
    assert (ckpt["arch"], ckpt["depth"], record["percent"]) == ("imagenet_resnet", 50, 0.3)
    assert record["acc_before"] is None  # no --data: nothing evaluated
    # scratch.py --budget B on it: the budget prune.json announced, as a StepLR (the B3 flag: test_stages_...)
    epochs, rec, train = budget(root / "p" / "pruned.pth.tar")
    step = record["scratch_b_lr_step"]
    assert (epochs, rec["lr_step"]) == (record["scratch_b_epochs"], step) and epochs > 90
    assert rec["flops_ratio"] == pytest.approx(record["flops_ratio_dense"], rel=1e-6)
    assert train.schedule == list(range(step, epochs, step)) and train.schedule_unit == "epoch"
    # the reference's own pruned.pth.tar (DataParallel keys, no spec, no masks): the mask is its zeros
    ref = {"epoch": 0, "state_dict": {"module." + k: v for k, v in ckpt["state_dict"].items()}, "acc": 0.0,
           "best_acc": 0.0}
    torch.save(ref, root / "reference_pruned.pth.tar")
    epochs, rec, _ = budget(root / "reference_pruned.pth.tar", arch="resnet50")
    assert epochs == record["scratch_b_epochs"] and rec["flops_pruned"] == record["flops_pruned"]


# ================================================================================== architecture names
def test_reference_arch_names_build_torchvision_layouts():
    import torchvision
    from models import option_kwargs
    from utils.cli import parse
    method = get_method(KEY)
    for name in ("prune", "finetune", "scratch", "train"):
        flag = {"prune": "--model", "finetune": "--refine", "scratch": "--scratch", "train": "--save"}[name]
        for arch, expected in (("vgg16_bn", ("imagenet_vgg", 16, {"batch_norm": True})),
                               ("resnet50", ("imagenet_resnet", 50, {}))):
            parsed, options, _, _ = parse(method, name, "", ["--arch", arch, flag, "x"])
            spec = next(p for p in parsed if hasattr(p, "arch"))
            assert (spec.arch, spec.depth, option_kwargs(spec.arch, spec.depth, options)) == expected, (name, arch)
    parsed, options, _, _ = parse(method, "train", "", [])  # the default: torchvision's vgg16_bn
    assert (parsed[0].arch, parsed[0].depth, options.batch_norm) == ("imagenet_vgg", 16, True)
    for tv, arch, depth, kwargs in (("vgg16_bn", "imagenet_vgg", 16, {"batch_norm": True}),
                                    ("resnet50", "imagenet_resnet", 50, {})):
        with torch.device("meta"):
            ours = {k: v.shape for k, v in create_model(arch, depth, **kwargs).state_dict().items()}
            theirs = {k: v.shape for k, v in getattr(torchvision.models, tv)().state_dict().items()}
        assert ours == theirs, tv
    with pytest.raises(UserError, match="vgg16_bn is depth 16"):
        parse(method, "prune", "", ["--arch", "vgg16_bn", "--depth", "19"])
    with pytest.raises(UserError, match="--batch-norm applies to --arch imagenet_vgg, not imagenet_resnet"):
        parse(method, "prune", "", ["--arch", "resnet50", "--batch-norm"])
    with pytest.raises(UserError, match="--percent 1.0: must lie in"):
        parse(method, "prune", "", ["--percent", "1"])


def test_small_vgg_bn_prune_is_the_references(tmp_path):
    """Conv biases, BN and the 4096-wide head stay out of the pool; ties at the threshold go with it."""
    torch.manual_seed(2)
    model = create_model("imagenet_vgg", 11, num_classes=3, image_size=32, batch_norm=True,
                         cfg=[8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"])
    state = quantise(model.state_dict(), levels=8, seed=3)
    model.load_state_dict(state)
    save_checkpoint({**spec_fields(model, "imagenet"), "state_dict": state}, str(tmp_path / "vgg.pth.tar"))
    stage(KEY, "prune", ["--percent", 0.6, "--model", tmp_path / "vgg.pth.tar", "--save", tmp_path / "p",
                         "--input-size", 32], log=quiet)
    ckpt, record, _ = check_pruned(state, tmp_path / "p", 0.6)
    assert len(ckpt["masks"]) == 8 and "features.1.weight" not in ckpt["masks"]  # the convs; features.1 is a BN


# ========================================================================= the stages on a JPEG tree
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A ResNet-50 at 1/16 width trained, pruned (60%), fine-tuned, scratch-E and scratch-B (with and without the
    B3 flag) on 32 px crops, one or a few epochs each."""
    root = tmp_path_factory.mktemp("wl_stages")
    tree = write_jpeg_tree(root / "tree")
    data = ["--data", tree, *TINY]
    out = {"root": root}
    out["baseline"] = stage(KEY, "train", [*data, "--arch", "resnet50", "--width", 0.0625, "--epochs", 1,
                                           "--save", root / "baseline"], log=quiet)
    out["prune"] = stage(KEY, "prune", ["--data", tree, "--input-size", 32, "--workers", 0, "--device", "cpu",
                                        "--percent", 0.6, "--model", root / "baseline" / "checkpoint.pth.tar",
                                        "--save", root / "pruned"], log=quiet)
    pruned = root / "pruned" / "pruned.pth.tar"
    out["finetune"] = stage(KEY, "finetune", [*data, "--refine", pruned, "--epochs", 1, "--save", root / "ft"],
                            log=quiet)
    out["scratch-E"] = stage(KEY, "scratch", [*data, "--scratch", pruned, "--epochs", 1, "--save", root / "E"],
                             log=quiet)
    for name, epochs, flag in (("scratch-B", 8, []), ("scratch-B3", 3, ["--flops-ratio-one"])):
        out[name] = stage(KEY, "scratch", [*data, "--scratch", pruned, "--budget", "B", "--epochs", epochs, *flag,
                                           "--save", root / name], log=quiet)
    return out


def test_stages_keep_the_mask_with_the_references_recipes(runs):
    root = runs["root"]
    pruned = torch.load(root / "pruned" / "pruned.pth.tar", weights_only=True)
    masks = pruned["masks"]
    assert runs["prune"]["density"] < 0.41 and runs["prune"]["acc_before"] is not None
    for name, folder in (("finetune", "ft"), ("scratch-E", "E"), ("scratch-B", "scratch-B")):
        ckpt = torch.load(root / folder / "checkpoint.pth.tar", weights_only=True)
        changed = 0
        for k, m in masks.items():
            assert torch.equal(ckpt["masks"][k], m), (name, k)
            assert torch.all(ckpt["state_dict"][k][~m] == 0), (name, k)  # pruned weights stay exactly zero
            changed += int((ckpt["state_dict"][k][m] != pruned["state_dict"][k][m]).sum())
        assert changed > 0, name  # the kept weights trained (and were re-drawn for scratch)
        assert runs[name]["density"] == pytest.approx(runs["prune"]["density"])
    ft, e = runs["finetune"], runs["scratch-E"]
    assert (ft["args"]["lr"], ft["args"]["schedule"], ft["args"]["batch_size"]) == (0.001, [], 8)
    assert (e["args"]["lr"], e["args"]["schedule"], e["args"]["schedule_unit"]) == (0.1, [30, 60], "epoch")
    # scratch-B: int(8 r) epochs with r from the nonzero FLOPs, step a third of them; B3: 3 epochs, step 1. r of
    # this 60% prune depends on the CPU the baseline trained on (1.21 on one, over 1.25 on another): 8, not 4, so
    # that any r over 1.125 lengthens the run
    b, b3 = runs["scratch-B"], runs["scratch-B3"]
    ratio = runs["prune"]["flops_ratio_dense"]
    assert b["flops_ratio"] == pytest.approx(ratio) and b["epochs"] == int(8 * b["flops_base"] / b["flops_pruned"])
    assert b["epochs"] > 8 and b["lr_step"] == int(b["epochs"] / 3)
    assert b["schedule"] == list(range(b["lr_step"], b["epochs"], b["lr_step"]))
    assert (b3["epochs"], b3["lr_step"], b3["schedule"], b3["flops_ratio_one"]) == (3, 1, [1, 2], True)
    assert "flops_ratio_one" not in b and b3["flops_ratio"] == pytest.approx(ratio)


# ========================================================================================= run scripts
@pytest.mark.parametrize("script,arch", [("run_vgg16_bn.sh", "vgg16_bn"), ("run_resnet50.sh", "resnet50")])
def test_run_scripts_dry_run(script, arch, tmp_path):
    proc = subprocess.run(["bash", str(HERE / script), "--data", "/d", "--pretrained", "w.pth", "--percent",
                           "0.3 0.6", "--seeds", "1 2", "--flops-ratio-one", "--save", str(tmp_path), "--dry-run",
                           "--", "--device", "cuda"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cmds = [line.split() for line in proc.stdout.splitlines() if not line.startswith("==")]
    assert [Path(c[1]).name for c in cmds] == ["prune.py", "finetune.py", "scratch.py", "scratch.py"] * 4

    def flag(cmd, f):
        return cmd[cmd.index(f) + 1]

    prune, ft, se, sb = cmds[:4]
    assert (flag(prune, "--arch"), flag(prune, "--percent"), flag(prune, "--model")) == (arch, "0.3", "w.pth")
    assert flag(prune, "--save") == f"{tmp_path}/seed1/p0.3/pruned" and "--device" not in prune
    assert (flag(ft, "--epochs"), flag(ft, "--lr")) == ("10", "0.001")
    assert (flag(se, "--budget"), flag(se, "--epochs"), flag(se, "--lr")) == ("E", "90", "0.1")
    assert (flag(sb, "--budget"), flag(sb, "--epochs")) == ("B", "90") and "--flops-ratio-one" in sb
    assert "--flops-ratio-one" not in se
    for cmd in (ft, se, sb):
        assert flag(cmd, "--data") == "/d" and cmd[-2:] == ["--device", "cuda"]
        assert flag(cmd, "--refine" if cmd is ft else "--scratch") == f"{tmp_path}/seed1/p0.3/pruned/pruned.pth.tar"
    assert flag(cmds[4], "--percent") == "0.6" and flag(cmds[9], "--seed") == "2"


@pytest.mark.parametrize("argv,named", [(["--percent", "1"], "--percent"), ([], "--data"),
                                        (["--data", "/d"], "--pretrained"), (["--frobnicate"], "--frobnicate")])
def test_run_script_bad_arguments(argv, named):
    proc = subprocess.run(["bash", str(HERE / "run_resnet50.sh"), *argv, "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and named in proc.stderr and "run_resnet50.sh: error" in proc.stderr
