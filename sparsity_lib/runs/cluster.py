"""Sweeps: the configurations a run store lacks, trained as tasks on this machine's cores or elsewhere.

At the `paper` profile the book is hundreds of GPU-hours of independent runs (Table 1 alone is 216
runs of 325 epochs, Sec. 3 / docs/paper_tables.md). `run_sweep(configs, backend=...)` sends every configuration
that is not yet in the store to an executor that already exists -- a pool of local worker processes
(`concurrent.futures`, one single-threaded worker per core), Ray (the default for clusters) or SLURM
through submitit -- and leaves the scheduling, resources and requeueing to it. Each task is
`run_task`: `run_or_load` for its configurations (with the sweep's `Execution`), so a task writes its
record into the same store a notebook reads, a config that is already stored is never trained again,
and a retried task resumes from the run's last checkpoint (it loses at most one checkpoint interval,
one epoch by default).

Ray and submitit are optional (`requirements-cluster.txt`); they are imported only by their backend.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .config import RunConfig, config_hash
from .execution import Execution, local_workers
from .fused.groups import fusable_groups
from .fused.trainer import run_or_load_group
from .runner import resolve_config, run_or_load

__all__ = ["describe_error", "init_worker", "package_dir", "plan_tasks", "pool_round", "progress_bar", "RAISED_LINE",
           "resubmit", "run_in_pool", "run_locally", "run_on_ray", "run_on_slurm", "run_sweep", "run_task",
           "slurm_executor", "SlurmTask", "start_ray", "SweepFailed", "SweepResult", "task_failures"]

@dataclass
class SweepResult:
    """What a sweep did: `trained` and `already_stored` are config hashes; `failures` pairs a config
    with the error of its last attempt."""
    backend: str
    trained: list[str] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    failures: list[tuple[RunConfig, str]] = field(default_factory=list)


class SweepFailed(RuntimeError):
    """Some configurations failed on every attempt; the message names each one and its error."""

    def __init__(self, result: SweepResult):
        self.result = result
        lines = [f"  {config.label()} seed {config.seed} ({config_hash(config)}): {error}"
                 for config, error in result.failures]
        super().__init__(f"{len(result.failures)} configuration(s) failed on the {result.backend} backend "
                         f"after all retries:\n" + "\n".join(lines))


def run_task(configs: Sequence[RunConfig], execution: Execution) -> list[str]:
    """Train (or load) `configs` into the store, in order; the hashes of the configs, in order.

    This is the function every backend runs on a worker: one config, or with `execution.fused='on'`
    one group of configs that `fused.groups.fusable_groups` allows to train as one fused network.
    """
    if execution.fused == "on":
        run_or_load_group(list(configs), execution.replace(max_models=len(configs)))
    else:
        for config in configs:
            run_or_load(config, execution)
    return [config_hash(config) for config in configs]


RAISED_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(:|$)")


def describe_error(error: BaseException) -> str:
    """'Type: message' of the error a task raised, unwrapped from Ray's and submitit's wrappers.

    Both wrappers carry the worker's traceback as text; its last 'SomethingError: ...' line is the
    error the task itself raised.
    """
    cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError keeps the task's own error
    if isinstance(cause, BaseException):
        error = cause
    raised = [line.strip() for line in str(error).splitlines() if RAISED_LINE.match(line.strip())]
    return raised[-1] if raised else f"{type(error).__name__}: {str(error).strip()}"


def plan_tasks(configs: Sequence[RunConfig], fused: str = "off", max_models: int = 32) -> list[tuple]:
    """The tasks of a sweep: one config each, or with fused='on' the groups `fused.groups.fusable_groups`
    forms (at most `max_models` configs that differ only in optimizer hyperparameters and seed)."""
    if fused == "off":
        return [(config,) for config in configs]
    return [tuple(group) for group in fusable_groups(list(configs), max_models)]


def run_sweep(configs: Sequence[RunConfig], execution: Execution, *, retries: int = 2,
              **backend_options) -> SweepResult:
    """Train every config of `configs` that the store lacks, one task per config, on `execution.backend`.

    backend 'local': this machine, `execution.workers` processes (1 trains one after another in this
    process, N > 1 in a pool of N single-threaded worker processes, see `run_locally`); 'ray' (see
    `run_on_ray` for `backend_options`: address, cpus_per_task, gpus_per_task, local_cpus) or 'slurm'
    (see `run_on_slurm`: folder, partition, time_min, gpus_per_task, cpus_per_task, cluster). `retries`:
    extra attempts of a failed task; each resumes from the run's checkpoint. `execution.fresh` retrains
    stored configs too. When `execution.fuses()`: one task per fusable group of up to `max_models`
    configs, trained as one fused network, with the fused trainer's `speed` options.
    Raises SweepFailed, naming every config that failed on all attempts, after the other tasks end.
    """
    fuse = execution.fuses()
    if execution.speed and not fuse:
        raise ValueError(f"speed options {', '.join(execution.speed)} belong to the fused trainer; pass fused='on'")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries={retries!r} is invalid; allowed: an integer >= 0")
    store = execution.run_store
    unique = {config_hash(c): c for c in (resolve_config(c, execution.data_root)[0] for c in configs)}
    stored = set() if execution.fresh else {key for key in unique if store.load(key) is not None}
    pending = [config for key, config in unique.items() if key not in stored]
    result = SweepResult(execution.backend, already_stored=[key for key in unique if key in stored])
    if pending:
        task_execution = execution.replace(store=str(store.root), progress=False, fused="on" if fuse else "off")
        tasks = plan_tasks(pending, task_execution.fused, execution.max_models)
        if execution.backend == "local":
            backend_options = {"workers": execution.worker_count(), **backend_options}
        runner = {"local": run_locally, "ray": run_on_ray, "slurm": run_on_slurm}[execution.backend]
        failures = runner(tasks, task_execution, retries=retries, progress=execution.progress, **backend_options)
        failed = {config_hash(config) for config, _ in failures}
        result.trained = [config_hash(c) for c in pending if config_hash(c) not in failed]
        result.failures = failures
    if result.failures:
        raise SweepFailed(result)
    return result


def progress_bar(total: int, backend: str, progress: bool) -> tqdm:
    """One bar for the whole sweep: finished tasks out of all, with a count of failed ones."""
    return tqdm(total=total, desc=f"sweep on {backend}", unit="task", disable=not progress, mininterval=1.0)


def task_failures(task, error: BaseException, bar: tqdm, failures: list) -> None:
    """Add the configs of a task that failed on its last attempt to `failures`, and say so now
    (a long sweep goes on with the other tasks; the full list comes with SweepFailed at the end)."""
    failures.extend((config, describe_error(error)) for config in task)
    for config in task:
        bar.write(f"failed: {config.label()} seed {config.seed} ({config_hash(config)}): {failures[-1][1]}")
    bar.set_postfix(failed=len(failures))


# ------------------------------------------------------------------------------------ backends
def init_worker() -> None:
    """Each pool worker computes on one thread: N single-threaded runs use N cores better than one run
    on N threads (BENCHMARKS.md, section 5), and N workers on N threads each would oversubscribe."""
    torch.set_num_threads(1)


def run_locally(tasks, execution: Execution, *, retries: int = 2, progress: bool = True, workers: int = 1) -> list:
    """Run the tasks on this machine; the failures as (config, error) pairs.

    workers=1 (or a single task): one after another in this process. workers=N: in a pool of N worker
    processes (`run_in_pool`). A task that raises is retried `retries` times, resuming from its run's
    checkpoint.
    """
    workers = min(local_workers(workers), len(tasks))
    if workers > 1:
        return run_in_pool(tasks, execution, retries=retries, progress=progress, workers=workers)
    failures = []
    with progress_bar(len(tasks), "local", progress) as bar:
        for task in tasks:
            for attempt in range(retries + 1):
                try:
                    run_task(task, execution)
                    break
                except Exception as error:  # a crashed run: try again from its checkpoint
                    if attempt == retries:
                        task_failures(task, error, bar, failures)
            bar.update(1)
    return failures


def run_in_pool(tasks, execution: Execution, *, retries: int, progress: bool, workers: int) -> list:
    """Run the tasks in a `ProcessPoolExecutor` of `workers` single-threaded processes writing the same
    store; the failures as (config, error) pairs, as the Ray and SLURM backends report them.

    Workers are started with 'spawn' (a forked child would inherit torch's thread pools mid-state), so
    they import the package afresh and `execution.train_fn` must be importable by name. A task that
    raises is resubmitted `retries` times. A worker that dies (killed, out of memory) breaks the whole
    pool: every task it held counts one attempt, and the unfinished ones go to a new pool.
    """
    failures = []
    pending = [(task, 0) for task in tasks]
    with progress_bar(len(tasks), f"{workers} local workers", progress) as bar:
        while pending:
            pending = pool_round(pending, execution, retries, workers, bar, failures)
    return failures


def pool_round(pending, execution: Execution, retries: int, workers: int, bar: tqdm, failures: list) -> list:
    """Run (task, attempt) pairs in one pool until all end or the pool breaks; the pairs left for a new pool."""
    context = multiprocessing.get_context("spawn")
    left = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
        running = {pool.submit(run_task, task, execution): (task, attempt) for task, attempt in pending}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task, attempt = running.pop(future)
                try:
                    future.result()
                except Exception as error:  # the task raised, or its worker died (BrokenProcessPool)
                    if attempt < retries:
                        retry = None if isinstance(error, BrokenProcessPool) else resubmit(pool, task, execution)
                        if retry is None:
                            left.append((task, attempt + 1))
                        else:
                            running[retry] = (task, attempt + 1)
                        continue
                    task_failures(task, error, bar, failures)
                bar.update(1)
    return left


def resubmit(pool: ProcessPoolExecutor, task, execution: Execution):
    """`task` submitted to `pool` again; None when the pool is broken (a worker died meanwhile)."""
    try:
        return pool.submit(run_task, task, execution)
    except BrokenProcessPool:
        return None


def package_dir() -> str:
    """The sparsity_lib folder (this module's grandparent): shipped to Ray workers so they run the driver's code."""
    return str(Path(__file__).resolve().parents[1])


def start_ray(address: str | None, local_cpus: int | None) -> bool:
    """Connect to the cluster at `address` or $RAY_ADDRESS ('auto', 'ray://head:10001') or start one here.

    Returns True when this call started Ray (so the sweep shuts it down afterwards). A Ray session
    that is already running in this process is used as it is.
    """
    import ray
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")  # what `ray.init()` itself would connect to
    # py_modules ships sparsity_lib to every worker: a remote cluster needs no install of it, and
    # workers never import a different copy than the driver's.
    runtime_env = {"py_modules": [package_dir()]}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=local_cpus, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
    return True


def run_on_ray(tasks, execution: Execution, *, retries: int = 2, progress: bool = True, address: str | None = None,
               cpus_per_task: float = 1, gpus_per_task: float | None = None, local_cpus: int | None = None) -> list:
    """Run the tasks as Ray tasks; the failures as (config, error) pairs.

    address: an existing cluster ('auto' for the one `ray start` made on this node, or
    'ray://head:10001'); None starts a local Ray with `local_cpus` CPUs (None: all). gpus_per_task:
    None asks for 1 GPU per task when the cluster has GPUs, else none (the task then takes
    `cpus_per_task` CPUs). A task whose code raises is retried `retries` times (`retry_exceptions`),
    as is one whose worker dies (`max_retries`).
    """
    import ray
    started = start_ray(address, local_cpus)
    try:
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        remote = ray.remote(run_task).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                                              retry_exceptions=True, name="sparsity_run")
        running = {remote.remote(task, execution): task for task in tasks}
        failures = []
        with progress_bar(len(tasks), "ray", progress) as bar:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                task = running.pop(done[0])
                try:
                    ray.get(done[0])
                except Exception as error:  # RayTaskError after the last retry, or a lost worker
                    task_failures(task, error, bar, failures)
                bar.update(1)
        return failures
    finally:
        if started:
            ray.shutdown()


class SlurmTask:
    """`run_task` as a submitit callable. Its `checkpoint` method (submitit's Checkpointable protocol)
    makes submitit requeue the same call when the job times out or is preempted; the requeued job
    resumes each run from its last checkpoint."""

    def __init__(self, execution: Execution):
        self.execution = execution

    def __call__(self, task):
        return run_task(task, self.execution)

    def checkpoint(self, task):
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(self, task)


def slurm_executor(folder, cluster: str, partition: str | None, time_min: int, gpus_per_task: int,
                   cpus_per_task: int, parallelism: int | None):
    """A submitit executor for SLURM, or with `cluster='local'` one that runs subprocesses here."""
    if cluster not in ("slurm", "local"):
        raise ValueError(f"cluster={cluster!r} is unknown; allowed: slurm, local")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        # submitit would otherwise fall back to running every task at once on this machine
        raise ValueError("backend='slurm' needs SLURM's `sbatch` on PATH (run the sweep on the cluster's "
                         "login node); allowed on this machine: --backend local or --backend ray")
    import submitit
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    options = {"timeout_min": time_min, "gpus_per_node": gpus_per_task, "cpus_per_task": cpus_per_task,
               "name": "sparsity-sweep"}
    if partition:
        options["slurm_partition"] = partition
    if parallelism:
        options["slurm_array_parallelism"] = parallelism
    executor.update_parameters(**options)
    return executor


def run_on_slurm(tasks, execution: Execution, *, retries: int = 2, progress: bool = True, folder=None,
                 partition: str | None = None, time_min: int = 24 * 60, gpus_per_task: int = 1,
                 cpus_per_task: int = 4, parallelism: int | None = None, cluster: str = "slurm",
                 poll_s: float = 5.0) -> list:
    """Run the tasks as one SLURM job array through submitit; the failures as (config, error) pairs.

    folder: where submitit keeps job scripts and logs (default `<store>/slurm`). time_min: the job
    time limit in minutes; a job that hits it is requeued by submitit and resumes from its
    checkpoint. A task that raises is resubmitted as a single job as soon as its failure is seen,
    up to `retries` times. parallelism: at most this many array jobs at once. cluster: 'slurm', or
    'local' to run each task as a subprocess of this machine, all at once (tests). poll_s:
    seconds between status checks (submitit rate-limits its own sacct calls).
    """
    folder = Path(folder) if folder else Path(execution.run_store.root) / "slurm"
    executor = slurm_executor(folder / "%j", cluster, partition, time_min, gpus_per_task, cpus_per_task, parallelism)
    callable_ = SlurmTask(execution)
    running = {job: (task, 0) for job, task in zip(executor.map_array(callable_, tasks), tasks)}
    failures = []
    with progress_bar(len(tasks), "slurm", progress) as bar:
        while running:
            for job in [job for job in running if job.done()]:
                task, attempt = running.pop(job)
                try:
                    job.result()
                except Exception as error:  # submitit's FailedJobError carries the task's traceback
                    if attempt < retries:
                        running[executor.submit(callable_, task)] = (task, attempt + 1)
                        continue
                    task_failures(task, error, bar, failures)
                bar.update(1)
            if running:
                time.sleep(poll_s)
    return failures
