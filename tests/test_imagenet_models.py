"""The ImageNet zoo (models/imagenet.py): the paper's networks have the reference's sizes (reference.md 2.13),
torchvision's state_dicts load unchanged and compute the same function, every model trains at small inputs,
surgery on them equals zeroing, and their specs rebuild them."""
import json
import random

import pytest
import torch
import torch.nn as nn
import torchvision

from models import build_from_spec, create_model, list_models, model_entry
from models.imagenet import (PRESETS, RESNET50_2X_CFG, SSS_UNITS, ImageNetResNetOptions, ImageNetVGGOptions,
                             SSSPreResNetOptions, create_preset, resnet50_2x_selected, resnet_default_cfg)
from models.layers import ChannelSelection
from utils.errors import UserError
from utils.flops import count_flops, count_params
from utils.surgery import prune_channels, zero_channels

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGENET = ["imagenet_preresnet", "imagenet_resnet", "imagenet_resnet_ekg", "imagenet_vgg", "imagenet_vgg_slim"]

# reference.md 2.13: (params incl. selection vectors, FLOPs per image at 224 in the reference convention, dense)
SIZES = {
    "resnet34": (21_797_672, 7_340_393_960),
    "resnet34-A": (20_151_764, 6_212_499_416),
    "resnet34-B": (19_469_372, 5_576_203_448),
    "vgg_official": (138_357_544, 30_973_762_536),
    "vgg-5x": (130_879_294, 7_043_492_200),
    "thinet-conv": (131_452_552, 9_599_388_648),
    "thinet-gap": (8_322_696, 9_353_028_584),
    "thinet-tiny": (1_325_368, 2_017_487_848),
    "resnet50_official": (25_560_872, 8_213_618_152),
    "resnet50-2x": (19_710_544, 5_493_782_306),
    "thinet-30": (8_669_158, 2_360_886_113),
    "thinet-50": (12_385_704, 3_674_383_592),
    "thinet-70": (16_949_086, 5_235_013_502),
    "slimming-vgg11": (132_885_224, 45_762_069_432 // 3),  # the reference counts a batch of 3 there
}

# reduced widths (same layout) where the default network would only make a test slower
VGG11_SMALL = [8, "M", 16, "M", 24, 24, "M", 32, 32, "M", 32, 16, "M"]
SLIM11_SMALL = VGG11_SMALL + [40, 24]


def randomised(model, seed):
    """Non-trivial BN statistics and affine parameters (both signs of gamma), eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_((torch.rand(n, generator=g) + 0.5) * torch.sign(torch.randn(n, generator=g)))
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------ reference sizes
def test_slimming_flops_of_a_batch_of_three_divide_exactly():
    assert 45_762_069_432 % 3 == 0


@pytest.mark.parametrize("name", list(SIZES))
def test_params_and_flops_are_the_reference_sizes(name):
    torch.manual_seed(0)
    model = create_preset(name)
    assert (model.spec.num_classes, model.spec.in_channels, model.spec.image_size) == (1000, 3, 224)
    assert (count_params(model), count_flops(model)) == SIZES[name]  # count_flops' default rule is dense
    # the spec is plain JSON (ints and 'M' strings, JSON options)
    assert json.loads(json.dumps(model.spec.to_dict())) == model.spec.to_dict()


def test_presets_cover_the_paper_and_match_their_tables():
    assert set(SIZES) | {f"sss-resnet{d}" for d in (26, 32, 41, 50)} == set(PRESETS)
    # L1-norm ResNet-34-A/B (reference.md 4.7): pruned blocks only in layers 1-3, layer4 whole
    for name in ("resnet34-A", "resnet34-B"):
        cfg = PRESETS[name][2]
        assert len(cfg) == 16 and cfg[13:] == [512] * 3 and cfg[0] == 64 and cfg[6] == 128 and cfg[12] == 256
    # ThiNet: b = c = the stage's width in every block, a = block input (reference.md 2.10)
    for name, widths in (("thinet-30", (19, 38, 76, 153)), ("thinet-50", (32, 64, 128, 256)),
                         ("thinet-70", (44, 89, 179, 358))):
        cfg = PRESETS[name][2]
        stage = [0] * 3 + [1] * 4 + [2] * 6 + [3] * 3
        assert [cfg[3 * i + 1] for i in range(16)] == [cfg[3 * i + 2] for i in range(16)] == \
            [widths[s] for s in stage]
        assert [cfg[3 * i] for i in range(16)] == resnet_default_cfg(50)[0::3]


def test_resnet50_2x_selection_is_filter_pkl():
    """Appendix A: 16 selections over the block inputs, as many ones as the cfg's a entries, block 0 starts
    0, 4, 9, 10, 11."""
    sel = resnet50_2x_selected()
    widths = [64, 256, 256, 256, 512, 512, 512, 512] + [1024] * 6 + [2048] * 2
    assert [len(s) for s in sel] == RESNET50_2X_CFG[0::3] == [35, 101, 97, 144, 205, 198, 288, 278, 418, 407, 423,
                                                              412, 595, 606, 1222, 1147]
    assert all(s == sorted(set(s)) and 0 <= s[0] and s[-1] < w for s, w in zip(sel, widths))
    assert sel[0][:5] == [0, 4, 9, 10, 11]
    model = create_preset("resnet50-2x", image_size=64)
    selections = [m for m in model.modules() if isinstance(m, ChannelSelection)]
    assert [s.indexes.numel() for s in selections] == widths and sum(widths) == 13_120
    assert [s.selected() for s in selections] == sel
    assert model.layer1[0].select.selected() == sel[0]
    # conv1 reads only the selected channels, the shortcut all of them
    block = randomised(model, 0).layer2[0]
    x = torch.randn(1, 256, 8, 8)
    with torch.no_grad():
        ref = block.bn1(block.conv1(x[:, sel[3]])).relu()
        ref = block.bn3(block.conv3(block.bn2(block.conv2(ref)).relu()))
        assert torch.allclose(block(x), (ref + block.downsample(x)).relu(), atol=1e-5)


# ------------------------------------------------------------------------------------ torchvision layout
@pytest.mark.parametrize("tv_name,arch,depth,options", [
    ("resnet34", "imagenet_resnet", 34, {}), ("resnet50", "imagenet_resnet", 50, {}),
    ("vgg16", "imagenet_vgg", 16, {}), ("vgg16_bn", "imagenet_vgg", 16, {"batch_norm": True})])
def test_torchvision_state_dict_loads_strict_and_gives_the_same_outputs(tv_name, arch, depth, options):
    torch.manual_seed(0)
    tv = randomised(getattr(torchvision.models, tv_name)(num_classes=10), 1)
    with torch.device("meta"):  # no init: every tensor comes from torchvision's state_dict
        ours = create_model(arch, depth, num_classes=10, image_size=64, **options).eval()
    assert shapes(ours) == shapes(tv)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), tv(x))


# ------------------------------------------------------------------------------------ every model, small inputs
# (arch, depth, options, sizes); the default VGG-16 runs at 64 px in the torchvision test, the 100M-weight
# heads of the default VGGs once each (the 7x7 adaptive pool does the same at 64 and 32 px)
BUILDS = [("imagenet_resnet", 18, {}, (64, 32)), ("imagenet_resnet", 34, {}, (64, 32)),
          ("imagenet_resnet", 50, {}, (64, 32)),
          ("imagenet_resnet", 50, {"shortcut_bias": True, "select_input": True}, (64, 32)),
          ("imagenet_resnet_ekg", 18, {}, (64, 32)), ("imagenet_resnet_ekg", 50, {}, (64, 32)),
          ("imagenet_vgg", 11, {"cfg": VGG11_SMALL}, (64, 32)),
          ("imagenet_vgg", 11, {"head": "gap", "batch_norm": True}, (64, 32)),
          ("imagenet_vgg_slim", 11, {}, (64,)), ("imagenet_vgg_slim", 11, {"cfg": SLIM11_SMALL}, (32,)),
          ("imagenet_preresnet", 26, {}, (64, 32)), ("imagenet_preresnet", 50, {"block_lambda": True}, (64, 32))]


@pytest.mark.parametrize("arch,depth,options,sizes", BUILDS,
                         ids=[f"{a}{d}-{'-'.join(o) or 'default'}" for a, d, o, _ in BUILDS])
def test_builds_and_trains_at_small_inputs(arch, depth, options, sizes):
    for size in sizes:
        torch.manual_seed(0)
        model = create_model(arch, depth, num_classes=10, in_channels=3, image_size=size, **options).train()
        assert (model.spec.num_classes, model.spec.image_size) == (10, size)
        out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        out.logsumexp(1).sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight.grad.abs().sum() > 0


def test_every_imagenet_arch_is_registered_in_its_family():
    assert list_models(family="imagenet") == IMAGENET
    assert not set(IMAGENET) & set(list_models(family="cifar"))
    assert set(IMAGENET) <= set(list_models())
    assert {b[0] for b in BUILDS} == set(IMAGENET)


def test_final_pool_follows_the_image_size():
    """ResNet's pool is the reference's AvgPool2d(7) module at 224 (counted in FLOPs), sized for other inputs."""
    for size, k in ((224, 7), (64, 2), (32, 1), (48, 2)):
        model = create_model("imagenet_resnet", 18, image_size=size)
        assert isinstance(model.avgpool, nn.AvgPool2d) and model.avgpool.kernel_size == k
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 3, size, size)).shape == (1, 1000)
    # VGG heads: torchvision's adaptive 7x7 pool (parameter-free, FLOP-free); GAP: functional pool
    vgg = create_model("imagenet_vgg", 11, cfg=VGG11_SMALL)
    assert isinstance(vgg.avgpool, nn.AdaptiveAvgPool2d) and vgg.avgpool.output_size == (7, 7)
    assert vgg.classifier[0].in_features == 16 * 49
    gap = create_preset("thinet-tiny")
    assert not any(isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in gap.modules())
    assert isinstance(gap.classifier, nn.Linear) and gap.classifier.in_features == 256


def test_resnet34_fc_reads_the_stage_width_not_the_last_cfg_entry():
    """The reference's Linear(cfg[-1], ...) (bug B13) breaks as soon as the last block is pruned."""
    cfg = create_model("imagenet_resnet", 34, image_size=64).cfg
    cfg[-1] = 100
    model = create_model("imagenet_resnet", 34, image_size=64, cfg=cfg)
    assert model.fc.in_features == 512 and model.layer4[2].conv1.out_channels == 100
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("arch,depth,options", [
    ("imagenet_resnet", 50, {"cfg": RESNET50_2X_CFG, "select_input": True, "shortcut_bias": True}),
    ("imagenet_vgg", 11, {"cfg": VGG11_SMALL}), ("imagenet_vgg_slim", 11, {"cfg": SLIM11_SMALL}),
    ("imagenet_preresnet", 26, {"block_lambda": True})], ids=["resnet50-2x", "vgg", "vgg_slim", "preresnet26"])
def test_macs_agree_with_torch_flop_counter(arch, depth, options):
    from torch.utils.flop_counter import FlopCounterMode
    from utils.flops import count_macs
    model = create_model(arch, depth, num_classes=10, image_size=64, **options).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 64, 64))
    assert counter.get_total_flops() == 2 * count_macs(model) > 0


# ------------------------------------------------------------------------------------ initialisation
def test_reference_initialisations():
    torch.manual_seed(0)
    res = create_model("imagenet_resnet", 50, image_size=64, shortcut_bias=True)
    conv = res.layer4[1].conv2  # He fan-out: std sqrt(2 / (9 * 512))
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 512)) ** 0.5, rel=0.02)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in res.modules()
               if isinstance(m, nn.BatchNorm2d))
    bias = res.layer3[0].downsample[0].bias  # library default U(-1/sqrt(512), 1/sqrt(512))
    assert bias.shape == (1024,) and bias.abs().max() <= 512 ** -0.5 and bias.std() > 0.01
    assert create_model("imagenet_resnet", 50, image_size=64).layer3[0].downsample[0].bias is None

    vgg = create_model("imagenet_vgg", 11, cfg=VGG11_SMALL)
    lin = vgg.classifier[3]
    assert lin.weight.std().item() == pytest.approx(0.01, rel=0.02) and torch.all(lin.bias == 0)
    assert all(torch.all(m.bias == 0) for m in vgg.modules() if isinstance(m, nn.Conv2d))
    conv = vgg.features[8]
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 24)) ** 0.5, rel=0.1)

    slim = create_model("imagenet_vgg_slim", 11, cfg=SLIM11_SMALL)
    bns = [m for m in slim.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(bns) == 10 and all(torch.all(m.weight == 0.5) and torch.all(m.bias == 0) for m in bns)
    assert slim.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert [type(m).__name__ for m in slim.classifier] == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear"]
    assert all(m.bias is not None for m in slim.features if isinstance(m, nn.Conv2d))

    pre = create_model("imagenet_preresnet", 50, image_size=64, block_lambda=True)
    conv = pre.layer3[2].conv2  # He fan-in: std sqrt(2 / (9 * 256))
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 256)) ** 0.5, rel=0.02)
    assert pre.fc.weight.std().item() == pytest.approx((2 / 2048) ** 0.5, rel=0.02) and torch.all(pre.fc.bias == 0)
    lambdas = [p for n, p in pre.named_parameters() if n.endswith("lambda_")]
    assert len(lambdas) == 16 and torch.equal(torch.cat(lambdas), torch.ones(16))


# ------------------------------------------------------------------------------------ SSS PreResNet
def test_sss_units_and_depths():
    for depth, units in SSS_UNITS.items():
        with torch.device("meta"):  # structure only
            model = create_model("imagenet_preresnet", depth, image_size=64)
        branches = [n for n, m in model.named_modules() if hasattr(m, "branch") and m.branch]
        only_short = [n for n, m in model.named_modules() if hasattr(m, "branch") and not m.branch]
        assert 3 * len(branches) + 2 == depth
        assert only_short == [f"layer{s + 1}.0" for s, (_, keep) in enumerate(units) if not keep]
        assert [len(getattr(model, f"layer{s + 1}")) for s in range(4)] == [n + (not k) for n, k in units]
        assert len(model.cfg) == 2 * len(branches)
    with torch.device("meta"):
        res41 = create_model("imagenet_preresnet", 41, image_size=64)
    unit = res41.layer1[0]  # (0, False): BN - ReLU - 1x1 projection 64 -> 256 only
    assert unit.shortcut.in_channels == 64 and unit.shortcut.out_channels == 256 and not hasattr(unit, "conv1")
    assert res41.layer2[0].shortcut.stride == (2, 2) and res41.layer2[0].conv2.stride == (2, 2)
    assert res41.layer2[1].shortcut is None


def test_sss_lambda_zero_is_the_shortcut_only_unit():
    """A first unit whose lambda is 0 computes exactly what (a - 1, False) builds: SSS's pruned form."""
    torch.manual_seed(0)
    full = randomised(create_model("imagenet_preresnet", 50, image_size=64, block_lambda=True), 2)
    with torch.no_grad():
        full.layer2[0].lambda_.zero_()
    units = [[3, True], [3, False], [6, True], [3, True]]
    cfg = full.cfg[:6] + full.cfg[8:]
    pruned = create_model("imagenet_preresnet", 47, image_size=64, cfg=cfg, units=units, block_lambda=True).eval()
    state = {k: v for k, v in full.state_dict().items()
             if not (k.startswith("layer2.0.") and k.split(".")[2] in ("conv1", "bn2", "conv2", "bn3", "conv3",
                                                                         "lambda_"))}
    pruned.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(pruned(x), full(x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ surgery
SURGERY = [("imagenet_resnet", 34, None, {}), ("imagenet_resnet", 50, None, {}),
           ("imagenet_resnet", 50, RESNET50_2X_CFG, {"select_input": True, "shortcut_bias": True, "selected": "2x"}),
           ("imagenet_vgg_slim", 11, SLIM11_SMALL, {}), ("imagenet_vgg", 11, VGG11_SMALL, {}),
           ("imagenet_vgg", 11, VGG11_SMALL[:-1], {"head": "gap", "batch_norm": True}),
           ("imagenet_preresnet", 26, None, {"block_lambda": True})]


@pytest.mark.parametrize("arch,depth,cfg,options", SURGERY, ids=["resnet34", "resnet50", "resnet50-2x", "vgg_slim",
                                                                 "vgg-fc", "vgg-gap-bn", "preresnet26"])
def test_prune_equals_zero(arch, depth, cfg, options):
    if options.get("selected") == "2x":
        options = {**options, "selected": resnet50_2x_selected()}
    torch.manual_seed(0)
    model = randomised(create_model(arch, depth, num_classes=10, image_size=64, cfg=cfg, **options), 0)
    groups = model.channel_groups()
    rng = random.Random(len(arch) + depth)
    # a random half of the groups, always including the flattened-map consumer and the selections
    chosen = {g.cfg_index for g in rng.sample(groups, len(groups) // 2)}
    chosen |= {g.cfg_index for g in groups if g.inp_spatial > 1 or g.select}
    keep = {i: sorted(rng.sample(range(model.cfg[i]), rng.randint(1, model.cfg[i] - 1))) for i in chosen}
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    pruned = prune_channels(model, keep).eval()
    masked = zero_channels(model, keep).eval()
    with torch.no_grad():
        full, out, ref = model(x), pruned(x), masked(x)
    scale = ref.abs().max().item()
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * scale)
    assert not torch.allclose(out, full, rtol=1e-4, atol=1e-5 * scale)
    expected = list(model.cfg)
    for i, kept in keep.items():
        expected[i] = len(kept)
    assert pruned.cfg == pruned.spec.cfg == expected
    rows = {m: keep[g.cfg_index] for g in groups if g.cfg_index in keep for m in g.out}
    for g in groups:
        if g.cfg_index in keep:
            for m in g.inp:  # a consumer's input columns: each kept channel's inp_spatial features, in order
                w = pruned.get_submodule(m).weight
                assert w.shape[1] == len(keep[g.cfg_index]) * g.inp_spatial
                idx = torch.tensor([k * g.inp_spatial + s for k in keep[g.cfg_index] for s in range(g.inp_spatial)])
                assert torch.equal(w, model.get_submodule(m).weight[rows.get(m, slice(None))][:, idx])
            for s in g.select:
                old = model.get_submodule(s).selected()
                assert pruned.get_submodule(s).selected() == [old[k] for k in keep[g.cfg_index]]
    # the spec alone (through JSON) rebuilds the pruned network
    rebuilt = build_from_spec(json.loads(json.dumps(pruned.spec.to_dict())))
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), out)


# ------------------------------------------------------------------------------------ specs and options
ROUND_TRIP = [name for name in PRESETS if not (PRESETS[name][0] in ("imagenet_vgg", "imagenet_vgg_slim")
                                               and PRESETS[name][3].get("head") != "gap")]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_spec_round_trip(name):
    model = create_preset(name, num_classes=100, image_size=64)
    rebuilt = build_from_spec(json.loads(json.dumps(model.spec.to_dict())))  # the spec as a checkpoint keeps it
    assert shapes(rebuilt) == shapes(model) and rebuilt.cfg == model.cfg and rebuilt.spec == model.spec
    selections = [m.selected() for m in model.modules() if isinstance(m, ChannelSelection)]
    assert [m.selected() for m in rebuilt.modules() if isinstance(m, ChannelSelection)] == selections


def test_spec_round_trip_of_the_fc_vggs():
    for arch, cfg, options in (("imagenet_vgg", VGG11_SMALL, {"batch_norm": True}),
                               ("imagenet_vgg_slim", SLIM11_SMALL, {})):
        model = create_model(arch, 11, num_classes=100, image_size=64, cfg=cfg, **options)
        for spec in (model.spec, json.loads(json.dumps(model.spec.to_dict()))):
            rebuilt = build_from_spec(spec)
            assert shapes(rebuilt) == shapes(model) and rebuilt.spec == model.spec


def test_options_dataclasses_give_constructor_arguments():
    assert model_entry("imagenet_resnet").options is ImageNetResNetOptions
    assert ImageNetResNetOptions().kwargs("imagenet_resnet", 50) == {}
    assert ImageNetResNetOptions(shortcut_bias=True, select_input=True).kwargs("imagenet_resnet", 50) == \
        {"shortcut_bias": True, "select_input": True}
    assert ImageNetVGGOptions(head="gap", batch_norm=True).kwargs("imagenet_vgg", 16) == \
        {"head": "gap", "batch_norm": True}
    assert SSSPreResNetOptions(block_lambda=True).kwargs("imagenet_preresnet", 50) == {"block_lambda": True}
    assert create_model("imagenet_vgg", 16, head="gap").cfg[-1] == 512  # the default GAP cfg drops the 5th pool
    model = create_model("imagenet_resnet", 50, image_size=64, select_input=True)
    assert model.spec.options == {"select_input": True}
    assert all(m.selected() == list(range(m.indexes.numel())) for m in model.modules()
               if isinstance(m, ChannelSelection))


@pytest.mark.parametrize("arch,depth,kwargs,match", [
    ("imagenet_resnet", 34, {"cfg": [64] * 15}, "cfg"),
    ("imagenet_resnet", 50, {"cfg": [64] * 47}, "cfg"),
    ("imagenet_resnet", 34, {"select_input": True}, "select_input"),
    ("imagenet_resnet", 50, {"cfg": RESNET50_2X_CFG}, "select_input"),
    ("imagenet_resnet", 50, {"cfg": RESNET50_2X_CFG, "select_input": True, "selected": [[0, 1]] * 16},
     "distinct indices"),
    ("imagenet_resnet", 50, {"selected": [None] * 16}, "select_input"),
    ("imagenet_vgg", 16, {"cfg": [64, "M", 128]}, "cfg"),
    ("imagenet_vgg", 16, {"head": "avg"}, "head"),
    ("imagenet_vgg_slim", 11, {"cfg": VGG11_SMALL + [40]}, "cfg"),
    ("imagenet_preresnet", 26, {"cfg": [64] * 3}, "cfg"),
    ("imagenet_preresnet", 32, {"units": SSS_UNITS[26]}, "depth"),
    ("imagenet_preresnet", 47, {}, "units"),
    ("imagenet_preresnet", 26, {"units": [[0, True], [2, False], [5, False], [1, True]]}, "first unit"),
])
def test_bad_input_is_a_user_error(arch, depth, kwargs, match):
    with pytest.raises(UserError, match=match):
        create_model(arch, depth, image_size=64, **kwargs)


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="preset"):
        create_preset("resnet99")
