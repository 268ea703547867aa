"""The paper's tables next to ours, narrow enough for the book's text column.

Every table here has one row per setting and flat, short column names ("%γ paper", "%γ ours",
"err paper", "err ours", "seeds"), so that it fits the 752-pixel text column of the rendered book
at a 1280-pixel window. "ours" cells are strings: the seed mean, and over several seeds the sample
std ("25.8±1.2"); "paper" cells are numbers, NaN (shown as "–") where the paper has no such row.
Pure functions: records (the store's JSON dicts) in, pandas DataFrames out.
"""
from __future__ import annotations

import math

import pandas as pd

from . import paper
from .claims import Setting, settings
from .plots import regularizer_of, setting_label

__all__ = ["PAPER_DATASET", "ours_columns", "paper_dataset", "table1"]

PAPER_DATASET = {"cifar100": "cifar100"}  # our dataset -> the paper's dataset it is compared with (else CIFAR-10)


def paper_dataset(dataset_used: str) -> str:
    """The paper dataset our runs are compared with: CIFAR-100 for CIFAR-100, else CIFAR-10."""
    return PAPER_DATASET.get(dataset_used, "cifar10")


def ours_columns(setting: Setting) -> dict:
    """'%γ ours', 'err ours' (mean±std over seeds, as text) and 'seeds' of one setting."""
    return {"%γ ours": str(setting.sparsity), "err ours": str(setting.error), "seeds": setting.sparsity.n}


def _paper_row(rows: pd.DataFrame, optimizer: str, regularizer: str, strength: float) -> dict:
    match = rows[(rows["optimizer"] == optimizer) & (rows["regularizer"] == regularizer)
                 & rows["strength"].map(lambda value: math.isclose(value, strength, rel_tol=1e-9, abs_tol=1e-12))]
    if match.empty:
        return {"%γ paper": math.nan, "err paper": math.nan}
    first = match.iloc[0]
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


# ==================================================== chapters 3-4 (helper A's section; append below)


# ==================================================== chapters 5-7 (helper B's section; append below)


# ==================================================== chapters 8-10 (helper C's section; append below)
