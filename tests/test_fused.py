"""The fused trainer against N single runs (sparsity_lib.runs.fused vs sparsity_lib.runs.training).

The equivalence tests run in float64. In float32 a run is chaotic at the level of rounding: the
single-run trainer itself differs by up to ~0.04 in training loss after 200 steps between 1 and 2
CPU threads (measured on this config at 16x16 images), so float32 can only be compared over a few steps
(`test_float32_records_match_briefly`).
In float64 the fused and single runs agree to ~1e-9 after hundreds of steps, which a wrong
L2/WD/lr/BN/data-order detail would break by orders of magnitude. That agreement needs the fused
network to compute each model's gradients with the same products as the plain layers, not merely
the same math: a last-bit difference does not stay at ~1e-16. Measured on torch 2.14.1 (MKL, AVX512)
with autograd's `baddbmm` backward for the fc head (weight gradient x^T @ grad, where `nn.Linear`
computes grad^T @ x): ~1e-17 apart after step 1, Adam then turned the pure-rounding gradient of the fc
bias feeding BatchNorm1d into +-lr steps (test loss 1.3e-5 apart after 20 steps, through the BN
running mean), and an SGD model drifted to 2e-6 in its weights after 150 steps
(`test_fused_head_gradients_are_those_of_nn_linear` checks the products).
"""
import copy
import importlib
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from sparsity_lib import RunConfig, RunStore, TrainingDiverged, config_hash, gamma_sparsity, make_loader, train
from sparsity_lib.data.datasets import load_dataset
from sparsity_lib.nets.optim import make_optimizer
from sparsity_lib.runs.build import build_model
from sparsity_lib.runs.execution import Execution
from sparsity_lib.runs.fused.groups import can_fuse, fusable_groups, group_key
from sparsity_lib.runs.fused.net import FusedLoader, FusedNet, fused_inputs, unfuse
from sparsity_lib.runs.fused.optim import FusedOptimizer
from sparsity_lib.runs.fused.trainer import _inactive_gamma, run_or_load_group, train_group
from sparsity_lib.runs.schedule import set_lr

fused_module = importlib.import_module("sparsity_lib.runs.fused.trainer")
fused_net_module = importlib.import_module("sparsity_lib.runs.fused.net")
train_module = importlib.import_module("sparsity_lib.runs.training")
build_module = importlib.import_module("sparsity_lib.runs.build")

ROOT = Path(__file__).resolve().parents[1]
# 8x8 images (three 2x2 pools leave 1x1 before the head) keep the float64 runs at seconds on one thread.
TINY = RunConfig(dataset="synthetic", image_size=8, train_subset=800, test_subset=100, width=0.0625,
                 first_width=8, epochs=10, lr_drops=(7.5,), snapshot_count=3)  # 20 steps an epoch, 200 in all


class Interrupt(Exception):
    pass


@pytest.fixture
def float64(monkeypatch):
    """Single runs and fused runs in float64: models via the default dtype, batches cast by a loader shim."""
    def double_loader(*args, **kwargs):
        loader = make_loader(*args, **kwargs)

        class Double:
            def __len__(self):
                return len(loader)

            def set_epoch(self, epoch):
                loader.set_epoch(epoch)

            def __iter__(self):
                return ((x.double(), y) for x, y in loader)
        return Double()

    monkeypatch.setattr(train_module, "make_loader", double_loader)
    monkeypatch.setattr(fused_module, "make_loader", double_loader)
    monkeypatch.setattr(fused_net_module, "make_loader", double_loader)
    # The plain trainer's CPU layout (channels_last) is a kernel choice, tested on its own in
    # test_train.py; its float64 rounding differs from the NCHW kernels', and Adam's eps amplifies that
    # on near-zero gradients over hundreds of steps. The fused math is checked against the NCHW one.
    monkeypatch.setattr(build_module, "CPU_CHANNELS_LAST", False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def gammas(record) -> torch.Tensor:
    return torch.tensor([g for layer in record["bn"].values() for g in layer["gamma"]])


def assert_records_match(fused, single, rtol, atol, err_atol=None):
    """Records equal in structure and close in numbers; `err_atol` (in %) for error rates, which are
    counts of images and flip by a whole image when a logit sits on an argmax tie."""
    err_atol = atol if err_atol is None else err_atol
    assert fused.keys() == single.keys()
    assert fused["config_hash"] == single["config_hash"] and fused["config"] == single["config"]
    # Both directions: the fused trainer records every key the single one does, plus exactly its own two.
    assert set(fused["provenance"]) == set(single["provenance"]) | {"fused_models", "precision"}
    assert set(single["provenance"]) <= set(fused["provenance"])
    assert [e.keys() for e in fused["history"]] == [e.keys() for e in single["history"]]
    assert [e["step"] for e in fused["history"]] == [e["step"] for e in single["history"]]
    assert [e["lr"] for e in fused["history"]] == [e["lr"] for e in single["history"]]
    for key in ("train_loss", "train_err", "test_loss", "test_err"):
        got = torch.tensor([e.get(key, math.nan) for e in fused["history"]])
        want = torch.tensor([e.get(key, math.nan) for e in single["history"]])
        torch.testing.assert_close(got, want, rtol=rtol, atol=err_atol if "err" in key else atol, equal_nan=True,
                                   msg=lambda text, key=key: f"history {key}: {text}")
    torch.testing.assert_close(gammas(fused), gammas(single), rtol=rtol, atol=atol)
    for key, value in single["final"].items():
        if key != "layers":
            torch.testing.assert_close(float(fused["final"][key]), float(value), rtol=rtol,
                                       atol=err_atol if "err" in key else atol,
                                       msg=lambda text, key=key: f"final {key}: {text}")
    assert fused["final"]["layers"] == single["final"]["layers"]
    assert fused["snapshots"].keys() == single["snapshots"].keys()


@pytest.mark.parametrize("group", [
    [TINY.replace(l2=1e-4, seed=0), TINY.replace(l2=1e-3, seed=1), TINY.replace(l2=0.0, wd=1e-3, seed=2)],
    [TINY.replace(optimizer="sgd", l2=5e-4, seed=3), TINY.replace(optimizer="sgd", l2=0.0, wd=5e-4, seed=4),
     TINY.replace(optimizer="sgd", l2=1e-3, gamma_lr_scale=0.5, beta_lr_scale=2.0, slimming_l1=1e-4, l1l2=1e-5,
                  seed=5)],
], ids=["adam-l2-l2-wd", "sgd-l2-wd-scaled-penalties"])
def test_fused_group_matches_single_runs_in_float64(float64, group):
    fused = train_group(group, device="cpu", progress=False)
    for config, record in zip(group, fused):
        single = train(config, device="cpu", progress=False)
        assert record["provenance"]["steps"] == single["provenance"]["steps"] == 200
        assert_records_match(record, single, rtol=1e-7, atol=1e-9)
        assert [e["inactive_gamma"] for e in record["history"]] == [e["inactive_gamma"] for e in single["history"]]
        for epoch, layers in single["snapshots"].items():
            for layer, values in layers.items():
                torch.testing.assert_close(torch.tensor(record["snapshots"][epoch][layer]["gamma"]),
                                           torch.tensor(values["gamma"]), rtol=1e-7, atol=1e-9)


def test_fused_head_gradients_are_those_of_nn_linear(float64):
    """The fused fc head (`_FusedLinear`) returns, bit for bit, the gradients `nn.Linear` computes in
    each plain model: the float64 equivalence above depends on it (see the module docstring)."""
    configs = [TINY.replace(seed=s) for s in range(3)]
    models = tiny_models(configs)
    net = FusedNet([copy.deepcopy(m) for m in models])
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 9, 8, 8, generator=generator), torch.randint(0, 10, (3, 40), generator=generator)
    logits = net(x)
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1).sum().backward()
    for i, model in enumerate(models):
        torch.testing.assert_close(logits[i], model(x[:, 3 * i:3 * i + 3]), rtol=0, atol=0)
        F.cross_entropy(model(x[:, 3 * i:3 * i + 3]), y[i]).backward()
        for name, param in model.named_parameters():
            if name.startswith("classifier") or name == "features.0.conv.weight":  # the head; its grad_x upstream
                assert torch.equal(net.stacked(name).grad[i], param.grad), f"model {i} {name}"


def test_float32_records_match_briefly(monkeypatch):
    """The default float32 path over 5 steps (before rounding noise is amplified: after 10 steps one of
    these two models already differs by 6e-4 in training loss). The plain trainer is pinned to NCHW, the
    fused trainer's layout: channels_last's own rounding is checked in tests/test_train.py."""
    monkeypatch.setattr(build_module, "CPU_CHANNELS_LAST", False)
    group = [TINY.replace(epochs=0.25, lr_drops=(), seed=s, l2=l2, wd=wd)
             for s, l2, wd in ((0, 1e-4, 0.0), (1, 0.0, 1e-3))]
    fused = train_group(group, device="cpu", progress=False)
    for config, record in zip(group, fused):
        single = train(config, device="cpu", progress=False)
        assert_records_match(record, single, rtol=1e-4, atol=1e-5, err_atol=2.0)  # 2 of 100 test images


def test_fused_loader_yields_the_batches_of_each_single_loader():
    data = load_dataset("synthetic", split="train", image_size=16, subset=90)
    seeds = [0, 7, 3]
    fused = FusedLoader(data, 40, seeds)
    singles = [make_loader(data, 40, train=True, seed=s) for s in seeds]
    for epoch in (0, 1):
        fused.set_epoch(epoch)
        for loader in singles:
            loader.set_epoch(epoch)
        batches = list(zip(fused, *singles))
        assert len(batches) == 3  # 40 + 40 + 10 images, like the single loaders
        for (x, y), *single in batches:
            for i, (xs, ys) in enumerate(single):
                assert torch.equal(x[:, 3 * i:3 * i + 3], xs) and torch.equal(y[i], ys)


def tiny_models(configs):
    return [build_model(c, 10, 8) for c in configs]


@pytest.mark.parametrize("optimizers", [("sgd",) * 3, ("adam", "amsgrad", "adam"), ("adamax",) * 3, ("rmsprop",) * 3,
                                        ("adagrad",) * 3, ("adadelta",) * 3], ids=lambda names: "-".join(names))
def test_fused_optimizer_matches_make_optimizer(optimizers):
    settings = zip(optimizers, (1e-3, 0.0, 1e-4), (0.0, 1e-3, 1e-2), (1.0, 0.3, 1.0), (1.0, 1.0, 5.0),
                   (None, 0.02, None))  # optimizer, l2, wd, gamma_lr_scale, beta_lr_scale, lr per model
    configs = [TINY.replace(optimizer=name, seed=i, l2=l2, wd=wd, gamma_lr_scale=g, beta_lr_scale=b, lr=lr)
               for i, (name, l2, wd, g, b, lr) in enumerate(settings)]
    models = tiny_models(configs)
    net = FusedNet(models)
    fused = FusedOptimizer(net, configs)
    singles = [make_optimizer(m, c.optimizer, lr=c.lr, l2=c.l2, wd=c.wd, gamma_lr_scale=c.gamma_lr_scale,
                              beta_lr_scale=c.beta_lr_scale) for m, c in zip(models, configs)]
    gen = torch.Generator().manual_seed(0)
    for step in range(25):
        factor = 1.0 if step < 15 else 0.1  # an LR drop, applied as `schedule.set_lr` does
        for model, optimizer in zip(models, singles):
            set_lr(optimizer, optimizer.defaults["lr"], factor)
        for name, param in models[0].named_parameters():
            grads = torch.randn((len(models), *param.shape), generator=gen)
            net.stacked(name).grad = grads.clone()
            for model, grad in zip(models, grads):
                model.get_parameter(name).grad = grad.clone()
        fused.step(factor)
        for optimizer in singles:
            optimizer.step()
    for i, model in enumerate(models):
        for name, param in model.named_parameters():
            torch.testing.assert_close(net.stacked(name)[i], param.detach(), rtol=1e-5, atol=1e-6,
                                       msg=lambda text, name=name: f"{name}: {text}")


@pytest.mark.parametrize("fields", [{}, {"activation": "leaky_relu"}, {"model": "vgg11", "image_size": 32}],
                         ids=["basicnet", "basicnet-leaky", "vgg11"])
def test_fused_forward_is_n_separate_forwards_and_unfuse_round_trips(fields):
    configs = [TINY.replace(seed=s, **fields) for s in range(3)]
    size = configs[0].image_size
    models = [build_model(c, 10, size) for c in configs]
    net = FusedNet(models)
    x = torch.randn(40, 3 * len(models), size, size)
    for mode in ("train", "eval"):
        getattr(net, mode)()
        logits = net(x)
        for i, model in enumerate(models):
            getattr(model, mode)()
            torch.testing.assert_close(logits[i], model(x[:, 3 * i:3 * i + 3]), rtol=1e-5, atol=1e-5)
    for i, model in enumerate(models):  # running statistics updated per model in train mode
        plain = unfuse(net, i)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(plain.state_dict()[name], value, rtol=1e-6, atol=1e-6,
                                       msg=lambda text, name=name: f"{name}: {text}")
    shared = torch.randn(8, 3, size, size)
    net.eval()
    torch.testing.assert_close(net(fused_inputs(shared, 3))[1], models[1].eval()(shared), rtol=1e-5, atol=1e-5)
    c3_bn = net.conv_bn_names()[2][2]
    net.stacked(f"{c3_bn}.weight").data[1, :3] = 1e-4  # three features of C3 of model 1 below threshold
    for i in range(3):
        assert _inactive_gamma(net)[i] == {r.layer: r.inactive for r in gamma_sparsity(unfuse(net, i)).itertuples()}
    assert _inactive_gamma(net)[1]["C3"] == 3


def one_step(models, configs, x, y, **options):
    """A FusedNet of copies of `models` after one `train_step` on (x, y): (net, per-model losses)."""
    net = FusedNet([copy.deepcopy(m) for m in models], channels_last=options.pop("channels_last", False))
    losses, _ = fused_module.train_step(net, FusedOptimizer(net, configs), x, y, **options)
    return net, losses


def gradient_pairs(reference: FusedNet, other: FusedNet):
    """(name, reference grad, other grad), skipping biases that feed a BatchNorm (their true gradient is 0)."""
    for (name, a), (_, b) in zip(reference.named_parameters(), other.named_parameters()):
        if a.grad.norm() > 1e-6:
            yield name, a.grad.flatten(), b.grad.flatten()


def test_channels_last_and_bf16_autocast_steps_track_the_fp32_step():
    """channels_last changes only the memory layout: same losses and gradients to float32 rounding.
    bf16 autocast rounds activations to 8 mantissa bits: losses within 1%, gradients pointing the same
    way (cosine > 0.8; measured 0.91-0.99 per tensor here), where a broken cast would give ~0.
    SGD, whose step is linear in the gradient (Adam's first step is sign(g): tiny gradients may flip)."""
    configs = [TINY.replace(seed=s, l2=1e-3, optimizer="sgd") for s in range(3)]
    models = tiny_models(configs)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 9, 8, 8, generator=generator), torch.randint(0, 10, (3, 40), generator=generator)
    reference, losses = one_step(models, configs, x, y)
    nhwc, nhwc_losses = one_step(models, configs, x, y, channels_last=True)
    torch.testing.assert_close(nhwc_losses, losses, rtol=1e-5, atol=1e-6)
    for name, want, got in gradient_pairs(reference, nhwc):
        assert (got - want).norm() / want.norm() < 1e-4, name
    for name, param in reference.named_parameters():  # the optimizer step on top
        torch.testing.assert_close(nhwc.get_parameter(name), param, rtol=1e-5, atol=1e-6)
    for channels_last in (False, True):
        bf16, bf16_losses = one_step(models, configs, x, y, amp=True, channels_last=channels_last)
        assert bf16_losses.dtype == torch.float32
        torch.testing.assert_close(bf16_losses, losses, rtol=1e-2, atol=0)
        for name, want, got in gradient_pairs(reference, bf16):
            assert F.cosine_similarity(got, want, dim=0) > 0.8, name


def test_compiled_forward_matches_eager_in_float64(float64):
    """`torch.compile` of the fused forward (inductor; a C++ compiler on CPU) changes no number beyond
    float64 rounding over a few optimizer steps, BatchNorm running statistics included (SGD: its step
    is linear in the gradient, where Adam's first steps are sign(g) and flip on gradients ~1e-17)."""
    configs = [TINY.replace(seed=s, l2=1e-3, optimizer="sgd") for s in range(2)]
    models = tiny_models(configs)
    nets = [FusedNet([copy.deepcopy(m) for m in models]) for _ in range(2)]
    optimizers = [FusedOptimizer(net, configs) for net in nets]
    compiled = torch.compile(nets[1])
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(40, 6, 8, 8, generator=generator), torch.randint(0, 10, (2, 40), generator=generator)
        eager, _ = fused_module.train_step(nets[0], optimizers[0], x, y)
        fast, _ = fused_module.train_step(nets[1], optimizers[1], x, y, forward=compiled)
        torch.testing.assert_close(fast, eager, rtol=1e-9, atol=1e-12)
    for (name, want), (_, got) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=lambda text, name=name: f"{name}: {text}")


def test_speed_options_are_recorded_and_need_the_fused_trainer(tmp_path):
    config = TINY.replace(epochs=1, lr_drops=(), snapshot_count=0)
    [record] = run_or_load_group([config], execution=Execution(store=tmp_path, device="cpu", progress=False,
                                                               fused="on", speed=('amp', 'channels_last')))
    provenance = record["provenance"]
    assert (provenance["precision"], provenance["channels_last"], provenance["compiled"]) == ("bf16 autocast", True,
                                                                                              False)
    stored = RunStore(tmp_path).load(config_hash(config))
    assert provenance["fused_models"] == 1 and stored["provenance"] == provenance and stored["final"] == record["final"]
    with pytest.raises(ValueError, match=r"speed=\['amp'\]: these options belong to the fused trainer.*fused='off'"):
        Execution(store=tmp_path, device="cpu", fused="off", speed=("amp",))
    with pytest.raises(ValueError, match="amp: options of the fused trainer, which fused='auto' does not use here"):
        run_or_load_group([config.replace(seed=9)], Execution(store=tmp_path, device="cpu", fused="auto",
                                                              speed=("amp",)))


def test_can_fuse_names_the_reason():
    assert can_fuse([TINY, TINY.replace(seed=1, l2=1e-3, wd=1e-3)]) == (True, "")
    ok, why = can_fuse([TINY, TINY.replace(width=0.125)])
    assert not ok and "'width'" in why
    ok, why = can_fuse([TINY, TINY.replace(optimizer="sgd")])
    assert not ok and "families" in why
    ok, why = can_fuse([TINY.replace(dataset="imagenet")])
    assert not ok and "imagenet" in why
    assert not can_fuse([TINY, TINY])[0]
    groups = fusable_groups([TINY.replace(seed=s) for s in range(5)] + [TINY.replace(optimizer="adadelta")], 2)
    assert [len(g) for g in groups] == [2, 2, 1, 1] and groups[-1][0].optimizer == "adadelta"
    imagenet = TINY.replace(dataset="imagenet", image_size=None, train_subset=None, test_subset=None)
    assert fusable_groups([imagenet, imagenet.replace(seed=1)]) == [[imagenet], [imagenet.replace(seed=1)]]
    assert group_key([TINY, TINY.replace(seed=1)]) == group_key([TINY.replace(seed=1), TINY])


def test_group_resumes_exactly_after_interruption(tmp_path):
    group = [TINY.replace(epochs=4, lr_drops=(3.0,), train_subset=200, seed=s, l2=l2)
             for s, l2 in ((0, 1e-4), (1, 1e-3))]
    uninterrupted = train_group(group, device="cpu", progress=False)
    checkpoint = tmp_path / "group.pt"

    def stop_at_two(epoch, entries):
        assert len(entries) == 2
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_group(group, device="cpu", checkpoint_path=checkpoint, progress=False, callback=stop_at_two)
    resumed = train_group(group[::-1], device="cpu", checkpoint_path=checkpoint, progress=False)[::-1]
    for got, want in zip(resumed, uninterrupted):
        assert got["provenance"]["resumed"] is True
        assert got["history"] == want["history"] and got["final"] == want["final"] and got["bn"] == want["bn"]


def test_run_or_load_group_stores_loads_and_falls_back(tmp_path, monkeypatch):
    small = TINY.replace(epochs=0.5, lr_drops=(), train_subset=160, test_subset=40)
    # the Adagrad config has no partner of its family, so it trains alone through train.train
    configs = [small.replace(seed=0), small.replace(seed=1, l2=1e-3), small.replace(optimizer="adagrad")]
    records = run_or_load_group(configs, execution=Execution(store=tmp_path, device="cpu", progress=False, fused="on"))
    assert [r["config_hash"] for r in records] == [config_hash(c) for c in configs]
    assert [r["provenance"].get("fused_models") for r in records] == [2, 2, None]
    store = RunStore(tmp_path)
    assert all(store.load(config_hash(c)) is not None for c in configs)
    assert all(store.weights_file(record).exists() for record in records)
    assert not list((tmp_path / "checkpoints").glob("*.pt")) and not list(tmp_path.glob(".*.tmp"))  # no leftovers
    model = build_module.load_model(records[1], store.weights_file(records[1]))
    assert model.features[0].bn.num_batches_tracked == records[1]["provenance"]["steps"]

    def no_training(*_args, **_kwargs):
        raise AssertionError("stored runs must be loaded, not trained")

    monkeypatch.setattr("sparsity_lib.runs.fused.trainer.train_group", no_training)
    monkeypatch.setattr("sparsity_lib.runs.fused.trainer.train_single", no_training)
    again = run_or_load_group(configs, execution=Execution(store=tmp_path, device="cpu", progress=False, fused="on"))
    assert again == [store.load(config_hash(c)) for c in configs]
    monkeypatch.undo()
    singles = run_or_load_group(configs[:2], execution=Execution(store=tmp_path / "auto", device="cpu",
                                                                 progress=False, fused="auto"))
    assert all("fused_models" not in r["provenance"] for r in singles)  # 'auto' fuses on CUDA only
    with pytest.raises(ValueError, match="fused='maybe'"):
        run_or_load_group(configs, execution=Execution(store=tmp_path, fused="maybe"))


def load_bench(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_script_runs_small(capsys):
    bench = load_bench("bench_train")
    assert bench.main(["--small", "--steps", "3", "--warmup", "1", "--fused", "1", "2", "--train-images", "200",
                       "--profile-steps", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for label in ("naive DataLoader", "GPU-resident data", "fused N=1", "fused N=2"):
        row = next(line for line in lines if line.startswith(f"| {label} |"))
        assert float(row.split("|")[3]) > 0  # ms/step
    # the compute floor: FLOP / peak, with the numbers it prints
    floor = next(line for line in lines if line.startswith("Compute floor for Table 1"))
    flop = float(re.search(r"= ([0-9.e+]+) FLOP", floor).group(1))
    hours, peak = re.search(r"([0-9,.]+) CPU-hours at 100% of the measured peak ([0-9.e+-]+) TFLOP/s", floor).groups()
    assert float(hours.replace(",", "")) == pytest.approx(flop / (float(peak) * 1e12) / 3600, rel=2e-3)
    # profiler evidence for row (a) and the largest fused N, with the convolutions among the busiest ops
    assert "#### Profile: naive DataLoader, 1 steps" in out and "#### Profile: fused N=2, 1 steps" in out
    assert "convolution" in out.split("#### Profile: fused N=2")[1]


def test_precision_bench_trains_each_mode_once_and_reports(tmp_path, capsys):
    bench = load_bench("bench_precision")
    common = ["--profile", "smoke", "--seeds", "2", "--device", "cpu", "--out", str(tmp_path / "out"),
              "--store", str(tmp_path / "store")]
    assert bench.main(common + ["--mode", "fp32", "--mode", "bf16", "--report"]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| fp32 |") or line.startswith("| bf16 |")}
    assert set(rows) == {"fp32", "bf16"}
    assert rows["fp32"].split("|")[-3].strip() == "0.0, 0.00"  # fp32 against itself
    saved = json.loads((tmp_path / "out" / "bf16.json").read_text())
    assert [r["seed"] for r in saved] == [0, 1] and saved[0]["provenance"]["precision"] == "bf16 autocast"
    assert not list((tmp_path / "out").glob("*.ckpt"))  # finished modes leave no checkpoint
    before = (tmp_path / "out" / "fp32.json").stat().st_mtime_ns
    assert bench.main(common + ["--mode", "fp32"]) == 0  # a finished mode is not retrained
    assert (tmp_path / "out" / "fp32.json").stat().st_mtime_ns == before


def test_diverging_member_stops_the_group_and_nothing_is_stored(tmp_path):
    small = TINY.replace(epochs=1, lr_drops=(), train_subset=160, test_subset=40, optimizer="sgd")
    configs = [small.replace(seed=0), small.replace(seed=1, lr=10.0, gamma_lr_scale=1e30)]  # the second explodes
    with pytest.raises(TrainingDiverged) as error:
        run_or_load_group(configs, execution=Execution(store=tmp_path, device="cpu", progress=False, fused="on"))
    message = str(error.value)
    expected = f"run {config_hash(configs[1])} (sgd L2 1e-04 b40 seed 1, in a fused group of 2) diverged"
    assert message.startswith(expected)
    assert re.search(r"became (nan|inf) at step \d+;", message)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no record, weights or group checkpoint


def test_cpu_step_bench_times_each_variant_and_checks_agreement(tmp_path, capsys):
    bench = load_bench("bench_cpu_step")
    out = tmp_path / "cpu_step.md"
    assert bench.main(["--steps", "2", "--repeats", "1", "--warmup", "1", "--check-steps", "2", "--train-images", "200",
                       "--threads", "1", "--variants", "eager fp32 NCHW", "channels_last", "train.train",
                       "--output", str(out)]) == 0
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| variant")}
    assert set(rows) == {"eager fp32 NCHW", "channels_last", "train.train"}
    assert all(float(row[3]) > 0 for row in rows.values())  # ms/step
    assert float(rows["eager fp32 NCHW"][8]) == 0.0  # the baseline against itself
    assert float(rows["channels_last"][9]) < 1e-2  # same run up to float32 rounding
    assert "train.train now runs: channels_last, eager" in capsys.readouterr().out


def test_workers_bench_runs_both_sweeps_and_prints_the_ratio(capsys):
    bench = load_bench("bench_workers")
    assert bench.main(["--steps", "5", "--set", "train_subset=200", "test_subset=100",
                       "--grid", "optimizer=adam,sgd"]) == 0
    out = capsys.readouterr().out
    assert "| --workers 1 | " in out and "| --workers 2 | 1 |" in out
    assert float(out.split("ratio serial / 2 workers: ")[1].split()[0]) > 0
