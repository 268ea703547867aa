"""Training one run with the paper's schedule (Sec. 2.1): base LR, then /10 at each drop.

Schedules are in epochs at the reference batch size (40); at another batch size the run does the
same number of iterations (Sec. 5.1, "we ensure the same number of training iterations").
Checkpoints are written atomically at epoch ends, and a run restarted with the same checkpoint
path resumes exactly where it stopped (data order depends only on seed and epoch).
"""
from __future__ import annotations

import copy
import math
import os
import re
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import RunConfig, config_hash
from .data import load_dataset, make_loader
from .models import conv_bn_layers, make_model
from .optim import DEFAULT_LR, make_optimizer
from .records import history_entry, provenance, run_record
from .regularizers import explicit_penalty
from .sparsity import (
    GAMMA_THRESHOLD,
    activation_masks,
    bn_parameters,
    gamma_masks,
    gamma_sparsity,
    pooled_activations,
    total_percent,
    universality_from_pooled,
    zero_inactive,
)
from .store import atomic_write, file_sha256, resolve_data_root

__all__ = ["CPU_CHANNELS_LAST", "CPU_COMPILE", "DEVICES", "MAX_EVALUATIONS", "build_model", "build_optimizer",
           "check_finite", "evaluate", "final_metrics", "first_bad_step", "iterations", "load_checkpoint",
           "load_model", "load_splits", "lr_factor", "pick_device", "pruned_param_percent", "restore_checkpoint",
           "resume_threads", "save_checkpoint", "set_checkpoint_aside", "set_lr", "snapshot_epochs", "speed_options",
           "step_setup", "threads_note", "train", "train_step", "training_device", "TrainingDiverged",
           "zeroed_test_errors"]

MAX_EVALUATIONS = 50  # test-set evaluations spread over a run
DEVICES = "auto, cpu, cuda, cuda:N"


class TrainingDiverged(RuntimeError):
    """A run's loss became NaN or infinite: the run stops and nothing of it is stored."""


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device, which must exist here.

    Raises ValueError naming the device and the allowed values for a misspelt or unavailable one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"device={device!r} is invalid; allowed: {DEVICES}")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device[5:] or 0)
        if index >= count:
            raise ValueError(f"device={device!r} is not available here ({count} CUDA device(s) found); "
                             f"allowed: auto, cpu" + (f", cuda:0..cuda:{count - 1}" if count else ""))
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available here; allowed: auto, cpu")
    return torch.device(device)


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


def load_splits(config: RunConfig, data_root=None):
    """(train, test) datasets for a config; the data itself is always generated/read with seed 0."""
    root = resolve_data_root(data_root)
    common = dict(image_size=config.image_size, clutter=config.clutter, num_classes=config.num_classes or 10)
    train_data = load_dataset(config.dataset, root, "train", subset=config.train_subset,
                              stream=config.train_stream, **common)
    test_data = load_dataset(config.dataset, root, "test", subset=config.test_subset, **common)
    return train_data, test_data


def iterations(config: RunConfig, train_size: int) -> tuple[int, list[int]]:
    """(total optimizer steps, steps at which the LR drops /10), from reference-batch epochs."""
    steps_per_ref_epoch = math.ceil(train_size / config.ref_batch_size)
    total = max(1, round(config.epochs * steps_per_ref_epoch))
    drops = [round(d * steps_per_ref_epoch) for d in config.lr_drops]
    return total, drops


def lr_factor(step: int, drops: list[int]) -> float:
    return 0.1 ** sum(step >= d for d in drops)


def set_lr(optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor * group.get("lr_scale", 1.0)


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> tuple[float, float]:
    """(mean cross-entropy loss, error in %) of `model` in eval mode over `loader`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device)
    count = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        wrong += (logits.argmax(1) != y).sum()
        count += len(y)
    model.train(was_training)
    return float(loss_sum) / count, 100.0 * float(wrong) / count


def build_model(config: RunConfig, num_classes: int, image_size: int) -> nn.Module:
    """The model of a config, initialized from `config.seed`."""
    torch.manual_seed(config.seed)
    return make_model(config.model, num_classes, image_size=image_size, head=config.head, width=config.width,
                      first_width=config.first_width, activation=config.activation,
                      negative_slope=config.negative_slope, bn_weight_init=config.bn_weight_init,
                      bn_bias_init=config.bn_bias_init)


def build_optimizer(config: RunConfig, model: nn.Module):
    return make_optimizer(model, config.optimizer, lr=config.lr, l2=config.l2, wd=config.wd,
                          gamma_lr_scale=config.gamma_lr_scale, beta_lr_scale=config.beta_lr_scale)


def snapshot_epochs(config: RunConfig, num_epochs: int) -> set[int]:
    """Epoch ends (0 = initialization) at which BN gamma/beta of `snapshot_layers` are stored."""
    if config.snapshot_count <= 0:
        return set()
    count = min(config.snapshot_count, num_epochs + 1)
    return {round(i * num_epochs / max(1, count - 1)) for i in range(count)}


def save_checkpoint(path: Path, state: dict) -> str:
    """torch.save through `atomic_write`: an interrupted save never replaces a good checkpoint, and two
    workers checkpointing the same run at once never share a temporary file. Returns the sha256 of
    the bytes written (a record's `weights_sha256`)."""
    digest = []

    def write(tmp: Path) -> None:
        torch.save(state, tmp)
        digest.append(file_sha256(tmp))
    atomic_write(path, write)
    return digest[0]


def load_checkpoint(path: Path | None, key: str) -> dict | None:
    """The checkpoint at `path` for run `key`, or None. A corrupt or foreign one is set aside.

    Read with `weights_only=True`: torch's restricted unpickler builds only tensors and plain
    containers, so a planted pickle cannot run code (checkpoints and optimizer state need nothing else).
    """
    if path is None or not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("config_hash") != key:
            found = state.get("config_hash") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"it belongs to run {found}, not {key}")
        return state
    except Exception as error:  # any unreadable file: keep it for inspection, restart the run
        set_checkpoint_aside(Path(path), error)
        return None


def _first_line(error: BaseException) -> str:
    """`TypeName: the first line of its message` (torch's unpickling errors run to a dozen lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def set_checkpoint_aside(path: Path, error: Exception) -> None:
    """Rename an unusable checkpoint to `<name>.corrupt` and warn in one line: the run restarts."""
    aside = path.with_suffix(".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another worker set it aside first
        pass
    warnings.warn(f"checkpoint {path} is unusable ({_first_line(error)}); moved to {aside.name} "
                  "and restarting the run")


def resume_threads(state: dict, resumed: bool) -> list[int]:
    """The CPU thread counts a run has trained under, in order, kept in the loop `state` (so in its
    checkpoint) and updated to this process's `torch.get_num_threads()`.

    Resume is exact only at the same thread count (float reductions are split by thread), so resuming
    under another one warns once; `train` records the list as provenance `resumed_threads` then.
    """
    threads = torch.get_num_threads()
    counts = state.setdefault("threads", [threads])  # a checkpoint from before this key: unknown, assumed equal
    if resumed and counts[-1] != threads:
        warnings.warn(f"resuming under {threads} CPU thread(s), but the checkpoint was written under {counts[-1]}: "
                      "the result may differ from an uninterrupted run in float rounding")
        counts.append(threads)
    return counts


def restore_checkpoint(path: Path | None, key: str, model: nn.Module, optimizer, state_keys=()) -> dict | None:
    """Load model, optimizer and RNG from run `key`'s checkpoint; its saved loop state, or None.

    A checkpoint that does not fit (missing optimizer state, wrong shapes, a loop state without
    `state_keys`) is set aside like an unreadable one, and model and optimizer are left as they were.
    """
    checkpoint = load_checkpoint(path, key)
    if checkpoint is None:
        return None
    initial = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["state"]
        missing = [name for name in state_keys if name not in state]
        if missing:
            raise KeyError(f"loop state lacks {', '.join(missing)}")
        torch.set_rng_state(checkpoint["rng"])
    except Exception as error:  # noqa: BLE001 -- whatever does not fit, the run restarts from scratch
        model.load_state_dict(initial[0])
        optimizer.load_state_dict(initial[1])
        set_checkpoint_aside(Path(path), error)
        return None
    return state


def threads_note(threads: list[int]) -> dict:
    """Provenance keys for the thread counts of `resume_threads`: `resumed_threads` (e.g. [2, 1]) when
    the run changed thread count on a resume, else none (`cpu_threads` is always recorded)."""
    return {"resumed_threads": list(threads)} if len(threads) > 1 else {}


def pruned_param_percent(model: nn.Module, masks: dict[str, torch.Tensor]) -> float:
    """% of conv weights that disappear when the marked features (and their inputs downstream) go."""
    layers = conv_bn_layers(model)
    total = removed = 0
    kept_in = 3
    for name, conv, _ in layers:
        kept_out = int((~masks[name]).sum())
        size = conv.weight[0, 0].numel()
        total += conv.weight.numel()
        removed += conv.weight.numel() - kept_out * min(kept_in, conv.in_channels) * size
        kept_in = kept_out
    return 100.0 * removed / max(1, total)


def final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err) -> tuple[dict, dict]:
    """Headline numbers of a finished run (Table 1/2 columns) and per-feature universality."""
    test_loss, test_err = evaluate(model, test_loader)
    pooled = pooled_activations(model, train_eval_loader)
    by_gamma = gamma_sparsity(model)
    by_act = activation_masks(pooled)
    masks = gamma_masks(model)
    _, zeroed_err = evaluate(zero_inactive(model, masks), test_loader)
    layers = [{"layer": row.layer, "features": row.features, "inactive_gamma": row.inactive,
               "inactive_act": int(by_act[row.layer].sum())} for row in by_gamma.itertuples()]
    features = sum(layer["features"] for layer in layers)
    final = {
        "train_loss": train_loss, "train_err": train_err, "test_loss": test_loss, "test_err": test_err,
        "sparsity_gamma": total_percent(by_gamma),
        "sparsity_act": 100.0 * sum(layer["inactive_act"] for layer in layers) / features,
        "test_err_zeroed": zeroed_err, "conv_params_pruned": pruned_param_percent(model, masks),
        "features": features, "layers": layers,
    }
    universality = {name: values.round(3).tolist() for name, values in universality_from_pooled(pooled).items()}
    return final, universality


def training_device(device: str = "auto") -> tuple[torch.device, bool]:
    """(`pick_device(device)`, whether subnormal floats are now flushed to zero): every trainer's start.

    L2 drives dead filters' weights into subnormal floats, which slow CPU arithmetic ~5x; on the CPU
    they are flushed to zero (process-wide), which changes nothing measurable (|values| < 1e-38).
    """
    dev = pick_device(device)
    return dev, (torch.set_flush_denormal(True) if dev.type == "cpu" else False)


# The CPU step's speed options, chosen by measurement (`benchmarks/bench_cpu_step.py`, BENCHMARKS.md
# section 5): a layout or compiler is adopted only where it is faster and changes no number beyond
# float32 rounding. Every record names the options it was trained with (provenance).
CPU_CHANNELS_LAST = True  # measured faster on the 2-core development VM, 1 and 2 threads
CPU_COMPILE = False  # measured no faster than channels_last alone, and each run would pay the compile


def step_setup(model: nn.Module, dev: torch.device) -> tuple:
    """(forward, prepare) for `train_step` on `dev`: `forward` runs the model (the model itself, or its
    `torch.compile`d wrapper), `prepare(x)` converts a batch (None: as it comes). With channels_last
    the model's weights are converted in place."""
    channels_last, compile = speed_options(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    prepare = (lambda x: x.contiguous(memory_format=torch.channels_last)) if channels_last else None
    return forward, prepare


def speed_options(dev: torch.device) -> tuple[bool, bool]:
    """(channels_last, compile) of the plain trainer on `dev`: the measured CPU choice; none on GPUs
    (unmeasured there; the fused trainer has its own options)."""
    return (CPU_CHANNELS_LAST, CPU_COMPILE) if dev.type == "cpu" else (False, False)


def train_step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, config: RunConfig | None = None,
               *, forward=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on the batch (x, y): cross-entropy plus `config`'s explicit penalty (none
    without a config); returns the detached (mean loss, logits). `forward` replaces `model` for the
    forward pass (e.g. its `torch.compile`d wrapper); the penalty always reads `model`."""
    logits = (model if forward is None else forward)(x)
    loss = F.cross_entropy(logits, y)
    penalty = explicit_penalty(model, config) if config is not None else None
    optimizer.zero_grad(set_to_none=True)
    (loss if penalty is None else loss + penalty).backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def train(config: RunConfig, *, data_root=None, device: str = "auto", checkpoint_path=None, weights_path=None,
          checkpoint_every: int = 1, progress: bool = True, callback=None) -> dict:
    """Train one config and return its record (config, history, final metrics, snapshots, provenance).

    `callback(epoch, entry)` runs after each epoch's history entry (tests use it to interrupt).
    """
    started = time.time()
    dev, flush_denormal = training_device(device)
    key = config_hash(config)
    train_data, test_data = load_splits(config, data_root)
    train_loader = make_loader(train_data, config.batch_size, train=True, device=dev, seed=config.seed)
    train_eval_loader = make_loader(train_data, 500, train=False, device=dev)
    test_loader = make_loader(test_data, 500, train=False, device=dev)
    model = build_model(config, train_data.num_classes, train_data.image_size).to(dev)
    forward, prepare = step_setup(model, dev)
    optimizer = build_optimizer(config, model)
    base_lr = config.lr or DEFAULT_LR[config.optimizer]
    total_steps, drops = iterations(config, len(train_data))
    num_epochs = math.ceil(total_steps / len(train_loader))
    eval_every = max(1, num_epochs // MAX_EVALUATIONS)
    snapshots_at = snapshot_epochs(config, num_epochs)

    state = {"epoch": 0, "step": 0, "history": [], "snapshots": {}, "elapsed": 0.0}
    saved = restore_checkpoint(checkpoint_path, key, model, optimizer, state.keys())
    if saved is not None:
        state = saved
    elif 0 in snapshots_at:
        state["snapshots"]["0"] = bn_parameters(model, config.snapshot_layers)
    threads = resume_threads(state, saved is not None)

    prior_elapsed = state["elapsed"]  # seconds spent before an interruption
    bar = tqdm(total=total_steps, initial=state["step"], desc=config.label(), disable=not progress,
               mininterval=2.0, leave=False)
    train_loss = train_err = float("nan")
    for epoch in range(state["epoch"], num_epochs):
        train_loader.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=dev)
        wrong = torch.zeros((), device=dev)
        bad_step = torch.full((), -1, device=dev)
        seen = 0
        for x, y in train_loader:
            if state["step"] >= total_steps:
                break
            set_lr(optimizer, base_lr, lr_factor(state["step"], drops))
            loss, logits = train_step(model, optimizer, x if prepare is None else prepare(x), y, config,
                                      forward=forward)
            bad_step = first_bad_step(loss, state["step"] + 1, bad_step)
            loss_sum += loss * len(y)
            wrong += (logits.argmax(1) != y).sum()
            seen += len(y)
            state["step"] += 1
            bar.update(1)
        train_loss, train_err = float(loss_sum) / max(1, seen), 100.0 * float(wrong) / max(1, seen)
        check_finite(train_loss, f"{key} ({config.label()} seed {config.seed})",  # before any checkpoint
                     int(bad_step) if bad_step >= 0 else state["step"], bar=bar)
        evaluated = (epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs
        entry = history_entry(epoch + 1, state["step"], base_lr * lr_factor(state["step"] - 1, drops), train_loss,
                              train_err, {row.layer: row.inactive for row in gamma_sparsity(model).itertuples()},
                              evaluate(model, test_loader) if evaluated else None)
        if epoch + 1 in snapshots_at:
            state["snapshots"][str(epoch + 1)] = bn_parameters(model, config.snapshot_layers)
        state["history"].append(entry)
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{train_loss:.3f}", dead=sum(entry["inactive_gamma"].values()))
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == num_epochs):
            state["elapsed"] = prior_elapsed + time.time() - started
            save_checkpoint(Path(checkpoint_path), {"config_hash": key, "model": model.state_dict(),
                                                    "optimizer": optimizer.state_dict(),
                                                    "rng": torch.get_rng_state(), "state": state})
        if callback is not None:
            callback(epoch + 1, entry)
    bar.close()
    if state["history"]:
        train_loss, train_err = state["history"][-1]["train_loss"], state["history"][-1]["train_err"]
    final, universality = final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err)
    check_finite(final["test_loss"], f"{key} ({config.label()} seed {config.seed})", state["step"], "test loss")
    sha256 = None if weights_path is None else save_checkpoint(Path(weights_path), model.state_dict())
    made_by = provenance(train_data, test_data, total_steps, dev, wall_time_s=prior_elapsed + time.time() - started,
                         resumed=saved is not None, flush_denormal=flush_denormal, channels_last=prepare is not None,
                         compiled=forward is not model, **threads_note(threads))
    return run_record(config, key, model, final, universality, state["history"], state["snapshots"], made_by, sha256)


def load_model(record: dict, weights_path, device: str = "cpu") -> nn.Module:
    """Rebuild the trained model of a stored record from its saved weights (`RunStore.weights_file`).

    Raises ValueError naming the file when the record has no `weights_sha256`, or the weights are
    missing, do not match it, cannot be read (read with `weights_only=True`: a planted pickle cannot
    run code), or do not fit the record's model.
    """
    path = Path(weights_path)
    if not isinstance(record.get("weights_sha256"), str):
        raise ValueError(f"record of run {record.get('config_hash')} has no weights_sha256, so weights file {path} "
                         "cannot be checked; allowed: a record stored with its weights")
    config = RunConfig.from_dict(record["config"])
    classes = config.num_classes or {"cifar100": 100, "tinyimagenet": 200, "imagenet": 1000}.get(config.dataset, 10)
    model = build_model(config, classes, record["provenance"]["image_size"])
    try:
        if file_sha256(path) != record["weights_sha256"]:
            raise ValueError(f"its sha256 differs from the record's weights_sha256 {record['weights_sha256'][:12]}...")
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except Exception as error:  # noqa: BLE001 -- one message naming the file, whatever torch raised
        raise ValueError(f"weights file {path} of run {record.get('config_hash')} is unusable "
                         f"({_first_line(error)})") from None
    return model.to(device).eval()


def zeroed_test_errors(record: dict, weights_path, thresholds=(GAMMA_THRESHOLD, 1e-2), data_root=None,
                       device: str = "cpu") -> pd.DataFrame:
    """Test error (%) of a stored run's model after zeroing its features with |gamma| < each threshold
    (Sec. 2.1: dead features can be removed without changing the output). Rows: 'as stored' then one
    per threshold; columns: features zeroed, test error. Raises ValueError when the weights are missing."""
    model = load_model(record, weights_path, device)
    _, test_data = load_splits(RunConfig.from_dict(record["config"]), data_root)
    loader = make_loader(test_data, 500, train=False)
    rows = [{"model": "as stored", "features zeroed": 0, "test error": evaluate(model, loader)[1]}]
    for threshold in thresholds:
        masks = gamma_masks(model, threshold)
        zeroed = sum(int(mask.sum()) for mask in masks.values())
        rows.append({"model": f"|γ| < {threshold:g} zeroed", "features zeroed": zeroed,
                     "test error": evaluate(zero_inactive(model, masks), loader)[1]})
    return pd.DataFrame(rows).set_index("model")
