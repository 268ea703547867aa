"""Tests of sparsity_lib.data: synthetic shapes, on-disk formats (tiny stand-ins), loaders."""
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import datasets

from sparsity_lib.data.datasets import load_dataset, resolve_dataset
from sparsity_lib.data.images import DatasetError, ImageData
from sparsity_lib.data.loaders import GpuLoader, make_loader

# ----------------------------------------------------------------------------------------------
# Synthetic shapes


def test_synthetic_shapes_dtypes_and_sizes():
    data = load_dataset("synthetic", split="test", image_size=16, subset=300, num_classes=30)
    assert isinstance(data, ImageData)
    assert data.images.shape == (300, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.shape == (300,) and data.labels.dtype == torch.int64
    assert data.num_classes == 30 and len(set(data.classes)) == 30
    assert data.image_size == 16 and len(data) == 300 and data.name == "synthetic"
    assert int(data.labels.min()) >= 0 and int(data.labels.max()) < 30


def test_synthetic_default_size_is_like_cifar():
    data = load_dataset("synthetic", split="test", image_size=8)
    assert len(data) == 10_000 and data.image_size == 8


def test_synthetic_is_deterministic_and_seeded_per_split():
    first = load_dataset("synthetic", split="train", image_size=16, subset=200)
    again = load_dataset("synthetic", split="train", image_size=16, subset=200)
    other_seed = load_dataset("synthetic", split="train", image_size=16, subset=200, seed=1)
    test = load_dataset("synthetic", split="test", image_size=16, subset=200)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other_seed.images)
    assert not torch.equal(first.images, test.images)


def test_synthetic_subset_is_a_prefix():
    small = load_dataset("synthetic", image_size=16, subset=700)
    large = load_dataset("synthetic", image_size=16, subset=2500)
    assert torch.equal(small.images, large.images[:700]) and torch.equal(small.labels, large.labels[:700])


def test_stream_epoch_zero_is_the_fixed_set_and_later_epochs_are_fresh():
    fixed = load_dataset("synthetic", split="train", image_size=16, subset=1500)
    stream = load_dataset("synthetic", split="train", image_size=16, subset=1500, stream=True)
    assert torch.equal(stream.images, fixed.images) and torch.equal(stream.labels, fixed.labels)
    first, again = stream.redraw(1), stream.redraw(1)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])  # a pure function of the epoch
    assert first[0].shape == fixed.images.shape and first[1].shape == fixed.labels.shape
    # epoch 1 starts after the two chunks epoch 0 used: no image of epoch 0 comes back
    flat0, flat1 = fixed.images.flatten(1), first[0].flatten(1)
    assert not (flat1[:, None, :] == flat0[None, :100, :]).all(2).any()
    assert fixed.redraw is None


def test_stream_is_for_synthetic_training_data_only():
    with pytest.raises(ValueError, match="split='train' only"):
        load_dataset("synthetic", split="test", image_size=16, subset=100, stream=True)
    with pytest.raises(ValueError, match="name='synthetic' only"):
        load_dataset("cifar10", root="nowhere", split="train", stream=True)


def test_training_loader_redraws_a_stream_each_epoch_and_eval_loader_does_not():
    stream = load_dataset("synthetic", split="train", image_size=16, subset=100, stream=True)
    train, evaluation = (GpuLoader(stream, 100, train=flag) for flag in (True, False))
    train.set_epoch(2)
    evaluation.set_epoch(2)
    assert torch.equal(train.labels, stream.redraw(2)[1]) and not torch.equal(train.images, stream.images)
    assert torch.equal(evaluation.images, stream.images)
    train.set_epoch(0)
    assert torch.equal(train.images, stream.images)


def test_synthetic_labels_are_balanced():
    counts = torch.bincount(load_dataset("synthetic", image_size=8, subset=2000).labels, minlength=10)
    assert counts.min() >= 180 and counts.max() <= 220


def _total_variation(images: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours, in 0..255 units."""
    x = images.float()
    return float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_clutter_makes_the_background_busier():
    variation = [_total_variation(load_dataset("synthetic", image_size=32, subset=300, clutter=c).images)
                 for c in (0.0, 0.5, 1.0)]
    assert variation[0] < variation[1] < variation[2]
    clean = load_dataset("synthetic", image_size=32, subset=300).images.float()
    # a clean background is flat: the corner pixel of most images equals its neighbours
    corner = clean[:, :, :2, :2].flatten(2)
    assert (corner.std(dim=2).amax(dim=1) == 0).float().mean() > 0.8


@pytest.mark.parametrize("kwargs, parameter", [
    (dict(name="synthetic", clutter=1.5), "clutter"),
    (dict(name="synthetic", clutter=-0.1), "clutter"),
    (dict(name="synthetic", image_size=4), "image_size"),
    (dict(name="synthetic", num_classes=100), "num_classes"),
    (dict(name="mnist"), "name"),
    (dict(name="synthetic", split="val"), "split"),
    (dict(name="synthetic", subset=0), "subset"),
])
def test_bad_arguments_name_the_parameter(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        load_dataset(**kwargs)


def test_error_lists_allowed_values():
    with pytest.raises(ValueError, match="cifar10.*synthetic"):
        load_dataset("mnist")


class TinyNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveMaxPool2d(1))
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def test_synthetic_shapes_are_learnable():
    torch.manual_seed(0)
    train = load_dataset("synthetic", "train", image_size=16, subset=2000)
    test = load_dataset("synthetic", "test", image_size=16, subset=500)
    model, steps = TinyNet(), 0
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = make_loader(train, 50, train=True)
    for epoch in range(8):  # 320 steps
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in make_loader(test, 250, train=False))
    assert steps == 320
    assert correct / len(test) > 0.6  # chance is 0.1; we measured 0.92


# ----------------------------------------------------------------------------------------------
# CIFAR: tiny tarballs in the real layout


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)  # str keys: what the real (python 2) files give with encoding="latin1"


def _cifar_tarball(root, name, per_batch=4):
    """Write root/cifar-10(0)-python.tar.gz in the real layout; return {batch file: (data, labels)}."""
    folder, label_key = ("cifar-10-batches-py", "labels") if name == "cifar10" else ("cifar-100-python", "fine_labels")
    files = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]) if name == "cifar10" else ["train", "test"]
    num_classes = 10 if name == "cifar10" else 100
    rng = np.random.default_rng(0)
    staging = root / "staging" / folder
    staging.mkdir(parents=True)
    contents = {}
    for i, file in enumerate(files):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [(i * per_batch + k) % num_classes for k in range(per_batch)]
        _pickle(staging / file, {"data": data, label_key: labels, "batch_label": file})
        contents[file] = (data, labels)
    if name == "cifar10":
        _pickle(staging / "batches.meta", {"label_names": [f"class{c}" for c in range(10)]})
    else:
        _pickle(staging / "meta", {"fine_label_names": [f"fine{c}" for c in range(100)]})
    tarball = root / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(staging, arcname=folder)
    return contents


@pytest.fixture
def no_cifar_md5(monkeypatch):
    """Our stand-in files cannot match the official md5 sums: None makes torchvision skip the check."""
    for cls in (datasets.CIFAR10, datasets.CIFAR100):
        monkeypatch.setattr(cls, "train_list", [[file, None] for file, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[file, None] for file, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


@pytest.mark.parametrize("name, train_files, test_files", [
    ("cifar10", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    ("cifar100", ["train"], ["test"]),
])
def test_cifar_tarball_is_extracted_and_round_trips(tmp_path, no_cifar_md5, name, train_files, test_files):
    root = tmp_path / "data"
    root.mkdir()
    contents = _cifar_tarball(root, name)
    with pytest.warns(UserWarning, match="md5"):  # the stand-in tarball is not the official one
        train = load_dataset(name, root, "train")
    test = load_dataset(name, root, "test")  # now extracted: no warning needed
    for data, files in ((train, train_files), (test, test_files)):
        pixels = np.concatenate([contents[f][0] for f in files])
        labels = sum((contents[f][1] for f in files), [])
        assert data.images.dtype == torch.uint8 and data.images.shape == (len(labels), 3, 32, 32)
        assert torch.equal(data.images, torch.from_numpy(pixels.reshape(-1, 3, 32, 32)))
        assert data.labels.tolist() == labels and data.labels.dtype == torch.int64
    assert train.num_classes == (10 if name == "cifar10" else 100) and train.name == name
    assert train.mean[0] == pytest.approx(0.49, abs=0.02)


def test_cifar_subset_and_resize(tmp_path, no_cifar_md5):
    _cifar_tarball(tmp_path, "cifar10")
    with pytest.warns(UserWarning):
        full = load_dataset("cifar10", tmp_path, "train")
    part = load_dataset("cifar10", tmp_path, "train", subset=7, seed=3, image_size=16)
    assert part.images.shape == (7, 3, 16, 16)
    again = load_dataset("cifar10", tmp_path, "train", subset=7, seed=3)
    assert set(again.labels.tolist()) <= set(full.labels.tolist()) and len(again) == 7
    assert not torch.equal(again.images, full.images[:7])  # a shuffled subset, not the first batch


def test_cifar_missing_root_says_what_to_place(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz.*download=True"):
        load_dataset("cifar10", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        load_dataset("cifar100", None, "test")


def test_cifar_with_wrong_md5_is_reported_as_corrupted(tmp_path):
    _cifar_tarball(tmp_path, "cifar10")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="corrupted"):
        load_dataset("cifar10", tmp_path, "train")


@pytest.mark.parametrize("content", [b"this is not a tarball", b"\x1f\x8b\x08\x00truncated gzip"])
def test_fake_cifar_tarball_is_a_clear_error_naming_it(tmp_path, content):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(content)
    with pytest.warns(UserWarning, match="md5"), pytest.raises(DatasetError) as error:
        load_dataset("cifar10", tmp_path, "train")
    assert str(error.value).startswith(f"{tmp_path / 'cifar-10-python.tar.gz'} is not a readable CIFAR-10 tarball")
    assert "replace it with the official cifar-10-python.tar.gz" in str(error.value)


def test_resolve_dataset(tmp_path, no_cifar_md5):
    assert resolve_dataset("auto", tmp_path) == (
        "synthetic", f"CIFAR-10 not found in {tmp_path}; using the synthetic shapes dataset")
    _cifar_tarball(tmp_path, "cifar10")
    assert resolve_dataset("auto", tmp_path) == ("cifar10", f"found CIFAR-10 in {tmp_path}")
    assert resolve_dataset("cifar100", tmp_path) == ("cifar100", "requested")
    with pytest.raises(ValueError, match="name"):
        resolve_dataset("svhn")


# ----------------------------------------------------------------------------------------------
# TinyImageNet and ImageNet folders


def _save(path, colour, size=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def _tinyimagenet(root):
    """root/tiny-imagenet-200 with 3 wnids (listed unsorted), 2 train images each, 3 val images."""
    base = root / "tiny-imagenet-200"
    wnids = ["n03", "n01", "n02"]
    colour = {"n01": (10, 0, 0), "n02": (20, 0, 0), "n03": (30, 0, 0)}
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        for k in range(2):
            _save(base / "train" / wnid / "images" / f"{wnid}_{k}.png", colour[wnid])
    val = [("val_0.png", "n02"), ("val_1.png", "n03"), ("val_2.png", "n01")]
    for file, wnid in val:
        _save(base / "val" / "images" / file, colour[wnid])
    (base / "val" / "val_annotations.txt").write_text("".join(f"{f}\t{w}\t0\t0\t63\t63\n" for f, w in val))
    return base


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_tinyimagenet_labels_follow_sorted_wnids(tmp_path, point_at_folder):
    base = _tinyimagenet(tmp_path)
    root = base if point_at_folder else tmp_path
    train, val = load_dataset("tinyimagenet", root, "train"), load_dataset("tinyimagenet", root, "test")
    assert train.classes == ["n01", "n02", "n03"] and train.images.shape == (6, 3, 64, 64)
    assert val.labels.tolist() == [1, 2, 0] and val.images.shape == (3, 3, 64, 64)
    for data in (train, val):  # the red value encodes the class: 10 * (label + 1)
        assert torch.equal(data.images[:, 0, 0, 0].long(), 10 * (data.labels + 1))


def test_tinyimagenet_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="wnids.txt"):
        load_dataset("tinyimagenet", tmp_path, "train")


def test_imagenet_folder_yields_paper_crops(tmp_path):
    for split in ("train", "val"):
        for wnid, colour in (("n01", (200, 0, 0)), ("n02", (0, 200, 0))):
            for k in range(3):
                _save(tmp_path / split / wnid / f"{k}.png", colour, size=40 + 10 * k)
    train = load_dataset("imagenet", tmp_path, "train")
    val = load_dataset("imagenet", tmp_path, "test", subset=4)
    assert len(train) == 6 and len(val) == 4 and train.num_classes == 2 and train.image_size == 224
    image, label = val[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    loader = make_loader(train, 4, train=True, num_workers=0)
    loader.set_epoch(1)
    batches = [(x.shape, y.tolist()) for x, y in loader]
    assert len(loader) == 2 and [shape for shape, _ in batches] == [(4, 3, 224, 224), (2, 3, 224, 224)]
    assert batches == [(x.shape, y.tolist()) for x, y in loader]  # same epoch, same order


def test_imagenet_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        load_dataset("imagenet", tmp_path, "train")


# ----------------------------------------------------------------------------------------------
# GpuLoader


def _indexed_data(n=103):
    """Images whose label is their index, each left-right asymmetric (a ramp plus noise)."""
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return ImageData(images, torch.arange(n), [str(i) for i in range(n)], "indexed", (0.5,) * 3, (0.25,) * 3)


def _normalized(data, rows):
    return (data.images[rows].float() / 255 - 0.5) / 0.25


def test_loader_covers_every_sample_once_per_epoch():
    data = _indexed_data()
    for train in (True, False):
        loader = GpuLoader(data, 10, train=train)
        labels = torch.cat([y for _, y in loader])
        assert len(loader) == 11 and sorted(labels.tolist()) == list(range(103))
        assert (labels.tolist() == list(range(103))) is not train  # only training shuffles
    assert len(GpuLoader(data, 10, train=True, drop_last=True)) == 10


def test_loader_order_is_a_function_of_seed_and_epoch():
    data = _indexed_data()

    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch)
        return [(x, y) for x, y in loader]

    first = epoch_batches(GpuLoader(data, 16, train=True, seed=5), 3)
    resumed = epoch_batches(GpuLoader(data, 16, train=True, seed=5), 3)  # a fresh loader, as after a restart
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, resumed))
    next_epoch = epoch_batches(GpuLoader(data, 16, train=True, seed=5), 4)
    other_seed = epoch_batches(GpuLoader(data, 16, train=True, seed=6), 3)
    assert not torch.equal(first[0][1], next_epoch[0][1])
    assert not torch.equal(first[0][1], other_seed[0][1])


def test_loader_flips_only_in_training():
    data = _indexed_data()
    for train in (True, False):
        flipped = 0
        for x, y in GpuLoader(data, 20, train=train):
            plain = _normalized(data, y)
            is_flipped = ((x - plain.flip(3)).abs() < 1e-5).flatten(1).all(1)
            assert torch.all(is_flipped | ((x - plain).abs() < 1e-5).flatten(1).all(1))
            flipped += int(is_flipped.sum())
        assert (20 < flipped < 83) if train else flipped == 0


def test_loader_normalizes_to_zero_mean_unit_std():
    data = load_dataset("synthetic", image_size=16, subset=1000)
    x = torch.cat([x for x, _ in GpuLoader(data, 128, train=False)])
    assert x.dtype == torch.float32 and x.shape == (1000, 3, 16, 16)
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def test_loader_rejects_empty_batches():
    with pytest.raises(ValueError, match="batch_size"):
        GpuLoader(_indexed_data(), 0, train=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_cuda_matches_cpu():
    data = _indexed_data()
    cpu, cuda = GpuLoader(data, 16, train=True, seed=2), GpuLoader(data, 16, train=True, seed=2, device="cuda")
    cpu.set_epoch(7)
    cuda.set_epoch(7)
    for (x_cpu, y_cpu), (x_cuda, y_cuda) in zip(cpu, cuda):
        assert x_cuda.device.type == "cuda" and torch.equal(y_cpu, y_cuda.cpu())
        assert torch.allclose(x_cpu, x_cuda.cpu(), atol=1e-5)
