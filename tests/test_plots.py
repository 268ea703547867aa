import matplotlib

matplotlib.use("Agg")  # headless: figures are inspected, never shown

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sparsity_lib.report import figures, frames, markdown, tables, widgets
from sparsity_lib.runs import labels

LAYERS = [f"C{i}" for i in range(1, 8)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fake_record(optimizer="adam", l2=1e-3, wd=0.0, dead_per_layer=2, features=8, epochs=(0, 5, 10)):
    """A record shaped like train()'s: the first `dead_per_layer` gammas of every layer are 0."""
    rng = np.random.default_rng(0)
    gamma = [0.0] * dead_per_layer + list(rng.uniform(0.5, 1.5, features - dead_per_layer))
    bn = {layer: {"gamma": gamma, "beta": list(rng.normal(-0.1, 0.1, features))} for layer in LAYERS}
    return {
        "config": {"optimizer": optimizer, "l2": l2, "wd": wd},
        "bn": bn,
        "snapshots": {str(e): {layer: bn[layer] for layer in ("C5", "C6", "C7")} for e in epochs},
        "universality": {layer: [0.0] * dead_per_layer + [50.0] * (features - dead_per_layer) for layer in LAYERS},
    }


def test_paper_vs_ours_aligns_rows_and_keeps_missing_ones_as_nan():
    paper = pd.DataFrame({"opt": ["adam", "sgd"], "err": [10.5, 11.8], "sp": [70.0, 0.0]})
    ours = pd.DataFrame({"opt": ["sgd", "adagrad"], "err": [20.0, 30.0], "sp": [5.0, 9.0]})
    table = tables.paper_vs_ours(paper, ours, on=["opt"], columns=["sp", "err"])
    assert list(table.columns) == [("sp", "paper"), ("sp", "ours"), ("err", "paper"), ("err", "ours")]
    assert table.loc["sgd", ("err", "paper")] == 11.8 and table.loc["sgd", ("err", "ours")] == 20.0
    assert np.isnan(table.loc["adam", ("sp", "ours")])      # in the paper only
    assert np.isnan(table.loc["adagrad", ("sp", "paper")])  # ours only
    assert "profile cpu" in tables.styled(table, "ours: profile cpu").to_html()


def test_labels_follow_the_papers_notation():
    assert [labels.format_strength(v) for v in (0, 1e-3, 2e-4, 0.01)] == ["0", "1e-3", "2e-4", "1e-2"]
    assert labels.setting_label({"optimizer": "adam", "l2": 0.0, "wd": 1e-3}) == "Adam WD 1e-3"
    assert labels.setting_label({"optimizer": "sgd", "l2": 2e-3, "wd": 0.0}) == "SGD L2 2e-3"
    frame = figures.with_regularizer(pd.DataFrame({"l2": [1e-3, 0.0, 0.0], "wd": [0.0, 1e-4, 0.0]}))
    assert list(frame["regularizer"]) == ["L2", "WD", "L2"] and list(frame["strength"]) == [1e-3, 1e-4, 0.0]


def strength_frame():
    rows = [("adam", "L2", 0.0, 3), ("adam", "L2", 1e-4, 40), ("adam", "L2", 1e-3, 80), ("sgd", "L2", 1e-3, 20),
            ("sgd", "L2", 2e-3, 50), ("adam", "WD", 1e-4, 30), ("adam", "WD", 1e-3, 60)]
    frame = pd.DataFrame(rows, columns=["optimizer", "regularizer", "strength", "sparsity_gamma"])
    return frame.assign(test_err=[10, 11, 13, 20, 30, 11, 25])


def test_sparsity_vs_strength_draws_one_line_per_optimizer_and_a_zero_tick():
    fig = figures.sparsity_vs_strength(strength_frame(), title="finding")
    l2_ax, wd_ax = fig.axes
    assert len(l2_ax.get_lines()) == 2 and len(wd_ax.get_lines()) == 1
    assert l2_ax.get_xscale() == "log"
    labels = [tick.get_text() for tick in l2_ax.get_xticklabels()]
    assert labels[0] == "0" and "1e-3" in labels and "2e-3" in labels
    adam = next(bars for bars in l2_ax.containers if bars.get_label() == "Adam").lines[0]
    assert list(adam.get_ydata()) == [3, 40, 80] and adam.get_xdata()[0] == pytest.approx(1e-5)
    assert fig._suptitle.get_text() == "finding"
    assert "λ" in l2_ax.get_xlabel() and "%" in l2_ax.get_ylabel()
    with pytest.raises(ValueError, match="no L2 or WD"):
        figures.sparsity_vs_strength(strength_frame().assign(regularizer="none"))


def test_seeds_of_a_setting_are_drawn_as_mean_with_a_std_bar():
    two_seeds = pd.concat([strength_frame(), strength_frame().assign(sparsity_gamma=lambda f: f.sparsity_gamma + 2)])
    l2_ax = figures.sparsity_vs_strength(two_seeds).axes[0]
    adam = next(bars for bars in l2_ax.containers if bars.get_label() == "Adam")
    assert list(adam.lines[0].get_ydata()) == [4, 41, 81]
    bar = adam.lines[2][0].get_segments()[0]  # the +-1 std bar of lambda = 0: std of (3, 5) is sqrt(2)
    assert bar[1][1] - bar[0][1] == pytest.approx(2 * 2 ** 0.5)
    ax = figures.sparsity_vs_error(two_seeds).axes[0]
    points = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    assert sum(len(c.get_offsets()) for c in points) == 7  # one point per setting, not per run


def test_sparsity_vs_error_plots_and_labels_every_run():
    fig = figures.sparsity_vs_error(strength_frame())
    ax = fig.axes[0]
    points = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    assert sum(len(c.get_offsets()) for c in points) == 7
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0", "1e-4", "1e-3", "1e-3", "2e-3", "1e-4", "1e-3"])
    assert ax.get_xlabel() == "test error (%)" and ax.get_title()


def test_gamma_threshold_frame_counts_small_gammas():
    records = {"a": fake_record(dead_per_layer=2), "b": fake_record(dead_per_layer=4)}
    frame = frames.gamma_threshold_frame(records, [1e-4, 1e-3, 2.0])
    a = frame[frame.setting == "a"].set_index("threshold")["percent"]
    assert a[1e-4] == pytest.approx(25.0) and a[2.0] == pytest.approx(100.0)
    assert frame[frame.setting == "b"].set_index("threshold")["percent"][1e-3] == pytest.approx(50.0)
    fig = figures.threshold_sensitivity(frame)
    assert len([line for line in fig.axes[0].get_lines() if line.get_label() in ("a", "b")]) == 2


def test_layerwise_sparsity_has_a_bar_per_layer_and_setting_in_each_panel():
    rows = [{"source": source, "setting": setting, "layer": layer, "percent": 10.0 * i}
            for source in ("paper", "ours") for setting in ("Adam L2 1e-3", "SGD L2 1e-3")
            for i, layer in enumerate(LAYERS)]
    fig = figures.layerwise_sparsity(pd.DataFrame(rows).iloc[::-1])  # layer order must not depend on row order
    assert [ax.get_title() for ax in fig.axes] == ["ours", "paper"]
    for ax in fig.axes:
        assert [len(container) for container in ax.containers] == [7, 7]
        assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS
    assert fig.axes[0].get_ylabel().startswith("%")


def test_bn_snapshots_become_one_row_of_panels_per_run():
    frame = frames.snapshot_frame(fake_record(), "C6")
    assert sorted(frame.epoch.unique()) == [0, 5, 10] and len(frame) == 3 * 2 * 8
    fig = figures.bn_distribution_evolution({"x": fake_record(), "y": fake_record(optimizer="sgd")}, "C6")
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "x: β"
    with pytest.raises(ValueError, match="layer='C2'"):
        frames.snapshot_frame(fake_record(), "C2")


def test_universality_histograms_one_panel_per_layer():
    records = {"Adam": fake_record(dead_per_layer=6), "SGD": fake_record(dead_per_layer=1)}
    frame = frames.universality_frame(records, ["C6"])
    assert (frame.groupby("setting").universality.apply(lambda v: (v == 0).sum())).to_dict() == {"Adam": 6, "SGD": 1}
    # A feature with gamma 0 but a constant positive output looks 100% universal; it is dead.
    constant = fake_record(dead_per_layer=2)
    constant["universality"]["C6"][:2] = [100.0, 100.0]
    marked = frames.universality_frame({"x": constant}, ["C6"])
    assert marked.dead.sum() == 2 and (marked.universality[marked.dead] == 0).all()
    assert (frames.universality_frame({"x": constant}, ["C6"], gamma_threshold=None).universality == 100).sum() == 2
    fig = figures.universality_histograms(records, ["C5", "C6"])
    assert [ax.get_title() for ax in fig.axes] == ["C5", "C6"]
    wrapped = figures.universality_histograms(records, LAYERS, per_row=4)
    assert len(wrapped.axes) == 8 and [ax.get_visible() for ax in wrapped.axes].count(True) == 7
    with pytest.raises(ValueError, match="C9"):
        figures.universality_histograms(records, ["C9"])


def test_weight_trajectories_show_adam_l2_losing_about_lr_per_step():
    settings = {"Adam+L2": dict(optimizer="adam", l2=1e-4), "Adam+WD": dict(optimizer="adam", wd=1e-4)}
    frame = frames.trajectory_frame(settings, {"zero": {}, "rare": dict(grad_every=50, grad_value=-1e-2)}, steps=200)
    assert len(frame) == 2 * 2 * 201
    adam = frame[(frame.scenario == "zero") & (frame.setting == "Adam+L2")].theta.to_numpy()
    assert (adam[0] - adam[100]) / 100 == pytest.approx(1e-3, rel=0.1)
    wd = frame[(frame.scenario == "zero") & (frame.setting == "Adam+WD")].theta.to_numpy()
    assert wd[100] == pytest.approx((1 - 1e-4) ** 100)
    fig = figures.weight_trajectories(frame, lr=1e-3)
    assert [ax.get_title() for ax in fig.axes] == ["zero", "rare"]
    assert [line.get_label() for line in fig.axes[0].get_lines()][:3] == ["Adam+L2", "Adam+WD", "θ0 − lr·t (lr = 1e-3)"]


def test_explorer_figure_and_widget():
    settings = widgets.explorer_settings("sgd", strength=1e-3)
    assert settings == {"SGD + L2 1e-3": dict(optimizer="sgd", lr=0.1, l2=1e-3),
                        "SGD + WD 1e-3": dict(optimizer="sgd", lr=0.1, wd=1e-3)}
    with pytest.raises(ValueError, match="optimizer='adamw'"):
        widgets.explorer_settings("adamw")
    fig = widgets.explorer_figure("adam", strength=1e-4, grad_every=100, steps=150)
    assert {line.get_label() for line in fig.axes[0].get_lines()} >= {"Adam + L2 1e-4", "Adam + WD 1e-4"}
    assert "every 100 steps" in fig.axes[0].get_title()
    box = widgets.weight_explorer(steps=20)
    assert box is not None and len(box.children) == 3


def test_verdict_markdown_states_mark_claim_reason_and_numbers():
    from sparsity_lib.study.claims import CLAIMS, FAILS, HOLDS, Verdict
    text = markdown.verdict_markdown(Verdict(2, FAILS, "adagrad not sparser", {"adagrad": "0.0 vs 7.5"}), "profile cpu")
    assert text.startswith("**Claim 2: ❌ fails** (profile cpu)")
    assert CLAIMS[2] in text and "adagrad not sparser" in text and "- adagrad: 0.0 vs 7.5" in text
    assert "- rate: 0.842" in markdown.verdict_markdown(Verdict(7, HOLDS, "x", {"rate": 0.842072831145556}))
    summary = markdown.summary_markdown({1: Verdict(1, HOLDS, "x"), 2: Verdict(2, FAILS, "y")})
    assert summary.splitlines() == [f"- Claim 1 (✅ holds): {CLAIMS[1]}", f"- Claim 2 (❌ fails): {CLAIMS[2]}"]


def test_verdicts_and_the_scorecard_show_their_criterion_and_a_miss_below_the_floor():
    from sparsity_lib.study.claims import BELOW_FLOOR, FAILS, HOLDS, Verdict, criterion, scorecard
    text = markdown.verdict_markdown(Verdict(6, BELOW_FLOOR, "universality 3.4 points lower"))
    assert text.startswith("**Claim 6: 🟡 below the floor**") and f"*Criterion:* {criterion(6)}" in text
    card = scorecard({1: Verdict(1, HOLDS, "a"), 6: Verdict(6, BELOW_FLOOR, "b"), 8: Verdict(8, FAILS, "c")})
    card["chapter"] = 2
    table = markdown.scorecard_markdown(card, {})
    assert ":::{dropdown} The criterion of each verdict" in table and f"7. {criterion(7)}" in table
    failing = markdown.failing_claims_markdown(card, {}).splitlines()
    assert [line.split(",")[0] for line in failing] == ["- claim 6", "- claim 8"]
    assert "below the criterion's floor" in failing[0] and "floor" not in failing[1]


def test_styled_escapes_labels_so_a_less_than_sign_shows():
    frame = pd.DataFrame({"err": [1.234]}, index=["|γ| < 0.001 zeroed"])
    html = tables.styled(frame, "caption").to_html()
    assert "|γ| &lt; 0.001 zeroed" in html and "1.2" in html


def test_profile_verdicts_markdown_has_a_verdict_column_per_profile():
    import pandas as pd

    from sparsity_lib.report.markdown import VERDICT_MARKS, profile_verdicts_markdown
    frame = pd.DataFrame([{"claim": 1, "statement": "L2 makes filters die", "chapter": 2, "cpu": "holds",
                           "why (cpu)": "x", "long": "not tested", "why (long)": "y"}])
    text = profile_verdicts_markdown(frame, {2: "02_primary_findings.ipynb"}, ("cpu", "long"))
    head, rule, row = text.splitlines()
    assert head == "| # | claim | `cpu` (14,000 iterations) | `long` (56,000 iterations) | chapter |"
    assert rule.count("|") == head.count("|")
    assert row == (f"| 1 | L2 makes filters die | {VERDICT_MARKS['holds']} | {VERDICT_MARKS['not tested']} | "
                   "[2](02_primary_findings.ipynb) |")


def test_net_label_names_the_size_a_net_is_trained_at():
    from sparsity_lib.runs.config import make_config
    from sparsity_lib.runs.labels import net_label
    assert net_label(make_config("cpu", model="vgg16", width=0.5, image_size=32)) == "VGG-16 ×0.125"
    assert net_label(make_config("cpu")) == "BasicNet 32-0.25x, 16x16"
    assert net_label({"model": "basicnet", "first_width": 64, "width": 1.0, "image_size": 32}) == "BasicNet 64-1x"
