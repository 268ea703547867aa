"""The run store under concurrent writers (several cluster workers sharing one folder): every record
loads whole, none is duplicated, truncated or mixed from two writers, and no writer fails."""
import json
import multiprocessing
import os
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


def fake_record(config: RunConfig, writer: int, round_: int) -> dict:
    """A record whose size differs per writer and round, and whose content checks itself."""
    size = 1 + (writer * 37 + round_ * 11) % 300
    return {"config": config.to_dict(), "config_hash": config_hash(config), "history": [writer] * size,
            "final": {"writer": writer, "round": round_, "size": size, "test_err": 50.0},  # the store needs test_err
            "provenance": {"host": f"worker{writer}"}}


def assert_whole(record: dict, key: str) -> None:
    """A record one writer wrote completely: not truncated, not two writers' bytes interleaved."""
    final = record["final"]
    assert record["config_hash"] == key
    assert record["history"] == [final["writer"]] * final["size"]


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
                store.save(fake_record(config, writer, round_))
        store.save(fake_record(own, writer, 0))
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
                    assert_whole(record, config_hash(config))
    for worker in workers:
        worker.join()
    return [worker.exitcode for worker in workers]


def assert_store_whole(root: Path) -> None:
    expected = {config_hash(c) for c in SHARED} | {
        config_hash(RunConfig(dataset="synthetic", seed=100 + w)) for w in range(WRITERS)}
    store = RunStore(root)
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{key}.json" for key in expected)  # no leftovers
    records = store.records()
    assert sorted(r["config_hash"] for r in records) == sorted(expected)  # each once
    for record in records:
        assert_whole(record, record["config_hash"])
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
from sparsity_lib import RunConfig, run_or_load
config = RunConfig.from_dict(json.loads(sys.argv[2]))
record = run_or_load(config, store=sys.argv[1], progress=False)
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
    assert sorted(p.name for p in tmp_path.glob("*.*")) == [f"{key}.json", f"{key}.pt"]
    assert not list(tmp_path.glob("checkpoints/*")) and not list(tmp_path.glob(".*"))
    record = store.load(key)
    assert record is not None and len(record["history"]) == 3
    # Record and weights may come from different workers; they must still describe the same model.
    from sparsity_lib.data import make_loader
    from sparsity_lib.train import evaluate, load_model, load_splits
    model = load_model(record, store.weights_path(key))
    _, test_data = load_splits(tiny_config)
    _, test_err = evaluate(model, make_loader(test_data, 500, train=False))
    assert test_err == pytest.approx(record["final"]["test_err"])
