"""The in-memory image split every loader reads (`ImageData`), its error type, and the per-dataset
normalization constants (paper Sec. 2.1: CIFAR-10/100, TinyImageNet, ImageNet; the synthetic stand-in)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["NORMALIZATION", "SPLITS", "DatasetError", "ImageData"]

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
