"""cifar/weight-level: the models' reference sizes and layout, prune.py against an independent oracle of the
reference's cifar_prune.py rule (ties at the threshold included), the nonzero-FLOPs costs, the scratch-B
budget (and the bug-B2 flag), torch.nn.utils.prune interchange through the scripts, the run scripts, and bad
input (one line naming the flag or file, nothing written)."""
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune as torch_prune

from conftest import stage, PYTHON, ROOT, run
from models import build_from_spec, create_model
from utils.checkpoint import save_checkpoint, spec_fields
from utils.data import dataset_info
from utils.flops import count_flops, count_macs, count_params
from utils.methods import get_method
from utils.stages import TrainArgs, milestones

WL = ROOT / "cifar" / "weight-level"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TINY_VGG = [8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32]

pytestmark = pytest.mark.usefixtures("one_thread")


def prune_in_process(argv, log=lambda *a: None):
    return stage("cifar/weight-level", "prune", argv, log=log)


# =========================================================================================== models
@pytest.mark.parametrize("arch,depth,options,params,conv_params,flops", [
    ("vgg19_bn", 19, {}, 20_040_522, 20_018_880, None),
    ("preresnet_wl", 110, {}, 1_146_842, 1_128_112, None),
    ("densenet_wl", 40, {}, 1_059_298, None, 573_052_330),
    ("densenet_wl", 100, {"compression_rate": 2}, 4_068_490, None, 2_684_153_602),
], ids=["vgg19_bn", "preresnet110", "densenet40", "densenet100-cr2"])
def test_reference_sizes(arch, depth, options, params, conv_params, flops):
    """reference.md 2.13 (CIFAR-10)."""
    model = create_model(arch, depth, **options)
    assert count_params(model) == params
    if conv_params is not None:
        assert sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d)) == conv_params
    if flops is not None:
        assert count_flops(model) == flops


def densenet_bc_params(depth, k=12, classes=10):
    """DenseNet-BC by hand: stem 3x3 to 2k; per layer BN-1x1(to 4k)-BN-3x3(to k); transitions halve."""
    n, c = (depth - 4) // 6, 2 * k
    total = 3 * 9 * c
    for block in range(3):
        for _ in range(n):
            total += 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
            c += k
        if block < 2:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


def test_densenet_bc_100_is_the_papers_network():
    model = create_model("densenet_bc", 100)
    assert count_params(model) == densenet_bc_params(100) == 769_162  # the 0.8M of DenseNet-BC (k=12)
    assert len(model.dense1) == len(model.dense3) == 16
    assert model.dense1[0].conv1.out_channels == 48 and model.dense1[0].conv2.kernel_size == (3, 3)
    assert model.trans1.conv1.out_channels == model.trans1.conv1.in_channels // 2 == 108
    assert model.fc.in_features == 342


def test_reference_densenet100_and_preresnet_depth_rules():
    d100 = create_model("densenet_wl", 100, compression_rate=2)
    assert len(d100.dense1) == 32 and not hasattr(d100.dense1[0], "conv2")  # basic layers (bug B10)
    assert d100.trans1.conv1.out_channels == (24 + 32 * 12) // 2
    pre = create_model("preresnet_wl", 110)
    assert len(pre.layer1) == len(pre.layer3) == 12 and hasattr(pre.layer1[0], "conv3")  # n = (110-2)//9 = 12
    # B11: the lottery-ticket copy's n = (depth-2)//6 = 18 is the slimming PreResNet-164 without selection
    lottery = create_model("preresnet_wl", 110, blocks=18)
    slim = create_model("preresnet", 164)
    selection = sum(m.indexes.numel() for m in slim.modules() if hasattr(m, "indexes"))
    assert count_params(lottery) == count_params(slim) - selection == 1_703_258
    assert create_model("preresnet_wl", 20).layer1[0].__class__.__name__ == "PreBasicBlock"  # depth < 44


def _reference_vgg_keys(cfg, batch_norm):
    keys, i = set(), 0
    for v in cfg:
        if v == "M":
            i += 1
            continue
        keys |= {f"features.{i}.weight", f"features.{i}.bias"}
        if batch_norm:
            keys |= {f"features.{i + 1}.{t}" for t in ("weight", "bias", "running_mean", "running_var",
                                                        "num_batches_tracked")}
        i += 3 if batch_norm else 2
    return keys | {"classifier.weight", "classifier.bias"}


def test_reference_state_dict_layout_and_init():
    torch.manual_seed(0)
    for name, bn in (("vgg19_bn", True), ("vgg16", False)):
        model = create_model(name)
        assert set(model.state_dict()) == _reference_vgg_keys(model.cfg, bn)
        assert model.classifier.in_features == 512
    vgg = create_model("vgg19_bn")
    conv = vgg.features[-3]  # 512 -> 512 3x3: He fan-in std sqrt(2 / (9 * 512)), bias 0
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 512)) ** 0.5, rel=0.02)
    first = vgg.features[0]  # 3 -> 64: fan-in 27 (fan-out would be 576)
    assert first.weight.std().item() == pytest.approx((2 / 27) ** 0.5, rel=0.1)
    assert all(torch.all(m.bias == 0) for m in vgg.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert vgg.classifier.weight.std().item() == pytest.approx(0.01, rel=0.1)
    pre = create_model("preresnet_wl", 110)
    keys = set(pre.state_dict())
    assert {"conv1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer2.0.downsample.0.weight",
            "layer3.11.bn3.running_var", "bn.weight", "fc.weight"} <= keys
    assert not any(k.startswith(("layer1.1.downsample", "layer3.12.")) for k in keys)
    conv = pre.layer3[5].conv2  # 64 -> 64 3x3: He fan-out
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)
    for model in (pre, create_model("densenet_wl", 40), create_model("densenet_bc", 40)):
        assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
                   for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert {"dense1.0.conv1.weight", "trans2.conv1.weight", "dense3.11.bn1.weight"} <= \
        set(create_model("densenet_wl", 40).state_dict())
    assert "dense2.5.conv2.weight" in create_model("densenet_bc", 40).state_dict()


def test_bad_cfg_is_a_user_error():
    from utils.errors import UserError
    for arch, depth, cfg in [("vgg19_bn", 19, TINY_VGG), ("preresnet_wl", 110, [16] * 10),
                             ("densenet_wl", 40, [12] * 5), ("densenet_bc", 100, [48, 12] * 3),
                             ("vgg11", 11, [8, "M", 0, "M", 16, 16, "M", 32, 32, "M", 32, 32])]:
        with pytest.raises(UserError, match="cfg"):
            create_model(arch, depth, cfg=cfg)


# ======================================================================================= prune oracle
def quantise(state, levels, seed):
    """Conv weights (4-D) on a coarse grid: many exact ties, also at the threshold."""
    g = torch.Generator().manual_seed(seed)
    out = dict(state)
    for k, v in state.items():
        if k.endswith("weight") and v.dim() == 4:
            out[k] = torch.randint(-levels, levels + 1, v.shape, generator=g).float() / (levels * 4)
    return out


def reference_prune(state, percent):
    """cifar_prune.py on a state_dict: |w| of every 4-D weight (every Conv2d; order is irrelevant to a sort),
    thre = sorted[int(total * percent)], keep |w| > thre. Returns (threshold, {key: keep}) in numpy."""
    convs = [k for k, v in state.items() if k.endswith("weight") and v.dim() == 4]
    pool = np.concatenate([np.abs(state[k].numpy()).ravel() for k in convs]).astype(np.float32)
    total = pool.size
    thre = np.sort(pool)[int(total * percent)]
    return thre, {k: np.abs(state[k].numpy()) > thre for k in convs}


def check_against_oracle(source_state, pruned_path, percent):
    ckpt = torch.load(pruned_path, map_location="cpu", weights_only=True)
    thre, keep = reference_prune(source_state, percent)
    assert set(ckpt["masks"]) == set(keep)
    for k, expected in keep.items():
        assert ckpt["masks"][k].dtype == torch.bool
        assert np.array_equal(ckpt["masks"][k].numpy(), expected), k
        assert torch.equal(ckpt["state_dict"][k], source_state[k] * torch.from_numpy(expected).float()), k
    for k, v in source_state.items():  # BN, biases, Linear, running statistics: untouched
        if k not in keep:
            assert torch.equal(ckpt["state_dict"][k], v), k
    record = json.loads((Path(pruned_path).parent / "prune.json").read_text())
    total = sum(v.size for v in keep.values())
    removed = sum(int((~v).sum()) for v in keep.values())
    assert record["threshold"] == pytest.approx(float(thre), abs=0)
    assert (record["masked_weights"], record["masked_weights_pruned"]) == (total, removed)
    assert record["density"] == pytest.approx((total - removed) / total)
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    return ckpt, record, thre, total, removed


def test_prune_reference_checkpoint_matches_cifar_prune(tmp_path, cifar_dir):
    """A checkpoint in the reference's layout (DataParallel keys, no spec) through prune.py; quantised
    weights so that the threshold is a tied value: every weight equal to it is pruned too."""
    torch.manual_seed(0)
    model = create_model("preresnet_wl", 20)
    state = quantise(model.state_dict(), levels=12, seed=1)
    ref = {"epoch": 164, "state_dict": {"module." + k: v for k, v in state.items()}, "acc": 91.0,
           "best_acc": 91.2, "optimizer": {}}
    torch.save(ref, tmp_path / "model_best.pth.tar")
    # the reference's --arch name (preresnet_wl in our zoo)
    proc = run([WL / "prune.py", "--arch", "preresnet", "--depth", 20, "--dataset", "cifar10", "--data", cifar_dir,
                "--percent", 0.3, "--model", tmp_path / "model_best.pth.tar", "--save", tmp_path / "p"],
               env={"OMP_NUM_THREADS": "1"})
    ckpt, record, thre, total, removed = check_against_oracle(state, tmp_path / "p" / "pruned.pth.tar", 0.3)
    pool = np.concatenate([np.abs(v.numpy()).ravel() for k, v in state.items() if v.dim() == 4])
    assert (pool == thre).sum() > 1 and removed > int(total * 0.3) + 1  # the ties went with the threshold
    assert "downsample.0.weight" in " ".join(ckpt["masks"])  # shortcut convs are in the pool
    assert isinstance(record["acc_before"], float) and isinstance(record["acc_after"], float), (record, proc.stdout)
    assert "weight-level" in proc.stdout and record["percent"] == 0.3
    assert ckpt["arch"] == record["arch"] == "preresnet_wl" and record["dataset"] == "cifar10"


@pytest.mark.parametrize("arch,depth,cfg,percent", [
    ("vgg11_bn", 11, TINY_VGG, 0.55),
    ("densenet_bc", 40, None, 0.8),
    ("densenet_wl", 40, [3] * 36, 0.3),
])
def test_prune_our_checkpoint_matches_cifar_prune(tmp_path, arch, depth, cfg, percent):
    torch.manual_seed(1)
    model = create_model(arch, depth, cfg=cfg)
    path = tmp_path / "base.pth.tar"
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, str(path))
    lines = []
    prune_in_process(["--model", path, "--save", tmp_path / "p", "--percent", percent], log=lines.append)
    check_against_oracle(model.state_dict(), tmp_path / "p" / "pruned.pth.tar", percent)


def conv_positions(model):
    """{conv weight key: output positions H*W} from a forward pass at the model's geometry."""
    sizes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: sizes.__setitem__(n + ".weight", o.shape[2] * o.shape[3]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, model.spec.in_channels, model.spec.image_size, model.spec.image_size))
    for h in hooks:
        h.remove()
    return sizes


@pytest.fixture(scope="module")
def pruned_vgg(tmp_path_factory):
    root = tmp_path_factory.mktemp("pruned_vgg")
    torch.manual_seed(2)
    model = create_model("vgg11_bn", 11, cfg=TINY_VGG)
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, str(root / "base.pth.tar"))
    prune_in_process(["--model", root / "base.pth.tar", "--save", root / "p", "--percent", 0.6])
    return model, root


def test_prune_costs_count_only_nonzero_weights(pruned_vgg):
    model, root = pruned_vgg
    ckpt = torch.load(root / "p" / "pruned.pth.tar", weights_only=True)
    record = json.loads((root / "p" / "prune.json").read_text())
    positions = conv_positions(model)
    removed = {k: int((~m).sum()) for k, m in ckpt["masks"].items()}
    assert record["flops_base"] == count_flops(model)
    assert record["flops_pruned"] == count_flops(model) - sum(2 * removed[k] * positions[k] for k in removed)
    assert record["macs_base"] == count_macs(model)
    assert record["macs_pruned"] == count_macs(model) - sum(removed[k] * positions[k] for k in removed)
    assert record["params_pruned"] == count_params(model) - sum(removed.values()) == \
        record["params_total"] - record["masked_weights_pruned"]
    assert record["flops_ratio"] == pytest.approx(record["flops_base"] / record["flops_pruned"])
    assert ckpt["base_model"] == ckpt["model"] and ckpt["arch"] == "vgg11_bn"


def test_pruning_a_pruned_checkpoint_keeps_its_zeros(pruned_vgg, tmp_path):
    _, root = pruned_vgg
    first = torch.load(root / "p" / "pruned.pth.tar", weights_only=True)
    prune_in_process(["--model", root / "p" / "pruned.pth.tar", "--save", tmp_path / "p2", "--percent", 0.8])
    second = torch.load(tmp_path / "p2" / "pruned.pth.tar", weights_only=True)
    for k, m in first["masks"].items():
        assert not (second["masks"][k] & ~m).any()
    check_against_oracle(first["state_dict"], tmp_path / "p2" / "pruned.pth.tar", 0.8)


def test_a_layer_left_without_weights_is_refused_or_noted(tmp_path):
    from utils.errors import UserError
    torch.manual_seed(3)
    model = create_model("vgg11_bn", 11, cfg=TINY_VGG)
    with torch.no_grad():
        model.features[4].weight.mul_(1e-6)  # the second conv: all its weights fall under the threshold
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, str(tmp_path / "b.pth.tar"))
    with pytest.raises(UserError, match=r"--percent 0.5 leaves 1 layer\(s\) with no weight at all \(features.4.weight"):
        prune_in_process(["--model", tmp_path / "b.pth.tar", "--save", tmp_path / "p", "--percent", 0.5])
    assert not (tmp_path / "p").exists()
    lines = []
    prune_in_process(["--model", tmp_path / "b.pth.tar", "--save", tmp_path / "p", "--percent", 0.5,
                      "--allow-empty-layers"], log=lines.append)
    notes = [line for line in lines if line.startswith("note:") and "no weights left" in line]
    assert len(notes) == 1 and "features.4.weight" in notes[0] and "\n" not in notes[0]
    assert json.loads((tmp_path / "p" / "prune.json").read_text())["empty_layers"] == ["features.4.weight"]


# ====================================================================================== scratch-B
def _budget(path, flops_ratio_one, arch=None, depth=None, epochs=160):
    from utils.methods import StageContext
    from utils.stages import DataArgs, load_source
    method = get_method("cifar/weight-level")
    info = dataset_info("cifar10")
    ckpt, model = load_source(str(path), "--scratch", info, arch, depth, method=method)
    stage_ = StageContext("scratch-B", method.ScratchHparams(flops_ratio_one=flops_ratio_one), DataArgs(),
                          TrainArgs(epochs=epochs), info, model=model, source=ckpt, source_path=str(path))
    return method.scratch_budget(stage_, epochs)


def test_scratch_b_epochs_from_nonzero_flops(pruned_vgg, tmp_path):
    model, root = pruned_vgg
    ckpt = torch.load(root / "p" / "pruned.pth.tar", weights_only=True)
    positions = conv_positions(model)
    f_dense = count_flops(model)
    f_sparse = f_dense - sum(2 * int((~m).sum()) * positions[k] for k, m in ckpt["masks"].items())
    epochs, record = _budget(root / "p" / "pruned.pth.tar", False)
    assert epochs == int(160 * f_dense / f_sparse) > 160
    assert (record["flops_base"], record["flops_pruned"]) == (f_dense, f_sparse)
    assert milestones([0.5, 0.75], epochs) == [int(0.5 * epochs), int(0.75 * epochs)]
    # bug B2: the reference measured the pruned model before loading its weights -> ratio 1, E unchanged
    assert _budget(root / "p" / "pruned.pth.tar", True)[0] == 160
    assert _budget(root / "p" / "pruned.pth.tar", True, epochs=100)[0] == 100
    # the reference's own pruned.pth.tar ({epoch: 0, state_dict, acc, best_acc: 0}, no masks, no spec):
    # the mask is its nonzero pattern and the base the default network of --arch/--depth
    full = create_model("vgg11_bn", 11)
    torch.manual_seed(4)
    state = {k: v.clone() for k, v in full.state_dict().items()}
    for k, v in state.items():
        if v.dim() == 4:
            v.mul_((torch.rand(v.shape) > 0.5).float())
    torch.save({"epoch": 0, "state_dict": {"module." + k: v for k, v in state.items()}, "acc": 88.0, "best_acc": 0.0},
               tmp_path / "pruned.pth.tar")
    positions = conv_positions(full)
    f_dense = count_flops(full)
    f_sparse = f_dense - sum(2 * int((v == 0).sum()) * positions[k] for k, v in state.items() if v.dim() == 4)
    epochs, record = _budget(tmp_path / "pruned.pth.tar", False, "vgg11_bn", 11)
    assert epochs == int(160 * f_dense / f_sparse) and 300 < epochs < 330  # about half the conv FLOPs left


# =============================================================== torch.nn.utils.prune through the scripts
def test_export_to_torch_prune_and_back(pruned_vgg, tmp_path):
    _, root = pruned_vgg
    out = tmp_path / "tp.pth"
    run([WL / "export_torch_prune.py", "--model", root / "p" / "pruned.pth.tar", "--out", out],
        env={"OMP_NUM_THREADS": "1"})
    ours = torch.load(root / "p" / "pruned.pth.tar", weights_only=True)
    exported = torch.load(out, weights_only=True)
    # plain PyTorch: the network, torch's own reparametrisation, strict load
    net = build_from_spec(exported["model"]).eval()
    for name in ours["masks"]:
        torch_prune.identity(net.get_submodule(name.rsplit(".", 1)[0]), "weight")
    net.load_state_dict(exported["state_dict"])
    reference = build_from_spec(ours["model"]).eval()
    reference.load_state_dict(ours["state_dict"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), reference(x), atol=1e-6)
    for name, mask in ours["masks"].items():
        assert torch.equal(net.get_submodule(name.rsplit(".", 1)[0]).weight_mask.bool(), mask)
    # and our prune.py reads it back: pruning again at the same percent changes nothing
    lines = []
    prune_in_process(["--model", out, "--save", tmp_path / "again", "--percent", 0.6])
    again = torch.load(tmp_path / "again" / "pruned.pth.tar", weights_only=True)
    assert all(torch.equal(again["masks"][n], m) for n, m in ours["masks"].items())


def torch_pruned_state(amount=0.4, seed=5):
    """The state_dict of a network pruned by torch itself (global L1 over every conv), saved as users do."""
    torch.manual_seed(seed)
    model = create_model("vgg11_bn", 11, cfg=TINY_VGG)
    convs = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d)]
    torch_prune.global_unstructured(convs, pruning_method=torch_prune.L1Unstructured, amount=amount)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def test_prune_accepts_a_torch_prune_state_dict(tmp_path):
    model, state = torch_pruned_state()
    torch.save({"cfg": TINY_VGG, "state_dict": state}, tmp_path / "tp.pth")  # no spec: --arch/--depth given
    prune_in_process(["--model", tmp_path / "tp.pth", "--arch", "vgg11_bn", "--depth", 11, "--percent", 0.5, "--save",
                      tmp_path / "p"])
    masked = {k[:-5]: v * state[k[:-5] + "_mask"] for k, v in state.items() if k.endswith("_orig")}
    plain = {**{k: v for k, v in state.items() if not k.endswith(("_orig", "_mask"))}, **masked}
    ckpt, *_ = check_against_oracle(plain, tmp_path / "p" / "pruned.pth.tar", 0.5)
    for k in masked:
        assert not (ckpt["masks"][k] & ~state[k + "_mask"].bool()).any()  # torch's zeros stay pruned


def test_finetune_enforces_the_masks_of_a_torch_prune_state_dict(tmp_path, cifar_dir):
    _, state = torch_pruned_state(amount=0.5, seed=6)
    torch.save({"cfg": TINY_VGG, "state_dict": state}, tmp_path / "tp.pth")
    run([WL / "finetune.py", "--refine", tmp_path / "tp.pth", "--arch", "vgg11_bn", "--depth", 11, "--dataset",
         "cifar10", "--data", cifar_dir, "--epochs", 2, "--lr", 0.05, "--train-subset", 128, "--test-subset", 64,
         "--no-progress", "--no-tensorboard", "--save", tmp_path / "ft"], env={"OMP_NUM_THREADS": "1"})
    ckpt = torch.load(tmp_path / "ft" / "checkpoint.pth.tar", weights_only=True)
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert summary["density"] == pytest.approx(0.5, abs=1e-3)
    changed = 0
    for k, v in state.items():
        if k.endswith("_mask"):
            name = k[:-5]
            assert torch.equal(ckpt["masks"][name], v.bool())
            assert torch.all(ckpt["state_dict"][name][~v.bool()] == 0), name
            changed += int((ckpt["state_dict"][name] != state[name + "_orig"] * v).sum())
    assert changed > 0  # the kept weights did train


# ==================================================================================== run scripts
@pytest.mark.parametrize("script,arch,depth,extra", [
    ("run_vgg19.sh", "vgg19_bn", 19, []),
    ("run_preresnet110.sh", "preresnet_wl", 110, []),
    ("run_densenet40.sh", "densenet_wl", 40, []),
    ("run_densenet100.sh", "densenet_wl", 100, ["--compression-rate", "2"]),
    ("run_densenet100.sh --bc", "densenet_bc", 100, []),
])
def test_run_scripts_dry_run(script, arch, depth, extra, tmp_path):
    name, *flags = script.split()
    proc = subprocess.run(["bash", str(WL / name), *flags, "--dataset", "cifar100", "--percent", "0.5", "--save",
                           str(tmp_path), "--dry-run", "--", "--device", "cuda"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    cmds = [line.split() for line in proc.stdout.splitlines() if not line.startswith("==")]
    assert [Path(c[1]).name for c in cmds] == ["train.py", "prune.py", "finetune.py", "scratch.py", "scratch.py"]
    train, prune, ft, se, sb = cmds

    def flag(cmd, f):
        return cmd[cmd.index(f) + 1]

    assert (flag(train, "--arch"), flag(train, "--depth")) == (arch, str(depth))
    assert all(e in " ".join(train) for e in extra) and (not extra or "--compression-rate" not in " ".join(prune))
    assert flag(prune, "--percent") == "0.5"
    assert flag(prune, "--model") == f"{tmp_path}/seed1/baseline/checkpoint.pth.tar"
    assert (flag(train, "--epochs"), flag(train, "--lr")) == ("160", "0.1")
    assert (flag(ft, "--epochs"), flag(ft, "--lr")) == ("40", "0.001")
    assert (flag(se, "--budget"), flag(se, "--epochs"), flag(sb, "--budget")) == ("E", "160", "B")
    for cmd in (train, ft, se, sb):
        assert flag(cmd, "--dataset") == "cifar100" and cmd[-2:] == ["--device", "cuda"]
    assert flag(ft, "--refine") == f"{tmp_path}/seed1/p0.5/pruned/pruned.pth.tar" == flag(sb, "--scratch")
    assert "--device" not in prune


def test_run_script_seeds_and_ratios_share_one_baseline_per_seed(tmp_path):
    proc = subprocess.run(["bash", str(WL / "run_preresnet110.sh"), "--seeds", "1 2", "--percent", "0.3 0.8",
                           "--save", str(tmp_path), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cmds = [line.split() for line in proc.stdout.splitlines() if not line.startswith("==")]
    scripts = [Path(c[1]).name for c in cmds]
    assert scripts.count("train.py") == 2 and scripts.count("prune.py") == 4 and scripts.count("scratch.py") == 8
    for c in cmds:
        save = c[c.index("--save") + 1]
        if "--seed" in c:
            assert f"/seed{c[c.index('--seed') + 1]}/" in save + "/"
        if Path(c[1]).name != "train.py":
            p = c[c.index("--percent") + 1] if "--percent" in c else None
            assert p is None or save.endswith(f"/p{p}/pruned")


@pytest.mark.parametrize("argv,named", [(["--percent", "1"], "--percent"), (["--percent", "0"], "--percent"),
                                        (["--dataset", "imagenet"], "--dataset"), (["--frobnicate"], "--frobnicate")])
def test_run_script_bad_arguments(argv, named):
    proc = subprocess.run(["bash", str(WL / "run_vgg19.sh"), *argv, "--dry-run"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and named in proc.stderr and "run_vgg19.sh: error" in proc.stderr


# ====================================================================================== bad input
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("wl_bad")
    torch.manual_seed(7)
    vgg = create_model("vgg11_bn", 11, cfg=TINY_VGG)
    save_checkpoint({**spec_fields(vgg, "cifar10"), "state_dict": vgg.state_dict()}, str(root / "vgg11.pth.tar"))
    l1 = create_model("resnet", 20)
    save_checkpoint({**spec_fields(l1, "cifar10"), "state_dict": l1.state_dict()}, str(root / "l1_resnet.pth.tar"))
    masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in
             [(n + ".weight", m) for n, m in vgg.named_modules() if isinstance(m, nn.Conv2d)]}
    wrong_shape = dict(masks)
    wrong_shape["features.0.weight"] = torch.ones(3, 3, dtype=torch.bool)
    unknown = {**masks, "features.99.weight": torch.ones(2, dtype=torch.bool)}
    for name, m in (("wrong_shape", wrong_shape), ("unknown_name", unknown)):
        save_checkpoint({**spec_fields(vgg, "cifar10"), "state_dict": vgg.state_dict(), "masks": m},
                        str(root / f"masks_{name}.pth.tar"))
    save_checkpoint({**spec_fields(vgg, "cifar10"), "state_dict": vgg.state_dict(), "masks": [1, 2]},
                    str(root / "masks_not_a_dict.pth.tar"))
    return root


def bad_cases(root):
    prune = [WL / "prune.py", "--data", root / "nodata"]
    train = ["--data", root / "nodata", "--epochs", "1", "--no-progress"]
    s = lambda n: root / "out" / n  # noqa: E731
    return {
        "percent_zero": (prune + ["--model", root / "vgg11.pth.tar", "--percent", "0", "--save", s("p0")],
                         "--percent", s("p0")),
        "percent_one": (prune + ["--model", root / "vgg11.pth.tar", "--percent", "1", "--save", s("p1")],
                        "--percent", s("p1")),
        "percent_negative": (prune + ["--model", root / "vgg11.pth.tar", "--percent=-0.3", "--save", s("pn")],
                             "--percent", s("pn")),
        "prune_other_method_arch": (prune + ["--model", root / "l1_resnet.pth.tar", "--percent", "0.3", "--save",
                                             s("l1")], "l1_resnet.pth.tar", s("l1")),
        "prune_arch_mismatch": (prune + ["--model", root / "vgg11.pth.tar", "--arch", "vgg19_bn", "--depth", "19",
                                         "--percent", "0.3", "--save", s("mis")], "vgg11.pth.tar", s("mis")),
        "prune_masks_wrong_shape": (prune + ["--model", root / "masks_wrong_shape.pth.tar", "--percent", "0.3",
                                             "--save", s("mws")], "masks_wrong_shape.pth.tar", s("mws")),
        "finetune_masks_unknown_name": ([WL / "finetune.py", "--refine", root / "masks_unknown_name.pth.tar"] + train
                                        + ["--save", s("fmu")], "masks_unknown_name.pth.tar", s("fmu")),
        "scratch_masks_wrong_shape": ([WL / "scratch.py", "--scratch", root / "masks_wrong_shape.pth.tar",
                                       "--budget", "B"] + train + ["--save", s("smw")], "masks_wrong_shape.pth.tar",
                                      s("smw")),
        "masks_not_a_dict": ([WL / "finetune.py", "--refine", root / "masks_not_a_dict.pth.tar"] + train
                             + ["--save", s("mnd")], "masks_not_a_dict.pth.tar", s("mnd")),
        "compression_rate_not_densenet": ([WL / "train.py", "--arch", "vgg11_bn", "--depth", "11",
                                           "--compression-rate", "2"] + train + ["--save", s("cr")],
                                          "--compression-rate", s("cr")),
        "export_without_out": ([WL / "export_torch_prune.py", "--model", root / "vgg11.pth.tar"], "--out",
                               s("nothing")),
    }


@pytest.fixture(scope="module")
def bad_results(bad_files):
    def go(argv):
        return subprocess.run([PYTHON] + [str(a) for a in argv], cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=300)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(go, argv) for name, (argv, _, _) in bad_cases(bad_files).items()}
        return {name: f.result() for name, f in futures.items()}


BAD = ["percent_zero", "percent_one", "percent_negative", "prune_other_method_arch", "prune_arch_mismatch",
       "prune_masks_wrong_shape", "finetune_masks_unknown_name", "scratch_masks_wrong_shape", "masks_not_a_dict",
       "compression_rate_not_densenet", "export_without_out"]


def test_bad_case_table_is_complete(bad_files):
    assert sorted(bad_cases(bad_files)) == sorted(BAD)


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_one_line_and_writes_nothing(name, bad_files, bad_results):
    _, named, save = bad_cases(bad_files)[name]
    proc = bad_results[name]
    assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0] and named in lines[0], proc.stderr
    assert not os.path.exists(save) or os.listdir(save) == []
    if name.startswith("prune_") and "masks" in name:
        assert "does not fit" in lines[0]
