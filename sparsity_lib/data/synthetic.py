"""The synthetic shapes dataset, the offline stand-in for CIFAR (class = shape kind, optionally
with a hole or stripes; `clutter` in [0, 1] adds textured distractors to the background). Images
are generated in seeded chunks, so every chapter runs offline in seconds and reproducibly."""
from __future__ import annotations

import hashlib
import math
from functools import partial

import torch
from torch.nn import functional as F

from ..validation import check_choice
from .images import NORMALIZATION, SPLITS, ImageData

__all__ = ["SHAPES", "SYNTHETIC_CHUNK", "SYNTHETIC_SIZES", "VARIANTS", "synthetic_class_names", "synthetic_shapes"]

SYNTHETIC_SIZES = {"train": 50_000, "test": 10_000}  # like CIFAR
SYNTHETIC_CHUNK = 1000  # images generated per seeded chunk; fixes which images a prefix holds
SHAPES = ("circle", "square", "triangle", "cross", "ring", "bars", "star", "ellipse", "L-shape",
          "diamond", "crescent", "T-shape")
VARIANTS = ("", "with hole", "striped")  # second attribute once classes outnumber shapes


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
