"""Explicit sparsity regularizers the book compares against (added to the task loss).

- Network Slimming (Liu et al. 2017): s * sum over conv BN layers of |gamma|.
- l1/l2 pseudo-norm on filters (Berthelier et al. 2020): see `l1l2_penalty`.
"""
from __future__ import annotations

import torch
from torch import nn

from .models import conv_bn_layers


def slimming_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """Network Slimming's sparsity term: strength * sum_l sum_c |gamma_{l,c}| over conv BN layers."""
    return strength * sum(bn.weight.abs().sum() for _, _, bn in conv_bn_layers(model))


def l1l2_penalty(model: nn.Module, strength: float, eps: float = 1e-12) -> torch.Tensor:
    """strength * sum over conv filters f of ||W_f||_1 / ||W_f||_2 (filter = one output channel)."""
    total = 0.0
    for _, conv, _ in conv_bn_layers(model):
        weights = conv.weight.flatten(1)
        total = total + (weights.abs().sum(1) / (weights.norm(dim=1) + eps)).sum()
    return strength * total


def explicit_penalty(model: nn.Module, config) -> torch.Tensor | None:
    """The sum of the explicit regularizers a RunConfig asks for, or None when it asks for none."""
    terms = []
    if config.slimming_l1:
        terms.append(slimming_penalty(model, config.slimming_l1))
    if config.l1l2:
        terms.append(l1l2_penalty(model, config.l1l2))
    return sum(terms) if terms else None
