"""cifar/l1-norm-pruning/prune.py keeps exactly the filters that the reference's vggprune.py, res56prune.py
and res110prune.py keep (reference.md 4.1).

Checkpoints are written in the reference's own layout ({epoch, state_dict, best_prec1, optimizer, cfg},
its module names, with/without BN num_batches_tracked, with/without a DataParallel ``module.`` prefix);
the expected result comes from an independent numpy implementation of the reference's rule. No dataset is
reachable in these runs, so the script only notes that it skipped the accuracy check.
"""
import json
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from conftest import L1, run

# --------------------------------------------------------------------------- facts (reference.md)
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG16_A = [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
REF_RESNET_CFG = {
    (56, "A"): [14, 14, 14, 14, 14, 14, 14, 16, 14, 32, 28, 28, 28, 28, 28, 28, 28, 28,
                64, 57, 57, 57, 57, 57, 57, 57, 64],
    (56, "B"): [6, 6, 6, 6, 6, 6, 6, 16, 16, 32, 22, 22, 22, 22, 22, 22, 32, 22,
                64, 57, 57, 57, 57, 57, 57, 57, 64],
    (110, "A"): [8] * 17 + [16] + [32] * 18 + [64] * 18,
    (110, "B"): [8] * 17 + [16] + [32] + [19] * 17 + [64] + [44] * 17,
}
# res56prune.py / res110prune.py: skipped layer ids, per-stage prune fraction, stage bounds of layer ids
REF_RESNET_RULE = {
    (56, "A"): ([16, 20, 38, 54], [0.1, 0.1, 0.1], (18, 36)),
    (56, "B"): ([16, 18, 20, 34, 38, 54], [0.6, 0.3, 0.1], (18, 36)),
    (110, "A"): ([36], [0.5, 0.0, 0.0], (36, 72)),
    (110, "B"): ([36, 38, 74], [0.5, 0.4, 0.3], (36, 72)),
}
# (params, FLOPs, MACs) base -> pruned (reference.md 2.13; MACs: Li et al. Table 1, exact)
GOLDEN = {
    ("vgg", 16, 10, "A"): ((14_987_722, 627_880_970, 313_463_808), (5_397_034, 413_364_234, 206_279_680)),
    ("vgg", 16, 100, "A"): ((15_033_892, 627_973_220, 313_509_888), (5_443_204, 413_456_484, 206_325_760)),
    ("resnet", 56, 10, "A"): ((853_018, 252_572_938, 125_485_696), (773_336, 226_390_090, 112_435_840)),
    ("resnet", 56, 10, "B"): ((853_018, 252_572_938, 125_485_696), (735_712, 183_137_866, 90_907_264)),
    ("resnet", 110, 10, "A"): ((1_727_962, 508_925_194, 252_887_680), (1_688_522, 428_291_338, 212_779_648)),
    ("resnet", 110, 10, "B"): ((1_727_962, 508_925_194, 252_887_680), (1_168_424, 312_745_738, 155_124_352)),
}
BN_KEYS = ("weight", "bias", "running_mean", "running_var")


# ------------------------------------------------------------------- reference-layout checkpoints
class _Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g) * scale

    def rand(self, *shape):
        return torch.rand(*shape, generator=self.g)

    def bn(self, sd, prefix, n, nbt):
        sd[prefix + ".weight"] = self.rand(n) + 0.5
        sd[prefix + ".bias"] = self.randn(n, scale=0.1)
        sd[prefix + ".running_mean"] = self.randn(n, scale=0.1)
        sd[prefix + ".running_var"] = self.rand(n) + 0.5
        if nbt:
            sd[prefix + ".num_batches_tracked"] = torch.tensor(int(torch.randint(1, 10**6, (1,), generator=self.g)))


def ref_vgg_state(classes, seed, nbt):
    """The reference's L1 VGG-16 (feature.N conv/BN/ReLU/pool, classifier.0/1/3)."""
    gen, sd, i, cin = _Gen(seed), OrderedDict(), 0, 3
    for v in VGG16_CFG:
        if v == "M":
            i += 1
            continue
        sd[f"feature.{i}.weight"] = gen.randn(v, cin, 3, 3, scale=(2.0 / (9 * v)) ** 0.5)
        gen.bn(sd, f"feature.{i + 1}", v, nbt)
        i += 3
        cin = v
    sd["classifier.0.weight"] = gen.randn(512, cin, scale=0.01)
    sd["classifier.0.bias"] = gen.randn(512, scale=0.01)
    gen.bn(sd, "classifier.1", 512, nbt)
    sd["classifier.3.weight"] = gen.randn(classes, 512, scale=0.01)
    sd["classifier.3.bias"] = gen.randn(classes, scale=0.01)
    return sd


def ref_resnet_state(depth, classes, seed, nbt):
    """The reference's L1 ResNet (conv1/bn1, layerS.I.conv1/bn1/conv2/bn2, fc)."""
    n = (depth - 2) // 6
    gen, sd = _Gen(seed), OrderedDict()
    sd["conv1.weight"] = gen.randn(16, 3, 3, 3, scale=0.3)
    gen.bn(sd, "bn1", 16, nbt)
    inp = 16
    for s, planes in enumerate((16, 32, 64)):
        for i in range(n):
            b = f"layer{s + 1}.{i}"
            sd[f"{b}.conv1.weight"] = gen.randn(planes, inp, 3, 3, scale=(2.0 / (9 * planes)) ** 0.5)
            gen.bn(sd, f"{b}.bn1", planes, nbt)
            sd[f"{b}.conv2.weight"] = gen.randn(planes, planes, 3, 3, scale=(2.0 / (9 * planes)) ** 0.5)
            gen.bn(sd, f"{b}.bn2", planes, nbt)
            inp = planes
    sd["fc.weight"] = gen.randn(classes, 64, scale=0.1)
    sd["fc.bias"] = gen.randn(classes, scale=0.1)
    return sd


def ref_checkpoint(state, cfg, module_prefix):
    """main.py's save_checkpoint dict: {epoch, state_dict, best_prec1, optimizer, cfg}."""
    if module_prefix:
        state = OrderedDict(("module." + k, v) for k, v in state.items())
    params = [k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                 "param_groups": [{"lr": 0.001, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0001,
                                   "nesterov": False, "params": list(range(len(params)))}]}
    return {"epoch": 160, "state_dict": state, "best_prec1": 0.9342, "optimizer": optimizer, "cfg": list(cfg)}


# ----------------------------------------------------------------- the reference rule, in numpy
def _top_filters(weight, num_keep):
    """L1 norm per filter, argsort ascending, the last num_keep reversed; kept in original order."""
    l1 = np.sum(np.abs(weight), axis=(1, 2, 3))
    order = np.argsort(l1)
    mask = np.zeros(weight.shape[0])
    mask[order[::-1][:num_keep]] = 1
    return np.flatnonzero(mask)


def expected_vgg(sd):
    """vggprune.py: fixed target cfg; a layer already at its target width is kept whole."""
    convs = [k for k in sd if k.startswith("feature.") and sd[k].dim() == 4]
    targets = [v for v in VGG16_A if v != "M"]
    out, kept, cfg = OrderedDict(sd), [], []
    prev = np.arange(3)
    for k, target in zip(convs, targets):
        w = sd[k].numpy()
        idx = np.arange(w.shape[0]) if w.shape[0] == target else _top_filters(w, target)
        kept.append(idx)
        cfg.append(len(idx))
        out[k] = torch.from_numpy(w[idx][:, prev].copy())
        bn = f"feature.{int(k.split('.')[1]) + 1}"
        for name in BN_KEYS:
            out[f"{bn}.{name}"] = torch.from_numpy(sd[f"{bn}.{name}"].numpy()[idx].copy())
        prev = idx
    out["classifier.0.weight"] = torch.from_numpy(sd["classifier.0.weight"].numpy()[:, prev].copy())
    full_cfg, it = [], iter(cfg)
    for v in VGG16_A:
        full_cfg.append(v if v == "M" else next(it))
    return out, full_cfg, kept


def expected_resnet(sd, depth, variant):
    """res56prune.py / res110prune.py: only even layer ids (block conv1) are pruned."""
    skip, prob, (end1, end2) = REF_RESNET_RULE[(depth, variant)]
    convs = [k for k in sd if sd[k].dim() == 4]  # module order: stem, then conv1/conv2 of every block
    out, cfg, kept = OrderedDict(sd), [], []
    for layer_id, k in enumerate(convs, start=1):
        w = sd[k].numpy()
        c = w.shape[0]
        if layer_id in skip:
            idx = np.arange(c)
        elif layer_id % 2 == 0:
            stage = 0 if layer_id <= end1 else 1 if layer_id <= end2 else 2
            idx = _top_filters(w, int(c * (1 - prob[stage])))
        else:
            continue
        kept.append(idx)
        cfg.append(len(idx))
        block = k[: -len(".conv1.weight")]
        out[k] = torch.from_numpy(w[idx].copy())
        for name in BN_KEYS:
            out[f"{block}.bn1.{name}"] = torch.from_numpy(sd[f"{block}.bn1.{name}"].numpy()[idx].copy())
        out[f"{block}.conv2.weight"] = torch.from_numpy(sd[f"{block}.conv2.weight"].numpy()[:, idx].copy())
    return out, cfg, kept


# ------------------------------------------------------------------------------------- the runs
# name -> (arch, depth, classes, variant, checkpoint flavour)
RUNS = {
    "vgg16-c10": ("vgg", 16, 10, "A", dict(nbt=True, module_prefix=False)),
    "vgg16-c100-noNBT-module": ("vgg", 16, 100, "A", dict(nbt=False, module_prefix=True)),
    "resnet56-A-noNBT": ("resnet", 56, 10, "A", dict(nbt=False, module_prefix=False)),
    "resnet56-B-module": ("resnet", 56, 10, "B", dict(nbt=True, module_prefix=True)),
    "resnet110-A": ("resnet", 110, 10, "A", dict(nbt=True, module_prefix=False)),
    "resnet110-B-noNBT-module": ("resnet", 110, 10, "B", dict(nbt=False, module_prefix=True)),
    "own-resnet56-A": ("resnet", 56, 10, "A", dict(own=True)),
}
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _own_checkpoint(depth, seed):
    """A checkpoint in this project's format: the spec fields next to the state_dict."""
    from models import create_model
    from utils.checkpoint import spec_fields
    torch.manual_seed(seed)
    model = create_model("resnet", depth)
    gen = _Gen(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                sd = {}
                gen.bn(sd, "x", m.num_features, True)
                for key in BN_KEYS + ("num_batches_tracked",):
                    getattr(m, key).copy_(sd["x." + key])
    return {**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 160, "best_prec1": 0.9}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Write every checkpoint, then run prune.py on them, two at a time, each in an empty folder."""
    jobs = {}
    for i, (name, (arch, depth, classes, variant, flavour)) in enumerate(RUNS.items()):
        work = tmp_path_factory.mktemp(name)
        seed = 1000 + i
        if flavour.get("own"):
            ckpt = _own_checkpoint(depth, seed)
            state = ckpt["state_dict"]
            args = []
        else:
            if arch == "vgg":
                state = ref_vgg_state(classes, seed, flavour["nbt"])
                cfg = VGG16_CFG
            else:
                state = ref_resnet_state(depth, classes, seed, flavour["nbt"])
                cfg = [16] * ((depth - 2) // 6) + [32] * ((depth - 2) // 6) + [64] * ((depth - 2) // 6)
            ckpt = ref_checkpoint(state, cfg, flavour["module_prefix"])
            args = ["--arch", arch, "--depth", depth]
        torch.save(ckpt, work / "model_best.pth.tar")
        dataset = "cifar10" if classes == 10 else "cifar100"
        cmd = [L1 / "prune.py", "--model", work / "model_best.pth.tar", "--save", work / "pruned",
               "--dataset", dataset, "-v", variant] + args
        jobs[name] = (work, OrderedDict(state), cmd)

    def go(name):
        work, _, cmd = jobs[name]
        return run(cmd, cwd=work, env=ENV, timeout=600)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(go, name) for name in jobs}
        results = {}
        for name, fut in futures.items():
            try:
                results[name] = (jobs[name][0], jobs[name][1], fut.result(), None)
            except Exception as exc:  # reported by the test that looks at this run
                results[name] = (jobs[name][0], jobs[name][1], None, exc)
    return results


@pytest.mark.parametrize("name", list(RUNS))
def test_prune_keeps_the_reference_filters(runs, name):
    arch, depth, classes, variant, flavour = RUNS[name]
    work, original, proc, exc = runs[name]
    if exc is not None:
        raise exc
    assert "note: test accuracy not measured" in proc.stdout
    assert not (work / "data" / "cifar-10-batches-py").exists()

    if arch == "vgg":
        expected, cfg, kept = expected_vgg(original)
        assert cfg == VGG16_A
    else:
        expected, cfg, kept = expected_resnet(original, depth, variant)
        assert cfg == REF_RESNET_CFG[(depth, variant)]

    ckpt = torch.load(work / "pruned" / "pruned.pth.tar", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    assert ckpt["cfg"] == cfg
    nbt_keys = {k[: -len("running_mean")] + "num_batches_tracked" for k in original if k.endswith("running_mean")}
    assert set(state) == set(expected) | nbt_keys
    sliced = 0
    for key, want in expected.items():
        got = state[key]
        assert got.shape == want.shape, key
        assert torch.equal(got, want), key
        if want.shape != original[key].shape:
            sliced += 1
    assert sliced > 0
    for key in nbt_keys:
        assert torch.equal(state[key], original.get(key, torch.tensor(0))), key

    # the kept filter lists recorded in the checkpoint are the reference's; unlisted layers are whole
    layer_cfg_index = ([i for i, v in enumerate(VGG16_CFG) if v != "M"] if arch == "vgg"
                       else list(range(len(kept))))
    recorded = {int(k): list(v) for k, v in ckpt["kept"].items()}
    assert recorded
    for pos, idx in zip(layer_cfg_index, kept):
        if pos in recorded:
            assert recorded.pop(pos) == idx.tolist()
        else:
            assert idx.tolist() == list(range(len(idx)))
    assert not recorded

    # the pruned checkpoint rebuilds from its own spec and loads strictly
    from models import build_from_spec
    model = build_from_spec(ckpt["model"])
    model.load_state_dict(state)
    assert model.cfg == cfg and model.spec.num_classes == classes

    record = json.loads((work / "pruned" / "prune.json").read_text())
    (pb, fb, mb), (pp, fp, mp) = GOLDEN[(arch, depth, classes, variant)]
    for key in ("cfg", "params_base", "params_pruned", "flops_base", "flops_pruned", "macs_base", "macs_pruned"):
        assert key in record, key
    assert record["cfg"] == cfg
    assert (record["params_base"], record["flops_base"], record["macs_base"]) == (pb, fb, mb)
    assert (record["params_pruned"], record["flops_pruned"], record["macs_pruned"]) == (pp, fp, mp)
    assert record["acc_before"] is None and record["acc_after"] is None


def test_numpy_rule_helper_is_not_trivial():
    """The helper picks the largest-L1 filters and keeps their original order."""
    w = np.zeros((5, 1, 1, 1))
    w[:, 0, 0, 0] = [3.0, -7.0, 1.0, 5.0, -2.0]
    assert _top_filters(w, 3).tolist() == [0, 1, 3]
    assert _top_filters(w, 1).tolist() == [1]
