"""Optimizers of the paper with coupled L2 and decoupled weight decay (Sec. 2.1 and Sec. 3).

The paper compares two ways to shrink weights, with coefficient lambda, gradient g and learning rate lr:

* **L2 regularization** (`l2`, coupled): the gradient becomes g + lambda*theta *before* the optimizer's
  update. This is exactly torch's `weight_decay=` argument of SGD/Adam/Adamax/Adagrad/Adadelta/
  RMSprop, so we pass it there. It applies to every parameter, BN gamma and beta included. In
  adaptive methods the term lambda*theta is divided by the running gradient scale, so a feature whose
  task gradient is (nearly) zero shrinks by about lr per Adam step whatever lambda is -- the
  "Interaction of L2 regularizer with Adam" of Sec. 3 that drives gamma to zero.
* **Weight decay** (`wd`, decoupled, Loshchilov & Hutter): *after* each update step,
  theta <- (1 - lambda) * theta. The factor is constant: it does not follow LR schedule changes,
  because the paper defines WD as "theta is multiplied by (1 - lambda) after the update step".
* **PyTorch's AdamW** is *not* our WD: it multiplies by (1 - lr*lambda), so its per-step decay is
  smaller by the factor lr (1e-3 for Adam) and it follows the LR schedule. We never use it.

Both `l2` and `wd` may be nonzero at once. The decoupled factor is stored in every param group under
`"decoupled_wd"` and applied by a step post-hook, so it survives `state_dict()`/`load_state_dict()`.
"""
from __future__ import annotations

from collections.abc import Iterable
from numbers import Real

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["adagrad_steps_to_threshold", "bn_param_groups", "DEFAULT_LR", "l2_vs_wd_example", "make_optimizer",
           "OPTIMIZERS", "simulate_weight"]

OPTIMIZERS = ("sgd", "adam", "amsgrad", "adamax", "adagrad", "adadelta", "rmsprop")

# Base LRs of Sec. 2.1 / supplement Sec. 4. The supplement lists none for Adamax and RMSProp: Adamax
# keeps torch's default (2e-3, also Kingma & Ba's), RMSProp uses 1e-3 (Hinton's lecture value and the
# Keras default) rather than torch's 1e-2, to sit with the rest of the Adam family.
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "amsgrad": 1e-3, "adamax": 2e-3, "adagrad": 1e-2,
              "adadelta": 1.0, "rmsprop": 1e-3}

# Paper hyperparameters (Sec. 2.1). Adamax/RMSProp/Adagrad: torch defaults besides the LR.
_CLASSES = {"sgd": (torch.optim.SGD, {"momentum": 0.9}),
            "adam": (torch.optim.Adam, {"betas": (0.9, 0.99), "eps": 1e-8}),
            "amsgrad": (torch.optim.Adam, {"betas": (0.9, 0.99), "eps": 1e-8, "amsgrad": True}),
            "adamax": (torch.optim.Adamax, {}),
            "adagrad": (torch.optim.Adagrad, {}),
            "adadelta": (torch.optim.Adadelta, {"rho": 0.9, "eps": 1e-6}),
            "rmsprop": (torch.optim.RMSprop, {})}


def bn_param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters split into BatchNorm weights ("gamma"), BN biases ("beta") and "other".

    Every trainable parameter of `model` appears exactly once (shared ones too), in
    `model.parameters()` order; frozen parameters (requires_grad=False) are left out.
    """
    gamma_ids, beta_ids = set(), set()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.weight is not None:
                gamma_ids.add(id(module.weight))
            if module.bias is not None:
                beta_ids.add(id(module.bias))
    groups: dict[str, list[nn.Parameter]] = {"gamma": [], "beta": [], "other": []}
    for p in model.parameters():  # deduplicates shared parameters
        if not p.requires_grad:
            continue
        name = "gamma" if id(p) in gamma_ids else "beta" if id(p) in beta_ids else "other"
        groups[name].append(p)
    return groups


@torch.no_grad()
def _apply_decoupled_wd(optimizer: torch.optim.Optimizer, _args, _kwargs) -> None:
    """Step post-hook: theta <- (1 - group["decoupled_wd"]) * theta for params that got a gradient."""
    for group in optimizer.param_groups:
        wd = group.get("decoupled_wd", 0.0)
        params = [p for p in group["params"] if p.grad is not None]  # as torch's step skips the rest
        if wd and params:
            torch._foreach_mul_(params, 1.0 - wd)  # one fused launch per group on GPU


def _check_positive(param: str, value) -> float:
    if not (isinstance(value, Real) and value > 0):
        raise ValueError(f"{param}={value!r} is not allowed; expected a number > 0")
    return float(value)


def make_optimizer(params_or_model, name: str, lr: float | None = None, l2: float = 0.0,
                   wd: float = 0.0, gamma_lr_scale: float = 1.0, beta_lr_scale: float = 1.0,
                   **kw) -> torch.optim.Optimizer:
    """A torch optimizer `name` (one of OPTIMIZERS, any case) with the paper's hyperparameters.

    lr: base learning rate (None: DEFAULT_LR[name]). l2: coupled L2 coefficient, g += l2*theta before
    the update (torch `weight_decay`). wd: decoupled weight decay, theta *= (1 - wd) after every
    `step()`, constant under LR schedules (Sec. 2.1; see the module docstring for L2 vs WD vs AdamW).
    `kw` overrides the paper defaults and goes to the torch class (e.g. betas=..., momentum=...).

    Given an `nn.Module`, params are grouped by `bn_param_groups`; each group has keys "name"
    ("gamma"/"beta"/"other"), "lr_scale" (gamma_lr_scale/beta_lr_scale/1.0), "lr" = lr * lr_scale and
    "decoupled_wd". Empty groups are omitted. An LR schedule should set
    `group["lr"] = base_lr * factor * group["lr_scale"]`. Given an iterable of parameters there is one
    group named "all" (lr_scale 1.0) and both scales must be 1.0, since BN parameters cannot be told apart.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"name={name!r} is not a known optimizer; expected one of {OPTIMIZERS}")
    lr = DEFAULT_LR[key] if lr is None else _check_positive("lr", lr)
    if not (isinstance(l2, Real) and l2 >= 0):
        raise ValueError(f"l2={l2!r} is not allowed; expected a number >= 0")
    if not (isinstance(wd, Real) and 0 <= wd < 1):
        raise ValueError(f"wd={wd!r} is not allowed; expected a number in [0, 1)")
    gamma_lr_scale = _check_positive("gamma_lr_scale", gamma_lr_scale)
    beta_lr_scale = _check_positive("beta_lr_scale", beta_lr_scale)
    if "weight_decay" in kw:
        raise ValueError("weight_decay is not accepted; use l2= (coupled L2) or wd= (decoupled decay)")

    if isinstance(params_or_model, nn.Module):
        split = bn_param_groups(params_or_model)
        scales = {"gamma": gamma_lr_scale, "beta": beta_lr_scale, "other": 1.0}
        named = [(g, split[g], scales[g]) for g in ("gamma", "beta", "other") if split[g]]
    else:
        if gamma_lr_scale != 1.0 or beta_lr_scale != 1.0:
            raise ValueError(f"gamma_lr_scale={gamma_lr_scale!r}, beta_lr_scale={beta_lr_scale!r}: "
                             "scales other than 1.0 need an nn.Module to find BatchNorm parameters; "
                             "pass the model instead of an iterable of parameters")
        params = list(params_or_model) if isinstance(params_or_model, Iterable) else [params_or_model]
        if not all(isinstance(p, torch.Tensor) for p in params):
            raise ValueError("params_or_model must be an nn.Module or an iterable of tensors "
                             "(param-group dicts are not supported; pass the model)")
        named = [("all", params, 1.0)]
    groups = [{"params": ps, "name": g, "lr_scale": s, "lr": lr * s, "decoupled_wd": float(wd)}
              for g, ps, s in named]

    cls, defaults = _CLASSES[key]
    optimizer = cls(groups, lr=lr, weight_decay=float(l2), **{**defaults, **kw})
    # Registered even when wd == 0 so a state_dict with decoupled_wd > 0 loaded later still decays.
    optimizer.register_step_post_hook(_apply_decoupled_wd)
    return optimizer


def simulate_weight(optimizer: str, *, l2: float = 0.0, wd: float = 0.0, lr: float | None = None,
                    steps: int = 1000, theta0: float = 1.0, grad_every: int = 0,
                    grad_value: float = 0.0, seed: int = 0, **kw) -> np.ndarray:
    """Trajectory of one scalar weight under `make_optimizer(optimizer, ...)` (paper Fig. 4, Sec. 3).

    At step t (0-based) the task gradient is `grad_value` if `grad_every > 0 and t % grad_every == 0`,
    else 0; the optimizer adds L2 and applies WD as in training. Returns theta after 0..steps steps
    (length steps+1, starting at theta0), float64 so the values show the update rule rather than
    float32 rounding. Deterministic; `seed` seeds torch's RNG inside a forked RNG state (the global
    RNG is left untouched) in case an optimizer ever draws random numbers.
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps={steps!r} is not allowed; expected an int >= 0")
    if not (isinstance(grad_every, int) and grad_every >= 0):
        raise ValueError(f"grad_every={grad_every!r} is not allowed; expected an int >= 0 (0: never)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        theta = nn.Parameter(torch.tensor([float(theta0)], dtype=torch.float64))
        opt = make_optimizer([theta], optimizer, lr=lr, l2=l2, wd=wd, **kw)
        trajectory = np.empty(steps + 1)
        trajectory[0] = theta0
        for t in range(steps):
            g = grad_value if grad_every > 0 and t % grad_every == 0 else 0.0
            theta.grad = torch.full_like(theta, g)
            opt.step()
            trajectory[t + 1] = theta.item()
    return trajectory


def adagrad_steps_to_threshold(weight, accumulated, lr: float, l2: float, threshold: float) -> np.ndarray:
    """Adagrad steps until a silent weight's magnitude falls below `threshold` (Sec. 4.1, Table 1).

    A feature that no longer gets a task gradient still gets L2's gradient `l2 * w`, and Adagrad divides
    it by the root of the squared gradients the weight has accumulated (`accumulated`, the optimizer's
    'sum' state): each step multiplies w by (1 - lr * l2 / sqrt(accumulated)). Unlike Adam, whose
    normalization turns the same gradient into a step of about `lr` (claim 7), Adagrad never forgets
    the large gradients of early training. The L2 gradient's own addition to `accumulated` (l2^2 w^2
    per step) is neglected, so the result is a lower bound. Elementwise; 0 where |w| < threshold.
    """
    weight = np.abs(np.asarray(weight, dtype=float))
    rate = lr * l2 / np.sqrt(np.asarray(accumulated, dtype=float))
    steps = np.log(threshold / np.maximum(weight, threshold)) / np.log1p(-np.minimum(rate, 1.0 - 1e-12))
    return np.where(weight < threshold, 0.0, steps)



def l2_vs_wd_example(strength: float, steps=(1, 10, 100, 1000), lr: float = DEFAULT_LR["adam"]) -> pd.DataFrame:
    """θ after t steps of Adam from θ0 = 1 with no task gradient (Sec. 2.1): with L2 λ, with the paper's
    weight decay (×(1 − λ) per step), and PyTorch's AdamW, whose decoupled decay is ×(1 − lr·λ) per step
    (its closed form; `torch.optim.AdamW` follows it exactly, tests/test_tables.py). Index: step."""
    last = max(steps)
    adam_l2 = simulate_weight("adam", l2=strength, lr=lr, steps=last)
    adam_wd = simulate_weight("adam", wd=strength, lr=lr, steps=last)
    shown = list(steps)
    return pd.DataFrame({"Adam + L2": adam_l2[shown], "Adam + WD": adam_wd[shown],
                         "AdamW": (1 - lr * strength) ** np.asarray(shown, dtype=float)},
                        index=pd.Index(shown, name="step"))
