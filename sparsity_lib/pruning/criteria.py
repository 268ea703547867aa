"""Which features each explicit sparsifier removes after training (paper Sec. 5.2): Network Slimming's
global smallest-|gamma| percentile, Li et al.'s per-layer smallest-L1 filters, and the filters the
l1/l2 penalty zeroed. Each returns {layer: bool mask of features to remove} for `prune` to remove.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nets.models import conv_bn_layers
from ..nets.regularizers import filter_norms

__all__ = ["l1l2_masks", "L1L2_THRESHOLD", "li_masks", "LI_VGG16_A", "slimming_masks"]


# Li et al. (2017), Table 2, "VGG-16-pruned-A" on CIFAR-10: fraction of filters removed per layer.
LI_VGG16_A = {"C1": 0.5, **{f"C{i}": 0.5 for i in range(8, 14)}}
L1L2_THRESHOLD = 1e-2  # a filter whose norm is < 1% of its layer's largest is considered zeroed


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name}={value!r} is invalid; allowed: a fraction in [0, 1)")


@torch.no_grad()
def slimming_masks(model: nn.Module, fraction: float) -> dict[str, torch.Tensor]:
    """Network Slimming's global-percentile rule: mark the `fraction` of all conv features with the
    smallest |gamma|, ranked across every layer together (Liu et al. 2017, Sec. 4)."""
    _check_fraction("fraction", fraction)
    layers = conv_bn_layers(model)
    scales = torch.cat([bn.weight.detach().abs().cpu() for _, _, bn in layers])
    count = int(round(fraction * scales.numel()))
    marked = torch.zeros(scales.numel(), dtype=torch.bool)
    marked[torch.argsort(scales, stable=True)[:count]] = True
    masks, start = {}, 0
    for name, conv, _ in layers:
        masks[name] = marked[start:start + conv.out_channels]
        start += conv.out_channels
    return masks


@torch.no_grad()
def li_masks(model: nn.Module, fractions: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Li et al. (2017): in each layer, mark the floor(fraction * F) filters with the smallest
    L1 norm sum |W_f|. `fractions` maps layer names to fractions; default `LI_VGG16_A`."""
    fractions = LI_VGG16_A if fractions is None else fractions
    layers = conv_bn_layers(model)
    names = [name for name, _, _ in layers]
    unknown = sorted(set(fractions) - set(names))
    if unknown:
        raise ValueError(f"fractions names layer(s) {unknown} not in this model; allowed: {', '.join(names)}")
    masks = {}
    for name, conv, _ in layers:
        fraction = fractions.get(name, 0.0)
        _check_fraction(f"fractions[{name!r}]", fraction)
        l1 = conv.weight.detach().abs().flatten(1).sum(1).cpu()
        mask = torch.zeros(conv.out_channels, dtype=torch.bool)
        mask[torch.argsort(l1, stable=True)[:int(fraction * conv.out_channels)]] = True
        masks[name] = mask
    return masks


@torch.no_grad()
def l1l2_masks(model: nn.Module, threshold: float = L1L2_THRESHOLD) -> dict[str, torch.Tensor]:
    """Filters the l1/l2 penalty zeroed: ||W_f||_2 below `threshold` times the layer's largest."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold={threshold!r} is invalid; allowed: a number in (0, 1)")
    masks = {}
    for name, conv, _ in conv_bn_layers(model):
        norms = filter_norms(conv).detach().cpu()
        masks[name] = norms < threshold * norms.max()
    return masks
