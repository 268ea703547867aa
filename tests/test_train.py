from pathlib import Path

import pytest
import torch

from sparsity_lib import RunConfig, train
from sparsity_lib.pruning.zeroing import zeroed_test_errors
from sparsity_lib.runs.build import load_model
from sparsity_lib.runs.checkpoint import save_checkpoint
from sparsity_lib.runs.schedule import iterations, lr_factor


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



def test_zeroed_test_errors_reproduces_the_recorded_errors(tiny_config, tmp_path):
    config = tiny_config.replace(optimizer="adam", l2=5e-2)
    weights = tmp_path / "w.pt"
    record = train(config, data_root=tmp_path, device="cpu", weights_path=weights, progress=False)
    table = zeroed_test_errors(record, weights, thresholds=(1e-3, 10.0), data_root=tmp_path)
    assert list(table.index) == ["as stored", "|γ| < 0.001 zeroed", "|γ| < 10 zeroed"]
    assert table.loc["as stored", "test error"] == pytest.approx(record["final"]["test_err"], abs=1e-6)
    assert table.loc["|γ| < 0.001 zeroed", "test error"] == pytest.approx(record["final"]["test_err_zeroed"], abs=1e-6)
    everything = sum(layer["features"] for layer in record["final"]["layers"])
    assert table.loc["|γ| < 10 zeroed", "features zeroed"] == everything
    with pytest.raises(ValueError):
        zeroed_test_errors(record, tmp_path / "missing.pt", data_root=tmp_path)


# ------------------------------------------------------------ files on disk never run code (issue 19)
class Planted:
    """A pickle payload: unpickling it opens (creates) `path` for writing, as an attacker's code would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture
def old_torch_default(monkeypatch):
    """torch.load as torch < 2.6 behaves (pyproject once allowed 2.4): unpickling anything unless the
    caller passes weights_only=True."""
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, weights_only=False, **kw: real(*args, weights_only=weights_only,
                                                                                      **kw))


def test_a_planted_checkpoint_runs_no_code_and_the_run_restarts(tmp_path, tiny_config, old_torch_default):
    from sparsity_lib import config_hash
    evidence, checkpoint = tmp_path / "pwned", tmp_path / "ckpt.pt"
    torch.save({"config_hash": config_hash(tiny_config), "payload": Planted(evidence)}, checkpoint)
    with pytest.warns(UserWarning, match="unusable") as caught:
        record = train(tiny_config, checkpoint_path=checkpoint, progress=False)
    assert not evidence.exists()
    assert (tmp_path / "ckpt.corrupt").exists() and record["provenance"]["resumed"] is False
    assert record["history"][-1]["step"] == 15
    message = next(str(w.message) for w in caught if "unusable" in str(w.message))
    assert "\n" not in message  # one line, not torch's dozen


def test_planted_weights_run_no_code_and_fail_naming_the_file(tmp_path, tiny_config, old_torch_default):
    from sparsity_lib.runs.files import file_sha256
    record = train(tiny_config, weights_path=tmp_path / "good.pt", progress=False)
    evidence, weights = tmp_path / "pwned", tmp_path / "planted.pt"
    torch.save({"payload": Planted(evidence)}, weights)
    record["weights_sha256"] = file_sha256(weights)  # the planted file passes the checksum: torch.load must refuse it
    with pytest.raises(ValueError, match=f"weights file {weights} of run .* is unusable") as caught:
        load_model(record, weights)
    assert not evidence.exists() and "\n" not in str(caught.value)
    del record["weights_sha256"]
    with pytest.raises(ValueError, match="has no weights_sha256"):
        load_model(record, tmp_path / "good.pt")


def test_optimizer_state_script_loads_only_data(tmp_path, monkeypatch, old_torch_default):
    import runpy
    import sys
    evidence, checkpoint = tmp_path / "pwned", tmp_path / "ckpt.pt"
    torch.save({"payload": Planted(evidence)}, checkpoint)
    monkeypatch.setattr(sys, "argv", ["optimizer_state.py", str(checkpoint), str(tmp_path / "out.json")])
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        runpy.run_path(str(Path(__file__).resolve().parent.parent / "scripts" / "optimizer_state.py"),
                       run_name="__main__")
    assert not evidence.exists()


# ------------------------------------------------------------------------ a full disk, thread counts
def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")  # torch had started the file
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=f"cannot write {path}: PytorchStreamWriter failed") as caught:
        save_checkpoint(path, {"step": 2})
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_resume_under_another_thread_count_is_recorded(tmp_path, tiny_config):
    checkpoint, threads = tmp_path / "ckpt.pt", torch.get_num_threads()
    other = 2 if threads == 1 else 1

    def stop_at_two(epoch, _entry):
        if epoch == 2:
            raise Interrupt
    try:
        torch.set_num_threads(other)
        with pytest.raises(Interrupt):
            train(tiny_config, checkpoint_path=checkpoint, progress=False, callback=stop_at_two)
        assert torch.load(checkpoint, weights_only=True)["state"]["threads"] == [other]
        torch.set_num_threads(threads)
        with pytest.warns(UserWarning, match=f"resuming under {threads} CPU thread.*written under {other}") as caught:
            resumed = train(tiny_config, checkpoint_path=checkpoint, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len([w for w in caught if "CPU thread" in str(w.message)]) == 1  # warned once
    assert resumed["provenance"]["resumed_threads"] == [other, threads]
    assert resumed["provenance"]["cpu_threads"] == threads
    assert "resumed_threads" not in train(tiny_config, progress=False)["provenance"]
