"""Where and how runs execute: one `Execution` carries the store, the dataset root, the device, the
profile name stamped into records, whether to retrain, progress bars, and where a batch of missing
runs trains (the local process, a pool of local workers, fused groups, Ray or SLURM).

Plain values only, so it pickles to any worker. Nothing here reads the environment: the command line
and the book build one from their flags and variables (`sparsity_lib.environment`), tests and
scripts pass one explicitly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..validation import check_choice
from .build import pick_device
from .store import RunStore

__all__ = ["BACKENDS", "Execution", "FUSED_MODES", "local_workers", "machine_cores", "SPEED_OPTIONS"]

BACKENDS = ("local", "ray", "slurm")
FUSED_MODES = ("auto", "on", "off")
SPEED_OPTIONS = ("amp", "channels_last", "compile")  # the fused trainer's options that change only speed/rounding


def machine_cores() -> int:
    """CPU cores this process may run on: its affinity mask (a container's or taskset's share of the
    machine), or `os.cpu_count()` where the platform has no affinity mask."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def local_workers(workers: int | str | None = None, device: str = "auto") -> int:
    """Worker processes of the local backend: `workers`, or for None/'auto' one per core on the CPU and
    one on a GPU (one process keeps a GPU busy; fused groups pack runs into it instead)."""
    if workers is None or workers == "auto":
        return machine_cores() if pick_device(device).type == "cpu" else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is invalid; allowed: 'auto' (one per core on the CPU, 1 on a GPU) "
                         "or an integer >= 1")
    return workers


@dataclass(frozen=True)
class Execution:
    """Where and how runs execute (not what they are: that is `RunConfig`).

    store: the run store (a RunStore or its folder; None: `folders.resolve_store`'s default). data_root: the datasets
    folder (None: `folders.resolve_data_root`'s). device: 'auto', 'cpu', 'cuda', 'cuda:N'. profile:
    the profile name stamped into each record trained. fresh: retrain runs already stored. progress:
    progress bars. backend: 'local', 'ray' or 'slurm'. workers: local worker processes of one torch
    thread each ('auto': one per core on the CPU, 1 on a GPU; 1 trains in this process). fused: 'on'
    trains runs that differ only in optimizer hyperparameters and seed as one wide network, 'auto' on
    CUDA only, 'off' never; `max_models` per group and the fused trainer's `speed` options
    (SPEED_OPTIONS). train_fn replaces `training.train` (tests); it must pickle to reach workers.
    """
    store: RunStore | str | Path | None = None
    data_root: str | Path | None = None
    device: str = "auto"
    profile: str = ""
    fresh: bool = False
    progress: bool = True
    backend: str = "local"
    workers: int | str = 1
    fused: str = "off"
    max_models: int = 32
    speed: tuple[str, ...] = ()
    train_fn: Callable | None = None

    def __post_init__(self):
        if self.store is not None and not isinstance(self.store, RunStore) and not str(self.store).strip():
            raise ValueError(f"store={str(self.store)!r} is empty; allowed: a folder path, or None for the default")
        if self.data_root is not None and not str(self.data_root).strip():
            raise ValueError(f"data_root={str(self.data_root)!r} is empty; allowed: a folder path, or None for the "
                             "default")
        check_choice("backend", self.backend, BACKENDS)
        check_choice("fused", self.fused, FUSED_MODES)
        if self.workers != "auto":
            local_workers(self.workers)
        if isinstance(self.max_models, bool) or not isinstance(self.max_models, int) or self.max_models < 1:
            raise ValueError(f"max_models={self.max_models!r} is invalid; allowed: an integer >= 1")
        object.__setattr__(self, "speed", tuple(self.speed))
        for name in self.speed:
            check_choice("speed", name, SPEED_OPTIONS)
        if self.speed and self.fused == "off":
            raise ValueError(f"speed={list(self.speed)!r}: these options belong to the fused trainer, which "
                             "fused='off' never uses; allowed with fused='on' (or 'auto' on CUDA)")
        if self.train_fn is not None and self.fused == "on":
            raise ValueError("train_fn replaces training.train, which fused='on' does not call; allowed: "
                             "fused='off' or 'auto' with a train_fn")

    def replace(self, **changes) -> Execution:
        """A copy with `changes` (field names of Execution)."""
        return replace(self, **changes)

    @property
    def run_store(self) -> RunStore:
        """The store: `store` itself when it is a RunStore (e.g. one of kind 'pruned'), else RunStore(store)."""
        return self.store if isinstance(self.store, RunStore) else RunStore(self.store)

    def worker_count(self) -> int:
        """Local worker processes `workers` resolves to on `device`."""
        return local_workers(self.workers, self.device)

    def fuses(self) -> bool:
        """Whether missing runs train as fused groups here: fused='on', or 'auto' on a CUDA device."""
        return self.fused == "on" or (self.fused == "auto" and pick_device(self.device).type == "cuda")
