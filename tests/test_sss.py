"""Sparse Structure Selection (utils/sss.py, cifar/ and imagenet/sparse-structure-selection): the APG-NAG step equals
algorithms.md 5's formulas step by step on a toy problem, its weight group is torch's Nesterov SGD, its state resumes
exactly; block lambdas and units leave the networks as they were when off; planted useless branches (multiplied by
zero in the data path) get lambda exactly 0 and the pruned network computes what the trained one did; pruning
ResNet-50 like the authors gives their ResNet-26/32/41 and scratch-B table; bad input; the stage scripts and the gamma
sweep at toy scale."""
import io
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ROOT, run_in_process, stage, write_cifar
from models import build_from_spec, create_model
from models.imagenet import SSS_UNITS, create_preset
from utils.engine import TrainConfig
from utils.flops import count_flops, count_params
from utils.methods import get_method
from utils.sss import APGNAG, block_lambdas, dead_blocks, lambda_parameters, remove_blocks, sss_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "cifar/sparse-structure-selection"
IMAGENET_KEY = "imagenet/sparse-structure-selection"
QUIET = ["--no-progress", "--no-tensorboard", "--device", "cpu"]
NOLOG = (lambda *a, **k: None)  # noqa: E731


# ------------------------------------------------------------------------------------------ the optimizer
def toy():
    """Weights w of a least-squares fit and four lambdas: two pulled towards 0.8 and 0.05 by the data, two with no
    gradient at all (their terms multiplied by zero), which the L1 term must drive to exactly 0."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    target = torch.tensor([0.8, 0.05, 0.5, 0.5], dtype=torch.float64)
    useful = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)

    def loss(w, lam):
        return ((a @ w - b) ** 2).mean() + ((useful * (lam - target)) ** 2).sum()
    return loss, torch.zeros(3, dtype=torch.float64), torch.ones(4, dtype=torch.float64)


LRS = [0.1] * 12 + [0.01] * 13  # the soft-threshold follows the LR of the moment


def test_apg_nag_step_is_the_formula_step_by_step():
    loss_fn, w0, lam0 = toy()
    mu, wd, gamma = 0.9, 1e-2, 0.2
    w, lam = nn.Parameter(w0.clone()), nn.Parameter(lam0.clone())
    opt = APGNAG([{"params": [w], "weight_decay": wd},
                  {"params": [lam], "gamma": gamma, "apg": True, "nesterov": False}], lr=LRS[0], momentum=mu)
    # the reference loop: algorithms.md 5's steps written out, Nesterov SGD for w
    rw, rl, buf, v = w0.clone(), lam0.clone(), None, torch.zeros(4, dtype=torch.float64)
    zero_from = None
    for step, lr in enumerate(LRS):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss_fn(w, lam).backward()
        opt.step()

        rw_ = rw.clone().requires_grad_(True)
        rl_ = rl.clone().requires_grad_(True)
        gw, gl = torch.autograd.grad(loss_fn(rw_, rl_), (rw_, rl_))
        d = gw + wd * rw
        buf = d.clone() if buf is None else mu * buf + d
        rw = rw - lr * (d + mu * buf)
        v = mu * v                                                           # 1
        z = rl - lr * gl                                                     # 2
        z = torch.sign(z) * torch.clamp(z.abs() - lr * gamma, min=0)         # 3
        v = z - rl + v                                                       # 4
        rl = z + mu * v                                                      # 5
        rl = torch.clamp(rl, min=0)                                          # 6
        assert torch.allclose(w.detach(), rw, rtol=0, atol=1e-14), step
        assert torch.allclose(lam.detach(), rl, rtol=0, atol=1e-14), step
        if zero_from is None and torch.all(rl[2:] == 0):
            zero_from = step
    assert zero_from is not None and torch.all(lam.detach()[2:] == 0)  # the useless ones, exactly 0 and staying
    assert lam.detach()[0] > 0.3  # the useful one with a large target survives the penalty


def small_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def batches(n=6):
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)) for _ in range(n)]


def test_weight_group_is_torchs_nesterov_sgd_bit_for_bit():
    a, b = small_net(), small_net()
    mine = APGNAG([{"params": a.parameters()}], lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    ref = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True, foreach=False)
    for x, y in batches():
        for net, opt in ((a, mine), (b, ref)):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_state_dict_resumes_exactly():
    """Half the steps, the optimizer saved (weights_only, as checkpoints are) and restored into a new one, the other
    half: the same parameters as all steps in one go."""
    def run(split):
        torch.manual_seed(3)
        net = create_model("resnet", 20, block_lambda=True, image_size=8, num_classes=5)
        make = sss_optimizer(0.5)
        config = TrainConfig(epochs=1, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
        opt = make(net, config)
        for i, (x, y) in enumerate(batches()):
            if i == split:
                buf = io.BytesIO()
                torch.save({"opt": opt.state_dict(), "net": net.state_dict()}, buf)
                buf.seek(0)
                saved = torch.load(buf, weights_only=True)
                net = create_model("resnet", 20, block_lambda=True, image_size=8, num_classes=5)
                net.load_state_dict(saved["net"])
                opt = make(net, config)
                opt.load_state_dict(saved["opt"])
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        return net.state_dict()
    whole, resumed = run(None), run(3)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


# ------------------------------------------------------------------------------------------ the models
@pytest.mark.parametrize("arch,depth,blocks", [("resnet", 56, 27), ("preresnet", 164, 54)])
def test_options_off_leave_the_network_unchanged(arch, depth, blocks):
    """block_lambda adds one parameter per block and nothing else (same FLOPs, same other keys); units that keep
    every block build the same network (same keys, same outputs)."""
    torch.manual_seed(0)
    base = create_model(arch, depth)
    assert base.spec.options == {} and not lambda_parameters(base)
    with_lambda = create_model(arch, depth, block_lambda=True)
    keys, lkeys = list(base.state_dict()), list(with_lambda.state_dict())
    assert [k for k in lkeys if not k.endswith("lambda_")] == keys
    assert len(lkeys) - len(keys) == blocks == len(base.block_names())
    assert count_params(with_lambda) == count_params(base) + blocks
    assert count_flops(with_lambda) == count_flops(base)
    full = create_model(arch, depth, units=[[(depth - 2) // (6 if arch == "resnet" else 9), True]] * 3)
    full.load_state_dict(base.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert list(full.state_dict()) == keys and torch.equal(full.eval()(x), base.eval()(x))


def plant(model, names):
    """The branches of ``names`` multiplied by zero in the data path: useless, with no gradient to their lambda."""
    for name in names:
        block = model.get_submodule(name)
        getattr(block, block.branch_end).register_forward_hook(lambda m, i, out: out * 0)


@pytest.mark.parametrize("arch,planted", [("resnet", ["layer1.1", "layer2.0", "layer3.2"]),
                                          ("preresnet", ["layer1.0", "layer3.1"])])
def test_planted_useless_branches_go_to_zero_and_the_pruned_network_computes_the_same(arch, planted):
    """Random labels on 64 8x8 images, 45 APG-NAG steps with gamma 0.03: exactly the planted blocks reach lambda 0
    (stage-first ones included, whose shortcut must stay); the pruned network (planted blocks gone, the other lambdas
    folded) gives the trained network's outputs."""
    torch.manual_seed(0)
    model = create_model(arch, 20, block_lambda=True, image_size=8)
    plant(model, planted)
    opt = sss_optimizer(0.03)(model, TrainConfig(epochs=1, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True))
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,))
    for _ in range(45):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    lambdas = block_lambdas(model)
    assert dead_blocks(model) == planted, lambdas
    assert all(v > 0.05 for n, v in lambdas.items() if n not in planted), lambdas
    pruned, units = remove_blocks(model, planted)
    assert not lambda_parameters(pruned) and "block_lambda" not in pruned.spec.options
    assert len(pruned.block_names()) == len(lambdas) - len(planted)
    rebuilt = build_from_spec(pruned.spec)  # the spec alone rebuilds it
    rebuilt.load_state_dict(pruned.state_dict())
    model.eval(), rebuilt.eval()
    test = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        want, got = model(test), rebuilt(test)
    assert torch.allclose(want, got, rtol=1e-5, atol=1e-5), (want - got).abs().max()
    assert count_flops(rebuilt) < count_flops(model)
    if arch == "resnet":  # stage 2's first block lost its branch: a parameter-free shortcut unit, then 3 - 1 blocks
        assert units == [[2, True], [2, False], [2, True]] and type(rebuilt.layer2[0]).__name__ == "ShortcutUnit"
    else:  # stage 1's first block (16 -> 64 projection) lost its branch: its 1x1 conv stays
        assert units == [[1, False], [2, True], [1, True]]
        assert torch.equal(rebuilt.layer1[0].downsample[0].weight, model.layer1[0].downsample[0].weight)


def test_threshold_also_removes_lambdas_hovering_above_zero():
    """The paper's rule keeps a block whose lambda is 1e-4 (a small final LR leaves such values); --threshold 1e-3
    removes it too, and no lambda at all at 0 keeps the whole network, with a warning."""
    from utils.sss import prune_network
    model = create_model("resnet", 20, block_lambda=True)
    with torch.no_grad():
        model.layer2[1].lambda_.fill_(1e-4)
        model.layer3[0].lambda_.zero_()
    _, exact = prune_network(model)
    _, loose = prune_network(model, threshold=1e-3)
    assert exact["removed_blocks"] == ["layer3.0"] and loose["removed_blocks"] == ["layer2.1", "layer3.0"]
    assert loose["units"] == [[3, True], [2, True], [2, False]] and loose["threshold"] == 1e-3
    with torch.no_grad():
        model.layer3[0].lambda_.fill_(0.5)
    with pytest.warns(UserWarning, match="no block lambda is 0"):
        pruned, record = prune_network(model)
    assert record["removed_blocks"] == [] and count_flops(pruned) == count_flops(model)


@pytest.mark.parametrize("depth", [41, 32, 26])
def test_pruning_resnet50_like_the_authors_gives_their_networks_and_scratch_b_table(depth):
    """Zero the lambdas of the units the published network lacks (a stage's first units when its first unit keeps no
    branch, which identity units does not matter): prune gives the published units, depth, parameters and FLOPs
    (the preset's state_dict loads into it: the same layers), and prune.json's scratch-B budget is the authors'."""
    model = create_model("imagenet_preresnet", 50, block_lambda=True, image_size=64, num_classes=10)
    dead, stages = [], model.stages()
    for stage_units, (n, keep_first), full in zip(stages, SSS_UNITS[depth], SSS_UNITS[50]):
        lost = full[0] - n
        dead += stage_units[:lost] if not keep_first else stage_units[1:1 + lost]
    with torch.no_grad():
        for name in dead:
            model.get_submodule(name).lambda_.zero_()
    pruned, units = remove_blocks(model, dead_blocks(model))
    assert units == SSS_UNITS[depth] and pruned.spec.depth == depth
    preset = create_preset(f"sss-resnet{depth}", num_classes=10, image_size=64)
    assert sorted(pruned.state_dict()) == sorted(preset.state_dict())
    preset.load_state_dict(pruned.state_dict())
    assert count_params(pruned) == count_params(preset) and count_flops(pruned) == count_flops(preset)
    base224, net224 = create_preset("sss-resnet50"), create_preset(f"sss-resnet{depth}")
    preview = get_method(IMAGENET_KEY).budget_preview(count_flops(base224), count_flops(net224))
    assert (preview["scratch_b_epochs"], preview["scratch_b_lr_step"]) == {41: (117, 35), 32: (145, 43),
                                                                           26: (179, 53)}[depth]


@pytest.mark.parametrize("block_lambda,gamma,name", [(True, 0.05, "sparsity"), (True, 0.0, "baseline"),
                                                     (False, 0.05, "baseline")])
def test_a_run_is_named_sparsity_only_when_its_block_lambdas_are_penalized(block_lambda, gamma, name):
    from utils.methods import StageContext
    method = get_method(KEY)
    model = create_model("resnet", 20, block_lambda=block_lambda)
    stage = StageContext("train", method.TrainHparams(sss_gamma=gamma), None, None, None, model=model)
    assert method.stage_name(stage) == name
    assert method.stage_name(StageContext("finetune", method.FinetuneHparams(), None, None, None, model=model)) \
        == "finetune"


# ------------------------------------------------------------------------------------------ stages and bad input
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("sss_data"), n_train=96, n_test=32, seed=7)


def test_stage_scripts_train_prune_finetune_scratch(data, tmp_path):
    """train.py (block lambdas on, Nesterov, APG-NAG with a large gamma) -> prune.py -> fine-tune, scratch-B, at toy
    scale: the prune record has the units, the removed blocks are those whose lambda is 0, and the accuracy before
    and after pruning is the same."""
    common = ["--dataset", "cifar10", "--data", data, "--batch-size", 16, "--test-batch-size", 32] + QUIET
    s = stage(KEY, "train", common + ["--arch", "resnet", "--depth", 20, "--epochs", 2, "--sss-gamma", 0.15,
                                      "--save", tmp_path / "sparse"], log=NOLOG)
    assert s["args"]["block_lambda"] and s["args"]["nesterov"] and s["args"]["sss_gamma"] == 0.15
    assert s["stage"] == "sparsity"  # a penalized trunk, not a plain baseline (utils.results.check_convergence)
    ckpt = torch.load(tmp_path / "sparse" / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["optimizer"]["param_groups"][1]["apg"] and ckpt["optimizer"]["param_groups"][1]["gamma"] == 0.15
    zero = sorted(k[:-len(".lambda_")] for k, v in ckpt["state_dict"].items() if k.endswith("lambda_") and v == 0)
    assert 0 < len(zero) < 9, "gamma 0.15 zeroes some lambdas in 12 steps"
    p = stage(KEY, "prune", ["--dataset", "cifar10", "--data", data, "--test-batch-size", 32, "--device", "cpu",
                             "--model", tmp_path / "sparse" / "checkpoint.pth.tar", "--save", tmp_path / "pruned"],
              log=NOLOG)
    assert sorted(p["removed_blocks"]) == zero and p["acc_after"] == p["acc_before"]
    assert p["blocks_pruned"] == 9 - len(zero) and p["flops_pruned"] < p["flops_base"]
    assert json.loads((tmp_path / "pruned" / "prune.json").read_text())["units"] == p["units"]
    pruned = str(tmp_path / "pruned" / "pruned.pth.tar")
    f = stage(KEY, "finetune", common + ["--refine", pruned, "--epochs", 1, "--save", tmp_path / "ft"], log=NOLOG)
    b = stage(KEY, "scratch", common + ["--scratch", pruned, "--budget", "B", "--epochs", 2, "--save",
                                        tmp_path / "sb"], log=NOLOG)
    assert f["args"]["nesterov"] and b["epochs"] == int(2 * p["flops_ratio"])


def test_a_network_without_residual_blocks_or_lambdas_is_a_one_line_error(tmp_path):
    from utils.checkpoint import save_checkpoint, spec_fields
    for name, model in (("vgg", create_model("vgg", 11, cfg=[8, "M", 8, "M", 8, 8, "M", 8, 8, "M", 8, 8])),
                        ("plain", create_model("resnet", 20))):
        path = tmp_path / f"{name}.pth.tar"
        save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, path)
        out = run_in_process(ROOT / KEY / "prune.py", ["--model", path, "--save", tmp_path / f"out-{name}",
                                                       "--device", "cpu"])
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        want = "has no residual blocks" if name == "vgg" else "has no block lambdas"
        assert want in out.stderr and not (tmp_path / f"out-{name}").exists()
    for argv, want in ((["--arch", "vgg"], "--arch"), (["--arch", "resnet", "--depth", "20", "--sss-gamma", "-1"],
                                                       "--sss-gamma -1.0: must not be negative")):
        out = run_in_process(ROOT / KEY / "train.py", argv + ["--save", tmp_path / "t"])
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and want in out.stderr, out.stderr
        assert not (tmp_path / "t").exists()


def test_gamma_sweep_quick_mode(data, tmp_path):
    """sweep_gamma.py --quick: gamma 0 keeps every block, gamma 1 removes some; a table per gamma."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("sss_sweep", ROOT / KEY / "sweep_gamma.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    rows = sweep.main([str(a) for a in ["--quick", "--dataset", "cifar10", "--data", data, "--train-subset", 96,
                                        "--test-subset", 32, "--out", tmp_path / "sweep", "--", "--batch-size", 16,
                                        "--device", "cpu"]])
    assert [r["gamma"] for r in rows] == [0.0, 1.0]
    assert rows[0]["blocks"] == "9/9" and rows[0]["depth"] == 20
    assert rows[1]["zero_lambdas"] > 0 and rows[1]["depth"] < 20 and rows[1]["acc_pruned"] == rows[1]["acc_sparse"]
    assert "| 1 |" in (tmp_path / "sweep" / "sweep.md").read_text()


def test_imagenet_folder_trains_prunes_and_trains_the_result_from_scratch(tmp_path):
    """imagenet/sparse-structure-selection on a JPEG tree at 32 px: train.py trains ResNet-50's unit lambdas with
    APG-NAG; with the lambdas of ResNet-41's missing units set to 0 (the others to 1), prune.py writes ResNet-41
    ([[0, F], [4, T], [6, T], [3, T]], its published layers); scratch.py trains it; --model resnet-41 still names the
    published one."""
    from conftest import write_jpeg_tree
    from utils.checkpoint import load_checkpoint, save_checkpoint
    tree = write_jpeg_tree(tmp_path / "jpeg", classes=3, train_per_class=4, val_per_class=2)
    common = ["--data", tree, "--input-size", 32, "--workers", 0, "--batch-size", 6, "--test-batch-size", 6] + QUIET
    s = stage(IMAGENET_KEY, "train", common + ["--epochs", 1, "--save", tmp_path / "sparse"], log=NOLOG)
    assert s["args"]["block_lambda"] and s["args"]["sss_gamma"] == 0.01 and s["args"]["augment"] == "sss"
    path = tmp_path / "sparse" / "checkpoint.pth.tar"
    ckpt = load_checkpoint(str(path))
    assert ckpt["optimizer"]["param_groups"][1]["apg"]
    model = build_from_spec(ckpt["model"])
    dead = model.stages()[0]  # ResNet-41 lacks stage 1's three units (its projection stays)
    for name in model.block_names():  # three random-init steps may zero a lambda or not: set them
        ckpt["state_dict"][f"{name}.lambda_"].fill_(0.0 if name in dead else 1.0)
    save_checkpoint(ckpt, str(path))
    p = stage(IMAGENET_KEY, "prune", ["--data", tree, "--input-size", 32, "--workers", 0, "--test-batch-size", 6,
                                      "--device", "cpu", "--model", path, "--save", tmp_path / "pruned"], log=NOLOG)
    assert p["units"] == SSS_UNITS[41] and p["depth_pruned"] == 41 and p["acc_after"] == p["acc_before"]
    assert p["scratch_b_epochs"] == int(100 * p["flops_ratio"])
    e = stage(IMAGENET_KEY, "scratch", common + ["--scratch", tmp_path / "pruned" / "pruned.pth.tar", "--budget", "E",
                                                 "--epochs", 1, "--save", tmp_path / "se"], log=NOLOG)
    assert e["depth"] == 41 and e["args"]["nesterov"]
    from utils.cli import build
    parser, _, _ = build(get_method(IMAGENET_KEY), "scratch", "")
    assert parser.parse_args(["--model", "resnet-41"]).model == "resnet-41"


def test_results_label_sss_rows_by_the_gamma_their_source_was_trained_with():
    from utils.results import pruned_label
    from utils.stages import source_options
    ckpt = {"args": {"sss_gamma": 0.05, "block_lambda": True, "arch": "resnet", "depth": 20, "epochs": 8, "seed": 1}}
    options = source_options(ckpt)
    assert options == {"sss_gamma": 0.05}  # block_lambda is an architecture option: not a label
    assert pruned_label({"method": "sss", "units": [[3, True]] * 3, "source_options": options}) == "gamma 0.05"
