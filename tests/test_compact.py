"""The compact form of channel-selection networks (utils/compact.py, prune.py --compact): each BatchNorm after
its selection and holding only the selected channels, a DenseNet's unread produced channels cut from the convs
that make them; the same function as the pruned network of the reference layout, in eval and in train mode."""
import json

import pytest
import torch
import torch.nn as nn

from conftest import ROOT, run, write_cifar

pytestmark = pytest.mark.usefixtures("one_thread")


def randomised(arch, depth, seed):
    """A network whose BNs have non-trivial statistics and affine parameters (so the gathers matter)."""
    from models import create_model
    torch.manual_seed(seed)
    model = create_model(arch, depth)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_()
                m.bias.normal_()
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    return model


def random_keep(model, seed, fraction):
    g = torch.Generator().manual_seed(seed)
    return {grp.cfg_index: sorted(torch.randperm(model.cfg[grp.cfg_index], generator=g)
                                  [:max(1, int(model.cfg[grp.cfg_index] * fraction))].tolist())
            for grp in model.channel_groups()}


CASES = [("preresnet", 20, 0.5), ("preresnet", 47, 0.3), ("densenet", 40, 0.4), ("densenet", 40, 0.05),
         ("densenet", 40, 0.0)]


@pytest.mark.parametrize("arch,depth,fraction", CASES)
def test_compact_network_computes_the_same_function(arch, depth, fraction):
    from models import build_from_spec
    from utils.flops import count_flops, count_params
    from utils.surgery import prune_channels
    model = randomised(arch, depth, seed=depth)
    pruned = prune_channels(model, random_keep(model, seed=7, fraction=fraction))
    small = pruned.compact_model()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for mode in ("eval", "train"):
        pruned.train(mode == "train")
        small.train(mode == "train")
        with torch.no_grad():
            assert torch.allclose(pruned(x), small(x), rtol=1e-5, atol=1e-5), mode
    # every BN now has as many channels as the selection in front of it passes on
    selections = [m for m in small.modules() if m.__class__.__name__ == "ChannelSelection"]
    assert selections and all(m.selected() == sorted(m.selected()) for m in selections)
    for name, m in small.named_modules():
        if hasattr(m, "select") and hasattr(m, "bn1"):
            assert m.bn1.num_features == len(m.select.selected()), name
    assert count_flops(small) < count_flops(pruned) and count_params(small) < count_params(pruned)
    # a spec + state_dict like every checkpoint: rebuilds and loads strictly
    again = build_from_spec(small.spec.to_dict())
    again.load_state_dict(small.state_dict())
    small.eval()
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    if arch == "densenet":
        # no produced channel is left that no selection reads
        read = 0
        for producers, readers in small._blocks():
            total = sum(w for _, w in producers)
            used = set()
            for unit in readers:
                sel = small._selection_of(unit)
                used.update(sel.selected() if sel is not None else ())
            empty_head = producers[0][1] == 1 and 0 not in used  # a conv keeps at least one channel
            assert len(used) == total - empty_head
            read += len(used)
        assert sum(small.produced) <= sum(pruned.produced)


@pytest.mark.parametrize("arch,depth", [("preresnet", 20), ("densenet", 40)])
def test_a_compact_network_prunes_again(arch, depth):
    from utils.surgery import prune_channels, zero_channels
    small = prune_channels(randomised(arch, depth, 3), random_keep(randomised(arch, depth, 3), 2, 0.5)).compact_model()
    keep = random_keep(small, 5, 0.5)
    again, masked = prune_channels(small, keep).eval(), zero_channels(small, keep).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(again(x), masked(x), rtol=1e-4, atol=1e-5)


def test_prune_compact_and_the_command_line(tmp_path):
    """prune.py --compact writes compact.pth.tar beside pruned.pth.tar and its costs into prune.json; the CLI
    compacts any checkpoint of such a network; a VGG (no selection) is refused in one line."""
    from utils.checkpoint import save_checkpoint, spec_fields
    data = write_cifar(tmp_path / "data", n_train=20, n_test=16, seed=1)
    model = randomised("preresnet", 20, 1)
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict(),
                     "args": {"sparsity_regularization": True}}, tmp_path / "sparse.pth.tar")
    slim = ROOT / "cifar" / "network-slimming"
    run([slim / "prune.py", "--model", tmp_path / "sparse.pth.tar", "--percent", "0.4", "--dataset", "cifar10",
         "--data", data, "--compact", "--save", tmp_path / "p"])
    record = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert record["flops_compact"] < record["flops_pruned"] and record["compact_max_rel_diff"] < 1e-4
    small = torch.load(tmp_path / "p" / "compact.pth.tar", weights_only=True)
    assert small["model"]["options"]["compact"] is True
    run(["-m", "utils.compact", "--model", tmp_path / "p" / "pruned.pth.tar", "--out", tmp_path / "c.pth.tar"])
    again = torch.load(tmp_path / "c.pth.tar", weights_only=True)
    assert all(torch.equal(again["state_dict"][k], v) for k, v in small["state_dict"].items())
    vgg = run([slim / "prune.py", "--model", tmp_path / "sparse.pth.tar", "--percent", "0.4", "--dataset", "cifar10",
               "--data", data, "--compact", "--arch", "vgg", "--save", tmp_path / "v"], check=False)
    assert vgg.returncode == 2 and "Traceback" not in vgg.stderr
    from models import create_model
    v = create_model("vgg_slim", 11)
    save_checkpoint({**spec_fields(v, "cifar10"), "state_dict": v.state_dict(),
                     "args": {"sparsity_regularization": True}}, tmp_path / "vgg.pth.tar")
    proc = run([slim / "prune.py", "--model", tmp_path / "vgg.pth.tar", "--percent", "0.4", "--dataset", "cifar10",
                "--data", data, "--compact", "--save", tmp_path / "v2"], check=False)
    lines = [line for line in proc.stderr.splitlines() if ": warning: " not in line]
    assert proc.returncode == 2 and len(lines) == 1 and "--compact" in lines[0], proc.stderr
    assert not (tmp_path / "v2" / "pruned.pth.tar").exists()


@pytest.mark.parametrize("folder,offered", [("cifar/network-slimming", True), ("cifar/l1-norm-pruning", False),
                                            ("cifar/thinet", False), ("imagenet/network-slimming", False)])
def test_compact_is_offered_only_where_a_network_has_channel_selections(folder, offered):
    """prune.py offers --compact where one of the method's architectures has selection layers (PreResNet,
    DenseNet); elsewhere the flag is unknown (argparse's one-line error), not a flag that can only be refused."""
    proc = run([ROOT / folder / "prune.py", "--help"])
    assert ("--compact" in proc.stdout) == offered
    if not offered:
        bad = run([ROOT / folder / "prune.py", "--compact"], check=False)
        assert bad.returncode == 2 and "unrecognized arguments: --compact" in bad.stderr, bad.stderr


def test_the_registry_marks_exactly_the_networks_that_can_be_compacted():
    """ModelEntry.selection (what decides whether prune.py offers --compact) says what the built network has."""
    from models import create_model
    from models.registry import list_models, model_entry
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name, depth=entry.default_depth, image_size=32)
        assert entry.selection == hasattr(model, "compact_model"), name
