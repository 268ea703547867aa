"""The paper's real datasets read from disk (Sec. 2.1): CIFAR-10/100 via torchvision with md5
checks, TinyImageNet from its unzipped folder, ImageNet as a torchvision ImageFolder with the
paper's crop-and-flip transforms. None can be downloaded on an offline machine; tests feed them
tiny stand-ins in the official formats."""
from __future__ import annotations

import pickle
import tarfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity, extract_archive

from .images import NORMALIZATION, DatasetError, ImageData

__all__ = ["CIFAR_FILES", "cifar_present", "imagenet_folder", "imagenet_transform", "load_cifar",
           "load_tinyimagenet"]

CIFAR_FILES = {"cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py", "CIFAR-10"),
               "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", "CIFAR-100")}


# ----------------------------------------------------------------------------------------------
# CIFAR-10/100


def cifar_present(name: str, root) -> bool:
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
    if root is None or not (download or cifar_present(name, root)):
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

