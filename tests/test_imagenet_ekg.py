"""EKG on ImageNet (imagenet/ekg, models/imagenet_ekg.py, utils/ekg.py's folder paths): torchvision's ResNets with
every width prunable (its state_dicts load and compute the same; the reference zoo's FLOPs; groups tie exactly what
the architecture ties, as Torch-Pruning sees it), the width cost with ReLU and pooling modules, D_val cached or
streamed from JPEG files with identical batches, the two-view index-returning folder loader, and the stages on a
JPEG tree: a search that meets its target, fine-tuning with and without the memory bank, scratch-E/B, the errors."""
import pytest
import torch
import torchvision

from conftest import stage, write_jpeg_tree
from models import create_model
from models.imagenet_ekg import ekg_default_cfg
from utils import ekg
from utils.checkpoint import load_checkpoint, save_checkpoint, spec_fields
from utils.errors import UserError
from utils.flops import count_flops, count_macs, count_params

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "imagenet/ekg"
ARCH = "imagenet_resnet_ekg"
QUIET = ["--no-progress", "--no-tensorboard"]
NOLOG = (lambda *a, **k: None)  # noqa: E731


def small(depth, size=32, classes=10, seed=0):
    """The network at 1/8 width (8 stem channels), random BN statistics and affine parameters."""
    from test_ekg import randomised
    torch.manual_seed(seed)
    return randomised(create_model(ARCH, depth, cfg=ekg_default_cfg(depth, 8), num_classes=classes,
                                   image_size=size), seed)


# ------------------------------------------------------------------------------------------------ the network
@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_weights_load_strict_and_compute_the_same(depth):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    ours = create_model(ARCH, depth, image_size=64).eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), tv(x))


def test_every_depth_has_torchvisions_parameters_and_the_reference_zoos_flops():
    for depth in (18, 34, 50, 101, 152):
        with torch.device("meta"):
            tv = getattr(torchvision.models, f"resnet{depth}")()
            ours = create_model(ARCH, depth)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in tv.state_dict().items()}
    # at 224 px where the README has the number (ResNet-34; ResNet-50's 8,213,618,152 is with the reference's shortcut
    # bias, 1,505,280 FLOPs more); 101 and 152 are 50's blocks, more of them
    for depth, size in ((34, 224), (50, 224), (18, 64)):
        zoo, ours = create_model("imagenet_resnet", depth, image_size=size), create_model(ARCH, depth, image_size=size)
        flops = count_flops(ours)
        assert flops == count_flops(zoo) and count_macs(ours) == count_macs(zoo), depth
        assert count_params(ours) == count_params(zoo)
        assert flops == {34: 7_340_393_960, 50: 8_213_618_152 - 1_505_280}.get(depth, flops)


def test_cfg_layout_and_groups():
    r18, r50 = create_model(ARCH, 18), create_model(ARCH, 50)
    assert r18.cfg == [64, 128, 256, 512] + [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2
    assert r50.cfg[:5] == [64, 256, 512, 1024, 2048] and r50.cfg[5:7] == [64, 64] and len(r50.cfg) == 5 + 2 * 16
    g18 = {g.name: g for g in r18.channel_groups()}
    assert "stem" not in g18 and g18["stage1"].out[:2] == ["conv1", "bn1"] and g18["stage1"].sites[0] == "gate"
    g50 = {g.name: g for g in r50.channel_groups()}
    assert g50["stem"].inp == ["layer1.0.conv1", "layer1.0.downsample.0"] and g50["stem"].sites == ["gate"]
    assert g50["stage4"].inp[-1] == "fc" and len(g50["stage1"].sites) == 3
    assert sorted(g.cfg_index for g in r50.channel_groups()) == list(range(len(r50.cfg)))
    # every group is a gate; a stage's coarse step is 0.2 / (its writers: the projection and every conv3)
    gates = {g.name: g for g in ekg.gates_of(r50, 0.2)}
    assert len(gates) == 37 and gates["stage3"].step == 0.2 / 7 and gates["layer2.1.conv2"].step == 0.2
    with pytest.raises(UserError, match="needs 12 "):
        create_model(ARCH, 18, cfg=r18.cfg[:-1])


@pytest.mark.parametrize("depth", [18, 50])
def test_pruned_network_equals_the_masked_full_network(depth):
    """Every group pruned at random: the physically smaller network computes what the full one does with the
    removed channels zeroed at its sites (EKG's masked forward); EKG's sub-network keeps every kernel's norm."""
    from test_ekg import masked_forward
    from utils.surgery import prune_channels
    base = small(depth, size=64).eval()
    g = torch.Generator().manual_seed(2)
    kept = {i: sorted(torch.randperm(w, generator=g)[:max(1, w // 2 + i % 3)].tolist()) for i, w in enumerate(base.cfg)}
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        pruned = prune_channels(base, kept).eval()
        assert torch.allclose(pruned(x), masked_forward(base, kept, x), atol=1e-5)
    assert pruned.cfg == [len(kept[i]) for i in range(len(base.cfg))]
    sub = ekg.sub_network(base, kept)
    for name, mod in sub.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.allclose(mod.weight.norm(), base.get_submodule(name).weight.norm(), rtol=1e-5), name


def test_bottleneck_groups_equal_torch_pruning_groups():
    """The oracle of test_torch_pruning_oracle.py (which runs ResNet-18) on ResNet-50: the stem group, the stage
    streams (several writers each) and the inner widths."""
    tp = pytest.importorskip("torch_pruning")
    from test_torch_pruning_oracle import ours, theirs
    model = small(50).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    for group in model.channel_groups():
        for conv in [m for m in group.out if isinstance(model.get_submodule(m), torch.nn.Conv2d)]:
            assert theirs(model, graph, conv) == ours(model, group), (group.name, conv)


@pytest.mark.parametrize("rule", ["official", "reference"])
def test_width_cost_models_relu_and_pooling_modules(rule):
    """By the reference rule count_flops counts every ReLU call, the stem max-pool and the average pool: the width
    cost assigns each to the group its output carries, and equals the counter on random widths."""
    for depth in (18, 50):
        base = small(depth, size=64)
        cost = ekg.WidthCost(base, rule)
        g = torch.Generator().manual_seed(depth)
        for _ in range(3):
            cfg = [int(torch.randint(1, w + 1, (1,), generator=g)) for w in base.cfg]
            net = create_model(ARCH, depth, cfg=cfg, num_classes=10, image_size=64)
            counted = count_macs(net, bn=True) if rule == "official" else count_flops(net)
            assert cost(cfg) == cost.check(net) == counted


# ------------------------------------------------------------------------------------------------ folder data
@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=3, train_per_class=12, val_per_class=2)


def data(tree):
    return ["--data", tree, "--input-size", 32, "--workers", 0, "--test-batch-size", 6]


def folder_set(tree):
    from utils.data import dataset_info, load_dataset
    import dataclasses
    train, _ = load_dataset("imagenet", tree)
    return train, dataclasses.replace(dataset_info("imagenet"), image_size=32)


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_search_batches_cached_or_streamed_equal_the_plain_loader(tree, mode):
    from types import SimpleNamespace
    from utils.methods import NoHparams, PruneContext
    train, info = folder_set(tree)
    ctx = PruneContext(NoHparams(), folder=SimpleNamespace(loader=mode, workers=0, input_size=32))
    images = train.select(torch.arange(3, 25))
    plain = list(ctx.loader_of(images, info, 6))
    for cache, cached in ((0, 0), (6 * 3072 + 5, 6), (13 * 3072, 12), (10 ** 9, 22)):
        batches = ekg.FolderBatches(images, info, 6, ctx.loader_of, cache)
        assert batches.cached == cached and len(batches) == len(plain) == 4
        for _ in range(2):  # the same at every pass
            got = list(batches)
            assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(got, plain)), cache
        assert torch.equal(batches.labels, images.labels)


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_two_views_of_folder_data_return_indices_and_the_plain_first_view(tree, mode):
    from utils.data import make_loader
    from types import SimpleNamespace
    train, info = folder_set(tree)
    loader = make_loader(train, 8, train=True, info=info, seed=3, folder=SimpleNamespace(loader=mode, workers=0,
                                                                                        input_size=32))
    views = ekg.FolderViewLoader(loader)
    loader.set_epoch(1)
    plain = list(loader)
    both = list(views.view_batches(2, 0.0))
    jittered = list(views.view_batches(2, 0.2))
    order = []
    for (x, y), (v, y2, idx), (w, _, _) in zip(plain, both, jittered):
        first, second = v.chunk(2)
        assert torch.equal(first, x) and torch.equal(y, y2) and torch.equal(train.labels[idx], y)
        assert not torch.equal(second, x) and not torch.equal(w[:len(y)], x)
        order += idx.tolist()
    assert sorted(order) == list(range(36)) and order != list(range(36))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(both, views.view_batches(2, 0.0)))  # reproducible
    bank = torch.randn(36, 3, 2)
    for x, (y, teachers) in ekg.KnowledgeLoader(views, bank, 0.0, "cpu"):
        idx = torch.tensor([int(torch.nonzero((bank == t).all(-1).all(-1))) for t in teachers])
        assert torch.equal(teachers, bank[idx]) and torch.equal(y, train.labels[idx]) and x.shape[0] == 2 * len(y)
    views.set_epoch(2)
    assert not torch.equal(next(iter(views.view_batches(2, 0.0)))[2], both[0][2])
    if mode == "fast":  # the CUDA path (bytes from the workers, decoded and cropped on the device), run on the CPU
        loader.on_device = True
        loader.set_epoch(1)
        on_device = list(ekg.FolderViewLoader(loader).view_batches(2, 0.2))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(on_device, jittered))


# ------------------------------------------------------------------------------------------------ the stages
SEARCH = ["--subset-per-class", 6, "--val-per-class", 4, "--search-batch-size", 6, "--keep-flops", 0.8,
          "--num-teachers", 3, "--search-cache-gb", 2e-5]  # D_val: one batch cached, one decoded every pass


@pytest.fixture(scope="module")
def ekg_run(tree, tmp_path_factory):
    """A random ResNet-18 at 1/8 width searched and banked through prune.py on the JPEG tree at 32 px."""
    root = tmp_path_factory.mktemp("imagenet_ekg")
    model = small(18, classes=3)
    save_checkpoint({**spec_fields(model, "imagenet"), "state_dict": model.state_dict()}, root / "base.pth.tar")
    record = stage(KEY, "prune", data(tree) + ["--model", root / "base.pth.tar", "--save", root / "pruned"] + SEARCH,
                   log=NOLOG)
    return root, record


def test_search_meets_the_target_and_the_pruned_network_is_consistent(ekg_run):
    from models import build_from_spec
    root, rec = ekg_run
    assert rec["flops_kept"] <= 0.8 < rec["history"][-2]["flops_kept"] and rec["search_steps"] > 1
    ckpt = load_checkpoint(root / "pruned" / "pruned.pth.tar")
    net = build_from_spec(ckpt["model"])
    net.load_state_dict(ckpt["state_dict"])  # strict: the spec alone rebuilds it
    assert net.cfg == rec["cfg"] != rec["cfg_base"] and count_params(net) == rec["params_pruned"]
    assert count_flops(net) == rec["flops_pruned"] and rec["ekg_flops_pruned"] == count_macs(net, bn=True)
    assert {int(k): len(v) for k, v in ckpt["kept"].items()} == {i: w for i, w in enumerate(net.cfg)
                                                                  if w != rec["cfg_base"][i]}
    bank = load_checkpoint(root / "pruned" / "memory_bank.pt", "--refine")
    assert bank["state_dict"]["logits"].shape == (36, 3, 3) and bank["teachers"] == ekg.pick_teachers(rec["history"], 3)
    assert rec["scratch_b_epochs"] == int(90 * rec["flops_ratio"])  # the reference's ImageNet cap rule, announced


def test_finetune_with_and_without_the_bank_and_scratch(ekg_run, tree, tmp_path):
    root, rec = ekg_run
    pruned = root / "pruned" / "pruned.pth.tar"
    common = data(tree) + ["--epochs", 1, "--batch-size", 12] + QUIET
    on = stage(KEY, "finetune", common + ["--refine", pruned, "--save", tmp_path / "on"], log=NOLOG)
    assert on["stage"] == "finetune" and on["args"]["knowledge"] == "on" and on["epochs"] == 1
    assert on["args"]["kd_temperature"] == 4.0  # 3 classes; 10 with 1000 (the official rule)
    off = stage(KEY, "finetune", common + ["--refine", pruned, "--knowledge", "off", "--save", tmp_path / "off"],
                log=NOLOG)
    assert off["stage"] == "finetune-ce" and off["cfg"] == rec["cfg"]
    e = stage(KEY, "scratch", common + ["--scratch", pruned, "--budget", "E", "--save", tmp_path / "e"], log=NOLOG)
    assert e["epochs"] == 1 and e["cfg"] == rec["cfg"]
    b = stage(KEY, "scratch", data(tree) + ["--scratch", pruned, "--budget", "B", "--epochs", 3, "--batch-size", 12,
                                            "--save", tmp_path / "b"] + QUIET, log=NOLOG)
    assert b["epochs"] == int(3 * rec["flops_ratio"]) and b["budget"] == "B"


def test_errors(ekg_run, tree, tmp_path):
    root, _ = ekg_run
    pruned = root / "pruned" / "pruned.pth.tar"
    common = data(tree) + ["--epochs", 1, "--refine", pruned, "--save", tmp_path / "ft"] + QUIET
    with pytest.raises(UserError, match="--augment sss with --knowledge on"):
        stage(KEY, "finetune", common + ["--augment", "sss"], log=NOLOG)
    with pytest.raises(UserError, match="memory bank .* holds the first all"):
        stage(KEY, "finetune", common + ["--train-subset", 20], log=NOLOG)
    assert not (tmp_path / "ft").exists()
    zoo = create_model("imagenet_resnet", 18, num_classes=3, image_size=32, base_width=8)
    save_checkpoint({**spec_fields(zoo, "imagenet"), "state_dict": zoo.state_dict()}, tmp_path / "zoo.pth.tar")
    with pytest.raises(UserError, match="defined for imagenet_resnet_ekg"):
        stage(KEY, "prune", data(tree) + ["--model", tmp_path / "zoo.pth.tar", "--save", tmp_path / "p"], log=NOLOG)
    few = small(18, classes=3)
    save_checkpoint({**spec_fields(few, "imagenet"), "state_dict": few.state_dict()}, tmp_path / "few.pth.tar")
    with pytest.raises(UserError, match="fewer than --subset-per-class 256"):
        stage(KEY, "prune", data(tree) + ["--model", tmp_path / "few.pth.tar", "--save", tmp_path / "q"], log=NOLOG)
    assert ekg.official_temperature(1000) == 10.0 and ekg.official_temperature(10) == 4.0


def test_torchvision_weights_load_by_their_name(tmp_path):
    from utils.data import run_info
    from utils.methods import get_method
    from utils.stages import load_source
    import dataclasses
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=3)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    info = dataclasses.replace(run_info("imagenet"), num_classes=3, image_size=64)
    _, model = load_source(str(tmp_path / "resnet18.pth"), "--model", info, "resnet18", None, method=get_method(KEY))
    assert model.spec.arch == ARCH and model.spec.depth == 18
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), tv.eval()(x))
