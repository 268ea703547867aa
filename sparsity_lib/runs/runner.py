"""Running one config: `run_or_load(config)` trains it once and afterwards loads its stored record.

The same call trains (store miss) or loads (store hit), so a chapter re-run and a test exercise
the same path (paper protocol Sec. 2.1; the record format is `training.train`'s).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..data.datasets import resolve_dataset
from ..folders import resolve_data_root
from .config import RunConfig, config_hash
from .execution import Execution
from .training import train

__all__ = ["resolve_config", "run_or_load", "store_trained"]


def resolve_config(config: RunConfig, data_root=None) -> tuple[RunConfig, str]:
    """Replace dataset='auto' by what is available (CIFAR-10 if found, else synthetic)."""
    if config.dataset != "auto":
        return config, "requested"
    name, reason = resolve_dataset("auto", resolve_data_root(data_root))
    return config.replace(dataset=name), reason


def run_or_load(config: RunConfig, execution: Execution = Execution()) -> dict:
    """The record of `config`: loaded from `execution`'s store when present, else trained and stored.

    `execution.fresh` retrains even when stored; `execution.train_fn` replaces `training.train` (tests).
    A finished run is written before this returns (`store_trained`).
    """
    store = execution.run_store
    config, _ = resolve_config(config, execution.data_root)
    key = config_hash(config)
    record = None if execution.fresh else store.load(key)
    if record is not None:
        return record
    train_fn = execution.train_fn or train

    def train_one(weights: list[Path]) -> list[dict]:
        return [train_fn(config, data_root=execution.data_root, device=execution.device,
                         checkpoint_path=store.checkpoint_path(key), weights_path=weights[0],
                         progress=execution.progress)]
    return store_trained([config], execution, train_one, store.checkpoint_path(key))[0]


def store_trained(configs: list[RunConfig], execution: Execution, train_records: Callable[[list[Path]], list[dict]],
                  checkpoint: Path) -> list[dict]:
    """The store protocol every trainer goes through: check the store is writable (ValueError naming it),
    remove stale temporary files, call `train_records(weights)` with one temporary weights path per
    config (it trains them and returns their records, in order), stamp each record with the profile,
    save each with its weights (`RunStore.save`: weights first, record last), and drop `checkpoint`."""
    store = execution.run_store
    store.check_writable()
    store.remove_stale_temporaries()
    weights = [store.weights_temporary(config_hash(config)) for config in configs]
    try:
        records = train_records(weights)
        for record, path in zip(records, weights):
            record["provenance"]["profile"] = execution.profile
            store.save(record, weights=path)
    finally:
        for path in weights:
            if path is not None:  # None: a store of pruned records keeps no weights
                path.unlink(missing_ok=True)  # left only when training or saving failed
    checkpoint.unlink(missing_ok=True)
    return records
