"""Where a batch of missing runs trains: the one decision, for the command line, the book and scripts.

Given an `Execution`: backend 'ray' or 'slurm' sends them as cluster tasks (`cluster.run_sweep`);
on this machine, fused groups when `Execution.fuses()` (fused='on', or 'auto' on CUDA), a pool of
local worker processes when `workers` resolves to more than one and more than one run is missing,
else one after another in this process.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from .cluster import run_sweep
from .config import RunConfig, config_hash
from .execution import Execution
from .fused.trainer import run_or_load_group
from .runner import resolve_config, run_or_load

__all__ = ["missing_count", "run_or_load_all"]


def missing_count(configs: list[RunConfig], execution: Execution) -> int:
    """How many of `configs` would train: all with `fresh`, else those without a record file."""
    store = execution.run_store
    return len(configs) if execution.fresh else sum(not store.record_path(config_hash(c)).exists() for c in configs)


def run_or_load_all(configs: list[RunConfig], execution: Execution, **backend_options) -> list[dict]:
    """The records of `configs`, in order: the missing ones (all with `fresh`) trained where `execution`
    says (module docstring), each exactly once, then every record read from the store.
    `backend_options` go to `cluster.run_sweep` (ray: address, ...; slurm: folder, partition, ...)."""
    configs = [resolve_config(config, execution.data_root)[0] for config in configs]
    missing = missing_count(configs, execution)
    if execution.backend != "local" or (missing > 1 and execution.worker_count() > 1 and not execution.fuses()):
        run_sweep(configs, execution, **backend_options)
        store = execution.run_store
        return [store.load(config_hash(config)) for config in configs]
    if execution.fuses():
        return run_or_load_group(configs, execution)
    bar = tqdm(configs, desc="runs", disable=not (execution.progress and missing), leave=False)
    return [run_or_load(config, execution) for config in bar]
