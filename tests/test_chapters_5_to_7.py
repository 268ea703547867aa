"""Tests of the library behind chapters 5-7 (task difficulty, batch size and width, supplement):
evidence's variant lists, the paper-vs-ours tables and the figures, on fake records."""
import math

import matplotlib
import pytest

from sparsity_lib import Chapter
from sparsity_lib.report import figures, markdown, tables
from sparsity_lib.runs.execution import Execution
from sparsity_lib.study import judge, plans

matplotlib.use("Agg")
LAYERS = [f"C{i}" for i in range(1, 8)]


def fake(config: dict, seed: int, sparsity: float, err: float, dead: int = 3) -> dict:
    """A record with every field the chapter-5-7 tables and figures read."""
    layers = [{"layer": n, "features": 10, "inactive_gamma": dead, "inactive_act": 0} for n in LAYERS]
    return {"config": {"dataset": "synthetic", "clutter": 0.0, "l2": 1e-3, "wd": 0.0, "optimizer": "adam",
                       "batch_size": 40, "first_width": 16, "width": 0.0625, **config, "seed": seed},
            "final": {"sparsity_gamma": sparsity, "test_err": err, "layers": layers},
            "provenance": {"steps": 100, "train_images": 1000},
            "bn": {n: {"gamma": [0.0] * dead + [1.0] * (10 - dead)} for n in LAYERS},
            "universality": {n: [40.0 + i for i in range(10)] for n in LAYERS}}


def group(label, config, values):
    return (label, [fake(config, seed, s, e) for seed, (s, e) in enumerate(values)])


@pytest.fixture
def chapter(tmp_path):
    return Chapter(profile="smoke", dataset="synthetic", execution=Execution(store=str(tmp_path),
                                                                             data_root=str(tmp_path)))


def test_variant_lists_default_to_the_books_settings_and_take_overrides(chapter):
    assert [f["clutter"] for _, f in plans.difficulty_variants(chapter)] == list(plans.CLUTTER)
    assert [label for label, _ in plans.difficulty_variants(chapter, [0, 0.25])] == ["clutter 0", "clutter 0.25"]
    assert [f["batch_size"] for _, f in plans.batch_variants(chapter, [20, 320])] == [20, 320]
    assert [label for label, _ in plans.width_variants(chapter, ["64-1x"])] == ["64-1x"]
    leaky = plans.variant_fields(chapter)["leaky_relu"]
    assert leaky == {"optimizer": "adam", "l2": 1e-3, "activation": "leaky_relu"}
    assert plans.variant_fields(chapter, 0.1, 0.01)["low_gamma_lr"]["gamma_lr_scale"] == 0.01
    labels = [label for label, _ in plans.supplement_variants(chapter, negative_slope=0.1)]
    assert labels == ["Adam", "AMSGrad", "Leaky ReLU 0.1", "γ lr ×0.1"]


def test_supplement_optimizers_reuse_the_claim_runs_and_extras_are_few(chapter):
    found = dict(plans.supplement_optimizer_variants(chapter))
    assert found["Adam"] == plans.variant_fields(chapter)["adam"]
    assert found["RMSProp"] == {"optimizer": "rmsprop", "l2": plans.TABLE1_L2["rmsprop"][0]}
    assert plans.beta_extra_variants(chapter) == [{"optimizer": "adam", "l2": 1e-3, "bn_bias_init": 1.0},
                                                         {"optimizer": "adam", "l2": 1e-3, "beta_lr_scale": 0.1}]
    assert plans.first_seed(Chapter(profile="cpu", dataset="synthetic")).seed_list == [0]


def test_labelled_runs_asks_once_and_splits_by_variant():
    calls = []

    def runs(variants):
        calls.append(variants)
        return [{"v": i, "seed": s} for i, _ in enumerate(variants) for s in range(3)]
    found = plans.labelled_runs(runs, [("a", {"x": 1}), ("b", {"x": 2})])
    assert len(calls) == 1 and [label for label, _ in found] == ["a", "b"]
    assert [r["v"] for r in found[1][1]] == [1, 1, 1]


def test_absent_datasets_say_why_and_real_variants_keep_the_present_ones(chapter):
    reasons = plans.absent_datasets(chapter)
    assert set(reasons) == {"cifar10", "cifar100", "tinyimagenet"} and "CUDA" in reasons["tinyimagenet"]
    assert "not found" in reasons["cifar10"]
    assert plans.real_dataset_variants(chapter) == []
    assert "cifar10" in markdown.absent_markdown(reasons, 5) and "--chapter 5" in markdown.absent_markdown(reasons, 5)


def test_difficulty_table_sets_the_clean_and_cluttered_pair_and_table1_beside_ours():
    groups = [group("clutter 0", {"clutter": 0.0}, [(30, 20), (32, 22)]),
              group("clutter 0.5", {"clutter": 0.5}, [(20, 30)]),
              group("cifar100", {"dataset": "cifar100"}, [(10, 50)])]
    table = tables.difficulty_table(groups)
    assert list(table.columns) == ["%γ paper", "%γ ours", "err paper", "err ours", "seeds"]
    assert table.loc["clutter 0", "%γ paper"] == 70.0 and math.isnan(table.loc["clutter 0.5", "%γ paper"])
    assert table.loc["clutter 0", "%γ ours"] == "31.0±1.4" and table.loc["clutter 0", "seeds"] == 2
    assert table.loc["cifar100", "%γ paper"] == 76.0 and table.loc["cifar100", "err paper"] == 39.0  # Table 1, L2 1e-3


def test_table3_matches_batch_and_l2_and_reports_epochs():
    groups = [group(f"batch {b}", {"batch_size": b}, [(10, 20)]) for b in (20, 160)]
    table = tables.table3(groups, "synthetic")
    assert table.loc["batch 20", "%γ paper"] == 82.0  # Table 3, CIFAR-10, L2 1e-3
    assert math.isnan(table.loc["batch 160", "%γ paper"])  # the paper has no batch 160 at L2 1e-3
    assert table.loc["batch 160", "epochs"] == 16.0 and len(table.columns) <= 7


def test_table6_and_supplement_tables_use_the_papers_rows():
    widths = tables.table6([group("32-0.25x", {"first_width": 16, "width": 0.0625}, [(5, 30)])], "cifar100")
    assert widths.loc["32-0.25x", "%γ paper"] == 0.0 and widths.loc["32-0.25x", "trained as"] == "16-0.0625x"
    optimizers = tables.supplement_optimizer_table([group("AMSGrad", {"optimizer": "amsgrad"}, [(5, 30)]),
                                                    group("Adam", {}, [(9, 30)])], "synthetic")
    assert optimizers.loc["AMSGrad", "paper L2"] == "1e-4" and optimizers.loc["AMSGrad", "%γ paper"] == 47.0
    assert optimizers.loc["Adam", "paper L2"] == "1e-3" and optimizers.loc["Adam", "%γ paper"] == 83.0
    variants = tables.supplement_variant_table([group("γ lr ×0.1", {}, [(5, 30)]), group("other", {}, [(5, 30)])])
    assert variants.loc["γ lr ×0.1", "%γ paper"] == 33.0 and math.isnan(variants.loc["other", "%γ paper"])
    paper_layers = tables.supplement_layers_paper()
    assert list(paper_layers.index) == LAYERS + ["total", "err"] and paper_layers.loc["C6", "AMSGrad"] == 25.0
    assert len(paper_layers.columns) <= 6


def test_layers_by_group_has_layers_as_rows_and_one_column_per_group():
    table = tables.layers_by_group([group("a", {}, [(30, 20), (34, 24)]), group("b", {}, [(10, 40)])])
    assert list(table.columns) == ["a", "b"] and list(table.index) == LAYERS + ["total", "err"]
    assert table.loc["C1", "a"] == 30.0 and table.loc["total", "a"] == 32.0 and table.loc["err", "b"] == 40.0


def test_figures_draw_every_group(chapter):
    groups = [group("batch 20", {}, [(30, 20), (32, 22)]), group("batch 160", {}, [(10, 40)])]
    paper = tables.trend_table(groups, {"batch 20": 70.0})
    fig = figures.sparsity_and_error(groups, paper, xlabel="batch")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["batch 20", "batch 160"]
    assert figures.layers_by_group_figure(groups).axes and figures.universality_by_group(groups).axes
    assert len(figures.clutter_examples(chapter, [0.0, 1.0], count=3).axes) == 6
    matplotlib.pyplot.close("all")


def test_class_count_axis_defaults_to_the_books_counts_and_is_judged_by_claim_4s_criterion(chapter):
    tasks = plans.class_count_variants(chapter)
    assert [label for label, _ in tasks] == [f"{n} classes" for n in plans.CLASS_COUNTS]
    assert tasks[-1][1] == {"optimizer": "adam", "l2": 1e-3, "num_classes": plans.CLASS_COUNTS[-1]}
    assert all(fields in plans.all_variants(chapter) or fields["num_classes"] == 20 for _, fields in tasks)
    by_count = {20: [(40, 20), (41, 21), (39, 19)], 36: [(25, 30), (26, 31), (24, 29)]}

    def runs(variants):
        return [fake(fields, seed, s, e) for fields in variants
                for seed, (s, e) in enumerate(by_count[fields["num_classes"]])]
    assert judge.class_count_verdict(chapter, runs).status == "holds"
    by_count[36] = [(45, 30), (46, 31), (44, 29)]  # harder, but sparser: the claim's failing case
    assert judge.class_count_verdict(chapter, runs).status == "fails"


def test_selectivity_by_group_gives_errors_dead_and_living_universality_per_task():
    groups = [group("easy", {}, [(30, 20), (34, 24)]), group("hard", {}, [(10, 40)])]
    for _, records in groups:
        for record in records:
            record["final"]["train_err"] = record["final"]["test_err"] - 1.0
    table = tables.selectivity_by_group(groups, layers=("C6", "C7"))
    assert list(table.columns) == ["easy", "hard"]
    assert list(table.index) == ["test error", "train error", "% dead C6", "% dead C7", "universality C6",
                                 "universality C7"]
    assert table.loc["test error", "easy"] == "22.0±2.8" and table.loc["train error", "hard"] == "39.0"
    # 3 of 10 features dead (|γ| = 0): the living ones have universality 43..49, mean 46
    assert table.loc["% dead C6", "hard"] == "30.0" and table.loc["universality C7", "easy"] == "46.0±0.0"
