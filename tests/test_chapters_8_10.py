"""Library functions of chapters 8-10 (TinyImageNet/ImageNet tables, pruning tables, the l1/l2 pseudo-norm)."""
from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from sparsity_lib import BasicNet, Chapter, conv_bn_layers
from sparsity_lib.nets import regularizers
from sparsity_lib.pruning.costs import latency_table
from sparsity_lib.pruning.surgery import prune_inactive
from sparsity_lib.report import figures, markdown, tables
from sparsity_lib.runs.execution import Execution
from sparsity_lib.study import judge, plans
from sparsity_lib.study.claims import NOT_TESTED

matplotlib.use("Agg")


def record(optimizer="adam", batch=40, sparsity=50.0, err=40.0, seed=0, dataset="tinyimagenet", inactive=3):
    config = {"optimizer": optimizer, "batch_size": batch, "seed": seed, "dataset": dataset, "l2": 1e-3, "wd": 0.0}
    layers = [{"layer": "C1", "inactive_gamma": inactive, "features": 8}]
    return {"config": config, "final": {"sparsity_gamma": sparsity, "test_err": err, "layers": layers}}


def pruned_record(kept=60.0, params=30.0, before=10.0, after=10.1, tuned=10.0, seed=0):
    layers = [{"layer": f"C{i}", "features_before": 10, "features_after": 10 - i, "params_before": 100,
               "params_after": 50, "macs_before": 1000, "macs_after": 400} for i in range(1, 14)]
    layers.append({"layer": "head", "features_before": 0, "features_after": 0, "params_before": 10,
                   "params_after": 10, "macs_before": 10, "macs_after": 10})
    final = {"features_kept_pct": kept, "params_kept_pct": params, "test_err_before": before,
             "test_err_after": after, "test_err": tuned}
    return {"config": {"optimizer": "adam", "l2": 1e-3, "wd": 0.0, "seed": seed, "lr_drops": [1.0]},
            "final": final, "layers": layers}


@pytest.fixture
def chapter(tmp_path):
    return Chapter(profile="smoke", execution=Execution(store=str(tmp_path / "store"), data_root=str(tmp_path)))


def test_extra_variants_are_few_and_outside_all_variants(chapter):
    extras = plans.vgg_extra_variants(chapter) + plans.l1l2_extra_variants(chapter)
    assert len(extras) == 6
    judged = {repr(sorted(chapter.config(**f).to_dict().items())) for f in plans.all_variants(chapter)}
    assert not any(repr(sorted(chapter.config(**f).to_dict().items())) in judged for f in extras)
    vgg19 = [f for f in extras if f.get("model") == "vgg19"]
    assert all(f["width"] == chapter.settings.vgg["width"] for f in vgg19) and len(vgg19) == 2


def test_slimming_baseline_runs_at_the_profiles_sgd_learning_rate(chapter, tmp_path):
    assert "lr" not in plans.slimming_fields(chapter)  # smoke: SGD's default, as at `paper`
    cpu = Chapter(profile="cpu", execution=Execution(store=str(tmp_path / "store"), data_root=str(tmp_path)))
    fields = plans.slimming_fields(cpu)
    assert fields["lr"] == cpu.settings.slimming_lr == 0.01 and fields["model"] == "vgg19"
    assert {k: fields[k] for k in plans.SLIMMING} == plans.SLIMMING
    assert fields in plans.vgg_extra_variants(cpu)


def test_first_seed_keeps_everything_but_the_seeds(chapter):
    one = plans.first_seed(chapter)
    assert one.seed_list == [0] and one.profile == chapter.profile and one.execution == chapter.execution


def test_tinyimagenet_and_imagenet_variants_use_the_profile_l2(chapter):
    tiny = plans.tinyimagenet_variants(chapter)
    assert [(f["optimizer"], f["batch_size"]) for f in tiny] == [("sgd", 40), ("adam", 20), ("adam", 40), ("adam", 120)]
    assert {f["l2"] for f in tiny} == {chapter.settings.section5_l2}
    vgg = plans.imagenet_variants(chapter, "vgg11", l2=1e-4)
    assert [f["batch_size"] for f in vgg] == [60, 90] and vgg[0]["model"] == "vgg11" and vgg[0]["l2"] == 1e-4
    with pytest.raises(ValueError, match="model="):
        plans.imagenet_variants(chapter, "resnet")


def test_dataset_missing_names_parameters_not_paths(tmp_path):
    tiny = Chapter(profile="smoke", dataset="tinyimagenet", execution=Execution(device="cpu", store=str(tmp_path)))
    reasons = plans.dataset_missing(tiny, None)
    assert len(reasons) == 2 and "`tinyimagenet_root` is None" in reasons[1]
    reasons = plans.dataset_missing(tiny, str(tmp_path / "nowhere"), require_gpu=False)
    assert len(reasons) == 1 and str(tmp_path) not in reasons[0]


def test_claims_chapter8_not_tested_without_runs_and_judges_batches():
    verdicts = judge.large_dataset_verdicts([], [])
    assert verdicts[8].status == NOT_TESTED and verdicts[4].status == NOT_TESTED
    tiny = [record(batch=20, sparsity=60), record(batch=40, sparsity=45), record(batch=120, sparsity=20)]
    verdicts = judge.large_dataset_verdicts(tiny, [record(batch=64, sparsity=0.2, err=60, dataset="imagenet")])
    assert "batch size: holds" in verdicts[8].reason
    assert verdicts[4].status == "holds"


def test_table4_puts_paper_rows_first_and_marks_missing_runs():
    table = tables.table4([record(batch=20, sparsity=60.0), record(batch=20, sparsity=62.0, seed=1),
                           record(batch=80, sparsity=30.0)])
    assert list(table.index) == ["SGD b40", "Adam b20", "Adam b40", "Adam b120", "Adam b80"]
    assert table.loc["Adam b20", "%γ ours"] == "61.0±1.4" and table.loc["Adam b20", "%γ paper"] == 63
    assert math.isnan(table.loc["SGD b40", "%γ ours"]) and table.loc["SGD b40", "seeds"] == 0
    assert math.isnan(table.loc["Adam b80", "%γ paper"])
    assert len(table.columns) <= 6


def test_table5_and_table9():
    assert list(tables.table5([]).index) == [64, 256]
    nine = tables.table9([record(batch=60, inactive=5, dataset="imagenet")])
    assert nine.loc[60, "pruned paper"] == 140 and nine.loc[60, "pruned ours"] == "5.0"
    assert math.isnan(nine.loc[90, "pruned ours"])


def test_batch_points_has_paper_and_ours():
    points = tables.batch_points([record(batch=20)], [])
    assert "ours, TinyImageNet" in set(points["source"]) and "paper, ImageNet" in set(points["source"])
    assert isinstance(figures.sparsity_vs_batch(points), matplotlib.figure.Figure)


def test_table7_and_li_have_layer_rows_and_narrow_columns():
    by_batch = {40: [pruned_record(), pruned_record(seed=1)], 80: [pruned_record()]}
    table = tables.table7(by_batch)
    assert list(table.columns) == ["B40 paper", "B40 ours", "B80 paper", "B80 ours"]
    assert table.loc["C1", "B40 ours"] == "10.0±0.0" and table.loc["all", "B40 paper"] == 86
    assert table.loc["test err", "B80 ours"] == "10.0"
    li = tables.table7_li([pruned_record()], [pruned_record(kept=63.0)])
    assert li.loc["all", "Li ours"] == "37.0" and li.loc["C8", "Li paper"] == 50


def test_table2_pruned_matches_the_paper_row():
    table = tables.table2_pruned([pruned_record(kept=20.0, params=5.0, before=13.0, after=13.2)])
    row = table.loc["Adam L2 1e-3"]
    assert row["% feats paper"] == 83 and row["% feats ours"] == "80.0" and row["% params ours"] == "95.0"
    assert row["Δerr paper"] == pytest.approx(0.4) and row["Δerr ours"] == "0.2"


def test_pruning_summary_points_and_layer_frame():
    by = {"a": [pruned_record()], "b": [pruned_record(kept=90.0)]}
    summary = tables.pruning_summary(by)
    assert summary.loc["b", "% feats"] == "10.0" and summary.loc["a", "seeds"] == 1
    points = tables.summary_points(by)
    assert list(points["removed"]) == [40.0, 10.0]
    frame = tables.pruned_layer_frame(by, {"paper B40": "C10 B40"})
    assert set(frame["source"]) == {"ours", "paper"} and len(frame) == 3 * 13
    for figure in (figures.removed_vs_error(points), figures.layer_pruning(frame),
                   figures.macs_per_layer(tables.pruned_layers(pruned_record()))):
        assert isinstance(figure, matplotlib.figure.Figure)


def test_penalty_scaling_shows_the_ratio_is_scale_invariant():
    torch.manual_seed(0)
    conv = conv_bn_layers(BasicNet(width=0.0625, first_width=8, image_size=16))[3][1]
    table = regularizers.penalty_scaling(conv)
    assert table["l1/l2"].max() - table["l1/l2"].min() < 1e-4
    assert table.loc["10", "L1"] == pytest.approx(100 * table.loc["0.1", "L1"], rel=1e-4)
    assert table["W·∇R"].abs().max() < 1e-4


def test_filter_norm_frame_and_histogram():
    frame = tables.filter_norm_frame({"net": BasicNet(width=0.0625, first_width=8, image_size=16)})
    assert frame["log10 norm"].max() == pytest.approx(0.0) and frame["log10 norm"].min() >= -8
    assert isinstance(figures.filter_norm_histogram(frame, 0.01), matplotlib.figure.Figure)


def test_missing_markdown_says_nothing_ran():
    text = markdown.missing_markdown("ImageNet", ["the ImageNet folder: parameter `imagenet_root` is None"])
    assert text.startswith(":::{note}") and "Nothing ran on ImageNet" in text and "-p imagenet_root" in text


def test_latency_table_times_dense_and_pruned_on_the_cpu_only():
    torch.manual_seed(0)
    dense = BasicNet(width=0.0625, first_width=8, image_size=16).eval()
    with torch.no_grad():
        conv_bn_layers(dense)[-1][2].weight[:2] = 0.0
    pruned, _ = prune_inactive(dense, input_shape=(1, 3, 16, 16))
    table = latency_table({"net": (dense, pruned, 16)}, (1, 4), min_runs=2, min_run_time=0.0)
    assert list(table["batch"]) == [1, 4] and (table["MAC cut"] >= 1).all() and (table["dense ms"] > 0).all()
    assert isinstance(figures.speedup(table), matplotlib.figure.Figure)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'"):
            latency_table({"net": (dense, pruned, 16)}, device="cuda")


def test_describe_counts_the_seeds_of_the_records_it_is_given(chapter):
    made = {"image_size": 16, "train_images": 400, "device": "cpu"}
    one = [{"config": {"seed": 0}, "provenance": made}]
    three = [{"config": {"seed": s}, "provenance": made} for s in (0, 1, 2, 0)]
    assert chapter.describe(one).endswith("· cpu · 1 seed") and chapter.describe(three).endswith("· 3 seeds")
    assert chapter.describe().endswith(f"{len(chapter.seed_list)} seed" + ("s" if len(chapter.seed_list) != 1 else ""))
