"""Tests of helper functions behind chapters 3 and 4: Table 2 transposed, BN and universality tables,
Fig. 4 frames and tables, claim 7's settings, and the run lists of claims 5-6."""
import math

import pytest

from sparsity_lib import Chapter
from sparsity_lib.report import figures, frames, tables
from sparsity_lib.runs import config
from sparsity_lib.runs.execution import Execution
from sparsity_lib.study import analysis, judge, plans
from sparsity_lib.study.claims import HOLDS, Verdict

LAYERS = [f"C{i}" for i in range(1, 8)]


def record(optimizer, l2, wd, seed, dead, gamma_dead=None, beta=0.0, universality=50.0, err=20.0):
    """A record of 10 features per layer, `dead[layer]` of them inactive (γ = 0)."""
    config = {"optimizer": optimizer, "l2": l2, "wd": wd, "seed": seed}
    layers = [{"layer": n, "features": 10, "inactive_gamma": dead.get(n, 0), "inactive_act": 0} for n in LAYERS]
    bn = {n: {"gamma": [0.0] * dead.get(n, 0) + [1.0] * (10 - dead.get(n, 0)), "beta": [beta] * 10} for n in LAYERS}
    return {"config": config, "final": {"layers": layers, "sparsity_gamma": 10.0 * sum(dead.values()) / 7,
                                        "test_err": err},
            "bn": bn, "universality": {n: [universality] * 10 for n in LAYERS}}


def test_table2_has_layers_as_rows_and_paper_and_ours_columns_per_setting():
    records = [record("adam", 1e-4, 0.0, 0, {"C6": 8}), record("adam", 1e-4, 0.0, 1, {"C6": 6}),
               record("adam", 0.0, 1e-4, 0, {}), record("sgd", 1e-3, 0.0, 0, {"C1": 9})]
    table = tables.table2(records, "synthetic", "adam")
    assert list(table.index) == tables.LAYER_ROWS == LAYERS + ["all", "err"]
    assert list(table.columns) == ["L2 1e-4 paper", "L2 1e-4 ours", "WD 1e-4 paper", "WD 1e-4 ours"]
    assert table.loc["C6", "L2 1e-4 ours"] == "70.0±14.1" and table.loc["C1", "L2 1e-4 ours"] == "0.0±0.0"
    assert table.loc["C6", "L2 1e-4 paper"] == 96.0 and table.loc["all", "L2 1e-4 paper"] == 70.0  # CIFAR-10
    assert table.loc["err", "WD 1e-4 paper"] == 11.2
    assert tables.table2(records, "cifar100", "adam").loc["C6", "L2 1e-4 paper"] == 67.0
    assert list(tables.table2(records, "synthetic", "sgd").columns) == ["L2 1e-3 paper", "L2 1e-3 ours"]
    assert len(tables.table2(records).columns) == 6  # every setting, labelled with its optimizer


def test_table2_shows_nan_for_settings_the_paper_did_not_run():
    table = tables.table2([record("adam", 0.0, 0.0, 0, {})], "synthetic", "adam")
    assert math.isnan(table.loc["C1", "L2 0 paper"])


def test_table2_long_gives_paper_and_seed_mean_rows_for_the_figure():
    records = [record("sgd", 1e-3, 0.0, 0, {"C1": 9}), record("sgd", 1e-3, 0.0, 1, {"C1": 7}),
               record("adam", 0.0, 0.0, 0, {})]
    frame = tables.table2_long(records)
    ours = frame[(frame.source == "ours") & (frame.setting == "SGD L2 1e-3")].set_index("layer")["percent"]
    assert ours["C1"] == 80.0
    paper = frame[frame.source == "paper"]
    assert set(paper["setting"]) == {"SGD L2 1e-3"} and len(paper) == 7  # Adam L2 0 has no paper row
    assert list(dict.fromkeys(frame["source"])) == ["paper", "ours"]
    assert figures.layerwise_sparsity(frame, title="t") is not None


def test_bn_table_reports_dead_share_and_the_sign_of_living_betas():
    records = [record("adam", 1e-3, 0.0, 0, {"C6": 5}, beta=-0.2), record("adam", 1e-3, 0.0, 1, {"C6": 5}, beta=-0.4),
               record("sgd", 1e-3, 0.0, 0, {"C6": 10}, beta=0.1)]
    table = tables.bn_table(records, "C6")
    assert list(table.columns) == ["% dead", "% live β<0", "mean live β", "seeds"]
    assert table.loc["Adam L2 1e-3", "% dead"] == "50±0" and table.loc["Adam L2 1e-3", "% live β<0"] == "100±0"
    assert table.loc["Adam L2 1e-3", "mean live β"] == "-0.30±0.14" and table.loc["Adam L2 1e-3", "seeds"] == 2
    assert table.loc["SGD L2 1e-3", "% live β<0"] == "–"  # no living feature


def test_universality_table_averages_living_features_per_layer():
    records = [record("adam", 1e-3, 0.0, 0, {"C7": 10}, universality=30.0), record("sgd", 1e-3, 0.0, 0, {})]
    table = tables.universality_table(records, ["C6", "C7"])
    assert list(table.columns) == ["C6", "C7", "seeds"]
    assert table.loc["Adam L2 1e-3", "C6"] == "30.0" and table.loc["Adam L2 1e-3", "C7"] == "–"
    assert table.loc["SGD L2 1e-3", "C7"] == "50.0"


def test_first_seed_by_setting_and_claim_title():
    records = [record("adam", 1e-3, 0.0, s, {}) for s in (0, 1)] + [record("sgd", 1e-3, 0.0, 0, {})]
    found = figures.first_seed_by_setting(records)
    assert list(found) == ["Adam L2 1e-3", "SGD L2 1e-3"] and found["Adam L2 1e-3"]["config"]["seed"] == 0
    assert figures.claim_title("Layers", Verdict(5, HOLDS, "x")) == "Layers (claim 5 holds)"


def test_closed_form_table_gives_half_lives():
    table = tables.closed_form_table(1e-4, lr=1e-3, sgd_lr=0.1, momentum=0.9)
    assert table.loc["Adam + L2", "steps to halve"] == pytest.approx(500)
    assert table.loc["Adam + WD (paper)", "steps to halve"] == pytest.approx(math.log(2) / 1e-4, rel=1e-3)
    assert table.loc["SGD + L2", "steps to halve"] == pytest.approx(math.log(2) / 1e-4)


def test_fig4_frame_and_trajectory_table():
    frame = frames.fig4_frame(1e-4, steps=1500, rare_every=250, rare_value=-1e-2)
    assert list(dict.fromkeys(frame.scenario)) == list(frames.FIG4_SCENARIOS)
    assert list(dict.fromkeys(frame.setting)) == ["Adam + L2 1e-4", "Adam + WD 1e-4", "SGD + L2 1e-4",
                                                  "AMSGrad + L2 1e-4"]
    table = tables.trajectory_table(frame)
    assert list(table.columns) == ["to 10%, none", "θ end, none", "to 10%, rare", "θ end, rare"]
    assert table.loc["Adam + WD 1e-4", "to 10%, none"] == "never"
    assert 900 < int(table.loc["Adam + L2 1e-4", "to 10%, none"]) < 1300  # about 1/lr steps
    assert frames.fig4_settings(1e-4, lr=1e-4)["SGD + L2 1e-4"] == {"optimizer": "sgd", "l2": 1e-4}


def test_strength_sweep_shows_lambda_dropping_out_of_adam_l2():
    frame = frames.strength_sweep_frame([1e-5, 1e-3], steps=1500)
    table = tables.strength_sweep_table(frame)
    assert list(table.index) == ["Adam + L2", "Adam + WD"]
    assert list(table.columns) == ["to 10%, λ 1e-5", "to 10%, λ 1e-3", "max gap"]
    assert table.loc["Adam + L2", "max gap"] < 0.01 < table.loc["Adam + WD", "max gap"]


def test_l2_decay_settings_default_to_the_books_and_claim_7_takes_none():
    assert plans.l2_decay_settings() == plans.L2_DECAY_DEFAULTS == {"lr": 1e-3, "l2": 1e-4, "steps": 3000}
    assert plans.l2_decay_settings(l2=1e-3)["l2"] == 1e-3
    assert judge.l2_decay_verdict().status == HOLDS and judge.l2_decay_verdict(l2=1e-5, steps=2000).status == HOLDS


def test_chapter_3_runs_are_among_the_books_runs(tmp_path):
    chapter = Chapter(profile="smoke", dataset="synthetic", execution=Execution(store=str(tmp_path)))
    book = [chapter.config(**fields) for fields in plans.all_variants(chapter)]
    for fields in plans.table2_variants() + plans.layer_pair_variants():
        assert chapter.config(**fields) in book, fields
    assert plans.layer_pair_variants() == [{"optimizer": "sgd", "l2": 1e-3}, {"optimizer": "adam", "l2": 1e-3}]
    assert plans.layer_pair_variants(5e-4)[1] == {"optimizer": "adam", "l2": 5e-4}


def test_universality_by_fate_splits_early_universality_by_what_dies_later():
    final = record("adam", 1e-3, 0.0, 0, {"C6": 4, "C7": 10})  # C6: the first 4 features die; C7: all 10
    early = {"step": 2000, "layers": {"C6": {"universality": [10.0] * 4 + [90.0] * 6},
                                      "C7": {"universality": [30.0] * 10}}}
    table = tables.universality_by_fate({"Adam": (early, final)}, layers=("C6", "C7"))
    assert list(table.columns) == ["features", "die later", "early: all", "early: die later", "early: live"]
    c6 = table.loc[("Adam", "C6")]
    assert c6["early: die later"] == "10.0" and c6["early: live"] == "90.0"
    assert table.loc[("Adam", "C7"), "die later"] == 10 and table.loc[("Adam", "C7"), "early: live"] == "–"
    pooled = table.loc[("Adam", "C6-C7")]
    assert pooled["features"] == 20 and pooled["die later"] == 14
    assert pooled["early: all"] == "44.0"  # (4·10 + 6·90 + 10·30) / 20
    assert pooled["early: die later"] == f"{(40 + 300) / 14:.1f}"


def test_early_universality_is_empty_without_a_saved_file_and_pairs_file_and_run(tmp_path):
    import json

    chapter = Chapter(profile="smoke", dataset="synthetic", seeds=1, execution=Execution(store=str(tmp_path),
                                                                                         data_root=str(tmp_path)))
    assert analysis.early_universality(chapter) == {}
    fields = plans.layer_pair_variants()[1]
    key = config.config_hash(chapter.config(seed=0, **fields))
    finished = {**record("adam", 1e-3, 0.0, 0, {}), "config_hash": key}
    chapter.run_store.load = {key: finished}.get  # the stored run (a hand-made record would fail the store's checks)
    early = {"config_hash": key, "step": 2000, "layers": {}}
    path = chapter.run_store.save_analysis("early_universality_adam", early)
    assert list(analysis.early_universality(chapter)) == ["Adam L2 1e-3, step 2,000"]
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "step": 3000}))  # an edited number: its checksum no longer matches
    with pytest.warns(UserWarning, match="record_sha256 does not match"):
        assert analysis.early_universality(chapter) == {}
    chapter.run_store.save_analysis("early_universality_adam", {**early, "config_hash": "x"})
    assert analysis.early_universality(chapter) == {}  # a file of another profile's run is not used
