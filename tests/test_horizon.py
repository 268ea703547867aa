"""sparsity_lib.study.horizon: dead-feature curves and milestones read off a record's per-epoch history."""
import math

import numpy as np
import pytest

from sparsity_lib.study.horizon import (
    death_curve,
    death_milestones,
    layer_groups,
    milestone_frame,
    predicted_adagrad_deaths,
)

LAYERS = ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]


def record(dead_per_epoch: list[dict], seed: int = 0) -> dict:
    """A record of 7 layers of 10 features each, one history entry per 500 steps."""
    history = [{"step": 500 * (i + 1), "inactive_gamma": {layer: dead.get(layer, 0) for layer in LAYERS}}
               for i, dead in enumerate(dead_per_epoch)]
    return {"config": {"seed": seed}, "history": history,
            "final": {"layers": [{"layer": layer, "features": 10} for layer in LAYERS]}}


def test_layer_groups_split_in_order_with_the_middle_taking_the_rest():
    assert layer_groups(LAYERS) == {"early": ["C1", "C2"], "middle": ["C3", "C4", "C5"], "late": ["C6", "C7"]}
    vgg = [f"L{i}" for i in range(13)]
    groups = layer_groups(vgg)
    assert groups["early"] == vgg[:4] and groups["late"] == vgg[-4:] and sum(map(len, groups.values())) == 13


def test_death_curve_counts_each_group_at_each_epoch_end():
    curve = death_curve(record([{}, {"C7": 4}, {"C7": 6, "C1": 2}]))
    at = curve.set_index(["step", "group"])
    assert at.loc[(1000, "late"), "dead %"] == pytest.approx(100 * 4 / 20)
    assert at.loc[(1500, "all"), "dead"] == 8 and at.loc[(1500, "all"), "features"] == 70
    assert at.loc[(1500, "early"), "dead %"] == pytest.approx(10.0)
    assert at.loc[(500, "all"), "dead"] == 0 and len(curve) == 3 * 4


def test_milestones_first_death_and_half_of_the_final_count():
    milestones = death_milestones(record([{}, {"C7": 1}, {"C7": 2}, {"C7": 5}, {"C7": 6}]))
    # final 6 dead: half is 3, first reached at the 4th epoch end (5 dead)
    assert milestones == {"first death step": 1000, "half step": 2000, "final dead %": pytest.approx(600 / 70),
                          "steps": 2500}


def test_milestones_of_a_run_where_nothing_died_are_none():
    milestones = death_milestones(record([{}, {}]))
    assert milestones["first death step"] is None and milestones["half step"] is None
    assert milestones["final dead %"] == 0.0


def test_milestone_frame_labels_each_run():
    frame = milestone_frame([record([{"C7": 1}], seed=2)], label=lambda r: "adam L2 1e-4")
    assert frame.to_dict("records") == [{"setting": "adam L2 1e-4", "seed": 2, "first death step": 500,
                                         "half step": 500, "final dead %": pytest.approx(100 / 70), "steps": 500}]


def test_predicted_adagrad_deaths_follow_the_closed_form():
    lr, l2 = 1e-2, 1e-2
    # |gamma| 0.1 with sqrt(G) = 0.01: rate 1e-2 per step, ln(100)/1e-2 ~ 460 steps; sqrt(G) = 1: 46,000 steps
    found = {"step": 1000, "lr": lr, "l2": l2,
             "layers": {"C1": {"gamma": [0.1, -0.1, 1e-4], "state": [1e-4, 1.0, 1.0]}}}
    table = predicted_adagrad_deaths(found)
    row = table.loc["C1"]
    assert row["alive"] == 2  # the 1e-4 feature is dead already
    assert row["silenced within 1e4"] == 1 and row["silenced within 1e5"] == 2
    expected = math.log(1e-3 / 0.1) / math.log1p(-lr * l2 / 0.01)
    assert row["fewest steps"] == round(expected)
    assert np.isclose(expected, 458.2, atol=0.5)
