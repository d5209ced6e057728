"""Network Slimming (cifar/network-slimming): reference-exact pruning, the sparsity hook, the zero-channel
layer, masked vs physical equivalence, scratch-B budgets, and bad input.

Checkpoints are written in the reference's own layout (its module names, {epoch, state_dict, best_prec1,
optimizer}, with/without BN num_batches_tracked, with/without a DataParallel ``module.`` prefix); the
expected result comes from an independent numpy implementation of the rule of vggprune.py / resprune.py /
denseprune.py (reference.md 4.2). No dataset is reachable in the prune runs, so accuracies are None.
"""
import json
import os
import subprocess
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import PYTHON, ROOT, write_cifar

pytestmark = pytest.mark.usefixtures("one_thread")

NS = ROOT / "cifar" / "network-slimming"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BN_KEYS = ("weight", "bias", "running_mean", "running_var")

# ------------------------------------------------------------------------------ facts (reference.md)
VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
BN_TOTAL = {"vgg_slim": 5504, "preresnet": 12112, "densenet": 9360}             # 4.2 step 1
THRESHOLD_INDEX = {("vgg_slim", 0.7): 3852, ("preresnet", 0.4): 4844, ("densenet", 0.4): 3744}  # 4.2
GOLDEN_FLOPS_C10 = {"vgg_slim": 797_304_842, "preresnet": 504_759_306, "densenet": 573_052_330}  # 2.13
GOLDEN_PARAMS_C10 = {"vgg_slim": 20_035_018, "preresnet": 1_711_338, "densenet": 1_068_658}
DEPTH = {"vgg_slim": 19, "preresnet": 164, "densenet": 40}


def run_script(argv, timeout=600, cwd=ROOT):
    return subprocess.run([PYTHON] + [str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------- reference-layout checkpoints
class Gen:
    def __init__(self, seed, ties=False):
        self.g = torch.Generator().manual_seed(seed)
        self.ties = ties

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def rand(self, *shape):
        return torch.rand(*shape, generator=self.g)

    def gamma(self, n):
        """Like a sparsity-trained BN: about half the scales near zero, both signs. With ``ties`` the values
        are quantised, so many are exactly 0 or equal to the threshold (the rule removes ties: strict >)."""
        small = self.rand(n) < 0.5
        mag = torch.where(small, self.rand(n) * 1e-3, 0.05 + self.rand(n) * 0.95)
        if self.ties:
            mag = torch.round(mag * 40) / 40
        return mag * torch.where(self.rand(n) < 0.8, 1.0, -1.0)

    def bn(self, sd, prefix, n, nbt):
        sd[prefix + ".weight"] = self.gamma(n)
        sd[prefix + ".bias"] = self.randn(n, scale=0.1)
        sd[prefix + ".running_mean"] = self.randn(n, scale=0.1)
        sd[prefix + ".running_var"] = self.rand(n) + 0.5
        if nbt:
            sd[prefix + ".num_batches_tracked"] = torch.tensor(int(torch.randint(1, 10**6, (1,), generator=self.g)))

    def conv(self, sd, key, cout, cin, k):
        sd[key] = self.randn(cout, cin, k, k, scale=(2.0 / (k * k * cout)) ** 0.5)


def ref_vgg_state(classes, gen, nbt):
    """network-slimming models/vgg.py: feature.N (conv, BN, ReLU / MaxPool), classifier = one Linear."""
    sd, i, cin = OrderedDict(), 0, 3
    for v in VGG19_CFG:
        if v == "M":
            i += 1
            continue
        gen.conv(sd, f"feature.{i}.weight", v, cin, 3)
        gen.bn(sd, f"feature.{i + 1}", v, nbt)
        i += 3
        cin = v
    sd["classifier.weight"] = gen.randn(classes, cin, scale=0.01)
    sd["classifier.bias"] = gen.randn(classes, scale=0.01)
    return sd


def ref_preresnet_state(classes, gen, nbt, depth=164):
    """network-slimming models/preresnet.py: conv1; layerS.I.{bn1, select, conv1, bn2, conv2, bn3, conv3,
    downsample.0}; bn; select; fc (a channel_selection's ``indexes`` is all ones after training)."""
    n = (depth - 2) // 9
    sd = OrderedDict()
    gen.conv(sd, "conv1.weight", 16, 3, 3)
    inplanes = 16
    for s, planes in enumerate((16, 32, 64)):
        for i in range(n):
            b = f"layer{s + 1}.{i}"
            gen.bn(sd, f"{b}.bn1", inplanes, nbt)
            sd[f"{b}.select.indexes"] = torch.ones(inplanes)
            gen.conv(sd, f"{b}.conv1.weight", planes, inplanes, 1)
            gen.bn(sd, f"{b}.bn2", planes, nbt)
            gen.conv(sd, f"{b}.conv2.weight", planes, planes, 3)
            gen.bn(sd, f"{b}.bn3", planes, nbt)
            gen.conv(sd, f"{b}.conv3.weight", planes * 4, planes, 1)
            if i == 0:
                gen.conv(sd, f"{b}.downsample.0.weight", planes * 4, inplanes, 1)
            inplanes = planes * 4
    gen.bn(sd, "bn", inplanes, nbt)
    sd["select.indexes"] = torch.ones(inplanes)
    sd["fc.weight"] = gen.randn(classes, inplanes, scale=0.1)
    sd["fc.bias"] = gen.randn(classes, scale=0.1)
    return sd


def ref_densenet_state(classes, gen, nbt, depth=40, growth=12):
    """network-slimming models/densenet.py: conv1; denseB.I.{bn1, select, conv1}; transB.{bn1, select, conv1};
    bn; select; fc."""
    n = (depth - 4) // 3
    sd = OrderedDict()
    inplanes = 2 * growth
    gen.conv(sd, "conv1.weight", inplanes, 3, 3)
    for b in range(3):
        for i in range(n):
            u = f"dense{b + 1}.{i}"
            gen.bn(sd, f"{u}.bn1", inplanes, nbt)
            sd[f"{u}.select.indexes"] = torch.ones(inplanes)
            gen.conv(sd, f"{u}.conv1.weight", growth, inplanes, 3)
            inplanes += growth
        if b < 2:
            u = f"trans{b + 1}"
            gen.bn(sd, f"{u}.bn1", inplanes, nbt)
            sd[f"{u}.select.indexes"] = torch.ones(inplanes)
            gen.conv(sd, f"{u}.conv1.weight", inplanes, inplanes, 1)
    gen.bn(sd, "bn", inplanes, nbt)
    sd["select.indexes"] = torch.ones(inplanes)
    sd["fc.weight"] = gen.randn(classes, inplanes, scale=0.1)
    sd["fc.bias"] = gen.randn(classes, scale=0.1)
    return sd


REF_STATE = {"vgg_slim": ref_vgg_state, "preresnet": ref_preresnet_state, "densenet": ref_densenet_state}


def ref_checkpoint(state, module_prefix, cfg=None):
    """The reference main.py's save_checkpoint dict: {epoch, state_dict, best_prec1, optimizer}; its
    main_finetune.py / main_E.py add the pruned cfg."""
    if module_prefix:
        state = OrderedDict(("module." + k, v) for k, v in state.items())
    optimizer = {"state": {}, "param_groups": [{"lr": 0.001, "momentum": 0.9, "dampening": 0,
                                                "weight_decay": 0.0001, "nesterov": False, "params": [0, 1]}]}
    extra = {"cfg": list(cfg)} if cfg is not None else {}
    return {"epoch": 160, "state_dict": state, "best_prec1": 0.9377, "optimizer": optimizer, **extra}


# ------------------------------------------------------------------ the reference rule, in numpy
def _bn_prefixes(sd):
    return [k[: -len(".running_mean")] for k in sd if k.endswith(".running_mean")]  # module order


def ref_masks(sd, percent):
    """Steps 1-3 of 4.2: |gamma| of every BN, sorted ascending, thre = y[int(total * percent)], keep > thre."""
    bns = _bn_prefixes(sd)
    pool = np.concatenate([np.abs(sd[p + ".weight"].numpy()) for p in bns])
    y = np.sort(pool)
    index = int(pool.size * percent)
    thre = y[index]
    masks = OrderedDict((p, np.abs(sd[p + ".weight"].numpy()) > thre) for p in bns)
    for p, m in masks.items():
        assert m.any(), f"oracle case invalid: {p} would be empty (the reference crashes)"
    return masks, float(thre), pool.size, index


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _idx(mask):
    return np.flatnonzero(mask)


def expected_vgg(sd, masks):
    """vggprune.py: conv in = previous BN's mask, out = own BN's mask; BN sliced; Linear columns."""
    out = OrderedDict(sd)
    prev = np.arange(3)
    for p, m in masks.items():  # feature.{i+1} is the BN of conv feature.{i}
        i = int(p.split(".")[1]) - 1
        conv = f"feature.{i}.weight"
        out[conv] = _t(sd[conv].numpy()[_idx(m)][:, prev])
        for name in BN_KEYS:
            out[f"{p}.{name}"] = _t(sd[f"{p}.{name}"].numpy()[_idx(m)])
        prev = _idx(m)
    out["classifier.weight"] = _t(sd["classifier.weight"].numpy()[:, prev])
    cfg, it = [], iter(int(m.sum()) for m in masks.values())
    for v in VGG19_CFG:
        cfg.append(v if v == "M" else next(it))
    return out, cfg


def expected_preresnet(sd, masks):
    """resprune.py: bn1 and the final bn whole with select.indexes = mask; conv1 [bn2][:, bn1];
    bn2 sliced; conv2 [bn3][:, bn2]; bn3 sliced; conv3 [:, bn3]; downsample, stem copied; fc columns."""
    out = OrderedDict(sd)
    blocks = sorted({p.rsplit(".", 1)[0] for p in masks if p.startswith("layer")},
                    key=lambda b: (b.split(".")[0], int(b.split(".")[1])))
    for b in blocks:
        m1, m2, m3 = (_idx(masks[f"{b}.bn{j}"]) for j in (1, 2, 3))
        out[f"{b}.select.indexes"] = _t(masks[f"{b}.bn1"].astype(np.float32))
        _masked_whole(out, sd, f"{b}.bn1", masks[f"{b}.bn1"])
        out[f"{b}.conv1.weight"] = _t(sd[f"{b}.conv1.weight"].numpy()[m2][:, m1])
        out[f"{b}.conv2.weight"] = _t(sd[f"{b}.conv2.weight"].numpy()[m3][:, m2])
        out[f"{b}.conv3.weight"] = _t(sd[f"{b}.conv3.weight"].numpy()[:, m3])
        for name in BN_KEYS:
            out[f"{b}.bn2.{name}"] = _t(sd[f"{b}.bn2.{name}"].numpy()[m2])
            out[f"{b}.bn3.{name}"] = _t(sd[f"{b}.bn3.{name}"].numpy()[m3])
    out["select.indexes"] = _t(masks["bn"].astype(np.float32))
    _masked_whole(out, sd, "bn", masks["bn"])
    out["fc.weight"] = _t(sd["fc.weight"].numpy()[:, _idx(masks["bn"])])
    return out, [int(m.sum()) for m in masks.values()]


def _masked_whole(out, sd, bn, mask):
    """Step 4 of 4.2: a BN copied whole keeps gamma and beta only where its mask is 1 (zeros elsewhere); its
    running statistics are copied unmasked."""
    for name in ("weight", "bias"):
        out[f"{bn}.{name}"] = _t(sd[f"{bn}.{name}"].numpy() * mask)


def expected_densenet(sd, masks):
    """denseprune.py: every BN whole, its select.indexes = mask; each conv after it reads the mask's
    channels; stem copied; fc columns of the final mask."""
    out = OrderedDict(sd)
    for p, m in masks.items():
        unit = p.rsplit(".", 1)[0] if p != "bn" else ""
        sel = f"{unit}.select.indexes" if unit else "select.indexes"
        out[sel] = _t(m.astype(np.float32))
        _masked_whole(out, sd, p, m)
        consumer = f"{unit}.conv1.weight" if unit else "fc.weight"
        out[consumer] = _t(sd[consumer].numpy()[:, _idx(m)])
    return out, [int(m.sum()) for m in masks.values()]


EXPECTED = {"vgg_slim": expected_vgg, "preresnet": expected_preresnet, "densenet": expected_densenet}


# ------------------------------------------------- reference FLOPs (1.5), written out per network
def flops_vgg(cfg, classes=10, h=32):
    f, cin = 0, 3
    for v in cfg:
        if v == "M":
            f += 4 * cin * (h // 2) ** 2  # MaxPool2d(2): k*k*C*Hout*Wout
            h //= 2
        else:
            f += (2 * 9 * cin + 2 + 1) * v * h * h  # conv, BN, ReLU
            cin = v
    return f + 2 * cin * classes + classes


def flops_preresnet(cfg, classes=10, depth=164, h=32):
    n = (depth - 2) // 9
    f, inplanes, k = 2 * 27 * 16 * h * h, 16, 0
    for s, planes in enumerate((16, 32, 64)):
        for i in range(n):
            a, b, c = cfg[k:k + 3]
            k += 3
            ho = h // 2 if (s > 0 and i == 0) else h
            f += 2 * inplanes * h * h + a * h * h          # bn1, ReLU of the selected channels
            f += 2 * a * b * h * h + 3 * b * h * h          # conv1, bn2, ReLU
            f += 2 * 9 * b * c * ho * ho + 3 * c * ho * ho  # conv2, bn3, ReLU
            f += 2 * c * 4 * planes * ho * ho               # conv3
            if i == 0:
                f += 2 * inplanes * 4 * planes * ho * ho    # downsample
            h, inplanes = ho, 4 * planes
    w = cfg[-1]
    return f + 2 * inplanes * h * h + w * h * h + h * h * w + 2 * w * classes + classes  # bn, ReLU, AvgPool, fc


def flops_densenet(cfg, classes=10, depth=40, growth=12, h=32):
    n = (depth - 4) // 3
    f, inplanes, k = 2 * 27 * 2 * growth * h * h, 2 * growth, 0
    for blk in range(3):
        for _ in range(n):
            w = cfg[k]
            f += 2 * inplanes * h * h + w * h * h + 2 * 9 * w * growth * h * h
            inplanes, k = inplanes + growth, k + 1
        if blk < 2:  # transition: bn, ReLU, 1x1 conv; its avg_pool is functional (0)
            w = cfg[k]
            f += 2 * inplanes * h * h + w * h * h + 2 * w * inplanes * h * h
            k, h = k + 1, h // 2
    w = cfg[-1]
    return f + 2 * inplanes * h * h + w * h * h + h * h * w + 2 * w * classes + classes


FLOPS = {"vgg_slim": flops_vgg, "preresnet": flops_preresnet, "densenet": flops_densenet}


def test_written_out_flops_match_the_golden_values():
    """The per-network formulas above give reference.md 2.13 for the default networks."""
    from models import default_cfg
    for arch, golden in GOLDEN_FLOPS_C10.items():
        assert FLOPS[arch](default_cfg(arch, DEPTH[arch])) == golden, arch


def ref_params(state):
    """Parameters as the reference counts them: weights, biases and selection indexes."""
    return sum(v.numel() for k, v in state.items() if k.endswith((".weight", ".bias", ".indexes")))


# -------------------------------------------------------------------------------------- the runs
# name -> (arch, classes, percent, flavour, --arch spelling)
RUNS = {
    "vgg19-c10-70": ("vgg_slim", 10, 0.7, dict(nbt=True, module_prefix=False), "vgg"),
    "vgg19-c100-50-noNBT-module": ("vgg_slim", 100, 0.5, dict(nbt=False, module_prefix=True), "vgg"),
    "preresnet164-c10-40": ("preresnet", 10, 0.4, dict(nbt=True, module_prefix=False), "resnet"),
    "preresnet164-c10-60-ties-noNBT-module": ("preresnet", 10, 0.6, dict(nbt=False, module_prefix=True,
                                                                         ties=True), "preresnet"),
    "densenet40-c10-40": ("densenet", 10, 0.4, dict(nbt=True, module_prefix=False), "densenet"),
    "densenet40-c100-60-ties": ("densenet", 100, 0.6, dict(nbt=True, module_prefix=False, ties=True), "densenet"),
}


def prune_in_process(argv):
    """prune.py's main in this process (no interpreter start-up per run): (record, log lines, warnings)."""
    import warnings
    from conftest import stage
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = stage(KEY, "prune", argv, log=lines.append)
    messages = [str(w.message) for w in caught if "checksums differ" not in str(w.message)]
    return record, lines, messages


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each reference-layout checkpoint pruned by prune.py's main, accuracy measured on 16 fixture images."""
    data = {name: write_cifar(tmp_path_factory.mktemp(name), name, n_train=20, n_test=16, seed=5)
            for name in ("cifar10", "cifar100")}
    results = {}
    for i, (name, (arch, classes, percent, flavour, spelling)) in enumerate(RUNS.items()):
        work = tmp_path_factory.mktemp(name)
        state = REF_STATE[arch](classes, Gen(2000 + i, ties=flavour.get("ties", False)), flavour["nbt"])
        torch.save(ref_checkpoint(state, flavour["module_prefix"]), work / "model_best.pth.tar")
        dataset = "cifar10" if classes == 10 else "cifar100"
        argv = ["--model", work / "model_best.pth.tar", "--save", work / "pruned", "--dataset", dataset,
                "--data", data[dataset], "--test-subset", 16, "--percent", percent, "--arch", spelling,
                "--depth", DEPTH[arch]]
        results[name] = (work, state) + prune_in_process(argv)
    return results


@pytest.mark.parametrize("name", list(RUNS))
def test_prune_keeps_what_the_reference_keeps(runs, name):
    arch, classes, percent, flavour, _ = RUNS[name]
    work, original, _, log, warned = runs[name]
    assert not warned, warned  # sparse-looking gammas, no empty layer
    assert any("masked model" in line for line in log)

    masks, thre, total, index = ref_masks(original, percent)
    expected, cfg = EXPECTED[arch](original, masks)
    assert total == BN_TOTAL[arch]
    if (arch, percent) in THRESHOLD_INDEX:
        assert index == THRESHOLD_INDEX[(arch, percent)]
    removed = sum(int((~m).sum()) for m in masks.values())
    if flavour.get("ties"):
        assert removed > index + 1  # ties at the threshold all go
    else:
        assert removed == index + 1

    ckpt = torch.load(work / "pruned" / "pruned.pth.tar", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    assert ckpt["cfg"] == cfg and ckpt["arch"] == arch
    nbt_keys = {p + ".num_batches_tracked" for p in _bn_prefixes(original)}
    assert set(state) == set(expected) | nbt_keys
    for key, want in expected.items():
        assert state[key].shape == want.shape, key
        assert torch.equal(state[key], want.to(state[key].dtype)), key
    for key in nbt_keys:
        assert torch.equal(state[key], original.get(key, torch.tensor(0))), key

    # the pruned network rebuilds from its spec, loads strictly, and its selections are the masks
    from models import build_from_spec
    from models.layers import ChannelSelection
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(state)
    for mname, mod in model.named_modules():
        if isinstance(mod, ChannelSelection):
            bn = mname.rsplit(".", 1)[0] + ".bn1" if "." in mname else "bn"
            assert mod.selected() == _idx(masks[bn]).tolist(), mname
    # the kept positions recorded per cfg entry
    kept = {int(k): v for k, v in ckpt["kept"].items()}
    assert [len(kept[i]) for i in sorted(kept)] == [c for c in cfg if c != "M"]

    record = json.loads((work / "pruned" / "prune.json").read_text())
    for key in ("cfg", "cfg_base", "params_base", "params_pruned", "flops_base", "flops_pruned", "macs_base",
                "macs_pruned", "flops_ratio", "acc_before", "acc_after", "acc_masked", "percent", "threshold",
                "bn_channels", "bn_channels_pruned"):
        assert key in record, key
    assert record["cfg"] == cfg
    assert record["threshold"] == thre and record["bn_channels"] == total
    assert record["bn_channels_pruned"] == removed and record["threshold_index"] == index
    assert record["flops_pruned"] == FLOPS[arch](cfg, classes)
    assert record["flops_base"] == FLOPS[arch](model_default_cfg(arch), classes)
    assert record["params_pruned"] == ref_params(expected)
    assert record["params_base"] == ref_params(original)
    if classes == 10:
        assert record["flops_base"] == GOLDEN_FLOPS_C10[arch]
        assert record["params_base"] == GOLDEN_PARAMS_C10[arch]
    # measured on the fixture's 16 images; the masked network computes the pruned one's function
    assert all(isinstance(record[k], float) for k in ("acc_before", "acc_after", "acc_masked"))
    assert record["acc_masked"] == record["acc_after"]


def model_default_cfg(arch):
    from models import default_cfg
    return default_cfg(arch, DEPTH[arch])


@pytest.mark.parametrize("name", ["vgg19-c10-70", "preresnet164-c10-40", "densenet40-c10-40"])
def test_scratch_b_epochs_from_the_flops_ratio(runs, name, tmp_path):
    """scratch-B runs int(160 x FLOPs(full) / FLOPs(pruned)) epochs, FLOPs(full) = reference.md 2.13, for our
    pruned checkpoint and for the reference's (cfg + state_dict, selections only in the indexes)."""
    from utils.stages import scratch_budget
    from utils.checkpoint import load_checkpoint, model_from_checkpoint
    from utils.data import dataset_info
    arch = RUNS[name][0]
    work = runs[name][0]
    info = dataset_info("cifar10")
    ours = load_checkpoint(str(work / "pruned" / "pruned.pth.tar"), "--scratch")
    cfg = ours["cfg"]
    want = int(160 * GOLDEN_FLOPS_C10[arch] / FLOPS[arch](cfg))
    assert want > 160
    model = model_from_checkpoint(ours, "p", "--scratch", dataset_info=info, load_weights=False)
    epochs, record = scratch_budget(ours, model, info, 160)
    assert epochs == want and record["flops_base"] == GOLDEN_FLOPS_C10[arch]

    # the reference's resprune/denseprune/vggprune output: {cfg, state_dict}
    path = tmp_path / "ref_pruned.pth.tar"
    torch.save({"cfg": cfg, "state_dict": {k: v for k, v in ours["state_dict"].items()
                                           if not k.endswith("num_batches_tracked")}}, path)
    ref = load_checkpoint(str(path), "--scratch")
    torch.manual_seed(0)
    fresh = model_from_checkpoint(ref, str(path), "--scratch", arch, DEPTH[arch], info, load_weights=False)
    epochs, record = scratch_budget(ref, fresh, info, 160)
    assert epochs == want and record["flops_base"] == GOLDEN_FLOPS_C10[arch]
    # the selections are part of the architecture: a fresh build from the spec has them, weights are new
    from models import build_from_spec
    from models.layers import ChannelSelection
    rebuilt = build_from_spec(fresh.spec)
    for key, value in ours["state_dict"].items():
        if key.endswith(".indexes"):
            assert torch.equal(rebuilt.state_dict()[key], value), key
    if arch != "vgg_slim":
        assert any(not torch.all(v == 1) for k, v in ours["state_dict"].items() if k.endswith(".indexes"))
        assert "selected" in fresh.spec.options
    conv = next(k for k, v in ours["state_dict"].items() if v.dim() == 4 and k != "conv1.weight")
    assert not torch.equal(rebuilt.state_dict()[conv], ours["state_dict"][conv])
    assert sum(isinstance(m, ChannelSelection) for m in rebuilt.modules()) == \
        sum(k.endswith(".indexes") for k in ours["state_dict"])


# ----------------------------------------------------------------------------- in-process pieces
KEY = "cifar/network-slimming"


def method():
    from utils.methods import get_method
    return get_method(KEY)


def train_stage(**hparams):
    """train.py's stage context with these sparsity options."""
    from utils.methods import StageContext
    return StageContext("train", method().TrainHparams(**hparams), None, None, None)


def ctx(**hparams):
    from utils.methods import PruneContext, hparams_of
    return PruneContext(hparams_of(method().Hparams, **hparams))


def randomised(arch, depth, seed, zero_some=True, **kw):
    from models import create_model
    torch.manual_seed(seed)
    model = create_model(arch, depth, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                mag = torch.where(torch.rand(n, generator=g) < 0.5, torch.rand(n, generator=g) * 1e-3,
                                  0.2 + torch.rand(n, generator=g))
                m.weight.copy_(mag * torch.sign(torch.randn(n, generator=g)))
                if zero_some:
                    m.weight[0] = 0.0  # sign(0) = 0
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
    return model


SMALL = [("vgg_slim", 11), ("preresnet", 20), ("densenet", 40)]


@pytest.mark.parametrize("arch,depth", SMALL)
def test_sparsity_hook_adds_s_sign_gamma_to_gamma_grads_only(arch, depth):
    model = randomised(arch, depth, seed=5).train()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    s = 3e-4
    hooks = method().train_hooks(train_stage(sparsity_regularization=True, s=s))
    assert len(hooks) == 1
    hooks[0].on_train_start(SimpleNamespace(module=model, log=lambda *a: None))
    hooks[0].after_backward(SimpleNamespace(module=model))
    gammas = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    zero_seen = False
    for n, p in model.named_parameters():
        if n in gammas:
            sign = torch.sign(p.detach())
            zero_seen |= bool((sign == 0).any())
            assert torch.equal(p.grad, before[n] + s * sign), n
            assert not torch.equal(p.grad, before[n]), n
        else:
            assert torch.equal(p.grad, before[n]), n  # beta, convs, linear untouched
    assert zero_seen
    assert not method().train_hooks(train_stage(sparsity_regularization=False, s=s))
    # the run's name in its records: a penalized trunk is not a plain baseline (utils.results.check_convergence)
    assert method().stage_name(train_stage(sparsity_regularization=True, s=s)) == "sparsity"
    assert method().stage_name(train_stage(sparsity_regularization=False, s=s)) == "baseline"


def test_sparsity_hook_runs_between_backward_and_step():
    """Through the engine: with plain SGD (no momentum, no wd) the hook changes each gamma by exactly
    -lr * s * sign(gamma) relative to a run without it, and nothing else."""
    from utils.engine import TrainConfig, Trainer

    class Loader:
        def __init__(self, batches):
            self.batches = batches

        def set_epoch(self, epoch):
            pass

        def __iter__(self):
            return iter(self.batches)

        def __len__(self):
            return len(self.batches)

    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(1)]
    results = []
    lr, s = 0.05, 1e-2
    for hooks in ([], method().train_hooks(train_stage(sparsity_regularization=True, s=s))):
        model = randomised("vgg_slim", 11, seed=9)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = Trainer(model, Loader(batches), Loader(batches),
                          TrainConfig(epochs=1, lr=lr, momentum=0.0, weight_decay=0.0, progress=False,
                                      tensorboard=False), save_dir="/nonexistent", hooks=hooks, log=lambda *a: None)
        for h in hooks:
            h.on_train_start(trainer)
        trainer.train_epoch(0)
        results.append(model.state_dict())
    plain, sparse = results
    for key in plain:
        if key.startswith("feature.") and key.endswith(".weight") and plain[key].dim() == 1:
            step = sparse[key] - plain[key]
            assert torch.allclose(step, -lr * s * torch.sign(start[key]), atol=1e-7), key
        else:
            assert torch.equal(plain[key], sparse[key]), key


@pytest.mark.parametrize("arch,depth", SMALL)
def test_masked_and_physically_pruned_networks_agree(arch, depth):
    """Zeroing the pruned channels' gamma and beta (the reference's masked model) and removing them give the
    same outputs; selection layers pass on exactly the surviving BN channels."""
    from utils.surgery import prune_channels
    model = randomised(arch, depth, seed=11).eval()
    m = method()
    keep = m.select(model, ctx(percent=0.45))
    pruned = prune_channels(model, keep).eval()
    masked = m.masked_model(model, keep, None).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_p, out_m, out_full = pruned(x), masked(x), model(x)
    assert torch.allclose(out_p, out_m, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out_p, out_full, rtol=1e-3, atol=1e-3)
    thre = m.describe(model, keep, ctx(percent=0.45))["threshold"]
    for name, mod in model.named_modules():
        if hasattr(mod, "set_selected"):
            bn = model.get_submodule(name.rsplit(".", 1)[0] + ".bn1" if "." in name else "bn")
            assert pruned.get_submodule(name).selected() == \
                torch.nonzero(bn.weight.detach().abs() > thre).flatten().tolist()
            assert pruned.get_submodule(name.rsplit(".", 1)[0] + ".bn1" if "." in name else "bn").num_features \
                == bn.num_features  # the BN before a selection layer stays whole
    # masked: exactly the BN channels at or below the threshold have gamma = beta = 0
    for name, mod in masked.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            orig = model.get_submodule(name)
            dead = orig.weight.detach().abs() <= thre
            assert torch.all(mod.weight[dead] == 0) and torch.all(mod.bias[dead] == 0), name
            assert torch.equal(mod.weight[~dead], orig.weight[~dead]), name


def test_zero_channel_layer_keeps_its_strongest_channel_or_fails_with_strict():
    from utils.errors import UserError
    from utils.surgery import prune_channels
    model = randomised("preresnet", 20, seed=4, zero_some=False)
    with torch.no_grad():  # every gamma of one bn2 and one select-BN far below all others
        model.layer2[1].bn2.weight.copy_(torch.linspace(1e-6, 5e-6, model.layer2[1].bn2.num_features))
        model.layer1[0].bn1.weight.copy_(torch.tensor([1e-7, -3e-6, 2e-6] + [1e-7] * 13))
    m = method()
    with pytest.warns(UserWarning, match="keeps no channel") as caught:
        keep = m.select(model, ctx(percent=0.5))
    assert len(caught) == 2
    assert all("strongest" in str(w.message) and "\n" not in str(w.message) for w in caught)
    groups = {g.name: g.cfg_index for g in model.channel_groups()}
    assert keep[groups["layer2.1.conv1"]] == [model.layer2[1].bn2.num_features - 1]  # largest |gamma|
    assert keep[groups["layer1.0.select"]] == [1]  # |-3e-6| is the strongest
    pruned = prune_channels(model, keep)
    assert pruned.layer2[1].conv1.out_channels == 1 and pruned.layer1[0].select.selected() == [1]
    assert m.describe(model, keep, ctx(percent=0.5))["layers_kept_strongest_only"] == ["layer1.0.bn1", "layer2.1.bn2"]
    with pytest.raises(UserError, match="keeps no channel"):
        m.select(model, ctx(percent=0.5, strict=True))


def test_threshold_rule_on_a_hand_made_example():
    """10 channels in two BNs; percent 0.3 -> index 3 of the sorted |gamma|; ties with the threshold go."""
    from models import create_model
    model = create_model("vgg_slim", 11, cfg=[5, "M", 5, "M", 1, 1, "M", 1, 1, "M", 1, 1])
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        bns[0].weight.copy_(torch.tensor([0.5, -0.1, 0.3, 0.3, 0.9]))
        bns[1].weight.copy_(torch.tensor([0.05, 0.3, -0.7, 0.2, 0.4]))
        for b in bns[2:]:
            b.weight.fill_(1.0)
    # |gamma| sorted: 0.05 0.1 0.2 0.3 0.3 0.3 0.4 0.5 0.7 0.9 1 1 1 1 1 1 (16); int(16*0.3) = 4 -> 0.3
    keep = method().select(model, ctx(percent=0.3))
    assert keep[0] == [0, 4] and keep[2] == [2, 4]
    assert all(keep[i] == [0] for i in (4, 5, 7, 8, 10, 11))


# -------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    from models import create_model, default_cfg, scale_cfg
    from utils.checkpoint import save_checkpoint, spec_fields
    root = tmp_path_factory.mktemp("slim_bad")
    data = write_cifar(root / "data", n_train=128, n_test=64, seed=3)
    small = scale_cfg(default_cfg("vgg_slim", 11), 0.125)

    def ours(model, name, args=None):
        extra = {"args": args} if args is not None else {}
        save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 1,
                         "best_prec1": 0.1, "stage": "baseline", **extra}, root / name)

    torch.manual_seed(0)
    sparse = randomised("vgg_slim", 11, seed=1, cfg=small)
    ours(sparse, "vgg_sr.pth.tar", {"sparsity_regularization": True, "s": 1e-4})
    ours(sparse, "vgg_no_sr.pth.tar", {"sparsity_regularization": False, "s": 1e-4})
    ours(create_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.125)), "l1_vgg.pth.tar", {})
    ours(randomised("preresnet", 20, seed=2), "preresnet20.pth.tar", {"sparsity_regularization": True, "s": 1e-5})
    # the reference's layout: gammas as after plain training (spread, none near zero) vs sparse-looking ones
    fresh = create_model("vgg_slim", 11, cfg=small)
    with torch.no_grad():
        for m in fresh.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.2 + 0.6 * torch.rand(m.num_features, generator=torch.Generator().manual_seed(1)))
    torch.save(ref_checkpoint(OrderedDict(fresh.state_dict()), False, small), root / "ref_untrained.pth.tar")
    torch.save(ref_checkpoint(OrderedDict(sparse.state_dict()), True, small), root / "ref_sparse.pth.tar")
    # a reference PreResNet-20 checkpoint passed as a VGG
    torch.save(ref_checkpoint(ref_preresnet_state(10, Gen(7), True, depth=20), False), root / "ref_pre20.pth.tar")
    # one layer whose every |gamma| is below the threshold
    empty = randomised("vgg_slim", 11, seed=1, cfg=small)
    with torch.no_grad():
        empty.feature[5].weight.fill_(1e-6)  # the BN of the second conv
    ours(empty, "vgg_empty_layer.pth.tar", {"sparsity_regularization": True, "s": 1e-4})
    return root, data


def bad_cases(root, data):
    """Through the scripts: name -> (argv, exit 0?, text the one warning/error line holds, folder left empty)."""
    prune = [NS / "prune.py", "--dataset", "cifar10", "--data", data, "--test-subset", "16"]
    out = lambda name: root / "out" / name  # noqa: E731
    return {
        "percent_1.5": (prune + ["--model", root / "vgg_sr.pth.tar", "--percent", "1.5", "--save", out("p15")],
                        False, "--percent", out("p15")),
        "l1_vgg_checkpoint": (prune + ["--model", root / "l1_vgg.pth.tar", "--percent", "0.5",
                                       "--save", out("l1")], False, "l1_vgg.pth.tar", out("l1")),
        "strict_empty_layer": (prune + ["--model", root / "vgg_empty_layer.pth.tar", "--percent", "0.5",
                                        "--strict", "--save", out("strict")], False, "feature.5", out("strict")),
        "untrained_reference": (prune + ["--model", root / "ref_untrained.pth.tar", "--arch", "vgg",
                                         "--depth", "11", "--save", out("w2")], True, "gammas look untrained", None),
        "empty_layer": (prune + ["--model", root / "vgg_empty_layer.pth.tar", "--percent", "0.5",
                                 "--save", out("w3")], True, "feature.5 keeps no channel", None),
    }


@pytest.fixture(scope="module")
def bad_results(bad):
    root, data = bad
    jobs = {name: case[0] for name, case in bad_cases(root, data).items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_script, argv) for name, argv in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", ["percent_1.5", "l1_vgg_checkpoint", "strict_empty_layer", "untrained_reference",
                                  "empty_layer"])
def test_bad_input_and_warnings_are_one_line(bad, bad_results, name):
    root, data = bad
    argv, ok, text, save = bad_cases(root, data)[name]
    proc = bad_results[name]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "checksums differ" not in line]
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert len(lines) == 1 and ": warning: " in lines[0] and text in lines[0], proc.stderr
    else:
        assert proc.returncode == 2, (proc.returncode, proc.stderr)
        assert len(lines) == 1 and ": error: " in lines[0] and text in lines[0], proc.stderr
        assert not Path(save).exists() or not os.listdir(save), os.listdir(save)


@pytest.mark.parametrize("argv,text", [
    (["--model", "vgg_sr.pth.tar", "--percent", "0"], "--percent"),
    (["--model", "vgg_sr.pth.tar", "--percent", "1"], "--percent"),
    (["--model", "vgg_sr.pth.tar", "--percent", "-0.2"], "--percent"),
    (["--model", "preresnet20.pth.tar", "--arch", "densenet"], "preresnet20.pth.tar"),
    (["--model", "preresnet20.pth.tar", "--arch", "resnet", "--depth", "164"], "preresnet20.pth.tar"),
    (["--model", "ref_pre20.pth.tar", "--arch", "vgg", "--depth", "11"], "ref_pre20.pth.tar"),
    (["--model", "ref_pre20.pth.tar", "--arch", "densenet", "--depth", "40"], "ref_pre20.pth.tar"),
    (["--model", "vgg_empty_layer.pth.tar", "--strict"], "--strict"),
])
def test_bad_prune_input_is_a_user_error_and_writes_nothing(bad, tmp_path, argv, text):
    from utils.errors import UserError
    root, data = bad
    argv = [root / a if str(a).endswith(".pth.tar") else a for a in argv]
    with pytest.raises(UserError, match=text.replace(".", r"\.")):
        prune_in_process(argv + ["--dataset", "cifar10", "--data", data, "--save", tmp_path / "out"])
    assert not (tmp_path / "out").exists()


def test_negative_sparsity_rate_is_a_user_error(bad, tmp_path):
    from conftest import stage
    from utils.errors import UserError
    _, data = bad
    with pytest.raises(UserError, match="--s -0.0001"):
        stage(KEY, "train", ["-sr", "--s", "-0.0001", "--dataset", "cifar10", "--data", data, "--arch", "vgg",
                             "--depth", "11", "--width", "0.125", "--epochs", "1", "--save", str(tmp_path / "neg")])
    assert not (tmp_path / "neg").exists()


@pytest.mark.parametrize("model,args,warned", [
    ("vgg_no_sr.pth.tar", [], True),
    ("vgg_sr.pth.tar", [], False),
    ("ref_untrained.pth.tar", ["--arch", "vgg", "--depth", "11"], True),
    ("ref_sparse.pth.tar", ["--arch", "vgg_slim", "--depth", "11"], False),
])
def test_untrained_gamma_warning(bad, tmp_path, model, args, warned):
    root, data = bad
    record, _, messages = prune_in_process(["--model", root / model, "--dataset", "cifar10", "--data", data,
                                            "--test-subset", "16", "--save", tmp_path / "p"] + args)
    if warned:
        assert len(messages) == 1 and "gammas look untrained" in messages[0], messages
    else:
        assert not messages, messages
    assert record["cfg"] != record["cfg_base"]


def test_empty_layer_run_keeps_one_channel_there(bad, bad_results):
    root, _ = bad
    assert bad_results["empty_layer"].returncode == 0
    ckpt = torch.load(root / "out" / "w3" / "pruned.pth.tar", map_location="cpu", weights_only=True)
    assert ckpt["cfg"][2] == 1  # the second conv (cfg position 2) keeps one filter
    strongest = int(torch.argmax(torch.load(root / "vgg_empty_layer.pth.tar", weights_only=True)
                                 ["state_dict"]["feature.5.weight"].abs()))
    assert ckpt["kept"]["2"] == [strongest]
    record = json.loads((root / "out" / "w3" / "prune.json").read_text())
    assert record["layers_kept_strongest_only"] == ["feature.5"]


def test_sparsity_is_recorded_and_the_reference_arch_spelling_works(bad, tmp_path):
    """train.py -sr --s S --arch resnet trains the PreResNet, recording sparsity in checkpoint and summary."""
    _, data = bad
    save = tmp_path / "sr"
    proc = run_script([NS / "train.py", "-sr", "--s", "0.001", "--arch", "resnet", "--depth", "20",
                       "--dataset", "cifar10", "--data", data, "--train-subset", "64", "--test-subset", "32",
                       "--epochs", "1", "--no-progress", "--no-tensorboard", "--save", save])
    assert proc.returncode == 0, proc.stderr
    assert "sparsity regularisation: s = 0.001" in proc.stdout
    ckpt = torch.load(save / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    summary = json.loads((save / "summary.json").read_text())
    assert ckpt["arch"] == "preresnet" and ckpt["depth"] == 20
    for rec in (ckpt["args"], summary["args"]):
        assert rec["sparsity_regularization"] is True and rec["s"] == 0.001


@pytest.mark.parametrize("script,dataset,arch,depth,s,percents", [
    ("run_vgg19.sh", "cifar10", "vgg", "19", "0.0001", ["0.7"]),
    ("run_vgg19.sh", "cifar100", "vgg", "19", "0.0001", ["0.5"]),
    ("run_preresnet164.sh", "cifar10", "resnet", "164", "0.00001", ["0.4", "0.6"]),
    ("run_densenet40.sh", "cifar100", "densenet", "40", "0.00001", ["0.4", "0.6"]),
])
def test_run_scripts_follow_the_reference_commands(tmp_path, script, dataset, arch, depth, s, percents):
    proc = subprocess.run(["bash", NS / script, dataset, "--dry-run", "--save", tmp_path], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cmds = [line.split() for line in proc.stdout.splitlines() if not line.startswith("==")]
    train = [c for c in cmds if c[1].endswith("train.py")]
    assert len(train) == 2  # baseline and sparsity training, shared by every ratio
    for c in train:
        assert c[c.index("--arch") + 1] == arch and c[c.index("--depth") + 1] == depth
        assert c[c.index("--dataset") + 1] == dataset and c[c.index("--epochs") + 1] == "160"
    assert "-sr" not in train[0] and train[1][train[1].index("--s") + 1] == s
    prunes = [c for c in cmds if c[1].endswith("prune.py")]
    assert [c[c.index("--percent") + 1] for c in prunes] == percents
    assert all(c[c.index("--model") + 1] == f"{tmp_path}/seed1/sparse/checkpoint.pth.tar" for c in prunes)
    for c in cmds:
        if c[1].endswith("finetune.py"):
            assert (c[c.index("--epochs") + 1], c[c.index("--lr") + 1]) == ("40", "0.001")
        if c[1].endswith("scratch.py"):
            assert c[c.index("--epochs") + 1] == "160" and c[c.index("--budget") + 1] in ("E", "B")
    assert sum(c[1].endswith("scratch.py") for c in cmds) == 2 * len(percents)
    bad = subprocess.run(["bash", NS / script, "svhn", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "svhn" in bad.stderr
