"""The published networks of the reference's ImageNet regression-pruning and SSS folders trained from scratch by
name: scratch-B epochs and LR steps as reference.md 5.5 gives them (regression: the cap rule, ResNet-2x 134 / 44,
VGG-5x 180 / 60; SSS: int(100 r) with drops every int(0.3 E): 117, 145, 179 epochs, the authors' table), SSS's
recipe (Nesterov, its augmentation), and a short run of each through scratch.py."""
import pytest

from conftest import stage, write_jpeg_tree
from utils.methods import StageContext, get_method

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ["--no-progress", "--no-tensorboard"]
NOLOG = (lambda *a, **k: None)  # noqa: E731


def budget(key, name):
    from utils.cli import args_for
    from utils.data import dataset_info
    from utils.stages import TrainArgs
    method = get_method(key)
    hp = method.ScratchHparams(model=name)
    ckpt, model = method.published_source(hp, dataset_info("imagenet"))
    train = args_for(TrainArgs, method, "scratch")
    ctx = StageContext("scratch-B", hp, None, train, dataset_info("imagenet"), model=model, source=ckpt,
                       source_path=f"published:{name}")
    epochs, record = method.scratch_budget(ctx, train.epochs)
    return epochs, train.schedule, record, train


@pytest.mark.parametrize("name,epochs,schedule", [("resnet-2x", 134, [44, 88, 132]), ("vgg-5x", 180, [60, 120])])
def test_regression_pruning_networks_get_the_cap_rule(name, epochs, schedule):
    got, sched, record, _ = budget("imagenet/regression-pruning", name)
    assert (got, sched) == (epochs, schedule)


@pytest.mark.parametrize("name,epochs,schedule", [("resnet-41", 117, [35, 70, 105]), ("resnet-32", 145, [43, 86, 129]),
                                                  ("resnet-26", 179, [53, 106, 159])])
def test_sss_networks_get_the_authors_scratch_b_table(name, epochs, schedule):
    got, sched, record, train = budget("imagenet/sparse-structure-selection", name)
    assert (got, sched) == (epochs, schedule)
    from utils.cli import args_for
    from utils.stages import ImageDataArgs
    data = args_for(ImageDataArgs, get_method("imagenet/sparse-structure-selection"), "scratch")
    assert train.nesterov and train.epochs == 100 and data.batch_size == 128 and data.augment == "sss"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"), classes=3, train_per_class=6, val_per_class=2)


@pytest.mark.parametrize("key,name", [("imagenet/regression-pruning", "resnet-2x"),
                                      ("imagenet/sparse-structure-selection", "resnet-26")])
def test_scratch_runs_a_published_network(tree, tmp_path, key, name):
    s = stage(key, "scratch", ["--data", tree, "--input-size", 32, "--workers", 0, "--model", name, "--epochs", 1,
                               "--batch-size", 6, "--test-batch-size", 6, "--save", tmp_path / "run"] + QUIET,
              log=NOLOG)
    assert s["source"] == f"published:{name}" and s["epochs"] == 1
    if key.endswith("selection"):
        assert s["args"]["augment"] == "sss" and s["args"]["nesterov"]
