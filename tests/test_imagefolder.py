"""The ImageFolder (ImageNet) loaders on generated JPEG trees: the reference pipeline equals torchvision's, the fast
path draws crops from torchvision's distribution, both are a function of (seed, epoch, image) only (workers, ranks),
and bad trees are one-line errors."""
import math

import pytest
import torch

from conftest import write_jpeg_tree
from utils.errors import UserError
from utils.imagefolder import (IMAGENET_MEAN, IMAGENET_STD, FolderLoader, _generator, crop_params, read_folder,
                               resize_size)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpeg"))


def loader(ds, train, mode="reference", size=32, batch=4, workers=0, **kw):
    return FolderLoader(ds, batch, train=train, mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size, seed=3,
                        workers=workers, mode=mode, **kw)


def batches(ld, epoch=0):
    ld.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in ld]


def test_scan_labels_classes_sorted_and_val_uses_trains_classes(tree):
    train, val = read_folder(tree)
    assert train.classes == val.classes == ["n00000000", "n00000001", "n00000002"]
    assert len(train) == 18 and len(val) == 6
    assert train.labels.tolist() == sorted(train.labels.tolist()) and set(val.labels.tolist()) == {0, 1, 2}


def test_reference_eval_batches_equal_torchvision_imagefolder(tree):
    from torchvision import datasets, transforms as T
    _, val = read_folder(tree)
    tv = datasets.ImageFolder(f"{tree}/val", T.Compose([T.Resize(resize_size(32)), T.CenterCrop(32), T.ToTensor(),
                                                         T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]))
    expected = torch.stack([tv[i][0] for i in range(len(tv))])
    got = torch.cat([x for x, _ in loader(val, train=False, batch=4)])
    labels = torch.cat([y for _, y in loader(val, train=False, batch=4)])
    assert got.shape == (6, 3, 32, 32) and got.dtype == torch.float32
    assert torch.equal(got, expected)
    assert labels.tolist() == [tv[i][1] for i in range(len(tv))]


def test_resize_keeps_the_reference_proportion():
    assert resize_size(224) == 256 and resize_size(64) == 73


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_training_batches_are_a_function_of_seed_epoch_and_image(tree, mode):
    train, _ = read_folder(tree)
    one = batches(loader(train, True, mode), 0)
    assert [x.shape for x, _ in one] == [(4, 3, 32, 32)] * 4 + [(2, 3, 32, 32)]
    assert torch.equal(torch.cat([y for _, y in one]).sort().values, train.labels.sort().values)  # every image once
    again = batches(loader(train, True, mode, workers=2), 0)  # worker processes draw the same crops
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(one, again))
    later = batches(loader(train, True, mode), 1)
    assert not torch.equal(torch.cat([x for x, _ in one]), torch.cat([x for x, _ in later]))
    # two ranks: each global batch is split, the union is the single-process batch
    ranks = [batches(loader(train, True, mode, rank=r, world_size=2), 0) for r in (0, 1)]
    for single, r0, r1 in zip(one, *ranks):
        assert torch.equal(single[0], torch.cat([r0[0], r1[0]])) and torch.equal(single[1], torch.cat([r0[1], r1[1]]))


def test_fast_path_matches_the_reference_pipeline_closely(tree):
    """Same crops and flips drawn; the decoders (libjpeg-turbo vs PIL) and resizers differ in rounding only."""
    _, val = read_folder(tree)
    ref = torch.cat([x for x, _ in loader(val, False, "reference")])
    fast = torch.cat([x for x, _ in loader(val, False, "fast")])
    diff = (ref - fast).abs() * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255  # in pixel levels
    assert diff.mean() < 2.0, diff.mean()


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = torch.cat([a, b]).sort().values
    cdf = lambda s: torch.searchsorted(s.sort().values, grid, right=True).double() / s.numel()  # noqa: E731
    return float((cdf(a) - cdf(b)).abs().max())


@pytest.mark.parametrize("height,width", [(375, 500), (500, 333), (64, 300)])
def test_crop_distribution_equals_torchvisions(height, width):
    from torchvision.transforms import RandomResizedCrop
    n = 4000
    img = torch.zeros(1, height, width)
    ours, theirs = [], []
    torch.manual_seed(0)
    for i in range(n):
        ours.append(crop_params(height, width, _generator(1, 0, i)))
        theirs.append(RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3)))
    stats = {}
    for name, crops in (("ours", ours), ("torchvision", theirs)):
        t = torch.tensor(crops, dtype=torch.float64)
        top, left, h, w = t.unbind(1)
        assert bool(((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)).all())
        stats[name] = dict(scale=h * w / (height * width), log_ratio=torch.log(w / h),
                           centre_y=(top + h / 2) / height, centre_x=(left + w / 2) / width)
    bound = 1.95 * math.sqrt(2 / n) * 1.2  # KS critical value at alpha = 0.001, with a margin
    for key in stats["ours"]:
        assert _ks(stats["ours"][key], stats["torchvision"][key]) < bound, key


def test_reference_training_crops_use_torchvisions_transforms(tree):
    """The reference path is torchvision's RandomResizedCrop + flip on the PIL image, seeded per image."""
    from torchvision.datasets.folder import pil_loader
    from torchvision.transforms import v2
    train, _ = read_folder(tree)
    ld = loader(train, True, "reference", batch=18)
    ld.set_epoch(2)
    x, y = next(iter(ld))
    order = torch.randperm(18, generator=torch.Generator().manual_seed(3 * 1_000_003 + 2)).tolist()
    t = v2.Compose([v2.RandomResizedCrop(32), v2.RandomHorizontalFlip(), v2.PILToTensor()])
    for pos in (0, 7, 17):
        index = order[pos]
        torch.manual_seed(_generator(3, 2, index).initial_seed())
        expected = (t(pil_loader(train.paths[index])).float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) \
            / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        assert torch.allclose(x[pos], expected, atol=1e-6) and int(y[pos]) == int(train.labels[index])


def test_sss_augmentation_changes_colour_and_uses_its_normalisation(tree):
    from utils.data import make_loader, dataset_info
    from types import SimpleNamespace
    train, _ = read_folder(tree)
    opts = SimpleNamespace(input_size=32, workers=0, loader="reference", augment="sss")
    ld = make_loader(train, 6, train=True, info=dataset_info("imagenet"), folder=opts)
    assert torch.allclose(ld.mean.flatten(), torch.tensor([123.68, 116.28, 103.53]) / 255)
    plain = make_loader(train, 6, train=True, info=dataset_info("imagenet"),
                        folder=SimpleNamespace(input_size=32, workers=0, loader="reference", augment="reference"))
    assert not torch.allclose(next(iter(ld))[0], next(iter(plain))[0])


# ---------------------------------------------------------------------------------------------- bad trees
def test_bad_trees_are_one_line_errors(tmp_path):
    root = write_jpeg_tree(tmp_path / "t", classes=2, train_per_class=2, val_per_class=1)
    import shutil
    shutil.rmtree(f"{root}/val")
    with pytest.raises(UserError, match="no val/ folder"):
        read_folder(root)
    root = write_jpeg_tree(tmp_path / "e", classes=2, train_per_class=2, val_per_class=1)
    (tmp_path / "e" / "train" / "n00000009").mkdir()
    with pytest.raises(UserError, match="'n00000009' holds no image"):
        read_folder(root)
    root = write_jpeg_tree(tmp_path / "x", classes=2, train_per_class=2, val_per_class=1)
    (tmp_path / "x" / "val" / "extra").mkdir()
    with pytest.raises(UserError, match="'extra' that train/ lacks"):
        read_folder(root)


@pytest.mark.parametrize("mode", ["reference", "fast"])
@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_jpeg_names_the_file(tmp_path, mode, workers):
    root = write_jpeg_tree(tmp_path / "c", classes=2, train_per_class=3, val_per_class=1)
    bad = tmp_path / "c" / "train" / "n00000001" / "img1.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated in the middle of the entropy-coded data
    train, _ = read_folder(root)
    with pytest.raises(UserError, match=r"^\S+img1\.JPEG: cannot decode image") as info:
        for _ in loader(train, True, mode, workers=workers):
            pass
    assert "\n" not in str(info.value)  # one line, without the worker's traceback


@pytest.mark.parametrize("mode", ["reference", "fast"])
def test_a_png_named_jpeg_and_a_grey_image_decode_as_rgb(tmp_path, mode):
    """ImageNet's training set holds a PNG saved as .JPEG and greyscale JPEGs: both must come out as 3 channels."""
    from torchvision.io import encode_jpeg, encode_png
    root = write_jpeg_tree(tmp_path / "p", classes=2, train_per_class=2, val_per_class=1)
    img = torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8)
    (tmp_path / "p" / "train" / "n00000000" / "png.JPEG").write_bytes(encode_png(img).numpy().tobytes())
    grey = torch.randint(0, 255, (1, 40, 50), dtype=torch.uint8)
    (tmp_path / "p" / "train" / "n00000001" / "grey.JPEG").write_bytes(encode_jpeg(grey).numpy().tobytes())
    train, _ = read_folder(root)
    x = torch.cat([b for b, _ in loader(train, True, mode, batch=3)])
    assert x.shape == (6, 3, 32, 32) and torch.isfinite(x).all()
