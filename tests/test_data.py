"""Datasets and the device-resident loader: augmentation fidelity against independently built crops,
normalisation constants, determinism, DDP sharding and the dataset lookup/error paths."""
import gzip
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from conftest import FASHION_MNIST, HAVE_FASHION_MNIST, write_cifar
from utils.data import DeviceLoader, TensorDataset, dataset_info, load_dataset, subset
from utils.errors import UserError

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


# ------------------------------------------------------------------------------------------ helpers
def _load_fixture(directory, name="cifar10"):
    with pytest.warns(UserWarning, match="checksums differ"):
        return load_dataset(name, directory)


@pytest.fixture(scope="module")
def cifar_data(cifar_dir):
    return _load_fixture(cifar_dir)


def _random_gray(n=500, seed=3):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.randint(0, 10, (n,), generator=g))


def _np_normalise(x_uint8, mean, std):
    """ToTensor + Normalize in numpy float32: x / 255, - mean, / std (per channel)."""
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (x_uint8.astype(np.float32) / np.float32(255) - m) / s


def _np_crop(img, oy, ox, flip, pad=4):
    """Zero-pad a C x H x W uint8 image by ``pad``, crop H x W at (oy, ox), mirror if ``flip`` (numpy)."""
    _, h, w = img.shape
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)))
    out = padded[:, oy:oy + h, ox:ox + w]
    return out[:, :, ::-1] if flip else out


def _pil_reference(img, oy, ox, flip, mean, std):
    """The reference pipeline's transforms on a PIL image with the crop/flip choices fixed."""
    arr = img.permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    pil = T.Pad(4)(pil)
    pil = TF.crop(pil, oy, ox, img.shape[1], img.shape[2])
    if flip:
        pil = TF.hflip(pil)
    return T.Normalize(mean, std)(T.ToTensor()(pil))


def _all_crops(img, mean, std):
    """Every (oy, ox, flip) -> normalised crop of one source image: the 162 candidates."""
    return {(oy, ox, f): _np_normalise(np.ascontiguousarray(_np_crop(img, oy, ox, f)), mean, std)
            for oy in range(9) for ox in range(9) for f in (False, True)}


def _check_epochs(data, mean, std, epochs=(0, 1, 2, 3), batch=64):
    """Every yielded image is the crop at epoch_plan's offsets of its source; returns the offset counts."""
    loader = DeviceLoader(data, batch, train=True, mean=mean, std=std, seed=7)
    images = data.images.numpy()
    counts = np.zeros((9, 9), dtype=np.int64)
    flips_seen = 0
    total = 0
    pad_value = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(-1, 1, 1)
    c, h, w = images.shape[1:]
    for epoch in epochs:
        perm, oy, ox, flips = loader.epoch_plan(epoch)
        pos = 0
        for x, y, idx in loader.batches(epoch, with_indices=True):
            assert x.dtype == torch.float32 and x.shape[1:] == (c, h, w)
            assert torch.equal(idx, perm[pos:pos + len(idx)])
            assert torch.equal(y, data.labels[idx])
            for k in range(len(idx)):
                i, a, b, f = int(idx[k]), int(oy[pos + k]), int(ox[pos + k]), bool(flips[pos + k])
                want = _np_normalise(np.ascontiguousarray(_np_crop(images[i], a, b, f)), mean, std)
                np.testing.assert_allclose(x[k].numpy(), want, rtol=0, atol=1e-6)
                # the padded border (black before normalisation) is exactly -mean/std
                mask = _np_crop(np.zeros((1, h, w), np.uint8) + 1, a, b, f)[0] == 0
                if mask.any():
                    got = x[k].numpy()[:, mask]
                    np.testing.assert_allclose(got, np.broadcast_to(pad_value[:, :, 0], got.shape), atol=1e-6)
                counts[a, b] += 1
                flips_seen += f
            pos += len(idx)
            total += len(idx)
        assert pos == len(data.labels)
    return counts, flips_seen / total


# ----------------------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("kind", ["cifar", "gray28"])
def test_training_crops_are_padded_crops_of_the_source(kind, cifar_data):
    if kind == "cifar":
        data, mean, std = cifar_data[0], CIFAR_MEAN, CIFAR_STD
    else:
        data, mean, std = _random_gray(), dataset_info("fashionmnist").mean, dataset_info("fashionmnist").std
    counts, flip_rate = _check_epochs(data, mean, std)
    n = counts.sum()
    assert n == 4 * len(data.labels)
    assert (counts > 0).all(), f"offsets never drawn:\n{counts}"
    expected = n / 81
    # uniform over the 9 x 9 offsets: no cell far from n/81, rows and columns balanced (about 4.5 sd)
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected), counts
    for marginal in (counts.sum(0), counts.sum(1)):
        assert np.abs(marginal - n / 9).max() < 5 * np.sqrt(n / 9), marginal
    assert 0.45 < flip_rate < 0.55


@pytest.mark.parametrize("kind", ["cifar", "gray28"])
def test_first_batch_matches_one_of_162_candidates_and_the_pil_pipeline(kind, cifar_data):
    """Without trusting epoch_plan: each image equals exactly one of the 81 crops x 2 flips of its source,
    and the PIL reference transforms at those choices give the same tensor."""
    if kind == "cifar":
        data, mean, std = cifar_data[0], CIFAR_MEAN, CIFAR_STD
    else:
        data, mean, std = _random_gray(), dataset_info("fashionmnist").mean, dataset_info("fashionmnist").std
    loader = DeviceLoader(data, 32, train=True, mean=mean, std=std, seed=11)
    x, _, idx = next(loader.batches(0, with_indices=True))
    seen_flip = set()
    for k in range(len(idx)):
        src = data.images[int(idx[k])]
        cands = _all_crops(src.numpy(), mean, std)
        hits = [key for key, c in cands.items() if np.allclose(c, x[k].numpy(), rtol=0, atol=1e-6)]
        assert len(hits) == 1, f"image {k}: matches {hits}"
        oy, ox, f = hits[0]
        seen_flip.add(f)
        ref = _pil_reference(src, oy, ox, f, mean, std)
        torch.testing.assert_close(x[k], ref, rtol=0, atol=1e-6)
    assert seen_flip == {False, True}


def test_augment_agrees_with_torchvision_crop_and_flip(cifar_data):
    data = cifar_data[0]
    loader = DeviceLoader(data, 64, train=True, mean=CIFAR_MEAN, std=CIFAR_STD)
    idx = torch.arange(40)
    oy = torch.arange(40) % 9
    ox = (torch.arange(40) * 4) % 9
    flips = torch.arange(40) % 3 == 0
    out = loader.augment(idx, oy, ox, flips)
    assert out.dtype == torch.uint8 and out.shape == (40, 3, 32, 32)
    for k in range(40):
        want = TF.crop(TF.pad(data.images[k], [4], fill=0), int(oy[k]), int(ox[k]), 32, 32)
        if flips[k]:
            want = TF.hflip(want)
        assert torch.equal(out[k], want), k


@pytest.mark.parametrize("kind", ["cifar", "gray28"])
def test_eval_batches_are_unaugmented_normalised_in_order(kind, cifar_data):
    if kind == "cifar":
        data, mean, std = cifar_data[1], CIFAR_MEAN, CIFAR_STD
    else:
        data, mean, std = _random_gray(200), dataset_info("fashionmnist").mean, dataset_info("fashionmnist").std
    loader = DeviceLoader(data, 64, train=False, mean=mean, std=std)
    xs, ys = zip(*loader)
    assert [len(y) for y in ys] == [64, 64, 64, 8] and len(loader) == 4
    x, y = torch.cat(xs), torch.cat(ys)
    np.testing.assert_allclose(x.numpy(), _np_normalise(data.images.numpy(), mean, std), rtol=0, atol=1e-6)
    assert torch.equal(y, data.labels)
    # the same twice (no randomness at test time)
    assert torch.equal(torch.cat([b[0] for b in loader.batches(5)]), x)


def test_normalisation_constants_are_the_references():
    for name in ("cifar10", "cifar100"):
        info = dataset_info(name)
        assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2023, 0.1994, 0.2010), name
        assert (info.in_channels, info.image_size) == (3, 32)
    assert dataset_info("cifar10").num_classes == 10 and dataset_info("cifar100").num_classes == 100
    fm = dataset_info("fashionmnist")
    assert (fm.in_channels, fm.image_size, fm.num_classes, len(fm.mean), len(fm.std)) == (1, 28, 10, 1, 1)
    inet = dataset_info("imagenet")  # reference.md 1.2
    assert (inet.mean, inet.std, inet.image_size, inet.num_classes) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                                                        224, 1000)
    with pytest.raises(UserError, match="svhn"):
        dataset_info("svhn")


def test_channels_last_keeps_values(cifar_data):
    a = DeviceLoader(cifar_data[0], 64, train=True, mean=CIFAR_MEAN, std=CIFAR_STD, seed=2)
    b = DeviceLoader(cifar_data[0], 64, train=True, mean=CIFAR_MEAN, std=CIFAR_STD, seed=2, channels_last=True)
    xa, xb = next(iter(a))[0], next(iter(b))[0]
    assert xb.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(xa, xb)


# ------------------------------------------------------------------------------ order and epochs
def _epoch(loader, epoch):
    xs, ys, idxs = zip(*loader.batches(epoch, with_indices=True))
    return xs, ys, idxs


def test_order_and_augmentation_are_a_function_of_seed_and_epoch(cifar_data):
    data = cifar_data[0]
    make = lambda seed: DeviceLoader(data, 64, train=True, mean=CIFAR_MEAN, std=CIFAR_STD, seed=seed)
    a, b = make(5), make(5)
    b_first = _epoch(b, 3)  # b has run another epoch before: irrelevant
    a.set_epoch(3)
    xs, ys, idxs = zip(*[(x, y, i) for x, y, i in a.batches(with_indices=True)])
    xs2, ys2, idxs2 = b_first
    assert all(torch.equal(p, q) for p, q in zip(xs, xs2))
    assert all(torch.equal(p, q) for p, q in zip(idxs, idxs2))
    # iterating the loader uses set_epoch's epoch
    assert all(torch.equal(p, q) for p, (q, _) in zip(xs, a))
    order3 = torch.cat(idxs)
    order4 = torch.cat(_epoch(a, 4)[2])
    assert not torch.equal(order3, order4)
    assert not torch.equal(order3, torch.cat(_epoch(make(6), 3)[2]))
    # same order, different augmentation would also be a bug: the plan changes with the epoch
    plan3, plan4 = a.epoch_plan(3), a.epoch_plan(4)
    assert not torch.equal(plan3[1], plan4[1]) and not torch.equal(plan3[3], plan4[3])


def test_last_partial_batch_is_kept_and_each_image_appears_once(cifar_data):
    data = cifar_data[0]
    assert len(data.labels) == 500
    loader = DeviceLoader(data, 64, train=True, mean=CIFAR_MEAN, std=CIFAR_STD, seed=1)
    assert len(loader) == 8
    for epoch in (0, 1):
        _, ys, idxs = _epoch(loader, epoch)
        assert [len(i) for i in idxs] == [64] * 7 + [52]
        assert torch.equal(torch.sort(torch.cat(idxs)).values, torch.arange(500))
        assert not torch.equal(torch.cat(idxs), torch.arange(500))  # shuffled


def test_subset_takes_the_first_n(cifar_data):
    data = cifar_data[0]
    s = subset(data, 100)
    assert torch.equal(s.images, data.images[:100]) and torch.equal(s.labels, data.labels[:100])
    assert subset(data, 0) is data and subset(data, 10_000) is data


# ------------------------------------------------------------------------------------ DDP sharding
def test_ddp_train_shards_concatenate_to_the_single_process_batch(cifar_data):
    data = cifar_data[0]
    kw = dict(train=True, mean=CIFAR_MEAN, std=CIFAR_STD, seed=9)
    single = DeviceLoader(data, 64, **kw)
    ranks = [DeviceLoader(data, 64, rank=r, world_size=2, **kw) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 8
    for epoch in (0, 1):
        whole = list(single.batches(epoch, with_indices=True))
        parts = [list(r.batches(epoch, with_indices=True)) for r in ranks]
        assert len(parts[0]) == len(parts[1]) == len(whole)
        for (x, y, i), p0, p1 in zip(whole, *parts):
            assert len(p0[2]) == len(p1[2]) == len(i) // 2
            for k in range(3):
                assert torch.equal(torch.cat([p0[k], p1[k]]), (x, y, i)[k])


def test_ddp_eval_shards_partition_the_test_set(cifar_data):
    data = cifar_data[1]  # 200 images
    for world in (2, 3):
        loaders = [DeviceLoader(data, 64, train=False, mean=CIFAR_MEAN, std=CIFAR_STD, rank=r, world_size=world)
                   for r in range(world)]
        idx = torch.cat([i for ld in loaders for _, _, i in ld.batches(with_indices=True)])
        assert torch.equal(idx, torch.arange(200))
        xs = torch.cat([x for ld in loaders for x, _ in ld])
        np.testing.assert_allclose(xs.numpy(), _np_normalise(data.images.numpy(), CIFAR_MEAN, CIFAR_STD), atol=1e-6)
        assert sum(len(ld) for ld in loaders) >= 4


# ------------------------------------------------------------------------------------- data lookup
def _pickle_images(folder, fname):
    with open(os.path.join(folder, fname), "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    return np.asarray(entry["data"]).reshape(-1, 3, 32, 32), entry.get("labels", entry.get("fine_labels"))


def test_cifar_fixture_loads_in_the_official_layout(cifar_dir, cifar_data):
    train, test = cifar_data
    assert train.images.shape == (500, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (200, 3, 32, 32) and test.labels.dtype == torch.int64
    folder = os.path.join(cifar_dir, "cifar-10-batches-py")
    parts = [_pickle_images(folder, f"data_batch_{i}") for i in range(1, 6)]
    assert np.array_equal(train.images.numpy(), np.concatenate([p[0] for p in parts]))
    assert train.labels.tolist() == sum((p[1] for p in parts), [])
    img, lab = _pickle_images(folder, "test_batch")
    assert np.array_equal(test.images.numpy(), img) and test.labels.tolist() == lab
    # pointing at the batches folder itself works as well, and warns again
    train2, _ = _load_fixture(folder)
    assert torch.equal(train2.images, train.images)


def test_cifar100_fixture_loads_100_classes(tmp_path):
    root = write_cifar(tmp_path, "cifar100", n_train=600, n_test=100)
    train, test = _load_fixture(root, "cifar100")
    assert train.images.shape == (600, 3, 32, 32) and test.images.shape == (100, 3, 32, 32)
    assert 10 <= int(train.labels.max()) < 100 and int(train.labels.min()) >= 0
    assert len(set(train.labels.tolist())) > 50
    with pytest.raises(UserError, match="cifar10"):  # a CIFAR-100 folder is not CIFAR-10
        load_dataset("cifar10", root)


def test_missing_data_dir_is_a_one_line_user_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", str(missing))
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg
    assert "--data" in msg and "cifar-10-batches-py" in msg


def test_incomplete_folder_is_a_user_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(UserError, match="data_batch_2") as err:
        load_dataset("cifar10", str(tmp_path))
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_content"])
def test_corrupt_pickle_is_a_user_error_naming_the_folder(tmp_path, cifar_dir, damage):
    root = tmp_path / "copy"
    shutil.copytree(cifar_dir, root)
    target = root / "cifar-10-batches-py" / "data_batch_3"
    if damage == "garbage":
        target.write_bytes(b"this is not a pickle" * 10)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:1000])
    else:
        with open(target, "wb") as f:
            pickle.dump({"something": [1, 2, 3]}, f)
    with pytest.raises(UserError) as err, pytest.warns(UserWarning):
        load_dataset("cifar10", str(root))
    msg = str(err.value)
    assert str(root / "cifar-10-batches-py") in msg and "data_batch_3" in msg and "\n" not in msg


def test_no_data_anywhere_lists_the_places_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        load_dataset("cifar10")
    msg = str(err.value)
    assert "./data" in msg and "download" in msg and "--data" in msg and "\n" not in msg
    assert not (tmp_path / "data").exists()  # no empty folder left behind by the failed download


def test_default_lookup_uses_dot_data(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data", n_train=50, n_test=20)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="checksums differ"):
        train, test = load_dataset("cifar10")
    assert len(train.labels) == 50 and len(test.labels) == 20


@pytest.fixture(scope="module")
def fashion_system():
    if not HAVE_FASHION_MNIST:
        pytest.skip("Debian's Fashion-MNIST is not installed")
    return load_dataset("fashionmnist", FASHION_MNIST)


def test_fashion_mnist_from_the_system_folder(fashion_system, tmp_path, monkeypatch):
    train, test = fashion_system
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10)) == set(test.labels.tolist())
    assert (train.labels.bincount() == 6000).all()  # the real set is balanced
    assert 60 < train.images.float().mean() < 80  # mean pixel about 0.286 * 255
    # with no --data and no ./data the lookup falls back to the system folder
    monkeypatch.chdir(tmp_path)
    t2, _ = load_dataset("fashionmnist")
    assert torch.equal(t2.labels, train.labels)


@pytest.mark.parametrize("compressed", [True, False])
def test_fashion_mnist_from_a_data_folder(fashion_system, tmp_path, compressed):
    for stem in FMNIST_FILES:
        src = os.path.join(FASHION_MNIST, stem + ".gz")
        if compressed:
            shutil.copy(src, tmp_path / (stem + ".gz"))
        else:
            with gzip.open(src, "rb") as f:
                (tmp_path / stem).write_bytes(f.read())
    train, test = load_dataset("fashionmnist", str(tmp_path))
    assert torch.equal(train.images, fashion_system[0].images) and torch.equal(test.labels, fashion_system[1].labels)


@pytest.mark.parametrize("how", ["truncated_raw", "truncated_gz", "bad_magic"])
def test_damaged_idx_file_is_a_user_error(tmp_path, how):
    rng = np.random.default_rng(0)

    def idx(arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return header + arr.astype(np.uint8).tobytes()

    files = {"train-images-idx3-ubyte": idx(rng.integers(0, 256, (30, 28, 28))),
             "train-labels-idx1-ubyte": idx(rng.integers(0, 10, 30)),
             "t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (10, 28, 28))),
             "t10k-labels-idx1-ubyte": idx(rng.integers(0, 10, 10))}
    for stem, raw in files.items():
        (tmp_path / stem).write_bytes(raw)
    train, _ = load_dataset("fashionmnist", str(tmp_path))  # the intact set loads
    assert train.images.shape == (30, 1, 28, 28)
    victim = tmp_path / "train-images-idx3-ubyte"
    raw = files["train-images-idx3-ubyte"]
    if how == "truncated_raw":
        victim.write_bytes(raw[:5000])
    elif how == "truncated_gz":
        victim.unlink()
        victim = tmp_path / "train-images-idx3-ubyte.gz"
        victim.write_bytes(gzip.compress(raw)[:3000])
    else:
        victim.write_bytes(b"\x00\x00\x09\x03" + raw[4:])
    with pytest.raises(UserError) as err:
        load_dataset("fashionmnist", str(tmp_path))
    assert str(victim) in str(err.value) and "\n" not in str(err.value)
    if how == "truncated_raw":
        assert "truncated" in str(err.value)


def test_one_image_tail_is_left_out_with_a_warning():
    """65 images in batches of 64 would end with a 1-image batch, on which BatchNorm1d cannot train."""
    import warnings as _w
    from utils.data import DeviceLoader, TensorDataset
    data = TensorDataset(torch.zeros(65, 3, 8, 8, dtype=torch.uint8), torch.zeros(65, dtype=torch.long))
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        loader = DeviceLoader(data, 64, train=True, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert any("last batch of 1" in str(c.message) for c in caught)
    sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [64] and len(loader) == 1
    # a tail of 2 or more is kept, as the reference keeps its last batch of 16
    data = TensorDataset(torch.zeros(66, 3, 8, 8, dtype=torch.uint8), torch.zeros(66, dtype=torch.long))
    assert [x.shape[0] for x, _ in DeviceLoader(data, 64, train=True, mean=(0.5,) * 3, std=(0.5,) * 3)] == [64, 2]
