"""DataFrames built from run records, for the chapters' tables and the figures of `plots`.

Pure functions: records (plain dicts, the store's JSON) in, pandas DataFrames out; no plotting.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..nets.optim import simulate_weight
from ..nets.sparsity import GAMMA_THRESHOLD
from ..runs.labels import OPTIMIZER_NAMES, format_strength
from ..study.seeds import seed_frame

__all__ = ["fig4_frame", "FIG4_SCENARIOS", "fig4_settings", "gamma_threshold_frame", "l2_and_wd_settings",
           "layer_frame", "mean_over_seeds", "runs_frame", "snapshot_frame", "strength_sweep_frame", "trajectory_frame",
           "universality_frame"]


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record: its config fields plus the headline final metrics (for tables/plots)."""
    rows = []
    for record in records:
        row = dict(record["config"])
        row.update({k: v for k, v in record["final"].items() if not isinstance(v, (list, dict))})
        row["config_hash"] = record["config_hash"]
        rows.append(row)
    return pd.DataFrame(rows)


def mean_over_seeds(records: list[dict], keys: list[str]) -> pd.DataFrame:
    """`runs_frame(records)` averaged over seeds, grouped by `keys` (RunConfig field names), in first-seen
    order: `keys`, the mean of every numeric column and 'seeds' (`seeds.seed_frame` without the stds)."""
    frame = runs_frame(records)
    numeric = frame.select_dtypes("number").columns.difference(keys + ["seed"])
    return seed_frame(frame, keys, list(numeric), std=False)


def layer_frame(records: list[dict], keys: list[str]) -> pd.DataFrame:
    """Long form per layer: keys + layer, features, inactive_gamma/act and % (mean over seeds)."""
    rows = []
    for record in records:
        for layer in record["final"]["layers"]:
            row = {key: record["config"][key] for key in keys}
            row.update(layer)
            row["percent_gamma"] = 100.0 * layer["inactive_gamma"] / layer["features"]
            row["percent_act"] = 100.0 * layer["inactive_act"] / layer["features"]
            rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.groupby(keys + ["layer"], dropna=False, sort=False).mean(numeric_only=True).reset_index()


def gamma_threshold_frame(records: dict, thresholds) -> pd.DataFrame:
    """% of conv features with final |gamma| < threshold, per run and threshold (Sec. 2.1: the
    paper says higher thresholds give comparable sparsity). `records` maps a label to a record
    (uses `record["bn"]`). Columns: setting, threshold, percent."""
    rows = []
    for label, record in records.items():
        gammas = np.abs(np.concatenate([np.asarray(layer["gamma"]) for layer in record["bn"].values()]))
        for threshold in thresholds:
            rows.append({"setting": label, "threshold": float(threshold),
                         "percent": 100.0 * float((gammas < threshold).mean())})
    return pd.DataFrame(rows, columns=["setting", "threshold", "percent"])


def snapshot_frame(record: dict, layer: str = "C6") -> pd.DataFrame:
    """BN gamma and beta of `layer` at each stored snapshot epoch (paper Fig. 2), long form:
    epoch, parameter ('gamma' | 'beta'), feature, value."""
    snapshots = record.get("snapshots") or {}
    rows = []
    for epoch, layers in sorted(snapshots.items(), key=lambda item: int(item[0])):
        if layer not in layers:
            raise ValueError(f"layer={layer!r} has no snapshots; stored layers: {', '.join(layers)}")
        for parameter in ("gamma", "beta"):
            for feature, value in enumerate(layers[layer][parameter]):
                rows.append({"epoch": int(epoch), "parameter": parameter, "feature": feature, "value": value})
    return pd.DataFrame(rows, columns=["epoch", "parameter", "feature", "value"])


def universality_frame(records, layers=None, gamma_threshold: float | None = GAMMA_THRESHOLD) -> pd.DataFrame:
    """Per-feature universality (% of training images on which the feature fires, Sec. 3) from
    `record["universality"]`, long form: setting, layer, feature, universality, dead. `records`: a dict
    label -> record, or (label, record) pairs (several seeds may share a label).

    Features with final |gamma| < `gamma_threshold` (from `record["bn"]`) are marked dead and given 0%:
    such a feature outputs the constant ReLU(beta), which the max-normalized measure would call 100%
    universal. None keeps the stored values as they are."""
    rows = []
    for label, record in (records.items() if isinstance(records, dict) else records):
        for layer, values in record["universality"].items():
            if layers is not None and layer not in layers:
                continue
            if gamma_threshold is None:
                dead = np.asarray(values) == 0
            else:
                dead = np.abs(np.asarray(record["bn"][layer]["gamma"])) < gamma_threshold
            rows.extend({"setting": label, "layer": layer, "feature": i, "universality": 0.0 if d else v,
                         "dead": bool(d)} for i, (v, d) in enumerate(zip(values, dead)))
    return pd.DataFrame(rows, columns=["setting", "layer", "feature", "universality", "dead"])


def trajectory_frame(settings: dict, scenarios: dict | None = None, steps: int = 2000, theta0: float = 1.0):
    """Trajectories of one weight (paper Fig. 4) from `optim.simulate_weight`, long form: scenario,
    setting, step, theta. `settings`: label -> simulate_weight keywords (optimizer, l2, wd, lr, ...);
    `scenarios`: label -> task-gradient keywords (grad_every, grad_value); None: zero gradient."""
    scenarios = scenarios or {"zero task gradient": {}}
    frames = []
    for scenario, gradient in scenarios.items():
        for label, options in settings.items():
            theta = simulate_weight(steps=steps, theta0=theta0, **{**options, **gradient})
            frames.append(pd.DataFrame({"scenario": scenario, "setting": label,
                                        "step": np.arange(steps + 1), "theta": theta}))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------- Fig. 4 (Sec. 3), chapter 4
FIG4_SCENARIOS = ("no task gradient", "rare task gradient")


def fig4_settings(strength: float, lr: float | None = None) -> dict:
    """The four update rules of the paper's Fig. 4 at strength λ = `strength`: label -> simulate_weight
    keywords (Adam + L2, Adam + WD, SGD + L2, AMSGrad + L2; `lr` for Adam and AMSGrad, None: their
    paper lr; SGD always at its paper lr)."""
    lam = format_strength(strength)
    rules = [("adam", "L2"), ("adam", "WD"), ("sgd", "L2"), ("amsgrad", "L2")]
    return {f"{OPTIMIZER_NAMES[name]} + {kind} {lam}": {"optimizer": name, "l2" if kind == "L2" else "wd": strength,
                                               **({"lr": lr} if lr is not None and name != "sgd" else {})}
            for name, kind in rules}


def fig4_frame(strength: float, steps: int, rare_every: int, rare_value: float, lr: float | None = None):
    """`trajectory_frame` of `fig4_settings(strength, lr)` in the two scenarios of `FIG4_SCENARIOS`: no task
    gradient, and a task gradient `rare_value` every `rare_every` steps (a selective feature)."""
    scenarios = {FIG4_SCENARIOS[0]: {}, FIG4_SCENARIOS[1]: {"grad_every": rare_every, "grad_value": rare_value}}
    return trajectory_frame(fig4_settings(strength, lr), scenarios, steps=steps)


def l2_and_wd_settings(optimizer: str, strength: float, lr: float | None = None) -> dict:
    """simulate_weight keywords for `optimizer` with L2 and, separately, with the paper's WD (θ *= 1 − λ
    after each step), both at λ = `strength`: {'Adam + L2 1e-4': ..., 'Adam + WD 1e-4': ...}; `lr`
    None: the optimizer's paper lr (simulate_weight's default)."""
    name, lam = OPTIMIZER_NAMES.get(optimizer, optimizer), format_strength(strength)
    extra = {} if lr is None else {"lr": lr}
    return {f"{name} + {kind} {lam}": {"optimizer": optimizer, **extra, key: float(strength)}
            for kind, key in (("L2", "l2"), ("WD", "wd"))}


def strength_sweep_frame(strengths, steps: int, optimizer: str = "adam", lr: float | None = None):
    """`trajectory_frame` with no task gradient of `optimizer` + L2 and + WD at each λ in `strengths`,
    plus the columns rule ('Adam + L2' | 'Adam + WD') and strength (λ)."""
    settings, meta = {}, {}
    for value in strengths:
        for label, keywords in l2_and_wd_settings(optimizer, value, lr).items():
            settings[label] = keywords
            meta[label] = (label.rsplit(" ", 1)[0], float(value))
    frame = trajectory_frame(settings, steps=steps)
    return frame.assign(rule=frame["setting"].map(lambda s: meta[s][0]),
                        strength=frame["setting"].map(lambda s: meta[s][1]))
