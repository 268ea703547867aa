import importlib

import pytest
import torch

from sparsity_lib import RunConfig, train
from sparsity_lib.train import build_model, build_optimizer, iterations, lr_factor, step_setup, train_step

train_module = importlib.import_module("sparsity_lib.train")  # the package exports a function of this name


class Interrupt(Exception):
    pass


def test_iteration_matching_keeps_steps_constant():
    base = RunConfig(epochs=10, lr_drops=(8.0,))
    for batch in (20, 40, 80, 160):
        total, drops = iterations(base.replace(batch_size=batch), 50_000)
        assert total == 10 * 1250 and drops == [8 * 1250]


def test_lr_schedule_drops_by_ten():
    assert [lr_factor(s, [10, 20]) for s in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_larger_batch_does_the_same_iterations(tiny_config):
    record = train(tiny_config.replace(batch_size=80), progress=False)
    reference = train(tiny_config, progress=False)
    assert record["provenance"]["steps"] == reference["provenance"]["steps"] == 3 * 5
    assert record["history"][-1]["step"] == reference["history"][-1]["step"] == 15
    assert len(record["history"]) == 5  # 200 images / 80 -> 3 batches an epoch -> 5 epochs


def test_record_contents(tiny_config):
    record = train(tiny_config, progress=False)
    assert [entry["epoch"] for entry in record["history"]] == [1, 2, 3]
    assert record["history"][-1]["lr"] == pytest.approx(1e-4)  # after the drop at epoch 2
    assert set(record["snapshots"]) == {"0", "2", "3"}  # 3 snapshots over 3 epochs, init included
    assert set(record["snapshots"]["0"]) == {"C5", "C6", "C7"}
    final = record["final"]
    assert 0 <= final["test_err"] <= 100 and final["features"] == sum(l["features"] for l in final["layers"])
    assert set(record["universality"]) == {f"C{i}" for i in range(1, 8)}
    assert record["provenance"]["dataset_used"] == "synthetic"


def test_resume_after_interruption_is_exact(tmp_path, tiny_config):
    config = tiny_config.replace(epochs=4, lr_drops=(3.0,))
    uninterrupted = train(config, progress=False)

    checkpoint = tmp_path / "ckpt.pt"

    def stop_at_two(epoch, _entry):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config, checkpoint_path=checkpoint, progress=False, callback=stop_at_two)
    assert checkpoint.exists()
    resumed = train(config, checkpoint_path=checkpoint, progress=False)
    assert resumed["provenance"]["resumed"] is True
    assert resumed["history"] == uninterrupted["history"]
    assert resumed["final"] == uninterrupted["final"]
    assert resumed["bn"] == uninterrupted["bn"]


def test_corrupt_checkpoint_warns_and_restarts(tmp_path, tiny_config):
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable"):
        record = train(tiny_config, checkpoint_path=checkpoint, progress=False)
    assert record["provenance"]["resumed"] is False
    assert (tmp_path / "ckpt.corrupt").exists()
    assert record["history"][-1]["step"] == 15


def test_channels_last_steps_match_nchw_in_float64(tiny_config, monkeypatch):
    """The CPU layout `train.train` adopted (channels_last, BENCHMARKS.md section 5) changes only the
    memory layout: three steps in float64 give the NCHW steps' losses and weights to 1e-9 (SGD: its step
    is linear in the gradient, where Adam's first steps are sign(g) and flip on gradients ~1e-17)."""
    monkeypatch.setattr(train_module, "CPU_CHANNELS_LAST", True)
    monkeypatch.setattr(train_module, "CPU_COMPILE", False)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        config = tiny_config.replace(optimizer="sgd", l2=1e-3)
        models = [build_model(config, 10, 16) for _ in range(2)]
        forward, prepare = step_setup(models[1], torch.device("cpu"))
        assert prepare is not None and forward is models[1]
        assert models[1].features[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
        optimizers = [build_optimizer(config, model) for model in models]
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            x, y = torch.randn(40, 3, 16, 16, generator=generator), torch.randint(0, 10, (40,), generator=generator)
            want, _ = train_step(models[0], optimizers[0], x, y, config)
            got, _ = train_step(models[1], optimizers[1], prepare(x), y, config, forward=forward)
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
        for (name, want), (_, got) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=lambda text, name=name: f"{name}: {text}")
    finally:
        torch.set_default_dtype(previous)


def test_the_cpu_layout_is_recorded_and_keeps_the_run(tiny_config, monkeypatch):
    """A float32 run with and without channels_last: the provenance names the layout, and the run's
    numbers agree to float32 rounding grown over 15 Adam steps (Adam's first steps are sign(g), so a
    rounding difference moves a weight by a whole step: ~0.2% in the loss here; the float64 test above
    is the exact check)."""
    records = {}
    for channels_last in (False, True):
        monkeypatch.setattr(train_module, "CPU_CHANNELS_LAST", channels_last)
        records[channels_last] = train(tiny_config, device="cpu", progress=False)
        assert records[channels_last]["provenance"]["channels_last"] is channels_last
        assert records[channels_last]["provenance"]["compiled"] is False
    nchw, nhwc = records[False], records[True]
    for want, got in zip(nchw["history"], nhwc["history"]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=2e-2)
    assert nhwc["final"]["test_loss"] == pytest.approx(nchw["final"]["test_loss"], rel=2e-2)
    assert nhwc["final"]["features"] == nchw["final"]["features"]
