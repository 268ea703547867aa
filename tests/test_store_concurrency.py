"""The run store under concurrent writers (several cluster workers sharing one folder): every record
loads whole, none is duplicated, truncated or mixed from two writers, every record is served with
the weights it was written with, and no writer fails."""
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest

from sparsity_lib import RunConfig, RunStore, config_hash

WRITERS, ROUNDS = 4, 40
SHARED = [RunConfig(dataset="synthetic", seed=seed) for seed in range(3)]  # every writer writes these
ROOT = Path(__file__).resolve().parent.parent


LAYERS = [{"layer": "C1", "features": 8, "inactive_gamma": 0, "inactive_act": 0}]
PROVENANCE = {"dataset_used": "synthetic", "image_size": 16, "steps": 1, "train_images": 1, "device": "cpu"}


def weights_bytes(writer: int, round_: int) -> bytes:
    return f"weights of writer {writer}, round {round_}".encode()


def fake_record(config: RunConfig, writer: int, round_: int) -> dict:
    """A valid record whose size differs per writer and round, and whose content checks itself; its
    weights are `weights_bytes(writer, round_)` (the store checks only their sha256)."""
    size = 1 + (writer * 37 + round_ * 11) % 300
    return {"config": config.to_dict(), "config_hash": config_hash(config),
            "history": [{"step": writer, "inactive_gamma": {}}] * size,
            "final": {"writer": writer, "round": round_, "size": size, "test_err": 50.0, "layers": LAYERS},
            "provenance": {**PROVENANCE, "host": f"worker{writer}"}, "bn": {}, "universality": {}, "snapshots": {},
            "weights_sha256": hashlib.sha256(weights_bytes(writer, round_)).hexdigest()}


def save_with_weights(store: RunStore, config: RunConfig, writer: int, round_: int) -> None:
    """What a trainer and `run_or_load` do: weights to a temporary file, then `save` moves them and
    writes the record."""
    weights = store.weights_temporary(config_hash(config))
    weights.write_bytes(weights_bytes(writer, round_))
    store.save(fake_record(config, writer, round_), weights=weights)


def assert_whole(record: dict, key: str, store: RunStore) -> None:
    """A record one writer wrote completely (not truncated, not two writers' bytes interleaved),
    served with the weights that writer wrote for it."""
    final = record["final"]
    assert record["config_hash"] == key
    assert record["history"] == [{"step": final["writer"], "inactive_gamma": {}}] * final["size"]
    assert store.weights_file(record).read_bytes() == weights_bytes(final["writer"], final["round"])


def write_records(root: str, writer: int, same_pid: bool) -> None:
    """A worker: ROUNDS saves of every SHARED record plus one record of its own; exit 1 on any error."""
    try:
        if same_pid:
            # Containers (or hosts) sharing one filesystem each have their own pid namespace: two
            # workers with the same pid is normal there, and nothing may depend on pids differing.
            os.getpid = lambda: 4242
        store = RunStore(root)
        own = RunConfig(dataset="synthetic", seed=100 + writer)
        for round_ in range(ROUNDS):
            for config in SHARED:
                save_with_weights(store, config, writer, round_)
        save_with_weights(store, own, writer, 0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def hammer(root: Path, same_pid: bool) -> list[int]:
    """Run WRITERS writer processes on one store while this process keeps reading it; their exit codes."""
    context = multiprocessing.get_context("fork")  # the writers touch no torch, so fork is safe and fast
    workers = [context.Process(target=write_records, args=(str(root), w, same_pid)) for w in range(WRITERS)]
    store = RunStore(root)
    for worker in workers:
        worker.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt record read mid-write would warn and be moved aside
        while any(worker.is_alive() for worker in workers):
            for config in SHARED:
                record = store.load(config_hash(config))
                if record is not None:
                    assert_whole(record, config_hash(config), store)
    for worker in workers:
        worker.join()
    return [worker.exitcode for worker in workers]


def assert_store_whole(root: Path) -> None:
    expected = {config_hash(c) for c in SHARED} | {
        config_hash(RunConfig(dataset="synthetic", seed=100 + w)) for w in range(WRITERS)}
    store = RunStore(root)
    assert sorted(p.name for p in root.glob("*.json")) == sorted(f"{key}.json" for key in expected)
    assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}\.pt", p.name) for p in root.glob("*.pt"))
    assert {p.suffix for p in root.iterdir()} == {".json", ".pt"}  # no leftovers (temporary files)
    records = store.records()
    assert sorted(r["config_hash"] for r in records) == sorted(expected)  # each once
    for record in records:
        assert_whole(record, record["config_hash"], store)
        assert record["final"]["round"] == (ROUNDS - 1 if record["config_hash"] in
                                            {config_hash(c) for c in SHARED} else 0)


def test_concurrent_writers_leave_whole_records(tmp_path):
    assert hammer(tmp_path, same_pid=False) == [0] * WRITERS
    assert_store_whole(tmp_path)


def test_writers_with_the_same_pid_leave_whole_records(tmp_path):
    """Workers on different hosts (or containers) can share a pid; temp names must not collide."""
    assert hammer(tmp_path, same_pid=True) == [0] * WRITERS
    assert_store_whole(tmp_path)


WORKER = """
import json, sys
from sparsity_lib import Execution, RunConfig, run_or_load
config = RunConfig.from_dict(json.loads(sys.argv[2]))
record = run_or_load(config, Execution(store=sys.argv[1], progress=False))
print(record["config_hash"])
"""


def test_two_workers_finishing_the_same_config(tmp_path, tiny_config):
    """Two processes train the same config into one store at once: one whole record, loadable weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), json.dumps(tiny_config.to_dict())],
                                cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    key = config_hash(tiny_config)
    assert [out.split()[-1] for out, _ in outputs] == [key, key]
    store = RunStore(tmp_path)
    assert [p.name for p in tmp_path.glob("*.json")] == [f"{key}.json"]
    assert all(re.fullmatch(f"{key}-[0-9a-f]{{16}}\\.pt", p.name) for p in tmp_path.glob("*.pt"))
    assert not list(tmp_path.glob("checkpoints/*")) and not list(tmp_path.glob(".*"))
    record = store.load(key)
    assert record is not None and len(record["history"]) == 3
    # The record is served with the weights its own writer wrote: they describe the same model.
    from sparsity_lib.data.loaders import make_loader
    from sparsity_lib.runs.build import load_model, load_splits
    from sparsity_lib.runs.metrics import evaluate
    model = load_model(record, store.weights_file(record))
    _, test_data = load_splits(tiny_config)
    _, test_err = evaluate(model, make_loader(test_data, 500, train=False))
    assert test_err == pytest.approx(record["final"]["test_err"])
