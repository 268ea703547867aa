"""N models of one architecture as one wide network (horizontal fusion, HFTA, Wang et al. MLSys 2021):
the network (`FusedNet`, `unfuse`), its per-model mini-batches (`FusedLoader`), its evaluation and
the per-model explicit penalties (paper Sec. 5.2's regularizers, computed by `regularizers`).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ...data.images import ImageData
from ...data.loaders import epoch_draws, make_loader
from ...nets.models import VGG, BasicNet, ConvBlock, conv_bn_layers
from ...nets.regularizers import explicit_penalty
from ..config import RunConfig

__all__ = ["EVAL_IMAGES_PER_PASS", "fused_evaluate", "fused_inputs", "FusedLoader", "FusedNet", "FusedPenalty",
           "unfuse"]

EVAL_IMAGES_PER_PASS = 2000  # images x models per fused evaluation forward pass (bounds memory)


def _stacked_name(name: str) -> str:
    return name.replace(".", "__")


def _program(template: nn.Module) -> list[tuple]:
    """The template's forward pass as a flat list of ops (kind, state-dict prefix, arguments)."""
    ops: list[tuple] = []

    def visit(module: nn.Module, prefix: str) -> None:
        if isinstance(module, (nn.Sequential, ConvBlock)):
            for name, child in module.named_children():
                visit(child, f"{prefix}{name}.")
            return
        name = prefix[:-1]
        if isinstance(module, nn.Conv2d):
            ops.append(("conv", name, (module.stride, module.padding, module.dilation, module.groups)))
        elif isinstance(module, nn.BatchNorm2d):
            ops.append(("bn", name, (module.momentum, module.eps)))
        elif isinstance(module, nn.BatchNorm1d):
            ops.append(("bn1d", name, (module.momentum, module.eps)))
        elif isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            ops.append(("act", name, (getattr(module, "negative_slope", None),)))
        elif isinstance(module, nn.MaxPool2d):
            ops.append(("maxpool", name, (module.kernel_size, module.stride, module.padding)))
        elif isinstance(module, nn.AvgPool2d):
            ops.append(("avgpool", name, (module.kernel_size, module.stride)))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            ops.append(("adaptive_avg", name, (module.output_size,)))
        elif isinstance(module, nn.Flatten):
            ops.append(("flatten", name, ()))
        elif isinstance(module, nn.Linear):
            ops.append(("linear", name, ()))
        else:
            raise ValueError(f"module {name!r} of type {type(module).__name__} has no fused version; "
                             "supported: Conv2d, BatchNorm1d/2d, ReLU, LeakyReLU, MaxPool2d, AvgPool2d, "
                             "AdaptiveAvgPool2d, Flatten, Linear")

    for name, child in template.named_children():  # BasicNet/VGG: features -> pool -> classifier
        visit(child, f"{name}.")
    return ops


class _FusedLinear(torch.autograd.Function):
    """N linear layers at once: x (N, B, in), weight (N, out, in), bias (N, out) -> (N, B, out).

    The forward is `baddbmm(bias, x, weight^T)`, per model the `addmm` of `nn.Linear`. The backward
    computes each model's gradients with the matrix products of `nn.Linear`'s own backward:
    grad_weight = grad^T @ x, grad_x = grad @ weight, grad_bias = grad summed over the batch.
    Autograd's backward of `baddbmm` would compute grad_weight as (x^T @ grad)^T instead: the same
    numbers up to rounding, but the GEMM's operands swap, and MKL rounds the two orders differently
    (measured: ~1e-17 in float64 on the fc layers' first gradient, torch 2.14.1, AVX512). That last-bit
    difference grows over a run (Adam turns the pure-rounding gradient of a bias feeding BatchNorm1d
    into +-lr steps, which show in eval mode through the running mean), so the fused run would
    no longer reproduce its single run. Under autocast the forward runs in the autocast dtype; the
    backward then runs its products in the dtype of `grad` and returns each gradient in its input's dtype.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.bias_dtype = bias.dtype
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, weight.to(grad.dtype)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(grad.transpose(1, 2), x.to(grad.dtype)).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1).to(ctx.bias_dtype)
        return grad_x, grad_weight, grad_bias


class FusedNet(nn.Module):
    """N `BasicNet`/`VGG` models of one architecture as one wide network (HFTA-style horizontal fusion).

    Every parameter and buffer of the plain models is stacked along a new leading model axis under
    the same state-dict name (dots replaced by '__'), e.g. `features__0__conv__weight` (N, out, in, k, k).
    `forward(x)` takes x of shape (batch, N*3, H, W) -- model i's images in channels 3i..3i+2 -- and
    returns logits of shape (N, batch, classes). In train mode each model's BatchNorm uses the batch
    statistics of its own images only, as in N separate runs.
    """

    def __init__(self, models: list[nn.Module], channels_last: bool = False):
        super().__init__()
        if not models or not all(isinstance(m, (BasicNet, VGG)) for m in models):
            raise ValueError("models must be a non-empty list of BasicNet or VGG instances")
        states = [m.state_dict() for m in models]
        if any(s.keys() != states[0].keys() or any(s[k].shape != states[0][k].shape for k in s) for s in states):
            raise ValueError("models must share one architecture (same state-dict names and shapes)")
        self.size = len(models)
        self.channels_last = channels_last
        self.program = _program(models[0])
        self._template = [copy.deepcopy(models[0]).cpu()]  # a list, so it is not a registered submodule
        param_names = {name for name, _ in models[0].named_parameters()}
        for name in states[0]:
            stacked = torch.stack([s[name].detach() for s in states])
            if name in param_names:
                self.register_parameter(_stacked_name(name), nn.Parameter(stacked))
            else:
                self.register_buffer(_stacked_name(name), stacked)
        self.plain_names = list(states[0])
        self._has = set(self.plain_names)

    def stacked(self, name: str) -> torch.Tensor:
        """The (N, ...) tensor stacking the plain models' `name` (a plain state-dict key)."""
        return getattr(self, _stacked_name(name))

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        """Model `index`'s plain state dict (views into the stacked tensors)."""
        return {name: self.stacked(name)[index] for name in self.plain_names}

    def conv_bn_names(self) -> list[tuple[str, str, str]]:
        """[(layer name C1.., conv prefix, bn prefix)] in the order of `models.conv_bn_layers`."""
        template = self._template[0]
        names = {id(module): name for name, module in template.named_modules()}
        return [(layer, names[id(conv)], names[id(bn)]) for layer, conv, bn in conv_bn_layers(template)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.size
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for kind, name, args in self.program:
            if kind == "conv":
                stride, padding, dilation, groups = args
                weight = self.stacked(f"{name}.weight")
                weight = weight.reshape(n * weight.shape[1], *weight.shape[2:])
                if self.channels_last:
                    weight = weight.contiguous(memory_format=torch.channels_last)
                bias = self.stacked(f"{name}.bias").reshape(-1) if f"{name}.bias" in self._has else None
                x = F.conv2d(x, weight, bias, stride, padding, dilation, groups * n)
            elif kind == "bn":
                x = self._batch_norm(x, name, *args)
            elif kind == "bn1d":  # (N, B, F) -> (B, N*F): each model's features are separate channels
                batch = x.shape[1]
                x = self._batch_norm(x.transpose(0, 1).reshape(batch, -1), name, *args)
                x = x.reshape(batch, n, -1).transpose(0, 1)
            elif kind == "act":
                x = F.relu(x) if args[0] is None else F.leaky_relu(x, args[0])
            elif kind == "maxpool":
                x = F.max_pool2d(x, *args)
            elif kind == "avgpool":
                x = F.avg_pool2d(x, *args)
            elif kind == "adaptive_avg":
                x = F.adaptive_avg_pool2d(x, *args)
            elif kind == "flatten":  # (B, N*C, h, w) -> (N, B, C*h*w), the plain model's flatten order
                x = x.reshape(x.shape[0], n, -1).transpose(0, 1)
            elif kind == "linear":
                weight, bias = self.stacked(f"{name}.weight"), self.stacked(f"{name}.bias")
                x = _FusedLinear.apply(x, weight, bias)
        return x

    def _batch_norm(self, x, name, momentum, eps):
        if self.training:
            self.stacked(f"{name}.num_batches_tracked").add_(1)
        return F.batch_norm(x, self.stacked(f"{name}.running_mean").view(-1),
                            self.stacked(f"{name}.running_var").view(-1), self.stacked(f"{name}.weight").view(-1),
                            self.stacked(f"{name}.bias").view(-1), self.training, momentum, eps)


def unfuse(net: FusedNet, index: int) -> nn.Module:
    """Model `index` of a fused network as a plain `BasicNet`/`VGG` (a copy) on the network's device."""
    if not 0 <= index < net.size:
        raise ValueError(f"index={index!r} is out of range; allowed: 0..{net.size - 1}")
    model = copy.deepcopy(net._template[0])
    model.load_state_dict({name: value.detach().cpu() for name, value in net.model_state(index).items()})
    return model.to(next(net.parameters()).device).train(net.training)


def fused_inputs(x: torch.Tensor, size: int) -> torch.Tensor:
    """One batch (B, C, H, W) shown to all `size` models: (B, size*C, H, W)."""
    return x.repeat(1, size, 1, 1)


@torch.no_grad()
def fused_evaluate(net: FusedNet, data: ImageData) -> tuple[list[float], list[float]]:
    """Per model, (mean cross-entropy, error in %) in eval mode over `data` (like `metrics.evaluate`)."""
    device = next(net.parameters()).device
    loader = make_loader(data, max(1, EVAL_IMAGES_PER_PASS // net.size), train=False, device=device)
    was_training = net.training
    net.eval()
    dtype = next(net.parameters()).dtype
    loss_sum = torch.zeros(net.size, device=device, dtype=dtype)
    wrong = torch.zeros(net.size, device=device)
    for x, y in loader:
        logits = net(fused_inputs(x, net.size).to(loss_sum.dtype))
        labels = y.expand(net.size, -1)
        loss_sum += F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(net.size, -1).sum(1)
        wrong += (logits.argmax(2) != labels).sum(1)
    net.train(was_training)
    count = len(data)
    return (loss_sum / count).tolist(), (100.0 * wrong / count).tolist()


class _Penalty(nn.Module):
    """Calls `regularizers.explicit_penalty` on a plain model; used through `functional_call`."""

    def __init__(self, model: nn.Module, config: RunConfig):
        super().__init__()
        self.model, self.config = model, config

    def forward(self):
        return explicit_penalty(self.model, self.config)


class FusedPenalty:
    """Sum over models of `regularizers.explicit_penalty(model_i, config_i)` on a `FusedNet`.

    The library's own penalty functions run on each model's slices of the stacked parameters
    (`torch.func.functional_call` on the template), so gradients reach the fused parameters and the
    formulas are never duplicated here. Models without an explicit regularizer cost nothing.
    """

    def __init__(self, net: FusedNet, configs):
        self.net = net
        template = net._template[0]
        self.names = [name for name, _ in template.named_parameters()]
        self.terms = [(i, _Penalty(template, c)) for i, c in enumerate(configs)
                      if explicit_penalty(template, c) is not None]

    def __call__(self) -> torch.Tensor | None:
        if not self.terms:
            return None
        total = 0.0
        for i, term in self.terms:
            weights = {f"model.{name}": self.net.stacked(name)[i] for name in self.names}
            total = total + torch.func.functional_call(term, weights, ())
        return total


class FusedLoader:
    """Per-model mini-batches of one in-memory dataset, for a `FusedNet` (GPU-resident, like `GpuLoader`).

    Model i's shuffle and flips are those of `GpuLoader(data, batch_size, train=True, seed=seeds[i])`
    at the same epoch, so batch k of model i holds the same images, flipped the same way, as in its
    single run. Yields (x, y): x float32 (B, N*C, H, W) normalized, y int64 (N, B).
    """

    def __init__(self, data: ImageData, batch_size: int, seeds: list[int], device="cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive number of images")
        self.batch_size, self.seeds, self.device = batch_size, list(seeds), torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.scale = (torch.tensor(data.std, device=self.device) * 255).view(1, 1, -1, 1, 1)
        self.shift = (torch.tensor(data.mean, device=self.device) * 255).view(1, 1, -1, 1, 1)
        self.redraw = data.redraw
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if self.redraw is not None and epoch != self.epoch:  # a stream: every model sees the same fresh images
            self.images, self.labels = (t.to(self.device) for t in self.redraw(epoch))
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def epoch_order(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(order, flips), each (N, images): the draws of `GpuLoader.__iter__` for every seed."""
        orders, flips = zip(*(epoch_draws(seed, self.epoch, len(self.labels)) for seed in self.seeds))
        return torch.stack(orders).to(self.device), torch.stack(flips).to(self.device)

    def __iter__(self):
        order, flips = self.epoch_order()
        models = len(self.seeds)
        for batch in range(len(self)):
            rows = order[:, batch * self.batch_size:(batch + 1) * self.batch_size]  # (N, B)
            x = (self.images[rows.T].float() - self.shift) / self.scale  # (B, N, C, H, W)
            flip = flips[:, batch * self.batch_size:(batch + 1) * self.batch_size].T[:, :, None, None, None]
            x = torch.where(flip, x.flip(4), x)
            yield x.reshape(x.shape[0], models * x.shape[2], *x.shape[3:]), self.labels[rows]
