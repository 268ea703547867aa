"""One optimizer step for the N models of a `FusedNet`, each with its own lr, L2 and WD (paper Sec. 2.1,
Sec. 3): the update of `optim.make_optimizer` on every model at once.
"""
from __future__ import annotations

import torch

from ...nets.optim import DEFAULT_LR, bn_param_groups
from ..config import RunConfig
from .groups import FAMILIES, can_fuse
from .net import FusedNet

__all__ = ["FusedOptimizer"]

# torch defaults / paper values, as in optim._CLASSES (Sec. 2.1).
ADAM_BETAS, ADAM_EPS = (0.9, 0.99), 1e-8
ADAMAX_BETAS, ADAMAX_EPS = (0.9, 0.999), 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10  # lr_decay 0, initial accumulator 0
ADADELTA_RHO, ADADELTA_EPS = 0.9, 1e-6
SGD_MOMENTUM = 0.9


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
        """Per param kind, the (N,) float64 lr = base lr * schedule factor * kind scale (as `training.set_lr`)."""
        return {kind: self.base_lr * factor * scale for kind, scale in self.lr_scale.items()}

    @torch.no_grad()
    def step(self, factor: float = 1.0) -> None:
        """One update of every model; `factor` is the LR schedule multiplier (`training.lr_factor`)."""
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
