"""Chapter analyses beyond a run record: the Adagrad optimizer state that explains claim 2's
Adagrad row (paper Sec. 3) and feature universality early in training (Fig. 3), each computed from
a stored run's checkpoint or weights."""
from __future__ import annotations

from ..runs.config import config_hash
from ..runs.labels import setting_label
from .chapter import Chapter
from .plans import layer_pair_variants

__all__ = ["ADAGRAD_STATE", "adagrad_state", "early_universality"]


ADAGRAD_STATE = {"optimizer": "adagrad", "l2": 2e-2}  # the run whose optimizer state explains claim 2's Adagrad


def adagrad_state(chapter: Chapter, name: str = "adagrad_l2_2e-2_seed0") -> dict | None:
    """The BN gammas and Adagrad accumulators saved from a checkpoint of the Adagrad L2 2e-2 run, seed 0
    (`<store>/analysis/<name>.json`, scripts/optimizer_state.py, checked by `RunStore.analysis`), or None
    when the store has none for this chapter's profile and dataset (its config hash must be that of
    `ADAGRAD_STATE` here)."""
    found = chapter.run_store.analysis(name)
    return found if found and found.get("config_hash") == config_hash(chapter.config(**ADAGRAD_STATE)) else None


def early_universality(chapter: Chapter) -> dict:
    """Setting label -> (early, record) for chapter 3's SGD and Adam settings (`layer_pair_variants`),
    seed 0: `early` the per-feature universality at an early step of that very run
    (`<store>/analysis/early_universality_<optimizer>.json`, scripts/early_universality.py, checked by
    `RunStore.analysis`), `record` the finished run. Empty when the store has no such file for this
    chapter's profile and dataset, or lacks the run."""
    found = {}
    for fields in layer_pair_variants():
        record = chapter.run_store.load(config_hash(chapter.config(seed=0, **fields)))
        early = chapter.run_store.analysis(f"early_universality_{fields['optimizer']}")
        if early is not None and record is not None and early.get("config_hash") == record["config_hash"]:
            found[f"{setting_label(record['config'])}, step {early['step']:,}"] = (early, record)
    return found
