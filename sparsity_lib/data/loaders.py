"""Training and evaluation batches. `GpuLoader` keeps an `ImageData` whole on the training device
and draws its shuffle and flips from (seed, epoch) alone, so a run resumed at an epoch boundary sees
the same batches as an uninterrupted one; `EpochDataLoader` is its counterpart for on-disk ImageNet."""
from __future__ import annotations

import math

import torch

from .images import ImageData

__all__ = ["EpochDataLoader", "GpuLoader", "epoch_draws", "make_loader"]

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
