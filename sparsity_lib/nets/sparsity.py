"""Feature sparsity measures of the paper (Sec. 2.1) and feature universality (Sec. 3).

A feature is a conv output channel. It is *inactive by scale* when its BatchNorm |gamma| is below
`threshold` (1e-3), and *inactive by activation* when its max-pooled |activation| over every
training image does not exceed `threshold` (1e-12). Both thresholds are our reading of the paper
(the text extraction lost them; see docs/paper_tables.md).
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import nn

from .models import activate, activation_fn, conv_bn_layers

__all__ = ["activation_masks", "activation_sparsity", "ACTIVATION_THRESHOLD", "bn_parameters", "feature_universality",
           "gamma_masks", "gamma_sparsity", "GAMMA_THRESHOLD", "pooled_activations", "total_percent",
           "universality_from_pooled", "UNIVERSALITY_THRESHOLD", "zero_inactive"]

GAMMA_THRESHOLD = 1e-3
ACTIVATION_THRESHOLD = 1e-12
UNIVERSALITY_THRESHOLD = 1e-3


def _sparsity_frame(dead_by_layer: dict[str, torch.Tensor]) -> pd.DataFrame:
    rows = [{"layer": name, "features": int(dead.numel()), "inactive": int(dead.sum()),
             "percent": 100.0 * float(dead.float().mean())} for name, dead in dead_by_layer.items()]
    return pd.DataFrame(rows, columns=["layer", "features", "inactive", "percent"])


def total_percent(frame: pd.DataFrame) -> float:
    """% of all conv features inactive, from a per-layer frame of `gamma_sparsity`/`activation_sparsity`."""
    return 100.0 * frame["inactive"].sum() / max(1, frame["features"].sum())


def gamma_masks(model: nn.Module, threshold: float = GAMMA_THRESHOLD) -> dict[str, torch.Tensor]:
    """Per layer, a bool tensor marking features with |gamma| < threshold."""
    return {name: bn.weight.detach().abs().cpu() < threshold for name, _, bn in conv_bn_layers(model)}


def gamma_sparsity(model: nn.Module, threshold: float = GAMMA_THRESHOLD) -> pd.DataFrame:
    """Per-layer count and % of features inactive by BN scale (|gamma| < threshold)."""
    return _sparsity_frame(gamma_masks(model, threshold))


@torch.no_grad()
def pooled_activations(model: nn.Module, loader) -> dict[str, torch.Tensor]:
    """Per layer, an (images x features) tensor: max over the feature plane of |activation|.

    The activation is the output of conv -> BN -> ReLU (or Leaky ReLU), in eval mode.
    """
    layers = conv_bn_layers(model)
    act = activation_fn(model)
    collected: dict[str, list[torch.Tensor]] = {name: [] for name, _, _ in layers}

    def hook_for(name):
        def hook(_module, _inputs, output):
            collected[name].append(activate(act, output).abs().amax(dim=(2, 3)).float().cpu())
        return hook

    handles = [bn.register_forward_hook(hook_for(name)) for name, _, bn in layers]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for x, _ in loader:
            model(x.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: torch.cat(chunks) for name, chunks in collected.items()}


def activation_masks(pooled: dict[str, torch.Tensor], threshold: float = ACTIVATION_THRESHOLD):
    """Per layer, features whose pooled |activation| never exceeds `threshold` on any image."""
    return {name: values.amax(dim=0) <= threshold for name, values in pooled.items()}


def activation_sparsity(model: nn.Module, loader, threshold: float = ACTIVATION_THRESHOLD,
                        pooled: dict[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Per-layer count and % of features inactive by activation over `loader` (the training set).

    Pass `pooled` (from `pooled_activations`) to reuse one pass over the data for several measures.
    """
    pooled = pooled_activations(model, loader) if pooled is None else pooled
    return _sparsity_frame(activation_masks(pooled, threshold))


def universality_from_pooled(pooled: dict[str, torch.Tensor], threshold: float = UNIVERSALITY_THRESHOLD):
    """Per layer, each feature's universality in %: share of images whose pooled activation,
    normalized by the feature's max over the set, exceeds `threshold`. Dead features get 0."""
    result = {}
    for name, values in pooled.items():
        peak = values.amax(dim=0, keepdim=True)
        normalized = torch.where(peak > 0, values / peak.clamp_min(1e-30), torch.zeros_like(values))
        result[name] = (100.0 * (normalized > threshold).float().mean(dim=0)).numpy()
    return result


def feature_universality(model: nn.Module, loader, threshold: float = UNIVERSALITY_THRESHOLD,
                         pooled: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Per layer, per feature universality in % (paper Sec. 3, Fig. 3); selectivity = 100 - this."""
    pooled = pooled_activations(model, loader) if pooled is None else pooled
    return universality_from_pooled(pooled, threshold)


@torch.no_grad()
def zero_inactive(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` whose marked features output exactly zero (gamma = beta = 0).

    With ReLU or Leaky ReLU an all-zero BN output stays zero, so the feature is switched off.
    Used to check that removing the features marked inactive leaves the test error unchanged.
    """
    zeroed = copy.deepcopy(model)
    for name, _, bn in conv_bn_layers(zeroed):
        mask = masks.get(name)
        if mask is not None and mask.any():
            index = mask.to(bn.weight.device)
            bn.weight[index] = 0.0
            bn.bias[index] = 0.0
    return zeroed


def bn_parameters(model: nn.Module, layers=None) -> dict[str, dict[str, list[float]]]:
    """BN gamma and beta per conv layer as plain lists (for snapshots in run records)."""
    return {name: {"gamma": bn.weight.detach().cpu().tolist(), "beta": bn.bias.detach().cpu().tolist()}
            for name, _, bn in conv_bn_layers(model) if layers is None or name in layers}
