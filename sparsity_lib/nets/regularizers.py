"""Explicit filter sparsifiers the book compares Adam+L2 against (paper Sec. 5.2).

Each method is a penalty added to the task loss during training (switched on through `RunConfig`)
and a rule that picks the features to remove afterwards (`sparsity_lib.pruning.criteria`; `prune` removes them):

- Network Slimming (Liu et al. 2017): penalty s * sum |gamma| over conv BN scales; prune the
  globally smallest |gamma| (a percentile over all conv features); fine-tune.
- Li et al. (2017): no penalty; rank each layer's filters by their L1 norm sum |W_f| and remove a
  fixed fraction per layer (VGG-16-pruned-A on CIFAR-10: 50% of C1 and C8..C13); fine-tune.
- l1/l2 pseudo-norm (Berthelier et al. 2020), our filter-level reading (see `l1l2_penalty`):
  penalty lambda * sum over conv layers of ||n||_1 / ||n||_2, where n_f = ||W_f||_2 is the norm of
  filter f; prune filters whose norm fell below a fraction of the layer's largest filter norm.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .models import conv_bn_layers

__all__ = ["explicit_penalty", "filter_norms", "l1l2_penalty", "layer_l1l2", "penalty_scaling", "slimming_penalty"]


def slimming_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """Network Slimming's term: strength * sum_l sum_c |gamma_{l,c}| over conv BN layers.

    Its (sub)gradient adds strength * sign(gamma) to each conv BN scale and nothing elsewhere.
    """
    return strength * sum(bn.weight.abs().sum() for _, _, bn in conv_bn_layers(model))


def filter_norms(conv: nn.Conv2d) -> torch.Tensor:
    """n_f = ||W_f||_2 for each output filter f of `conv` (1-D, one entry per output channel)."""
    return conv.weight.flatten(1).norm(dim=1)


def layer_l1l2(conv: nn.Conv2d, eps: float = 1e-12) -> torch.Tensor:
    """||n||_1 / ||n||_2 of a layer's filter norms n_f = ||W_f||_2: a number in [1, sqrt(F)] for F filters.

    Equal to sum_f ||W_f||_2 / ||W||_F. It is 1 when a single filter is non-zero and sqrt(F) when all
    filters have equal norm; multiplying W by any a > 0 leaves it unchanged (scale invariance).
    """
    norms = filter_norms(conv)
    return norms.sum() / (norms.norm() + eps)


def l1l2_penalty(model: nn.Module, strength: float, eps: float = 1e-12) -> torch.Tensor:
    """strength * sum over conv layers l of ||n_l||_1 / ||n_l||_2, n_{l,f} = ||W_{l,f}||_2.

    Our reading of Berthelier et al. (2020), whose body is not available here: the l1/l2 ratio is
    taken over the vector of *filter norms* of each layer (a group ratio), which makes it
    (a) filter-level: it is lowest when few filters carry all the norm, so it drives whole filters to
    zero rather than single weights inside every filter (the per-filter ratio ||W_f||_1/||W_f||_2
    would do the latter and can never remove a filter), and
    (b) scale-invariant: R(aW) = R(W), so with BatchNorm after the conv (which makes the layer's output
    independent of the scale of W) the penalty cannot be satisfied by shrinking all filters alike.
    Gradient on filter f: W_f / n_f * (1/||n||_2 - ||n||_1 n_f / ||n||_2^3); it shrinks filters with
    n_f < ||n||_2^2 / ||n||_1 and grows the others, and is orthogonal to W (w . grad = 0).
    """
    return strength * sum(layer_l1l2(conv, eps) for _, conv, _ in conv_bn_layers(model))


def explicit_penalty(model: nn.Module, config) -> torch.Tensor | None:
    """The sum of the explicit regularizers a RunConfig asks for, or None when it asks for none.

    `config.slimming_l1` is Network Slimming's s; `config.l1l2` the l1/l2 pseudo-norm's lambda.
    """
    terms = []
    if config.slimming_l1:
        terms.append(slimming_penalty(model, config.slimming_l1))
    if config.l1l2:
        terms.append(l1l2_penalty(model, config.l1l2))
    return sum(terms) if terms else None



# ---------------------------------------------------------------- chapter 10: the l1/l2 pseudo-norm
def penalty_scaling(conv: torch.nn.Conv2d, scales=(0.1, 1.0, 10.0)) -> pd.DataFrame:
    """How three filter penalties of one conv layer change when its weights are multiplied by a > 0
    (chapter 10): 'l1/l2' (‖n‖₁/‖n‖₂ of the filter norms n, `regularizers.layer_l1l2`), 'group lasso'
    (Σ_f ‖W_f‖₂), 'L1' (Σ|w|), and 'W·∇R', the inner product of the weights with the l1/l2 ratio's
    gradient (0 for a scale-invariant penalty). One row per scale, index 'a' (the scale as text, e.g. "0.1")."""
    rows = []
    for scale in scales:
        scaled = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, bias=False)
        with torch.no_grad():
            scaled.weight.copy_(conv.weight * scale)
        layer_l1l2(scaled).backward()
        rows.append({"a": f"{scale:g}", "l1/l2": float(layer_l1l2(scaled).detach()),
                     "group lasso": float(filter_norms(scaled).sum().detach()),
                     "L1": float(scaled.weight.abs().sum().detach()),
                     "W·∇R": float((scaled.weight * scaled.weight.grad).sum().detach())})
    return pd.DataFrame(rows).set_index("a")
