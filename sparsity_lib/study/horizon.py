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
from ..runs.config import RunConfig
from ..runs.schedule import iterations, lr_factor

__all__ = ["adagrad_prediction_frame", "death_curve", "death_curve_frame", "death_milestones", "full_lr_steps",
           "GROUPS", "layer_groups", "milestone_frame", "milestones_by_length", "predicted_adagrad_deaths", "stretched"]

PAPER_EPOCHS, PAPER_DROP = 325.0, 250.0  # Sec. 2.1: 325 epochs, LR /10 at epoch 250

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


def death_curve_frame(runs: dict[str, list[tuple[str, list[dict]]]]) -> pd.DataFrame:
    """`death_curve` of every run of `runs` (profile -> [(setting label, records)], as
    `plans.horizon_runs` gives), with columns profile, setting and seed."""
    frames = [death_curve(record).assign(setting=label, seed=record["config"]["seed"], profile=profile)
              for profile, groups in runs.items() for label, records in groups for record in records]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["step", "group", "dead", "features", "dead %", "setting", "seed", "profile"])


def milestones_by_length(runs: dict[str, list[tuple[str, list[dict]]]]) -> pd.DataFrame:
    """`death_milestones` of every run of `runs` (profile -> [(setting label, records)], as
    `plans.horizon_runs` gives), one row each: profile, setting, seed, then the milestones."""
    frames = [milestone_frame(records, lambda _, label=label: label).assign(profile=profile)
              for profile, groups in runs.items() for label, records in groups if records]
    columns = ["profile", "setting", "seed", "first death step", "half step", "final dead %", "steps"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


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


def stretched(config: RunConfig, factor: float) -> RunConfig:
    """`config` trained `factor` times as long (epochs at the reference batch), its LR drop kept at the
    paper's relative place (epoch 250 of 325): how the horizon pilot's 8x Adagrad run was made from the
    `long` (4x) one (docs/calibration.md)."""
    epochs = config.epochs * factor
    return config.replace(epochs=epochs, lr_drops=(round(PAPER_DROP * epochs / PAPER_EPOCHS, 3),))


def full_lr_steps(record: dict, step: int) -> float:
    """The optimizer steps of `record`'s run after `step`, each weighted by its learning rate relative to
    the one in effect at `step` (so 10,000 steps after a /10 drop count as 1,000): the budget of steps at
    the current rate that the rest of the schedule gives a decay whose per-step rate scales with lr."""
    config = RunConfig.from_dict(record["config"])
    total, drops = iterations(config, record["provenance"]["train_images"])
    now = lr_factor(step, drops)
    edges = sorted({step, total, *[d for d in drops if step < d < total]})
    return float(sum((end - start) * lr_factor(start, drops) / now for start, end in zip(edges, edges[1:])))


def adagrad_prediction_frame(analyses: list[dict], record: dict, threshold: float = GAMMA_THRESHOLD
                             ) -> pd.DataFrame:
    """Adagrad's death timescale predicted against measured (beyond the paper; issue 20), one row per saved
    optimizer state (`scripts/optimizer_state.py`) of the run `record`: from that step, how many of the
    features still alive L2 alone would silence before the run ends (`optim.adagrad_steps_to_threshold`
    within `full_lr_steps` of the remaining schedule; the task gradient is neglected, so it is an upper
    bound on the count), and how many died in fact (the final dead count minus the count at that step,
    from the record's history)."""
    dead_at = {entry["step"]: sum(entry["inactive_gamma"].values()) for entry in record["history"]}
    final = sum(layer["inactive_gamma"] for layer in record["final"]["layers"])
    rows = []
    for found in sorted(analyses, key=lambda found: found["step"]):
        budget = full_lr_steps(record, found["step"])
        predicted = 0
        for values in found["layers"].values():
            gamma, state = np.abs(np.asarray(values["gamma"])), np.asarray(values["state"])
            alive = gamma >= threshold
            steps = adagrad_steps_to_threshold(gamma[alive], state[alive], found["lr"], found["l2"], threshold)
            predicted += int((steps <= budget).sum())
        before = max((step for step in dead_at if step <= found["step"]), default=None)
        rows.append({"from step": found["step"], "steps left": record["provenance"]["steps"] - found["step"],
                     "dead then": dead_at.get(before, 0), "predicted to die": predicted,
                     "died": final - dead_at.get(before, 0)})
    return pd.DataFrame(rows)
