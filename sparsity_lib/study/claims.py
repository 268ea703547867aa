"""The paper's ten qualitative claims as tested verdicts on stored run records.

Each `claimN_*` function takes the records a chapter trained (plain JSON records of `training.train`,
or the pruned records of `pruning.runner.prune_or_load` for claim 10) and returns a `Verdict`: holds, fails
or not tested, the numbers it used, and a one-line reason. Every criterion is written in its
function's docstring from the paper's wording (its ten qualitative claims, docs/paper_tables.md; the paper's
sections are named) and was fixed before the recalibrated `cpu` data existed.

The noise rule, shared by every claim (`clearly_greater`, from `study.seeds` with the seed
statistic and the grouping into settings): a difference between two settings counts only when the
difference of their seed means exceeds both `MIN_EFFECT` and `NOISE_Z` standard errors of that
difference. A setting with a single seed has no measured spread; it is given `ASSUMED_SPREAD` (so
one-seed comparisons need larger effects, and each verdict says how many seeds it rests on).
"Comparable error" means test errors within `COMPARABLE_ERROR` points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..nets.sparsity import GAMMA_THRESHOLD
from ..runs.labels import format_strength
from .seeds import (
    ASSUMED_SPREAD,
    CLEAR,
    MIN_EFFECT,
    NOISE_Z,
    Estimate,
    Setting,
    clearly_greater,
    comparison,
    margin,
    one_setting_each,
    settings,
)
from .seeds import (
    BELOW_FLOOR as SHORT_OF_FLOOR,
)

__all__ = ["ADAPTIVE", "ASSUMED_SPREAD", "BELOW_FLOOR", "checks", "claim10_pruning", "claim1_regularization_strength",
           "claim2_adaptive_vs_sgd", "claim3_l2_vs_wd", "claim4_task_difficulty", "claim5_layer_location",
           "claim6_betas_and_selectivity", "claim7_adam_l2_decay", "CLAIM7_RATE_BOUNDS", "claim8_batch_and_width",
           "claim9_variants", "CLAIMS", "clearly_greater", "COMPARABLE_ERROR", "criterion", "Estimate", "FAILS",
           "HOLDS", "margin", "MIN_EFFECT", "NOISE_Z", "NOT_TESTED", "one_setting_each", "scorecard", "Setting",
           "settings", "steps_to_fraction", "UNCHANGED_ERROR", "VARIANT_TOLERANCE", "Verdict"]

HOLDS, FAILS, NOT_TESTED = "holds", "fails", "not tested"
BELOW_FLOOR = "below the floor"  # in the paper's direction beyond the noise, short of the floor: does not hold
COMPARABLE_ERROR = 3.0    # test-error points within which two settings count as "at comparable error"
UNCHANGED_ERROR = 0.3     # test-error points: "removing dead filters leaves the error unchanged"
CLAIM7_RATE_BOUNDS = (0.5, 1.5)  # claim 7: Adam+L2's mean decrease per step, in units of lr
VARIANT_TOLERANCE = 0.25  # claim 9: "barely changes" = within this share of Adam's sparsity (or MIN_EFFECT)
ADAPTIVE = ("adam", "adagrad", "adadelta", "rmsprop", "adamax")  # the paper's adaptive methods (Table 1)
CLAIMS = {
    1: "No sparsity without L2/WD; sparsity rises with the regularization strength.",
    2: "Adaptive methods (Adam, Adagrad, Adadelta, RMSProp, Adamax) are sparser than SGD at comparable error.",
    3: "Under Adam, L2 gives more sparsity than WD at comparable error; under SGD they match.",
    4: "Sparsity falls as the task gets harder.",
    5: "SGD's sparsity concentrates in early layers; Adam's is also high in late layers.",
    6: "Adam learns negative BN betas and more selective (less universal) late-layer features than SGD.",
    7: "With zero or rare task gradient, L2 inside Adam decays a weight about lr per step, far faster "
       "than WD or SGD+L2.",
    8: "Larger mini-batches give less sparsity; narrower networks give less sparsity.",
    9: "AMSGrad is much less sparse than Adam; Leaky ReLU barely changes sparsity; a 10x lower LR on "
       "gamma cuts it.",
    10: "Removing the dead filters leaves test error unchanged and beats Li et al.'s pruning ratio at equal error.",
}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim check: `status` is HOLDS, FAILS, BELOW_FLOOR (the paper's direction beyond
    the noise, short of the criterion's floor; not counted as holding) or NOT_TESTED."""
    claim: int
    status: str
    reason: str
    numbers: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.status == HOLDS

    def __str__(self) -> str:
        return f"Claim {self.claim} {self.status}: {self.reason}"


def _seeds(found: Sequence[Setting]) -> str:
    counts = sorted({s.sparsity.n for s in found})
    return "/".join(map(str, counts)) + (" seed" if counts == [1] else " seeds")


def _comparable(a: Setting, b: Setting, tolerance: float = COMPARABLE_ERROR) -> bool:
    return abs(a.error.mean - b.error.mean) <= tolerance


def _combine(claim: int, parts: dict[str, Verdict], numbers: dict) -> Verdict:
    """A claim made of parts: fails if any part fails, else below the floor if a part is, holds if all
    hold, else not tested."""
    statuses = [part.status for part in parts.values()]
    status = (FAILS if FAILS in statuses else BELOW_FLOOR if BELOW_FLOOR in statuses
              else HOLDS if all(s == HOLDS for s in statuses) else NOT_TESTED)
    reason = "; ".join(f"{name}: {part.status} ({part.reason})" for name, part in parts.items())
    return Verdict(claim, status, reason, numbers)


def _rises_along(found: Sequence[Setting]) -> tuple[bool, bool]:
    """(the last clearly exceeds the first, no consecutive step clearly falls) for settings in order."""
    first, last = found[0].sparsity, found[-1].sparsity
    no_clear_fall = not any(clearly_greater(a.sparsity, b.sparsity) for a, b in zip(found, found[1:]))
    return clearly_greater(last, first), no_clear_fall


# ------------------------------------------------------------------------------ claims 1-3
def claim1_regularization_strength(records: Sequence[dict]) -> Verdict:
    """Claim 1 (Sec. 4.1, Table 1): no sparsity without L2/WD; sparsity rises with the strength.

    Criterion: the records are settings of one optimizer that differ in L2 (or WD) strength, with at
    least three strengths including 0. Holds when (a) the unregularized setting's sparsity is at
    most MIN_EFFECT % and (b) sparsity rises with strength: the strongest clearly exceeds the weakest
    nonzero one and no step to the next larger strength clearly falls. Not tested with fewer
    strengths or without the unregularized setting.
    """
    found = sorted(settings(records), key=lambda s: s.strength)
    numbers = {s.label: str(s.sparsity) for s in found}
    if len({s.config["optimizer"] for s in found}) > 1:
        raise ValueError("claim 1 compares strengths of one optimizer; got "
                         + ", ".join(sorted({s.config['optimizer'] for s in found})))
    if len(found) < 3 or found[0].strength != 0:
        return Verdict(1, NOT_TESTED, "needs an unregularized setting and at least two nonzero strengths", numbers)
    unregularized = found[0].sparsity.mean <= MIN_EFFECT
    rises, no_fall = _rises_along(found[1:])
    status = HOLDS if unregularized and rises and no_fall else FAILS
    reason = (f"no regularization {found[0].sparsity}% ({'<=' if unregularized else '>'} {MIN_EFFECT:g}%); "
              f"{found[1].label} {found[1].sparsity}% -> {found[-1].label} {found[-1].sparsity}% "
              f"({'rises' if rises and no_fall else 'does not rise clearly and monotonically'}; {_seeds(found)})")
    return Verdict(1, status, reason, numbers)


def claim2_adaptive_vs_sgd(records: Sequence[dict], tolerance: float = COMPARABLE_ERROR) -> Verdict:
    """Claim 2 (Sec. 4.1, Table 1): adaptive methods are sparser than SGD at comparable error.

    Criterion: for each adaptive optimizer present (ADAPTIVE), take its settings that have at least
    one SGD setting within `tolerance` test-error points; the optimizer passes when its sparsest such
    setting clearly exceeds *every* comparable SGD setting (SGD gets its sparsest comparable
    regularization, not its weakest). Holds when every adaptive optimizer with a comparable pair
    passes; fails when one does not; not tested when no pair is comparable or SGD is absent.
    """
    found = settings(records)
    sgd = [s for s in found if s.config["optimizer"] == "sgd"]
    numbers, failed, passed = {}, [], []
    for name in dict.fromkeys(s.config["optimizer"] for s in found if s.config["optimizer"] in ADAPTIVE):
        pairs = [(a, [b for b in sgd if _comparable(a, b, tolerance)])
                 for a in found if a.config["optimizer"] == name]
        pairs = [(a, bs) for a, bs in pairs if bs]
        if not pairs:
            numbers[name] = "no SGD setting at comparable error"
            continue
        best, rivals = max(pairs, key=lambda pair: pair[0].sparsity.mean)
        rival = max(rivals, key=lambda b: b.sparsity.mean)
        wins = all(clearly_greater(best.sparsity, b.sparsity) for b in rivals)
        numbers[name] = (f"{best.label} {best.sparsity}% (err {best.error}) vs {rival.label} {rival.sparsity}% "
                         f"(err {rival.error})")
        (passed if wins else failed).append(name)
    if not passed and not failed:
        return Verdict(2, NOT_TESTED, "no adaptive setting has an SGD setting at comparable error", numbers)
    status = FAILS if failed else HOLDS
    reason = (f"sparser than every comparable SGD setting: {', '.join(passed) or 'none'}"
              + (f"; not: {', '.join(failed)}" if failed else "") + f" (error within {tolerance:g} points; "
              f"{_seeds(found)})")
    return Verdict(2, status, reason, numbers)


def claim3_l2_vs_wd(records: Sequence[dict], tolerance: float = COMPARABLE_ERROR) -> Verdict:
    """Claim 3 (Sec. 4.1 / Sec. 3, Table 1): under Adam, L2 is sparser than WD at comparable error;
    under SGD they match.

    Criterion, Adam part: among Adam L2 settings that have an Adam WD setting within `tolerance`
    error points, the sparsest clearly exceeds every comparable WD setting. SGD part: at every
    strength that has both an SGD L2 and an SGD WD setting, their sparsities do not clearly differ
    (neither clearly exceeds the other) and differ by at most max(MIN_EFFECT, 25% of the larger).
    Holds when both parts hold; a part without the needed settings is not tested.
    """
    found = settings(records)
    numbers: dict = {}
    adam_l2 = [s for s in found if s.config["optimizer"] == "adam" and s.config["l2"] and not s.config["wd"]]
    adam_wd = [s for s in found if s.config["optimizer"] == "adam" and s.config["wd"] and not s.config["l2"]]
    pairs = [(a, [b for b in adam_wd if _comparable(a, b, tolerance)]) for a in adam_l2]
    pairs = [(a, bs) for a, bs in pairs if bs]
    if pairs:
        best, rivals = max(pairs, key=lambda pair: pair[0].sparsity.mean)
        rival = max(rivals, key=lambda b: b.sparsity.mean)
        numbers["adam"] = f"{best.label} {best.sparsity}% vs {rival.label} {rival.sparsity}%"
        wins = all(clearly_greater(best.sparsity, b.sparsity) for b in rivals)
        adam = Verdict(3, HOLDS if wins else FAILS, numbers["adam"])
    else:
        adam = Verdict(3, NOT_TESTED, "no Adam L2 and WD settings at comparable error")
    sgd = [s for s in found if s.config["optimizer"] == "sgd"]
    sgd_l2 = {s.config["l2"]: s for s in sgd if s.config["l2"] and not s.config["wd"]}
    sgd_wd = {s.config["wd"]: s for s in sgd if s.config["wd"] and not s.config["l2"]}
    matched = sorted(set(sgd_l2) & set(sgd_wd))
    if matched:
        checks = []
        for strength in matched:
            a, b = sgd_l2[strength].sparsity, sgd_wd[strength].sparsity
            close = abs(a.mean - b.mean) <= max(MIN_EFFECT, 0.25 * max(a.mean, b.mean))
            checks.append(close and not clearly_greater(a, b) and not clearly_greater(b, a))
            numbers[f"SGD λ {format_strength(strength)}"] = f"L2 {a}% vs WD {b}%"
        sgd = Verdict(3, HOLDS if all(checks) else FAILS,
                      ", ".join(f"{k}: {v}" for k, v in numbers.items() if k.startswith("SGD")))
    else:
        sgd = Verdict(3, NOT_TESTED, "no SGD L2 and WD settings at the same strength")
    return _combine(3, {"Adam": adam, "SGD": sgd}, numbers)


# ------------------------------------------------------------------------------ claim 4
def claim4_task_difficulty(tasks: Sequence[tuple[str, Sequence[dict]]]) -> Verdict:
    """Claim 4 (Sec. 4.2, Tables 1/4/5): sparsity falls as the task gets harder.

    `tasks`: (label, records of one setting) from the easiest task to the hardest, same optimizer
    and regularization. Criterion: the order must really be one of difficulty (test error rises
    along it: each task's mean error at least as high as the previous one's, the hardest clearly
    above the easiest by MIN_EFFECT points) — otherwise not tested. Then holds when the easiest
    task's sparsity clearly exceeds the hardest's (the paper's own two-point comparison) and no step to a
    harder task clearly rises (the trend); the reason reports both.
    """
    if len(tasks) < 2:
        return Verdict(4, NOT_TESTED, "needs at least two tasks")
    found = one_setting_each(tasks, "claim 4: task")
    numbers = {label: f"sparsity {s.sparsity}%, error {s.error}%" for label, s in found}
    errors = [s.error.mean for _, s in found]
    harder = all(b >= a for a, b in zip(errors, errors[1:])) and errors[-1] - errors[0] > MIN_EFFECT
    if not harder:
        return Verdict(4, NOT_TESTED, "the tasks are not ordered by difficulty (test error does not rise along "
                       "them): " + ", ".join(f"{label} {s.error}%" for label, s in found), numbers)
    (easy, first), (hard, last) = found[0], found[-1]
    ends = comparison(first.sparsity, last.sparsity)
    rises = [f"{a_label} {a.sparsity}% -> {b_label} {b.sparsity}%" for (a_label, a), (b_label, b)
             in zip(found, found[1:]) if clearly_greater(b.sparsity, a.sparsity)]
    status = HOLDS if ends == CLEAR and not rises else FAILS
    reason = (f"the paper's two-point comparison, {easy} {first.sparsity}% -> {hard} {last.sparsity}%: {ends}; "
              + (f"the trend: a step to a harder task clearly rises ({'; '.join(rises)})" if rises else
                 "the trend: no step to a harder task clearly rises" if len(found) > 2 else "no intermediate task"))
    return Verdict(4, status, reason + f" ({_seeds([s for _, s in found])})", numbers)


# ------------------------------------------------------------------------------ claims 5-6
def _thirds(records: Sequence[dict]) -> tuple[list[str], list[str]]:
    """(early, late) conv layers: the first and the last third of the network's BN layers."""
    names = [layer["layer"] for layer in records[0]["final"]["layers"]]
    third = max(1, len(names) // 3)
    return names[:third], names[-third:]


def _dead_percent(records: Sequence[dict], layers: Sequence[str]) -> Estimate:
    """% of the features of `layers` whose |gamma| is below the threshold, over seeds."""
    def percent(record):
        rows = [row for row in record["final"]["layers"] if row["layer"] in layers]
        return 100.0 * sum(r["inactive_gamma"] for r in rows) / sum(r["features"] for r in rows)
    return Estimate.of([percent(r) for r in records])


def claim5_layer_location(sgd: Sequence[dict], adam: Sequence[dict]) -> Verdict:
    """Claim 5 (Sec. 4.1, Table 2): SGD's sparsity concentrates in early layers; Adam's is also high
    in late layers.

    `sgd`, `adam`: the seeds of one SGD and one Adam setting of the same network. Early = the first
    third of the conv layers, late = the last third. Criterion: (a) SGD kills at least MIN_EFFECT %
    of the early features (else not tested: nothing to locate) and its early-layer dead share
    clearly exceeds its late-layer one; (b) Adam's late-layer dead share clearly exceeds SGD's.
    """
    early, late = _thirds(sgd)
    sgd_early, sgd_late = _dead_percent(sgd, early), _dead_percent(sgd, late)
    adam_late = _dead_percent(adam, late)
    numbers = {"early layers": ",".join(early), "late layers": ",".join(late), "SGD early %": str(sgd_early),
               "SGD late %": str(sgd_late), "Adam late %": str(adam_late),
               "Adam early %": str(_dead_percent(adam, early))}
    if sgd_early.mean < MIN_EFFECT:
        return Verdict(5, NOT_TESTED, f"SGD kills only {sgd_early}% of early features: nothing to locate", numbers)
    sgd_early_first = clearly_greater(sgd_early, sgd_late)
    adam_late_high = clearly_greater(adam_late, sgd_late)
    status = HOLDS if sgd_early_first and adam_late_high else FAILS
    reason = (f"SGD early {sgd_early}% vs late {sgd_late}% ({'early' if sgd_early_first else 'not clearly early'}); "
              f"Adam late {adam_late}% ({'clearly' if adam_late_high else 'not clearly'} above SGD's)")
    return Verdict(5, status, reason, numbers)


def _late_living(records: Sequence[dict], key: str, late: Sequence[str]) -> Estimate:
    """Per seed, the mean of bn[layer][key] (beta) or universality[layer] over living late-layer features."""
    means = []
    for record in records:
        values = []
        for layer in late:
            gamma = np.abs(np.asarray(record["bn"][layer]["gamma"]))
            source = record["bn"][layer]["beta"] if key == "beta" else record["universality"][layer]
            values.extend(np.asarray(source, dtype=float)[gamma >= GAMMA_THRESHOLD])
        means.append(float(np.mean(values)) if values else math.nan)
    return Estimate.of(means)


def claim6_betas_and_selectivity(sgd: Sequence[dict], adam: Sequence[dict]) -> Verdict:
    """Claim 6 (Sec. 4.1, Fig. 2-3): Adam learns negative BN betas and more selective (less universal)
    late-layer features than SGD.

    `sgd`, `adam`: the seeds of one SGD and one Adam setting. Criterion, over the living features (|gamma|
    >= threshold) of the last third of the conv layers: (a) Adam's mean beta is negative and clearly
    below SGD's (noise rule with floor 0.05 and an assumed one-seed spread of 0.05); (b) Adam's mean
    universality (% of images a feature fires on) is clearly below SGD's (floor 5 points, assumed
    spread 5 points). Holds when both hold; a part in the paper's direction beyond the noise but short
    of its floor is 'below the floor', which does not hold.
    """
    _, late = _thirds(sgd)
    beta_sgd, beta_adam = _late_living(sgd, "beta", late), _late_living(adam, "beta", late)
    uni_sgd, uni_adam = _late_living(sgd, "universality", late), _late_living(adam, "universality", late)
    numbers = {"late layers": ",".join(late), "beta SGD": f"{beta_sgd.mean:.3f}", "beta Adam": f"{beta_adam.mean:.3f}",
               "universality SGD %": str(uni_sgd), "universality Adam %": str(uni_adam)}
    if any(math.isnan(e.mean) for e in (beta_sgd, beta_adam)):
        return Verdict(6, NOT_TESTED, "a setting has no living late-layer feature", numbers)
    lower_beta = comparison(beta_sgd, beta_adam, floor=0.05, assumed=0.05)
    lower_universality = comparison(uni_sgd, uni_adam, floor=5.0, assumed=5.0)
    parts = {"negative betas": Verdict(6, _graded(lower_beta) if beta_adam.mean < 0 else FAILS,
                                       f"Adam {beta_adam.mean:.3f} vs SGD {beta_sgd.mean:.3f}: "
                                       + (lower_beta if beta_adam.mean < 0 else "Adam's mean beta is not negative")
                                       + "; floor 0.05"),
             "selectivity": Verdict(6, _graded(lower_universality),
                                    f"universality Adam {uni_adam}% vs SGD {uni_sgd}%: {lower_universality}; "
                                    "floor 5 points")}
    return _combine(6, parts, numbers)


def _graded(outcome: str) -> str:
    """The status of one comparison (`seeds.comparison`): clear holds, beyond noise but short of the
    floor is BELOW_FLOOR, anything else fails."""
    return HOLDS if outcome == CLEAR else BELOW_FLOOR if outcome == SHORT_OF_FLOOR else FAILS


# ------------------------------------------------------------------------------ claim 7
def steps_to_fraction(theta: Sequence[float], fraction: float = 0.1) -> float:
    """First step at which |theta| <= fraction * |theta[0]|; inf when it never gets there."""
    theta = np.abs(np.asarray(theta, dtype=float))
    below = np.nonzero(theta <= fraction * theta[0])[0]
    return float(below[0]) if len(below) else math.inf


def claim7_adam_l2_decay(adam_l2: Sequence[float], others: dict[str, Sequence[float]], lr: float,
                         speedup: float = 10.0) -> Verdict:
    """Claim 7 (Sec. 3, Fig. 4): with zero (or rare) task gradient, L2 inside Adam decays a weight by
    about lr per step, far faster than WD or SGD+L2.

    `adam_l2`: the weight's trajectory (theta after 0..T steps) under Adam+L2 at learning rate `lr`;
    `others`: label -> trajectory of the alternatives (Adam+WD, SGD+L2, ...) from the same theta0.
    Criterion: (a) Adam+L2's mean decrease per step until |theta| reaches 10% of theta0 lies within
    [0.5, 1.5] x lr; (b) it reaches 10% of theta0 at least `speedup` times sooner than every
    alternative (an alternative that never gets there within T steps counts as infinitely slow). Tested
    with zero task gradient only: the rare-gradient half of the sentence is shown, not judged.
    """
    reach = steps_to_fraction(adam_l2)
    numbers = {"Adam+L2 steps to 10%": reach, **{f"{k} steps to 10%": steps_to_fraction(v) for k, v in others.items()}}
    if math.isinf(reach):
        return Verdict(7, FAILS, "tested with zero task gradient only: Adam+L2 never decays to 10% of theta0 "
                       "within the simulated steps", numbers)
    per_step = (adam_l2[0] - adam_l2[int(reach)]) / max(1.0, reach)
    numbers["Adam+L2 decrease per step / lr"] = per_step / lr
    low, high = CLAIM7_RATE_BOUNDS
    about_lr = low <= per_step / lr <= high
    slower = {k: steps_to_fraction(v) for k, v in others.items()}
    faster = all(s >= speedup * reach for s in slower.values())
    status = HOLDS if about_lr and faster else FAILS
    reason = ("tested with zero task gradient only (the rare-gradient half of the sentence is shown, not judged): "
              f"Adam+L2 decays {per_step / lr:.2f} x lr per step and reaches 10% in {reach:.0f} steps; "
              + ", ".join(f"{k} in {'never' if math.isinf(s) else f'{s:.0f}'}" for k, s in slower.items()))
    return Verdict(7, status, reason, numbers)


# ------------------------------------------------------------------------------ claims 8-9
def _ordered_trend(groups: Sequence[tuple[str, Sequence[dict]]], falling: bool) -> Verdict:
    """Holds when sparsity clearly falls (or rises) from the first group to the last, with no clear
    step the other way; each group holds the seeds of one setting."""
    found = one_setting_each(groups, "group")
    if len(found) < 2:
        return Verdict(8, NOT_TESTED, "needs at least two settings")
    ordered = [s for _, s in found][::-1] if falling else [s for _, s in found]
    rises, no_fall = _rises_along(ordered)
    text = " -> ".join(f"{label} {s.sparsity}%" for label, s in found)
    return Verdict(8, HOLDS if rises and no_fall else FAILS, text + f" ({_seeds(ordered)})")


def claim8_batch_and_width(batches: Sequence[tuple[str, Sequence[dict]]],
                           widths: Sequence[tuple[str, Sequence[dict]]]) -> Verdict:
    """Claim 8 (Sec. 5.1, Tables 3 and 6): larger mini-batches give less sparsity; narrower networks
    give less sparsity.

    `batches`: (label, seeds of one setting) from the smallest batch to the largest, iteration
    matched; `widths`: from the narrowest network to the widest. Criterion, each part: sparsity
    (% of features) clearly falls from the smallest to the largest batch (rises from the narrowest
    to the widest network) and no consecutive step clearly goes the other way. A part with fewer
    than two settings is not tested; the claim holds when both parts hold.
    """
    parts = {"batch size": _ordered_trend(batches, falling=True), "width": _ordered_trend(widths, falling=False)}
    return _combine(8, parts, {name: part.reason for name, part in parts.items()})


def claim9_variants(adam: Sequence[dict], amsgrad: Sequence[dict] = (), leaky_relu: Sequence[dict] = (),
                    low_gamma_lr: Sequence[dict] = ()) -> Verdict:
    """Claim 9 (Sec. 5.1, supplementary): AMSGrad is much less sparse than Adam; Leaky ReLU barely
    changes sparsity; a 10x lower LR on gamma cuts it.

    Each argument: the seeds of one setting that differs from `adam` only in that respect.
    Criterion: AMSGrad's sparsity is clearly below Adam's and at most half of it ("much less");
    Leaky ReLU's differs from Adam's by at most max(MIN_EFFECT, 25% of Adam's) ("barely"); the
    low-gamma-LR setting's sparsity is clearly below Adam's. A part without records is not tested.
    """
    base = settings(adam)[0].sparsity
    parts = {}
    if amsgrad:
        s = settings(amsgrad)[0].sparsity
        ok = clearly_greater(base, s) and s.mean <= 0.5 * base.mean
        parts["AMSGrad"] = Verdict(9, HOLDS if ok else FAILS, f"{s}% vs Adam {base}%")
    else:
        parts["AMSGrad"] = Verdict(9, NOT_TESTED, "no AMSGrad run")
    if leaky_relu:
        s = settings(leaky_relu)[0].sparsity
        ok = abs(s.mean - base.mean) <= max(MIN_EFFECT, VARIANT_TOLERANCE * base.mean)
        parts["Leaky ReLU"] = Verdict(9, HOLDS if ok else FAILS, f"{s}% vs Adam {base}%")
    else:
        parts["Leaky ReLU"] = Verdict(9, NOT_TESTED, "no Leaky ReLU run")
    if low_gamma_lr:
        s = settings(low_gamma_lr)[0].sparsity
        parts["gamma lr x0.1"] = Verdict(9, HOLDS if clearly_greater(base, s) else FAILS, f"{s}% vs Adam {base}%")
    else:
        parts["gamma lr x0.1"] = Verdict(9, NOT_TESTED, "no low-gamma-LR run")
    return _combine(9, parts, {name: part.reason for name, part in parts.items()})


# ------------------------------------------------------------------------------ claim 10
def claim10_pruning(implicit: Sequence[dict], li: Sequence[dict] = (), tolerance: float = COMPARABLE_ERROR) -> Verdict:
    """Claim 10 (Sec. 5.2, Tables 7-8): removing the dead filters leaves the test error unchanged and
    beats Li et al.'s pruning ratio at equal error.

    `implicit`: pruned records (`prune.prune_or_load(method="implicit")`, no fine-tuning) of runs
    that lost features; `li`: pruned records of Li et al.'s filter-norm pruning of the same base
    runs. Criterion: (a) at least one implicit record removes features (else not tested), and
    every one changes the test error by at most UNCHANGED_ERROR points; (b) the implicit pruning
    removes a larger share of conv parameters than every Li et al. record whose test error is no
    better than the implicit one's minus `tolerance` (equal error). Part (b) is not tested without
    Li et al. records.
    """
    removed = [r for r in implicit if r["final"]["features_kept_pct"] < 100.0]
    numbers = {}
    if not removed:
        parts = {"error unchanged": Verdict(10, NOT_TESTED, "no implicit record removes a feature")}
    else:
        changes = [abs(r["final"]["test_err_after"] - r["final"]["test_err_before"]) for r in removed]
        numbers["largest error change (points)"] = max(changes)
        parts = {"error unchanged": Verdict(10, HOLDS if max(changes) <= UNCHANGED_ERROR else FAILS,
                                            f"largest change {max(changes):.2f} points over {len(removed)} runs")}
    if removed and li:
        best = max(removed, key=lambda r: 100.0 - r["final"]["params_kept_pct"])
        ours = 100.0 - best["final"]["params_kept_pct"]
        rivals = [r for r in li if r["final"]["test_err"] <= best["final"]["test_err"] + tolerance]
        theirs = max((100.0 - r["final"]["params_kept_pct"] for r in rivals), default=math.nan)
        numbers.update({"implicit params removed %": ours, "Li et al. params removed %": theirs})
        if not rivals:
            parts["vs Li et al."] = Verdict(10, NOT_TESTED, "no Li et al. record at comparable error")
        else:
            parts["vs Li et al."] = Verdict(10, HOLDS if ours > theirs else FAILS,
                                            f"{ours:.1f}% of conv parameters removed vs {theirs:.1f}%")
    else:
        parts["vs Li et al."] = Verdict(10, NOT_TESTED, "no Li et al. record")
    return _combine(10, parts, numbers)


def checks() -> dict:
    """Claim number -> the function that judges it (its docstring states the criterion)."""
    return {1: claim1_regularization_strength, 2: claim2_adaptive_vs_sgd, 3: claim3_l2_vs_wd,
            4: claim4_task_difficulty, 5: claim5_layer_location, 6: claim6_betas_and_selectivity,
            7: claim7_adam_l2_decay, 8: claim8_batch_and_width, 9: claim9_variants, 10: claim10_pruning}


def criterion(claim: int) -> str:
    """The rule claim `claim` is judged by, in words: its check's docstring from 'Criterion' on, with
    the named constants' values, then the noise rule that 'clearly' means."""
    doc = " ".join(checks()[claim].__doc__.split())
    text = doc[doc.index("Criterion") + len("Criterion"):].lstrip(":, ")
    text = text[0].upper() + text[1:]
    for name, value in (("MIN_EFFECT", MIN_EFFECT), ("COMPARABLE_ERROR", COMPARABLE_ERROR),
                        ("UNCHANGED_ERROR", UNCHANGED_ERROR), ("`tolerance`", COMPARABLE_ERROR), ("`speedup`", 10.0)):
        text = text.replace(name, f"{name.strip('`')} (= {value:g})")
    if "clearly" not in text:
        return text
    return (f"{text} 'Clearly' is the noise rule: the difference exceeds max(floor, {NOISE_Z:g} standard errors "
            f"of the difference), the floor MIN_EFFECT (= {MIN_EFFECT:g} points) unless stated, a one-seed "
            f"setting assumed to spread {ASSUMED_SPREAD:g} points.")


def scorecard(verdicts: dict[int, Verdict | None]):
    """A table of the ten claims: number, claim, verdict, reason (a claim missing from `verdicts`
    or given as None is 'not tested')."""
    rows = []
    for number, text in CLAIMS.items():
        verdict = verdicts.get(number)
        rows.append({"claim": number, "statement": text, "verdict": verdict.status if verdict else NOT_TESTED,
                     "why": verdict.reason if verdict else "no stored runs for this check"})
    return pd.DataFrame(rows)
