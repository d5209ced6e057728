"""ThiNet as a method of this repository (cifar/thinet, utils/thinet.py's schedule): planted problems through the
whole prune step (a network, surgery, the consumer's rescaling), the layer choice, and bad input. The numerical
core (greedy, least squares, Gram statistics) has its own planted tests in test_thinet_core.py."""
import json

import pytest
import torch
import torch.nn as nn

from conftest import cifar_eval_loader, small_vgg16, stage, write_cifar
from models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "cifar/thinet"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("thinet_data"), n_train=120, n_test=40, seed=3)


vgg, loader_of = small_vgg16, cifar_eval_loader


def test_channels_the_next_layer_ignores_are_removed_and_outputs_do_not_change(data):
    """Planted: conv3's output channels {1, 4, 6} have all-zero weights in conv4 (their consumer). Pruning conv3
    to width - 3 removes exactly those, and the whole network's output stays the same (least squares keeps
    the others at scale 1)."""
    from utils.thinet import prune_layer_by_layer
    model = vgg().eval()
    groups = {g.name: g for g in model.channel_groups()}
    consumer = model.get_submodule(groups["conv3"].inp[0])
    planted = [1, 4, 6]
    with torch.no_grad():
        consumer.weight[:, planted] = 0
    width = model.cfg[groups["conv3"].cfg_index]
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
    pruned, keep, records = prune_layer_by_layer(model, ["conv3"], (width - 3) / width + 1e-9, loader_of(data),
                                                 samples_per_image=10, seed=1, log=lambda *a: None)
    assert sorted(set(range(width)) - set(keep[groups["conv3"].cfg_index])) == planted
    assert records[0]["error_before"] == pytest.approx(0, abs=1e-12)
    with torch.no_grad():
        after = pruned.eval()(x)
    assert torch.allclose(before, after, rtol=1e-5, atol=1e-6)
    assert pruned.cfg[groups["conv3"].cfg_index] == width - 3


def test_a_redundant_channel_goes_and_least_squares_restores_the_output(data):
    """Planted: in conv5's output, channel 7 duplicates channel 2 (same filter, same BN), so what conv6 reads
    from 7 it also reads from 2; with conv6's weights for 7 made small, ThiNet removes 7 and least squares folds
    its contribution into channel 2's weights: conv6's output is restored to within 1e-4 (relative)."""
    from utils.thinet import prune_layer_by_layer
    model = vgg(seed=1).eval()
    groups = {g.name: g for g in model.channel_groups()}
    g5 = groups["conv5"]
    conv, bn = model.get_submodule(g5.out[0]), model.get_submodule(g5.out[1])
    consumer_name = g5.inp[0]
    consumer = model.get_submodule(consumer_name)
    with torch.no_grad():
        conv.weight[7] = conv.weight[2]
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            t[7] = t[2]
        consumer.weight[:, 7] = 0.01 * consumer.weight[:, 2]  # the weakest contribution: the greedy's first pick
    width = model.cfg[g5.cfg_index]
    seen = {}

    def grab(name, store):
        def hook(module, inputs, output):
            store[name] = output.detach()
        return hook

    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    h = consumer.register_forward_hook(grab("before", seen))
    with torch.no_grad():
        model(x)
    h.remove()
    # channels this random network never activates contribute exactly 0: they go first, then the duplicate
    from utils.thinet import consumer_of, layer_gram
    gram = layer_gram(model, *consumer_of(model, g5), loader_of(data), 10, torch.Generator().manual_seed(1))
    dead = int((gram.A.diagonal() == 0).sum())
    removed = dead + 1
    pruned, keep, records = prune_layer_by_layer(model, ["conv5"], (width - removed) / width + 1e-9,
                                                 loader_of(data), samples_per_image=10, seed=1, log=lambda *a: None)
    assert 7 not in keep[g5.cfg_index] and 2 in keep[g5.cfg_index] and len(keep[g5.cfg_index]) == width - removed
    h = pruned.get_submodule(consumer_name).register_forward_hook(grab("after", seen))
    with torch.no_grad():
        pruned.eval()(x)
    h.remove()
    bias = pruned.get_submodule(consumer_name).bias
    assert bias is None
    diff = (seen["after"] - seen["before"]).norm() / seen["before"].norm()
    assert diff < 1e-4
    assert records[0]["error_after"] <= records[0]["error_before"]


def test_prune_script_writes_the_per_layer_record_and_keeps_the_paper_layers(data, tmp_path):
    from utils.checkpoint import save_checkpoint, spec_fields
    model = vgg(seed=2)
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, tmp_path / "base.pth.tar")
    record = stage(KEY, "prune", ["--model", tmp_path / "base.pth.tar", "--dataset", "cifar10", "--data", data,
                                  "--percent", "0.5", "--calib-images", "60", "--save", tmp_path / "p"],
                   log=lambda *a: None)
    base = model.cfg
    # the paper's rule: every conv before the last pooling halves, the last block (conv11-13) is untouched
    last_pool = max(i for i, v in enumerate(base) if v == "M")
    assert record["cfg"] == [v if v == "M" or i > last_pool else int(v * 0.5) for i, v in enumerate(base)]
    assert [r["layer"] for r in record["layer_records"]] == [f"conv{k}" for k in range(1, 11)]
    for r in record["layer_records"]:
        assert 0 <= r["error_after"] <= r["error_before"] + 1e-12 and r["samples"] == 60 * 10
        assert len(r["kept_channels"]) == r["kept"] == r["channels"] // 2
    on_disk = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert on_disk["layer_records"] == record["layer_records"] and on_disk["flops_pruned"] < on_disk["flops_base"]
    ckpt = torch.load(tmp_path / "p" / "pruned.pth.tar", weights_only=True)
    assert ckpt["cfg"] == record["cfg"] and ckpt["prune"]["method"] == "thinet"


def test_resnet_layers_are_block_first_convs_and_a_layer_choice(data, tmp_path):
    from utils.checkpoint import save_checkpoint, spec_fields
    torch.manual_seed(0)
    model = create_model("resnet", 20)
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, tmp_path / "r.pth.tar")
    record = stage(KEY, "prune", ["--model", tmp_path / "r.pth.tar", "--dataset", "cifar10", "--data", data,
                                  "--percent", "0.25", "--calib-images", "40", "--layers", "layer2.1.conv1",
                                  "layer1.0.conv1", "--save", tmp_path / "p"], log=lambda *a: None)
    assert [r["layer"] for r in record["layer_records"]] == ["layer1.0.conv1", "layer2.1.conv1"]  # from the input on
    assert record["cfg"] == [12, 16, 16, 32, 24, 32, 64, 64, 64]


@pytest.mark.parametrize("argv,needle", [
    (["--percent", "1"], "--percent 1"),
    (["--percent", "0"], "--percent 0"),
    (["--layers", "conv99"], "--layers conv99"),
    (["--calib-images", "0"], "--calib-images 0"),
])
def test_bad_input_is_one_error_and_writes_nothing(data, tmp_path, argv, needle):
    from utils.checkpoint import save_checkpoint, spec_fields
    from utils.errors import UserError
    model = vgg()
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, tmp_path / "b.pth.tar")
    with pytest.raises(UserError, match=needle):
        stage(KEY, "prune", ["--model", tmp_path / "b.pth.tar", "--dataset", "cifar10", "--data", data,
                             "--save", tmp_path / "p", *argv], log=lambda *a: None)
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())


def test_missing_calibration_data_and_another_architecture_are_refused(tmp_path):
    from utils.checkpoint import save_checkpoint, spec_fields
    from utils.errors import UserError
    model = vgg()
    save_checkpoint({**spec_fields(model, "cifar10"), "state_dict": model.state_dict()}, tmp_path / "b.pth.tar")
    with pytest.raises(UserError, match="--data"):
        stage(KEY, "prune", ["--model", tmp_path / "b.pth.tar", "--dataset", "cifar10", "--data",
                             tmp_path / "nowhere", "--save", tmp_path / "p"], log=lambda *a: None)
    dense = create_model("densenet", 40)
    save_checkpoint({**spec_fields(dense, "cifar10"), "state_dict": dense.state_dict()}, tmp_path / "d.pth.tar")
    with pytest.raises(UserError, match="d.pth.tar: thinet pruning is defined for"):
        stage(KEY, "prune", ["--model", tmp_path / "d.pth.tar", "--dataset", "cifar10", "--save", tmp_path / "q"],
              log=lambda *a: None)
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()


def test_fine_tuning_between_layers_runs_its_steps(data, tmp_path):
    """--ft-between-iters N: N SGD steps after each pruned layer (the weights move; the record still holds)."""
    from utils.engine import train_steps
    model = vgg(seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = loader_of(data, n=64, batch=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = train_steps(model, loader, 6, opt)
    assert loss > 0 and any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.get_submodule("feature.0"), nn.Conv2d)
