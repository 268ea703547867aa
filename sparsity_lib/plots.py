"""Figures and tables for the chapters: seaborn styling, provenance banners, paper-vs-ours tables.

Every figure states its finding in the title and every table says which profile produced "ours".
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def set_style() -> None:
    """One look for the whole book: white grid, readable fonts, figures sized for the HTML page."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.figsize": (7.5, 4.2), "figure.dpi": 100, "savefig.bbox": "tight"})


def provenance_markdown(chapter, records: list[dict] | None = None) -> str:
    """Markdown saying what produced this chapter's numbers; a warning when 'auto' fell back to synthetic."""
    text = f"**Ours:** {chapter.describe(records)}. Profile `{chapter.profile}`: {chapter.settings.description}."
    if chapter.fell_back_to_synthetic:
        text += ("\n\n:::{warning}\nCIFAR-10 was not found (`dataset=\"auto\"`), so every number in this chapter "
                 "comes from the **synthetic shapes dataset** generated offline, not from CIFAR. "
                 f"({chapter.dataset_reason}.) Compare trends with the paper, not absolute values.\n:::")
    return text


def provenance_note(chapter, records: list[dict] | None = None) -> None:
    """Display `provenance_markdown` in the notebook (rendered as Markdown in the book)."""
    from IPython.display import Markdown, display
    display(Markdown(provenance_markdown(chapter, records)))


def paper_vs_ours(paper: pd.DataFrame, ours: pd.DataFrame, on: list[str], columns: list[str]) -> pd.DataFrame:
    """Side-by-side table: index `on`, column groups ("paper", col) and ("ours", col) for each of `columns`.

    Rows present in only one side show NaN on the other, so missing reproductions stay visible.
    """
    left = paper.set_index(on)[columns]
    right = ours.set_index(on)[columns]
    merged = pd.concat({"paper": left, "ours": right}, axis=1)
    return merged.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)


def styled(frame: pd.DataFrame, caption: str, digits: int = 1):
    """A pandas Styler with a caption and fixed decimals (NaN shown as '–')."""
    return frame.style.format(precision=digits, na_rep="–").set_caption(caption)
