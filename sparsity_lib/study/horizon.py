"""How long until filters die (beyond the paper; issue 20): dead-feature share against the iteration.

Everything here reads a stored record's per-epoch history (`records.history_entry`: the optimizer
step reached and the features per layer with |gamma| < 1e-3 at each epoch end, Sec. 2.1), so no run
is trained again. A feature counted dead at one epoch end may come back later; the curves show the
count at each epoch end, as the paper's tables show it at the last one.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..nets.optim import adagrad_steps_to_threshold
from ..nets.sparsity import GAMMA_THRESHOLD

__all__ = ["death_curve", "death_milestones", "GROUPS", "layer_groups", "milestone_frame", "predicted_adagrad_deaths"]

GROUPS = ("early", "middle", "late")


def layer_groups(layers: list[str]) -> dict[str, list[str]]:
    """The conv layers in three consecutive groups of (nearly) equal size, first to last: BasicNet's
    C1-C7 -> early C1-C2, middle C3-C5, late C6-C7 (the middle group takes the remainder)."""
    size = len(layers) // 3
    edge = len(layers) - size
    return {"early": layers[:size], "middle": layers[size:edge], "late": layers[edge:]}


def death_curve(record: dict) -> pd.DataFrame:
    """Long form, one row per epoch end and layer group (GROUPS and 'all'): step (optimizer steps),
    group, dead (features with |gamma| < 1e-3), features, dead % (of the group's features)."""
    features = {layer["layer"]: layer["features"] for layer in record["final"]["layers"]}
    groups = {"all": list(features), **layer_groups(list(features))}
    rows = []
    for entry in record["history"]:
        for group, layers in groups.items():
            dead = sum(entry["inactive_gamma"][layer] for layer in layers)
            total = sum(features[layer] for layer in layers)
            rows.append({"step": entry["step"], "group": group, "dead": dead, "features": total,
                         "dead %": 100.0 * dead / total})
    return pd.DataFrame(rows)


def death_milestones(record: dict) -> dict:
    """When a run's features die, from its history: `first death step`, the first epoch end with a dead
    feature (None if none ever died); `half step`, the first epoch end with at least half of the final
    dead count (None if none are dead at the end); `final dead %`; `steps`, the run's length."""
    curve = death_curve(record)
    overall = curve[curve.group == "all"]
    final_dead = int(overall.dead.iloc[-1])
    died = overall[overall.dead > 0]
    half = overall[overall.dead >= math.ceil(final_dead / 2)] if final_dead else overall.iloc[0:0]
    return {"first death step": int(died.step.iloc[0]) if len(died) else None,
            "half step": int(half.step.iloc[0]) if len(half) else None,
            "final dead %": float(overall["dead %"].iloc[-1]), "steps": int(overall.step.iloc[-1])}


def milestone_frame(records: list[dict], label) -> pd.DataFrame:
    """`death_milestones` per record, with `label(record)` (e.g. the setting's name) and its seed."""
    return pd.DataFrame([{"setting": label(r), "seed": r["config"]["seed"], **death_milestones(r)} for r in records])


def predicted_adagrad_deaths(found: dict, threshold: float = GAMMA_THRESHOLD) -> pd.DataFrame:
    """Per conv layer, from an Adagrad checkpoint's gammas and accumulators at step `found['step']`
    (scripts/optimizer_state.py): the features still alive, and how many of them L2 alone would silence
    within 10^4, 10^5 and 10^6 more steps at the learning rate in effect
    (`optim.adagrad_steps_to_threshold`, which neglects the task gradient: a lower bound on the wait)."""
    rows = []
    for layer, values in found["layers"].items():
        gamma, state = np.abs(np.asarray(values["gamma"])), np.asarray(values["state"])
        alive = gamma >= threshold
        steps = adagrad_steps_to_threshold(gamma[alive], state[alive], found["lr"], found["l2"], threshold)
        rows.append({"layer": layer, "alive": int(alive.sum()),
                     **{f"silenced within 1e{k}": int((steps <= 10 ** k).sum()) for k in (4, 5, 6)},
                     "fewest steps": round(float(steps.min())) if alive.any() else None})
    return pd.DataFrame(rows).set_index("layer")
