import importlib

import pytest

from sparsity_lib import RunConfig, train
from sparsity_lib.train import iterations, lr_factor

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
    assert 0 <= final["test_err"] <= 100 and final["features"] == sum(layer["features"] for layer in final["layers"])
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


train_module = importlib.import_module("sparsity_lib.train")  # the package exports a function of this name


def test_zeroed_test_errors_reproduces_the_recorded_errors(tiny_config, tmp_path):
    config = tiny_config.replace(optimizer="adam", l2=5e-2)
    weights = tmp_path / "w.pt"
    record = train(config, data_root=tmp_path, device="cpu", weights_path=weights, progress=False)
    table = train_module.zeroed_test_errors(record, weights, thresholds=(1e-3, 10.0), data_root=tmp_path)
    assert list(table.index) == ["as stored", "|γ| < 0.001 zeroed", "|γ| < 10 zeroed"]
    assert table.loc["as stored", "test error"] == pytest.approx(record["final"]["test_err"], abs=1e-6)
    assert table.loc["|γ| < 0.001 zeroed", "test error"] == pytest.approx(record["final"]["test_err_zeroed"], abs=1e-6)
    everything = sum(layer["features"] for layer in record["final"]["layers"])
    assert table.loc["|γ| < 10 zeroed", "features zeroed"] == everything
    with pytest.raises(ValueError):
        train_module.zeroed_test_errors(record, tmp_path / "missing.pt", data_root=tmp_path)
