"""A run's schedule (paper Sec. 2.1: 250 + 75 epochs at batch 40, LR /10 twice): optimizer steps
matched to reference-batch epochs, the learning-rate drops, and the epochs at which test error is
evaluated and BN parameters are snapshotted."""
from __future__ import annotations

import math

from .config import RunConfig

__all__ = ["iterations", "lr_factor", "MAX_EVALUATIONS", "set_lr", "snapshot_epochs"]

MAX_EVALUATIONS = 50  # test-set evaluations spread over a run


def iterations(config: RunConfig, train_size: int) -> tuple[int, list[int]]:
    """(total optimizer steps, steps at which the LR drops /10), from reference-batch epochs."""
    steps_per_ref_epoch = math.ceil(train_size / config.ref_batch_size)
    total = max(1, round(config.epochs * steps_per_ref_epoch))
    drops = [round(d * steps_per_ref_epoch) for d in config.lr_drops]
    return total, drops


def lr_factor(step: int, drops: list[int]) -> float:
    """The LR multiplier at optimizer step `step`: 0.1 per drop in `drops` already reached."""
    return 0.1 ** sum(step >= d for d in drops)


def set_lr(optimizer, base_lr: float, factor: float) -> None:
    """Every param group's lr = base_lr * factor * its `lr_scale` (BN gamma/beta lr multipliers, Sec. 3)."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor * group.get("lr_scale", 1.0)


def snapshot_epochs(config: RunConfig, num_epochs: int) -> set[int]:
    """Epoch ends (0 = initialization) at which BN gamma/beta of `snapshot_layers` are stored."""
    if config.snapshot_count <= 0:
        return set()
    count = min(config.snapshot_count, num_epochs + 1)
    return {round(i * num_epochs / max(1, count - 1)) for i in range(count)}



