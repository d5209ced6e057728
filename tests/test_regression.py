"""Regression pruning (He et al. 2017) as a method of this repository: planted problems through the whole prune step
(a network, its sampling, surgery, the consumer's refit), the residual target of a ResNet block's last conv, the
layer choice and --widths (the published VGG-16-5x / ResNet-50-2x widths), the ImageNet networks (VGG-16 with
biases, ResNet-50 with its input selections), and bad input. The numerical core has its own tests
(test_lasso_core.py)."""
import json

import pytest
import torch

from conftest import cifar_eval_loader, small_vgg16, ROOT, stage, write_cifar, write_jpeg_tree
from models import create_model
from utils.checkpoint import save_checkpoint, spec_fields
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
KEY, IMAGENET_KEY = "cifar/regression-pruning", "imagenet/regression-pruning"
NOLOG = (lambda *a, **k: None)  # noqa: E731


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("regression_data"), n_train=120, n_test=40, seed=3)


vgg, loader_of = small_vgg16, cifar_eval_loader


def saved(model, path, dataset="cifar10"):
    save_checkpoint({**spec_fields(model, dataset), "state_dict": model.state_dict()}, path)
    return path


def grab(model, name, x):
    """The output of module ``name`` (for a conv with BN, pass the BN: the refit intercept lives in its running
    mean) and the network's, on x."""
    out = {}
    h = model.get_submodule(name).register_forward_hook(lambda m, i, o: out.__setitem__("y", o.detach()))
    with torch.no_grad():
        final = model.eval()(x)
    h.remove()
    return out["y"], final


def calibrate_bn(model, images):
    """BN statistics measured on the images: an untrained network with the default running statistics has
    channels that no image turns on (dead, so no LASSO can keep them)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(images)
    return model.eval()


def keep_alive(model, group_name):
    """A positive BN shift on the group's channels, so that none is dead (silent) on the calibration images."""
    g = {g.name: g for g in model.channel_groups()}[group_name]
    with torch.no_grad():
        model.get_submodule(g.out[1]).bias.fill_(1.0)
    return g


def test_channels_the_next_layer_ignores_are_removed_and_nothing_changes(data):
    """Planted: conv4 gives conv3's output channels {1, 4, 6} zero weights, so the target depends on the others only.
    Pruning conv3 to width - 3 removes exactly those; conv4's output and the network's are unchanged (least squares
    keeps the fit that already was exact)."""
    from utils.lasso import prune_by_regression
    model = vgg().eval()
    g3 = keep_alive(model, "conv3")
    planted = [1, 4, 6]
    with torch.no_grad():
        model.get_submodule(g3.inp[0]).weight[:, planted] = 0
    width = model.cfg[g3.cfg_index]
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    after_bn = {g.name: g for g in model.channel_groups()}["conv4"].out[1]
    y_before, before = grab(model, after_bn, x)
    pruned, keep, records = prune_by_regression(model, [("conv3", width - 3)], loader_of(data), log=NOLOG)
    assert sorted(set(range(width)) - set(keep[g3.cfg_index])) == planted
    assert records[0]["error_before"] < 1e-10 and records[0]["error_after"] < 1e-10
    y_after, after = grab(pruned, after_bn, x)
    assert ((y_after - y_before).norm() / y_before.norm()) < 1e-4
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-5)


def test_least_squares_folds_a_redundant_channel_into_its_twin(data):
    """Planted: conv5's output channel 7 duplicates channel 2 (same filter and BN) and conv6 reads it with 0.01 of
    channel 2's weights: one of the twins goes, and least squares gives the other the sum of both weights, so conv6's
    output is restored to 1e-4 (relative; with the original weights alone it is off by far more)."""
    from utils.lasso import prune_by_regression
    model = vgg(seed=1).eval()
    g5 = keep_alive(model, "conv5")
    conv, bn = model.get_submodule(g5.out[0]), model.get_submodule(g5.out[1])
    consumer = model.get_submodule(g5.inp[0])
    with torch.no_grad():
        conv.weight[7] = conv.weight[2]
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t[7] = t[2]
        consumer.weight[:, 7] = 0.01 * consumer.weight[:, 2]
    width = model.cfg[g5.cfg_index]
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    after_bn = {g.name: g for g in model.channel_groups()}["conv6"].out[1]
    y_before, _ = grab(model, after_bn, x)
    pruned, keep, records = prune_by_regression(model, [("conv5", width - 1)], loader_of(data), log=NOLOG)
    gone = set(range(width)) - set(keep[g5.cfg_index])
    assert len(gone) == 1 and gone <= {2, 7}
    y_after, _ = grab(pruned, after_bn, x)
    assert (y_after - y_before).norm() / y_before.norm() < 1e-4
    assert records[0]["error_after"] < 1e-8 < records[0]["error_before"]


def test_a_resnet_block_end_is_reconstructed_towards_the_original_output_plus_the_shortcut_error(data):
    """ResNet-20 with layer1.0 pruned: layer1.1's input (the residual stream) differs from the original's. The
    target of layer1.1.conv2 is then, before its BN, the original conv2 output plus (original shortcut - pruned
    shortcut) / BN scale, at the sampled positions: after the BN, original branch + original shortcut - pruned
    shortcut."""
    from utils.lasso import RegressionSampler, prune_by_regression
    torch.manual_seed(0)
    original = create_model("resnet", 20).eval()
    import copy
    current, _, _ = prune_by_regression(copy.deepcopy(original), [("layer1.0.conv1", 8)], loader_of(data, n=40),
                                        log=NOLOG)
    sampler = RegressionSampler(current, original, "layer1.1.conv2")
    assert sampler.block == "layer1.1"
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    X, Y = sampler.batch(x, 5, torch.Generator().manual_seed(3))
    u, v = sampler.sampler.draw_positions((4, 16, 32, 32), 5, torch.Generator().manual_seed(3))
    seen = {}

    def keep_io(name):
        def hook(m, i, o):
            seen[name] = (i[0].detach(), o.detach())
        return hook

    hs = [original.get_submodule("layer1.1").register_forward_hook(keep_io("orig_block")),
          original.get_submodule("layer1.1.conv2").register_forward_hook(keep_io("orig_conv2")),
          current.get_submodule("layer1.1").register_forward_hook(keep_io("cur_block"))]
    with torch.no_grad():
        original(x), current(x)
    for h in hs:
        h.remove()
    bn = original.get_submodule("layer1.1.bn2")
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double()
    shortcut_error = seen["orig_block"][0] - seen["cur_block"][0]  # identity shortcuts
    assert shortcut_error.abs().max() > 1e-3  # the first block's pruning did reach the stream
    img = torch.arange(4)[:, None]
    expect = seen["orig_conv2"][1].double() + shortcut_error.double() / a.view(1, -1, 1, 1)
    assert torch.allclose(Y, expect[img, :, u, v].reshape(-1, 16), rtol=1e-6, atol=1e-6)
    assert X.shape == (20, 16 * 9)


def test_prune_script_records_each_layer_and_keeps_the_paper_layers(data, tmp_path):
    model = vgg(seed=2)
    record = stage(KEY, "prune", ["--model", saved(model, tmp_path / "base.pth.tar"), "--dataset", "cifar10", "--data",
                                  data, "--percent", "0.5", "--calib-images", "60", "--save", tmp_path / "p"],
                   log=NOLOG)
    base = model.cfg
    last_pool = max(i for i, v in enumerate(base) if v == "M")
    assert record["cfg"] == [v if v == "M" or i > last_pool else int(v * 0.5) for i, v in enumerate(base)]
    assert [r["layer"] for r in record["layer_records"]] == [f"conv{k}" for k in range(1, 11)]
    for r in record["layer_records"]:
        assert 0 <= r["error_after"] <= r["error_before"] + 1e-12 and r["samples"] == 60 * 10
        assert r["kept"] == r["target"] == len(r["kept_channels"]) == r["channels"] // 2 and r["alpha"] > 0
    on_disk = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert on_disk["layer_records"] == record["layer_records"] and on_disk["percent"] == 0.5
    ckpt = torch.load(tmp_path / "p" / "pruned.pth.tar", weights_only=True)
    assert ckpt["cfg"] == record["cfg"] and ckpt["prune"]["method"] == "regression-pruning"


def test_widths_file_sets_every_layer_and_the_bisection_stays_in_the_band(data, tmp_path):
    """VGG-16-5x's widths at a quarter of VGG-16's: the path solver gives every layer exactly its target, the
    bisection within [c', 1.1 c']."""
    model = vgg(seed=3)
    targets = [6, 5, "M", 10, 13, "M", 27, 22, 28, "M", 46, 69, 57, "M", 128, 128, 128]
    (tmp_path / "w.txt").write_text("# a comment\n" + ",".join(map(str, targets)) + "\n")
    base = saved(model, tmp_path / "b.pth.tar")
    common = ["--model", base, "--dataset", "cifar10", "--data", data, "--calib-images", "60",
              "--widths", tmp_path / "w.txt"]
    record = stage(KEY, "prune", common + ["--save", tmp_path / "p"], log=NOLOG)
    assert record["cfg"] == targets and record["widths"] == str(tmp_path / "w.txt")
    bis = stage(KEY, "prune", common + ["--lasso-solver", "bisection", "--save", tmp_path / "q"], log=NOLOG)
    for got, want in zip(bis["cfg"], targets):
        assert got == want if want == "M" else want <= got <= int(1.1 * want)


def test_resnet_prunes_every_block_first_conv_with_residual_targets(data, tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet", 20)
    record = stage(KEY, "prune", ["--model", saved(model, tmp_path / "r.pth.tar"), "--dataset", "cifar10", "--data",
                                  data, "--percent", "0.5", "--calib-images", "40", "--save", tmp_path / "p"],
                   log=NOLOG)
    assert record["cfg"] == [8] * 3 + [16] * 3 + [32] * 3
    assert all(r["residual"] and r["consumer"].endswith("conv2") for r in record["layer_records"])


@pytest.mark.parametrize("argv,needle", [
    (["--percent", "1"], "--percent 1"),
    (["--percent", "0"], "--percent 0"),
    (["--percent", "0.5", "--widths", "WIDTHS"], "--percent or --widths"),
    (["--widths", "nowhere.txt"], "--widths nowhere.txt: no such file"),
    (["--widths", "SHORT"], "do not match the model's cfg"),
    (["--widths", "WIDE"], "entry 0 is 99"),
    (["--layers", "conv99"], "--layers conv99"),
    (["--calib-images", "0"], "--calib-images 0"),
])
def test_bad_input_is_one_error_and_writes_nothing(data, tmp_path, argv, needle):
    model = vgg()
    cfg = list(model.cfg)
    files = {"WIDTHS": cfg, "SHORT": cfg[:-1], "WIDE": [99] + cfg[1:]}
    for name, widths in files.items():
        (tmp_path / name).write_text(",".join(map(str, widths)))
    argv = [str(tmp_path / a) if a in files else a for a in argv]
    with pytest.raises(UserError, match=needle) as exc:
        stage(KEY, "prune", ["--model", saved(model, tmp_path / "b.pth.tar"), "--dataset", "cifar10", "--data", data,
                             "--calib-images", "40", "--save", tmp_path / "p", *argv], log=NOLOG)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())


def test_a_target_no_lambda_reaches_and_missing_calibration_data_are_refused(data, tmp_path):
    """conv2's channels 0..11 are silent (BN scale 0, shift -1: ReLU outputs 0), so only 4 of its 16 channels
    contribute to conv3: keeping 8 is out of every lambda's reach."""
    model = vgg()
    g2 = {g.name: g for g in model.channel_groups()}["conv2"]
    with torch.no_grad():
        bn = model.get_submodule(g2.out[1])
        bn.weight[:12] = 0
        bn.bias[:12] = -1
    base = saved(model, tmp_path / "b.pth.tar")
    with pytest.raises(UserError, match="conv2: no LASSO penalty keeps 8 of its 16 channels: only 4 of them"):
        stage(KEY, "prune", ["--model", base, "--dataset", "cifar10", "--data", data, "--calib-images", "40",
                             "--layers", "conv2", "--save", tmp_path / "p"], log=NOLOG)
    with pytest.raises(UserError, match="--data"):
        stage(KEY, "prune", ["--model", base, "--dataset", "cifar10", "--data", tmp_path / "nowhere",
                             "--save", tmp_path / "q"], log=NOLOG)
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()


# ------------------------------------------------------------------------------------------------ ImageNet
@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=3, train_per_class=8, val_per_class=2)


def jpeg_data(tree):
    return ["--data", tree, "--input-size", 32, "--workers", 0, "--test-batch-size", 6]


def test_imagenet_vgg16_refits_the_biases_and_leaves_conv5(tree, tmp_path):
    from models.imagenet import VGG_CONVS
    torch.manual_seed(0)
    model = create_model("imagenet_vgg", 16, num_classes=3, image_size=32,
                         cfg=[c if c == "M" else c // 16 for c in VGG_CONVS[16]])
    rec = stage(IMAGENET_KEY, "prune", jpeg_data(tree) + ["--model", saved(model, tmp_path / "v.pth.tar", "imagenet"),
                                                          "--percent", 0.5, "--calib-images", 12, "--save",
                                                          tmp_path / "p"], log=NOLOG)
    assert rec["cfg"] == [2, 2, "M", 4, 4, "M", 8, 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M"]
    assert "scratch_b_epochs" in rec  # the cap rule's announcement
    ckpt = torch.load(tmp_path / "p" / "pruned.pth.tar", weights_only=True)
    # conv2 (features.2) is conv1's consumer: its bias is the least-squares intercept, no longer the original
    kept = ckpt["kept"]["1"]
    assert not torch.allclose(ckpt["state_dict"]["features.2.bias"], model.state_dict()["features.2.bias"][kept])


def test_imagenet_resnet50_selects_block_inputs_and_meets_scaled_2x_widths(tree, tmp_path):
    """ResNet-50 at 1/8 width with ResNet-50-2x's widths scaled the same way: every bottleneck gets an input
    selection, the produced cfg is exactly the target, and the pruned network rebuilds from its spec alone."""
    from models import build_from_spec
    from models.imagenet import RESNET50_2X_CFG, resnet_default_cfg
    torch.manual_seed(0)
    model = create_model("imagenet_resnet", 50, num_classes=3, image_size=32, base_width=8)
    from utils.methods import NoHparams, PruneContext
    from utils.stages import FolderOptions
    ctx = PruneContext(NoHparams(), dataset="imagenet", data=tree, folder=FolderOptions(input_size=32, workers=0))
    calibrate_bn(model, torch.cat([x for x, _ in ctx.calibration_loader(24, 24)]))
    full = resnet_default_cfg(50)
    targets = [max(1, round(t * c8 / c)) for t, c, c8 in zip(RESNET50_2X_CFG, full, model.cfg)]
    (tmp_path / "w").write_text(json.dumps(targets))
    rec = stage(IMAGENET_KEY, "prune", jpeg_data(tree) + ["--model", saved(model, tmp_path / "r.pth.tar", "imagenet"),
                                                          "--widths", tmp_path / "w", "--calib-images", 24,
                                                          "--samples-per-image", 4, "--save", tmp_path / "p"],
                log=NOLOG)
    assert rec["cfg"] == targets
    layers = [r["layer"] for r in rec["layer_records"]]
    assert layers[0] == "layer1.0.select" and sum(n.endswith(".select") for n in layers) == 16
    assert all(r["residual"] == r["layer"].endswith("conv2") for r in rec["layer_records"])
    ckpt = torch.load(tmp_path / "p" / "pruned.pth.tar", weights_only=True)
    assert ckpt["model"]["options"]["select_input"]
    assert [len(s) for s in ckpt["model"]["options"]["selected"]] == targets[0::3]
    rebuilt = build_from_spec(ckpt["model"])
    rebuilt.load_state_dict(ckpt["state_dict"])
    assert rebuilt.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_the_published_widths_files_are_the_published_networks():
    """vgg16_5x.widths and resnet50_2x.widths hold the released networks' cfgs; planned on full-size VGG-16 /
    ResNet-50, they prune exactly the layers that are narrower there (VGG: conv1_1..conv4_3; ResNet: the 16 input
    selections and each inner conv narrower than 64/128/256/512)."""
    from models.imagenet import PRESETS, RESNET50_2X_CFG
    from utils.lasso import RegressionArgs, plan_layers, read_widths
    folder = ROOT / "imagenet" / "regression-pruning"
    vgg5x = read_widths(str(folder / "vgg16_5x.widths"))
    assert vgg5x == PRESETS["vgg-5x"][2]
    assert read_widths(str(folder / "resnet50_2x.widths")) == RESNET50_2X_CFG
    with torch.device("meta"):
        net = create_model("imagenet_vgg", 16)
    _, plan = plan_layers(net, RegressionArgs(widths=str(folder / "vgg16_5x.widths")))
    assert plan == [(f"conv{k + 1}", w) for k, w in enumerate(v for v in vgg5x[:13] if v != "M")][:10]
    net = create_model("imagenet_resnet", 50, shortcut_bias=True)
    converted, plan = plan_layers(net, RegressionArgs(widths=str(folder / "resnet50_2x.widths")))
    assert converted.spec.options["select_input"]
    full = net.cfg
    assert [t for _, t in plan] == [t for t, c in zip(RESNET50_2X_CFG, full) if t < c]
    assert sum(n.endswith(".select") for n, _ in plan) == 16


def test_results_label_a_widths_file_by_its_name():
    from utils.results import pruned_label
    assert pruned_label({"widths": "/runs/vgg16_5x.widths", "percent": None}) == "vgg16_5x"
    assert pruned_label({"widths": None, "percent": 0.33}) == "33%"
