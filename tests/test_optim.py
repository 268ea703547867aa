"""Tests for sparsity_lib.nets.optim: L2 vs decoupled WD on one weight (paper Sec. 3, Fig. 4), BN param
groups, state_dict round trips, defaults and error messages."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from sparsity_lib.nets.optim import DEFAULT_LR, OPTIMIZERS, bn_param_groups, make_optimizer, simulate_weight


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def zero_grads(params):
    for p in params:
        p.grad = torch.zeros_like(p)


# ---- one weight, zero task gradient ---------------------------------------------------------------

def test_adam_l2_moves_by_lr_per_step_whatever_l2():
    # With g = l2*theta changing slowly, the bias-corrected moments are m_hat ~ g and v_hat ~ g^2, so
    # the step is lr * g/(|g| + eps) ~ lr (|g| = 1e-4 >> eps = 1e-8): 100 steps at lr 1e-3 take
    # theta from 1 to ~0.9. The step is the same for l2 = 1e-3, so the L2 strength barely matters.
    lr = 1e-3
    theta = simulate_weight("adam", l2=1e-4, lr=lr, steps=3000)
    assert abs((1 - theta[100]) - 100 * lr) < 0.1 * 100 * lr  # observed 0.0985
    assert np.allclose(np.diff(theta[:101]), -lr, rtol=0.05)
    stronger = simulate_weight("adam", l2=1e-3, lr=lr, steps=3000)
    assert np.abs(theta - stronger).max() < 1e-3
    # It cannot fall faster than ~lr per step, so it needs >= 1/lr steps to reach 1e-2. Once theta is
    # small, v (memory ~1/(1-beta2) = 100 steps) remembers larger gradients and the steps shrink:
    # the tail is geometric with factor >= sqrt(beta2) ~ 0.995 per step (v shrinks at most by beta2
    # a step). Observed: |theta| < 1e-2 first at step 1297 ~ 1.3/lr.
    first = int(np.argmax(np.abs(theta) < 1e-2))
    assert 1.0 / lr <= first <= 1.5 / lr
    assert np.abs(theta[first:]).max() < 1e-2  # and it stays there


def test_adam_wd_is_exact_geometric_decay():
    # Zero gradient and no L2: Adam's moments stay 0, its update is exactly 0, only (1 - wd) acts.
    wd = 1e-3
    theta = simulate_weight("adam", wd=wd, steps=200)
    assert np.allclose(theta, (1 - wd) ** np.arange(201), rtol=1e-12, atol=0)


def test_sgd_l2_matches_heavy_ball_recurrence():
    # SGD with momentum 0.9 on f = l2/2 theta^2: v <- 0.9 v + l2 theta; theta <- theta - lr v.
    lr, l2, steps = 0.1, 1e-2, 300
    expected, th, v = [1.0], 1.0, 0.0
    for _ in range(steps):
        v = 0.9 * v + l2 * th
        th -= lr * v
        expected.append(th)
    theta = simulate_weight("sgd", l2=l2, lr=lr, steps=steps)
    assert np.allclose(theta, expected, rtol=1e-12, atol=1e-15)


def test_sgd_l2_is_slow_where_adam_l2_is_fast():
    # Same l2 = 1e-4: SGD shrinks by lr*l2/(1-0.9) = 1e-4 per step (exp(-0.1) ~ 0.905 after 1000),
    # Adam by ~lr = 1e-3 absolute per step (observed 0.14 after 1000).
    sgd = simulate_weight("sgd", l2=1e-4, steps=1000)
    adam = simulate_weight("adam", l2=1e-4, steps=1000)
    assert sgd[-1] == pytest.approx(math.exp(-0.1), abs=2e-3)
    assert adam[-1] < 0.2


def test_sgd_wd_is_exact_geometric_decay():
    wd = 5e-4
    theta = simulate_weight("sgd", wd=wd, steps=200)
    assert np.allclose(theta, (1 - wd) ** np.arange(201), rtol=1e-12, atol=0)


def test_our_wd_decays_1_over_lr_times_faster_than_adamw():
    lr, w = 1e-3, 1e-2
    p = nn.Parameter(torch.ones(1, dtype=torch.float64))
    adamw = torch.optim.AdamW([p], lr=lr, weight_decay=w, betas=(0.9, 0.99))
    p.grad = torch.zeros_like(p)
    adamw.step()
    adamw_decay = 1 - p.item()            # lr * w
    ours = simulate_weight("adam", wd=w, lr=lr, steps=1)
    our_decay = 1 - ours[1]               # w
    assert adamw_decay == pytest.approx(lr * w, rel=1e-9)
    assert our_decay == pytest.approx(w, rel=1e-9)
    assert our_decay / adamw_decay == pytest.approx(1 / lr, rel=1e-6)


def test_wd_factor_ignores_lr_schedule():
    # The paper's WD multiplies by (1 - wd) whatever the LR; a scheduler must not change that.
    wd = 1e-2
    p = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = make_optimizer([p], "adam", wd=wd)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    for _ in range(5):
        p.grad = torch.zeros_like(p)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 1e-5)
    assert p.item() == pytest.approx((1 - wd) ** 5, rel=1e-12)


def test_l2_and_wd_combine():
    # SGD without momentum: theta <- (1 - wd) * (theta - lr*l2*theta).
    lr, l2, wd = 0.1, 1e-2, 1e-3
    theta = simulate_weight("sgd", l2=l2, wd=wd, lr=lr, steps=50, momentum=0.0)
    assert np.allclose(theta, ((1 - wd) * (1 - lr * l2)) ** np.arange(51), rtol=1e-12)


def test_amsgrad_decays_slower_than_adam_after_a_gradient_spike():
    # A task gradient of 1e-2 every 1000 steps puts v = (1-beta2) g^2 = 1e-6 (sqrt 1e-3) into the
    # second moment. Adam forgets it within ~ln((1e-3/1e-4)^2)/(1-beta2) ~ 460 steps, then shrinks
    # theta by ~lr per step again (observed theta(2000) = 0.06). AMSGrad keeps the max, so its L2
    # step stays ~ lr * l2*theta / 1e-3 = lr/10: ~0.1 lost per 1000 steps (observed 0.91, 0.81).
    # This is the mechanism behind the paper's lower sparsity with AMSGrad.
    kw = dict(l2=1e-4, steps=2000, grad_every=1000, grad_value=1e-2)
    adam = simulate_weight("adam", **kw)
    ams = simulate_weight("amsgrad", **kw)
    assert np.all(ams[2:] > adam[2:])
    assert 0.85 < ams[1000] < 0.93
    assert adam[1000] < 0.5 and adam[2000] < 0.1


def test_simulate_weight_gradient_schedule_and_shape():
    # Plain SGD (no momentum): theta drops by lr*grad_value on steps 0, 3, 6 only.
    theta = simulate_weight("sgd", lr=0.1, momentum=0.0, steps=7, theta0=2.0, grad_every=3,
                            grad_value=1.0)
    assert theta.shape == (8,) and theta[0] == 2.0
    assert np.allclose(-np.diff(theta), [0.1, 0, 0, 0.1, 0, 0, 0.1])


def test_simulate_weight_leaves_global_rng_alone():
    state = torch.get_rng_state()
    simulate_weight("adam", l2=1e-4, steps=3, seed=123)
    assert torch.equal(state, torch.get_rng_state())


# ---- param groups -----------------------------------------------------------------------------------

def test_bn_param_groups_cover_every_parameter_once():
    model = tiny_model()
    groups = bn_param_groups(model)
    bn = model[1]
    assert groups["gamma"] == [bn.weight] and groups["beta"] == [bn.bias]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
    model[0].bias.requires_grad_(False)
    assert all(p is not model[0].bias for p in bn_param_groups(model)["other"])


def test_module_groups_named_and_scaled():
    model = tiny_model()
    opt = make_optimizer(model, "adam", lr=1e-3, gamma_lr_scale=0.1, beta_lr_scale=2.0)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert set(by_name) == {"gamma", "beta", "other"}
    assert by_name["gamma"]["lr"] == pytest.approx(1e-4) and by_name["gamma"]["lr_scale"] == 0.1
    assert by_name["beta"]["lr"] == pytest.approx(2e-3) and by_name["other"]["lr"] == pytest.approx(1e-3)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
    # The schedule convention the training loop uses:
    for g in opt.param_groups:
        g["lr"] = 1e-3 * 0.1 * g["lr_scale"]
    assert by_name["gamma"]["lr"] == pytest.approx(1e-5)


def test_empty_groups_are_omitted():
    opt = make_optimizer(nn.Linear(3, 2), "sgd")
    assert [g["name"] for g in opt.param_groups] == ["other"]


def test_l2_shrinks_bn_gamma_and_beta():
    model = tiny_model()
    bn = model[1]
    with torch.no_grad():
        bn.bias.fill_(0.5)
    opt = make_optimizer(model, "adam", l2=1e-2)
    for _ in range(10):
        zero_grads(model.parameters())
        opt.step()
    # Adam + L2 with zero task gradient: ~lr = 1e-3 per step -> ~0.99 and ~0.49 after 10 steps.
    assert torch.allclose(bn.weight, torch.full_like(bn.weight, 0.99), atol=1e-4)
    assert torch.allclose(bn.bias, torch.full_like(bn.bias, 0.49), atol=1e-4)


def test_iterable_params_get_one_group_and_reject_bn_scales():
    model = tiny_model()
    opt = make_optimizer(model.parameters(), "sgd")
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["name"] == "all"
    assert opt.param_groups[0]["lr_scale"] == 1.0
    with pytest.raises(ValueError, match="gamma_lr_scale=0.1.*nn.Module"):
        make_optimizer(model.parameters(), "sgd", gamma_lr_scale=0.1)


# ---- state_dict ----------------------------------------------------------------------------------

def test_state_dict_round_trip_keeps_decoupled_wd():
    model = tiny_model()
    opt = make_optimizer(model, "sgd", wd=0.1, gamma_lr_scale=0.5)
    zero_grads(model.parameters())
    opt.step()
    fresh_model = tiny_model()
    fresh = make_optimizer(fresh_model, "sgd")  # wd = 0 until the state is loaded
    fresh.load_state_dict(opt.state_dict())
    assert [g["decoupled_wd"] for g in fresh.param_groups] == [0.1, 0.1, 0.1]
    assert [g["lr_scale"] for g in fresh.param_groups] == [0.5, 1.0, 1.0]
    before = fresh_model[0].weight.detach().clone()
    zero_grads(fresh_model.parameters())
    fresh.step()
    assert torch.allclose(fresh_model[0].weight, 0.9 * before, rtol=1e-6)


# ---- defaults and errors ------------------------------------------------------------------------

@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_steps_with_default_lr(name):
    model = tiny_model()
    opt = make_optimizer(model, name.upper())
    assert all(g["lr"] == DEFAULT_LR[name] for g in opt.param_groups)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(4, 3, 5, 5)).square().mean()
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_paper_hyperparameters_and_overrides():
    p = [nn.Parameter(torch.ones(1))]
    assert make_optimizer(p, "sgd").defaults["momentum"] == 0.9
    adam = make_optimizer(p, "adam").defaults
    assert adam["betas"] == (0.9, 0.99) and adam["eps"] == 1e-8 and not adam["amsgrad"]
    ams = make_optimizer(p, "amsgrad").defaults
    assert ams["betas"] == (0.9, 0.99) and ams["amsgrad"]
    delta = make_optimizer(p, "adadelta").defaults
    assert delta["rho"] == 0.9 and delta["eps"] == 1e-6
    assert make_optimizer(p, "adam", l2=1e-4).defaults["weight_decay"] == 1e-4
    assert make_optimizer(p, "adam", betas=(0.8, 0.9)).defaults["betas"] == (0.8, 0.9)
    assert make_optimizer(p, "sgd", momentum=0.5).defaults["momentum"] == 0.5


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="lbfgs"), r"name='lbfgs'.*'sgd', 'adam'"),
    (dict(name="adam", l2=-1e-4), r"l2=-0.0001.*>= 0"),
    (dict(name="adam", wd=1.5), r"wd=1.5.*\[0, 1\)"),
    (dict(name="adam", lr=0), r"lr=0.*> 0"),
    (dict(name="adam", gamma_lr_scale=0), r"gamma_lr_scale=0.*> 0"),
    (dict(name="adam", weight_decay=1e-4), r"weight_decay.*l2=.*wd="),
])
def test_errors_name_parameter_value_and_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_optimizer(tiny_model(), **kwargs)


def test_adagrad_steps_to_threshold_matches_torch_adagrad_on_a_silent_weight():
    from sparsity_lib.nets.optim import adagrad_steps_to_threshold
    lr, l2, start, accumulated = 0.05, 0.02, 0.2, 4.0  # sqrt(G) = 2: a weight that once saw large gradients
    predicted = float(adagrad_steps_to_threshold([start], [accumulated], lr, l2, 1e-3)[0])
    weight = torch.nn.Parameter(torch.tensor([start]))
    optimizer = torch.optim.Adagrad([weight], lr=lr, weight_decay=l2, initial_accumulator_value=accumulated)
    steps = 0
    while weight.abs().item() >= 1e-3:
        optimizer.zero_grad()
        weight.grad = torch.zeros_like(weight)  # no task gradient: only L2 (weight_decay) acts
        optimizer.step()
        steps += 1
    assert steps == pytest.approx(predicted, rel=0.01)  # the neglected l2^2 w^2 in G changes <1%
    assert adagrad_steps_to_threshold([5e-4], [4.0], lr, l2, 1e-3)[0] == 0.0  # already below
