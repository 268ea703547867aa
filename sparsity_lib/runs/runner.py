"""Running one config: `run_or_load(config)` trains it once and afterwards loads its stored record.

The same call trains (store miss) or loads (store hit), so a chapter re-run and a test exercise
the same path (paper protocol Sec. 2.1; the record format is `train.train`'s).
"""
from __future__ import annotations

from pathlib import Path

from .config import RunConfig, config_hash
from .data import resolve_dataset
from .store import RunStore, resolve_data_root
from .train import train

__all__ = ["resolve_config", "run_or_load"]


def resolve_config(config: RunConfig, data_root=None) -> tuple[RunConfig, str]:
    """Replace dataset='auto' by what is available (CIFAR-10 if found, else synthetic)."""
    if config.dataset != "auto":
        return config, "requested"
    name, reason = resolve_dataset("auto", resolve_data_root(data_root))
    return config.replace(dataset=name), reason


def run_or_load(config: RunConfig, *, store: RunStore | str | Path | None = None, data_root=None,
                device: str = "auto", profile: str = "", progress: bool = True, fresh: bool = False,
                train_fn=None) -> dict:
    """The record of `config`: loaded from the store when present, else trained and stored.

    `fresh=True` retrains even when stored. `train_fn` replaces `train.train` (used by the fused
    trainer and by tests). A finished run is written before this returns, weights first, record last
    (`RunStore.save`). Before training, the store is checked to be writable (ValueError naming it)
    and stale temporary files are removed.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    config, _ = resolve_config(config, data_root)
    key = config_hash(config)
    record = None if fresh else store.load(key)
    if record is not None:
        return record
    store.check_writable()
    store.remove_stale_temporaries()
    if train_fn is None:
        train_fn = train
    weights = store.weights_temporary(key)
    try:
        record = train_fn(config, data_root=data_root, device=device, checkpoint_path=store.checkpoint_path(key),
                          weights_path=weights, progress=progress)
        record["provenance"]["profile"] = profile
        store.save(record, weights=weights)
    finally:
        if weights is not None:
            weights.unlink(missing_ok=True)  # left only when training or saving failed
    store.checkpoint_path(key).unlink(missing_ok=True)
    return record
