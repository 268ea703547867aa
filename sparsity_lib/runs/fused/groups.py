"""Which runs can train together as one fused network: they may differ only in optimizer
hyperparameters, seed and bookkeeping (the fields in PER_MODEL_FIELDS), within one optimizer family.
"""
from __future__ import annotations

import hashlib

from ..config import RunConfig, config_hash

__all__ = ["can_fuse", "FAMILIES", "fusable_groups", "fuse_key", "group_key", "PER_MODEL_FIELDS"]

# Fields that may differ inside a fused group: they change only the initialization (seed, BN init),
# the optimizer's per-model numbers, the explicit penalties, or bookkeeping. Everything else
# (data, architecture, batch size, schedule) must be shared so the N models run in lockstep.
PER_MODEL_FIELDS = ("seed", "lr", "l2", "wd", "gamma_lr_scale", "beta_lr_scale", "slimming_l1", "l1l2",
                    "bn_weight_init", "bn_bias_init", "optimizer", "snapshot_layers", "snapshot_count")
# Optimizers with a fused step, by family; a group must stay inside one family (Adam and AMSGrad
# share one: AMSGrad is Adam with a running max of the second moment, switched per model).
FAMILIES = {"sgd": "sgd", "adam": "adam", "amsgrad": "adam", "adamax": "adamax", "rmsprop": "rmsprop",
            "adagrad": "adagrad", "adadelta": "adadelta"}


def can_fuse(configs) -> tuple[bool, str]:
    """(True, "") when `configs` can train as one fused group, else (False, why not)."""
    configs = list(configs)
    if not configs:
        return False, "no configs"
    if not all(isinstance(c, RunConfig) for c in configs):
        return False, "every item must be a RunConfig"
    if len({config_hash(c) for c in configs}) != len(configs):
        return False, "duplicate configs in the group"
    first = configs[0]
    if first.dataset in ("auto", "imagenet"):
        return False, (f"dataset={first.dataset!r}: fusion needs an in-memory dataset resolved beforehand "
                       "(cifar10, cifar100, tinyimagenet, synthetic)")
    for c in configs:
        if c.optimizer not in FAMILIES:
            return False, f"optimizer={c.optimizer!r} has no fused step; fused: {', '.join(FAMILIES)}"
    families = {FAMILIES[c.optimizer] for c in configs}
    if len(families) > 1:
        return False, f"optimizers of different families {sorted(families)} cannot share a fused step"
    for name in RunConfig.__dataclass_fields__:
        if name in PER_MODEL_FIELDS:
            continue
        values = {repr(getattr(c, name)) for c in configs}
        if len(values) > 1:
            return False, f"field {name!r} differs inside the group ({', '.join(sorted(values))}); it must be shared"
    return True, ""


def fuse_key(config: RunConfig) -> tuple:
    """Configs with equal keys can share a fused group (the shared fields plus the optimizer family)."""
    shared = tuple((name, repr(getattr(config, name))) for name in RunConfig.__dataclass_fields__
                   if name not in PER_MODEL_FIELDS)
    return shared + (("family", FAMILIES.get(config.optimizer, config.optimizer)),)


def fusable_groups(configs, max_models: int = 32) -> list[list[RunConfig]]:
    """`configs` partitioned into groups of at most `max_models` that `can_fuse`, in first-seen order.

    A config that cannot fuse (an on-disk dataset such as ImageNet) comes back as a group of one.
    """
    if not (isinstance(max_models, int) and max_models >= 1):
        raise ValueError(f"max_models={max_models!r} is not allowed; expected an int >= 1")
    buckets: dict[tuple, list[RunConfig]] = {}
    singles: list[list[RunConfig]] = []
    for config in configs:
        if config.optimizer not in FAMILIES or config.dataset in ("auto", "imagenet"):
            singles.append([config])
        else:
            buckets.setdefault(fuse_key(config), []).append(config)
    groups = [bucket[i:i + max_models] for bucket in buckets.values() for i in range(0, len(bucket), max_models)]
    return groups + singles


def group_key(configs) -> str:
    """16 hex digits naming a group: sha256 of its members' config hashes, sorted (order-free)."""
    text = "fused:" + ",".join(sorted(config_hash(c) for c in configs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
