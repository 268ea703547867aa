"""Datasets of the paper (Sec. 2.1: CIFAR-10/100, TinyImageNet, ImageNet) and an offline stand-in.

Small datasets are held in memory as `ImageData` (uint8 NCHW) and fed by `GpuLoader`, which keeps
them on the training device and draws its shuffle and flips from (seed, epoch) alone, so a run
resumed at an epoch boundary sees the same batches as an uninterrupted one. ImageNet stays on disk
as a `torchvision` ImageFolder fed by a `DataLoader`.

`synthetic` is a procedurally generated shapes dataset (class = shape kind, optionally with a hole
or stripes) that needs no download; `clutter` in [0, 1] adds textured distractors to the
background. It lets every chapter run offline in seconds.
"""
from __future__ import annotations

import hashlib
import math
import pickle
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity, extract_archive

from .validation import check_choice

__all__ = ["CIFAR_FILES", "DATASETS", "NORMALIZATION", "SHAPES", "SPLITS", "SYNTHETIC_CHUNK", "SYNTHETIC_SIZES",
           "VARIANTS", "DatasetError", "epoch_draws", "EpochDataLoader", "GpuLoader", "ImageData", "imagenet_folder",
           "imagenet_transform", "load_cifar", "load_dataset", "load_tinyimagenet", "make_loader", "resolve_dataset",
           "synthetic_class_names", "synthetic_shapes"]

DATASETS = ("cifar10", "cifar100", "tinyimagenet", "imagenet", "synthetic")
SPLITS = ("train", "test")

# Per-channel mean/std of pixel values in [0, 1] units. CIFAR and TinyImageNet: computed over
# their training sets; ImageNet: the torchvision values. Synthetic: every pixel is a uniformly
# random colour channel (objects, distractors and background alike), so mean 0.5 and
# std 1/sqrt(12) ~ 0.289 exactly in expectation, whatever the clutter.
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "synthetic": ((0.5, 0.5, 0.5), (0.289, 0.289, 0.289)),
}
SYNTHETIC_SIZES = {"train": 50_000, "test": 10_000}  # like CIFAR
SYNTHETIC_CHUNK = 1000  # images generated per seeded chunk; fixes which images a prefix holds
SHAPES = ("circle", "square", "triangle", "cross", "ring", "bars", "star", "ellipse", "L-shape",
          "diamond", "crescent", "T-shape")
VARIANTS = ("", "with hole", "striped")  # second attribute once classes outnumber shapes
CIFAR_FILES = {"cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", "CIFAR-10"),
               "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", "CIFAR-100")}


@dataclass
class ImageData:
    """An in-memory image classification split.

    `images` is uint8 (N, C, H, W) with values 0..255; `labels` int64 (N,) indexing `classes`;
    `mean`/`std` are per-channel statistics in [0, 1] units, used by `GpuLoader` to normalize.
    `redraw`, when set, makes the split an unbounded stream: `redraw(epoch)` returns that epoch's
    (images, labels), as many as `images` holds (epoch 0 gives `images` itself); training loaders
    call it at every `set_epoch`, evaluation loaders keep epoch 0.
    """
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    redraw: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """Height in pixels (all our images are square)."""
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])


class DatasetError(RuntimeError):
    """A dataset file is present but damaged or incomplete; the message names the file and the fix."""


# ----------------------------------------------------------------------------------------------
# Entry points


def resolve_dataset(name: str, root=None) -> tuple[str, str]:
    """(dataset name to use, reason). `name="auto"`: CIFAR-10 when it is in `root`, else synthetic."""
    check_choice("name", name, ("auto",) + DATASETS)
    if name != "auto":
        return name, "requested"
    if _cifar_present("cifar10", root):
        return "cifar10", f"found CIFAR-10 in {root}"
    return "synthetic", f"CIFAR-10 not found in {root}; using the synthetic shapes dataset"


def load_dataset(name: str, root=None, split: str = "train", *, image_size: int | None = None,
                 subset: int | None = None, seed: int = 0, clutter: float = 0.0, num_classes: int = 10,
                 stream: bool = False, download: bool = False):
    """One split of a dataset: an `ImageData`, or for ImageNet an on-disk ImageFolder.

    `split` is "train" or "test" ("test" is the val set of TinyImageNet/ImageNet). `image_size`
    (pixels) resizes in-memory sets (antialiased bilinear) or sets the ImageNet crop; None keeps
    the native size (synthetic: 32). `subset` keeps N images: the first N of a fixed shuffle
    seeded by `seed` for real data (class balance holds in expectation), the first N generated
    for synthetic. `clutter` and `num_classes` apply to synthetic only (`num_classes` is ignored
    for real data, `clutter` must be 0 for it). `stream=True` (synthetic training split only) draws
    `subset` fresh images every epoch (see `synthetic_shapes`). `name="auto"` is resolved by
    `resolve_dataset`.
    """
    if name == "auto":
        name, _ = resolve_dataset(name, root)
    check_choice("name", name, DATASETS)
    check_choice("split", split, SPLITS)
    if subset is not None and subset < 1:
        raise ValueError(f"subset={subset!r} must be a positive number of images or None (all)")
    if name == "synthetic":
        return synthetic_shapes(split, image_size=image_size or 32, count=subset, seed=seed,
                                clutter=clutter, num_classes=num_classes, stream=stream)
    if stream:
        raise ValueError(f"stream=True applies to name='synthetic' only (fresh images every epoch); "
                         f"use stream=False for name={name!r}")
    if clutter != 0:
        raise ValueError(f"clutter={clutter!r} applies to name='synthetic' only; use clutter=0 for name={name!r}")
    if name == "imagenet":
        return imagenet_folder(root, split, image_size=image_size or 224, subset=subset, seed=seed)
    data = load_cifar(name, root, split, download) if name.startswith("cifar") else load_tinyimagenet(root, split)
    if subset is not None:
        data = _shuffled_subset(data, subset, seed)
    if image_size is not None and image_size != data.image_size:
        data.images = _resize(data.images, image_size)
    return data


def _shuffled_subset(data: ImageData, subset: int, seed: int) -> ImageData:
    """The first `subset` images (all when fewer) of a permutation seeded by `seed`."""
    keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:subset]
    data.images, data.labels = data.images[keep], data.labels[keep]
    return data


def _resize(images: torch.Tensor, size: int, chunk: int = 5000) -> torch.Tensor:
    """uint8 NCHW images resized to size x size pixels (antialiased bilinear), in chunks to bound memory."""
    if size < 1:
        raise ValueError(f"image_size={size!r} must be a positive number of pixels")
    parts = [F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
             for part in images.split(chunk)]
    return torch.cat(parts).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# CIFAR-10/100


def _cifar_present(name: str, root) -> bool:
    """Whether the CIFAR tarball or its extracted folder sits in `root` (no md5 check: cheap)."""
    if root is None:
        return False
    tarball, folder, _ = CIFAR_FILES[name]
    return (Path(root) / tarball).is_file() or (Path(root) / folder).is_dir()


def load_cifar(name: str, root, split: str, download: bool = False) -> ImageData:
    """CIFAR-10/100 via torchvision, as uint8 NCHW 32x32.

    The official md5 sums are checked by torchvision (batch files) and here (tarball). A tarball
    in `root` that was not extracted is extracted first; a tarball whose md5 differs from the
    official one is extracted with a warning, and torchvision then rejects the batch files unless
    their md5 entries match (tests replace those entries with None, which skips the check).
    """
    tarball, folder, title = CIFAR_FILES[name]
    if root is None or not (download or _cifar_present(name, root)):
        raise FileNotFoundError(
            f"{title} not found: place {tarball} (from https://www.cs.toronto.edu/~kriz/cifar.html) or its "
            f"extracted folder {folder}/ in root={str(root)!r}, or pass download=True")
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    archive = Path(root) / tarball
    if not (Path(root) / folder).is_dir() and archive.is_file():
        if not check_integrity(archive, cls.tgz_md5):
            warnings.warn(f"{archive} does not match the official md5 {cls.tgz_md5}; extracting it anyway")
        try:
            extract_archive(str(archive), str(root))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise DatasetError(f"{archive} is not a readable {title} tarball ({type(error).__name__}: {error}); "
                               f"replace it with the official {tarball}, or pass download=True") from error
    try:
        dataset = cls(str(root), train=split == "train", download=download)
    except RuntimeError as error:
        raise DatasetError(f"{title} in {root} is incomplete or corrupted (md5 mismatch): delete "
                           f"{folder}/ and place a fresh {tarball}, or pass download=True") from error
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        raise DatasetError(f"{title} in {Path(root) / folder} cannot be read ({type(error).__name__}: {error}): "
                           f"delete {folder}/ and place a fresh {tarball}, or pass download=True") from error
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
    mean, std = NORMALIZATION[name]
    return ImageData(images, torch.tensor(dataset.targets, dtype=torch.int64), list(dataset.classes), name, mean, std)


# ----------------------------------------------------------------------------------------------
# TinyImageNet


def _tinyimagenet_dir(root) -> Path:
    """The `tiny-imagenet-200` folder: `root` itself or its child."""
    if root is not None:
        for candidate in (Path(root), Path(root) / "tiny-imagenet-200"):
            if (candidate / "wnids.txt").is_file():
                return candidate
    raise FileNotFoundError(
        f"TinyImageNet not found: expected root={str(root)!r} to hold tiny-imagenet-200/wnids.txt (unzip "
        "tiny-imagenet-200.zip from http://cs231n.stanford.edu/tiny-imagenet-200.zip into root)")


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def load_tinyimagenet(root, split: str) -> ImageData:
    """TinyImageNet as uint8 NCHW 64x64; labels index the sorted wnids of wnids.txt, "test" = val."""
    base = _tinyimagenet_dir(root)
    wnids = sorted((base / "wnids.txt").read_text().split())
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    if split == "train":
        files = [(path, label_of[wnid]) for wnid in wnids
                 for path in sorted((base / "train" / wnid / "images").glob("*"))]
    else:
        rows = [line.split("\t") for line in (base / "val" / "val_annotations.txt").read_text().splitlines() if line]
        files = [(base / "val" / "images" / row[0], label_of[row[1]]) for row in rows]
    if not files:
        raise FileNotFoundError(f"no TinyImageNet {split} images found under {base}")
    images = torch.from_numpy(np.stack([_read_rgb(path) for path, _ in files])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    mean, std = NORMALIZATION["tinyimagenet"]
    return ImageData(images, labels, wnids, "tinyimagenet", mean, std)


# ----------------------------------------------------------------------------------------------
# ImageNet


def imagenet_transform(train: bool, image_size: int = 224):
    """The paper's ImageNet pipeline: resize the short side to 256 (scaled with `image_size`), take
    a random `image_size` crop and flip for training, the center crop for testing; then normalize."""
    resize = round(image_size * 256 / 224)
    crop = [transforms.RandomCrop(image_size), transforms.RandomHorizontalFlip()] if train \
        else [transforms.CenterCrop(image_size)]
    mean, std = NORMALIZATION["imagenet"]
    return transforms.Compose([transforms.Resize(resize), *crop, transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


def imagenet_folder(root, split: str, *, image_size: int = 224, subset: int | None = None, seed: int = 0):
    """ImageNet `root/train` or `root/val` (one sub-folder per class) as an ImageFolder with the
    paper's transforms, plus `name`, `num_classes` and `image_size` like `ImageData`."""
    folder = Path(root) / ("train" if split == "train" else "val") if root is not None else None
    if folder is None or not folder.is_dir():
        raise FileNotFoundError(f"ImageNet {split} folder not found: expected {folder} (root={str(root)!r}) "
                                "holding one sub-folder of images per class")
    dataset = datasets.ImageFolder(str(folder), transform=imagenet_transform(split == "train", image_size))
    if subset is not None:
        keep = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:subset].tolist()
        dataset.samples = dataset.imgs = [dataset.samples[i] for i in keep]
        dataset.targets = [dataset.targets[i] for i in keep]
    dataset.name, dataset.num_classes, dataset.image_size = "imagenet", len(dataset.classes), image_size
    return dataset


# ----------------------------------------------------------------------------------------------
# Synthetic shapes


def synthetic_class_names(num_classes: int) -> list[str]:
    """Class c is shape c % 12, drawn plain, with a hole, or striped for c // 12 = 0, 1, 2."""
    return [f"{SHAPES[c % len(SHAPES)]} {VARIANTS[c // len(SHAPES)]}".strip() for c in range(num_classes)]


def synthetic_shapes(split: str = "train", *, image_size: int = 32, count: int | None = None, seed: int = 0,
                     clutter: float = 0.0, num_classes: int = 10, stream: bool = False) -> ImageData:
    """The synthetic shapes dataset: `count` RGB images of image_size x image_size pixels.

    Images come in chunks of `SYNTHETIC_CHUNK`, each from a generator seeded by (seed, split,
    chunk index), so the first N images do not depend on `count` and train differs from test.
    Labels are balanced within each chunk. Default count: 50000 train, 10000 test.

    `stream=True` (train split only) makes an unbounded stream: epoch e holds the chunks after
    those of epochs 0..e-1, so no image is seen twice and every epoch is a pure function of
    (seed, e). Iteration-matched runs at different batch sizes then differ only in batch size, not
    in how many passes they make over a set they could memorize (paper Sec. 5.1).
    """
    check_choice("split", split, SPLITS)
    if not 0.0 <= clutter <= 1.0:
        raise ValueError(f"clutter={clutter!r} must lie in [0, 1] (0: flat background, 1: heavy distractors)")
    if image_size < 8:
        raise ValueError(f"image_size={image_size!r} must be at least 8 pixels for the synthetic dataset")
    max_classes = len(SHAPES) * len(VARIANTS)
    if not 2 <= num_classes <= max_classes:
        raise ValueError(f"num_classes={num_classes!r} must be between 2 and {max_classes} for the synthetic dataset")
    if stream and split != "train":
        raise ValueError(f"stream=True applies to split='train' only (split={split!r}): the test set stays fixed")
    count = SYNTHETIC_SIZES[split] if count is None else count
    draw = partial(_synthetic_epoch, split, count, image_size, seed, clutter, num_classes)
    images, labels = draw(0)
    mean, std = NORMALIZATION["synthetic"]
    return ImageData(images, labels, synthetic_class_names(num_classes), "synthetic", mean, std,
                     redraw=draw if stream else None)


def _synthetic_epoch(split, count, image_size, seed, clutter, num_classes, epoch: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of epoch `epoch` of a stream of `count` images per epoch (epoch 0: the fixed set)."""
    per_epoch = math.ceil(count / SYNTHETIC_CHUNK)
    chunks = [_synthetic_chunk(split, epoch * per_epoch + k, image_size, seed, clutter, num_classes)
              for k in range(per_epoch)]
    return torch.cat([images for images, _ in chunks])[:count], torch.cat([labels for _, labels in chunks])[:count]


def _chunk_generator(seed: int, split: str, chunk: int) -> torch.Generator:
    digest = hashlib.sha256(f"synthetic/{seed}/{split}/{chunk}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _synthetic_chunk(split, chunk, image_size, seed, clutter, num_classes) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk: (uint8 images (n, 3, H, W), int64 labels (n,))."""
    gen = _chunk_generator(seed, split, chunk)
    n = SYNTHETIC_CHUNK
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    supersample = 2  # the object is rendered at 2x and averaged: antialiased edges
    background = torch.rand(n, 3, generator=gen)
    canvas = background[:, :, None, None].expand(n, 3, image_size, image_size)
    if clutter > 0:  # distractors at native resolution: 4x cheaper, and aliasing suits a texture
        canvas = _add_clutter(canvas, background, _pixel_grid(image_size), clutter, gen)
    canvas = canvas.repeat_interleave(supersample, 2).repeat_interleave(supersample, 3)
    mask = _object_mask(labels, _pixel_grid(image_size * supersample), gen)
    canvas = torch.where(mask[:, None], _contrasting_colour(background, gen)[:, :, None, None], canvas)
    canvas = F.avg_pool2d(canvas, supersample)
    return (canvas * 255).round().clamp(0, 255).to(torch.uint8), labels


def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of pixel centres, each (size, size), in image units: [-1, 1] across the image."""
    axis = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x, y


def _contrasting_colour(background: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Colours (n, 3) at least 0.3 (circularly) from `background` per channel, still uniform in [0, 1]."""
    return (background + 0.3 + 0.4 * torch.rand(background.shape, generator=gen)) % 1.0


def _object_mask(labels: torch.Tensor, grid, gen: torch.Generator) -> torch.Tensor:
    """Bool (n, H, W): each image's shape at a random position, scale and rotation."""
    n = len(labels)
    scale = 0.55 + 0.4 * torch.rand(n, generator=gen)  # shapes span ~0.85 units: radius 0.47..0.8
    centre = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - 0.85 * scale)[:, None]
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    x = (grid[0] - centre[:, 0, None, None]) / scale[:, None, None]
    y = (grid[1] - centre[:, 1, None, None]) / scale[:, None, None]
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = cos * x + sin * y, -sin * x + cos * y  # object frame
    mask = torch.zeros(u.shape, dtype=torch.bool)
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().squeeze(1)
        mask[rows] = _shape(c % len(SHAPES), c // len(SHAPES), u[rows], v[rows])
    return mask


def _shape(kind: int, variant: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bool mask of shape `kind` in object coordinates (u, v), unit ~ shape radius / 0.85."""
    r, theta = torch.hypot(u, v), torch.atan2(v, u)
    au, av = u.abs(), v.abs()
    if kind == 0:  # circle
        mask = r < 0.8
    elif kind == 1:  # square
        mask = torch.maximum(au, av) < 0.62
    elif kind == 2:  # equilateral triangle, circumradius 0.85
        mask = torch.ones_like(u, dtype=torch.bool)
        for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6):  # outward normals of the three sides
            mask &= u * math.cos(a) + v * math.sin(a) < 0.42
    elif kind == 3:  # cross
        mask = ((au < 0.22) & (av < 0.8)) | ((av < 0.22) & (au < 0.8))
    elif kind == 4:  # ring
        mask = (r > 0.45) & (r < 0.85)
    elif kind == 5:  # three parallel bars
        mask = (au < 0.75) & (av < 0.75) & (((v + 0.75) / 0.5) % 1 < 0.55)
    elif kind == 6:  # five-pointed star
        mask = r < 0.3 + 0.55 * ((torch.cos(5 * theta) + 1) / 2) ** 2
    elif kind == 7:  # ellipse, aspect 2
        mask = (u / 0.85) ** 2 + (v / 0.4) ** 2 < 1
    elif kind == 8:  # L-shape
        mask = ((u > -0.6) & (u < -0.2) & (av < 0.75)) | ((u > -0.6) & (u < 0.6) & (v > 0.35) & (v < 0.75))
    elif kind == 9:  # diamond (rhombus, elongated so it is not a rotated square)
        mask = au / 0.5 + av / 0.85 < 1
    elif kind == 10:  # crescent
        mask = (r < 0.8) & (torch.hypot(u - 0.35, v) > 0.6)
    else:  # T-shape
        mask = ((au < 0.75) & (v > 0.4) & (v < 0.8)) | ((au < 0.2) & (v > -0.8) & (v <= 0.4))
    if variant == 1:  # a central hole (XOR, so the ring gets a dot instead)
        mask = mask ^ (r < 0.28)
    elif variant == 2:  # cut by thin stripes across u
        mask = mask & (((u + 1) / 0.3) % 1 > 0.35)
    return mask


def _add_clutter(canvas, background, grid, clutter: float, gen: torch.Generator) -> torch.Tensor:
    """Background texture: patches of low-frequency noise, then random strokes and blobs, all
    painted in colours drawn like object colours (so every pixel stays a uniform random colour and
    the normalization constants hold); their amount grows linearly with `clutter` in (0, 1]."""
    n, _, size, _ = canvas.shape
    noise = F.interpolate(torch.rand(n, 1, 4, 4, generator=gen), size=(size, size), mode="bilinear",
                          align_corners=False)
    canvas = _paint(canvas, noise[:, 0] > 1 - 0.5 * clutter, _contrasting_colour(background, gen))
    for _ in range(round(8 * clutter)):
        canvas = _paint(canvas, _stroke_mask(grid, n, gen), _contrasting_colour(background, gen))
    for _ in range(round(4 * clutter)):
        canvas = _paint(canvas, _blob_mask(grid, n, gen), _contrasting_colour(background, gen))
    return canvas


def _paint(canvas: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None], colour[:, :, None, None], canvas)


def _stroke_mask(grid, n: int, gen: torch.Generator) -> torch.Tensor:
    """Bool (n, H, W): a straight stroke between two random points, width 0.04..0.12 image units."""
    a, b = torch.rand(n, 2, generator=gen) * 2 - 1, torch.rand(n, 2, generator=gen) * 2 - 1
    width = 0.04 + 0.08 * torch.rand(n, generator=gen)
    d = b - a
    px, py = grid[0] - a[:, 0, None, None], grid[1] - a[:, 1, None, None]
    t = ((px * d[:, 0, None, None] + py * d[:, 1, None, None]) / (d.square().sum(1) + 1e-6)[:, None, None]).clamp(0, 1)
    dist = torch.hypot(px - t * d[:, 0, None, None], py - t * d[:, 1, None, None])
    return dist < width[:, None, None]


def _blob_mask(grid, n: int, gen: torch.Generator) -> torch.Tensor:
    """Bool (n, H, W): a random axis-aligned ellipse, semi-axes 0.06..0.22 image units."""
    centre = torch.rand(n, 2, generator=gen) * 2 - 1
    axes = 0.06 + 0.16 * torch.rand(n, 2, generator=gen)
    dx = (grid[0] - centre[:, 0, None, None]) / axes[:, 0, None, None]
    dy = (grid[1] - centre[:, 1, None, None]) / axes[:, 1, None, None]
    return dx.square() + dy.square() < 1


# ----------------------------------------------------------------------------------------------
# Loaders


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator behind one epoch's shuffle and flips: a pure function of (seed, epoch)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def epoch_draws(seed: int, epoch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, flips) of one training epoch over n images, on the CPU: the shuffled image indices and,
    per position in that order, whether the image is flipped left-right (probability 1/2)."""
    gen = _epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=gen)
    return order, (torch.rand(n, generator=gen) < 0.5)[order]


class GpuLoader:
    """Batches of an `ImageData` kept whole on `device` (moved once, as uint8).

    Yields (x, y): x float32 (B, C, H, W) normalized by the data's mean/std, y int64 (B,), both on
    `device`. With `train=True` every epoch is shuffled and each image flipped left-right with
    probability 1/2; the permutation and flips depend only on (seed, epoch) (call `set_epoch`).
    `drop_last` defaults to False in both modes, so every image is seen once per epoch.
    """

    def __init__(self, data: ImageData, batch_size: int, *, train: bool, device="cpu", seed: int = 0,
                 drop_last: bool | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive number of images")
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.drop_last = bool(drop_last)
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.scale = (torch.tensor(data.std, device=self.device) * 255).view(1, -1, 1, 1)
        self.shift = (torch.tensor(data.mean, device=self.device) * 255).view(1, -1, 1, 1)
        self.redraw = data.redraw if train else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if self.redraw is not None and epoch != self.epoch:
            self.images, self.labels = (t.to(self.device) for t in self.redraw(epoch))
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        if self.train:
            order, flips = (t.to(self.device) for t in epoch_draws(self.seed, self.epoch, n))
        else:
            order, flips = torch.arange(n, device=self.device), None
        for batch in range(len(self)):
            rows = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            x = (self.images[rows].float() - self.shift) / self.scale
            if flips is not None:
                flip = flips[batch * self.batch_size:(batch + 1) * self.batch_size, None, None, None]
                x = torch.where(flip, x.flip(3), x)
            yield x, self.labels[rows]


class EpochDataLoader:
    """A `DataLoader` over an on-disk dataset whose shuffle is seeded by (seed, epoch), batches moved
    to `device`; the counterpart of `GpuLoader` for ImageNet."""

    def __init__(self, dataset, batch_size: int, *, train: bool, device="cpu", seed: int = 0, num_workers: int = 2):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive number of images")
        self.dataset, self.batch_size, self.train = dataset, batch_size, train
        self.device, self.seed, self.num_workers = torch.device(device), seed, num_workers
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        loader = torch.utils.data.DataLoader(
            self.dataset, self.batch_size, shuffle=self.train, num_workers=self.num_workers,
            generator=_epoch_generator(self.seed, self.epoch), pin_memory=self.device.type == "cuda",
            persistent_workers=False)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def make_loader(data, batch_size: int, *, train: bool, device="cpu", seed: int = 0, num_workers: int = 2):
    """A `GpuLoader` for `ImageData`, an `EpochDataLoader` for an on-disk torch Dataset (ImageNet)."""
    if isinstance(data, ImageData):
        return GpuLoader(data, batch_size, train=train, device=device, seed=seed)
    return EpochDataLoader(data, batch_size, train=train, device=device, seed=seed, num_workers=num_workers)
