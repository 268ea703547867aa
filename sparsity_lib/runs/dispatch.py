"""Where a batch of missing runs trains: cluster tasks, fused groups, a pool of local worker
processes, or (when none applies) one after another in this process.

Chosen from the environment, so `make book BACKEND=ray WORKERS=4` reaches every chapter unchanged.
"""
from __future__ import annotations

import os

from .cluster import local_workers, run_sweep, workers_from_env
from .config import RunConfig
from .fused import run_or_load_group
from .store import RunStore
from .train import pick_device

__all__ = ["train_elsewhere"]


def train_elsewhere(configs: list[RunConfig], *, store: RunStore, data_root=None, device: str = "auto",
                    profile: str = "", fresh: bool = False, progress: bool = True) -> bool:
    """Train `configs` as cluster tasks ($SPARSITY_BACKEND, e.g. `make book BACKEND=ray`), as fused
    groups ($SPARSITY_FUSED: auto = on CUDA only) or in a pool of local worker processes
    ($SPARSITY_WORKERS, e.g. `make book WORKERS=4`; auto = one per core on the CPU, 1 on a GPU);
    False when none applies (one worker, or a single run: it trains in this process)."""
    common = dict(store=store, data_root=data_root, device=device, profile=profile, fresh=fresh, progress=progress)
    backend = os.environ.get("SPARSITY_BACKEND", "local")
    if backend != "local":
        run_sweep(configs, backend=backend, **common)
        return True
    fused = os.environ.get("SPARSITY_FUSED", "auto")
    if fused == "on" or (fused == "auto" and str(pick_device(device)).startswith("cuda")):
        run_or_load_group(configs, fused=fused, **common)
        return True
    workers = local_workers(workers_from_env(), device)
    if workers > 1 and len(configs) > 1:
        run_sweep(configs, backend="local", workers=workers, **common)
        return True
    return False
