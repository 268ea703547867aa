"""Physical removal of dead conv features for a real speed-up (paper Sec. 5.2, Tables 2, 7, 9, 10).

`prune_inactive` takes a trained BasicNet or VGG, finds the features that are dead (|gamma| below a
threshold, or zero activation on a data set) and returns a smaller network of the same class in
which those conv output channels, their BN entries, the next conv's input channels and the first
fc layer's inputs are gone, plus a `PruneReport` (features, parameters and MACs per layer before and
after, test error before and after).

What a removed feature becomes. A feature that is dead by gamma still emits a constant: its BN
output is beta whatever the input, so after the activation it sends act(beta) to the next layer
(zero when beta < 0 under ReLU, which is what Adam+L2 usually learns, but not always). That
constant is folded into the next layer: into the next BN's running mean (the next conv adds
c_f * sum_k W[o, f, k] to every output pixel) or into the first fc layer's bias (after average
pooling the constant is exact). The reference the pruned model reproduces is therefore the
original with gamma set to 0 on those features (`zeroed_reference`).

The approximation at zero-padded borders. The next conv pads its input with zeros, so at the one
pixel wide border of its output only part of the kernel sees the constant; the fold adds the full
kernel sum everywhere. The pruned model is exact on interior pixels and differs on border pixels
by c_f times the kernel weights that fall in the padding. `PruneReport.max_logit_change` and
`.agreement` measure the effect on the test set; it is zero when every folded constant is zero.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..nets.models import activate, conv_bn_layers
from ..nets.sparsity import (
    ACTIVATION_THRESHOLD,
    GAMMA_THRESHOLD,
    activation_masks,
    gamma_masks,
    pooled_activations,
)
from ..validation import check_choice
from .costs import check_prunable, compare_costs, conv_blocks, layer_costs

__all__ = ["BORDERS", "CRITERIA", "dead_masks", "prune_features", "prune_inactive", "prune_with_report", "PruneReport",
           "REMOVALS", "removed_preactivations", "zeroed_reference"]

CRITERIA = ("gamma", "activation")
# How a removed feature is replaced in the reference model (and hence which constant is folded):
# "gamma": gamma := 0, it emits act(beta); "activation": gamma := beta := 0, it emits 0;
# "filter": its conv filter := 0, it emits act(beta - gamma * mean / sqrt(var + eps)).
REMOVALS = ("gamma", "activation", "filter")
BORDERS = ("fold", "carry")


# ----------------------------------------------------------------------------- what gets removed
def dead_masks(model: nn.Module, criterion: str = "gamma", threshold: float | None = None,
               loader=None) -> dict[str, torch.Tensor]:
    """Per conv layer, a bool tensor marking dead features (paper Sec. 2.1).

    criterion 'gamma': |gamma| < threshold (default 1e-3); 'activation': max-pooled |activation| over
    every image of `loader` <= threshold (default 1e-12).
    """
    check_choice("criterion", criterion, CRITERIA)
    if criterion == "gamma":
        return gamma_masks(model, GAMMA_THRESHOLD if threshold is None else threshold)
    if loader is None:
        raise ValueError("loader=None is not allowed with criterion='activation'; pass the training-set loader")
    limit = ACTIVATION_THRESHOLD if threshold is None else threshold
    return activation_masks(pooled_activations(model, loader), limit)


@torch.no_grad()
def removed_preactivations(model: nn.Module, removal: str = "gamma") -> dict[str, torch.Tensor]:
    """Per layer and feature, the constant BN output a feature emits once removed (before the
    activation), under the `removal` rule of REMOVALS. Eval-mode (running statistics) values."""
    check_choice("removal", removal, REMOVALS)
    constants = {}
    for name, _, bn in conv_bn_layers(model):
        beta = bn.bias.detach().float().cpu()
        if removal == "gamma":
            constants[name] = beta.clone()
        elif removal == "activation":
            constants[name] = torch.zeros_like(beta)
        else:
            scale = bn.weight.detach().float().cpu() / torch.sqrt(bn.running_var.float().cpu() + bn.eps)
            constants[name] = beta - scale * bn.running_mean.float().cpu()
    return constants


@torch.no_grad()
def zeroed_reference(model: nn.Module, masks: dict[str, torch.Tensor], removal: str = "gamma") -> nn.Module:
    """A copy of `model` in which the marked features are switched off in place (no shapes change):
    'gamma' sets their gamma to 0, 'activation' sets gamma and beta to 0, 'filter' zeroes their conv
    filter. The pruned model of `prune_features` computes the same function (up to borders)."""
    check_choice("removal", removal, REMOVALS)
    reference = copy.deepcopy(model)
    for name, conv, bn in conv_bn_layers(reference):
        index = masks.get(name, torch.zeros(conv.out_channels, dtype=torch.bool)).to(conv.weight.device)
        if removal == "filter":
            conv.weight[index] = 0.0
        else:
            bn.weight[index] = 0.0
            if removal == "activation":
                bn.bias[index] = 0.0
    return reference


# ------------------------------------------------------------------------------- the surgery
def _slice_conv(conv: nn.Conv2d, keep_out: torch.Tensor, keep_in: torch.Tensor) -> nn.Conv2d:
    new = nn.Conv2d(len(keep_in), len(keep_out), conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, bias=conv.bias is not None).to(conv.weight.device, conv.weight.dtype)
    new.weight.copy_(conv.weight[keep_out][:, keep_in])
    if conv.bias is not None:
        new.bias.copy_(conv.bias[keep_out])
    return new


def _slice_bn(bn: nn.BatchNorm2d, keep: torch.Tensor, mean_shift: torch.Tensor) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum).to(bn.weight.device, bn.weight.dtype)
    new.weight.copy_(bn.weight[keep])
    new.bias.copy_(bn.bias[keep])
    # Without the removed inputs the conv output lacks `mean_shift` (their constant times the kernel
    # sum); lowering the mean BN subtracts by as much restores it (eval mode; exact away from the
    # zero-padded border, where the true missing amount is a partial kernel sum).
    new.running_mean.copy_((bn.running_mean - mean_shift)[keep])
    new.running_var.copy_(bn.running_var[keep])
    new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def _slice_linear(linear: nn.Linear, keep_channels: torch.Tensor, per_channel: int,
                  bias_shift: torch.Tensor) -> nn.Linear:
    columns = (keep_channels[:, None] * per_channel + torch.arange(per_channel, device=keep_channels.device)).flatten()
    new = nn.Linear(len(columns), linear.out_features).to(linear.weight.device, linear.weight.dtype)
    new.weight.copy_(linear.weight[:, columns])
    new.bias.copy_((linear.bias if linear.bias is not None else 0.0) + bias_shift)
    return new


def _plan_layer(mask: torch.Tensor, emitted: torch.Tensor,
                carry: bool) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """(kept indices, constant each removed feature sends downstream, carrier index or None).

    A fully dead layer keeps one placeholder (the feature with the largest |constant|) so that the
    network stays well formed. With `carry`, the removed feature with the largest non-zero constant
    is kept as the carrier of all of the layer's constants (see `prune_features`).
    """
    sent = torch.where(mask, emitted, torch.zeros_like(emitted))
    keep = torch.nonzero(~mask).flatten()
    carrier = None
    if len(keep) == 0:
        carrier = int(emitted.abs().argmax())
    elif carry and sent.abs().max() > 0:
        carrier = int(sent.abs().argmax())
    if carrier is not None:
        keep = torch.cat([keep, torch.tensor([carrier])]).sort().values
    return keep, sent, carrier


@torch.no_grad()
def prune_features(model: nn.Module, masks: dict[str, torch.Tensor], removal: str = "gamma",
                   borders: str = "fold") -> tuple[nn.Module, dict]:
    """A smaller copy of `model` without the marked conv features, and what was done.

    A marked feature is replaced by the constant c_f it emits under `removal` (see REMOVALS).
    borders='fold' (default) folds c_f into the next BN's running mean (exact except at the next
    conv's zero-padded border pixels) or into the first fc bias (exact). borders='carry' keeps one
    feature per such layer as a carrier (gamma 0, emitting its own constant c_r) and sets the next
    conv's input column r to sum_f c_f W[:, f] / c_r: exact everywhere, one extra channel per layer.
    A layer whose features are all marked keeps one placeholder feature (gamma 0, beta its
    constant): the network stays well formed and computes the same function; listed in 'fully_dead'.
    """
    check_prunable(model)
    check_choice("borders", borders, BORDERS)
    pruned = copy.deepcopy(model)
    blocks = conv_blocks(pruned)
    names = [name for name, _, _ in conv_bn_layers(pruned)]
    constants = removed_preactivations(pruned, removal)
    device = blocks[0].conv.weight.device
    keeps, sents, fully_dead, folded = [], [], [], 0
    for index, (name, block) in enumerate(zip(names, blocks)):
        mask = masks.get(name, torch.zeros(block.conv.out_channels, dtype=torch.bool)).cpu().bool()
        emitted = activate(block.act, constants[name])
        is_last = index == len(blocks) - 1
        keep, sent, carrier = _plan_layer(mask, emitted, borders == "carry" and not is_last)
        if not (~mask).any():
            fully_dead.append(name)
        folded += int((sent != 0).sum()) - int(carrier is not None and bool(sent[carrier] != 0))
        if carrier is not None:
            # The carrier/placeholder emits its own constant: gamma 0, beta its pre-activation value.
            block.bn.weight[carrier] = 0.0
            block.bn.bias[carrier] = float(constants[name][carrier])
            if borders == "carry" and not is_last and sent[carrier] != 0:
                following = blocks[index + 1].conv.weight
                column = torch.einsum("ofhw,f->ohw", following, sent.to(device, following.dtype))
                following[:, carrier] = column / float(sent[carrier])
                sent = torch.zeros_like(sent)
            sent[carrier] = 0.0
        keeps.append(keep.to(device))
        sents.append(sent.to(device, block.bn.weight.dtype))
    previous_keep = torch.arange(blocks[0].conv.in_channels, device=device)
    for index, (block, keep) in enumerate(zip(blocks, keeps)):
        shift = (torch.zeros_like(block.bn.running_mean) if index == 0
                 else torch.einsum("ofhw,f->o", block.conv.weight, sents[index - 1]))
        block.bn = _slice_bn(block.bn, keep, shift)
        block.conv = _slice_conv(block.conv, keep, previous_keep)
        previous_keep = keep
    linear = pruned.classifier[1]
    per_channel = linear.in_features // len(sents[-1])  # inputs per channel after pooling + flatten
    bias_shift = linear.weight.reshape(linear.out_features, len(sents[-1]), per_channel).sum(2) @ sents[-1]
    pruned.classifier[1] = _slice_linear(linear, keeps[-1], per_channel, bias_shift)
    info = {"removal": removal, "borders": borders, "fully_dead": fully_dead, "folded": folded,
            "removed": {name: int(masks[name].sum()) if name in masks else 0 for name in names}}
    return pruned.train(model.training), info


# ------------------------------------------------------------------------------- the report
@dataclass
class PruneReport:
    """What `prune_inactive` / `prune_with_report` removed and what it cost.

    `layers`: per layer (and head, total) features/params/macs before and after. Test errors in %
    (None without a test loader): the original, the reference with the removed features switched
    off in place, and the pruned model. `max_logit_change` is the largest |logit| difference between
    pruned and reference on the test set (the zero-padded-border approximation of the fold) and
    `agreement` the % of test images on which they predict the same class.
    """
    criterion: str
    removal: str
    layers: pd.DataFrame
    borders: str = "fold"
    fully_dead: list[str] = field(default_factory=list)
    folded: int = 0
    test_err_before: float | None = None
    test_err_reference: float | None = None
    test_err_after: float | None = None
    max_logit_change: float | None = None
    agreement: float | None = None
    input_shape: tuple = (1, 3, 32, 32)

    def totals(self) -> dict:
        """The 'total' row as a dict, plus % of features, params and MACs kept."""
        row = self.layers.set_index("layer").loc["total"].to_dict()
        for what in ("features", "params", "macs"):
            row[f"{what}_kept_pct"] = 100.0 * row[f"{what}_after"] / max(1, row[f"{what}_before"])
        return row

    def summary(self) -> dict:
        """Headline numbers as plain Python values (for run records and tables)."""
        return {**{k: (float(v) if "pct" in k else int(v)) for k, v in self.totals().items()},
                "criterion": self.criterion, "removal": self.removal, "borders": self.borders,
                "fully_dead": list(self.fully_dead),
                "folded": self.folded, "test_err_before": self.test_err_before,
                "test_err_reference": self.test_err_reference, "test_err_after": self.test_err_after,
                "max_logit_change": self.max_logit_change, "agreement": self.agreement}


@torch.no_grad()
def _compare_outputs(original, reference, pruned, loader) -> dict:
    """Test errors of the three models and the pruned-vs-reference logit gap over `loader`."""
    models = [m.eval() for m in (original, reference, pruned)]
    device = next(original.parameters()).device
    wrong = [0, 0, 0]
    gap, same, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = [m(x) for m in models]
        for i, out in enumerate(logits):
            wrong[i] += int((out.argmax(1) != y).sum())
        gap = max(gap, float((logits[2] - logits[1]).abs().max()))
        same += int((logits[2].argmax(1) == logits[1].argmax(1)).sum())
        count += len(y)
    errors = [100.0 * w / count for w in wrong]
    return {"test_err_before": errors[0], "test_err_reference": errors[1], "test_err_after": errors[2],
            "max_logit_change": gap, "agreement": 100.0 * same / count}


def _input_shape(input_shape, *loaders) -> tuple:
    if input_shape is not None:
        return tuple(input_shape)
    for loader in loaders:
        if loader is not None:
            x, _ = next(iter(loader))
            return (1, *x.shape[1:])
    return (1, 3, 32, 32)


def prune_with_report(model: nn.Module, masks: dict[str, torch.Tensor], removal: str = "gamma", *,
                      borders: str = "fold", criterion: str = "masks", test_loader=None,
                      input_shape=None) -> tuple[nn.Module, PruneReport]:
    """`prune_features` plus a `PruneReport` (costs from `layer_costs`; errors when `test_loader`)."""
    pruned, info = prune_features(model, masks, removal, borders)
    shape = _input_shape(input_shape, test_loader)
    report = PruneReport(criterion=criterion, removal=removal, borders=borders, fully_dead=info["fully_dead"],
                         folded=info["folded"],
                         layers=compare_costs(layer_costs(model, shape), layer_costs(pruned, shape)),
                         input_shape=shape)
    if test_loader is not None:
        reference = zeroed_reference(model, masks, removal)
        for key, value in _compare_outputs(model, reference, pruned, test_loader).items():
            setattr(report, key, value)
    return pruned, report


def prune_inactive(model: nn.Module, criterion: str = "gamma", threshold: float | None = None, loader=None, *,
                   test_loader=None, input_shape=None, borders: str = "fold") -> tuple[nn.Module, PruneReport]:
    """Remove the dead features of a trained BasicNet/VGG (paper Sec. 5.2): (smaller model, report).

    criterion 'gamma' (|gamma| < threshold, default 1e-3) or 'activation' (zero on every image of
    `loader`, threshold default 1e-12). A gamma-dead feature's constant act(beta) is folded into
    the next layer; an activation-dead one is treated as zero (as `zero_inactive` does). The pruned
    model in eval mode predicts like `zeroed_reference(model, masks, criterion)`; the report gives
    per-layer features, params and MACs before/after and, with `test_loader`, test errors.
    `input_shape` (default: one image of `test_loader`/`loader`, else 1x3x32x32) sizes the MAC count.
    `borders`: 'fold' (constants into the next BN, approximate at padded borders) or 'carry' (exact,
    one carrier channel per layer with a non-zero constant); see `prune_features`.
    """
    masks = dead_masks(model, criterion, threshold, loader)
    return prune_with_report(model, masks, criterion, borders=borders, criterion=criterion, test_loader=test_loader,
                             input_shape=_input_shape(input_shape, test_loader, loader))


