"""Which runs each chapter and claim needs: the configurations (variants) of every table and figure
at a chapter's profile, dataset and seeds, and the lists the book trains (`all_variants`,
`train_book_runs`). Pure planning: nothing here trains or judges."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..data.datasets import load_dataset
from ..data.images import DatasetError
from ..folders import resolve_data_root
from ..nets.optim import DEFAULT_LR
from ..pruning.runner import prune_or_load
from ..runs.config import RunConfig, config_hash, make_config, width_variant
from ..runs.labels import setting_label
from .chapter import Chapter
from .horizon import stretched

__all__ = ["absent_datasets", "adagrad_long_run", "ADAGRAD_STATE_STEPS", "all_variants", "available_runs",
           "batch_variants", "BATCHES", "beta_extra_variants", "beta_variants", "book_runs", "CHAPTER_FILES",
           "chapter_files", "CHAPTER_OF_CLAIM", "class_count_variants", "CLASS_COUNTS", "CLUTTER", "DATASET_LABELS",
           "dataset_missing", "difficulty_variants", "extra_variants", "first_seed", "HORIZON_PROFILES",
           "horizon_runs", "HORIZON_SETTINGS", "horizon_variants", "IMAGENET_BATCHES", "imagenet_variants",
           "L1L2_BASE", "l1l2_extra_variants", "L1L2_LAMBDAS", "L2_DECAY_DEFAULTS", "l2_decay_settings",
           "labelled_runs", "layer_pair_variants", "MEASUREMENT_SETTINGS", "pruned", "real_dataset_variants",
           "REAL_DATASETS", "SLIMMING", "slimming_fields", "SLIMMING_FRACTION", "strong_l2",
           "supplement_optimizer_variants", "supplement_variants", "TABLE1_L2", "table1_variants", "TABLE1_WD",
           "table2_variants", "TINY_BATCHES", "TINY_SCHEDULE", "tinyimagenet_variants", "train_book_runs",
           "variant_fields", "VGG11_BATCHES", "VGG_BATCHES", "vgg_extra_variants", "vgg_fields", "width_variants",
           "WIDTHS"]

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
                 10: "10_l1l2_pseudonorm.ipynb", 11: "11_horizon.ipynb"}
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


def layer_pair_variants(l2: float | None = None) -> list[dict]:
    """The SGD and Adam settings whose layers, betas and universality claims 5 and 6 compare (Table 2):
    both with L2 `l2`; None: the book's 1e-3 (the paper's Table 2 strength at which SGD kills features)."""
    l2 = 1e-3 if l2 is None else float(l2)
    return [{"optimizer": "sgd", "l2": l2}, {"optimizer": "adam", "l2": l2}]


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


def batch_variants(chapter: Chapter, batch_sizes: list[int] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) of Table 3, smallest batch first (`batch_sizes`, None: the book's BATCHES)."""
    sizes = BATCHES if batch_sizes is None else batch_sizes
    return [(f"batch {b}", {"optimizer": "adam", "l2": strong_l2(chapter), "batch_size": b}) for b in sizes]


def width_variants(chapter: Chapter, widths: list[str] | None = None) -> list[tuple[str, dict]]:
    """(label, fields) of Table 6, narrowest first (`widths`: names, None: the book's WIDTHS)."""
    names = WIDTHS if widths is None else widths
    return [(name, {"optimizer": "adam", "l2": strong_l2(chapter), **width_variant(name)}) for name in names]


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


def vgg_fields(chapter: Chapter, depth: int = 16, **fields) -> dict:
    """RunConfig fields of a VGG run at the chapter's profile (Sec. 5.2: Adam, the profile's L2, batch 40),
    sized by `Profile.vgg` (at `cpu`: width 0.5 before the profile's x0.25, 32x32 images)."""
    return {"model": f"vgg{depth}", **chapter.settings.vgg, "optimizer": "adam", "l2": strong_l2(chapter), **fields}


def slimming_fields(chapter: Chapter) -> dict:
    """RunConfig fields of the Network Slimming baseline (Table 10): VGG-19 under SGD with `SLIMMING`'s
    penalty, at the profile's `slimming_lr` (at `cpu` 0.01: SGD's 0.1 left this narrow VGG-19 at chance)."""
    lr = chapter.settings.slimming_lr
    return vgg_fields(chapter, 19, **SLIMMING, **({} if lr is None else {"lr": lr}))


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


def extra_variants(chapter: Chapter) -> list[dict]:
    """The chapters' illustration-only settings beyond `all_variants` (chapters 7, 9 and 10), each
    stored with one seed (`first_seed`): no verdict rests on them."""
    return [*beta_extra_variants(chapter), *vgg_extra_variants(chapter), *l1l2_extra_variants(chapter)]


def train_book_runs(chapter: Chapter) -> None:
    """Train every run the book's chapters need at their default parameters that the store lacks: the
    verdicts' settings with every seed, then the illustrations with seed 0 (`make book` then trains
    nothing). One `runs` call each, so a worker pool (`$SPARSITY_WORKERS`) gets them all at once."""
    chapter.runs(all_variants(chapter))
    first_seed(chapter).runs(extra_variants(chapter))

# ------------------------------------------------------------ chapters 3-4

# Claim 7's simulation (paper Fig. 4): Adam at its paper lr, the paper's Sec. 5 default L2, enough steps
# for Adam+L2 to reach zero (about 1/lr) and for the alternatives to show they do not.
L2_DECAY_DEFAULTS = {"lr": DEFAULT_LR["adam"], "l2": 1e-4, "steps": 3000}


def l2_decay_settings(lr: float | None = None, l2: float | None = None, steps: int | None = None) -> dict:
    """lr, l2 and steps of claim 7's simulation, each None replaced by the book's (`L2_DECAY_DEFAULTS`)."""
    given = {"lr": lr, "l2": l2, "steps": steps}
    return {name: L2_DECAY_DEFAULTS[name] if value is None else value for name, value in given.items()}


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
    fields = variant_fields(chapter)
    return [("Adam", fields["adam"]), ("AMSGrad", fields["amsgrad"]),
            *[(name, {"optimizer": name.lower(), "l2": float(value)}) for name in ("Adamax", "RMSProp")
              for value in TABLE1_L2[name.lower()]]]


def beta_variants(chapter: Chapter, bn_bias_init: float = 1.0,
                    beta_lr_scale: float = 0.1) -> list[tuple[str, dict]]:
    """(label, fields) of chapter 7's illustration runs (supplement Table 3, no verdict rests on them;
    one seed): Adam with BN beta initialized at `bn_bias_init`, and with beta's learning rate scaled."""
    base = {"optimizer": "adam", "l2": strong_l2(chapter)}
    return [(f"β init {bn_bias_init:g}", {**base, "bn_bias_init": float(bn_bias_init)}),
            (f"β lr ×{beta_lr_scale:g}", {**base, "beta_lr_scale": float(beta_lr_scale)})]


def beta_extra_variants(chapter: Chapter) -> list[dict]:
    """The RunConfig fields of chapter 7's extra runs at the book's settings (one seed each)."""
    return [fields for _, fields in beta_variants(chapter)]


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
    """Each record pruned by `method` (`pruning.runner.METHODS`; `amount` as in `method_masks`), fine-tuned
    for the profile's `fine_tune_steps` when `fine_tune` (Li et al., Network Slimming, l1/l2), else not
    (the paper's implicit pruning). Stored, so a re-run loads."""
    execution = chapter.execution.replace(progress=False)
    steps = chapter.settings.fine_tune_steps if fine_tune else 0
    return [prune_or_load(RunConfig.from_dict(record["config"]), method, amount, execution, fine_tune_steps=steps)
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


HORIZON_SETTINGS = ({"optimizer": "adam", "l2": 1e-4}, {"optimizer": "sgd", "l2": 1e-3},
                    {"optimizer": "adagrad", "l2": 1e-2})  # the horizon pilot's BasicNet settings (issue 20)


def horizon_variants(chapter: Chapter) -> list[tuple[str, dict]]:
    """(label, fields) of the horizon chapter's settings (beyond the paper; issue 20's pilot): BasicNet
    under Adam + L2 1e-4 (the paper's base setting), SGD + L2 1e-3 and Adagrad + L2 1e-2 (their Table 1
    strengths that kill features), and VGG-16 under Adam + L2 1e-4 at the profile's VGG size, labelled
    with the width it is trained at (e.g. 'VGG-16 ×0.125')."""
    vgg = vgg_fields(chapter, l2=1e-4)
    width = chapter.config(**vgg).width
    return ([(setting_label(fields), fields) for fields in HORIZON_SETTINGS]
            + [(f"VGG-16 ×{width:g} {setting_label(vgg)}", vgg)])


# The horizon chapter compares the stored lengths of one embedded task: `cpu` (14,000 iterations) and
# `long` (56,000); a profile without a longer sibling is shown alone.
HORIZON_PROFILES = {"smoke": ("smoke",), "cpu": ("cpu", "long"), "long": ("cpu", "long"), "gpu": ("gpu",),
                    "paper": ("paper",)}
ADAGRAD_STATE_STEPS = (15_500, 26_500, 56_500, 83_500)  # the 8x Adagrad run's saved optimizer states


def horizon_runs(chapter: Chapter, profiles: tuple[str, ...], train: bool = False) -> dict[str, list]:
    """Profile -> [(label, records)] of `horizon_variants` at each of `profiles` (the chapter's dataset,
    store and device): every seed the store holds, or with `train` every seed, trained if missing."""
    found = {}
    for name in profiles:
        at = Chapter(profile=name, dataset=chapter.dataset, seeds=chapter.seeds, execution=chapter.execution)
        found[name] = [(label, available_runs(at, [fields], train)) for label, fields in horizon_variants(at)]
    return found


def adagrad_long_run(chapter: Chapter, factor: float = 2.0) -> tuple[dict | None, list[dict]]:
    """The horizon pilot's Adagrad + L2 1e-2 run at `factor` times the `long` length (8x `cpu`; seed 0,
    docs/calibration.md) and its saved optimizer states (ADAGRAD_STATE_STEPS), from the chapter's store:
    (record or None, the states found)."""
    config = stretched(make_config("long", dataset=chapter.dataset_used, optimizer="adagrad", l2=1e-2), factor)
    record = chapter.run_store.load(config_hash(config))
    states = [chapter.run_store.analysis(f"adagrad_l2_1e-2_x{round(4 * factor)}_step{step}")
              for step in ADAGRAD_STATE_STEPS]
    return record, [state for state in states if state is not None and state["config_hash"] == config_hash(config)]


def vgg_extra_variants(chapter: Chapter) -> list[dict]:
    """Chapter 9's runs beyond `all_variants`, one seed each (seed 0): VGG-16 at the batches of
    VGG_BATCHES other than 40 (Table 7), VGG-19 with Adam+L2 and with Network Slimming (Table 10), all
    sized by the profile's `vgg`."""
    return ([vgg_fields(chapter, batch_size=b) for b in VGG_BATCHES if b != 40]
            + [vgg_fields(chapter, 19), slimming_fields(chapter)])


def l1l2_extra_variants(chapter: Chapter) -> list[dict]:
    """Chapter 10's runs beyond `all_variants`, one seed each (seed 0): BasicNet under SGD with the
    l1/l2 pseudo-norm at each of L1L2_LAMBDAS."""
    return [{**L1L2_BASE, "l1l2": lam} for lam in L1L2_LAMBDAS]
