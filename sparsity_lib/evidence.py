"""Which runs each of the paper's ten claims is judged on, and the verdicts they give.

One place for the chapters and the intro's scorecard: `claim_verdicts(chapter)` judges every claim
on the runs listed here (three seeds each at `cpu` and `paper`), from the store only or training
what is missing. The criteria themselves live in `claims`; this module only chooses the records.
The L2 strength of the Sec. 5 experiments is the profile's `section5_l2` (the paper's default 1e-4;
1e-3 at `cpu`, where runs are too short for 1e-4 to kill filters: BENCHMARKS.md, calibration).
"""
from __future__ import annotations

from typing import Callable

from . import claims
from .chapter import Chapter, MissingRuns
from .claims import Verdict
from .config import RunConfig, config_hash, width_variant
from .optim import DEFAULT_LR, simulate_weight
from .pruned_runs import prune_or_load

__all__ = ["BATCHES", "CHAPTER_FILES", "CHAPTER_OF_CLAIM", "CLUTTER", "TABLE1_L2", "TABLE1_WD", "VGG_BATCHES",
           "WIDTHS", "all_variants", "batch_variants", "chapter_files", "claim_10", "claim_4", "claim_7", "claim_8",
           "claim_9", "claim_verdicts", "claims_1_to_3", "claims_5_and_6", "difficulty_variants",
           "layer_pair_variants", "scorecard", "strong_l2", "table1_variants", "variant_fields", "vgg_fields",
           "width_variants"]

# Regularization of the optimizer comparisons (Table 1): optimizer -> L2 strengths, WD strengths.
TABLE1_L2 = {"adam": (0.0, 1e-4, 1e-3), "sgd": (1e-4, 1e-3), "adagrad": (1e-2,), "adadelta": (1e-3,),
             "rmsprop": (1e-3,), "adamax": (1e-3,)}
TABLE1_WD = {"adam": (1e-4,), "sgd": (1e-3,)}
BATCHES = (20, 40, 160)                      # Table 3, iteration matched
WIDTHS = ("32-0.25x", "64-0.5x", "64-1x")   # Table 6, narrowest first (scaled by the profile)
CLUTTER = (0.0, 0.5, 1.0)                    # clean -> cluttered synthetic background (Sec. 4.2)
VGG_BATCHES = (40, 80, 160)                  # Table 7 columns (one seed each beyond batch 40)
CHAPTER_FILES = {1: "01_setup.ipynb", 2: "02_primary_findings.ipynb", 3: "03_where_filters_die.ipynb",
                 4: "04_l2_inside_adam.ipynb", 5: "05_task_difficulty.ipynb", 6: "06_hyperparameters.ipynb",
                 7: "07_supplementary.ipynb", 8: "08_imagenet_tinyimagenet.ipynb", 9: "09_pruning.ipynb",
                 10: "10_l1l2_pseudonorm.ipynb"}
CHAPTER_OF_CLAIM = {1: 2, 2: 2, 3: 2, 4: 5, 5: 3, 6: 3, 7: 4, 8: 6, 9: 7, 10: 9}

Runs = Callable[[list[dict]], list[dict]]


def chapter_files() -> dict[int, str]:
    """Chapter number -> its notebook's file name (in notebooks/ and book/)."""
    return dict(CHAPTER_FILES)


def strong_l2(chapter: Chapter) -> float:
    """The L2 strength of the Sec. 5 experiments at the chapter's profile."""
    return chapter.settings.section5_l2


def table1_variants(l2: dict | None = None, wd: dict | None = None) -> list[dict]:
    """Every optimizer/regularizer setting of claims 1-3 (RunConfig fields). `l2`, `wd`: optimizer ->
    strengths, None for the book's (TABLE1_L2, TABLE1_WD); `{}` for none."""
    l2 = TABLE1_L2 if l2 is None else l2
    wd = TABLE1_WD if wd is None else wd
    return ([{"optimizer": name, "l2": float(value)} for name, values in l2.items() for value in values]
            + [{"optimizer": name, "l2": 0.0, "wd": float(value)} for name, values in wd.items() for value in values])


def _select(records: list[dict], **fields) -> list[dict]:
    return [r for r in records if all(r["config"][k] == v for k, v in fields.items())]


def claims_1_to_3(runs: Runs, l2: dict | None = None, wd: dict | None = None) -> dict[int, Verdict]:
    """Claims 1-3 on the Table 1 settings (`l2`, `wd` as in `table1_variants`)."""
    records = runs(table1_variants(l2, wd))
    adam_l2 = [r for r in _select(records, optimizer="adam") if not r["config"]["wd"]]
    return {1: claims.claim1_regularization_strength(adam_l2),
            2: claims.claim2_adaptive_vs_sgd([r for r in records if not r["config"]["wd"]]),
            3: claims.claim3_l2_vs_wd(_select(records, optimizer="adam") + _select(records, optimizer="sgd"))}


def layer_pair_variants() -> list[dict]:
    """The SGD and Adam settings whose layers, betas and universality claims 5 and 6 compare (Table 2)."""
    return [{"optimizer": "sgd", "l2": 1e-3}, {"optimizer": "adam", "l2": 1e-3}]


def claims_5_and_6(runs: Runs) -> dict[int, Verdict]:
    sgd, adam = (runs([variant]) for variant in layer_pair_variants())
    return {5: claims.claim5_layer_location(sgd, adam), 6: claims.claim6_betas_and_selectivity(sgd, adam)}


def difficulty_variants(chapter: Chapter) -> list[tuple[str, dict]]:
    """(label, fields) from the easiest task to the hardest: clean -> cluttered synthetic backgrounds,
    or CIFAR-10 -> CIFAR-100 on real data."""
    l2 = strong_l2(chapter)
    if chapter.dataset_used == "synthetic":
        return [(f"clutter {c:g}", {"optimizer": "adam", "l2": l2, "clutter": c}) for c in CLUTTER]
    return [(name, {"optimizer": "adam", "l2": l2, "dataset": name}) for name in ("cifar10", "cifar100")]


def claim_4(chapter: Chapter, runs: Runs) -> Verdict:
    return claims.claim4_task_difficulty([(label, runs([fields])) for label, fields in difficulty_variants(chapter)])


def claim_7(lr: float = DEFAULT_LR["adam"], l2: float = 1e-4, steps: int = 3000) -> Verdict:
    """Claim 7 on simulated single-weight trajectories with zero task gradient (paper Fig. 4)."""
    others = {"Adam+WD": simulate_weight("adam", wd=l2, lr=lr, steps=steps),
              "SGD+L2": simulate_weight("sgd", l2=l2, steps=steps)}
    return claims.claim7_adam_l2_decay(simulate_weight("adam", l2=l2, lr=lr, steps=steps), others, lr=lr)


def batch_variants(chapter: Chapter) -> list[tuple[str, dict]]:
    return [(f"batch {b}", {"optimizer": "adam", "l2": strong_l2(chapter), "batch_size": b}) for b in BATCHES]


def width_variants(chapter: Chapter) -> list[tuple[str, dict]]:
    return [(name, {"optimizer": "adam", "l2": strong_l2(chapter), **width_variant(name)}) for name in WIDTHS]


def claim_8(chapter: Chapter, runs: Runs) -> Verdict:
    return claims.claim8_batch_and_width([(label, runs([f])) for label, f in batch_variants(chapter)],
                                         [(label, runs([f])) for label, f in width_variants(chapter)])


def variant_fields(chapter: Chapter) -> dict[str, dict]:
    """The Adam baseline and the three variants of claim 9 (supplement Tables 2-4)."""
    base = {"optimizer": "adam", "l2": strong_l2(chapter)}
    return {"adam": base, "amsgrad": {**base, "optimizer": "amsgrad"},
            "leaky_relu": {**base, "activation": "leaky_relu"}, "low_gamma_lr": {**base, "gamma_lr_scale": 0.1}}


def claim_9(chapter: Chapter, runs: Runs) -> Verdict:
    found = {name: runs([fields]) for name, fields in variant_fields(chapter).items()}
    return claims.claim9_variants(found["adam"], found["amsgrad"], found["leaky_relu"], found["low_gamma_lr"])


def vgg_fields(chapter: Chapter, depth: int = 16, **fields) -> dict:
    """RunConfig fields of a VGG run at the chapter's profile (Sec. 5.2: Adam, the profile's L2, batch 40),
    sized by `Profile.vgg` (at `cpu`: width 0.5 before the profile's x0.25, 32x32 images)."""
    return {"model": f"vgg{depth}", **chapter.settings.vgg, "optimizer": "adam", "l2": strong_l2(chapter), **fields}


def claim_10(chapter: Chapter, runs: Runs) -> Verdict:
    """Claim 10 on VGG-16 (batch 40, every seed): its dead features removed (no fine-tuning) vs Li et
    al.'s filter pruning of the same networks, fine-tuned for the profile's `fine_tune_steps`."""
    bases = runs([vgg_fields(chapter)])
    common = dict(store=chapter.run_store, data_root=chapter.data_root, device=chapter.device,
                  profile=chapter.profile, progress=False)
    configs = [RunConfig.from_dict(record["config"]) for record in bases]
    implicit = [prune_or_load(config, "implicit", **common) for config in configs]
    li = [prune_or_load(config, "li", fine_tune_steps=chapter.settings.fine_tune_steps, **common) for config in configs]
    return claims.claim10_pruning(implicit, li)


def all_variants(chapter: Chapter) -> list[dict]:
    """Every setting (RunConfig fields) a verdict of claims 1-9 rests on, each once."""
    found = [*table1_variants(), *layer_pair_variants(), *[f for _, f in difficulty_variants(chapter)],
             *[f for _, f in batch_variants(chapter)], *[f for _, f in width_variants(chapter)],
             *variant_fields(chapter).values(), vgg_fields(chapter)]
    unique: dict[str, dict] = {}
    for fields in found:  # e.g. clutter 0.5, batch 40 and 64-1x are all the Adam baseline at `cpu`
        unique.setdefault(config_hash(chapter.config(**fields)), fields)
    return list(unique.values())


def claim_verdicts(chapter: Chapter, train_missing: bool = False) -> dict[int, Verdict]:
    """Every claim's verdict at the chapter's profile (claim 10 prunes the stored VGG-16 runs, seconds).

    `train_missing=False` judges only what the store holds: a claim whose runs are missing is
    'not tested' with the reason saying so. `train_missing=True` first trains every missing run of
    `all_variants` in one `chapter.runs` call (so a worker pool, `$SPARSITY_WORKERS`, gets them all).
    """
    if train_missing:
        chapter.runs(all_variants(chapter))
    runs = chapter.stored_runs
    checks = {(1, 2, 3): lambda: claims_1_to_3(runs), (4,): lambda: {4: claim_4(chapter, runs)},
              (5, 6): lambda: claims_5_and_6(runs), (7,): lambda: {7: claim_7()},
              (8,): lambda: {8: claim_8(chapter, runs)}, (9,): lambda: {9: claim_9(chapter, runs)},
              (10,): lambda: {10: claim_10(chapter, runs)}}
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


# ==================================================== chapters 3-4 (helper A's section; append below)


# ==================================================== chapters 5-7 (helper B's section; append below)


# ==================================================== chapters 8-10 (helper C's section; append below)
