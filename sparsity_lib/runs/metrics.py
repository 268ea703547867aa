"""What a finished run measures (paper Sec. 2.1, Tables 1-2): train/test loss and error on a loader,
the share of conv parameters removed by the dead-feature masks, and the `final` block of a run record
(errors in %, sparsity by |gamma| and by activation in % of features, per-layer counts)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..nets.models import conv_bn_layers
from ..nets.sparsity import (
    activation_masks,
    gamma_masks,
    gamma_sparsity,
    pooled_activations,
    total_percent,
    universality_from_pooled,
    zero_inactive,
)

__all__ = ["evaluate", "final_metrics", "pruned_param_percent"]


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> tuple[float, float]:
    """(mean cross-entropy loss, error in %) of `model` in eval mode over `loader`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device)
    count = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        wrong += (logits.argmax(1) != y).sum()
        count += len(y)
    model.train(was_training)
    return float(loss_sum) / count, 100.0 * float(wrong) / count


def pruned_param_percent(model: nn.Module, masks: dict[str, torch.Tensor]) -> float:
    """% of conv weights that disappear when the marked features (and their inputs downstream) go."""
    layers = conv_bn_layers(model)
    total = removed = 0
    kept_in = 3
    for name, conv, _ in layers:
        kept_out = int((~masks[name]).sum())
        size = conv.weight[0, 0].numel()
        total += conv.weight.numel()
        removed += conv.weight.numel() - kept_out * min(kept_in, conv.in_channels) * size
        kept_in = kept_out
    return 100.0 * removed / max(1, total)


def final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err) -> tuple[dict, dict]:
    """Headline numbers of a finished run (Table 1/2 columns) and per-feature universality."""
    test_loss, test_err = evaluate(model, test_loader)
    pooled = pooled_activations(model, train_eval_loader)
    by_gamma = gamma_sparsity(model)
    by_act = activation_masks(pooled)
    masks = gamma_masks(model)
    _, zeroed_err = evaluate(zero_inactive(model, masks), test_loader)
    layers = [{"layer": row.layer, "features": row.features, "inactive_gamma": row.inactive,
               "inactive_act": int(by_act[row.layer].sum())} for row in by_gamma.itertuples()]
    features = sum(layer["features"] for layer in layers)
    final = {
        "train_loss": train_loss, "train_err": train_err, "test_loss": test_loss, "test_err": test_err,
        "sparsity_gamma": total_percent(by_gamma),
        "sparsity_act": 100.0 * sum(layer["inactive_act"] for layer in layers) / features,
        "test_err_zeroed": zeroed_err, "conv_params_pruned": pruned_param_percent(model, masks),
        "features": features, "layers": layers,
    }
    universality = {name: values.round(3).tolist() for name, values in universality_from_pooled(pooled).items()}
    return final, universality
