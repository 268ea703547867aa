"""Tests of sparsity_lib.study.claims: a passing and a failing hand-made case for every claim."""
import numpy as np
import pytest

from sparsity_lib.nets.optim import simulate_weight
from sparsity_lib.study import claims
from sparsity_lib.study import seeds as seed_statistic
from sparsity_lib.study.claims import FAILS, HOLDS, NOT_TESTED, Estimate, clearly_greater

LAYERS = [f"C{i}" for i in range(1, 8)]


def record(optimizer="adam", l2=1e-4, wd=0.0, seed=0, sparsity=10.0, err=10.0, dead=None, beta=0.0,
           universality=50.0, **config):
    """A minimal run record: `dead` maps layer -> dead features out of 30 per layer."""
    dead = dead or {}
    layers = [{"layer": name, "features": 30, "inactive_gamma": dead.get(name, 0), "inactive_act": 0}
              for name in LAYERS]
    bn = {name: {"gamma": [0.0] * dead.get(name, 0) + [1.0] * (30 - dead.get(name, 0)), "beta": [beta] * 30}
          for name in LAYERS}
    return {"config": {"optimizer": optimizer, "l2": l2, "wd": wd, "seed": seed, "batch_size": 40, **config},
            "final": {"sparsity_gamma": sparsity, "test_err": err, "layers": layers},
            "bn": bn, "universality": {name: [universality] * 30 for name in LAYERS}}


def seeds(values, errors=None, **fields):
    """One setting over len(values) seeds with the given sparsities (and errors)."""
    errors = errors or [10.0] * len(values)
    return [record(seed=i, sparsity=v, err=e, **fields) for i, (v, e) in enumerate(zip(values, errors))]


# ------------------------------------------------------------------------------ noise rule
def test_claims_use_the_seed_statistic_and_noise_rule_of_seeds():
    """The rule itself is tested in test_seeds.py; the chapters' text names it as `claims.clearly_greater`."""
    assert claims.clearly_greater is seed_statistic.clearly_greater and claims.Estimate is seed_statistic.Estimate
    assert claims.settings is seed_statistic.settings and claims.MIN_EFFECT == seed_statistic.MIN_EFFECT
    assert not clearly_greater(Estimate.of([10]), Estimate.of([5]))  # one seed each: 5 < 2 * sqrt(8)


# ------------------------------------------------------------------------------ claim 1
def test_claim1_holds_when_sparsity_rises_with_strength():
    runs = seeds([0, 0.5, 0], l2=0.0) + seeds([5, 6, 5.5], l2=1e-4) + seeds([30, 31, 29], l2=1e-3)
    verdict = claims.claim1_regularization_strength(runs)
    assert verdict.status == HOLDS and verdict.holds and "3 seeds" in verdict.reason


def test_claim1_fails_without_a_rise_or_with_unregularized_sparsity():
    flat = seeds([0, 0, 0], l2=0.0) + seeds([20, 21, 19], l2=1e-4) + seeds([20, 19, 21], l2=1e-3)
    assert claims.claim1_regularization_strength(flat).status == FAILS
    sparse_without = seeds([15, 15, 15], l2=0.0) + seeds([20, 21, 19], l2=1e-4) + seeds([40, 41, 39], l2=1e-3)
    assert claims.claim1_regularization_strength(sparse_without).status == FAILS


def test_claim1_not_tested_without_an_unregularized_run_and_rejects_mixed_optimizers():
    assert claims.claim1_regularization_strength(seeds([5], l2=1e-4) + seeds([30], l2=1e-3)).status == NOT_TESTED
    with pytest.raises(ValueError, match="one optimizer"):
        claims.claim1_regularization_strength(seeds([0], l2=0.0) + seeds([0], optimizer="sgd", l2=1e-4))


# ------------------------------------------------------------------------------ claim 2
def test_claim2_holds_when_every_adaptive_method_beats_comparable_sgd():
    runs = (seeds([30, 32, 31], optimizer="adam", l2=1e-4, errors=[10, 11, 10])
            + seeds([25, 26, 24], optimizer="adagrad", l2=1e-2, errors=[12, 12, 11])
            + seeds([1, 2, 1], optimizer="sgd", l2=1e-4, errors=[10, 10, 11])
            + seeds([9, 8, 9], optimizer="sgd", l2=2e-3, errors=[25, 26, 25]))  # sparser but not comparable
    verdict = claims.claim2_adaptive_vs_sgd(runs)
    assert verdict.status == HOLDS and "adam" in verdict.reason and "adagrad" in verdict.reason


def test_claim2_fails_when_a_comparable_sgd_setting_is_as_sparse():
    runs = (seeds([30, 32, 31], optimizer="adam", l2=1e-4, errors=[10, 11, 10])
            + seeds([3, 3, 4], optimizer="adadelta", l2=1e-3, errors=[11, 11, 11])
            + seeds([1, 2, 1], optimizer="sgd", l2=1e-4, errors=[10, 10, 11])
            + seeds([15, 14, 15], optimizer="sgd", l2=2e-3, errors=[12, 12, 12]))
    verdict = claims.claim2_adaptive_vs_sgd(runs)
    assert verdict.status == FAILS and "not: adadelta" in verdict.reason


def test_claim2_not_tested_when_no_error_is_comparable():
    runs = seeds([30], optimizer="adam", errors=[10]) + seeds([1], optimizer="sgd", errors=[40])
    assert claims.claim2_adaptive_vs_sgd(runs).status == NOT_TESTED


# ------------------------------------------------------------------------------ claim 3
def test_claim3_holds_when_adam_l2_beats_wd_and_sgd_matches():
    runs = (seeds([30, 31, 29], optimizer="adam", l2=1e-4) + seeds([5, 6, 5], optimizer="adam", l2=0.0, wd=1e-4)
            + seeds([8, 9, 8], optimizer="sgd", l2=1e-3) + seeds([8, 8, 9], optimizer="sgd", l2=0.0, wd=1e-3))
    assert claims.claim3_l2_vs_wd(runs).status == HOLDS


def test_claim3_fails_when_adam_wd_is_as_sparse_or_sgd_differs():
    same = seeds([30, 31, 29], optimizer="adam", l2=1e-4) + seeds([29, 30, 31], optimizer="adam", l2=0.0, wd=1e-4)
    assert claims.claim3_l2_vs_wd(same).status == FAILS
    sgd_differs = (seeds([30, 31, 29], optimizer="adam", l2=1e-4) + seeds([5, 6, 5], optimizer="adam", l2=0.0, wd=1e-4)
                   + seeds([20, 21, 20], optimizer="sgd", l2=1e-3) + seeds([2, 2, 3], optimizer="sgd", l2=0.0, wd=1e-3))
    verdict = claims.claim3_l2_vs_wd(sgd_differs)
    assert verdict.status == FAILS and "SGD: fails" in verdict.reason


def test_claim3_without_sgd_pairs_is_not_tested_even_when_adam_holds():
    runs = seeds([30, 31, 29], optimizer="adam", l2=1e-4) + seeds([5, 6, 5], optimizer="adam", l2=0.0, wd=1e-4)
    verdict = claims.claim3_l2_vs_wd(runs)
    assert verdict.status == NOT_TESTED and "Adam: holds" in verdict.reason


# ------------------------------------------------------------------------------ claim 4
def test_claim4_holds_when_harder_tasks_are_less_sparse():
    tasks = [("clean", seeds([30, 31, 29], errors=[5, 5, 6], clutter=0.0)),
             ("cluttered", seeds([20, 19, 21], errors=[20, 21, 20], clutter=1.0))]
    assert claims.claim4_task_difficulty(tasks).status == HOLDS


def test_claim4_fails_when_the_harder_task_is_as_sparse():
    tasks = [("clean", seeds([20, 21, 19], errors=[5, 5, 6], clutter=0.0)),
             ("cluttered", seeds([25, 24, 26], errors=[20, 21, 20], clutter=1.0))]
    assert claims.claim4_task_difficulty(tasks).status == FAILS


def test_claim4_not_tested_when_the_order_is_not_one_of_difficulty():
    tasks = [("clean", seeds([30], errors=[5], clutter=0.0)), ("cluttered", seeds([10], errors=[5.5], clutter=1.0))]
    verdict = claims.claim4_task_difficulty(tasks)
    assert verdict.status == NOT_TESTED and "not ordered by difficulty" in verdict.reason
    with pytest.raises(ValueError, match="one setting"):
        claims.claim4_task_difficulty([("mixed", seeds([1], l2=1e-4) + seeds([2], l2=1e-3)), ("x", seeds([1]))])


def test_claim4_reports_the_papers_two_point_comparison_beside_the_trend():
    """The paper's comparison (clean against fully cluttered) can go its way while an intermediate step
    breaks the trend: the verdict fails and says which half did."""
    tasks = [("clean", seeds([38, 38.5, 38], errors=[5, 5, 6], clutter=0.0)),
             ("half", seeds([26, 26.5, 26], errors=[10, 10, 11], clutter=0.5)),
             ("cluttered", seeds([30, 30.5, 30], errors=[20, 21, 20], clutter=1.0))]
    verdict = claims.claim4_task_difficulty(tasks)
    assert verdict.status == FAILS
    assert "two-point comparison, clean 38.2" in verdict.reason and "cluttered 30.2" in verdict.reason
    assert ": clearly;" in verdict.reason and "clearly rises (half 26.2" in verdict.reason


def test_comparison_grades_a_miss():
    tight = lambda mean: Estimate.of([mean - 0.5, mean, mean + 0.5])  # noqa: E731
    assert seed_statistic.comparison(tight(40), tight(30), floor=5) == seed_statistic.CLEAR
    assert seed_statistic.comparison(tight(33.4), tight(30), floor=5) == seed_statistic.BELOW_FLOOR
    assert seed_statistic.comparison(tight(30.3), tight(30), floor=5) == seed_statistic.WITHIN_NOISE
    assert seed_statistic.comparison(tight(25), tight(30), floor=5) == seed_statistic.OPPOSITE


# ------------------------------------------------------------------------------ claims 5-6
def test_claim5_holds_when_sgd_dies_early_and_adam_late():
    sgd = [record(optimizer="sgd", seed=s, dead={"C1": 20, "C2": 10}) for s in range(3)]
    adam = [record(seed=s, dead={"C6": 12, "C7": 20}) for s in range(3)]
    verdict = claims.claim5_layer_location(sgd, adam)
    assert verdict.status == HOLDS and verdict.numbers["late layers"] == "C6,C7"


def test_claim5_fails_when_adam_late_layers_stay_alive():
    sgd = [record(optimizer="sgd", seed=s, dead={"C1": 20}) for s in range(3)]
    adam = [record(seed=s, dead={"C1": 20}) for s in range(3)]
    assert claims.claim5_layer_location(sgd, adam).status == FAILS


def test_claim5_not_tested_when_sgd_kills_nothing():
    sgd = [record(optimizer="sgd", seed=s) for s in range(3)]
    adam = [record(seed=s, dead={"C7": 20}) for s in range(3)]
    assert claims.claim5_layer_location(sgd, adam).status == NOT_TESTED


def test_claim6_holds_with_negative_betas_and_selective_features():
    sgd = [record(optimizer="sgd", seed=s, beta=0.1, universality=60.0 + s) for s in range(3)]
    adam = [record(seed=s, beta=-0.2, universality=30.0 + s) for s in range(3)]
    assert claims.claim6_betas_and_selectivity(sgd, adam).status == HOLDS


def test_claim6_fails_when_adam_betas_stay_positive():
    sgd = [record(optimizer="sgd", seed=s, beta=0.1, universality=60.0 + s) for s in range(3)]
    adam = [record(seed=s, beta=0.1, universality=30.0 + s) for s in range(3)]
    verdict = claims.claim6_betas_and_selectivity(sgd, adam)
    assert verdict.status == FAILS and "negative betas: fails" in verdict.reason


def test_claim6_in_the_papers_direction_short_of_the_floor_is_below_the_floor_not_holding():
    """Adam's late features 3.4 points less universal than SGD's with a spread of 0.5: beyond the noise,
    short of the 5-point floor (the cpu store's case): 'below the floor', which is not holding."""
    sgd = [record(optimizer="sgd", seed=s, beta=0.1, universality=60.0 + 0.5 * s) for s in range(3)]
    adam = [record(seed=s, beta=-0.2, universality=56.6 + 0.5 * s) for s in range(3)]
    verdict = claims.claim6_betas_and_selectivity(sgd, adam)
    assert verdict.status == claims.BELOW_FLOOR and not verdict.holds
    assert "selectivity: below the floor" in verdict.reason and "floor 5 points" in verdict.reason
    opposite = [record(seed=s, beta=-0.2, universality=70.0 + s) for s in range(3)]
    assert "opposite to the paper" in claims.claim6_betas_and_selectivity(sgd, opposite).reason
    assert claims.claim6_betas_and_selectivity(sgd, opposite).status == FAILS


def test_every_claim_states_its_criterion_with_its_constants():
    for number in claims.CLAIMS:
        text = claims.criterion(number)
        assert not text.startswith(("Criterion", ":", ",", " "))
        assert "MIN_EFFECT " not in text.replace("MIN_EFFECT (= ", "")
    assert "(= 0.3)" in claims.criterion(10) and "[0.5, 1.5]" in claims.criterion(7)
    assert "zero task gradient only" in claims.criterion(7) and "two-point comparison" in claims.criterion(4)
    assert "2 standard errors" in claims.criterion(1) and "standard errors" not in claims.criterion(7)


def test_claim6_ignores_dead_features():
    sgd = [record(optimizer="sgd", seed=s, beta=0.1, universality=60.0) for s in range(3)]
    adam = [record(seed=s, beta=-0.2, universality=30.0, dead={name: 30 for name in LAYERS}) for s in range(3)]
    assert claims.claim6_betas_and_selectivity(sgd, adam).status == NOT_TESTED


# ------------------------------------------------------------------------------ claim 7
def test_claim7_holds_on_simulated_trajectories():
    adam_l2 = simulate_weight("adam", l2=1e-4, lr=1e-3, steps=3000)
    others = {"Adam+WD": simulate_weight("adam", wd=1e-4, lr=1e-3, steps=3000),
              "SGD+L2": simulate_weight("sgd", l2=1e-4, lr=0.1, steps=3000)}
    verdict = claims.claim7_adam_l2_decay(adam_l2, others, lr=1e-3)
    assert verdict.status == HOLDS and 0.5 <= verdict.numbers["Adam+L2 decrease per step / lr"] <= 1.5


def test_claim7_fails_when_an_alternative_decays_as_fast():
    adam_l2 = 1.0 - 1e-3 * np.arange(1001)
    verdict = claims.claim7_adam_l2_decay(adam_l2, {"fast": 1.0 - 2e-3 * np.arange(1001)}, lr=1e-3)
    assert verdict.status == FAILS
    never = claims.claim7_adam_l2_decay(np.ones(100), {"other": np.ones(100)}, lr=1e-3)
    assert never.status == FAILS and "never" in never.reason


# ------------------------------------------------------------------------------ claims 8-9
def test_claim8_holds_when_sparsity_falls_with_batch_and_rises_with_width():
    batches = [("b20", seeds([35, 34, 36], batch_size=20)), ("b40", seeds([30, 31, 29])),
               ("b160", seeds([20, 21, 19], batch_size=160))]
    widths = [("32-0.25x", seeds([20, 21, 19], width=0.25)), ("64-1x", seeds([40, 41, 39], width=1.0))]
    assert claims.claim8_batch_and_width(batches, widths).status == HOLDS


def test_claim8_fails_when_the_batch_trend_reverses():
    batches = [("b20", seeds([20, 21, 19], batch_size=20)), ("b160", seeds([40, 41, 39], batch_size=160))]
    widths = [("32-0.25x", seeds([20, 21, 19], width=0.25)), ("64-1x", seeds([40, 41, 39], width=1.0))]
    verdict = claims.claim8_batch_and_width(batches, widths)
    assert verdict.status == FAILS and "batch size: fails" in verdict.reason


def test_claim9_holds_and_fails_per_part():
    adam = seeds([30, 31, 29])
    holds = claims.claim9_variants(adam, amsgrad=seeds([5, 6, 5], optimizer="amsgrad"),
                                   leaky_relu=seeds([28, 29, 30], activation="leaky_relu"),
                                   low_gamma_lr=seeds([10, 11, 10], gamma_lr_scale=0.1))
    assert holds.status == HOLDS
    amsgrad_close = claims.claim9_variants(adam, amsgrad=seeds([25, 26, 24], optimizer="amsgrad"),
                                           leaky_relu=seeds([28, 29, 30], activation="leaky_relu"),
                                           low_gamma_lr=seeds([10, 11, 10], gamma_lr_scale=0.1))
    assert amsgrad_close.status == FAILS and "AMSGrad: fails" in amsgrad_close.reason
    partial = claims.claim9_variants(adam, amsgrad=seeds([5, 6, 5], optimizer="amsgrad"))
    assert partial.status == NOT_TESTED


# ------------------------------------------------------------------------------ claim 10
def pruned(before, after, params_kept, features_kept=80.0, err=None):
    return {"final": {"test_err_before": before, "test_err_after": after, "test_err": after if err is None else err,
                      "params_kept_pct": params_kept, "features_kept_pct": features_kept}}


def test_claim10_holds_when_error_is_unchanged_and_more_is_removed_than_li():
    verdict = claims.claim10_pruning([pruned(10.0, 10.1, 40.0)], [pruned(10.0, 10.5, 63.0, features_kept=70.0)])
    assert verdict.status == HOLDS and verdict.numbers["implicit params removed %"] == pytest.approx(60.0)


def test_claim10_fails_when_removal_changes_error_or_li_removes_more():
    assert claims.claim10_pruning([pruned(10.0, 12.0, 40.0)], [pruned(10.0, 10.5, 63.0)]).status == FAILS
    assert claims.claim10_pruning([pruned(10.0, 10.0, 80.0)], [pruned(10.0, 10.5, 50.0)]).status == FAILS


def test_claim10_not_tested_when_nothing_died():
    assert claims.claim10_pruning([pruned(10.0, 10.0, 100.0, features_kept=100.0)]).status == NOT_TESTED


def test_scorecard_lists_all_ten_claims():
    card = claims.scorecard({1: claims.Verdict(1, HOLDS, "why"), 2: None})
    assert list(card["claim"]) == list(range(1, 11))
    assert card.loc[0, "verdict"] == HOLDS and (card.loc[1:, "verdict"] == NOT_TESTED).all()
