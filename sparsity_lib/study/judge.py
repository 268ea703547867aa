"""The claims judged on a chapter's runs: for each of the paper's ten claims, which stored runs it
reads (`study.plans`), the tested verdict function it calls (`study.claims`), and the scorecard the
intro shows, per profile. A claim whose runs are missing is "not tested", never guessed."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..nets.optim import simulate_weight
from ..runs.labels import net_label
from . import claims
from .chapter import Chapter, MissingRuns
from .claims import Verdict
from .plans import (
    CHAPTER_OF_CLAIM,
    Runs,
    batch_variants,
    class_count_variants,
    difficulty_variants,
    l2_decay_settings,
    layer_pair_variants,
    pruned,
    table1_variants,
    train_book_runs,
    variant_fields,
    vgg_fields,
    width_variants,
)

__all__ = ["batch_and_width_verdict", "claim_verdicts", "class_count_verdict", "difficulty_verdict",
           "l2_decay_verdict", "large_dataset_verdicts", "layer_verdicts", "pruning_verdict", "regularizer_verdicts",
           "scorecard", "scorecard_by_profile", "variant_verdict", "verdict_changes"]


def regularizer_verdicts(runs: Runs, l2: dict | None = None, wd: dict | None = None) -> dict[int, Verdict]:
    """Claims 1-3 on the Table 1 settings (`l2`, `wd` as in `table1_variants`). Each claim asks `runs`
    for its own settings only, so with `Chapter.stored_runs` a claim whose runs are all stored is judged
    even while another's are missing (that one is 'not tested', saying which run is missing)."""
    variants = table1_variants(l2, wd)
    l2_only = [v for v in variants if not v.get("wd")]
    adam_l2 = [v for v in l2_only if v["optimizer"] == "adam"]
    adam_sgd = [v for v in variants if v["optimizer"] in ("adam", "sgd")]
    return {1: _unless_missing(1, lambda: claims.claim1_regularization_strength(runs(adam_l2))),
            2: _unless_missing(2, lambda: claims.claim2_adaptive_vs_sgd(runs(l2_only))),
            3: _unless_missing(3, lambda: claims.claim3_l2_vs_wd(runs(adam_sgd)))}


def _unless_missing(number: int, check: Callable[[], Verdict]) -> Verdict:
    """`check()`, or a 'not tested' verdict naming the missing runs when the store lacks some."""
    try:
        return check()
    except MissingRuns as missing:
        return Verdict(number, claims.NOT_TESTED, str(missing))


def layer_verdicts(runs: Runs, l2: float | None = None) -> dict[int, Verdict]:
    """Claims 5 and 6 on `layer_pair_variants(l2)` (None: the book's settings)."""
    sgd, adam = (runs([variant]) for variant in layer_pair_variants(l2))
    return {5: claims.claim5_layer_location(sgd, adam), 6: claims.claim6_betas_and_selectivity(sgd, adam)}


def difficulty_verdict(chapter: Chapter, runs: Runs, clutter: list[float] | None = None) -> Verdict:
    """Claim 4 on `difficulty_variants(chapter, clutter)` (None: the book's settings): the scorecard's."""
    return claims.claim4_task_difficulty([(label, runs([fields]))
                                          for label, fields in difficulty_variants(chapter, clutter)])


def class_count_verdict(chapter: Chapter, runs: Runs, counts: list[int] | None = None) -> Verdict | None:
    """Claim 4's criterion, unchanged, on `class_count_variants(chapter, counts)` (None on real data).
    Chapter 5 shows it beside the scorecard's clutter verdict; it does not replace it."""
    tasks = class_count_variants(chapter, counts)
    return claims.claim4_task_difficulty([(label, runs([fields])) for label, fields in tasks]) if tasks else None


def l2_decay_verdict(lr: float | None = None, l2: float | None = None, steps: int | None = None) -> Verdict:
    """Claim 7 on simulated single-weight trajectories with zero task gradient (paper Fig. 4). None: the
    book's settings (`l2_decay_settings`: Adam's lr 1e-3, L2 1e-4, 3000 steps)."""
    book = l2_decay_settings(lr, l2, steps)
    lr, l2, steps = book["lr"], book["l2"], book["steps"]
    others = {"Adam+WD": simulate_weight("adam", wd=l2, lr=lr, steps=steps),
              "SGD+L2": simulate_weight("sgd", l2=l2, steps=steps)}
    return claims.claim7_adam_l2_decay(simulate_weight("adam", l2=l2, lr=lr, steps=steps), others, lr=lr)


def batch_and_width_verdict(chapter: Chapter, runs: Runs, batch_sizes: list[int] | None = None,
                            widths: list[str] | None = None) -> Verdict:
    """Claim 8 on `batch_variants(chapter, batch_sizes)` and `width_variants(chapter, widths)`, each width
    named by the paper's net and the size it is trained at here (e.g. '64-1x (trained 32-0.25x)')."""
    widths_trained = [(f"{label} (trained {c.first_width}-{c.width:g}x)", f)
                      for label, f in width_variants(chapter, widths) for c in [chapter.config(**f)]]
    return claims.claim8_batch_and_width([(label, runs([f])) for label, f in batch_variants(chapter, batch_sizes)],
                                         [(label, runs([f])) for label, f in widths_trained])


def variant_verdict(chapter: Chapter, runs: Runs, negative_slope: float | None = None,
                    gamma_lr_scale: float | None = None) -> Verdict:
    """Claim 9 on `variant_fields(chapter, negative_slope, gamma_lr_scale)` (None: the book's settings)."""
    found = {name: runs([fields]) for name, fields in variant_fields(chapter, negative_slope, gamma_lr_scale).items()}
    return claims.claim9_variants(found["adam"], found["amsgrad"], found["leaky_relu"], found["low_gamma_lr"])


def pruning_verdict(chapter: Chapter, runs: Runs) -> Verdict:
    """Claim 10 on VGG-16 (batch 40, every seed): its dead features removed (no fine-tuning) vs Li et
    al.'s filter pruning of the same networks, fine-tuned for the profile's `fine_tune_steps`."""
    bases = runs([vgg_fields(chapter)])
    verdict = claims.claim10_pruning(pruned(chapter, bases), pruned(chapter, bases, "li", fine_tune=True))
    trained = net_label(chapter.config(**vgg_fields(chapter)))
    return dataclasses.replace(verdict, reason=f"VGG-16 (trained: {trained}): {verdict.reason}")


def claim_verdicts(chapter: Chapter, train_missing: bool = False) -> dict[int, Verdict]:
    """Every claim's verdict at the chapter's profile (claim 10 prunes the stored VGG-16 runs, seconds).

    `train_missing=False` judges only what the store holds: a claim whose runs are missing is
    'not tested' with the reason saying so. `train_missing=True` first trains every run of the book
    that the store lacks (`train_book_runs`: the verdicts' runs, then the chapters' illustrations).
    """
    if train_missing:
        train_book_runs(chapter)
    runs = chapter.stored_runs
    checks = {(1, 2, 3): lambda: regularizer_verdicts(runs),
              (4,): lambda: {4: difficulty_verdict(chapter, runs)},
              (5, 6): lambda: layer_verdicts(runs),
              (7,): lambda: {7: l2_decay_verdict()},
              (8,): lambda: {8: batch_and_width_verdict(chapter, runs)},
              (9,): lambda: {9: variant_verdict(chapter, runs)},
              (10,): lambda: {10: pruning_verdict(chapter, runs)}}
    verdicts: dict[int, Verdict] = {}
    for numbers, check in checks.items():
        try:
            verdicts.update(check())
        except MissingRuns as missing:
            verdicts.update({n: Verdict(n, claims.NOT_TESTED, str(missing)) for n in numbers})
    return verdicts


def scorecard(chapter: Chapter, verdicts: dict[int, Verdict] | None = None):
    """The ten claims with their verdicts at the chapter's profile and the chapter that shows each:
    a DataFrame (claim, statement, verdict, why, chapter), from the store only (never trains)."""
    frame = claims.scorecard(claim_verdicts(chapter) if verdicts is None else verdicts)
    return frame.assign(chapter=frame["claim"].map(CHAPTER_OF_CLAIM))


def scorecard_by_profile(chapter: Chapter, profiles: tuple[str, ...] = ("cpu", "long")):
    """The ten claims judged at each of `profiles` from the store only (never trains): a DataFrame
    (claim, statement, chapter, then per profile P the columns `P` (its verdict) and `why (P)`), each
    profile read from `chapter`'s store, dataset, data root and device. Issue 20: one column per length."""
    frame = None
    for name in profiles:
        at = Chapter(profile=name, dataset=chapter.dataset, execution=chapter.execution)
        card = scorecard(at).rename(columns={"verdict": name, "why": f"why ({name})"})
        frame = card if frame is None else frame.merge(card[["claim", name, f"why ({name})"]], on="claim")
    return frame[["claim", "statement", "chapter", *[c for c in frame if c not in ("claim", "statement", "chapter")]]]


def verdict_changes(frame, first: str, second: str) -> list[int]:
    """The claims whose verdict differs between profile columns `first` and `second` of
    `scorecard_by_profile`, leaving out claims not tested at either (no verdict to compare)."""
    judged = (frame[first] != claims.NOT_TESTED) & (frame[second] != claims.NOT_TESTED)
    return frame.loc[judged & (frame[first] != frame[second]), "claim"].tolist()


def large_dataset_verdicts(tiny: list[dict], imagenet: list[dict]) -> dict[int, Verdict]:
    """Claim 8 on TinyImageNet's Adam runs ordered by batch size (the width part is not run here, so the
    claim is at best 'not tested' with the batch part shown), and claim 4 from TinyImageNet (Adam, batch 40)
    to ImageNet (BasicNet, its smallest batch). A claim without its runs is 'not tested', saying which."""
    adam = [r for r in tiny if r["config"]["optimizer"] == "adam"]
    batches = sorted({r["config"]["batch_size"] for r in adam})
    if adam:
        groups = [(f"batch {b}", [r for r in adam if r["config"]["batch_size"] == b]) for b in batches]
        eight = claims.claim8_batch_and_width(groups, [])
    else:
        eight = Verdict(8, claims.NOT_TESTED, "no TinyImageNet runs in this execution")
    tiny40 = [r for r in adam if r["config"]["batch_size"] == 40]
    if tiny40 and imagenet:
        smallest = min(r["config"]["batch_size"] for r in imagenet)
        hardest = [r for r in imagenet if r["config"]["batch_size"] == smallest]
        four = claims.claim4_task_difficulty([("TinyImageNet b40", tiny40), (f"ImageNet b{smallest}", hardest)])
    else:
        four = Verdict(4, claims.NOT_TESTED, "needs TinyImageNet (Adam, batch 40) and ImageNet runs; "
                       f"this execution has {len(tiny40)} and {len(imagenet)}")
    return {4: four, 8: eight}
