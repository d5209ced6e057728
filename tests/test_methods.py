"""The method registry walked: every registered method's scripts answer --help, every method prunes a small network
of each architecture it declares (and the result rebuilds from its spec), keys are unique and namespaced by
folder, and the kinds of method (channel, mask, search) behave as documented."""
import dataclasses
import os

import pytest
import torch

from conftest import ROOT, write_cifar
from models import create_model, default_cfg, model_entry, scale_cfg
from utils.methods import (ChannelMethod, MaskMethod, NoHparams, PruneContext, SearchMethod, get_method, hparams_of,
                           list_methods, register_method)
from utils.published import PublishedOnly

pytestmark = pytest.mark.usefixtures("one_thread")
METHODS = list_methods()


def test_every_method_folder_is_registered_under_its_own_name():
    folders = sorted(os.path.relpath(os.path.dirname(p), ROOT) for p in map(str, ROOT.glob("*/*/method.py")))
    assert METHODS == folders
    assert {"cifar/l1-norm-pruning", "cifar/network-slimming", "cifar/soft-filter-pruning", "cifar/weight-level",
            "cifar/thinet", "lottery_ticket/weight-level", "lottery_ticket/l1-norm-pruning"} <= set(METHODS)
    for key in METHODS:
        method = get_method(key)
        assert method.key == key and method.name and method.paper and method.archs
        assert isinstance(method, (ChannelMethod, MaskMethod, PublishedOnly))
        for stage in ("train", "prune", "finetune", "scratch"):
            assert dataclasses.is_dataclass(method.hparams_for(stage))


def test_a_second_method_with_a_taken_key_is_an_error(tmp_path):
    other = tmp_path / "method.py"
    other.write_text("from utils.methods import ChannelMethod, register_method\n\n\n@register_method\n"
                     "class Impostor(ChannelMethod):\n    key = 'cifar/l1-norm-pruning'\n    name = 'impostor'\n")
    from utils.methods import import_path
    get_method("cifar/l1-norm-pruning")
    with pytest.raises(ValueError, match="registered twice"):
        import_path(str(other), "impostor_method")
    assert type(get_method("cifar/l1-norm-pruning")).__name__ == "L1Norm"


@pytest.mark.parametrize("key", METHODS)
def test_every_script_of_every_method_answers_help(key, capsys):
    from utils.cli import build
    method = get_method(key)
    scripts = sorted(p.stem for p in (ROOT / key).glob("*.py") if p.name != "method.py")
    if isinstance(method, PublishedOnly):  # trains published networks; no pruning algorithm of its own
        assert {"train", "scratch"} <= set(scripts) and "prune" not in scripts, scripts
    else:
        assert {"train", "prune", "scratch"} <= set(scripts), scripts
    for name in [s for s in scripts if s in ("train", "prune", "finetune", "scratch", "ticket")]:
        parser, _, _ = build(method, name, (ROOT / key / f"{name}.py").read_text().split('"""')[1])
        text = parser.format_help()
        assert "usage:" in text and "Example" in text, (key, name)
        if name == "prune":
            for f in dataclasses.fields(method.Hparams):
                assert "--" + f.name.replace("_", "-") in text, (key, f.name)


def small_network(method, arch):
    """The smallest network of ``arch`` the method's rule is defined for, at 1/8 width (its --width option, or its
    VGG cfg scaled), built for 32 px and 10 classes (the ImageNet networks too)."""
    from models import option_kwargs
    archs = method.prune_archs if method.prune_archs is not None else method.archs
    depth = min(archs[arch])
    entry = model_entry(arch)
    size = {"num_classes": 10, "image_size": 32} if entry.family == "imagenet" else {}
    torch.manual_seed(0)
    if entry.options is not None and "width" in entry.options.__dataclass_fields__:
        return create_model(arch, depth, **size, **option_kwargs(arch, depth, entry.options(width=0.125)))
    cfg = default_cfg(arch, depth)
    if "M" in cfg:
        return create_model(arch, depth, cfg=scale_cfg(cfg, 0.125), **size)
    return create_model(arch, depth, **size)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("methods_data"), n_train=100, n_test=16, seed=4)


PRUNE_OPTIONS = {"cifar/thinet": {"calib_images": 16, "percent": 0.5},
                 "imagenet/thinet": {"calib_images": 16, "percent": 0.5},
                 "cifar/regression-pruning": {"calib_images": 16, "percent": 0.5},
                 "imagenet/regression-pruning": {"calib_images": 40, "percent": 0.5},  # 1x1 maps in layer4
                 **{f"{family}/ekg": {"subset_per_class": 2, "val_per_class": 2, "search_batch_size": 20,
                                      "keep_flops": 0.8, "num_teachers": 2} for family in ("cifar", "imagenet")}}


@pytest.mark.parametrize("key", [k for k in METHODS if not isinstance(get_method(k), PublishedOnly)])
def test_every_method_prunes_a_small_network_of_each_architecture_it_declares(key, data, tmp_path):
    from models import build_from_spec
    from utils.checkpoint import save_checkpoint, spec_fields
    from utils.stages import EvalDataArgs, PruneArgs, prune
    method = get_method(key)
    archs = method.prune_archs if method.prune_archs is not None else method.archs
    for arch in archs:
        model = small_network(method, arch)
        if key == "cifar/soft-filter-pruning":  # its rule turns soft-pruned (zeroed) filters into a smaller net
            from utils.methods import import_path
            sfp = import_path(str(ROOT / key / "method.py"), "sfp_for_registry_walk")
            sfp.soft_prune(model, sfp.select_layers(model, "inner"), 0.7)
        if key.endswith("/sparse-structure-selection"):  # its rule removes the blocks whose lambda training zeroed
            spec = model.spec.to_dict()
            spec["options"]["block_lambda"] = True
            model = build_from_spec(spec)
            with torch.no_grad():
                for i, name in enumerate(model.block_names()):
                    model.get_submodule(name).lambda_.fill_(float(i % 2))
        path = tmp_path / f"{arch}.pth.tar"
        args = {"sparsity_regularization": True} if key == "cifar/network-slimming" else {}
        save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(), "args": args}, path)
        hp = hparams_of(method.Hparams, **PRUNE_OPTIONS.get(key, {}))
        record = prune(method, PruneArgs(model=str(path), save=str(tmp_path / arch), device="cpu"),
                       EvalDataArgs(dataset="cifar10", data=data, test_subset=16), hp, empty_ok=True,
                       log=lambda *a: None)
        assert record["flops_pruned"] < record["flops_base"], (key, arch)
        ckpt = torch.load(tmp_path / arch / "pruned.pth.tar", weights_only=True)
        rebuilt = build_from_spec(ckpt["model"])
        rebuilt.load_state_dict(ckpt["state_dict"])  # strict: the spec alone rebuilds the pruned network
        x = torch.randn(2, 3, 32, 32)
        assert rebuilt.eval()(x).shape == (2, 10)


def test_the_search_kind_keeps_the_best_scoring_candidate():
    """A planted search: candidates keep 1..4 filters of conv1; the score prefers 3 (closest to a target)."""

    class Keep3(SearchMethod):
        key, name = "tests/keep3", "keep3"

        def candidates(self, model, ctx):
            g = model.channel_groups()[0]
            return [{g.cfg_index: list(range(k))} for k in (1, 2, 3, 4, 3)]

        def score(self, model, keep, ctx):
            return -abs(len(next(iter(keep.values()))) - 3)

    model = create_model("vgg", 11, cfg=scale_cfg(default_cfg("vgg", 11), 0.125))
    method = Keep3()
    keep, pruned = method.prune_network(model, PruneContext(NoHparams()))
    assert keep == {0: [0, 1, 2]} and pruned.cfg[0] == 3


def test_options_with_a_typo_are_refused():
    with pytest.raises(TypeError, match="no option 'precent'"):
        hparams_of(get_method("cifar/weight-level").Hparams, precent=0.5)


def test_registering_needs_a_key_and_a_name():
    with pytest.raises(ValueError, match="needs a key"):
        @register_method
        class Nameless(ChannelMethod):
            pass


def test_calibration_loader_is_seeded_unaugmented_and_capped(data):
    """ctx.calibration_loader(n): n distinct training images chosen by the seed, the test-time transform (the
    same batches on every pass), all of the set (with a note) when n is larger."""
    from utils.data import dataset_info, load_dataset
    notes = []
    ctx = PruneContext(NoHparams(), dataset="cifar10", data=data, seed=3, log=notes.append)
    a, b = ctx.calibration_loader(10, batch_size=4), ctx.calibration_loader(10, batch_size=4)
    xa = torch.cat([x for x, _ in a])
    assert xa.shape == (10, 3, 32, 32) and torch.equal(xa, torch.cat([x for x, _ in b]))
    assert torch.equal(xa, torch.cat([x for x, _ in a]))  # no augmentation: every pass is the same
    other = torch.cat([x for x, _ in ctx.calibration_loader(10, batch_size=4, seed=4)])
    assert not torch.equal(xa, other)
    train, _ = load_dataset("cifar10", data)
    info = dataset_info("cifar10")
    pool = ((train.images.float() / 255 - torch.tensor(info.mean).view(1, 3, 1, 1))
            / torch.tensor(info.std).view(1, 3, 1, 1))
    matches = [(pool - img).abs().flatten(1).max(1).values.min().item() for img in xa]
    assert max(matches) < 1e-5  # each one a training image, normalised as at test time
    everything = ctx.calibration_loader(1000)
    assert len(everything.labels) == 100 and any("more than the 100 training images" in n for n in notes)
    from utils.errors import UserError
    with pytest.raises(UserError, match="--calib-images 0"):
        ctx.calibration_loader(0)
