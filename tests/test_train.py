import hashlib
import re
import warnings
from pathlib import Path

import pytest
import torch

from sparsity_lib import RunConfig, RunStore, TrainingDiverged, config_hash, load_model, run_or_load, train
from sparsity_lib.train import iterations, lr_factor, pick_device


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


def test_diverging_run_raises_naming_run_and_step_and_stores_nothing(tmp_path, tiny_config):
    config = tiny_config.replace(optimizer="sgd", lr=1e10)  # finite, valid, and explodes in a few steps
    store = RunStore(tmp_path)
    with pytest.raises(TrainingDiverged) as error:
        run_or_load(config, store=store, progress=False)
    message = str(error.value)
    assert f"run {config_hash(config)} (sgd L2 1e-04 b40 seed 0) diverged" in message
    assert re.search(r"training loss became nan at step [1-5];", message)  # in the first epoch (5 steps)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []  # no record, weights or checkpoint


def test_checkpoint_interrupted_after_divergence_is_never_written(tmp_path, tiny_config):
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(TrainingDiverged):
        train(tiny_config.replace(optimizer="sgd", lr=1e10), checkpoint_path=checkpoint, progress=False)
    assert not checkpoint.exists()


def interrupted_checkpoint(tmp_path, config) -> Path:
    checkpoint = tmp_path / "ckpt.pt"

    def stop(epoch, _entry):
        raise Interrupt
    with pytest.raises(Interrupt):
        train(config, checkpoint_path=checkpoint, progress=False, callback=stop)
    return checkpoint


@pytest.mark.parametrize("damage", ["no optimizer", "wrong shapes", "no loop state"])
def test_checkpoint_that_does_not_fit_is_set_aside_and_the_run_restarts_clean(tmp_path, tiny_config, damage):
    uninterrupted = train(tiny_config, progress=False)
    checkpoint = interrupted_checkpoint(tmp_path, tiny_config)
    state = torch.load(checkpoint, weights_only=False)
    if damage == "no optimizer":
        del state["optimizer"]
    elif damage == "wrong shapes":  # another width's weights under this run's name
        other = interrupted_checkpoint(tmp_path / "other", tiny_config.replace(first_width=4))
        state["model"] = torch.load(other, weights_only=False)["model"]
    else:
        del state["state"]["history"]
    torch.save(state, checkpoint)
    with pytest.warns(UserWarning, match="ckpt.pt is unusable"):
        record = train(tiny_config, checkpoint_path=checkpoint, progress=False)
    assert (tmp_path / "ckpt.corrupt").exists()
    assert record["provenance"]["resumed"] is False
    # Nothing of the damaged checkpoint leaked into the model: the restart equals a clean run.
    assert record["history"] == uninterrupted["history"] and record["final"] == uninterrupted["final"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(tiny_config, checkpoint_path=checkpoint, progress=False)  # the next run does not hit it again


def test_record_carries_the_checksum_of_its_weights(tmp_path, tiny_config):
    weights = tmp_path / "w.pt"
    record = train(tiny_config, weights_path=weights, progress=False)
    assert record["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "weights_sha256" not in train(tiny_config, progress=False)
    model = load_model(record, weights)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_load_model_errors_name_the_file(tmp_path, tiny_config, content):
    weights = tmp_path / "w.pt"
    record = train(tiny_config, weights_path=weights, progress=False)
    if content is None:
        weights.unlink()
    else:
        weights.write_bytes(content)
    for checked in (record, {k: v for k, v in record.items() if k != "weights_sha256"}):
        with pytest.raises(ValueError, match=f"weights file {weights} of run {record['config_hash']} is unusable"):
            load_model(checked, weights)


def test_load_model_rejects_another_runs_weights(tmp_path, tiny_config):
    record = train(tiny_config, weights_path=tmp_path / "a.pt", progress=False)
    train(tiny_config.replace(seed=1), weights_path=tmp_path / "b.pt", progress=False)
    with pytest.raises(ValueError, match="sha256 differs"):
        load_model(record, tmp_path / "b.pt")


@pytest.mark.parametrize("device,message", [
    ("foo", "device='foo' is invalid; allowed: auto, cpu, cuda, cuda:N"),
    ("cuda:99", "device='cuda:99' is not available here"),
    (3, "device=3 is invalid"),
])
def test_bad_devices_are_clear_errors(device, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        pick_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' is not available here \(0 CUDA device\(s\) found\); "
                                         r"allowed: auto, cpu$"):
        pick_device("cuda")
