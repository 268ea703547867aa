"""The run store and run_or_load: hits, misses, corrupt records, stale temporaries (sparsity_lib.runs.store,
.runner)."""
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import pytest
import torch

from sparsity_lib import RunConfig, RunStore, config_hash, run_or_load, train
from sparsity_lib.runs.execution import Execution
from sparsity_lib.runs.files import STALE_TEMPORARY_S


def counting(train_fn):
    calls = []

    def wrapped(config, **kwargs):
        calls.append(config)
        return train_fn(config, **kwargs)
    return wrapped, calls


def test_run_or_load_hit_miss_and_corruption(tmp_path, tiny_config):
    store = RunStore(tmp_path / "store")
    train_fn, calls = counting(train)
    first = run_or_load(tiny_config, execution=Execution(store=store, train_fn=train_fn, progress=False,
                                                         profile="test"))
    assert len(calls) == 1 and store.record_path(config_hash(tiny_config)).exists()
    assert store.weights_file(first).exists() and not list(store.root.glob(".*.tmp"))
    assert not store.checkpoint_path(config_hash(tiny_config)).exists()
    assert first["provenance"]["profile"] == "test"

    second = run_or_load(tiny_config, execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert len(calls) == 1 and second == json.loads(json.dumps(first))

    store.record_path(config_hash(tiny_config)).write_text('{"config": {"trunc')
    with pytest.warns(UserWarning, match="corrupt"):
        third = run_or_load(tiny_config, execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert len(calls) == 2 and third["final"]["test_err"] == pytest.approx(first["final"]["test_err"])
    assert (tmp_path / "store" / f"{config_hash(tiny_config)}.json.corrupt").exists()
    assert len(store.records()) == 1


def test_missing_dataset_root_is_a_clear_error(tmp_path):
    config = RunConfig(dataset="cifar10", epochs=1, lr_drops=())
    with pytest.raises(FileNotFoundError, match="cifar-10"):
        run_or_load(config, execution=Execution(store=tmp_path, data_root=tmp_path / "nowhere", progress=False))
    assert not list(tmp_path.glob("*.json"))


# --------------------------------------------------------------------- the store vouches for records
def fake_train(config, *, weights_path, **_):
    """A stand-in trainer: a valid record (every field consumers index), and weights written (and
    checksummed) as `train` does."""
    from sparsity_lib.runs.checkpoint import save_checkpoint
    checksum = save_checkpoint(weights_path, {"w": torch.full((4,), float(config.seed))})
    layers = [{"layer": "C1", "features": 8, "inactive_gamma": 2, "inactive_act": 1}]
    return {"config": config.to_dict(), "config_hash": config_hash(config), "weights_sha256": checksum,
            "final": {"test_err": 12.5, "sparsity_gamma": 25.0, "layers": layers},
            "history": [{"epoch": 1, "step": 5, "inactive_gamma": {"C1": 2}}], "bn": {}, "universality": {},
            "snapshots": {}, "provenance": {"dataset_used": "synthetic", "image_size": 16, "steps": 5,
                                            "train_images": 200, "device": "cpu"}}


@pytest.fixture
def stored(tmp_path):
    """(store, config, counting trainer): one run stored by the fake trainer."""
    store = RunStore(tmp_path / "store")
    config = RunConfig(dataset="synthetic", seed=3)
    train_fn, calls = counting(fake_train)
    run_or_load(config, execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert len(calls) == 1
    return store, config, train_fn, calls


def reloads_after_setting_aside(store, config, train_fn, calls, aside, match) -> dict:
    """run_or_load warns naming the file, moves it to `aside`, trains again and stores a good record."""
    with pytest.warns(UserWarning, match=match) as caught:
        record = run_or_load(config, execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert len(calls) == 2 and (store.root / aside).exists()
    assert any(str(store.root / aside.replace(".corrupt", "")) in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(config_hash(config)) == json.loads(json.dumps(record))  # served without a word
    return record


@pytest.mark.parametrize("content,reason", [
    ("null", "holds NoneType"), ("[1, 2]", "holds list"), ('{"config": {}}', "missing"),
])
def test_null_and_non_dict_records_are_set_aside(stored, content, reason):
    store, config, train_fn, calls = stored
    key = config_hash(config)
    store.record_path(key).write_text(content)
    with pytest.warns(UserWarning, match=reason):
        assert store.records() == []  # `ls` skips it instead of crashing
    assert (store.root / f"{key}.json.corrupt").read_text() == content
    run_or_load(config, execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert len(calls) == 2 and store.load(key)["config_hash"] == key


def test_record_of_an_edited_config_is_not_served(stored):
    store, config, train_fn, calls = stored
    key = config_hash(config)
    record = json.loads(store.record_path(key).read_text())
    record["config"]["l2"] = 1e-3  # the config no longer hashes to the file's name
    store.record_path(key).write_text(json.dumps(record))
    served = reloads_after_setting_aside(store, config, train_fn, calls, f"{key}.json.corrupt",
                                         "describes another run")
    assert served["config"]["l2"] == config.l2


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["final"].update(test_err=float("nan")), "test_err=nan is not a finite number"),
    (lambda r: r["final"].update(train_loss=float("inf")), "train_loss=inf"),
    (lambda r: r["final"].pop("test_err"), "test_err is missing"),
    (lambda r: r.update(history={}), "'history' is a dict"),
    (lambda r: r["config"].update(seed="3"), "RunConfig.seed='3'"),
])
def test_records_with_bad_fields_are_set_aside(stored, edit, match):
    store, config, train_fn, calls = stored
    key = config_hash(config)
    record = json.loads(store.record_path(key).read_text())
    edit(record)
    store.record_path(key).write_text(json.dumps(record))
    reloads_after_setting_aside(store, config, train_fn, calls, f"{key}.json.corrupt", match)


def test_weights_are_checked_against_the_record(stored, tmp_path):
    store, config, train_fn, calls = stored
    key = config_hash(config)
    weights = store.weights_file(store.load(key))
    assert weights.name == f"{key}-{store.load(key)['weights_sha256'][:16]}.pt"  # named by their content
    assert store.load(key)["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated
    reloads_after_setting_aside(store, config, train_fn, calls, f"{weights.name}.corrupt", "weights")
    assert (store.root / f"{key}.json.corrupt").exists()


def test_another_runs_weights_are_detected(stored):
    store, config, train_fn, calls = stored
    other = config.replace(seed=4)
    run_or_load(other, execution=Execution(store=store, train_fn=train_fn, progress=False))
    mine = store.weights_file(store.load(config_hash(config)))
    shutil.copyfile(store.weights_file(store.load(config_hash(other))), mine)
    with pytest.warns(UserWarning, match=config_hash(config)) as caught:
        assert store.load(config_hash(config)) is None
    assert any("do not match its weights_sha256" in str(w.message) for w in caught)
    assert store.load(config_hash(other)) is not None  # the other run is untouched


def test_missing_weights_of_a_checksummed_record_mean_recompute(stored):
    store, config, train_fn, calls = stored
    store.weights_file(store.load(config_hash(config))).unlink()
    reloads_after_setting_aside(store, config, train_fn, calls, f"{config_hash(config)}.json.corrupt", "missing")


def test_a_record_without_its_weights_checksum_is_set_aside(stored):
    """Removing `weights_sha256` once turned the weights check off (another run's weights were served)."""
    store, config, train_fn, calls = stored
    key = config_hash(config)
    record = json.loads(store.record_path(key).read_text())
    del record["weights_sha256"]
    store.record_path(key).write_text(json.dumps(record))
    reloads_after_setting_aside(store, config, train_fn, calls, f"{key}.json.corrupt", "missing: weights_sha256")


def test_stale_temporaries_are_removed_before_training(stored):
    store, config, train_fn, calls = stored
    (store.root / "checkpoints").mkdir(exist_ok=True)
    old = [store.root / f".{config_hash(config)}.json.{'a' * 32}.tmp",
           store.root / "checkpoints" / f".x.pt.{'b' * 32}.tmp"]
    young = store.root / f".y.json.{'c' * 32}.tmp"
    foreign = store.root / ".notes.tmp"  # not a name temporary_path makes: never touched
    for path in old + [young, foreign]:
        path.write_text("half a write")
    for path in old + [foreign]:
        os.utime(path, (time.time() - STALE_TEMPORARY_S - 60,) * 2)
    run_or_load(config.replace(seed=5), execution=Execution(store=store, train_fn=train_fn, progress=False))
    assert [path.exists() for path in old] == [False, False]
    assert young.exists() and foreign.exists()


def test_a_store_that_is_a_file_fails_before_training(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    train_fn, calls = counting(fake_train)
    with pytest.raises(ValueError, match=f"store='{target}' is a file, not a folder"):
        run_or_load(RunConfig(dataset="synthetic"), execution=Execution(store=target, train_fn=train_fn,
                                                                        progress=False))
    with pytest.raises(ValueError, match=f"store='{target / 'sub'}' cannot be written"):
        run_or_load(RunConfig(dataset="synthetic"), execution=Execution(store=target / "sub", train_fn=train_fn,
                                                                        progress=False))
    assert calls == [] and target.read_text() == "not a folder"


def test_an_unwritable_store_fails_before_training(tmp_path, monkeypatch):
    """Root ignores file modes, so the read-only folder is simulated where the store first writes."""
    real_open = Path.open

    def read_only(self, mode="r", *args, **kwargs):
        if "x" in mode or "w" in mode:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, mode, *args, **kwargs)
    monkeypatch.setattr(Path, "open", read_only)
    train_fn, calls = counting(fake_train)
    with pytest.raises(ValueError, match=f"store='{tmp_path}' cannot be written \\(Permission denied\\)"):
        run_or_load(RunConfig(dataset="synthetic"), execution=Execution(store=tmp_path, train_fn=train_fn,
                                                                        progress=False))
    assert calls == []
