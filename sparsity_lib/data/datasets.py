"""The one entry point to the datasets (paper Sec. 2.1): `load_dataset(name, root, split, ...)`
returns an `ImageData` (CIFAR-10/100, TinyImageNet, synthetic) or an ImageNet ImageFolder, subset
and resized as asked; `resolve_dataset("auto")` picks CIFAR-10 when it is on disk, else synthetic."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..validation import check_choice
from .images import SPLITS, ImageData
from .real import cifar_present, imagenet_folder, load_cifar, load_tinyimagenet
from .synthetic import synthetic_shapes

__all__ = ["DATASETS", "load_dataset", "resolve_dataset"]

DATASETS = ("cifar10", "cifar100", "tinyimagenet", "imagenet", "synthetic")


# ----------------------------------------------------------------------------------------------
# Entry points


def resolve_dataset(name: str, root=None) -> tuple[str, str]:
    """(dataset name to use, reason). `name="auto"`: CIFAR-10 when it is in `root`, else synthetic."""
    check_choice("name", name, ("auto",) + DATASETS)
    if name != "auto":
        return name, "requested"
    if cifar_present("cifar10", root):
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
