"""Sweeps as tasks (sparsity_lib.runs.cluster): a pool of local workers, a local Ray cluster and submitit's
local executor train a smoke grid into one store, one config crashes once and resumes on retry, and
nothing runs twice."""
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from sparsity_lib import RunStore, config_hash, make_config
from sparsity_lib.cli import main
from sparsity_lib.environment import execution_from_environment, open_chapter, workers_from_env
from sparsity_lib.runs import cluster, dispatch
from sparsity_lib.runs.cluster import SweepFailed, run_sweep
from sparsity_lib.runs.dispatch import run_or_load_all
from sparsity_lib.runs.execution import Execution, local_workers, machine_cores
from sparsity_lib.runs.training import train

GRID = {"optimizer": ("adam", "sgd"), "l2": (1e-4, 5e-4, 1e-3)}
SMALL = {"dataset": "synthetic", "train_subset": 200, "test_subset": 100}  # smoke at half its images
CLI_GRID = [*(arg for name, value in SMALL.items() for arg in ("--set", f"{name}={value}")),
            "--grid", "optimizer=adam,sgd", "--grid", "l2=1e-4,5e-4,1e-3", "--seeds", "1"]


def smoke_grid():
    """The 6 configs that `sweep --profile smoke` + CLI_GRID builds (about a second each on a CPU)."""
    return [make_config("smoke", **SMALL, optimizer=opt, l2=l2, seed=0)
            for opt in GRID["optimizer"] for l2 in GRID["l2"]]


@pytest.fixture(scope="module")
def local_ray():
    """A Ray cluster of 2 CPUs on this machine, started as `run_sweep` starts one, shared by the tests."""
    ray = pytest.importorskip("ray")
    from sparsity_lib.runs.cluster import start_ray
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)  # never a cluster this machine happens to know
        assert start_ray(address=None, local_cpus=2)
    assert ray.cluster_resources()["CPU"] == 2
    assert len(ray.nodes()) == 1  # this machine only
    yield ray
    ray.shutdown()


class CrashOnce:
    """A `train_fn` for the tasks: the real `train`, except that the first attempt at config `crash`
    raises right after its first epoch's checkpoint (a worker dying mid-run), and `always` raises on
    every attempt. Every attempt appends its hash to `folder/started.log`, every finished training to
    `folder/trained.log`."""

    def __init__(self, folder, crash=None, always=None):
        self.folder, self.crash, self.always = str(folder), crash, always

    def __call__(self, config, **kwargs):
        folder, key = Path(self.folder), config_hash(config)
        log_start(folder, key)
        if key == self.always:
            raise RuntimeError(f"injected permanent failure of {key}")

        def crash_after_first_epoch(epoch, entry):
            marker = folder / "crashed"
            if key == self.crash and not marker.exists():
                marker.write_text(f"{key} epoch {epoch}\n")
                raise RuntimeError(f"injected crash of {key} after epoch {epoch}")

        record = train(config, callback=crash_after_first_epoch, **kwargs)
        with open(folder / "trained.log", "a") as log:
            log.write(key + "\n")
        return record


class DieOnce(CrashOnce):
    """As CrashOnce, but the first attempt at config `crash` kills its whole worker process after the
    first epoch's checkpoint (out of memory, a signal): the local pool breaks and must be replaced.

    So that the pool breaks at a known moment for every run, each other run that reaches its first
    epoch's checkpoint before the crash parks there (logging `parked`) until the broken pool kills it, and
    the crashing run waits for a neighbour to park before it dies (it may reach its first epoch first):
    the runs in flight when the worker dies are exactly the parked ones, and each must resume from its
    checkpoint."""

    def __call__(self, config, **kwargs):
        folder, key = Path(self.folder), config_hash(config)
        log_start(folder, key)
        marker = folder / "crashed"

        def die_after_first_epoch(epoch, entry):
            if key == self.crash and not marker.exists():
                wait_for_a_parked_neighbour(folder, key)
                marker.write_text(f"{key} epoch {epoch}\n")
                os._exit(3)
            if epoch == 1 and not marker.exists():
                park_until(folder, key)

        record = train(config, callback=die_after_first_epoch, **kwargs)
        with open(folder / "trained.log", "a") as log:
            log.write(key + "\n")
        return record


def wait_for_a_parked_neighbour(folder: Path, key: str, timeout_s: float = 300.0) -> None:
    """Wait until a run other than `key` has parked; after `timeout_s` return anyway (the test's count of
    runs in flight then fails and says so)."""
    deadline = time.monotonic() + timeout_s
    while not set(trained_log(folder, "parked.log")) - {key} and time.monotonic() < deadline:
        time.sleep(0.05)


def park_until(folder: Path, key: str, timeout_s: float = 300.0) -> None:
    """Park a run in flight until its broken pool kills it: `parked.log` gets `key`, then the run waits,
    also after the crash marker appears (released then, it could finish before the pool kills its worker and
    would not resume). Only if it is still alive after `timeout_s` (its pool did not cut it off) does
    `unparked.log` get `key` and the run go on."""
    log_start(folder, key, "parked.log")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
    log_start(folder, key, "unparked.log")


def ship_by_value():
    """Workers cannot import this test module; pickle CrashOnce by value (Ray and submitit)."""
    import importlib
    for name in ("cloudpickle", "ray.cloudpickle"):  # submitit's pickler, Ray's vendored one
        try:
            importlib.import_module(name).register_pickle_by_value(sys.modules[__name__])
        except ImportError:
            pass


def log_start(folder: Path, key: str, name: str = "started.log") -> None:
    with open(folder / name, "a") as log:
        log.write(key + "\n")


def trained_log(folder: Path, name: str = "trained.log") -> Counter:
    path = folder / name
    return Counter(path.read_text().split()) if path.exists() else Counter()


def in_flight(folder: Path) -> set[str]:
    """The runs parked (`DieOnce`) when the crashing worker died: those its broken pool cut off."""
    return set(trained_log(folder, "parked.log")) - set(trained_log(folder, "unparked.log"))


def assert_sweep_landed_once(store: RunStore, configs, folder: Path, crashed: str) -> None:
    """Every config trained to completion exactly once, its record whole; the crashed run resumed, and so
    did every run its dying worker's broken pool cut off (`in_flight`); no other run resumed."""
    keys = {config_hash(c) for c in configs}
    assert (folder / "crashed").exists(), "the injected crash never happened"
    assert trained_log(folder) == Counter(keys)  # each config finished once: no re-runs, none lost
    assert {p.stem for p in store.root.glob("*.json")} == keys
    assert not list(store.root.glob("*.corrupt")) and not list(store.root.glob("checkpoints/*.pt"))
    resumed = {crashed} | in_flight(folder)
    for key in keys:
        record = store.load(key)
        assert record is not None and record["config_hash"] == key
        assert len(record["history"]) == 2  # both smoke epochs, also for the run that crashed after one
        assert record["provenance"]["resumed"] == (key in resumed), key
        assert store.weights_file(record).exists()


def test_ray_sweep_retries_a_crash_and_never_reruns(local_ray, tmp_path, capsys):
    ship_by_value()
    configs = smoke_grid()
    crashed = config_hash(configs[2])
    store = RunStore(tmp_path / "store")
    execution = Execution(backend="ray", store=store, progress=False, train_fn=CrashOnce(tmp_path, crash=crashed))
    result = run_sweep(configs, execution, retries=2)
    assert sorted(result.trained) == sorted(config_hash(c) for c in configs) and not result.already_stored
    assert_sweep_landed_once(store, configs, tmp_path, crashed)

    # The same grid again, through the CLI: every config is stored, so no task runs and none retrains.
    stamps = {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.json")}
    capsys.readouterr()  # drop Ray's own log lines
    assert main(["sweep", "--profile", "smoke", "--store", str(store.root), *CLI_GRID, "--backend", "ray"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]  # the table: a header, then one row per config
    assert sorted(row.split()[0] for row in rows) == sorted(config_hash(c) for c in configs)
    assert {p.name: p.stat().st_mtime_ns for p in store.root.glob("*.json")} == stamps
    assert trained_log(tmp_path) == Counter(config_hash(c) for c in configs)


def test_ray_reports_the_config_that_fails_every_retry(local_ray, tmp_path):
    ship_by_value()
    good, bad = smoke_grid()[:2]
    with pytest.raises(SweepFailed) as failed:
        run_sweep([good, bad], Execution(backend="ray", store=tmp_path / "store", progress=False,
                                         train_fn=CrashOnce(tmp_path, always=config_hash(bad))), retries=1)
    message = str(failed.value)
    assert config_hash(bad) in message and bad.label() in message and "injected permanent failure" in message
    assert config_hash(good) not in message
    assert failed.value.result.trained == [config_hash(good)]
    assert RunStore(tmp_path / "store").load(config_hash(bad)) is None


def test_submitit_local_executor_runs_the_same_sweep(tmp_path):
    pytest.importorskip("submitit")
    ship_by_value()
    configs = smoke_grid()
    crashed = config_hash(configs[4])
    store = RunStore(tmp_path / "store")
    execution = Execution(backend="slurm", store=store, progress=False, train_fn=CrashOnce(tmp_path, crash=crashed))
    result = run_sweep(configs, execution, retries=2, cluster="local", folder=tmp_path / "jobs", gpus_per_task=0,
                       cpus_per_task=1, poll_s=0.5)
    assert sorted(result.trained) == sorted(config_hash(c) for c in configs)
    assert_sweep_landed_once(store, configs, tmp_path, crashed)
    again = run_sweep(configs, Execution(backend="slurm", store=store, progress=False), cluster="local",
                      folder=tmp_path / "jobs")
    assert again.trained == [] and sorted(again.already_stored) == sorted(result.trained)
    assert trained_log(tmp_path) == Counter(config_hash(c) for c in configs)


def test_local_backend_retries_and_reports(tmp_path):
    good, crashing, bad = smoke_grid()[:3]
    store = RunStore(tmp_path / "store")
    train_fn = CrashOnce(tmp_path, crash=config_hash(crashing), always=config_hash(bad))
    with pytest.raises(SweepFailed) as failed:
        run_sweep([good, crashing, bad, good], Execution(store=store, progress=False, train_fn=train_fn), retries=1)
    assert [config for config, _ in failed.value.result.failures] == [bad]
    assert "injected permanent failure" in str(failed.value)
    assert trained_log(tmp_path) == Counter([config_hash(good), config_hash(crashing)])  # the duplicate ran once
    assert store.load(config_hash(crashing))["provenance"]["resumed"] is True
    # The batch form a notebook uses: stored records come back in order, nothing trains again.
    records = run_or_load_all([crashing, good], Execution(store=store, progress=False, train_fn=train_fn))
    assert [r["config_hash"] for r in records] == [config_hash(crashing), config_hash(good)]
    assert trained_log(tmp_path) == Counter([config_hash(good), config_hash(crashing)])


def test_unknown_backend_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"backend='dask'.*local, ray, slurm"):
        run_sweep(smoke_grid(), Execution(backend="dask", store=tmp_path))
    monkeypatch.setenv("SPARSITY_BACKEND", "dask")  # what `make book BACKEND=...` sets for the notebooks
    with pytest.raises(ValueError, match=r"SPARSITY_BACKEND='dask' is invalid; allowed: local, ray, slurm"):
        execution_from_environment(store=tmp_path)


def test_cli_without_ray_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed: `import ray` fails
    code = main(["sweep", "--profile", "smoke", "--store", str(tmp_path), *CLI_GRID, "--backend", "ray"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ray" in err and "requirements-cluster.txt" in err and "--backend local" in err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="this machine has SLURM")
def test_slurm_backend_without_slurm_is_a_clear_error(tmp_path, capsys):
    # submitit alone would quietly run every task at once on this machine instead
    code = main(["sweep", "--profile", "smoke", "--store", str(tmp_path), *CLI_GRID, "--backend", "slurm"])
    assert code == 2
    err = capsys.readouterr().err
    assert "sbatch" in err and "--backend local" in err
    assert not list(tmp_path.rglob("*.json")) and not (tmp_path / "slurm").exists()


def test_fused_tasks_train_a_group_in_one_task(tmp_path):
    configs = smoke_grid()[:2]  # adam, L2 1e-4 and 5e-4: fusable (they differ only in L2)
    result = run_sweep(configs, execution=Execution(backend="local", store=tmp_path, fused="on", progress=False))
    assert sorted(result.trained) == sorted(config_hash(c) for c in configs)
    records = [RunStore(tmp_path).load(config_hash(c)) for c in configs]
    assert [r["provenance"]["fused_models"] for r in records] == [2, 2]  # trained together
    with pytest.raises(ValueError, match="fused='maybe'.*auto, on, off"):
        run_sweep(configs, execution=Execution(backend="local", store=tmp_path, fused="maybe"))
    more = [c.replace(seed=c.seed + 10) for c in configs]
    run_sweep(more, execution=Execution(backend="local", store=tmp_path, fused="on", speed=("amp", "channels_last"),
                                        progress=False))
    provenance = [RunStore(tmp_path).load(config_hash(c))["provenance"] for c in more]
    assert [(p["precision"], p["channels_last"], p["compiled"]) for p in provenance] == [("bf16 autocast", True,
                                                                                         False)] * 2
    with pytest.raises(ValueError, match="belong to the fused trainer"):
        run_sweep(more, execution=Execution(backend="local", store=tmp_path, speed=("amp",)))
    with pytest.raises(ValueError, match=r"speed='fast'.*amp, channels_last, compile"):
        run_sweep(more, execution=Execution(backend="local", store=tmp_path, fused="on", speed=("fast",)))


# ------------------------------------------------------------------------------ local worker pool
def test_local_pool_stores_each_run_once_equal_to_the_serial_run(tmp_path, capsys):
    """`sweep --workers 2` (two spawned single-threaded workers, one store) gives the records a serial
    in-process sweep on one thread gives, bit for bit; each run is stored once, whole."""
    configs = [c for c in smoke_grid() if c.l2 in (1e-4, 5e-4)]
    keys = sorted(config_hash(c) for c in configs)
    assert main(["sweep", "--profile", "smoke", "--store", str(tmp_path / "pool"), *CLI_GRID[:6],
                 "--grid", "optimizer=adam,sgd", "--grid", "l2=1e-4,5e-4", "--seeds", "1", "--workers", "2"]) == 0
    printed = sorted(row.split()[0] for row in capsys.readouterr().out.splitlines()[1:])
    assert printed == keys
    pool = RunStore(tmp_path / "pool")
    assert sorted(p.stem for p in pool.root.glob("*.json")) == keys
    assert not list(pool.root.rglob("*.corrupt")) and not list(pool.root.glob("checkpoints/*.pt"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each pool worker uses: same kernels, same float rounding
    try:
        result = run_sweep(configs, execution=Execution(backend="local", workers=1, store=tmp_path / "serial",
                                                        progress=False))
    finally:
        torch.set_num_threads(threads)
    assert sorted(result.trained) == keys
    for key in keys:
        parallel, serial = pool.load(key), RunStore(tmp_path / "serial").load(key)
        assert json.loads(pool.record_path(key).read_text()) == parallel  # loadable, whole
        assert parallel["provenance"]["cpu_threads"] == 1
        assert parallel["final"] == serial["final"] and parallel["history"] == serial["history"]
        assert pool.weights_file(parallel).exists()


def test_local_pool_names_the_failing_config_and_stores_the_others(tmp_path, capsys):
    """A config whose dataset is missing fails in its worker on every attempt; the sweep names it with its
    error and exits 1, and the other configs are stored."""
    args = ["sweep", "--profile", "smoke", "--store", str(tmp_path / "store"), "--data-root", str(tmp_path / "no-data"),
            "--set", "train_subset=200", "--set", "test_subset=100", "--grid", "dataset=synthetic,cifar10",
            "--grid", "l2=1e-4,5e-4", "--seeds", "1", "--workers", "2", "--retries", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    bad = [make_config("smoke", dataset="cifar10", train_subset=200, test_subset=100, l2=l2) for l2 in (1e-4, 5e-4)]
    good = [make_config("smoke", dataset="synthetic", train_subset=200, test_subset=100, l2=l2) for l2 in (1e-4, 5e-4)]
    assert "2 configuration(s) failed on the local backend" in err
    for config in bad:
        assert f"({config_hash(config)}): FileNotFoundError: CIFAR-10 not found" in err
    assert sorted(p.stem for p in (tmp_path / "store").glob("*.json")) == sorted(config_hash(c) for c in good)


@pytest.mark.parametrize("failure", [CrashOnce, DieOnce])
def test_local_pool_retries_a_crash_or_a_dead_worker(tmp_path, failure):
    """A task that raises is resubmitted; a worker that dies breaks the pool, and the unfinished tasks go
    to a new one. Either way every run finishes once and the crashed one resumes from its checkpoint."""
    configs = smoke_grid()[:4]
    crashed = config_hash(configs[1])
    store = RunStore(tmp_path / "store")
    result = run_sweep(configs, retries=1, execution=Execution(backend="local", workers=2, store=store,
                                                               progress=False, train_fn=failure(tmp_path,
                                                                                                crash=crashed)))
    assert sorted(result.trained) == sorted(config_hash(c) for c in configs)
    if failure is DieOnce:  # the run beside the crashed one was cut off at its first epoch, and resumed
        assert len(in_flight(tmp_path)) == 1
    assert_sweep_landed_once(store, configs, tmp_path, crashed)


def test_workers_default_to_the_machine_and_reject_nonsense(monkeypatch):
    assert local_workers("auto", "cpu") == local_workers(None, "cpu") == machine_cores()
    assert local_workers(3, "cpu") == 3
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ValueError, match=r"workers=.*allowed: 'auto'.*integer >= 1"):
            local_workers(bad)
    monkeypatch.setenv("SPARSITY_WORKERS", "two")
    with pytest.raises(ValueError, match=r"SPARSITY_WORKERS='two' is invalid; allowed: auto or an integer >= 1"):
        workers_from_env()
    monkeypatch.setenv("SPARSITY_WORKERS", "")
    assert workers_from_env() == "auto"
    assert main(["sweep", "--profile", "smoke", "--workers", "0"]) == 2  # a usage error (issue 12's boundary)


def test_chapter_trains_missing_runs_in_the_local_pool(tmp_path, monkeypatch):
    """`make book WORKERS=2` sets $SPARSITY_WORKERS: a chapter's missing runs go to a pool of 2."""
    calls = []
    real = cluster.run_sweep
    monkeypatch.setattr(dispatch, "run_sweep",
                        lambda configs, execution, **kw: calls.append(execution.worker_count()) or
                        real(configs, execution, **kw))
    monkeypatch.setenv("SPARSITY_WORKERS", "2")
    monkeypatch.setenv("SPARSITY_FUSED", "off")
    chapter = open_chapter(profile="smoke", dataset="synthetic", seeds=2, store=str(tmp_path), device="cpu")
    records = chapter.runs([dict(optimizer="sgd", l2=1e-3, train_subset=200)], progress=False)
    assert calls == [2] and [r["config"]["seed"] for r in records] == [0, 1]
    assert [r["provenance"]["cpu_threads"] for r in records] == [1, 1]
    monkeypatch.setenv("SPARSITY_WORKERS", "1")  # one worker: the run trains in this process
    chapter = open_chapter(profile="smoke", dataset="synthetic", seeds=2, store=str(tmp_path), device="cpu")
    chapter.runs([dict(optimizer="adam", l2=1e-3, train_subset=200)], progress=False)
    assert calls == [2]
