"""The model zoo: every registered architecture builds, runs forward and backward at CIFAR and
Fashion-MNIST geometry, rebuilds from its spec, survives a checkpoint round trip, and rejects bad input."""
import torch
import torch.nn as nn
import pytest

import models
from models import build_from_spec, create_model, list_models
from models.layers import ChannelSelection
from utils.checkpoint import save_checkpoint, spec_fields
from utils.errors import UserError

ARCHS = list_models(family="cifar")  # the ImageNet zoo has its own tests (test_imagenet_models.py)
# A small depth per architecture for the tests that do not need the paper's network.
SMALL = {"vgg": 11, "vgg_slim": 11, "resnet": 20, "preresnet": 20, "densenet": 40, "resnet_wl": 20, "resnet_sfp": 20,
         "resnet_ekg": 20}
# weight-level (bearpaw) models: each VGG has its one depth; preresnet_wl-20 is the basic-block variant
WEIGHT_LEVEL_SMALL = {**{f"vgg{d}{bn}": d for d in (11, 13, 16, 19) for bn in ("", "_bn")},
                      "preresnet_wl": 20, "densenet_wl": 40, "densenet_bc": 40}
SMALL.update(WEIGHT_LEVEL_SMALL)


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(model, seed=0):
    """Non-trivial BN statistics and affine parameters so that eval-mode outputs are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model


def test_registry_lists_the_paper_architectures():
    assert set(ARCHS) == {"vgg", "vgg_slim", "resnet", "preresnet", "densenet", "resnet_wl", "resnet_sfp", "resnet_ekg"} \
        | set(WEIGHT_LEVEL_SMALL)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("geometry", [(3, 32, 10), (1, 28, 10)], ids=["cifar32x32x3", "fmnist28x28x1"])
def test_default_build_forward_backward(arch, geometry):
    in_ch, size, classes = geometry
    torch.manual_seed(0)
    model = create_model(arch, num_classes=classes, in_channels=in_ch, image_size=size)
    assert model.spec.arch == arch
    assert model.spec.depth == models.model_entry(arch).default_depth
    assert (model.spec.in_channels, model.spec.image_size) == (in_ch, size)
    model.train()
    x = torch.randn(2, in_ch, size, size)
    out = model(x)
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    # the first conv's weights receive a real gradient (the input reaches the loss)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.shape[1] == in_ch
    assert first_conv.weight.grad.abs().sum() > 0


def test_wrong_input_geometry_fails():
    model = create_model("resnet", 20, in_channels=1, image_size=28)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 28, 28))


@pytest.mark.parametrize("arch", ARCHS)
def test_spec_rebuilds_identical_state_dict_layout(arch):
    model = create_model(arch, num_classes=100)
    rebuilt = build_from_spec(model.spec)
    rebuilt_d = build_from_spec(model.spec.to_dict())
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == ref
    assert {k: tuple(v.shape) for k, v in rebuilt_d.state_dict().items()} == ref
    assert rebuilt.spec == model.spec
    assert list(ref)[-1].startswith(("fc.", "classifier"))
    assert ref[[k for k in ref if k.endswith("weight")][-1]][0] == 100


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trip_reproduces_outputs(arch, tmp_path):
    torch.manual_seed(1)
    model = _randomise(create_model(arch, SMALL[arch]), seed=1).eval()
    path = tmp_path / "ckpt.pth.tar"
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "epoch": 3}, str(path))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["arch"] == arch and ckpt["depth"] == SMALL[arch] and ckpt["dataset"] == "cifar10"
    assert ckpt["cfg"] == model.cfg
    rebuilt = build_from_spec(ckpt["model"])
    rebuilt.load_state_dict(ckpt["state_dict"])
    rebuilt.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    # a fresh build (different random init) does not reproduce them: the weights really came from the file
    torch.manual_seed(2)
    other = build_from_spec(ckpt["model"]).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x))


def test_pruned_spec_with_selection_round_trips(tmp_path):
    """A PreResNet whose selection layers pass on a non-prefix set of channels rebuilds from its spec."""
    from utils.surgery import prune_channels
    torch.manual_seed(3)
    model = _randomise(create_model("preresnet", 20), seed=3).eval()
    groups = [g for g in model.channel_groups() if g.select]
    keep = {groups[0].cfg_index: [1, 5, 7, 15], groups[-1].cfg_index: list(range(0, 256, 3))}
    pruned = prune_channels(model, keep).eval()
    path = tmp_path / "p.pth.tar"
    save_checkpoint({**spec_fields(pruned, "cifar10"), "state_dict": pruned.state_dict()}, str(path))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    rebuilt = build_from_spec(ckpt["model"])
    rebuilt.load_state_dict(ckpt["state_dict"])
    rebuilt.eval()
    assert rebuilt.get_submodule(groups[0].select[0]).selected() == [1, 5, 7, 15]
    assert rebuilt.select.selected() == list(range(0, 256, 3))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), pruned(x))


def test_unknown_arch_and_bad_depth_are_user_errors():
    with pytest.raises(UserError, match="not a known model"):
        create_model("alexnet")
    with pytest.raises(UserError):
        build_from_spec({"arch": "nope", "depth": 1, "num_classes": 10, "in_channels": 3, "image_size": 32,
                         "cfg": None, "options": {}})
    for arch, depth in [("resnet", 57), ("vgg", 15), ("preresnet", 110), ("densenet", 41), ("vgg_slim", 12)]:
        with pytest.raises(UserError, match="--depth"):
            create_model(arch, depth)


@pytest.mark.parametrize("arch,depth,cfg", [
    ("resnet", 20, [16] * 8),
    ("vgg", 11, [64, "M", 128]),
    ("preresnet", 20, [16] * 10),
    ("densenet", 40, [24] * 5),
    ("resnet_wl", 20, [16] * 8),
])
def test_wrong_cfg_length_is_a_user_error(arch, depth, cfg):
    with pytest.raises(UserError, match="cfg"):
        create_model(arch, depth, cfg=cfg)


def test_channel_selection_state_dict_key_and_loading():
    sel = ChannelSelection(6)
    assert list(sel.state_dict()) == ["indexes"]
    assert torch.equal(sel.indexes, torch.ones(6))
    x = torch.randn(2, 6, 3, 3)
    assert torch.equal(sel(x), x)
    sel.load_state_dict({"indexes": torch.tensor([0.0, 1, 0, 1, 1, 0])})
    assert sel.selected() == [1, 3, 4]
    assert torch.equal(sel(x), x[:, [1, 3, 4]])
    sel.set_selected([0, 5])
    assert torch.equal(sel.indexes, torch.tensor([1.0, 0, 0, 0, 0, 1]))
    assert torch.equal(sel(x), x[:, [0, 5]])
    sel.to(torch.float64)  # moving/casting keeps the cached gather index consistent
    assert sel.selected() == [0, 5]


@pytest.mark.parametrize("arch", ["preresnet", "densenet"])
def test_model_selection_keys_and_loading_new_indexes_changes_forward(arch):
    torch.manual_seed(4)
    depth = SMALL[arch]
    base = create_model(arch, depth)
    groups = [g for g in base.channel_groups() if g.select]
    g = groups[1]
    width = base.cfg[g.cfg_index]
    cfg = list(base.cfg)
    cfg[g.cfg_index] = width // 2
    model = _randomise(create_model(arch, depth, cfg=cfg), seed=4).eval()
    state = model.state_dict()
    sel_keys = [k for k in state if k.endswith("select.indexes")]
    assert len(sel_keys) == len(groups)
    assert g.select[0] + ".indexes" in sel_keys
    assert "select.indexes" in sel_keys  # the classifier's selection
    assert not any("_index" in k.split(".")[-1] and not k.endswith("indexes") for k in state)
    key = g.select[0] + ".indexes"
    full = state[key].numel()
    assert state[key].sum().item() == width // 2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    new = torch.zeros(full)
    chosen = list(range(full - width // 2, full))  # a different set of the same size
    new[chosen] = 1
    state[key] = new
    model.load_state_dict(state)
    assert model.get_submodule(g.select[0]).selected() == chosen
    with torch.no_grad():
        after = model(x)
    assert not torch.allclose(before, after)
    # loading into a fresh build gives the same forward (the buffer, not construction order, decides)
    fresh = create_model(arch, depth, cfg=cfg).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh(x), after)


# ------------------------------------------------------------------- reference.md 2.1-2.5 facts
def test_default_cfgs_match_the_reference():
    assert create_model("vgg", 11).cfg == [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512]
    assert create_model("vgg", 16).cfg == [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                           512, 512, 512]
    assert create_model("vgg_slim").cfg == [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512,
                                            512, "M", 512, 512, 512, 512]
    assert create_model("resnet", 56).cfg == [16] * 9 + [32] * 9 + [64] * 9
    assert create_model("resnet", 110).cfg == [16] * 18 + [32] * 18 + [64] * 18
    pre = create_model("preresnet", 164)
    expected = ([16, 16, 16] + [64, 16, 16] * 17 + [64, 32, 32] + [128, 32, 32] * 17 + [128, 64, 64]
                + [256, 64, 64] * 17 + [256])
    assert pre.cfg == expected and len(pre.cfg) == 163
    assert sum(m.num_features for m in pre.modules() if isinstance(m, nn.BatchNorm2d)) == 12_112
    dense = create_model("densenet", 40)
    assert dense.cfg == (list(range(24, 157, 12)) + [168] + list(range(168, 301, 12)) + [312]
                         + list(range(312, 445, 12)) + [456])
    assert len(dense.cfg) == 39
    assert sum(m.num_features for m in dense.modules() if isinstance(m, nn.BatchNorm2d)) == 9_360
    assert dense.fc.in_features == 456 and dense.trans1.conv1.out_channels == 168


def test_reference_initialisation():
    torch.manual_seed(0)
    vgg = create_model("vgg", 16)
    conv = vgg.feature[40]  # 512 -> 512, 3x3: He fan-out std sqrt(2 / (9 * 512))
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 512)) ** 0.5, rel=0.02)
    bn2d = [m for m in vgg.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.weight == 0.5) and torch.all(m.bias == 0) for m in bn2d)
    bn1d = vgg.classifier[1]
    assert isinstance(bn1d, nn.BatchNorm1d)
    assert 0 <= bn1d.weight.min() and bn1d.weight.max() < 1 and bn1d.weight.std() > 0.2  # U(0, 1)
    for lin in (vgg.classifier[0], vgg.classifier[3]):
        assert lin.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(lin.bias == 0)
    res = create_model("resnet", 56)
    assert all(torch.all(m.weight == 1) for m in res.modules() if isinstance(m, nn.BatchNorm2d))
    assert res.fc.weight.abs().max() <= 1 / 8 and res.fc.weight.std() > 0.05  # library default
    for arch in ("preresnet", "densenet", "vgg_slim"):
        model = create_model(arch, SMALL[arch])
        assert all(torch.all(m.weight == 0.5) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_resnet_downsampling_shortcut():
    torch.manual_seed(0)
    model = create_model("resnet", 20)
    block = model.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 16, 16)
    assert torch.allclose(short[:, :16], torch.nn.functional.avg_pool2d(x, 2))
    assert torch.all(short[:, 16:] == 0)
    assert torch.equal(model.layer1[1].shortcut(x), x)  # identity elsewhere
    # detach_shortcut (the reference's bug B1): no gradient through the downsampling shortcut
    detached = create_model("resnet", 20, detach_shortcut=True)
    detached.load_state_dict(model.state_dict())
    xr = x.clone().requires_grad_(True)
    assert not detached.layer2[0].shortcut(xr).requires_grad
    model.layer2[0].shortcut(xr).sum().backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0
    inp = torch.randn(2, 3, 32, 32)
    model.eval()
    detached.eval()
    with torch.no_grad():
        assert torch.equal(model(inp), detached(inp))  # same function, only the gradient differs
    assert detached.spec.options == {"detach_shortcut": True}
    assert build_from_spec(detached.spec).layer2[0].detach_shortcut


@pytest.mark.parametrize("arch", ["preresnet", "densenet"])
def test_selection_wider_than_its_bn_is_a_user_error(arch):
    """A cfg that selects more channels than the BN before the selection has (e.g. default widths x2)."""
    cfg = models.scale_cfg(models.default_cfg(arch, SMALL[arch]), 2.0)
    with pytest.raises(UserError, match="selects"):
        create_model(arch, SMALL[arch], cfg=cfg)
    cfg = list(models.default_cfg(arch, SMALL[arch]))
    cfg[-1] = 0
    with pytest.raises(UserError, match="selects 0"):
        create_model(arch, SMALL[arch], cfg=cfg)
    cfg = list(models.default_cfg(arch, SMALL[arch]))
    n_sel = sum(1 for g in create_model(arch, SMALL[arch]).channel_groups() if g.select)
    selected = [None] * n_sel
    selected[0] = [0, 1, 2]  # three indices for a layer whose cfg entry passes on more
    with pytest.raises(UserError, match="distinct indices"):
        create_model(arch, SMALL[arch], cfg=cfg, selected=selected)


def _resnet_wl_params(n, cfg, classes, in_ch=3):
    """Parameters of the bearpaw CIFAR ResNet by hand: stem, 2 convs + 2 BNs per block, 1x1 conv + BN
    shortcut where the width changes, fc (reference.md 2.6)."""
    total, inp = 9 * in_ch * 16 + 2 * 16, 16
    for b, w in enumerate(cfg):
        out = (16, 32, 64)[b // n]
        total += 9 * inp * w + 2 * w + 9 * w * out + 2 * out
        if inp != out:
            total += inp * out + 2 * out
        inp = out
    return total + 64 * classes + classes


def test_resnet_wl_is_the_reference_weight_level_resnet():
    model = create_model("resnet_wl", 50)
    assert model.spec.depth == 50 and model.cfg == [16] * 8 + [32] * 8 + [64] * 8  # n = (50 - 2) // 6
    assert [len(getattr(model, f"layer{s}")) for s in (1, 2, 3)] == [8, 8, 8]
    shortcuts = [n for n, m in model.named_modules() if n.endswith("downsample")]
    assert shortcuts == ["layer2.0.downsample", "layer3.0.downsample"]
    ds = model.layer2[0].downsample
    assert isinstance(ds[0], nn.Conv2d) and ds[0].kernel_size == (1, 1) and ds[0].stride == (2, 2)
    assert ds[0].bias is None and isinstance(ds[1], nn.BatchNorm2d)
    assert sum(p.numel() for p in model.parameters()) == _resnet_wl_params(8, model.cfg, 10) == 758_554
    assert sum(p.numel() for p in create_model("resnet_wl", 20).parameters()) == 272_474  # bearpaw's 0.27M
    thin = create_model("resnet_wl", 20, num_classes=100, cfg=[8] * 3 + [32] * 3 + [20] * 3)
    assert sum(p.numel() for p in thin.parameters()) == _resnet_wl_params(3, thin.cfg, 100)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0)
               for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.layer3[5].conv1.weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)
    # post-activation: a block ends in ReLU
    with torch.no_grad():
        assert model.layer1[0](torch.randn(2, 16, 8, 8)).min() >= 0
    for depth in (56, 110, 51):  # bottleneck depths of the reference are wrongly sized (B12): not offered
        with pytest.raises(UserError, match="--depth"):
            create_model("resnet_wl", depth)



WIDTH_ARCHS = [a for a in ARCHS if models.model_entry(a).options is not None
               and issubclass(models.model_entry(a).options, models.layers.ResNetWidthOptions)]


def test_every_cifar_resnet_takes_a_width():
    assert set(WIDTH_ARCHS) == {"resnet", "preresnet", "preresnet_wl", "resnet_sfp", "resnet_ekg"}


@pytest.mark.parametrize("arch", WIDTH_ARCHS)
def test_resnet_width_scales_every_channel_and_is_kept_by_the_spec(arch, tmp_path):
    """--width 0.5: every conv, BN and selection of the default network has half the channels (the stem's input and
    the classes excepted); a pruned-style rebuild from the checkpoint's spec keeps the narrow stages."""
    from models.registry import option_kwargs
    entry = models.model_entry(arch)
    depth = SMALL[arch]
    full = create_model(arch, depth, in_channels=1, image_size=28)
    half = create_model(arch, depth, in_channels=1, image_size=28,
                        **option_kwargs(arch, depth, entry.options(width=0.5)))
    default = create_model(arch, depth, **option_kwargs(arch, depth, entry.options()))
    assert default.spec == create_model(arch, depth).spec  # width 1: the network and spec of before
    pairs = list(zip(full.named_modules(), half.named_modules()))
    checked = 0
    for (name, a), (name_b, b) in pairs:
        assert name == name_b
        if isinstance(a, nn.Conv2d):
            assert b.out_channels * 2 == a.out_channels, name
            assert b.in_channels * 2 == a.in_channels or a.in_channels == 1, name
            checked += 1
        elif isinstance(a, nn.BatchNorm2d):
            assert b.num_features * 2 == a.num_features, name
        elif isinstance(a, nn.Linear):
            assert (b.in_features * 2, b.out_features) == (a.in_features, a.out_features), name
    assert checked >= 13  # every conv of the network was compared
    assert half.spec.options["base_width"] == 8
    # a narrower cfg (as pruning writes it) rebuilds at the network's own stage widths
    cfg = list(half.cfg)
    cfg[-1] = max(1, cfg[-1] // 2)
    spec = half.spec.to_dict()
    spec["cfg"] = cfg
    narrow = build_from_spec(spec)
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in half.parameters())
    path = tmp_path / "ckpt.pth.tar"
    save_checkpoint({**spec_fields(narrow, "fashionmnist"), "state_dict": narrow.state_dict()}, str(path))
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    rebuilt = build_from_spec(ckpt["model"])
    rebuilt.load_state_dict(ckpt["state_dict"])
    assert rebuilt(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("width", [0.3, 0, -0.5, 1 / 32])
@pytest.mark.parametrize("arch, stem", [("resnet", 16), ("preresnet", 16), ("imagenet_resnet", 64),
                                        ("imagenet_resnet_ekg", 64)])
def test_resnet_width_must_leave_the_stem_whole(arch, stem, width):
    """One width option for every ResNet: the stem (16 channels on CIFAR, 64 on ImageNet) times it is whole."""
    options = models.model_entry(arch).options
    if float(width * stem).is_integer() and width > 0:
        assert options(width=width).stem() == int(width * stem)
    else:
        with pytest.raises(UserError, match=rf"--width {width}: must be a positive multiple of 1/{stem} "):
            options(width=width)
