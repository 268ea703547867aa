"""The paper's published numbers as DataFrames, for "paper" columns next to "ours".

Source: `paper_tables.md` (package data; rendered in the book as docs/paper_tables.md: our cleaned
restatement of the paper's tables). Markdown tables are parsed as written; prose-only tables (4, 5) are entered here.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["HEADINGS", "LAYERS", "paper_table", "SOURCE", "supplement_table", "table1", "table2", "table3",
           "table4", "table5", "table6", "table7", "table9"]

SOURCE = Path(__file__).with_name("paper_tables.md")
# Section heading prefix in paper_tables.md for each table name.
HEADINGS = {
    "table1": "## Table 1", "table2": "## Table 2", "table3": "## Table 3", "table6": "## Table 6",
    "table7": "## Tables 7/8", "supp2": "## Supplement Table 2", "supp3": "## Supplement Table 3",
    "supp4": "## Supplement Table 4",
}
LAYERS = [f"C{i}" for i in range(1, 8)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


@lru_cache(maxsize=None)
def _markdown_table(heading: str) -> pd.DataFrame:
    lines = SOURCE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not re.fullmatch(r"\|[-| ]+\|", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    header, *body = rows
    return pd.DataFrame([[_number(cell) for cell in row] for row in body], columns=header)


def paper_table(name: str) -> pd.DataFrame:
    """A table of the paper as restated in paper_tables.md (numbers as floats)."""
    if name not in HEADINGS:
        raise ValueError(f"name={name!r} is not a paper table; allowed: {', '.join(HEADINGS)}")
    return _markdown_table(HEADINGS[name]).copy()


def _split_regularizer(frame: pd.DataFrame, column: str = "reg") -> pd.DataFrame:
    """'L2 1e-3' -> regularizer 'L2', strength 0.001 (and 'WD ...' likewise)."""
    parts = frame[column].str.split(" ", n=1, expand=True)
    frame = frame.drop(columns=[column])
    frame.insert(1, "regularizer", parts[0])
    frame.insert(2, "strength", parts[1].astype(float))
    return frame


def table1() -> pd.DataFrame:
    """Table 1 in long form: optimizer, regularizer, strength, dataset, sparsity_act, sparsity_gamma, test_err."""
    wide = _split_regularizer(paper_table("table1"))
    frames = []
    for prefix, dataset in (("C10", "cifar10"), ("C100", "cifar100")):
        part = wide[["opt", "regularizer", "strength"]].rename(columns={"opt": "optimizer"})
        part = part.assign(dataset=dataset, sparsity_act=wide[f"{prefix} act"],
                           sparsity_gamma=wide[f"{prefix} gamma"], test_err=wide[f"{prefix} err"])
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True)
    frame["optimizer"] = frame["optimizer"].str.lower()
    return frame


def table2() -> pd.DataFrame:
    """Table 2 (CIFAR-100) and supplement Table 1 (CIFAR-10): layer-wise % sparsity by gamma."""
    frame = _split_regularizer(paper_table("table2").rename(columns={"opt": "optimizer"}))
    frame["data"] = frame["data"].map({"C100": "cifar100", "C10": "cifar10"})
    frame["optimizer"] = frame["optimizer"].str.lower()
    return frame.rename(columns={"data": "dataset"})


def table3() -> pd.DataFrame:
    """Table 3: mini-batch size vs sparsity (BasicNet, Adam), CIFAR-10 and CIFAR-100."""
    return paper_table("table3")


def table4() -> pd.DataFrame:
    """Table 4: TinyImageNet, BasicNet (train loss, val loss, top-1 err, top-5 err, % sparsity by gamma)."""
    rows = [("sgd", 40, 0.02, 2.63, 45.0, 22.7, 0), ("adam", 20, 1.05, 2.13, 47.7, 22.8, 63),
            ("adam", 40, 0.16, 2.96, 48.4, 24.7, 48), ("adam", 120, 0.01, 2.48, 48.8, 27.4, 26)]
    return pd.DataFrame(rows, columns=["optimizer", "batch_size", "train_loss", "val_loss", "top1_err",
                                       "top5_err", "sparsity_gamma"])


def table5() -> pd.DataFrame:
    """Table 5: ImageNet, BasicNet with Adam (train loss, val loss, top-1, top-5, % sparsity)."""
    rows = [(64, 2.05, 1.58, 38.0, 15.9, 0.2), (256, 1.63, 1.35, 32.9, 12.5, 0.0)]
    return pd.DataFrame(rows, columns=["batch_size", "train_loss", "val_loss", "top1_err", "top5_err",
                                       "sparsity_gamma"])


def table9() -> pd.DataFrame:
    """Table 9 (Sec. 5.2): VGG-11 on ImageNet with Adam, conv features pruned per mini-batch size."""
    return pd.DataFrame({"batch_size": [60, 90], "features_pruned": [140, 71]})


def table6() -> pd.DataFrame:
    """Table 6: network width variants (Adam, L2 1e-4, batch 40)."""
    return paper_table("table6")


def table7() -> pd.DataFrame:
    """Tables 7/8: VGG-16 layer-wise % features pruned vs Li et al. (2017)."""
    return paper_table("table7")


def supplement_table(number: int) -> pd.DataFrame:
    """Supplement Tables 2 (AMSGrad, Leaky ReLU), 3 (BN init, LR scaling), 4 (AMSGrad/Adamax/RMSProp)."""
    if number not in (2, 3, 4):
        raise ValueError(f"number={number!r} is not a stored supplement table; allowed: 2, 3, 4")
    return paper_table(f"supp{number}")
