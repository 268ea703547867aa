"""The chapters' tables as pandas DataFrames, ours next to the paper's (Tables 1-10 and the
supplement). Records (the store's JSON) or grouped records in, DataFrames out; `styled` renders one
for the book. Percentages are in % of features, errors in % of test images."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..nets.models import conv_bn_layers
from ..nets.optim import adagrad_steps_to_threshold
from ..nets.regularizers import filter_norms
from ..nets.sparsity import ACTIVATION_THRESHOLD, GAMMA_THRESHOLD
from ..runs.labels import (
    OPTIMIZER_NAMES,
    format_strength,
    regularizer_of,
    setting_label,
)
from ..study.claims import steps_to_fraction
from ..study.seeds import (
    Estimate,
    Setting,
    estimate_text,
    mean_text,
    one_setting_each,
    seed_groups,
    settings,
)
from . import paper

__all__ = ["adagrad_horizon", "batch_points", "bn_table", "closed_form_table", "COLUMNS_TOP1", "dead_by_layer",
           "difficulty_table", "features_pruned", "filter_norm_frame", "layer_removed", "LAYER_ROWS",
           "layers_by_group", "mechanism_numbers", "ours_columns", "PAPER_CLUTTER", "PAPER_DATASET", "paper_dataset",
           "paper_vs_ours", "pruned_layer_frame", "pruned_layers", "pruning_summary", "selectivity_by_group",
           "strength_sweep_table", "styled", "summary_points", "supplement_layers_paper", "supplement_optimizer_table",
           "SUPPLEMENT_PAPER_COLUMNS", "supplement_variant_table", "table1", "table2", "table2_long", "table2_pruned",
           "table3", "table4", "table5", "table6", "table7", "table7_li", "table9", "threshold_table",
           "trajectory_table", "trend_table", "universality_by_fate", "universality_fates", "universality_table",
           "zeroing_table"]


def paper_vs_ours(paper: pd.DataFrame, ours: pd.DataFrame, on: list[str], columns: list[str]) -> pd.DataFrame:
    """Side-by-side table: index `on`, column groups ("paper", col) and ("ours", col) for each of `columns`.

    Rows present in only one side show NaN on the other, so missing reproductions stay visible.
    Columns keep the order of `columns`.
    """
    left = paper.set_index(on)[columns]
    right = ours.set_index(on)[columns]
    merged = pd.concat({"paper": left, "ours": right}, axis=1).swaplevel(0, 1, axis=1)
    return merged[[(column, side) for column in columns for side in ("paper", "ours")]]


def styled(frame: pd.DataFrame, caption: str, digits: int = 1):
    """A pandas Styler with a caption, fixed decimals and thousands separators (NaN shown as '–'); cells
    and labels are HTML-escaped, so a label such as '|γ| < 0.001' shows as written."""
    styler = frame.style.format(precision=digits, na_rep="–", escape="html", thousands=",").set_caption(caption)
    return styler.format_index(escape="html", axis=0).format_index(escape="html", axis=1)

PAPER_DATASET = {"cifar100": "cifar100"}  # our dataset -> the paper's dataset it is compared with (else CIFAR-10)


def paper_dataset(dataset_used: str) -> str:
    """The paper dataset our runs are compared with: CIFAR-100 for CIFAR-100, else CIFAR-10."""
    return PAPER_DATASET.get(dataset_used, "cifar10")


def ours_columns(setting: Setting) -> dict:
    """'%γ ours', 'err ours' (mean±std over seeds, as text) and 'seeds' of one setting."""
    return {"%γ ours": str(setting.sparsity), "err ours": str(setting.error), "seeds": setting.sparsity.n}


def _paper_match(rows: pd.DataFrame, optimizer: str, regularizer: str, strength: float) -> pd.Series | None:
    """The first of the paper's `rows` (Table 1 or 2, long form) with this optimizer, regularizer and
    strength, or None when the paper has no such setting."""
    match = rows[(rows["optimizer"] == optimizer) & (rows["regularizer"] == regularizer)
                 & rows["strength"].map(lambda value: math.isclose(value, strength, rel_tol=1e-9, abs_tol=1e-12))]
    return None if match.empty else match.iloc[0]


def _paper_row(rows: pd.DataFrame, optimizer: str, regularizer: str, strength: float) -> dict:
    first = _paper_match(rows, optimizer, regularizer, strength)
    if first is None:
        return {"%γ paper": math.nan, "err paper": math.nan}
    return {"%γ paper": float(first["sparsity_gamma"]), "err paper": float(first["test_err"])}


def table1(records: list[dict], dataset_used: str = "synthetic") -> pd.DataFrame:
    """Paper Table 1 (Sec. 4.1) next to ours: one row per optimizer/regularizer setting of `records`
    (in first-seen order), index 'setting' ("Adam L2 1e-3"). Columns: %γ paper, %γ ours (% conv
    features with |γ| < 1e-3), err paper, err ours (test error, %), seeds. The paper's numbers are its
    BasicNet on CIFAR-10 (CIFAR-100 when ours ran on CIFAR-100)."""
    rows = paper.table1().query("dataset == @paper_dataset(@dataset_used)")
    table = []
    for found in settings(records):
        regularizer, strength = regularizer_of(found.config["l2"], found.config["wd"])
        cells = {**_paper_row(rows, found.config["optimizer"], regularizer, strength), **ours_columns(found)}
        table.append({"setting": setting_label(found.config), **cells})
    columns = ["setting", "%γ paper", "%γ ours", "err paper", "err ours", "seeds"]
    return pd.DataFrame(table, columns=columns).set_index("setting")


def adagrad_horizon(found: dict, threshold: float = GAMMA_THRESHOLD) -> pd.DataFrame:
    """Why Adagrad's filters do not die in a short run (Sec. 4.1, claim 2), per conv layer.

    `found`: a checkpoint's BN gammas and Adagrad 'sum' state (scripts/optimizer_state.py). Columns:
    features; min |γ|; median √G (root of the accumulated squared gradients); 'Adagrad steps', the
    steps its L2 alone needs to bring the layer's smallest |γ| below `threshold` at the learning rate
    in effect (`optim.adagrad_steps_to_threshold`, a lower bound); 'Adam steps', about |γ|/lr, the
    same for an L2 step of about lr per step (claim 7)."""
    rows = []
    for layer, values in found["layers"].items():
        gamma, state = np.abs(np.asarray(values["gamma"])), np.asarray(values["state"])
        steps = adagrad_steps_to_threshold(gamma, state, found["lr"], found["l2"], threshold)
        rows.append({"layer": layer, "features": len(gamma), "min |γ|": float(gamma.min()),
                     "median √G": float(np.median(np.sqrt(state))), "Adagrad steps": round(float(steps.min())),
                     "Adam steps": math.ceil(max(gamma.min() - threshold, 0.0) / found["lr"])})
    return pd.DataFrame(rows).set_index("layer")


def dead_by_layer(record: dict, beta_threshold: float = ACTIVATION_THRESHOLD) -> pd.DataFrame:
    """Per conv layer of one run (Sec. 2.1): features, dead by |γ| < 1e-3 and by activation, and how
    many γ-dead features still have β > `beta_threshold` (they output the constant ReLU(β) > 0 on every
    image, so the activation test calls them alive)."""
    rows = []
    for layer in record["final"]["layers"]:
        bn = record["bn"][layer["layer"]]
        positive = (np.abs(np.asarray(bn["gamma"])) < GAMMA_THRESHOLD) & (np.asarray(bn["beta"]) > beta_threshold)
        rows.append({"layer": layer["layer"], "features": layer["features"], "dead by γ": layer["inactive_gamma"],
                     "dead by act.": layer["inactive_act"], "γ-dead, β > 0": int(positive.sum())})
    return pd.DataFrame(rows).set_index("layer")


def zeroing_table(records: list[dict]) -> pd.DataFrame:
    """Per setting (Sec. 2.1): % dead by γ and by activation, test error before and after zeroing the
    γ-dead features, and the largest |change| of any seed (points). Mean±std over seeds as text."""
    rows = []
    for found in settings(records):
        runs = [r["final"] for r in found.records]
        change = max(abs(f["test_err_zeroed"] - f["test_err"]) for f in runs)
        rows.append({"setting": setting_label(found.config), "%γ": str(found.sparsity),
                     "%act.": str(Estimate.of([f["sparsity_act"] for f in runs])), "err": str(found.error),
                     "err zeroed": str(Estimate.of([f["test_err_zeroed"] for f in runs])), "max |change|": change})
    return pd.DataFrame(rows).set_index("setting")


def threshold_table(frame: pd.DataFrame) -> pd.DataFrame:
    """`frames.gamma_threshold_frame` as one row per run and one column per threshold ('< 0.001'), plus
    'spread': the largest minus the smallest % across the thresholds shown (points)."""
    table = frame.pivot(index="setting", columns="threshold", values="percent")
    table = table.loc[list(dict.fromkeys(frame["setting"]))]
    spread = table.max(axis=1) - table.min(axis=1)
    table.columns = [f"< {value:g}" for value in table.columns]
    return table.assign(spread=spread)


# ------------------------------------------------------------ chapters 3-4


LAYER_ROWS = [f"C{i}" for i in range(1, 8)] + ["all", "err"]  # rows of `table2`


def _layer_percents(record: dict) -> dict[str, float]:
    """% of each conv layer's features with |γ| < 1e-3, plus 'all' (% of every conv feature) and 'err' (%)."""
    found = {layer["layer"]: 100.0 * layer["inactive_gamma"] / layer["features"] for layer in record["final"]["layers"]}
    return {**found, "all": record["final"]["sparsity_gamma"], "err": record["final"]["test_err"]}


def _paper_layers(dataset_used: str, config: dict) -> dict[str, float]:
    """The paper's Table 2 row (C1..C7, all, err) for a config's optimizer and regularizer; NaN if none."""
    rows = paper.table2().query("dataset == @paper_dataset(@dataset_used)")
    first = _paper_match(rows, config["optimizer"], *regularizer_of(config["l2"], config["wd"]))
    if first is None:
        return {row: math.nan for row in LAYER_ROWS}
    return {**{f"C{i}": float(first[f"C{i}"]) for i in range(1, 8)}, "all": float(first["total"]),
            "err": float(first["err"])}


def table2(records: list[dict], dataset_used: str = "synthetic", optimizer: str | None = None) -> pd.DataFrame:
    """Paper Table 2 (Sec. 4.1; supplement Table 1 for CIFAR-10) next to ours, transposed to fit the text
    column: rows C1..C7 (% of the layer's features with |γ| < 1e-3), 'all' (% of all conv features) and
    'err' (test error, %); two columns per setting of `records` (only `optimizer`'s when given), named
    after its regularizer: "L2 1e-3 paper" (a number, NaN where the paper has no such row) and
    "L2 1e-3 ours" (seed mean±std as text). The paper's network is BasicNet on CIFAR-10 (CIFAR-100 when
    ours ran on CIFAR-100)."""
    columns = {}
    for found in settings(records):
        if optimizer is not None and found.config["optimizer"] != optimizer:
            continue
        name = setting_label(found.config) if optimizer is None else setting_label(found.config).split(" ", 1)[1]
        ours = [_layer_percents(record) for record in found.records]
        columns[f"{name} paper"] = _paper_layers(dataset_used, found.config)
        columns[f"{name} ours"] = {row: str(Estimate.of([values[row] for values in ours])) for row in LAYER_ROWS}
    table = pd.DataFrame(columns, index=LAYER_ROWS)
    table.index.name = "layer"
    return table


def table2_long(records: list[dict], dataset_used: str = "synthetic") -> pd.DataFrame:
    """Long form of `table2` for `figures.layerwise_sparsity`: source ('paper' | 'ours'), setting, layer
    (C1..C7), percent (ours: the mean over seeds). Paper rows only for settings the paper has."""
    rows = []
    for found in settings(records):
        label = setting_label(found.config)
        ours = [_layer_percents(record) for record in found.records]
        paper_row = _paper_layers(dataset_used, found.config)
        for layer in LAYER_ROWS[:7]:
            if not math.isnan(paper_row[layer]):
                rows.append({"source": "paper", "setting": label, "layer": layer, "percent": paper_row[layer]})
            rows.append({"source": "ours", "setting": label, "layer": layer,
                         "percent": Estimate.of([values[layer] for values in ours]).mean})
    frame = pd.DataFrame(rows, columns=["source", "setting", "layer", "percent"])
    return frame.sort_values("source", key=lambda s: s.map({"paper": 0, "ours": 1}), kind="stable")


def _bn_numbers(record: dict, layer: str) -> dict[str, float]:
    gamma = np.abs(np.asarray(record["bn"][layer]["gamma"], dtype=float))
    beta = np.asarray(record["bn"][layer]["beta"], dtype=float)
    live = gamma >= GAMMA_THRESHOLD
    return {"% dead": 100.0 * float((~live).mean()),
            "% live β<0": 100.0 * float((beta[live] < 0).mean()) if live.any() else math.nan,
            "mean live β": float(beta[live].mean()) if live.any() else math.nan}


def bn_table(records: list[dict], layer: str = "C6") -> pd.DataFrame:
    """BatchNorm of one layer at the end of training (paper Fig. 2, Sec. 4.1), one row per setting:
    '% dead' (|γ| < 1e-3), '% live β<0' (share of the living features with a negative bias), 'mean live β'
    (mean±std over seeds, as text) and 'seeds'."""
    rows = []
    for found in settings(records):
        numbers = [_bn_numbers(record, layer) for record in found.records]
        row = {"setting": setting_label(found.config), "seeds": len(numbers)}
        for name, digits in (("% dead", 0), ("% live β<0", 0), ("mean live β", 2)):
            row[name] = estimate_text([n[name] for n in numbers], digits)
        rows.append(row)
    return pd.DataFrame(rows, columns=["setting", "% dead", "% live β<0", "mean live β", "seeds"]).set_index("setting")


def _dead(record: dict, layer: str) -> np.ndarray:
    """Per feature of `layer`: is it dead at the end of the run (|γ| < 1e-3)?"""
    return np.abs(np.asarray(record["bn"][layer]["gamma"], dtype=float)) < GAMMA_THRESHOLD


def _live_universality(record: dict, layer: str) -> float:
    values = np.asarray(record["universality"][layer], dtype=float)[~_dead(record, layer)]
    return float(values.mean()) if len(values) else math.nan


def universality_fates(pairs: dict, layers=("C5", "C6", "C7")) -> pd.DataFrame:
    """The numbers of `universality_by_fate` (mean early universality in % of training images, NaN for an
    empty group), for tables and generated prose alike."""
    rows = []
    for label, (early, record) in pairs.items():
        fates = [(np.asarray(early["layers"][layer]["universality"], dtype=float), _dead(record, layer))
                 for layer in layers]
        pooled = (np.concatenate([u for u, _ in fates]), np.concatenate([d for _, d in fates]))
        for layer, (universality, dies) in [*zip(layers, fates), (f"{layers[0]}-{layers[-1]}", pooled)]:
            rows.append({"setting": label, "layer": layer, "features": len(universality), "die later": int(dies.sum()),
                         **{name: float(values.mean()) if len(values) else math.nan for name, values in
                            (("early: all", universality), ("early: die later", universality[dies]),
                             ("early: live", universality[~dies]))}})
    return pd.DataFrame(rows).set_index(["setting", "layer"])


def universality_by_fate(pairs: dict, layers=("C5", "C6", "C7")) -> pd.DataFrame:
    """Universality early in training split by each feature's fate at the end (Sec. 3 and 4.1, claim 6):
    are the features a run kills the ones that were selective before they died?

    `pairs`: label -> (early, record): `early` as written by scripts/early_universality.py (per layer
    the universality, %, of every feature at an early step of the run) and `record` the finished run.
    One row per (label, layer of `layers`, then their pool 'all'); columns 'features', 'die later'
    (|γ| < 1e-3 at the end), and the mean early universality of 'all', of those that 'die later' and
    of those that 'live' ('–' for an empty group)."""
    frame = universality_fates(pairs, layers)
    for column in ("early: all", "early: die later", "early: live"):
        frame[column] = [mean_text(np.array([v])) if not math.isnan(v) else "–" for v in frame[column]]
    return frame


def universality_table(records: list[dict], layers=("C5", "C6", "C7")) -> pd.DataFrame:
    """Mean universality (% of training images a feature fires on, Sec. 3, paper Fig. 3) of each layer's
    living features (|γ| >= 1e-3), one row per setting, one column per layer (mean±std over seeds as
    text; '–' when a layer has no living feature), plus 'seeds'."""
    rows = []
    for found in settings(records):
        row = {"setting": setting_label(found.config), "seeds": len(found.records)}
        row.update({layer: estimate_text([_live_universality(r, layer) for r in found.records]) for layer in layers})
        rows.append(row)
    return pd.DataFrame(rows, columns=["setting", *layers, "seeds"]).set_index("setting")


def closed_form_table(strength: float, lr: float, sgd_lr: float, momentum: float = 0.9) -> pd.DataFrame:
    """Steps to halve a weight of 1 that gets no task gradient (Sec. 3, Fig. 4), from each update rule's
    closed form: Adam+L2 loses about lr per step whatever λ is; the paper's weight decay multiplies by
    (1 - λ); SGD+L2 with momentum shrinks by lr·λ/(1 - momentum) per step; torch's AdamW by (1 - lr·λ).
    Index 'rule'; columns 'θ_t with no task gradient', 'steps to halve'."""
    rows = [("Adam + L2", "θ0 − lr·t", 0.5 / lr),
            ("Adam + WD (paper)", "(1 − λ)^t · θ0", math.log(2) / -math.log1p(-strength)),
            ("SGD + L2", "exp(−lr·λ·t/(1 − μ)) · θ0", math.log(2) * (1 - momentum) / (sgd_lr * strength)),
            ("torch AdamW", "(1 − lr·λ)^t · θ0", math.log(2) / -math.log1p(-lr * strength))]
    return pd.DataFrame(rows, columns=["rule", "θ_t with no task gradient", "steps to halve"]).set_index("rule")


def _steps_text(steps: float) -> str:
    """'1069' steps, or 'never' when the weight did not get there within the simulation."""
    return "never" if math.isinf(steps) else f"{steps:.0f}"


def trajectory_table(frame: pd.DataFrame) -> pd.DataFrame:
    """From `frames.fig4_frame` (or any `trajectory_frame`): per setting and scenario, the steps until
    |θ| first reaches 10% of θ0 (text; 'never' within the simulation) and θ at the last step. Index
    'setting'; columns 'to 10%, <tag>' and 'θ end, <tag>', tag 'none' for a scenario named 'no ...' or
    'zero ...' (no task gradient), else the scenario's first word ('rare')."""
    table = {}
    for scenario, part in frame.groupby("scenario", sort=False):
        first = str(scenario).split()[0]
        tag = "none" if first in ("no", "zero") else first
        paths = part.pivot(index="step", columns="setting", values="theta")
        order = list(dict.fromkeys(part["setting"]))
        table[f"to 10%, {tag}"] = {s: _steps_text(steps_to_fraction(paths[s].to_numpy())) for s in order}
        # A weight driven to zero ends at float noise (-1e-17); show it as 0, not "-0.000".
        table[f"θ end, {tag}"] = {s: 0.0 if abs(paths[s].iloc[-1]) < 1e-12 else float(paths[s].iloc[-1]) for s in order}
    result = pd.DataFrame(table)
    result.index.name = "setting"
    return result


def strength_sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """From `frames.strength_sweep_frame`: per rule (e.g. 'Adam + L2'), the steps until θ reaches 10% of
    θ0 at each λ (text; 'never') and 'max gap', the largest distance between that rule's trajectories over
    all steps (0: λ drops out of the rule)."""
    rows = []
    for rule, part in frame.groupby("rule", sort=False):
        paths = part.pivot(index="step", columns="strength", values="theta")
        row = {"rule": rule}
        row.update({f"to 10%, λ {format_strength(value)}": _steps_text(steps_to_fraction(paths[value].to_numpy()))
                    for value in paths.columns})
        row["max gap"] = float((paths.max(axis=1) - paths.min(axis=1)).max())
        rows.append(row)
    return pd.DataFrame(rows).set_index("rule")


# ------------------------------------------------------------ chapters 5-7


PAPER_CLUTTER = {0.0: 70.0, 1.0: 57.0}  # Sec. 4.2: % dead filters, ObjectNet3D renderings, clean vs cluttered
# Supplement Tables 2-3 rows (CIFAR-100, Adam, L2 1e-4) under the labels of `plans.supplement_variants`
# and `plans.beta_variants`; Adam's row is main Table 2's.
SUPPLEMENT_PAPER_COLUMNS = {"AMSGrad": "AMSGrad L2 1e-4", "Leaky ReLU 0.01": "LeakyReLU 0.01, L2 1e-4",
                            "γ lr ×0.1": "LR x0.1 for gamma", "β init 1": "gamma=1, beta=1.0",
                            "β lr ×0.1": "LR x0.1 for beta", "Leaky ReLU 0.1": "LeakyReLU 0.1, L2 1e-4",
                            "β init -0.1": "gamma=1, beta=-0.1 (sign reconstructed)"}
_SUPPLEMENT_DEFAULT = ["Adam", "AMSGrad", "Leaky ReLU 0.01", "γ lr ×0.1", "β init 1", "β lr ×0.1"]
_ROWS = [f"C{i}" for i in range(1, 8)] + ["total", "err"]
_OURS = ["%γ paper", "%γ ours", "err paper", "err ours", "seeds"]


def trend_table(groups, paper_sparsity: dict | None = None, paper_error: dict | None = None,
                index: str = "setting") -> pd.DataFrame:
    """One row per (label, records of one setting's seeds) of `groups`, in order: %γ paper, %γ ours
    (% conv features with |γ| < 1e-3), err paper, err ours (test error, %), seeds. `paper_sparsity`,
    `paper_error`: label -> the paper's number (NaN where missing)."""
    paper_sparsity, paper_error = paper_sparsity or {}, paper_error or {}
    rows = [{index: label, "%γ paper": paper_sparsity.get(label, math.nan),
             "err paper": paper_error.get(label, math.nan), **ours_columns(setting)}
            for label, setting in one_setting_each(groups, "group")]
    return pd.DataFrame(rows, columns=[index, *_OURS]).set_index(index)


def _difficulty_paper(config: dict) -> tuple[float, float]:
    """The paper's (% dead, test error) for one of our Sec. 4.2 tasks; NaN where it has none."""
    if config["dataset"] == "synthetic":  # the paper's clean/cluttered ObjectNet3D pair reports no error
        return PAPER_CLUTTER.get(float(config["clutter"]), math.nan), math.nan
    if config["dataset"] == "tinyimagenet":  # Table 4: Adam, batch 40, L2 1e-4 only
        row = paper.table4().query("optimizer == 'adam' and batch_size == 40").iloc[0]
        at = math.isclose(config["l2"], 1e-4)
        return (float(row["sparsity_gamma"]), float(row["top1_err"])) if at else (math.nan, math.nan)
    found = _paper_row(paper.table1().query("dataset == @config['dataset']"), "adam", "L2", config["l2"])
    return found["%γ paper"], found["err paper"]


def difficulty_table(groups) -> pd.DataFrame:
    """Sec. 4.2 (claim 4): one row per task of `groups` ((label, records), easiest first), the paper's
    number beside ours: clutter 0 and 1 against its clean (70%) and cluttered (57%) ObjectNet3D
    renderings; CIFAR-10/100 against Table 1 (Adam, same L2); TinyImageNet against Table 4 (L2 1e-4)."""
    papers = {label: _difficulty_paper(records[0]["config"]) for label, records in groups}
    return trend_table(groups, {k: v[0] for k, v in papers.items()}, {k: v[1] for k, v in papers.items()}, "task")


def _paper_prefix(dataset_used: str) -> str:
    return "C100" if paper_dataset(dataset_used) == "cifar100" else "C10"


def table3(groups, dataset_used: str = "synthetic") -> pd.DataFrame:
    """Paper Table 3 (Sec. 5.1, mini-batch size) beside ours: one row per batch group, the paper's
    row at the same L2 and batch (CIFAR-10, or CIFAR-100 for CIFAR-100 runs), plus 'epochs': the
    passes over the training images our iteration-matched runs made."""
    prefix, rows = _paper_prefix(dataset_used), paper.table3()
    sparsity, error, epochs = {}, {}, {}
    for label, records in groups:
        config, provenance = records[0]["config"], records[0]["provenance"]
        match = rows[(rows["batch"] == config["batch_size"]) & rows["L2"].map(lambda v: math.isclose(v, config["l2"]))]
        sparsity[label] = float(match[f"{prefix} sparsity"].iloc[0]) if len(match) else math.nan
        error[label] = float(match[f"{prefix} err"].iloc[0]) if len(match) else math.nan
        epochs[label] = provenance["steps"] * config["batch_size"] / provenance["train_images"]
    table = trend_table(groups, sparsity, error, "batch")
    table.insert(4, "epochs", pd.Series(epochs))
    return table


def table6(groups, dataset_used: str = "synthetic") -> pd.DataFrame:
    """Paper Table 6 (Sec. 5.1, network width; Adam L2 1e-4) beside ours: one row per width name of
    `groups`, plus 'trained as': the first-layer width and the C2-C7 multiplier after the profile's scaling."""
    prefix, rows = _paper_prefix(dataset_used), paper.table6().set_index("net")
    table = trend_table(groups, {n: float(rows.loc[n, f"{prefix} sp"]) for n, _ in groups if n in rows.index},
                        {n: float(rows.loc[n, f"{prefix} err"]) for n, _ in groups if n in rows.index}, "net")
    table.insert(0, "trained as", [f"{r[0]['config']['first_width']}-{r[0]['config']['width']:g}x" for _, r in groups])
    return table


def supplement_optimizer_table(groups, dataset_used: str = "synthetic") -> pd.DataFrame:
    """Supplement Table 4 (AMSGrad, Adamax, RMSProp; Adam from Table 1) beside ours: one row per
    optimizer group. The paper reports L2 1e-2, 1e-4, 1e-6 only: each row takes the paper at our L2
    when reported, else at 1e-4 (its Sec. 5 default), and says which in 'paper L2'."""
    prefix = _paper_prefix(dataset_used)
    supp = paper.supplement_table(4)
    sparsity, error, strengths = {}, {}, {}
    for label, records in groups:
        config = records[0]["config"]
        if config["optimizer"] == "adam":
            table1_rows = paper.table1()
            reported = table1_rows[(table1_rows["dataset"] == paper_dataset(dataset_used))
                                   & (table1_rows["optimizer"] == "adam") & (table1_rows["regularizer"] == "L2")]
            reported = reported.rename(columns={"strength": "L2"})
            columns = ("sparsity_gamma", "test_err")
        else:
            reported = supp[supp["opt"].str.lower() == config["optimizer"]]
            columns = (f"{prefix} gamma", f"{prefix} err")
        at = reported[reported["L2"].map(lambda v: math.isclose(v, config["l2"]))]
        at = at if len(at) else reported[reported["L2"].map(lambda v: math.isclose(v, 1e-4))]
        strengths[label] = format_strength(float(at["L2"].iloc[0])) if len(at) else "–"
        sparsity[label] = float(at[columns[0]].iloc[0]) if len(at) else math.nan
        error[label] = float(at[columns[1]].iloc[0]) if len(at) else math.nan
    table = trend_table(groups, sparsity, error, "optimizer")
    table.insert(0, "paper L2", pd.Series(strengths))
    return table


def layers_by_group(groups) -> pd.DataFrame:
    """Per-layer % dead features (|γ| < 1e-3, mean over seeds) with layers as rows (C1.., then
    'total' and 'err' = test error %) and one column per (label, records) of `groups`."""
    columns = {}
    for label, records in groups:
        percents = pd.DataFrame([_layer_percents(record) for record in records]).rename(columns={"all": "total"})
        columns[label] = percents.mean().to_dict()
    frame = pd.DataFrame(columns)
    order = [row for row in frame.index if row not in ("total", "err")] + ["total", "err"]
    return frame.loc[order].rename_axis("layer")


def selectivity_by_group(groups, layers=("C5", "C6", "C7")) -> pd.DataFrame:
    """The quantities of the paper's mechanism for claim 4 (Sec. 3 and 4.2: a harder task makes late
    features more universal, so they keep receiving task gradient and are not decayed away), one column
    per (label, records) of `groups`, mean±std over seeds as text. Rows: 'test error' and 'train error'
    (%), '% dead <layer>' (|γ| < 1e-3) and 'universality <layer>' (mean % of training images on which a
    living feature fires, '–' when none lives), for each of `layers`."""
    columns = {}
    for label, records in groups:
        numbers = [mechanism_numbers(record, layers) for record in records]
        columns[label] = {row: estimate_text([n[row] for n in numbers]) for row in numbers[0]}
    return pd.DataFrame(columns).rename_axis("quantity")


def mechanism_numbers(record: dict, layers) -> dict[str, float]:
    """One run's rows of `selectivity_by_group` (errors in %, dead in % of the layer, universality in %)."""
    percents = _layer_percents(record)
    return {"test error": record["final"]["test_err"], "train error": record["final"]["train_err"],
            **{f"% dead {layer}": percents[layer] for layer in layers},
            **{f"universality {layer}": _live_universality(record, layer) for layer in layers}}


def supplement_layers_paper(columns=None) -> pd.DataFrame:
    """The paper's per-layer % dead features (CIFAR-100, Adam, L2 1e-4; supplement Tables 2-3, Adam
    from main Table 2): layers as rows (C1..C7, total, err), one column per label of `columns` (None:
    the book's six settings); a label the paper has no row for is left out."""
    names = _SUPPLEMENT_DEFAULT if columns is None else list(columns)
    supp = pd.concat([paper.supplement_table(2), paper.supplement_table(3)]).set_index("setting")
    adam = paper.table2().query("dataset == 'cifar100' and optimizer == 'adam' and regularizer == 'L2' "
                                "and strength == 1e-4").iloc[0]
    found = {}
    for name in names:
        row = adam if name == "Adam" else supp.loc[SUPPLEMENT_PAPER_COLUMNS[name]] \
            if name in SUPPLEMENT_PAPER_COLUMNS else None
        if row is not None:
            found[name] = {layer: float(row[layer]) for layer in _ROWS[:7]} | {"total": float(row["total"]),
                                                                               "err": float(row["err"])}
    return pd.DataFrame(found, index=_ROWS).rename_axis("layer")


def supplement_variant_table(groups) -> pd.DataFrame:
    """Supplement Tables 2-3 (CIFAR-100, Adam, L2 1e-4: totals and test error) beside ours: one row per
    (label, records) of `groups`, labelled as in `supplement_layers_paper` (a dash where the paper has
    no such setting)."""
    found = supplement_layers_paper([label for label, _ in groups])
    return trend_table(groups, found.loc["total"].to_dict(), found.loc["err"].to_dict())


# ------------------------------------------------------------ chapters 8-10


def _ours_top1(records: list[dict]) -> dict:
    """'%γ ours', 'top-1 ours' (mean±std over seeds as text, NaN without runs) and 'seeds'."""
    return {"%γ ours": estimate_text([r["final"]["sparsity_gamma"] for r in records], missing=math.nan),
            "top-1 ours": estimate_text([r["final"]["test_err"] for r in records], missing=math.nan),
            "seeds": len(records)}


COLUMNS_TOP1 = ["%γ paper", "%γ ours", "top-1 paper", "top-1 ours", "seeds"]


def table4(records: list[dict]) -> pd.DataFrame:
    """Paper Table 4 (TinyImageNet, BasicNet) next to ours: one row per optimizer and batch ('Adam b20'),
    the paper's rows first. Columns: %γ paper/ours (% features with |γ| < 1e-3), top-1 paper/ours (top-1
    error, %), seeds (0 and '–' where we have no run)."""
    ours = seed_groups(records, lambda c: (c["optimizer"], c["batch_size"]))
    rows, seen = [], set()
    for row in paper.table4().itertuples():
        key = (row.optimizer, int(row.batch_size))
        seen.add(key)
        rows.append({"setting": f"{OPTIMIZER_NAMES[key[0]]} b{key[1]}", "%γ paper": float(row.sparsity_gamma),
                     "top-1 paper": float(row.top1_err), **_ours_top1(ours.get(key, []))})
    for key, found in ours.items():
        if key not in seen:
            rows.append({"setting": f"{OPTIMIZER_NAMES.get(key[0], key[0])} b{key[1]}", "%γ paper": math.nan,
                         "top-1 paper": math.nan, **_ours_top1(found)})
    return pd.DataFrame(rows, columns=["setting", *COLUMNS_TOP1]).set_index("setting")


def table5(records: list[dict]) -> pd.DataFrame:
    """Paper Table 5 (ImageNet, BasicNet, Adam) next to ours: one row per batch size; columns as `table4`."""
    ours = seed_groups(records, lambda c: c["batch_size"])
    papers = {int(r.batch_size): r for r in paper.table5().itertuples()}
    rows = []
    for batch in sorted(set(papers) | set(ours)):
        row = papers.get(batch)
        rows.append({"batch": batch, "%γ paper": math.nan if row is None else float(row.sparsity_gamma),
                     "top-1 paper": math.nan if row is None else float(row.top1_err),
                     **_ours_top1(ours.get(batch, []))})
    return pd.DataFrame(rows, columns=["batch", *COLUMNS_TOP1]).set_index("batch")


def features_pruned(record: dict) -> int:
    """Number of conv features of a run record with |γ| < 1e-3 at the end (paper Table 9's count)."""
    return int(sum(layer["inactive_gamma"] for layer in record["final"]["layers"]))


def table9(records: list[dict]) -> pd.DataFrame:
    """Paper Table 9 (ImageNet, VGG-11, Adam) next to ours: one row per batch size; columns: pruned
    paper/ours (conv features with |γ| < 1e-3, a count), top-1 ours (%), seeds."""
    ours = seed_groups(records, lambda c: c["batch_size"])
    papers = {int(r.batch_size): float(r.features_pruned) for r in paper.table9().itertuples()}
    rows = [{"batch": b, "pruned paper": papers.get(b, math.nan),
             "pruned ours": estimate_text([features_pruned(r) for r in ours.get(b, [])], missing=math.nan),
             "top-1 ours": estimate_text([r["final"]["test_err"] for r in ours.get(b, [])], missing=math.nan),
             "seeds": len(ours.get(b, []))}
            for b in sorted(set(papers) | set(ours))]
    columns = ["batch", "pruned paper", "pruned ours", "top-1 ours", "seeds"]
    return pd.DataFrame(rows, columns=columns).set_index("batch")


def batch_points(tinyimagenet: list[dict] = (), imagenet: list[dict] = ()) -> pd.DataFrame:
    """% features with |γ| < 1e-3 against batch size with Adam: the paper's CIFAR-10/100 (Table 3, L2 1e-4),
    TinyImageNet (Table 4) and ImageNet (Table 5) points, and one row per run of ours (source 'ours, ...').
    Columns: batch, sparsity, source."""
    table3 = paper.table3().query("L2 == 1e-4")
    frames = [pd.DataFrame({"batch": table3["batch"], "sparsity": table3[f"{name} sparsity"],
                            "source": f"paper, {label}"})
              for name, label in (("C10", "CIFAR-10"), ("C100", "CIFAR-100"))]
    tiny = paper.table4().query("optimizer == 'adam'")
    frames.append(pd.DataFrame({"batch": tiny["batch_size"], "sparsity": tiny["sparsity_gamma"],
                                "source": "paper, TinyImageNet"}))
    frames.append(pd.DataFrame({"batch": paper.table5()["batch_size"], "sparsity": paper.table5()["sparsity_gamma"],
                                "source": "paper, ImageNet"}))
    for name, records in (("TinyImageNet", tinyimagenet), ("ImageNet", imagenet)):
        rows = [{"batch": r["config"]["batch_size"], "sparsity": r["final"]["sparsity_gamma"],
                 "source": f"ours, {name}"} for r in records if r["config"]["optimizer"] == "adam"]
        frames.append(pd.DataFrame(rows, columns=["batch", "sparsity", "source"]))
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True)
    return frame.astype({"batch": int, "sparsity": float})


# ---------------------------------------------------------------- chapter 9: pruning (Sec. 5.2)
def _removed_pct(row: dict) -> float:
    return 100.0 * (1.0 - row["features_after"] / max(1, row["features_before"]))


def layer_removed(record: dict) -> dict[str, float]:
    """Per conv layer of a pruned record (`prune_or_load`), % of its features removed. A layer whose
    features all died keeps one placeholder feature, so it shows just under 100."""
    return {row["layer"]: _removed_pct(row) for row in record["layers"] if row["layer"].startswith("C")}


def pruned_layers(record: dict) -> pd.DataFrame:
    """One pruned record's costs per layer (C1.., head, total): feats, feats kept, params, params kept,
    MACs, MACs kept (per image; MACs from torch.utils.flop_counter)."""
    names = {"features_before": "feats", "features_after": "feats kept", "params_before": "params",
             "params_after": "params kept", "macs_before": "MACs", "macs_after": "MACs kept"}
    return pd.DataFrame(record["layers"]).set_index("layer")[list(names)].rename(columns=names)


def table2_pruned(records: list[dict], dataset_used: str = "synthetic") -> pd.DataFrame:
    """Paper Table 2's pruned columns next to ours, one row per setting of `records` (implicit pruned
    records, `prune_or_load`): % feats (features removed), % params (conv parameters removed; ours count
    conv + BN), Δerr (test error after removal minus before, points), each paper/ours, and seeds. The
    paper's numbers are its BasicNet row with the same optimizer and L2 on CIFAR-10 (CIFAR-100 for ours
    on CIFAR-100); '–' where it has none."""
    rows_paper = paper.table2()
    rows_paper = rows_paper[rows_paper["dataset"] == paper_dataset(dataset_used)]
    table = []
    for found in seed_groups(records).values():
        config = found[0]["config"]
        first = _paper_match(rows_paper, config["optimizer"], *regularizer_of(config["l2"], config["wd"]))
        finals = [r["final"] for r in found]
        changes = [f["test_err_after"] - f["test_err_before"] for f in finals]
        table.append({"setting": setting_label(config),
                      "% feats paper": math.nan if first is None else float(first["total"]),
                      "% feats ours": estimate_text([100 - f["features_kept_pct"] for f in finals], missing=math.nan),
                      "% params paper": math.nan if first is None else float(first["params"]),
                      "% params ours": estimate_text([100 - f["params_kept_pct"] for f in finals], missing=math.nan),
                      "Δerr paper": math.nan if first is None else float(first["pruned err"] - first["err"]),
                      "Δerr ours": estimate_text(changes, missing=math.nan)})
    columns = ["setting", "% feats paper", "% feats ours", "% params paper", "% params ours", "Δerr paper", "Δerr ours"]
    return pd.DataFrame(table, columns=columns).set_index("setting")


def _layer_cells(records: list[dict]) -> dict[str, str | float]:
    """Per layer, 'all' and 'test err': our mean±std over pruned records (see `layer_removed`)."""
    layers = [layer_removed(r) for r in records]
    cells = {name: estimate_text([found[name] for found in layers], missing=math.nan)
             for name in (layers[0] if layers else {})}
    cells["all"] = estimate_text([100 - r["final"]["features_kept_pct"] for r in records], missing=math.nan)
    cells["test err"] = estimate_text([r["final"]["test_err"] for r in records], missing=math.nan)
    return cells


def _table7_paper(dataset_used: str) -> pd.DataFrame:
    return paper.table7().set_index("layer")


def table7(by_batch: dict[int, list[dict]], dataset_used: str = "synthetic") -> pd.DataFrame:
    """Paper Table 7 (VGG-16, Adam+L2, dead features removed without fine-tuning) next to ours: rows
    C1..C13, 'all' (% of every layer's features) and 'test err' (%, after removal); for each batch of
    `by_batch` (batch -> implicit pruned records) the columns 'B<batch> paper' and 'B<batch> ours'.
    The paper's are CIFAR-10 (CIFAR-100 for ours on CIFAR-100)."""
    prefix = "C100" if paper_dataset(dataset_used) == "cifar100" else "C10"
    frame = _table7_paper(dataset_used)
    columns = {}
    for batch, records in by_batch.items():
        name = f"{prefix} B{batch}"
        columns[f"B{batch} paper"] = frame[name] if name in frame else pd.Series(math.nan, index=frame.index)
        columns[f"B{batch} ours"] = pd.Series(_layer_cells(records), dtype=object)
    return pd.DataFrame(columns, index=frame.index)


def table7_li(implicit: list[dict], li: list[dict]) -> pd.DataFrame:
    """Table 7's comparison (CIFAR-10 in the paper): % features removed per VGG-16 layer, 'all' and test
    error by Adam+L2's dead features (no fine-tuning) and by Li et al.'s VGG-16-pruned-A (fine-tuned),
    on the same batch-40 networks. Columns: Adam paper, Adam ours, Li paper, Li ours."""
    frame = _table7_paper("cifar10")
    table = pd.DataFrame({"Adam paper": frame["C10 B40"], "Adam ours": pd.Series(_layer_cells(implicit)),
                          "Li paper": frame["Li et al."], "Li ours": pd.Series(_layer_cells(li))})
    return table.reindex(frame.index)


def pruned_layer_frame(by_setting: dict[str, list[dict]], paper_columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Long frame for `figures.layer_pruning`: layer, setting, source ('ours' | 'paper'), removed (% of the
    layer's features), one row per layer and pruned record of `by_setting` (label -> records), plus the
    paper's Table 7 values for `paper_columns` (label -> a column of `paper.table7()`)."""
    rows = [{"layer": layer, "setting": label, "source": "ours", "removed": value}
            for label, records in by_setting.items() for r in records for layer, value in layer_removed(r).items()]
    table = paper.table7().set_index("layer")
    for label, column in (paper_columns or {}).items():
        rows += [{"layer": layer, "setting": label, "source": "paper", "removed": float(table.loc[layer, column])}
                 for layer in table.index if layer.startswith("C")]
    return pd.DataFrame(rows, columns=["layer", "setting", "source", "removed"])


def pruning_summary(by_label: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per method/setting (label -> pruned records): % feats and % params removed, test error of
    the dense network, right after removal and after fine-tuning (%, equal to 'err pruned' without
    fine-tuning), mean±std over the records; seeds."""
    rows = []
    for label, records in by_label.items():
        finals = [r["final"] for r in records]
        values = {"% feats": [100 - f["features_kept_pct"] for f in finals],
                  "% params": [100 - f["params_kept_pct"] for f in finals],
                  "err dense": [f["test_err_before"] for f in finals],
                  "err pruned": [f["test_err_after"] for f in finals], "err tuned": [f["test_err"] for f in finals]}
        rows.append({"setting": label, **{name: estimate_text(v, missing=math.nan) for name, v in values.items()},
                     "seeds": len(records)})
    columns = ["setting", "% feats", "% params", "err dense", "err pruned", "err tuned", "seeds"]
    return pd.DataFrame(rows, columns=columns).set_index("setting")


def summary_points(by_label: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per pruned record: setting, removed (% of conv features), error (test error after
    removal and any fine-tuning, %), for `figures.removed_vs_error`."""
    return pd.DataFrame([{"setting": label, "removed": 100 - r["final"]["features_kept_pct"],
                          "error": r["final"]["test_err"]} for label, records in by_label.items() for r in records],
                        columns=["setting", "removed", "error"])


def filter_norm_frame(models: dict) -> pd.DataFrame:
    """Every conv filter's norm relative to the largest in its layer, log10 (floored at -8): columns
    run, layer, log10 norm; `models` maps a run label to a trained BasicNet/VGG."""
    rows = []
    for label, model in models.items():
        for layer, conv, _ in conv_bn_layers(model):
            norms = filter_norms(conv).detach()
            relative = (norms / norms.max().clamp_min(1e-30)).clamp_min(1e-8)
            rows += [{"run": label, "layer": layer, "log10 norm": float(v)} for v in np.log10(relative.numpy())]
    return pd.DataFrame(rows, columns=["run", "layer", "log10 norm"])
