"""Where the book's files live: the run store and the dataset root.

An explicit argument wins; else the checkout's `results/` and `data/` when running from a checkout,
else a per-user cache folder. An empty argument is an error, never "not given", so a run never
writes into the committed `results/` by accident. The environment variables that name these folders
(`SPARSITY_STORE`, `SPARSITY_DATA`) are read at the entry points only (`sparsity_lib.environment`)."""
from __future__ import annotations

from pathlib import Path

import platformdirs

__all__ = ["CACHE_NAME", "checkout_root", "resolve_data_root", "resolve_store"]

CACHE_NAME = "implicit-sparsity-book"  # the per-user cache folder used outside a checkout


def checkout_root() -> Path | None:
    """The repository folder when the package runs from a checkout (a clone, `pip install -e .`),
    else None (a wheel installed into site-packages)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _folder(explicit, parameter: str, in_checkout: str) -> Path:
    """`explicit`, else the checkout's `in_checkout`, else the per-user cache's.

    Resolved at each use, not at import, so the working folder (a notebook's, Colab's) never matters.
    An empty `explicit` is a ValueError: taken as "not given", it would silently send writes into the
    checkout's committed folder.
    """
    if explicit is not None:
        if not str(explicit).strip():
            raise ValueError(f"{parameter}={str(explicit)!r} is empty; allowed: a folder path, or None for "
                             f"the checkout's {in_checkout}/")
        return Path(explicit)
    root = checkout_root()
    if root is not None:
        return root / in_checkout
    return platformdirs.user_cache_path(CACHE_NAME) / in_checkout


def resolve_store(store=None) -> Path:
    """The run store folder: `store`, else the checkout's results/ (the committed runs), else results/
    in the per-user cache folder. ($SPARSITY_STORE is read by `sparsity_lib.environment`, not here.)"""
    return _folder(store, "store", "results")


def resolve_data_root(data_root=None) -> Path:
    """The datasets folder: `data_root`, else the checkout's data/, else data/ in the per-user cache
    folder. ($SPARSITY_DATA is read by `sparsity_lib.environment`.)"""
    return _folder(data_root, "data_root", "data")
