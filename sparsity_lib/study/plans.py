"""Which runs each of the paper's ten claims is judged on, and the verdicts they give.

One place for the chapters and the intro's scorecard: `claim_verdicts(chapter)` judges every claim
on the runs listed here (three seeds each at `cpu` and `paper`), from the store only or training
what is missing. The criteria themselves live in `claims`; this module only chooses the records.
The L2 strength of the Sec. 5 experiments is the profile's `section5_l2` (the paper's default 1e-4;
1e-3 at `cpu`, where runs are too short for 1e-4 to kill filters: BENCHMARKS.md, calibration).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from . import claims
from .chapter import Chapter, MissingRuns
from .claims import Verdict
from .config import RunConfig, config_hash, width_variant
from .data import DatasetError, load_dataset
from .labels import setting_label
from .optim import DEFAULT_LR, simulate_weight
from .pruned_runs import prune_or_load
from .store import resolve_data_root

__all__ = ["absent_datasets", "adagrad_state", "ADAGRAD_STATE", "all_variants", "available_runs", "batch_variants",
           "BATCHES", "book_runs", "chapter10_extra_variants", "chapter7_extra_variants", "chapter7_extras",
           "chapter9_extra_variants", "CHAPTER_FILES", "chapter_files", "CHAPTER_OF_CLAIM", "CLAIM7_DEFAULTS",
           "claim7_settings", "claim_10", "claim_4", "claim_4_by_classes", "claim_7", "claim_8", "claim_9",
           "claim_verdicts", "claims_1_to_3", "claims_5_and_6", "claims_chapter8", "class_count_variants",
           "CLASS_COUNTS", "CLUTTER", "DATASET_LABELS", "dataset_missing", "difficulty_variants",
           "early_universality", "extra_variants", "first_seed", "IMAGENET_BATCHES", "imagenet_variants",
           "L1L2_BASE", "L1L2_LAMBDAS", "labelled_runs", "layer_pair_variants", "MEASUREMENT_SETTINGS", "pruned",
           "real_dataset_variants", "REAL_DATASETS", "scorecard", "scorecard_by_profile", "SLIMMING",
           "slimming_fields", "SLIMMING_FRACTION", "strong_l2", "supplement_optimizer_variants",
           "supplement_variants", "TABLE1_L2", "table1_variants", "TABLE1_WD", "table2_variants", "TINY_BATCHES",
           "TINY_SCHEDULE", "tinyimagenet_variants", "train_book_runs", "variant_fields", "verdict_changes",
           "VGG11_BATCHES", "VGG_BATCHES", "vgg_fields", "width_variants", "WIDTHS"]

# Regularization of the optimizer comparisons (Table 1): optimizer -> L2 strengths, WD strengths.
TABLE1_L2 = {"adam": (0.0, 1e-4, 1e-3), "sgd": (1e-4, 1e-3), "adagrad": (1e-2,), "adadelta": (1e-3,),
             "rmsprop": (1e-3,), "adamax": (1e-3,)}
TABLE1_WD = {"adam": (1e-4,), "sgd": (1e-3,)}
BATCHES = (20, 40, 160)                      # Table 3, iteration matched
WIDTHS = ("32-0.25x", "64-0.5x", "64-1x")   # Table 6, narrowest first (scaled by the profile)
CLUTTER = (0.0, 0.5, 1.0)                    # clean -> cluttered synthetic background (Sec. 4.2)
# Chapter 5's second difficulty axis, added after the clutter verdict failed (docs/calibration.md): the
# `cpu` task's 20 classes, then all 36 the synthetic generator draws (CIFAR-10 -> CIFAR-100 adds classes).
CLASS_COUNTS = (20, 36)
VGG_BATCHES = (40, 80, 160)                  # Table 7 columns (one seed each beyond batch 40)
CHAPTER_FILES = {1: "01_setup.ipynb", 2: "02_primary_findings.ipynb", 3: "03_where_filters_die.ipynb",
                 4: "04_l2_inside_adam.ipynb", 5: "05_task_difficulty.ipynb", 6: "06_hyperparameters.ipynb",
                 7: "07_supplementary.ipynb", 8: "08_imagenet_tinyimagenet.ipynb", 9: "09_pruning.ipynb",
                 10: "10_l1l2_pseudonorm.ipynb"}
CHAPTER_OF_CLAIM = {1: 2, 2: 2, 3: 2, 4: 5, 5: 3, 6: 3, 7: 4, 8: 6, 9: 7, 10: 9}

Runs = Callable[[list[dict]], list[dict]]
# Chapter 1's runs (Sec. 2.1 measurement): Table 1 settings, so they cost nothing extra; the first is
# examined layer by layer.
MEASUREMENT_SETTINGS = ({"optimizer": "adam", "l2": 1e-3}, {"optimizer": "adam", "l2": 1e-4},
                        {"optimizer": "sgd", "l2": 1e-3}, {"optimizer": "adam", "l2": 0.0, "wd": 1e-4})


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


def layer_pair_variants(l2: float | None = None) -> list[dict]:
    """The SGD and Adam settings whose layers, betas and universality claims 5 and 6 compare (Table 2):
    both with L2 `l2`; None: the book's 1e-3 (the paper's Table 2 strength at which SGD kills features)."""
    l2 = 1e-3 if l2 is None else float(l2)
    return [{"optimizer": "sgd", "l2": l2}, {"optimizer": "adam", "l2": l2}]


def claims_5_and_6(runs: Runs, l2: float | None = None) -> dict[int, Verdict]:
    """Claims 5 and 6 on `layer_pair_variants(l2)` (None: the book's settings)."""
    sgd, adam = (runs([variant]) for variant in layer_pair_variants(l2))
    return {5: claims.claim5_layer_location(sgd, adam), 6: claims.claim6_betas_and_selectivity(sgd, adam)}


def difficulty_variants(chapter: Chapter, clutter: list[float] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) from the easiest task to the hardest: clean -> cluttered synthetic backgrounds
    (`clutter` levels, None: the book's CLUTTER), or CIFAR-10 -> CIFAR-100 on real data."""
    l2 = strong_l2(chapter)
    if chapter.dataset_used == "synthetic":
        levels = CLUTTER if clutter is None else clutter
        return [(f"clutter {c:g}", {"optimizer": "adam", "l2": l2, "clutter": float(c)}) for c in levels]
    return [(name, {"optimizer": "adam", "l2": l2, "dataset": name}) for name in ("cifar10", "cifar100")]


def class_count_variants(chapter: Chapter, counts: list[int] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) from the fewest classes to the most (`counts`, None: the book's CLASS_COUNTS) on
    the synthetic task at its usual clutter: chapter 5's second difficulty axis, the kind of step the
    paper's CIFAR-10 -> CIFAR-100 takes. Empty on real data (their class counts are fixed)."""
    if chapter.dataset_used != "synthetic":
        return []
    l2 = strong_l2(chapter)
    return [(f"{n} classes", {"optimizer": "adam", "l2": l2, "num_classes": int(n)})
            for n in (CLASS_COUNTS if counts is None else counts)]


def claim_4(chapter: Chapter, runs: Runs, clutter: list[float] | None = None) -> Verdict:
    """Claim 4 on `difficulty_variants(chapter, clutter)` (None: the book's settings): the scorecard's."""
    return claims.claim4_task_difficulty([(label, runs([fields]))
                                          for label, fields in difficulty_variants(chapter, clutter)])


def claim_4_by_classes(chapter: Chapter, runs: Runs, counts: list[int] | None = None) -> Verdict | None:
    """Claim 4's criterion, unchanged, on `class_count_variants(chapter, counts)` (None on real data).
    Chapter 5 shows it beside the scorecard's clutter verdict; it does not replace it."""
    tasks = class_count_variants(chapter, counts)
    return claims.claim4_task_difficulty([(label, runs([fields])) for label, fields in tasks]) if tasks else None


def claim_7(lr: float | None = None, l2: float | None = None, steps: int | None = None) -> Verdict:
    """Claim 7 on simulated single-weight trajectories with zero task gradient (paper Fig. 4). None: the
    book's settings (`claim7_settings`: Adam's lr 1e-3, L2 1e-4, 3000 steps)."""
    book = claim7_settings(lr, l2, steps)
    lr, l2, steps = book["lr"], book["l2"], book["steps"]
    others = {"Adam+WD": simulate_weight("adam", wd=l2, lr=lr, steps=steps),
              "SGD+L2": simulate_weight("sgd", l2=l2, steps=steps)}
    return claims.claim7_adam_l2_decay(simulate_weight("adam", l2=l2, lr=lr, steps=steps), others, lr=lr)


def batch_variants(chapter: Chapter, batch_sizes: list[int] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) of Table 3, smallest batch first (`batch_sizes`, None: the book's BATCHES)."""
    sizes = BATCHES if batch_sizes is None else batch_sizes
    return [(f"batch {b}", {"optimizer": "adam", "l2": strong_l2(chapter), "batch_size": b}) for b in sizes]


def width_variants(chapter: Chapter, widths: list[str] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) of Table 6, narrowest first (`widths`: names, None: the book's WIDTHS)."""
    names = WIDTHS if widths is None else widths
    return [(name, {"optimizer": "adam", "l2": strong_l2(chapter), **width_variant(name)}) for name in names]


def claim_8(chapter: Chapter, runs: Runs, batch_sizes: list[int] | None = None,
            widths: list[str] | None = None) -> Verdict:
    """Claim 8 on `batch_variants(chapter, batch_sizes)` and `width_variants(chapter, widths)`."""
    return claims.claim8_batch_and_width([(label, runs([f])) for label, f in batch_variants(chapter, batch_sizes)],
                                         [(label, runs([f])) for label, f in width_variants(chapter, widths)])


def variant_fields(chapter: Chapter, negative_slope: float | None = None,
                   gamma_lr_scale: float | None = None) -> dict[str, dict]:
    """The Adam baseline and the three variants of claim 9 (supplement Tables 2-4). None: the book's
    settings (Leaky ReLU slope 0.01, the RunConfig default; gamma's learning rate x0.1)."""
    base = {"optimizer": "adam", "l2": strong_l2(chapter)}
    leaky = {**base, "activation": "leaky_relu"}
    if negative_slope is not None:
        leaky["negative_slope"] = float(negative_slope)
    return {"adam": base, "amsgrad": {**base, "optimizer": "amsgrad"}, "leaky_relu": leaky,
            "low_gamma_lr": {**base, "gamma_lr_scale": 0.1 if gamma_lr_scale is None else float(gamma_lr_scale)}}


def claim_9(chapter: Chapter, runs: Runs, negative_slope: float | None = None,
            gamma_lr_scale: float | None = None) -> Verdict:
    """Claim 9 on `variant_fields(chapter, negative_slope, gamma_lr_scale)` (None: the book's settings)."""
    found = {name: runs([fields]) for name, fields in variant_fields(chapter, negative_slope, gamma_lr_scale).items()}
    return claims.claim9_variants(found["adam"], found["amsgrad"], found["leaky_relu"], found["low_gamma_lr"])


def vgg_fields(chapter: Chapter, depth: int = 16, **fields) -> dict:
    """RunConfig fields of a VGG run at the chapter's profile (Sec. 5.2: Adam, the profile's L2, batch 40),
    sized by `Profile.vgg` (at `cpu`: width 0.5 before the profile's x0.25, 32x32 images)."""
    return {"model": f"vgg{depth}", **chapter.settings.vgg, "optimizer": "adam", "l2": strong_l2(chapter), **fields}


def slimming_fields(chapter: Chapter) -> dict:
    """RunConfig fields of the Network Slimming baseline (Table 10): VGG-19 under SGD with `SLIMMING`'s
    penalty, at the profile's `slimming_lr` (at `cpu` 0.01: SGD's 0.1 left this narrow VGG-19 at chance)."""
    lr = chapter.settings.slimming_lr
    return vgg_fields(chapter, 19, **SLIMMING, **({} if lr is None else {"lr": lr}))


def claim_10(chapter: Chapter, runs: Runs) -> Verdict:
    """Claim 10 on VGG-16 (batch 40, every seed): its dead features removed (no fine-tuning) vs Li et
    al.'s filter pruning of the same networks, fine-tuned for the profile's `fine_tune_steps`."""
    bases = runs([vgg_fields(chapter)])
    return claims.claim10_pruning(pruned(chapter, bases), pruned(chapter, bases, "li", fine_tune=True))


def all_variants(chapter: Chapter) -> list[dict]:
    """Every setting (RunConfig fields) a verdict of claims 1-9 rests on, each once (with chapter 5's
    second claim-4 axis, `class_count_variants`)."""
    found = [*table1_variants(), *layer_pair_variants(), *[f for _, f in difficulty_variants(chapter)],
             *[f for _, f in class_count_variants(chapter)],
             *[f for _, f in batch_variants(chapter)], *[f for _, f in width_variants(chapter)],
             *variant_fields(chapter).values(), vgg_fields(chapter)]
    unique: dict[str, dict] = {}
    for fields in found:  # e.g. clutter 0.5, batch 40 and 64-1x are all the Adam baseline at `cpu`
        unique.setdefault(config_hash(chapter.config(**fields)), fields)
    return list(unique.values())


def claim_verdicts(chapter: Chapter, train_missing: bool = False) -> dict[int, Verdict]:
    """Every claim's verdict at the chapter's profile (claim 10 prunes the stored VGG-16 runs, seconds).

    `train_missing=False` judges only what the store holds: a claim whose runs are missing is
    'not tested' with the reason saying so. `train_missing=True` first trains every run of the book
    that the store lacks (`train_book_runs`: the verdicts' runs, then the chapters' illustrations).
    """
    if train_missing:
        train_book_runs(chapter)
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


def scorecard_by_profile(chapter: Chapter, profiles: tuple[str, ...] = ("cpu", "long")):
    """The ten claims judged at each of `profiles` from the store only (never trains): a DataFrame
    (claim, statement, chapter, then per profile P the columns `P` (its verdict) and `why (P)`), each
    profile read from `chapter`'s store, dataset, data root and device. Issue 20: one column per length."""
    frame = None
    for name in profiles:
        at = Chapter(profile=name, dataset=chapter.dataset, data_root=chapter.data_root, device=chapter.device,
                     store=chapter.run_store.root)
        card = scorecard(at).rename(columns={"verdict": name, "why": f"why ({name})"})
        frame = card if frame is None else frame.merge(card[["claim", name, f"why ({name})"]], on="claim")
    return frame[["claim", "statement", "chapter", *[c for c in frame if c not in ("claim", "statement", "chapter")]]]


def verdict_changes(frame, first: str, second: str) -> list[int]:
    """The claims whose verdict differs between profile columns `first` and `second` of
    `scorecard_by_profile`, leaving out claims not tested at either (no verdict to compare)."""
    judged = (frame[first] != claims.NOT_TESTED) & (frame[second] != claims.NOT_TESTED)
    return frame.loc[judged & (frame[first] != frame[second]), "claim"].tolist()


ADAGRAD_STATE = {"optimizer": "adagrad", "l2": 2e-2}  # the run whose optimizer state explains claim 2's Adagrad


def adagrad_state(chapter: Chapter, name: str = "adagrad_l2_2e-2_seed0") -> dict | None:
    """The BN gammas and Adagrad accumulators saved from a checkpoint of the Adagrad L2 2e-2 run, seed 0
    (`<store>/analysis/<name>.json`, scripts/optimizer_state.py, checked by `RunStore.analysis`), or None
    when the store has none for this chapter's profile and dataset (its config hash must be that of
    `ADAGRAD_STATE` here)."""
    found = chapter.run_store.analysis(name)
    return found if found and found.get("config_hash") == config_hash(chapter.config(**ADAGRAD_STATE)) else None


def early_universality(chapter: Chapter) -> dict:
    """Setting label -> (early, record) for chapter 3's SGD and Adam settings (`layer_pair_variants`),
    seed 0: `early` the per-feature universality at an early step of that very run
    (`<store>/analysis/early_universality_<optimizer>.json`, scripts/early_universality.py, checked by
    `RunStore.analysis`), `record` the finished run. Empty when the store has no such file for this
    chapter's profile and dataset, or lacks the run."""
    found = {}
    for fields in layer_pair_variants():
        record = chapter.run_store.load(config_hash(chapter.config(seed=0, **fields)))
        early = chapter.run_store.analysis(f"early_universality_{fields['optimizer']}")
        if early is not None and record is not None and early.get("config_hash") == record["config_hash"]:
            found[f"{setting_label(record['config'])}, step {early['step']:,}"] = (early, record)
    return found


def extra_variants(chapter: Chapter) -> list[dict]:
    """The chapters' illustration-only settings beyond `all_variants` (chapters 7, 9 and 10), each
    stored with one seed (`first_seed`): no verdict rests on them."""
    return [*chapter7_extra_variants(chapter), *chapter9_extra_variants(chapter), *chapter10_extra_variants(chapter)]


def train_book_runs(chapter: Chapter) -> None:
    """Train every run the book's chapters need at their default parameters that the store lacks: the
    verdicts' settings with every seed, then the illustrations with seed 0 (`make book` then trains
    nothing). One `runs` call each, so a worker pool (`$SPARSITY_WORKERS`) gets them all at once."""
    chapter.runs(all_variants(chapter))
    first_seed(chapter).runs(extra_variants(chapter))

# ------------------------------------------------------------ chapters 3-4

# Claim 7's simulation (paper Fig. 4): Adam at its paper lr, the paper's Sec. 5 default L2, enough steps
# for Adam+L2 to reach zero (about 1/lr) and for the alternatives to show they do not.
CLAIM7_DEFAULTS = {"lr": DEFAULT_LR["adam"], "l2": 1e-4, "steps": 3000}


def claim7_settings(lr: float | None = None, l2: float | None = None, steps: int | None = None) -> dict:
    """lr, l2 and steps of claim 7's simulation, each None replaced by the book's (`CLAIM7_DEFAULTS`)."""
    given = {"lr": lr, "l2": l2, "steps": steps}
    return {name: CLAIM7_DEFAULTS[name] if value is None else value for name, value in given.items()}


def table2_variants() -> list[dict]:
    """The settings of the paper's Table 2 (layer-wise sparsity, Sec. 4.1) that the book runs anyway for
    Table 1: Adam with L2 1e-3, 1e-4 and WD 1e-4; SGD with L2 1e-3 and WD 1e-3 (RunConfig fields).
    They include `layer_pair_variants()`, so chapter 3 needs no run beyond `all_variants`."""
    return [{"optimizer": "adam", "l2": 1e-3}, {"optimizer": "adam", "l2": 1e-4},
            {"optimizer": "adam", "l2": 0.0, "wd": 1e-4}, {"optimizer": "sgd", "l2": 1e-3},
            {"optimizer": "sgd", "l2": 0.0, "wd": 1e-3}]


# ------------------------------------------------------------ chapters 5-7


REAL_DATASETS = ("cifar10", "cifar100", "tinyimagenet")  # Sec. 4.2's ladder, easiest first (ImageNet: chapter 8)


def labelled_runs(runs: Runs, variants: list[tuple[str, dict]]) -> list[tuple[str, list[dict]]]:
    """(label, the seeds' records) per (label, fields) of `variants`, from ONE `runs` call (so a
    worker pool or the fused trainer gets every missing run at once)."""
    records = runs([fields for _, fields in variants])
    per = len(records) // max(1, len(variants))
    return [(label, records[i * per:(i + 1) * per]) for i, (label, _) in enumerate(variants)]


def absent_datasets(chapter: Chapter, names=REAL_DATASETS) -> dict[str, str]:
    """Dataset name -> why it is not compared in this execution (names that are present are left out).
    TinyImageNet is compared only on a CUDA device (a BasicNet run on it takes hours on a CPU)."""
    root = resolve_data_root(chapter.data_root)
    reasons = {}
    for name in names:
        if name == "tinyimagenet" and not chapter.device_used.startswith("cuda"):
            reasons[name] = f"compared only on a CUDA GPU (device resolved to `{chapter.device_used}`)"
            continue
        try:
            load_dataset(name, root, "test", subset=1)
        except (FileNotFoundError, OSError, DatasetError) as error:
            reasons[name] = str(error).replace(str(root), f"{root.name}/")  # no machine path on the page
    return reasons


def real_dataset_variants(chapter: Chapter, names=REAL_DATASETS) -> list[tuple[str, dict]]:
    """(name, fields) of Adam with the profile's Sec. 5 L2 on each of `names` that is present."""
    absent = absent_datasets(chapter, names)
    return [(name, {"optimizer": "adam", "l2": strong_l2(chapter), "dataset": name}) for name in names
            if name not in absent]


def supplement_variants(chapter: Chapter, negative_slope: float | None = None,
                        gamma_lr_scale: float | None = None) -> list[tuple[str, dict]]:
    """(label, fields) of claim 9's four settings (`variant_fields`), labelled as in the book's tables:
    'Adam', 'AMSGrad', 'Leaky ReLU 0.01', 'γ lr ×0.1'."""
    fields = variant_fields(chapter, negative_slope, gamma_lr_scale)
    slope = fields["leaky_relu"].get("negative_slope", RunConfig.negative_slope)
    labels = {"adam": "Adam", "amsgrad": "AMSGrad", "leaky_relu": f"Leaky ReLU {slope:g}",
              "low_gamma_lr": f"γ lr ×{fields['low_gamma_lr']['gamma_lr_scale']:g}"}
    return [(labels[name], value) for name, value in fields.items()]


def supplement_optimizer_variants(chapter: Chapter) -> list[tuple[str, dict]]:
    """(label, fields) of supplement Table 4: Adam and AMSGrad at the Sec. 5 L2 (claim 9's runs), Adamax
    and RMSProp at their Table 1 strengths (TABLE1_L2: the book runs them for claim 2 already)."""
    claim9 = variant_fields(chapter)
    return [("Adam", claim9["adam"]), ("AMSGrad", claim9["amsgrad"]),
            *[(name, {"optimizer": name.lower(), "l2": float(value)}) for name in ("Adamax", "RMSProp")
              for value in TABLE1_L2[name.lower()]]]


def chapter7_extras(chapter: Chapter, bn_bias_init: float = 1.0,
                    beta_lr_scale: float = 0.1) -> list[tuple[str, dict]]:
    """(label, fields) of chapter 7's illustration runs (supplement Table 3, no verdict rests on them;
    one seed): Adam with BN beta initialized at `bn_bias_init`, and with beta's learning rate scaled."""
    base = {"optimizer": "adam", "l2": strong_l2(chapter)}
    return [(f"β init {bn_bias_init:g}", {**base, "bn_bias_init": float(bn_bias_init)}),
            (f"β lr ×{beta_lr_scale:g}", {**base, "beta_lr_scale": float(beta_lr_scale)})]


def chapter7_extra_variants(chapter: Chapter) -> list[dict]:
    """The RunConfig fields of chapter 7's extra runs at the book's settings (one seed each)."""
    return [fields for _, fields in chapter7_extras(chapter)]


# ------------------------------------------------------------ chapters 8-10


# Chapter 8 (supplement Sec. 4, Tables 4, 5, 9): TinyImageNet and ImageNet, trained only where the data
# (and, by default, a CUDA GPU) is given; schedules in epochs at the reference batch, scaled by the profile.
TINY_SCHEDULE = {"epochs": 400.0, "lr_drops": (250.0, 325.0)}
TINY_BATCHES = (20, 40, 120)               # Table 4, Adam (SGD at batch 40)
IMAGENET_BATCHES = (64, 256)               # Table 5, BasicNet
VGG11_BATCHES = (60, 90)                   # Table 9, VGG-11
DATASET_LABELS = {"tinyimagenet": "TinyImageNet", "imagenet": "ImageNet"}
# Chapter 9 (Sec. 5.2, Table 10): Network Slimming as Liu et al. (2017) train VGGNet on CIFAR: SGD, 1e-4 decay,
# an L1 of s = 1e-4 on every BN scale; then the globally smallest SLIMMING_FRACTION of |gamma| is removed.
SLIMMING = {"optimizer": "sgd", "l2": 1e-4, "slimming_l1": 1e-4}
SLIMMING_FRACTION = 0.5
# Chapter 10: the l1/l2 pseudo-norm (Berthelier et al. 2020) under SGD, which has no implicit sparsity of its
# own, with a small L2 (the penalty-free control, SGD L2 1e-4, is a Table 1 setting).
L1L2_BASE = {"optimizer": "sgd", "l2": 1e-4}
L1L2_LAMBDAS = (1e-3, 1e-2)


def first_seed(chapter: Chapter) -> Chapter:
    """The chapter with one seed (seed 0): how the book's illustration-only runs are stored."""
    return dataclasses.replace(chapter, seeds=1)


def book_runs(chapter: Chapter, variants: list[dict]) -> list[dict]:
    """Records of `variants`, trained if missing: every seed of a setting in `all_variants` (the
    verdicts' runs), seed 0 only of any other (the chapters' extra illustrations, stored with one seed)."""
    judged = {config_hash(chapter.config(**fields)) for fields in all_variants(chapter)}
    one = first_seed(chapter)
    return [record for fields in variants
            for record in (chapter if config_hash(chapter.config(**fields)) in judged else one).runs([fields])]


def pruned(chapter: Chapter, records: list[dict], method: str = "implicit", amount=None,
           fine_tune: bool = False) -> list[dict]:
    """Each record pruned by `method` (`pruned_runs.METHODS`; `amount` as in `method_masks`), fine-tuned
    for the profile's `fine_tune_steps` when `fine_tune` (Li et al., Network Slimming, l1/l2), else not
    (the paper's implicit pruning). Stored, so a re-run loads."""
    common = dict(store=chapter.run_store, data_root=chapter.data_root, device=chapter.device,
                  profile=chapter.profile, progress=False)
    steps = chapter.settings.fine_tune_steps if fine_tune else 0
    return [prune_or_load(RunConfig.from_dict(record["config"]), method, amount, fine_tune_steps=steps, **common)
            for record in records]


def tinyimagenet_variants(chapter: Chapter, l2: float | None = None,
                          batches=TINY_BATCHES) -> list[dict]:
    """Table 4's settings: SGD at batch 40 and Adam at each of `batches`, with the supplement's
    TinyImageNet schedule; `l2` None: the profile's `section5_l2`."""
    l2 = strong_l2(chapter) if l2 is None else float(l2)
    common = {"dataset": "tinyimagenet", "l2": l2, **TINY_SCHEDULE}
    return ([{**common, "optimizer": "sgd", "batch_size": 40}]
            + [{**common, "optimizer": "adam", "batch_size": int(b)} for b in batches])


def imagenet_variants(chapter: Chapter, model: str = "basicnet", l2: float | None = None, batches=None,
                      subset: int | None = None) -> list[dict]:
    """Table 5 (BasicNet: 15 + 15 + 10 epochs at batch 64) or Table 9 (VGG-11: 60 epochs at batch 60,
    LR drops at 30 and 50) on ImageNet with Adam at a base LR of 1e-4 (supplement Sec. 4)."""
    l2 = strong_l2(chapter) if l2 is None else float(l2)
    common = {"dataset": "imagenet", "optimizer": "adam", "lr": 1e-4, "l2": l2, "train_subset": subset}
    if model == "basicnet":
        schedule = {"ref_batch_size": 64, "epochs": 40.0, "lr_drops": (15.0, 30.0)}
        batches = batches or IMAGENET_BATCHES
    elif model == "vgg11":
        schedule = {"model": "vgg11", "ref_batch_size": 60, "epochs": 60.0, "lr_drops": (30.0, 50.0)}
        batches = batches or VGG11_BATCHES
    else:
        raise ValueError(f"model={model!r} is invalid; allowed: basicnet, vgg11")
    return [{**common, **schedule, "batch_size": int(b)} for b in batches]


def dataset_missing(chapter: Chapter, root, require_gpu: bool = True) -> list[str]:
    """What chapter 8 lacks to train on `chapter.dataset` from `root`: a list of reasons (empty when it
    can). Names parameters, never a folder of this machine."""
    name = chapter.dataset
    label = DATASET_LABELS.get(name, name)
    reasons = []
    if require_gpu and not chapter.device_used.startswith("cuda"):
        reasons.append(f"a CUDA GPU (this execution's device is `{chapter.device_used}`; "
                       "`require_gpu=False` trains on the CPU)")
    if root is None:
        reasons.append(f"the {label} folder: parameter `{name}_root` is None")
    else:
        try:
            load_dataset(name, root, "test", subset=1)
        except (OSError, ValueError, RuntimeError) as error:
            reasons.append(f"a readable {label} under `{name}_root` ({type(error).__name__})")
    return reasons


def available_runs(chapter: Chapter, variants: list[dict], train: bool) -> list[dict]:
    """Every seed of `variants`, trained if missing when `train`; else only those the store holds."""
    if train:
        return chapter.runs(variants)
    configs = [chapter.config(seed=seed, **fields) for fields in variants for seed in chapter.seed_list]
    return [r for r in (chapter.run_store.load(config_hash(c)) for c in configs) if r is not None]


def claims_chapter8(tiny: list[dict], imagenet: list[dict]) -> dict[int, Verdict]:
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


def chapter9_extra_variants(chapter: Chapter) -> list[dict]:
    """Chapter 9's runs beyond `all_variants`, one seed each (seed 0): VGG-16 at the batches of
    VGG_BATCHES other than 40 (Table 7), VGG-19 with Adam+L2 and with Network Slimming (Table 10), all
    sized by the profile's `vgg`."""
    return ([vgg_fields(chapter, batch_size=b) for b in VGG_BATCHES if b != 40]
            + [vgg_fields(chapter, 19), slimming_fields(chapter)])


def chapter10_extra_variants(chapter: Chapter) -> list[dict]:
    """Chapter 10's runs beyond `all_variants`, one seed each (seed 0): BasicNet under SGD with the
    l1/l2 pseudo-norm at each of L1L2_LAMBDAS."""
    return [{**L1L2_BASE, "l1l2": lam} for lam in L1L2_LAMBDAS]


