"""The seed statistic: what the book reports of one measure over the seeds of one setting, and when a
difference between two settings is larger than seed noise (the protocol of paper Sec. 2.1: every
setting is trained from several random seeds and reported as their mean).

An `Estimate` is the mean, the sample standard deviation (ddof=1; NaN for a single seed, which has no
measured spread) and the number of seeds; it keeps the unit of its values (% of conv features for
sparsity, % of test images for error, points for a difference). As text it reads '25.8±1.2', or
'25.8' for one seed. A setting is a run config without its seed; records are grouped into settings
in first-seen order.

The noise rule (`clearly_greater`), shared by every claim: a difference between two settings counts
only when the difference of their seed means exceeds both `MIN_EFFECT` and `NOISE_Z` standard errors
of that difference. A setting with a single seed is given `ASSUMED_SPREAD` (so one-seed comparisons
need larger effects).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..runs.labels import setting_label

__all__ = ["ASSUMED_SPREAD", "BELOW_FLOOR", "CLEAR", "clearly_greater", "comparison", "Estimate", "estimate_text",
           "margin", "mean_text", "MIN_EFFECT", "NOISE_Z", "one_setting_each", "OPPOSITE", "seed_frame", "seed_groups",
           "Setting", "setting_config", "setting_key", "settings", "WITHIN_NOISE"]

MIN_EFFECT = 2.0          # percentage points of features: the smallest sparsity difference that counts
NOISE_Z = 2.0             # a difference must exceed this many standard errors of the difference
ASSUMED_SPREAD = 2.0      # points: seed-to-seed std assumed for a one-seed setting (measured 1.6 at `cpu`)


# ------------------------------------------------------------------------------ the estimate
@dataclass(frozen=True)
class Estimate:
    """Mean, sample std (nan for one value) and count of one measure over the seeds of a setting."""
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "Estimate":
        values = [float(v) for v in values]
        if not values:
            raise ValueError("an estimate needs at least one value")
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return cls(float(np.mean(values)), std, len(values))

    def spread(self, assumed: float = ASSUMED_SPREAD) -> float:
        """The seed std, or `assumed` when it cannot be measured (one seed)."""
        return assumed if self.n < 2 else self.std

    def text(self, digits: int = 1) -> str:
        """'25.8±1.2' with `digits` decimals; the mean alone ('25.8') for one seed."""
        return f"{self.mean:.{digits}f}" + ("" if self.n < 2 else f"±{self.std:.{digits}f}")

    def __str__(self) -> str:
        return self.text()


def _present(values: Iterable[float]) -> list[float]:
    """`values` without NaN: a seed on which the quantity is undefined (no living feature) is left out."""
    return [float(v) for v in values if not math.isnan(v)]


def estimate_text(values: Iterable[float], digits: int = 1, missing: str | float = "–") -> str | float:
    """`Estimate.text` of `values` leaving NaN out ('25.8±1.2', '25.8' for one value), or `missing`
    when no value is left (a table cell: '–', or NaN that `tables.styled` shows as '–')."""
    values = _present(values)
    return Estimate.of(values).text(digits) if values else missing


def mean_text(values: Iterable[float], digits: int = 1, missing: str = "–") -> str:
    """The mean alone of `values`, NaN left out, as text ('25.8'), or `missing` when none is left."""
    values = _present(values)
    return f"{Estimate.of(values).mean:.{digits}f}" if values else missing


# ------------------------------------------------------------------------------ the noise rule
def margin(a: Estimate, b: Estimate, floor: float = MIN_EFFECT, assumed: float = ASSUMED_SPREAD) -> float:
    """How far a.mean must exceed b.mean to count: max(floor, NOISE_Z standard errors of the difference)."""
    error = math.sqrt(a.spread(assumed) ** 2 / a.n + b.spread(assumed) ** 2 / b.n)
    return max(floor, NOISE_Z * error)


def clearly_greater(a: Estimate, b: Estimate, floor: float = MIN_EFFECT, assumed: float = ASSUMED_SPREAD) -> bool:
    """The noise rule: a exceeds b by more than `margin(a, b)`."""
    return a.mean - b.mean > margin(a, b, floor, assumed)


CLEAR, BELOW_FLOOR, WITHIN_NOISE, OPPOSITE = ("clearly", "in the paper's direction but below the floor",
                                             "within noise", "opposite to the paper")


def comparison(a: Estimate, b: Estimate, floor: float = MIN_EFFECT, assumed: float = ASSUMED_SPREAD) -> str:
    """How a compares with b when the paper says a > b: CLEAR (the noise rule holds), BELOW_FLOOR (a - b
    beats the noise, NOISE_Z standard errors, but not `floor`), WITHIN_NOISE (|a - b| within the noise),
    OPPOSITE (b exceeds a beyond the noise)."""
    if clearly_greater(a, b, floor, assumed):
        return CLEAR
    if clearly_greater(a, b, 0.0, assumed):
        return BELOW_FLOOR
    return OPPOSITE if clearly_greater(b, a, 0.0, assumed) else WITHIN_NOISE


# ------------------------------------------------------------------------------ settings
def setting_config(config: dict) -> dict:
    """A run config without its seed: the setting the seed belongs to."""
    return {k: v for k, v in config.items() if k != "seed"}


def setting_key(config: dict) -> str:
    """A hashable key equal for the seeds of one setting (its config without the seed, sorted)."""
    return repr(sorted(setting_config(config).items()))


def seed_groups(records: Iterable[dict], key: Callable[[dict], object] = setting_key) -> dict:
    """`key(config)` -> the records with that key, in first-seen order (default key: the setting,
    so each group holds the seeds of one config)."""
    groups: dict = {}
    for record in records:
        groups.setdefault(key(record["config"]), []).append(record)
    return groups


@dataclass(frozen=True)
class Setting:
    """The seeds of one configuration: its config (seed removed), sparsity and test error estimates."""
    config: dict
    sparsity: Estimate
    error: Estimate
    records: tuple = ()

    @property
    def strength(self) -> float:
        """The regularization strength: L2 when set, else WD, else 0."""
        return self.config["l2"] or self.config["wd"]

    @property
    def label(self) -> str:
        """'Adam L2 1e-3', 'SGD WD 1e-3', 'Adam L2 0' (`labels.setting_label`)."""
        return setting_label(self.config)


def settings(records: Sequence[dict], measure: str = "sparsity_gamma") -> list[Setting]:
    """Records grouped by config without the seed, in first-seen order; `measure` in % of features."""
    return [Setting(setting_config(group[0]["config"]), Estimate.of([r["final"][measure] for r in group]),
                    Estimate.of([r["final"]["test_err"] for r in group]), tuple(group))
            for group in seed_groups(records).values()]


def one_setting_each(groups: Sequence[tuple[str, Sequence[dict]]], what: str) -> list[tuple[str, Setting]]:
    """(label, Setting) per group; a group must hold the seeds of exactly one setting."""
    found = []
    for label, records in groups:
        group = settings(records)
        if len(group) != 1:
            raise ValueError(f"{what} {label!r} must hold the seeds of one setting, got {len(group)} settings")
        found.append((label, group[0]))
    return found


def seed_frame(frame: pd.DataFrame, keys: list[str], columns: list[str], std: bool = True) -> pd.DataFrame:
    """One row per group of `keys` (first-seen order, NaN keys kept) of a frame with one row per run:
    `keys`, the mean of each of `columns`, with `std` also its sample std as '<column>_std' (NaN for one
    seed), and 'seeds', the group's number of runs."""
    grouped = frame.groupby(keys, sort=False, dropna=False)[columns]
    table = grouped.mean()
    if std:
        table = table.join(grouped.std(ddof=1).add_suffix("_std"))
    return table.reset_index().assign(seeds=grouped.size().to_numpy())
