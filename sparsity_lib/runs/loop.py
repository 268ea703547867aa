"""The one training loop both trainers run (paper Sec. 2.1 protocol): N models, N = 1 for
`training.train`, N > 1 for a fused group (`fused.trainer.train_group`).

A trainer builds a `Trainee` (its data, network, optimizer and per-model hooks) and calls
`run_epochs`, which restores a matching checkpoint, loops over the epochs (optimizer steps with the
LR schedule, divergence checks, one history entry per model and epoch, BN snapshots, checkpoints),
then computes each model's final metrics, saves its weights and returns its record.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.images import ImageData
from ..nets.optim import DEFAULT_LR
from ..nets.sparsity import bn_parameters
from .checkpoint import restore_checkpoint, resume_threads, save_checkpoint, threads_note
from .config import RunConfig
from .metrics import final_metrics
from .records import history_entry, provenance, run_record
from .schedule import MAX_EVALUATIONS, lr_factor, snapshot_epochs

__all__ = ["check_finite", "first_bad_step", "run_epochs", "Trainee", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A run's loss became NaN or infinite: the run stops and nothing of it is stored."""


def check_finite(loss: float, run: str, step: int, what: str = "training loss", bar=None) -> None:
    """Raise TrainingDiverged naming the run and the step when `loss` is NaN or infinite (closing the
    progress `bar` first, so the message starts a clean line)."""
    if not math.isfinite(loss):
        if bar is not None:
            bar.close()
        raise TrainingDiverged(f"run {run} diverged: the {what} became {loss} at step {step}; nothing was "
                               "stored (lower lr, or check the config's scales and initialization)")


def first_bad_step(losses: torch.Tensor, step: int, first: torch.Tensor) -> torch.Tensor:
    """`first` (-1 while all were finite) updated with `step` where `losses` is first non-finite;
    on the device, so checking every step costs no synchronization."""
    return torch.where((first < 0) & ~torch.isfinite(losses), torch.full_like(first, step), first)


@dataclass
class Trainee:
    """What `run_epochs` trains: `configs` (one per model, sharing the schedule of `configs[0]`), their
    hashes `keys` and `names` (for error messages); `network` and `optimizer` (checkpointed under
    `checkpoint_key`, with `checkpoint_extra` beside them); `loader` (training batches: `set_epoch`,
    `len`, iteration); and the per-model hooks: `step(batch, step)` runs one optimizer step and returns
    (losses (N,), wrong predictions (N,), images per model); `inactive()` the features per layer with
    |gamma| < 1e-3 for each model; `evaluate()` each model's (test loss, test error %); `model(i)`
    model i as a plain network. `train_images`, `test_images`, `device`, `flush_denormal` and
    `provenance` (the trainer's speed options and extras) go into every record's provenance.
    """
    configs: list[RunConfig]
    keys: list[str]
    names: list[str]
    checkpoint_key: str
    network: nn.Module
    optimizer: object
    loader: object
    step: Callable
    inactive: Callable[[], list[dict]]
    evaluate: Callable[[], list[tuple[float, float]]]
    model: Callable[[int], nn.Module]
    data: tuple[ImageData, ImageData]
    device: torch.device
    flush_denormal: bool
    total_steps: int
    drops: list[int]
    desc: str
    provenance: dict = field(default_factory=dict)
    checkpoint_extra: dict = field(default_factory=dict)


def run_epochs(trainee: Trainee, *, started: float, train_eval_loader, test_loader, checkpoint_path=None,
               weights_paths=None, checkpoint_every: int = 1, progress: bool = True, callback=None) -> list[dict]:
    """Train `trainee` to its `total_steps` and return one record per model, in `configs` order.

    `started` is the trainer's `time.time()` at set-up (the wall time counts it). `callback(epoch,
    entries)` gets the per-model history entries after each epoch; `weights_paths[i]` receives model
    i's final state dict (None: not saved).
    """
    size, configs = len(trainee.configs), trainee.configs
    num_epochs = math.ceil(trainee.total_steps / len(trainee.loader))
    eval_every = max(1, num_epochs // MAX_EVALUATIONS)
    snapshots_at = [snapshot_epochs(config, num_epochs) for config in configs]
    base_lrs = [config.lr or DEFAULT_LR[config.optimizer] for config in configs]
    state = {"epoch": 0, "step": 0, "histories": [[] for _ in configs], "snapshots": [{} for _ in configs],
             "elapsed": 0.0}
    saved = restore_checkpoint(checkpoint_path, trainee.checkpoint_key, trainee.network, trainee.optimizer,
                               state.keys())
    if saved is not None:
        state = saved
    else:
        for i, config in enumerate(configs):
            if 0 in snapshots_at[i]:
                state["snapshots"][i]["0"] = bn_parameters(trainee.model(i), config.snapshot_layers)
    threads = resume_threads(state, saved is not None)
    prior_elapsed = state["elapsed"]  # seconds spent before an interruption
    bar = tqdm(total=trainee.total_steps, initial=state["step"], desc=trainee.desc, disable=not progress,
               mininterval=2.0, leave=False)
    device = trainee.device
    for epoch in range(state["epoch"], num_epochs):
        trainee.loader.set_epoch(epoch)
        trainee.network.train()
        loss_sum = torch.zeros(size, device=device)
        wrong = torch.zeros(size, device=device)
        bad_step = torch.full((size,), -1, device=device)
        seen = 0
        for batch in trainee.loader:
            if state["step"] >= trainee.total_steps:
                break
            losses, errors, count = trainee.step(batch, state["step"])
            bad_step = first_bad_step(losses, state["step"] + 1, bad_step)
            loss_sum += losses * count
            wrong += errors
            seen += count
            state["step"] += 1
            bar.update(1)
        train_loss = [value / max(1, seen) for value in loss_sum.tolist()]  # means in double precision
        train_err = [100.0 * value / max(1, seen) for value in wrong.tolist()]
        for i, bad in enumerate(bad_step.tolist()):  # before any checkpoint
            check_finite(train_loss[i], trainee.names[i], bad if bad >= 0 else state["step"], bar=bar)
        inactive = trainee.inactive()
        evaluated = (epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs
        tests = trainee.evaluate() if evaluated else [None] * size
        entries = []
        for i, config in enumerate(configs):
            entry = history_entry(epoch + 1, state["step"], base_lrs[i] * lr_factor(state["step"] - 1, trainee.drops),
                                  train_loss[i], train_err[i], inactive[i], tests[i])
            if epoch + 1 in snapshots_at[i]:
                state["snapshots"][i][str(epoch + 1)] = bn_parameters(trainee.model(i), config.snapshot_layers)
            state["histories"][i].append(entry)
            entries.append(entry)
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{sum(train_loss) / size:.3f}", dead=sum(sum(e["inactive_gamma"].values())
                                                                       for e in entries))
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == num_epochs):
            state["elapsed"] = prior_elapsed + time.time() - started
            save_checkpoint(Path(checkpoint_path), {"config_hash": trainee.checkpoint_key, **trainee.checkpoint_extra,
                                                    "model": trainee.network.state_dict(),
                                                    "optimizer": trainee.optimizer.state_dict(),
                                                    "rng": torch.get_rng_state(), "state": state})
        if callback is not None:
            callback(epoch + 1, entries)
    bar.close()
    return _records(trainee, state, saved is not None, threads, prior_elapsed, started, train_eval_loader,
                    test_loader, weights_paths)


def _records(trainee: Trainee, state: dict, resumed: bool, threads: list[int], prior_elapsed: float, started: float,
             train_eval_loader, test_loader, weights_paths) -> list[dict]:
    """Each model's final metrics (divergence-checked), saved weights and record."""
    finished = []
    for i, config in enumerate(trainee.configs):
        model = trainee.model(i)
        history = state["histories"][i]
        train_loss, train_err = (history[-1]["train_loss"], history[-1]["train_err"]) if history else (math.nan,) * 2
        final, universality = final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err)
        check_finite(final["test_loss"], trainee.names[i], state["step"], "test loss")
        finished.append((model, final, universality))
    wall = prior_elapsed + time.time() - started
    weights_paths = [None] * len(finished) if weights_paths is None else weights_paths
    records = []
    for i, (model, final, universality) in enumerate(finished):
        sha256 = None if weights_paths[i] is None else save_checkpoint(Path(weights_paths[i]), model.state_dict())
        made_by = provenance(*trainee.data, trainee.total_steps, trainee.device, wall_time_s=wall, resumed=resumed,
                             flush_denormal=trainee.flush_denormal, **trainee.provenance, **threads_note(threads))
        records.append(run_record(trainee.configs[i], trainee.keys[i], model, final, universality,
                                  state["histories"][i], state["snapshots"][i], made_by, sha256))
    return records
