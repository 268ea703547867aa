"""The environment, read in this one place: the `SPARSITY_*` variables that `make book`, the command
line and a notebook's kernel pass to the library, turned into an `Execution` (where and how runs
execute). Nothing below the entry points (`cli`, `book`, the chapters' `open_chapter`) reads them.

- SPARSITY_STORE: the run store folder (default: the checkout's results/).
- SPARSITY_DATA: the datasets folder (default: the checkout's data/).
- SPARSITY_BACKEND: where a batch of missing runs trains: local (default), ray, slurm.
- SPARSITY_WORKERS: local worker processes: auto (default: one per core on the CPU, 1 on a GPU) or N.
- SPARSITY_FUSED: auto (default: fused groups on CUDA only), on, off.

A variable that is set but empty, or holds a value outside its allowed ones, is a ValueError naming it.
"""
from __future__ import annotations

import os

from .runs.execution import BACKENDS, FUSED_MODES, Execution, local_workers
from .study.chapter import Chapter

__all__ = ["execution_from_environment", "open_chapter", "store_from_environment", "VARIABLES", "workers_from_env"]

VARIABLES = ("SPARSITY_STORE", "SPARSITY_DATA", "SPARSITY_BACKEND", "SPARSITY_WORKERS", "SPARSITY_FUSED")


def _variable(name: str, allowed: str) -> str | None:
    """$name stripped, None when unset; a ValueError naming it when set but empty."""
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ValueError(f"${name}={value!r} is empty; allowed: {allowed}, or unset it")
    return value.strip()


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _variable(name, " | ".join(allowed)) or default
    if value not in allowed:
        raise ValueError(f"${name}={value!r} is invalid; allowed: {', '.join(allowed)}")
    return value


def store_from_environment(store=None):
    """`store`, else $SPARSITY_STORE, else None (the checkout's results/)."""
    return store if store is not None else _variable("SPARSITY_STORE", "a folder path")


def workers_from_env() -> int | str:
    """$SPARSITY_WORKERS (set by `make book WORKERS=N`): 'auto' when unset or empty, else an integer >= 1."""
    text = os.environ.get("SPARSITY_WORKERS", "").strip() or "auto"
    if text == "auto":
        return text
    try:
        return local_workers(int(text))
    except ValueError:
        raise ValueError(f"SPARSITY_WORKERS={text!r} is invalid; allowed: auto or an integer >= 1") from None


def execution_from_environment(*, store=None, data_root=None, device: str = "auto", profile: str = "",
                               fresh: bool = False, progress: bool = True, backend: str | None = None,
                               workers: int | str | None = None, fused: str | None = None,
                               **fields) -> Execution:
    """An `Execution` whose store, data root, backend, workers and fused mode come from the arguments
    when given (not None), else from the environment (module docstring). `fields`: its other fields
    (max_models, speed, train_fn)."""
    data_root = data_root if data_root is not None else _variable("SPARSITY_DATA", "a folder path")
    return Execution(store=store_from_environment(store), data_root=data_root, device=device, profile=profile,
                     fresh=fresh, progress=progress,
                     backend=backend or _choice("SPARSITY_BACKEND", BACKENDS, "local"),
                     workers=workers if workers is not None else workers_from_env(),
                     fused=fused or _choice("SPARSITY_FUSED", FUSED_MODES, "auto"), **fields)


def open_chapter(profile: str = "cpu", dataset: str = "auto", data_root=None, device: str = "auto",
                 seeds: int | None = None, fresh: bool = False, store=None) -> Chapter:
    """The `Chapter` a notebook's parameters cell describes, run where the environment says
    (`execution_from_environment`): what every chapter calls first."""
    execution = execution_from_environment(store=store, data_root=data_root, device=device, profile=profile,
                                           fresh=fresh)
    return Chapter(profile=profile, dataset=dataset, seeds=seeds, execution=execution)
