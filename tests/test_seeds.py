"""Tests of sparsity_lib.study.seeds: the seed estimate, its text, the grouping into settings and the
noise rule."""
import math

import numpy as np
import pandas as pd
import pytest

from sparsity_lib.study import seeds
from sparsity_lib.study.seeds import Estimate, clearly_greater, estimate_text, margin, mean_text


def record(optimizer="adam", l2=1e-4, seed=0, sparsity=10.0, err=10.0, act=5.0, batch_size=40):
    return {"config": {"optimizer": optimizer, "l2": l2, "wd": 0.0, "seed": seed, "batch_size": batch_size},
            "final": {"sparsity_gamma": sparsity, "test_err": err, "sparsity_act": act}}


# ------------------------------------------------------------------------------ the estimate
def test_estimate_of_several_seeds_is_the_mean_the_sample_std_and_the_count():
    found = Estimate.of([10, 12, 14])
    assert (found.mean, found.std, found.n) == (12.0, 2.0, 3)  # ddof=1: sqrt((4 + 0 + 4) / 2)
    assert found.spread() == 2.0 and found.spread(assumed=0.0) == 2.0
    assert str(found) == "12.0±2.0" and found.text(2) == "12.00±2.00"


def test_estimate_of_one_seed_has_no_measured_spread():
    found = Estimate.of([7.3])
    assert found.mean == 7.3 and found.n == 1 and math.isnan(found.std)
    assert found.spread() == seeds.ASSUMED_SPREAD and found.spread(assumed=0.0) == 0.0
    assert str(found) == "7.3" and found.text(0) == "7"


def test_estimate_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        Estimate.of([])


def test_estimate_text_leaves_nan_out_and_marks_an_empty_cell():
    assert estimate_text([1.0, math.nan, 3.0]) == "2.0±1.4"
    assert estimate_text(v for v in (10, 20)) == "15.0±7.1"  # any iterable; ints are fine
    assert estimate_text([10, 20], digits=0) == "15±7"
    assert estimate_text([4.0]) == "4.0"
    assert estimate_text([]) == "–" and estimate_text([math.nan]) == "–"
    assert math.isnan(estimate_text([], missing=math.nan))


def test_mean_text_shows_the_mean_alone():
    assert mean_text(np.array([1.0, 2.0, 4.0])) == "2.3"
    assert mean_text([1.0, math.nan, 3.0], digits=2) == "2.00"
    assert mean_text(np.array([])) == "–"


# ------------------------------------------------------------------------------ the noise rule
def test_noise_rule_needs_the_floor_and_two_standard_errors():
    assert clearly_greater(Estimate.of([10, 10.5, 9.5]), Estimate.of([5, 5.5, 4.5]))
    assert not clearly_greater(Estimate.of([10, 10.5, 9.5]), Estimate.of([8.5, 9, 8]))  # below the 2-point floor
    noisy = Estimate.of([2, 18, 10])  # std 8: a 5-point gap is noise
    assert not clearly_greater(noisy, Estimate.of([5, 5, 5]))
    assert not clearly_greater(Estimate.of([5, 5.5, 4.5]), Estimate.of([10, 10.5, 9.5]))  # the rule is one-sided


def test_one_seed_settings_get_the_assumed_spread():
    one, other = Estimate.of([10]), Estimate.of([5])
    assert margin(one, other) == pytest.approx(seeds.NOISE_Z * math.sqrt(2 * seeds.ASSUMED_SPREAD ** 2))
    assert not clearly_greater(one, other)  # 5 < 2 * sqrt(8) = 5.7
    assert clearly_greater(Estimate.of([12]), other)
    assert clearly_greater(one, other, assumed=1.0)  # 5 > 2 * sqrt(2) = 2.8
    assert not clearly_greater(one, other, assumed=1.0, floor=6.0)


# ------------------------------------------------------------------------------ settings
def test_a_setting_is_the_config_without_its_seed():
    assert seeds.setting_config({"optimizer": "adam", "seed": 3, "l2": 1e-4}) == {"optimizer": "adam", "l2": 1e-4}
    assert seeds.setting_key(record(seed=0)["config"]) == seeds.setting_key(record(seed=1)["config"])
    assert seeds.setting_key(record(l2=1e-3)["config"]) != seeds.setting_key(record(l2=1e-4)["config"])


def test_seed_groups_keep_the_first_seen_order():
    records = [record("sgd", seed=0), record("adam", seed=0), record("sgd", seed=1), record("adam", 1e-3, seed=0)]
    groups = seeds.seed_groups(records)
    assert [[r["config"]["seed"] for r in group] for group in groups.values()] == [[0, 1], [0], [0]]
    assert [group[0]["config"]["optimizer"] for group in groups.values()] == ["sgd", "adam", "adam"]
    by_batch = seeds.seed_groups([record(batch_size=80), record(batch_size=20), record(batch_size=80)],
                                 key=lambda config: config["batch_size"])
    assert list(by_batch) == [80, 20] and len(by_batch[80]) == 2


def test_settings_estimate_a_measure_and_the_error_per_setting():
    records = [record("sgd", seed=0, sparsity=2.0, err=20.0, act=1.0), record("adam", seed=0, sparsity=30.0),
               record("sgd", seed=1, sparsity=4.0, err=22.0, act=3.0)]
    sgd, adam = seeds.settings(records)
    assert sgd.config == {"optimizer": "sgd", "l2": 1e-4, "wd": 0.0, "batch_size": 40}
    assert sgd.label == "SGD L2 1e-4" and sgd.strength == 1e-4 and len(sgd.records) == 2
    assert (sgd.sparsity.mean, sgd.sparsity.n, sgd.error.mean) == (3.0, 2, 21.0)
    assert str(adam.sparsity) == "30.0" and adam.records == (records[1],)
    assert seeds.settings(records, "sparsity_act")[0].sparsity.mean == 2.0


def test_one_setting_each_refuses_a_group_of_two_settings():
    found = seeds.one_setting_each([("a", [record(seed=0), record(seed=1)]), ("b", [record(l2=1e-3)])], "task")
    assert [(label, s.sparsity.n) for label, s in found] == [("a", 2), ("b", 1)]
    with pytest.raises(ValueError, match="task 'mixed' must hold the seeds of one setting, got 2"):
        seeds.one_setting_each([("mixed", [record(l2=1e-4), record(l2=1e-3)])], "task")


def test_seed_frame_gives_mean_std_and_count_per_group_in_first_seen_order():
    frame = pd.DataFrame({"optimizer": ["sgd", "adam", "sgd", "sgd"], "lr": [0.1, None, 0.1, 0.1],
                          "sparsity": [1.0, 30.0, 2.0, 3.0]})
    table = seeds.seed_frame(frame, ["optimizer", "lr"], ["sparsity"])
    assert list(table.columns) == ["optimizer", "lr", "sparsity", "sparsity_std", "seeds"]
    assert list(table["optimizer"]) == ["sgd", "adam"] and math.isnan(table["lr"].iloc[1])  # NaN key kept
    assert list(table["sparsity"]) == [2.0, 30.0] and list(table["seeds"]) == [3, 1]
    assert table["sparsity_std"].iloc[0] == 1.0 and math.isnan(table["sparsity_std"].iloc[1])
    means = seeds.seed_frame(frame, ["optimizer"], ["sparsity"], std=False)
    assert list(means.columns) == ["optimizer", "sparsity", "seeds"]
