"""Fused sweeps: N runs that differ only in optimizer hyperparameters and seed, trained as one wide network.

The paper's protocol (Sec. 2.1: batch 40, 325 epochs) leaves a GPU launch-bound, and the batch size
cannot be raised without changing the science. Horizontal fusion (HFTA, Wang et al., MLSys 2021)
keeps every model at its own batch of 40 and stacks the N models along the channel axis:

* every conv becomes one grouped conv (groups = N) over activations laid out (batch, N*C, H, W);
  BatchNorm2d over N*C channels then computes each model's statistics over its own 40 images only;
* the fc head runs as batched matmuls over (N, batch, features);
* each model draws its own shuffled, flipped mini-batch (seed, epoch), exactly as `data.GpuLoader`;
* `FusedOptimizer` steps all models at once with per-model lr, L2 and WD held as tensors, with the
  L2-vs-WD semantics of `sparsity_lib.optim` (coupled L2 in the gradient, then theta *= 1 - wd).

`train_group` returns one record per config in the format of `train.train`; final metrics come from
the library's own functions applied to each model unfused back into a plain `BasicNet`/`VGG`.
`run_or_load_group` is the store-aware entry point for sweeps (`--fused auto|on|off`).
"""
from __future__ import annotations

import copy
import hashlib
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .data import ImageData, epoch_draws, make_loader
from .experiments import RunConfig, RunStore, config_hash, resolve_config
from .models import VGG, BasicNet, ConvBlock, _check_choice, conv_bn_layers
from .optim import DEFAULT_LR, bn_param_groups
from .regularizers import explicit_penalty
from .sparsity import GAMMA_THRESHOLD, bn_parameters
from .train import (MAX_EVALUATIONS, build_model, check_finite, final_metrics, first_bad_step, git_commit,
                    iterations, load_splits, restore_checkpoint, lr_factor, pick_device, save_checkpoint,
                    snapshot_epochs, training_device)
from .train import train as train_single

# Fields that may differ inside a fused group: they change only the initialization (seed, BN init),
# the optimizer's per-model numbers, the explicit penalties, or bookkeeping. Everything else
# (data, architecture, batch size, schedule) must be shared so the N models run in lockstep.
PER_MODEL_FIELDS = ("seed", "lr", "l2", "wd", "gamma_lr_scale", "beta_lr_scale", "slimming_l1", "l1l2",
                    "bn_weight_init", "bn_bias_init", "optimizer", "snapshot_layers", "snapshot_count")
# Optimizers with a fused step, by family; a group must stay inside one family (Adam and AMSGrad
# share one: AMSGrad is Adam with a running max of the second moment, switched per model).
FAMILIES = {"sgd": "sgd", "adam": "adam", "amsgrad": "adam", "adamax": "adamax", "rmsprop": "rmsprop",
            "adagrad": "adagrad", "adadelta": "adadelta"}
FUSED_MODES = ("auto", "on", "off")
SPEED_OPTIONS = ("amp", "channels_last", "compile")  # train_group's options that change only speed and rounding
EVAL_IMAGES_PER_PASS = 2000  # images x models per fused evaluation forward pass (bounds memory)

# torch defaults / paper values, as in optim._CLASSES (Sec. 2.1).
ADAM_BETAS, ADAM_EPS = (0.9, 0.99), 1e-8
ADAMAX_BETAS, ADAMAX_EPS = (0.9, 0.999), 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10  # lr_decay 0, initial accumulator 0
ADADELTA_RHO, ADADELTA_EPS = 0.9, 1e-6
SGD_MOMENTUM = 0.9


# ---------------------------------------------------------------------------------- grouping
def can_fuse(configs) -> tuple[bool, str]:
    """(True, "") when `configs` can train as one fused group, else (False, why not)."""
    configs = list(configs)
    if not configs:
        return False, "no configs"
    if not all(isinstance(c, RunConfig) for c in configs):
        return False, "every item must be a RunConfig"
    if len({config_hash(c) for c in configs}) != len(configs):
        return False, "duplicate configs in the group"
    first = configs[0]
    if first.dataset in ("auto", "imagenet"):
        return False, (f"dataset={first.dataset!r}: fusion needs an in-memory dataset resolved beforehand "
                       "(cifar10, cifar100, tinyimagenet, synthetic)")
    for c in configs:
        if c.optimizer not in FAMILIES:
            return False, f"optimizer={c.optimizer!r} has no fused step; fused: {', '.join(FAMILIES)}"
    families = {FAMILIES[c.optimizer] for c in configs}
    if len(families) > 1:
        return False, f"optimizers of different families {sorted(families)} cannot share a fused step"
    for name in RunConfig.__dataclass_fields__:
        if name in PER_MODEL_FIELDS:
            continue
        values = {repr(getattr(c, name)) for c in configs}
        if len(values) > 1:
            return False, f"field {name!r} differs inside the group ({', '.join(sorted(values))}); it must be shared"
    return True, ""


def fuse_key(config: RunConfig) -> tuple:
    """Configs with equal keys can share a fused group (the shared fields plus the optimizer family)."""
    shared = tuple((name, repr(getattr(config, name))) for name in RunConfig.__dataclass_fields__
                   if name not in PER_MODEL_FIELDS)
    return shared + (("family", FAMILIES.get(config.optimizer, config.optimizer)),)


def fusable_groups(configs, max_models: int = 32) -> list[list[RunConfig]]:
    """`configs` partitioned into groups of at most `max_models` that `can_fuse`, in first-seen order.

    A config that cannot fuse (an on-disk dataset such as ImageNet) comes back as a group of one.
    """
    if not (isinstance(max_models, int) and max_models >= 1):
        raise ValueError(f"max_models={max_models!r} is not allowed; expected an int >= 1")
    buckets: dict[tuple, list[RunConfig]] = {}
    singles: list[list[RunConfig]] = []
    for config in configs:
        if config.optimizer not in FAMILIES or config.dataset in ("auto", "imagenet"):
            singles.append([config])
        else:
            buckets.setdefault(fuse_key(config), []).append(config)
    groups = [bucket[i:i + max_models] for bucket in buckets.values() for i in range(0, len(bucket), max_models)]
    return groups + singles


def group_key(configs) -> str:
    """16 hex digits naming a group: sha256 of its members' config hashes, sorted (order-free)."""
    text = "fused:" + ",".join(sorted(config_hash(c) for c in configs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------- the network
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
    """Per model, (mean cross-entropy, error in %) in eval mode over `data` (like `train.evaluate`)."""
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


# ----------------------------------------------------------------------------------- the data
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


# ------------------------------------------------------------------------------ the optimizer
class FusedOptimizer:
    """One optimizer step for the N models of a `FusedNet`, each with its own lr, L2 and WD.

    Same update as `optim.make_optimizer(model, config.optimizer, lr, l2, wd, gamma_lr_scale,
    beta_lr_scale)` on each model (paper Sec. 2.1 and Sec. 3): coupled L2 adds l2*theta to the
    gradient before the update (torch's `weight_decay`), decoupled WD multiplies theta by (1 - wd)
    after it (constant, not following the LR schedule). BatchNorm weights ("gamma") and biases
    ("beta") of every BN layer get their lr scaled by gamma_lr_scale / beta_lr_scale. Supported: every
    optimizer of `optim.OPTIMIZERS` with its hyperparameters there: SGD (momentum 0.9), Adam/AMSGrad
    (betas 0.9, 0.99; both may share a group), Adamax, RMSprop, Adagrad, Adadelta (rho 0.9, eps 1e-6).
    Per-model numbers are (N,) tensors broadcast over each stacked parameter, so a step costs the
    same number of kernel launches for any N.
    """

    def __init__(self, net: FusedNet, configs: list[RunConfig]):
        ok, why = can_fuse(configs)
        if not ok:
            raise ValueError(f"configs cannot share a fused optimizer: {why}")
        if len(configs) != net.size:
            raise ValueError(f"got {len(configs)} configs for a FusedNet of {net.size} models; they must match")
        self.net, self.family = net, FAMILIES[configs[0].optimizer]
        device = next(net.parameters()).device
        template = net._template[0]
        names = {id(p): name for name, p in template.named_parameters()}
        self.kinds = {names[id(p)]: kind for kind, ps in bn_param_groups(template).items() for p in ps}
        f64 = dict(dtype=torch.float64, device=device)
        self.base_lr = torch.tensor([c.lr or DEFAULT_LR[c.optimizer] for c in configs], **f64)
        self.lr_scale = {"gamma": torch.tensor([c.gamma_lr_scale for c in configs], **f64),
                         "beta": torch.tensor([c.beta_lr_scale for c in configs], **f64),
                         "other": torch.ones(len(configs), **f64)}
        self.dtype = next(net.parameters()).dtype
        self.l2 = torch.tensor([c.l2 for c in configs], dtype=self.dtype, device=device)
        # 1 - wd in double, then rounded once to the parameter dtype, as torch does with the Python scalar.
        self.wd_factor = (1.0 - torch.tensor([c.wd for c in configs], **f64)).to(self.dtype)
        self.amsgrad = torch.tensor([c.optimizer == "amsgrad" for c in configs], device=device)
        self.use_l2, self.use_wd = bool(self.l2.any()), bool((self.wd_factor != 1).any())
        self.step_count = 0
        self.state = {name: self._zero_state(net.stacked(name)) for name in self.kinds}

    def _zero_state(self, param: torch.Tensor) -> dict[str, torch.Tensor]:
        amsgrad = ("max_exp_avg_sq",) if bool(self.amsgrad.any()) else ()
        buffers = {"sgd": ("momentum",), "adam": ("exp_avg", "exp_avg_sq") + amsgrad, "adamax": ("exp_avg", "exp_inf"),
                   "rmsprop": ("square_avg",), "adagrad": ("sum",),
                   "adadelta": ("square_avg", "acc_delta")}[self.family]
        return {b: torch.zeros_like(param, memory_format=torch.preserve_format) for b in buffers}

    def zero_grad(self) -> None:
        for name in self.kinds:
            self.net.stacked(name).grad = None

    @staticmethod
    def _per_model(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (like.dim() - 1)))

    def learning_rates(self, factor: float) -> dict[str, torch.Tensor]:
        """Per param kind, the (N,) float64 lr = base lr * schedule factor * kind scale (as `train.set_lr`)."""
        return {kind: self.base_lr * factor * scale for kind, scale in self.lr_scale.items()}

    @torch.no_grad()
    def step(self, factor: float = 1.0) -> None:
        """One update of every model; `factor` is the LR schedule multiplier (`train.lr_factor`)."""
        self.step_count += 1
        rates = self.learning_rates(factor)
        step_scale = {"adam": 1 - ADAM_BETAS[0] ** self.step_count,
                      "adamax": 1 - ADAMAX_BETAS[0] ** self.step_count}.get(self.family, 1.0)
        neg_steps = {kind: (-(lr / step_scale)).to(self.dtype) for kind, lr in rates.items()}
        for name, kind in self.kinds.items():
            param = self.net.stacked(name)
            if param.grad is None:  # as torch's optimizers: a parameter without gradient is left alone
                continue
            grad = param.grad
            if self.use_l2:
                grad = torch.addcmul(grad, param, self._per_model(self.l2, param))
            neg_step = self._per_model(neg_steps[kind], param)
            getattr(self, f"_{self.family}")(param, grad, neg_step, self.state[name])
            if self.use_wd:
                param.mul_(self._per_model(self.wd_factor, param))

    def _sgd(self, param, grad, neg_lr, state):
        buffer = state["momentum"].mul_(SGD_MOMENTUM).add_(grad)  # first step: 0.9 * 0 + g = g, as torch
        param.addcmul_(buffer, neg_lr)

    def _adam(self, param, grad, neg_step, state):
        beta1, beta2 = ADAM_BETAS
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        second = state["exp_avg_sq"]
        if "max_exp_avg_sq" in state:
            torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
            second = torch.where(self._per_model(self.amsgrad, param), state["max_exp_avg_sq"], second)
        denom = (second.sqrt() / (1 - beta2 ** self.step_count) ** 0.5).add_(ADAM_EPS)
        param.addcdiv_(state["exp_avg"] * neg_step, denom)  # torch: param + (value * m) / denom

    def _adamax(self, param, grad, neg_step, state):
        beta1, beta2 = ADAMAX_BETAS
        state["exp_avg"].lerp_(grad, 1 - beta1)
        torch.maximum(state["exp_inf"].mul_(beta2), grad.abs().add_(ADAMAX_EPS), out=state["exp_inf"])
        param.addcdiv_(state["exp_avg"] * neg_step, state["exp_inf"])

    def _rmsprop(self, param, grad, neg_lr, state):
        state["square_avg"].mul_(RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - RMSPROP_ALPHA)
        param.addcdiv_(grad * neg_lr, state["square_avg"].sqrt().add_(RMSPROP_EPS))

    def _adagrad(self, param, grad, neg_lr, state):
        state["sum"].addcmul_(grad, grad, value=1)
        param.addcdiv_(grad * neg_lr, state["sum"].sqrt().add_(ADAGRAD_EPS))

    def _adadelta(self, param, grad, neg_lr, state):
        state["square_avg"].mul_(ADADELTA_RHO).addcmul_(grad, grad, value=1 - ADADELTA_RHO)
        std = state["square_avg"].add(ADADELTA_EPS).sqrt_()
        delta = state["acc_delta"].add(ADADELTA_EPS).sqrt_().div_(std).mul_(grad)
        state["acc_delta"].mul_(ADADELTA_RHO).addcmul_(delta, delta, value=1 - ADADELTA_RHO)
        param.addcmul_(delta, neg_lr)

    def state_dict(self) -> dict:
        return {"family": self.family, "step": self.step_count, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        if saved["family"] != self.family or saved["state"].keys() != self.state.keys():
            raise ValueError(f"optimizer state of family {saved['family']!r} does not fit this {self.family!r} group")
        self.step_count = saved["step"]
        for name, buffers in saved["state"].items():
            for key, value in buffers.items():
                self.state[name][key].copy_(value)


# ------------------------------------------------------------------------------------ training
def _inactive_gamma(net: FusedNet, threshold: float = GAMMA_THRESHOLD) -> list[dict[str, int]]:
    """Per model, {layer: features with |gamma| < threshold} (as `sparsity.gamma_sparsity`)."""
    counts = {layer: (net.stacked(f"{bn}.weight").detach().abs() < threshold).sum(1).tolist()
              for layer, _, bn in net.conv_bn_names()}
    return [{layer: int(values[i]) for layer, values in counts.items()} for i in range(net.size)]


def train_step(net: FusedNet, optimizer: FusedOptimizer, x: torch.Tensor, y: torch.Tensor, factor: float = 1.0,
               *, penalty: FusedPenalty | None = None, forward=None, amp: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of every model on its own batch; returns per-model (mean loss, wrong count).

    x: (B, N*C, H, W) from `FusedLoader`; y: (N, B). Each model's loss is its mean cross-entropy
    (plus its explicit regularizer from `penalty`), and the sum over models is differentiated, so each
    model receives exactly the gradient of its own loss. `forward` replaces `net` (e.g. a
    `torch.compile`d net); `amp` runs it under bf16 autocast (CUDA or CPU).
    """
    dtype = next(net.parameters()).dtype  # float32; float64 when tests set torch's default dtype
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = (net if forward is None else forward)(x.to(dtype))
    logits = logits.to(dtype)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(net.size, -1).mean(1)
    extra = penalty() if penalty is not None else None
    optimizer.zero_grad()
    (losses.sum() if extra is None else losses.sum() + extra).backward()
    optimizer.step(factor)
    return losses.detach(), (logits.detach().argmax(2) != y).sum(1)


def _run_name(config: RunConfig, key: str, size: int) -> str:
    return f"{key} ({config.label()} seed {config.seed}, in a fused group of {size})"


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"


def train_group(configs, *, data_root=None, device: str = "auto", checkpoint_path=None, weights_paths=None,
                checkpoint_every: int = 1, progress: bool = True, callback=None, amp: bool = False,
                channels_last: bool = False, compile: bool = False) -> list[dict]:
    """Train `configs` together as one `FusedNet`; return one `train.train`-format record per config.

    Each model is initialized by `train.build_model` from its own seed, sees its own shuffled
    mini-batches of `batch_size` images, and follows the LR schedule of `train.iterations` /
    `train.lr_factor`, so its record matches its single run up to float rounding. The checkpoint at
    `checkpoint_path` holds the whole group (keyed by `group_key`); a restarted call resumes exactly.
    `weights_paths[i]` receives model i's final plain state dict. `callback(epoch, entries)` gets
    the per-model history entries after each epoch. Speed options, on any device: `amp` runs the
    forward pass under bf16 autocast, `channels_last` uses NHWC activations, `compile` wraps the
    fused forward in `torch.compile`. They are off by default because they change the float rounding;
    `benchmarks/bench_precision.py` measures whether that moves results beyond seed-to-seed noise.
    Each record's provenance names the options it was trained with.
    """
    started = time.time()
    configs = list(configs)
    ok, why = can_fuse(configs)
    if not ok:
        raise ValueError(f"configs cannot train as one fused group: {why}")
    weights_paths = [None] * len(configs) if weights_paths is None else list(weights_paths)
    if len(weights_paths) != len(configs):
        raise ValueError(f"weights_paths has {len(weights_paths)} entries for {len(configs)} configs; they must match")
    # A canonical member order (by config hash) so a checkpoint fits the group however it is listed.
    order = sorted(range(len(configs)), key=lambda i: config_hash(configs[i]))
    members = [configs[i] for i in order]
    keys, key = [config_hash(c) for c in members], group_key(members)
    first = members[0]
    dev, flush_denormal = training_device(device)

    train_data, test_data = load_splits(first, data_root)
    # Moved once: the fused loader, the eval loaders and the fused evaluation share these copies.
    train_data.images, test_data.images = train_data.images.to(dev), test_data.images.to(dev)
    loader = FusedLoader(train_data, first.batch_size, [c.seed for c in members], device=dev)
    train_eval_loader = make_loader(train_data, 500, train=False, device=dev)
    test_loader = make_loader(test_data, 500, train=False, device=dev)
    models = [build_model(c, train_data.num_classes, train_data.image_size) for c in members]
    net = FusedNet(models, channels_last=channels_last).to(dev)
    optimizer = FusedOptimizer(net, members)
    penalty = FusedPenalty(net, members)
    forward = torch.compile(net) if compile else net
    total_steps, drops = iterations(first, len(train_data))
    num_epochs = math.ceil(total_steps / len(loader))
    eval_every = max(1, num_epochs // MAX_EVALUATIONS)
    snapshots_at = [snapshot_epochs(c, num_epochs) for c in members]

    state = {"epoch": 0, "step": 0, "histories": [[] for _ in members], "snapshots": [{} for _ in members],
             "elapsed": 0.0}
    saved = restore_checkpoint(checkpoint_path, key, net, optimizer, state.keys())
    if saved is not None:
        state = saved
    else:
        for i, config in enumerate(members):
            if 0 in snapshots_at[i]:
                state["snapshots"][i]["0"] = bn_parameters(models[i], config.snapshot_layers)
    del models

    prior_elapsed = state["elapsed"]
    bar = tqdm(total=total_steps, initial=state["step"], desc=f"fused x{net.size} {first.optimizer}",
               disable=not progress, mininterval=2.0, leave=False)
    size = net.size
    for epoch in range(state["epoch"], num_epochs):
        loader.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros(size, device=dev)
        wrong = torch.zeros(size, device=dev)
        bad_step = torch.full((size,), -1, device=dev)
        seen = 0
        for x, y in loader:
            if state["step"] >= total_steps:
                break
            losses, errors = train_step(net, optimizer, x, y, lr_factor(state["step"], drops), penalty=penalty,
                                        forward=forward, amp=amp)
            bad_step = first_bad_step(losses, state["step"] + 1, bad_step)
            loss_sum += losses * y.shape[1]
            wrong += errors
            seen += y.shape[1]
            state["step"] += 1
            bar.update(1)
        train_loss = (loss_sum / max(1, seen)).tolist()
        train_err = (100.0 * wrong / max(1, seen)).tolist()
        for i, (config, bad) in enumerate(zip(members, bad_step.tolist())):  # before any checkpoint
            check_finite(train_loss[i], _run_name(config, keys[i], size), bad if bad >= 0 else state["step"], bar=bar)
        inactive = _inactive_gamma(net)
        evaluated = (epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs
        test_loss, test_err = fused_evaluate(net, test_data) if evaluated else (None, None)
        entries = []
        for i, config in enumerate(members):
            base_lr = config.lr or DEFAULT_LR[config.optimizer]
            entry = {"epoch": epoch + 1, "step": state["step"], "lr": base_lr * lr_factor(state["step"] - 1, drops),
                     "train_loss": train_loss[i], "train_err": train_err[i], "inactive_gamma": inactive[i]}
            if evaluated:
                entry["test_loss"], entry["test_err"] = test_loss[i], test_err[i]
            if epoch + 1 in snapshots_at[i]:
                state["snapshots"][i][str(epoch + 1)] = bn_parameters(unfuse(net, i), config.snapshot_layers)
            state["histories"][i].append(entry)
            entries.append(entry)
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{sum(train_loss) / size:.3f}")
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == num_epochs):
            state["elapsed"] = prior_elapsed + time.time() - started
            save_checkpoint(Path(checkpoint_path), {"config_hash": key, "members": keys, "model": net.state_dict(),
                                                    "optimizer": optimizer.state_dict(),
                                                    "rng": torch.get_rng_state(), "state": state})
        if callback is not None:
            callback(epoch + 1, [entries[order.index(j)] for j in range(size)])  # caller's order
    bar.close()

    records = []
    for i, config in enumerate(members):
        model = unfuse(net, i)
        history = state["histories"][i]
        train_loss, train_err = (history[-1]["train_loss"], history[-1]["train_err"]) if history else (math.nan,) * 2
        final, universality = final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err)
        check_finite(final["test_loss"], _run_name(config, keys[i], size), state["step"], "test loss")
        records.append({"config": config.to_dict(), "config_hash": keys[i], "final": final, "history": history,
                        "snapshots": state["snapshots"][i], "universality": universality,
                        "bn": bn_parameters(model), "model": model})
    wall = round(prior_elapsed + time.time() - started, 1)
    results = [None] * size
    for i, record in zip(order, records):
        model = record.pop("model")
        if weights_paths[i] is not None:
            record["weights_sha256"] = save_checkpoint(Path(weights_paths[i]), model.state_dict())
        record["provenance"] = {
            "dataset_used": train_data.name, "train_images": len(train_data), "test_images": len(test_data),
            "image_size": train_data.image_size, "steps": total_steps, "device": str(dev),
            "device_name": _device_name(dev), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": wall, "resumed": saved is not None,
            "flush_denormal": flush_denormal, "fused_models": size,  # wall_time_s is the whole group's
            "precision": "bf16 autocast" if amp else str(next(net.parameters()).dtype).replace("torch.", ""),
            "channels_last": channels_last, "compiled": compile,
        }
        results[i] = record
    return results


def group_checkpoint_path(store: RunStore, configs) -> Path:
    """Where a fused group's checkpoint lives in a run store: checkpoints/group-<group_key>.pt."""
    return store.root / "checkpoints" / f"group-{group_key(configs)}.pt"


def run_or_load_group(configs, *, store: RunStore | str | Path | None = None, data_root=None, device: str = "auto",
                      profile: str = "", progress: bool = True, fresh: bool = False, fused: str = "auto",
                      max_models: int = 32, amp: bool = False, channels_last: bool = False,
                      compile: bool = False) -> list[dict]:
    """Records of `configs` (in order): stored ones loaded, missing ones trained in fused groups and stored.

    fused: 'auto' fuses groups of two or more on CUDA only (on CPU a grouped conv is not faster than
    separate runs), 'on' fuses whenever `can_fuse` allows (any device), 'off' trains one run at a
    time with `train.train`. Each finished record is written exactly as `run_or_load` writes it.
    `amp`, `channels_last` and `compile` are `train_group`'s speed options (fused groups only).
    """
    _check_choice("fused", fused, FUSED_MODES)
    store = store if isinstance(store, RunStore) else RunStore(store)
    resolved = [resolve_config(c, data_root)[0] for c in configs]
    found = {} if fresh else {config_hash(c): store.load(config_hash(c)) for c in resolved}
    missing = list({config_hash(c): c for c in resolved if found.get(config_hash(c)) is None}.values())
    fuse_here = fused == "on" or (fused == "auto" and pick_device(device).type == "cuda")
    speed = {"amp": amp, "channels_last": channels_last, "compile": compile}
    if any(speed.values()) and not fuse_here:
        raise ValueError(f"{', '.join(k for k, v in speed.items() if v)}: options of the fused trainer, which "
                         f"fused={fused!r} does not use here; pass fused='on' (or 'auto' on CUDA)")
    groups = fusable_groups(missing, max_models) if fuse_here else [[c] for c in missing]
    if groups:
        store.check_writable()
        store.remove_stale_temporaries()
    for group in groups:
        if len(group) > 1 or (any(speed.values()) and can_fuse(group)[0]):
            checkpoint = group_checkpoint_path(store, group)
            records = train_group(group, data_root=data_root, device=device, checkpoint_path=checkpoint,
                                  weights_paths=[store.weights_path(config_hash(c)) for c in group],
                                  progress=progress, **speed)
        else:
            checkpoint = store.checkpoint_path(config_hash(group[0]))
            records = [train_single(group[0], data_root=data_root, device=device, checkpoint_path=checkpoint,
                                    weights_path=store.weights_path(config_hash(group[0])), progress=progress)]
        for record in records:
            record["provenance"]["profile"] = profile
            store.save(record)
            found[record["config_hash"]] = record
        checkpoint.unlink(missing_ok=True)
    return [found[config_hash(c)] for c in resolved]
