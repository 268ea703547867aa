"""The chapters' figures (matplotlib/seaborn): sparsity against regularization strength and
against error (paper Fig. 1, Table 1), BN-scale distributions over training (Fig. 2), feature
universality (Fig. 3), one weight under L2 vs weight decay (Fig. 4), layer-wise and pruning plots
(Tables 2, 7, 9, 10). Each function takes a frame from `report.frames`/`report.tables` and returns
the figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..data.datasets import load_dataset
from ..nets.sparsity import GAMMA_THRESHOLD
from ..runs.labels import (
    OPTIMIZER_NAMES,
    format_strength,
    regularizer_of,
    setting_label,
)
from ..study.seeds import Estimate, seed_frame
from .frames import snapshot_frame, universality_frame

__all__ = ["bn_distribution_evolution", "claim_title", "clutter_examples", "death_curves", "FAMILY_MAPS",
           "family_palette", "filter_norm_histogram",
           "first_seed_by_setting", "GAMMA_RULE", "layer_pruning", "layers_by_group_figure", "layerwise_sparsity",
           "macs_per_layer", "MEASURE_LABELS", "OPTIMIZER_COLORS", "removed_vs_error", "set_style",
           "sparsity_and_error", "sparsity_vs_batch", "sparsity_vs_error", "sparsity_vs_strength", "speedup",
           "threshold_sensitivity", "universality_by_group", "universality_histograms", "weight_trajectories",
           "with_regularizer"]


def set_style() -> None:
    """One look for the whole book: white grid, readable fonts, figures sized for the HTML page."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.figsize": (7.5, 4.2), "figure.dpi": 100, "savefig.bbox": "tight"})


# ------------------------------------------------------------------------------------ labels
# One colour per optimizer in every figure of the book.
OPTIMIZER_COLORS = dict(zip(OPTIMIZER_NAMES, sns.color_palette("deep", len(OPTIMIZER_NAMES))))


GAMMA_RULE = f"|γ| < {format_strength(GAMMA_THRESHOLD)}"  # "|γ| < 1e-3", the paper's inactivity rule
MEASURE_LABELS = {"sparsity_gamma": f"% features inactive by {GAMMA_RULE}",
                  "sparsity_act": "% features inactive by activation",
                  "percent_gamma": f"% features inactive by {GAMMA_RULE}",
                  "percent_act": "% features inactive by activation"}


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
        part = seed_frame(frame[frame["regularizer"] == regularizer], ["optimizer", "strength"], [measure])
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
    means = seed_frame(frame, ["optimizer", "regularizer", "strength"], [measure, "test_err"])
    shown = means.assign(optimizer=means["optimizer"].map(lambda o: OPTIMIZER_NAMES.get(o, o)))
    palette = {OPTIMIZER_NAMES.get(o, o): OPTIMIZER_COLORS.get(o, "grey") for o in frame["optimizer"].unique()}
    ax.errorbar(shown["test_err"], shown[measure], xerr=shown["test_err_std"], yerr=shown[f"{measure}_std"],
                fmt="none", ecolor="grey", elinewidth=0.8)
    sns.scatterplot(data=shown, x="test_err", y=measure, hue="optimizer", style="regularizer", s=80, ax=ax,
                    palette=palette)
    for k, row in enumerate(shown.sort_values("test_err").itertuples()):  # alternate sides: fewer overlaps
        ax.annotate(format_strength(row.strength), (row.test_err, getattr(row, measure)), fontsize=8,
                    xytext=(5, 4) if k % 2 == 0 else (5, -11), textcoords="offset points")
    top = (shown[measure] + shown[f"{measure}_std"].fillna(0)).max()
    ax.set_ylim(-3, min(103.0, max(10.0, 1.15 * top + 3)))
    ax.set_xlabel("test error (%)")
    ax.set_ylabel(MEASURE_LABELS.get(measure, measure))
    ax.set_title(title or "Sparsity against test error, per setting")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


# ------------------------------------------------------------------- Sec. 1: thresholds


FAMILY_MAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")


def family_palette(labels: list[str]) -> dict[str, tuple]:
    """label -> colour, one colour map per family (the label's first word, e.g. the optimizer), shades
    within it from light to dark in the order given: 'Adam L2 1e-4' and 'Adam L2 1e-3' are two blues."""
    families = list(dict.fromkeys(label.split()[0] for label in labels))
    palette = {}
    for family, name in zip(families, FAMILY_MAPS * (1 + len(families) // len(FAMILY_MAPS))):
        members = [label for label in labels if label.split()[0] == family]
        shades = sns.color_palette(name, n_colors=len(members) + 2)[2:]
        palette.update(zip(members, shades))
    return palette


def threshold_sensitivity(frame: pd.DataFrame, marked: float = GAMMA_THRESHOLD, title: str | None = None):
    """% inactive against the |gamma| threshold (log x) per run, with the book's threshold marked."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(data=frame, x="threshold", y="percent", hue="setting", marker="o", ax=ax,
                 palette=family_palette(list(dict.fromkeys(frame["setting"]))))
    ax.set_xscale("log")
    ax.axvline(marked, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"threshold used: {format_strength(marked)}", (marked, 0.97), xycoords=("data", "axes fraction"),
                xytext=(4, 0), textcoords="offset points", fontsize=8, va="top")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("threshold on |γ| (log scale)")
    ax.set_ylabel("% conv features with |γ| below threshold")
    ax.set_title(title or "% of features below each |γ| threshold")
    ax.legend(title="run", fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
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
    fig.suptitle(title or "% of features inactive per layer")
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
        styles = ["-", "--", "-.", (0, (1, 1))]  # curves that coincide stay visible through the dashes
        for k, (color, setting) in enumerate(zip(sns.color_palette(n_colors=len(settings)), settings)):
            rows = part[part["setting"] == setting]
            ax.plot(rows["step"], rows["theta"], color=color, linewidth=2.2 - 0.3 * (k % 4),
                    linestyle=styles[k % len(styles)], label=setting)
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
    fig.suptitle(title or "One weight under each optimizer and regularizer")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------ chapters 3-4


def first_seed_by_setting(records: list[dict]) -> dict[str, dict]:
    """One record per setting, the first seed met, keyed by `setting_label` (for figures that draw one
    run per setting, such as `bn_distribution_evolution` and `universality_histograms`)."""
    found: dict[str, dict] = {}
    for record in records:
        found.setdefault(setting_label(record["config"]), record)
    return found


def claim_title(text: str, verdict) -> str:
    """A neutral figure title followed by the verdict computed for it: 'text (claim 5 holds)'. Plain words,
    no emoji mark: matplotlib's default font has no glyph for them."""
    return f"{text} (claim {verdict.claim} {verdict.status})"


# ------------------------------------------------------------ chapters 5-7


def clutter_examples(chapter, levels, count: int = 8, title: str | None = None):
    """The first `count` synthetic test images at each clutter level (rows), at the size the chapter's
    networks see (Sec. 4.2's clean vs cluttered backgrounds). Returns the Figure."""
    config = chapter.config(dataset="synthetic")
    size = config.image_size or 32
    fig, axes = plt.subplots(len(levels), count, figsize=(count, 1.15 * len(levels)), squeeze=False)
    for row, level in zip(axes, levels):
        images = load_dataset("synthetic", split="test", image_size=size, subset=count, clutter=float(level),
                                num_classes=config.num_classes or 10)
        for ax, image in zip(row, images.images):
            ax.imshow(image.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"clutter {float(level):g}", rotation=0, ha="right", va="center")
    fig.suptitle(title or f"Synthetic test images per clutter level ({size}x{size} pixels)")
    return fig


def sparsity_and_error(groups, table: pd.DataFrame | None = None, xlabel: str = "setting",
                       title: str | None = None, ordered: bool = True):
    """Two panels per setting of `groups` ((label, records of its seeds), in order): % features with
    |γ| < 1e-3 (left) and test error in % (right), ours as the seed mean with ± one std, the paper's
    numbers (`table`'s '%γ paper' / 'err paper' columns, e.g. from `tables.trend_table`) as grey
    squares where it has them. `ordered`: join our points with a line (an ordered setting, such as the
    batch size). Returns the Figure."""
    labels = [label for label, _ in groups]
    x = np.arange(len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 1.3 * len(labels) + 4), 3.8))
    for ax, key, column, ylabel in ((axes[0], "sparsity_gamma", "%γ paper", f"% features with {GAMMA_RULE}"),
                                    (axes[1], "test_err", "err paper", "test error (%)")):
        found = [Estimate.of([r["final"][key] for r in records]) for _, records in groups]
        # A one-seed setting is drawn without a bar (spread 0), not with an assumed one.
        ax.errorbar(x, [e.mean for e in found], yerr=[e.spread(assumed=0.0) for e in found], marker="o",
                    capsize=3, linestyle="-" if ordered else "none", color="C0", label="ours (mean ± std over seeds)")
        if table is not None and column in table:
            paper = pd.to_numeric(table[column].reindex(labels), errors="coerce").to_numpy(dtype=float)
            if np.isfinite(paper).any():
                ax.scatter(x, paper, marker="s", color="grey", zorder=3, label="paper")
        ax.set_xticks(x, labels, rotation=20 if max(map(len, labels)) > 8 else 0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0, top=103 if key == "sparsity_gamma" else None)
    axes[0].legend(fontsize="small")
    fig.suptitle(title or "Sparsity and test error per setting")
    fig.tight_layout()
    return fig


def layers_by_group_figure(groups, title: str | None = None):
    """Grouped bars of % features with |γ| < 1e-3 per conv layer, one bar per (label, records) of
    `groups` (mean over seeds). Returns the Figure."""
    rows = [{"setting": label, "layer": layer["layer"], "percent": 100.0 * layer["inactive_gamma"] / layer["features"]}
            for label, records in groups for record in records for layer in record["final"]["layers"]]
    frame = pd.DataFrame(rows).groupby(["setting", "layer"], sort=False, as_index=False)["percent"].mean()
    return layerwise_sparsity(frame, value="percent", hue="setting", col=None,
                              title=title or "Layer-wise sparsity per setting")


def universality_by_group(groups, layers=("C4", "C5", "C6", "C7"), title: str | None = None):
    """Box plots of the universality (% of training images a feature fires on; Sec. 3) of the
    surviving (|γ| >= 1e-3) features of `layers`, one box per (label, records) of `groups`, all seeds
    pooled. Returns the Figure."""
    frame = universality_frame([(label, r) for label, records in groups for r in records], layers)
    frame = frame[~frame["dead"]]
    fig, ax = plt.subplots()
    sns.boxplot(data=frame, x="layer", y="universality", hue="setting", order=list(layers),
                hue_order=[label for label, _ in groups], fliersize=2, ax=ax)
    ax.set_xlabel("conv layer (surviving features only)")
    ax.set_ylabel("universality (% of training images)")
    ax.set_ylim(-3, 103)
    ax.set_title(title or "Universality of the surviving late-layer features")
    ax.legend(title=None, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def sparsity_vs_batch(points: pd.DataFrame, title: str | None = None):
    """% features with |γ| < 1e-3 against mini-batch size (log x), one line per source (paper or ours,
    per dataset); several runs at one batch are drawn as their mean. `points`: `tables.batch_points`."""
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    sns.lineplot(data=points, x="batch", y="sparsity", hue="source", style="source", markers=True, dashes=False,
                 errorbar=None, ax=ax)
    ax.set_xscale("log")
    ticks = sorted(points["batch"].unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-3, 103)
    ax.set_xlabel("mini-batch size (images, log scale)")
    ax.set_ylabel(MEASURE_LABELS["sparsity_gamma"])
    ax.set_title(title or "Sparsity against mini-batch size (Adam), per dataset")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def death_curves(curves: pd.DataFrame, title: str | None = None):
    """% dead features (|γ| < 1e-3) against the optimizer step, one panel per layer group (all, then
    `horizon.GROUPS`), one colour per setting, one line style per profile (solid for the longest, then
    dashed, dotted, dash-dotted);
    the line is the mean over seeds, the band their range (min to max). `curves`: `horizon.death_curve_frame`."""
    groups = [g for g in ("all", "early", "middle", "late") if g in set(curves["group"])]
    settings = list(dict.fromkeys(curves["setting"]))
    colours = dict(zip(settings, sns.color_palette("deep", len(settings))))
    profiles = sorted(set(curves["profile"]), key=lambda name: -curves.loc[curves.profile == name, "step"].max())
    fig, axes = plt.subplots(1, len(groups), figsize=(3.1 * len(groups), 3.6), sharey=True, squeeze=False)
    for ax, group in zip(axes[0], groups):
        for (setting, profile), part in curves[curves.group == group].groupby(["setting", "profile"], sort=False):
            by_step = part.groupby("step")["dead %"]
            steps = by_step.mean().index / 1000
            style = ("-", "--", ":", "-.")[profiles.index(profile) % 4]
            ax.plot(steps, by_step.mean(), style, color=colours[setting], label=f"{setting} ({profile})")
            if part["seed"].nunique() > 1:
                ax.fill_between(steps, by_step.min(), by_step.max(), color=colours[setting], alpha=0.2, linewidth=0)
        ax.set_title(f"{group} layers" if group != "all" else "all conv layers", fontsize="medium")
        ax.set_xlabel("optimizer step (thousands)")
    axes[0][0].set_ylabel("% features with |γ| < 1e-3")
    top = curves["dead %"].max() if len(curves) else 1.0
    axes[0][0].set_ylim(-0.02 * max(top, 1.0), 1.08 * max(top, 1.0))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2)
    fig.suptitle(title or "When features die: dead share against the optimizer step")
    fig.tight_layout()
    return fig


def macs_per_layer(layers: pd.DataFrame, title: str | None = None):
    """Multiply-accumulates per image of each conv layer, dense vs pruned; `layers`: `tables.pruned_layers`."""
    rows = layers[[name.startswith("C") for name in layers.index]]
    frame = rows.reset_index().melt(id_vars="layer", value_vars=["MACs", "MACs kept"], var_name="network",
                                    value_name="macs")
    frame["network"] = frame["network"].map({"MACs": "dense", "MACs kept": "pruned"})
    fig, ax = plt.subplots()
    sns.barplot(data=frame, x="layer", y="macs", hue="network", ax=ax)
    ax.set_xlabel("conv layer")
    ax.set_ylabel("multiply-accumulates per image")
    ax.set_title(title or "MACs per layer, dense and with dead features removed")
    return fig


def layer_pruning(frame: pd.DataFrame, title: str | None = None):
    """% of each conv layer's features removed, one line per setting, solid for ours and dashed for the
    paper; several records of a setting are drawn as their mean. `frame`: `tables.pruned_layer_frame`."""
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    order = sorted(frame["layer"].unique(), key=lambda name: int(name[1:]))
    shown = frame.assign(position=frame["layer"].map({name: i for i, name in enumerate(order)}))
    sns.lineplot(data=shown, x="position", y="removed", hue="setting", style="source", markers=True,
                 errorbar=None, ax=ax, style_order=[s for s in ("ours", "paper") if s in set(frame["source"])])
    ax.set_xticks(range(len(order)), order)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("conv layer")
    ax.set_ylabel("% of the layer's features removed")
    ax.set_title(title or "Features removed per layer")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def speedup(latencies: pd.DataFrame, title: str | None = None):
    """Measured speed-up (dense time / pruned time) next to the MAC cut (dense MACs / pruned MACs) per
    network and batch; `latencies`: `costs.latency_table`. The grey line marks no change."""
    frame = latencies.assign(case=[f"{m}, batch {b}" for m, b in zip(latencies["model"], latencies["batch"])])
    long = frame.melt(id_vars="case", value_vars=["speed-up", "MAC cut"], var_name="ratio", value_name="factor")
    fig, ax = plt.subplots()
    sns.barplot(data=long, y="case", x="factor", hue="ratio", ax=ax, orient="h")
    ax.axvline(1, color="grey", linewidth=1)
    ax.set_xlabel("factor (dense / pruned)")
    ax.set_ylabel("")
    ax.set_title(title or "Measured speed-up and MAC reduction of the pruned networks")
    return fig


def removed_vs_error(points: pd.DataFrame, title: str | None = None):
    """Test error after pruning (and any fine-tuning) against % conv features removed, one marker per
    pruned record, colour = setting; `points`: `tables.summary_points`."""
    fig, ax = plt.subplots()
    sns.scatterplot(data=points, x="removed", y="error", hue="setting", style="setting", s=80, ax=ax)
    ax.set_xlim(-3, 103)
    ax.set_xlabel("% of conv features removed")
    ax.set_ylabel("test error after pruning (%)")
    ax.set_title(title or "Features removed and test error, per pruned network")
    ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


def filter_norm_histogram(frame: pd.DataFrame, threshold: float | None = None, title: str | None = None):
    """Histogram of log10(filter norm / largest in its layer) per run (% of each run's filters), with the
    pruning threshold as a dashed line; `frame`: `tables.filter_norm_frame`."""
    fig, ax = plt.subplots()
    sns.histplot(data=frame, x="log10 norm", hue="run", element="step", bins=40, common_norm=False,
                 stat="percent", ax=ax)
    if threshold is not None:
        ax.axvline(np.log10(threshold), color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("log10 (filter norm / largest filter norm in its layer)")
    ax.set_ylabel("% of the run's filters")
    ax.set_title(title or "Relative conv filter norms per run")
    return fig
