"""sparsity_lib.study.horizon: dead-feature curves and milestones read off a record's per-epoch history."""
import math

import numpy as np
import pytest

from sparsity_lib.runs.config import RunConfig, config_hash, make_config
from sparsity_lib.study.horizon import (
    adagrad_prediction_frame,
    death_curve,
    death_curve_frame,
    death_milestones,
    full_lr_steps,
    layer_groups,
    milestone_frame,
    milestones_by_length,
    predicted_adagrad_deaths,
    stretched,
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


def test_stretched_keeps_the_drop_at_the_papers_place_and_names_the_pilots_8x_run():
    long = make_config("long", dataset="synthetic", optimizer="adagrad", l2=1e-2)
    eight = stretched(long, 2)
    assert eight.epochs == 224 and eight.lr_drops == (round(250 * 224 / 325, 3),)
    assert config_hash(eight) == "b460f5b2bf022c4d"  # the stored pilot (docs/calibration.md)


def schedule_record(epochs: float, drops: tuple, dead_per_entry: dict[int, int], final_dead: int) -> dict:
    """A record of a run on 400 images at the reference batch 40 (10 steps an epoch): `dead_per_entry`
    maps a history step to the C7 dead count there."""
    config = RunConfig(dataset="synthetic", epochs=epochs, lr_drops=drops).to_dict()
    history = [{"step": step, "inactive_gamma": {"C7": dead}} for step, dead in sorted(dead_per_entry.items())]
    return {"config": config, "provenance": {"train_images": 400, "steps": round(epochs * 10)}, "history": history,
            "final": {"layers": [{"layer": "C7", "features": 4, "inactive_gamma": final_dead}]}}


def test_full_lr_steps_weigh_the_steps_after_a_drop_by_their_lower_rate():
    record = schedule_record(10.0, (5.0,), {50: 0}, 0)  # 100 steps, LR /10 from step 50
    assert full_lr_steps(record, 20) == pytest.approx(30 + 50 * 0.1)
    assert full_lr_steps(record, 60) == pytest.approx(40)  # after the drop, relative to the dropped rate
    assert full_lr_steps(record, 100) == 0


def test_adagrad_prediction_counts_the_alive_features_l2_silences_in_the_remaining_budget():
    record = schedule_record(10.0, (), {20: 1, 40: 1}, 3)  # 100 steps, no drop; 1 dead at step 20, 3 at the end
    # alive at step 20, each shrinking by (1 - lr*l2/sqrt(1e-4)) = 0.99 a step: |gamma| 1.0 needs ~687 steps to
    # reach 1e-3, 0.012 ~247, 0.0011 ~9.5; only the last fits in the 80 steps left. |gamma| 0 is already dead.
    found = {"step": 20, "lr": 1.0, "l2": 1e-4, "layers": {"C7": {"gamma": [1.0, 0.012, 0.0011, 0.0],
                                                                   "state": [1e-4, 1e-4, 1e-4, 1.0]}}}
    frame = adagrad_prediction_frame([found], record)
    assert frame.to_dict("records") == [{"from step": 20, "steps left": 80, "dead then": 1,
                                         "predicted to die": 1, "died": 2}]


def test_death_curve_frame_and_milestones_by_length_label_profile_setting_and_seed():
    runs = {"long": [("Adam L2 1e-4", [record([{"C7": 1}, {"C7": 2}], seed=1)]), ("SGD L2 1e-3", [])],
            "cpu": [("Adam L2 1e-4", [record([{}], seed=0)])]}
    frame = death_curve_frame(runs)
    assert len(frame) == 3 * 4 and set(frame.setting) == {"Adam L2 1e-4"}
    assert sorted(set(zip(frame.profile, frame.seed))) == [("cpu", 0), ("long", 1)]
    table = milestones_by_length(runs)
    assert table[["profile", "setting", "seed", "first death step", "half step"]].to_dict("records") == [
        {"profile": "long", "setting": "Adam L2 1e-4", "seed": 1, "first death step": 500, "half step": 500},
        {"profile": "cpu", "setting": "Adam L2 1e-4", "seed": 0, "first death step": None, "half step": None}]
    assert death_curve_frame({}).empty and milestones_by_length({}).empty


def test_horizon_summary_states_what_the_milestones_hold():
    from sparsity_lib.report.markdown import horizon_summary_markdown
    runs = {"cpu": [("Adam L2 1e-4", [record([{}], seed=0), record([{"C7": 7}], seed=1)])],
            "long": [("Adam L2 1e-4", [record([{}, {"C7": 14}], seed=0)])]}
    text = horizon_summary_markdown(milestones_by_length(runs))
    assert text == ("- **Adam L2 1e-4**: `cpu` (500 steps, 2 seeds): 5.0±7.1% dead at the end; the first feature died "
                    "at step 500 (1 of 2 seeds lost none); `long` (1,000 steps, 1 seed): 20.0% dead at the end; "
                    "the first feature died at step 1,000.")
    assert horizon_summary_markdown(milestones_by_length({})).startswith("No run")


def test_verdict_changes_are_computed_and_untested_claims_named():
    import pandas as pd

    from sparsity_lib.report.markdown import verdict_changes_markdown
    frame = pd.DataFrame({"claim": [1, 2, 3], "cpu": ["holds", "fails", "holds"],
                          "long": ["holds", "holds", "not tested"]})
    assert verdict_changes_markdown(frame, "cpu", "long") == (
        "Judged at both `cpu` and `long`: 2 of 3 claims. Verdicts that change with the length: claim 2 "
        "(fails → holds). Not yet judged at both (runs missing from the store): claim 3.")
