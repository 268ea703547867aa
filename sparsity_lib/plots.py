"""Figures and tables for the chapters: seaborn styling, provenance banners, paper-vs-ours tables.

Every figure states its finding in the title and every table says which profile produced "ours".
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .claims import CLAIMS
from .frames import snapshot_frame, universality_frame
from .sparsity import GAMMA_THRESHOLD

__all__ = ["bn_distribution_evolution", "format_strength", "GAMMA_RULE", "layerwise_sparsity", "MEASURE_LABELS",
           "OPTIMIZER_COLORS", "OPTIMIZER_NAMES", "paper_vs_ours", "provenance_markdown", "provenance_note",
           "regularizer_of", "scorecard_markdown", "set_style", "setting_label", "show_summary", "show_verdicts",
           "sparsity_vs_error", "sparsity_vs_strength", "styled", "summary_markdown", "threshold_sensitivity",
           "universality_histograms", "verdict", "verdict_markdown", "VERDICT_MARKS", "weight_trajectories",
           "with_regularizer"]


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


VERDICT_MARKS = {"holds": "✅ holds", "fails": "❌ fails", "not tested": "⚪ not tested"}


def scorecard_markdown(card: pd.DataFrame, chapter_files: dict[int, str]) -> str:
    """The scorecard (`evidence.scorecard`) as a Markdown table: claim, verdict, the numbers' one-line
    reason, and a link to the chapter (`chapter_files`: chapter number -> notebook file name)."""
    rows = ["| # | claim | verdict at this profile | why | chapter |", "|---|---|---|---|---|"]
    for row in card.itertuples():
        link = f"[{row.chapter}]({chapter_files[row.chapter]})" if row.chapter in chapter_files else str(row.chapter)
        why = str(row.why).replace("|", "/")
        mark = VERDICT_MARKS.get(row.verdict, row.verdict)
        rows.append(f"| {row.claim} | {row.statement} | {mark} | {why} | {link} |")
    return "\n".join(rows)


def verdict_markdown(verdict, where: str = "") -> str:
    """One claim's verdict (`claims.Verdict`) as Markdown: the mark, the paper's claim, the measured
    reason, then each number it used as a bullet. `where`: e.g. "profile cpu, synthetic, 3 seeds"."""
    mark = VERDICT_MARKS.get(verdict.status, verdict.status)
    head = f"**Claim {verdict.claim}: {mark}**" + (f" ({where})" if where else "")
    lines = [head, "", f"*Paper:* {CLAIMS[verdict.claim]}", "", f"*Ours:* {verdict.reason}"]
    if verdict.numbers:
        lines.append("")
        lines += [f"- {name}: {value}" for name, value in verdict.numbers.items()]
    return "\n".join(lines)


def show_verdicts(verdicts, where: str = "") -> None:
    """Display each verdict (a Verdict, a list of them, or a dict claim -> Verdict) with `verdict_markdown`."""
    from IPython.display import Markdown, display
    found = verdicts.values() if isinstance(verdicts, dict) else [verdicts] if hasattr(verdicts, "claim") else verdicts
    for verdict in found:
        display(Markdown(verdict_markdown(verdict, where)))


def show_summary(verdicts: dict) -> None:
    """Display `summary_markdown(verdicts)` (the chapter summary's verdict list)."""
    from IPython.display import Markdown, display
    display(Markdown(summary_markdown(verdicts)))


def summary_markdown(verdicts: dict) -> str:
    """The chapter summary's verdict list: one bullet per claim with its mark and the paper's wording."""
    return "\n".join(f"- Claim {number} ({VERDICT_MARKS.get(v.status, v.status)}): {CLAIMS[number]}"
                     for number, v in sorted(verdicts.items()))


def provenance_note(chapter, records: list[dict] | None = None) -> None:
    """Display `provenance_markdown` in the notebook (rendered as Markdown in the book)."""
    from IPython.display import Markdown, display
    display(Markdown(provenance_markdown(chapter, records)))


def paper_vs_ours(paper: pd.DataFrame, ours: pd.DataFrame, on: list[str], columns: list[str]) -> pd.DataFrame:
    """Side-by-side table: index `on`, column groups ("paper", col) and ("ours", col) for each of `columns`.

    Rows present in only one side show NaN on the other, so missing reproductions stay visible.
    Columns keep the order of `columns`.
    """
    left = paper.set_index(on)[columns]
    right = ours.set_index(on)[columns]
    merged = pd.concat({"paper": left, "ours": right}, axis=1).swaplevel(0, 1, axis=1)
    return merged[[(column, side) for column in columns for side in ("paper", "ours")]]


def verdict(holds: bool) -> str:
    """The words printed after a claim check computed from the numbers."""
    return "reproduced" if holds else "NOT reproduced at this scale"


def styled(frame: pd.DataFrame, caption: str, digits: int = 1):
    """A pandas Styler with a caption and fixed decimals (NaN shown as '–')."""
    return frame.style.format(precision=digits, na_rep="–").set_caption(caption)


# ------------------------------------------------------------------------------------ labels
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "amsgrad": "AMSGrad", "adamax": "Adamax",
                   "adagrad": "Adagrad", "adadelta": "Adadelta", "rmsprop": "RMSProp"}
# One colour per optimizer in every figure of the book.
OPTIMIZER_COLORS = dict(zip(OPTIMIZER_NAMES, sns.color_palette("deep", len(OPTIMIZER_NAMES))))


def format_strength(value: float) -> str:
    """'1e-3' for 0.001, '2e-4' for 0.0002, '0' for 0 (the paper's way of writing lambda)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


GAMMA_RULE = f"|γ| < {format_strength(GAMMA_THRESHOLD)}"  # "|γ| < 1e-3", the paper's inactivity rule
MEASURE_LABELS = {"sparsity_gamma": f"% features inactive by {GAMMA_RULE}",
                  "sparsity_act": "% features inactive by activation",
                  "percent_gamma": f"% features inactive by {GAMMA_RULE}",
                  "percent_act": "% features inactive by activation"}


def setting_label(config: dict) -> str:
    """'Adam L2 1e-3', 'SGD WD 1e-3', 'Adam L2 0' for a record's config dict (optimizer, l2, wd)."""
    name = OPTIMIZER_NAMES.get(config["optimizer"], config["optimizer"])
    regularizer, strength = regularizer_of(config.get("l2", 0.0), config.get("wd", 0.0))
    return f"{name} {regularizer} {format_strength(strength)}"


def regularizer_of(l2: float, wd: float) -> tuple[str, float]:
    """('L2', l2) when there is no weight decay, ('WD', wd) when L2 is off, ('L2+WD', wd) for both."""
    if not wd:
        return "L2", float(l2)
    return ("WD", float(wd)) if not l2 else ("L2+WD", float(wd))


def with_regularizer(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with l2 and wd columns, e.g. from `mean_over_seeds`) plus the paper's columns
    'regularizer' ('L2' | 'WD') and 'strength' (lambda), so it aligns with `paper.table1()`."""
    pairs = [regularizer_of(l2, wd) for l2, wd in zip(frame["l2"], frame["wd"])]
    return frame.assign(regularizer=[p[0] for p in pairs], strength=[p[1] for p in pairs])


def _log_positions(strengths: pd.Series) -> tuple[pd.Series, float | None]:
    """x positions on a log axis: lambda itself, and lambda = 0 one decade left of the smallest
    positive value (so 'no regularization' gets its own tick instead of vanishing at -inf)."""
    positive = strengths[strengths > 0]
    zero_at = (positive.min() / 10.0) if len(positive) else 1e-6
    has_zero = bool((strengths == 0).any())
    return strengths.where(strengths > 0, zero_at), (zero_at if has_zero else None)


# ----------------------------------------------------------------------- Table 1 (Sec. 2.2)
def _seed_mean(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sample std (`<column>_std`, NaN for one seed) of `columns` per group of `keys`."""
    grouped = frame.groupby(keys, sort=False, dropna=False)[columns]
    return grouped.mean().join(grouped.std(ddof=1).add_suffix("_std")).reset_index()


def sparsity_vs_strength(frame: pd.DataFrame, measure: str = "sparsity_gamma", title: str | None = None):
    """Sparsity (%) against regularization strength (log lambda) per optimizer: one panel for L2,
    one for WD (paper Table 1, claim 1). `frame` needs optimizer, regularizer, strength, `measure`
    (see `with_regularizer`), one row per run: several seeds of a setting are drawn as their mean
    with a +-1 std bar. lambda = 0 sits at its own tick labelled '0'. Returns the Figure."""
    regularizers = [r for r in ("L2", "WD") if r in set(frame["regularizer"])]
    if not regularizers:
        raise ValueError(f"frame has no L2 or WD rows (regularizer values: {sorted(set(frame['regularizer']))})")
    fig, axes = plt.subplots(1, len(regularizers), figsize=(max(7.0, 5.2 * len(regularizers)), 4.2), sharey=True,
                             squeeze=False)
    for ax, regularizer in zip(axes[0], regularizers):
        part = _seed_mean(frame[frame["regularizer"] == regularizer], ["optimizer", "strength"], [measure])
        part["x"], zero_at = _log_positions(part["strength"])
        for optimizer, rows in part.sort_values("x").groupby("optimizer", sort=True):
            ax.errorbar(rows["x"], rows[measure], yerr=rows[f"{measure}_std"], marker="o", capsize=0,
                        color=OPTIMIZER_COLORS.get(optimizer), label=OPTIMIZER_NAMES.get(optimizer, optimizer))
        ax.set_xscale("log")
        ticks = sorted(set(part["x"]))
        ax.set_xticks(ticks, [("0" if zero_at is not None and t == zero_at else format_strength(t)) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"{regularizer} strength λ (log scale; '0' = none)")
        ax.set_ylabel(MEASURE_LABELS.get(measure, measure))
        ax.set_title(f"{regularizer} regularization")
        ax.legend(title="optimizer", fontsize="small")
    axes[0][0].set_ylim(-3, 103)
    fig.suptitle(title or "Sparsity against regularization strength")
    fig.tight_layout()
    return fig


def sparsity_vs_error(frame: pd.DataFrame, measure: str = "sparsity_gamma", title: str | None = None):
    """Sparsity (%) against test error (%) per setting, colour = optimizer, marker = regularizer,
    each point labelled with lambda (paper Sec. 4.1 claims 2 and 3: compare sparsity at comparable
    error). One row per run; several seeds are drawn as their mean with +-1 std bars both ways.
    Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    means = _seed_mean(frame, ["optimizer", "regularizer", "strength"], [measure, "test_err"])
    shown = means.assign(optimizer=means["optimizer"].map(lambda o: OPTIMIZER_NAMES.get(o, o)))
    palette = {OPTIMIZER_NAMES.get(o, o): OPTIMIZER_COLORS.get(o, "grey") for o in frame["optimizer"].unique()}
    ax.errorbar(shown["test_err"], shown[measure], xerr=shown["test_err_std"], yerr=shown[f"{measure}_std"],
                fmt="none", ecolor="grey", elinewidth=0.8)
    sns.scatterplot(data=shown, x="test_err", y=measure, hue="optimizer", style="regularizer", s=80, ax=ax,
                    palette=palette)
    for row in shown.itertuples():
        ax.annotate(format_strength(row.strength), (row.test_err, getattr(row, measure)), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_ylim(-3, 103)
    ax.set_xlabel("test error (%)")
    ax.set_ylabel(MEASURE_LABELS.get(measure, measure))
    ax.set_title(title or "Sparsity against test error, per setting")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


# ------------------------------------------------------------------- Sec. 1: thresholds


def threshold_sensitivity(frame: pd.DataFrame, marked: float = GAMMA_THRESHOLD, title: str | None = None):
    """% inactive against the |gamma| threshold (log x) per run, with the book's threshold marked."""
    fig, ax = plt.subplots()
    sns.lineplot(data=frame, x="threshold", y="percent", hue="setting", marker="o", ax=ax)
    ax.set_xscale("log")
    ax.axvline(marked, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"threshold used: {format_strength(marked)}", (marked, 0.97), xycoords=("data", "axes fraction"),
                xytext=(4, 0), textcoords="offset points", fontsize=8, va="top")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("threshold on |γ| (log scale)")
    ax.set_ylabel("% conv features with |γ| below threshold")
    ax.set_title(title or "Dead features stay dead over three decades of threshold")
    ax.legend(title="run", fontsize="small")
    return fig


# ------------------------------------------------------------------- Table 2 (Sec. 3)
def layerwise_sparsity(frame: pd.DataFrame, value: str = "percent", hue: str = "setting",
                       col: str | None = "source", title: str | None = None):
    """Grouped bars of % inactive features per layer (C1..C7), one bar per `hue` value, one panel per
    `col` value (e.g. 'paper' and 'ours'; None: one panel). Paper Table 2. Returns the Figure."""
    panels = [None] if col is None else list(dict.fromkeys(frame[col]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), sharey=True, squeeze=False)
    order = sorted(frame["layer"].unique(), key=lambda name: int(name[1:]))
    hue_order = list(dict.fromkeys(frame[hue]))
    for ax, panel in zip(axes[0], panels):
        part = frame if panel is None else frame[frame[col] == panel]
        sns.barplot(data=part, x="layer", y=value, hue=hue, order=order, hue_order=hue_order, ax=ax,
                    errorbar=None)
        ax.set_xlabel("conv layer")
        ax.set_ylabel(f"% features inactive ({GAMMA_RULE})")
        ax.set_ylim(0, 100)
        if panel is not None:
            ax.set_title(str(panel))
        if ax is not axes[0][-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[0][-1].legend(title=hue, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(title or "Adam+L2 kills late-layer filters; SGD kills early ones")
    fig.tight_layout()
    return fig


def bn_distribution_evolution(records, layer: str = "C6", title: str | None = None):
    """Distribution of BN gamma (left) and beta (right) of `layer` at each snapshot epoch, one row
    per run (paper Fig. 2). `records`: one record or a dict label -> record. Returns the Figure."""
    runs = {setting_label(records["config"]): records} if "config" in records else dict(records)
    fig, axes = plt.subplots(len(runs), 2, figsize=(10, 2.6 * len(runs) + 0.6), squeeze=False, sharex="row")
    for row, (label, record) in zip(axes, runs.items()):
        frame = snapshot_frame(record, layer)
        for ax, parameter in zip(row, ("gamma", "beta")):
            part = frame[frame["parameter"] == parameter]
            sns.stripplot(data=part, x="epoch", y="value", ax=ax, size=2.5, alpha=0.6, jitter=0.3,
                          color=sns.color_palette()[0 if parameter == "gamma" else 1])
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{layer} {'γ (scale)' if parameter == 'gamma' else 'β (bias)'}")
            ax.set_title(f"{label}: {'γ' if parameter == 'gamma' else 'β'}", fontsize="medium")
    fig.suptitle(title or f"How {layer}'s BatchNorm scales and biases evolve during training")
    fig.tight_layout()
    return fig


def universality_histograms(records: dict, layers=("C5", "C6", "C7"), bins: int = 20, title: str | None = None,
                            per_row: int = 4, gamma_threshold: float | None = GAMMA_THRESHOLD):
    """Histograms of feature universality (%) per layer, one colour per run, `per_row` panels per
    row (paper Fig. 3; 0% = dead, low = selective). `records`: label -> record; `gamma_threshold`
    as in `universality_frame`. Returns the Figure."""
    frame = universality_frame(records, layers, gamma_threshold)
    missing = [layer for layer in layers if layer not in set(frame["layer"])]
    if missing:
        raise ValueError(f"layers={list(layers)!r}: no universality stored for {missing}")
    columns = min(per_row, len(layers))
    rows = -(-len(layers) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows + 0.5), sharey=True, squeeze=False)
    axes = list(grid.flat)
    edges = np.linspace(0, 100, bins + 1)
    for ax, layer in zip(axes, layers):
        sns.histplot(data=frame[frame["layer"] == layer], x="universality", hue="setting", bins=edges,
                     stat="percent", common_norm=False, element="step", ax=ax, hue_order=list(records))
        ax.set_xlabel("universality (% of training images)")
        ax.set_ylabel("% of the layer's features")
        ax.set_title(layer)
        if layer != layers[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[len(layers) - 1].get_legend() is not None:
        sns.move_legend(axes[len(layers) - 1], "upper left", bbox_to_anchor=(1.02, 1), title="run", fontsize="small")
    for ax in axes[len(layers):]:
        ax.set_visible(False)
    fig.suptitle(title or "Feature universality per layer (0% = dead feature)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------- Fig. 4 (Sec. 3)


def weight_trajectories(frame: pd.DataFrame, title: str | None = None, lr: float | None = None):
    """theta against optimizer step, one line per setting, one panel per scenario (paper Fig. 4).
    `lr` draws the reference line theta0 - lr * step (Adam+L2's ~lr-per-step decay). Returns the Figure."""
    scenarios = list(dict.fromkeys(frame["scenario"]))
    settings = list(dict.fromkeys(frame["setting"]))
    width = 5.6 * len(scenarios) if len(scenarios) > 1 else 7.0
    fig, axes = plt.subplots(1, len(scenarios), figsize=(width, 4.2), sharey=True, squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        part = frame[frame["scenario"] == scenario]
        for color, setting in zip(sns.color_palette(n_colors=len(settings)), settings):
            rows = part[part["setting"] == setting]
            ax.plot(rows["step"], rows["theta"], color=color, linewidth=1.6, label=setting)
        if lr is not None:
            start = part["theta"].iloc[0]
            steps = np.arange(0, part["step"].max() + 1)
            ax.plot(steps, np.maximum(start - lr * steps, 0), color="grey", linestyle=":", linewidth=1.2,
                    label=f"θ0 − lr·t (lr = {format_strength(lr)})")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("weight θ")
        ax.set_title(scenario, fontsize="medium")
        if ax is not axes[0][-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.suptitle(title or "L2 inside Adam pulls a weight down by about lr per step")
    fig.tight_layout()
    return fig


# ==================================================== chapters 3-4 (helper A's section; append below)


# ==================================================== chapters 5-7 (helper B's section; append below)


# ==================================================== chapters 8-10 (helper C's section; append below)
