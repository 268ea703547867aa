"""Fused sweeps: N runs that differ only in optimizer hyperparameters and seed, trained as one wide network.

The paper's protocol (Sec. 2.1: batch 40, 325 epochs) leaves a GPU launch-bound, and the batch size
cannot be raised without changing the science. Horizontal fusion (HFTA, Wang et al., MLSys 2021)
keeps every model at its own batch of 40 and stacks the N models along the channel axis:

* every conv becomes one grouped conv (groups = N) over activations laid out (batch, N*C, H, W);
  BatchNorm2d over N*C channels then computes each model's statistics over its own 40 images only;
* the fc head runs as batched matmuls over (N, batch, features);
* each model draws its own shuffled, flipped mini-batch (seed, epoch), exactly as `data.GpuLoader`;
* `FusedOptimizer` steps all models at once with per-model lr, L2 and WD held as tensors, with the
  L2-vs-WD semantics of `sparsity_lib.optim` (coupled L2 in the gradient, then theta *= 1 - wd).

`train_group` returns one record per config in the format of `train.train` (both build it with
`records`); final metrics come from the library's own functions applied to each model unfused back
into a plain `BasicNet`/`VGG`. The grouping rules live in `fused_groups`, the network in `fused_net`,
the optimizer in `fused_optim`.
`run_or_load_group` is the store-aware entry point for sweeps (`--fused auto|on|off`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import RunConfig, config_hash
from .data import make_loader
from .fused_groups import FUSED_MODES, can_fuse, fusable_groups, group_key
from .fused_net import FusedLoader, FusedNet, FusedPenalty, fused_evaluate, unfuse
from .fused_optim import FusedOptimizer
from .optim import DEFAULT_LR
from .records import history_entry, provenance, run_record
from .runner import resolve_config
from .sparsity import GAMMA_THRESHOLD, bn_parameters
from .store import RunStore
from .train import (
    MAX_EVALUATIONS,
    build_model,
    check_finite,
    final_metrics,
    first_bad_step,
    iterations,
    load_splits,
    lr_factor,
    pick_device,
    restore_checkpoint,
    resume_threads,
    save_checkpoint,
    snapshot_epochs,
    threads_note,
    training_device,
)
from .train import train as train_single
from .validation import check_choice

__all__ = ["SPEED_OPTIONS", "group_checkpoint_path", "run_or_load_group", "train_group", "train_step"]

SPEED_OPTIONS = ("amp", "channels_last", "compile")  # train_group's options that change only speed and rounding


def _inactive_gamma(net: FusedNet, threshold: float = GAMMA_THRESHOLD) -> list[dict[str, int]]:
    """Per model, {layer: features with |gamma| < threshold} (as `sparsity.gamma_sparsity`)."""
    counts = {layer: (net.stacked(f"{bn}.weight").detach().abs() < threshold).sum(1).tolist()
              for layer, _, bn in net.conv_bn_names()}
    return [{layer: int(values[i]) for layer, values in counts.items()} for i in range(net.size)]


def train_step(net: FusedNet, optimizer: FusedOptimizer, x: torch.Tensor, y: torch.Tensor, factor: float = 1.0,
               *, penalty: FusedPenalty | None = None, forward=None, amp: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of every model on its own batch; returns per-model (mean loss, wrong count).

    x: (B, N*C, H, W) from `FusedLoader`; y: (N, B). Each model's loss is its mean cross-entropy
    (plus its explicit regularizer from `penalty`), and the sum over models is differentiated, so each
    model receives exactly the gradient of its own loss. `forward` replaces `net` (e.g. a
    `torch.compile`d net); `amp` runs it under bf16 autocast (CUDA or CPU).
    """
    dtype = next(net.parameters()).dtype  # float32; float64 when tests set torch's default dtype
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = (net if forward is None else forward)(x.to(dtype))
    logits = logits.to(dtype)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(net.size, -1).mean(1)
    extra = penalty() if penalty is not None else None
    optimizer.zero_grad()
    (losses.sum() if extra is None else losses.sum() + extra).backward()
    optimizer.step(factor)
    return losses.detach(), (logits.detach().argmax(2) != y).sum(1)


def _run_name(config: RunConfig, key: str, size: int) -> str:
    return f"{key} ({config.label()} seed {config.seed}, in a fused group of {size})"


def train_group(configs, *, data_root=None, device: str = "auto", checkpoint_path=None, weights_paths=None,
                checkpoint_every: int = 1, progress: bool = True, callback=None, amp: bool = False,
                channels_last: bool = False, compile: bool = False) -> list[dict]:
    """Train `configs` together as one `FusedNet`; return one `train.train`-format record per config.

    Each model is initialized by `train.build_model` from its own seed, sees its own shuffled
    mini-batches of `batch_size` images, and follows the LR schedule of `train.iterations` /
    `train.lr_factor`, so its record matches its single run up to float rounding. The checkpoint at
    `checkpoint_path` holds the whole group (keyed by `group_key`); a restarted call resumes exactly.
    `weights_paths[i]` receives model i's final plain state dict. `callback(epoch, entries)` gets
    the per-model history entries after each epoch. Speed options, on any device: `amp` runs the
    forward pass under bf16 autocast, `channels_last` uses NHWC activations, `compile` wraps the
    fused forward in `torch.compile`. They are off by default because they change the float rounding;
    `benchmarks/bench_precision.py` measures whether that moves results beyond seed-to-seed noise.
    Each record's provenance names the options it was trained with.
    """
    started = time.time()
    configs = list(configs)
    ok, why = can_fuse(configs)
    if not ok:
        raise ValueError(f"configs cannot train as one fused group: {why}")
    weights_paths = [None] * len(configs) if weights_paths is None else list(weights_paths)
    if len(weights_paths) != len(configs):
        raise ValueError(f"weights_paths has {len(weights_paths)} entries for {len(configs)} configs; they must match")
    # A canonical member order (by config hash) so a checkpoint fits the group however it is listed.
    order = sorted(range(len(configs)), key=lambda i: config_hash(configs[i]))
    members = [configs[i] for i in order]
    keys, key = [config_hash(c) for c in members], group_key(members)
    first = members[0]
    dev, flush_denormal = training_device(device)

    train_data, test_data = load_splits(first, data_root)
    # Moved once: the fused loader, the eval loaders and the fused evaluation share these copies.
    train_data.images, test_data.images = train_data.images.to(dev), test_data.images.to(dev)
    loader = FusedLoader(train_data, first.batch_size, [c.seed for c in members], device=dev)
    train_eval_loader = make_loader(train_data, 500, train=False, device=dev)
    test_loader = make_loader(test_data, 500, train=False, device=dev)
    models = [build_model(c, train_data.num_classes, train_data.image_size) for c in members]
    net = FusedNet(models, channels_last=channels_last).to(dev)
    optimizer = FusedOptimizer(net, members)
    penalty = FusedPenalty(net, members)
    forward = torch.compile(net) if compile else net
    total_steps, drops = iterations(first, len(train_data))
    num_epochs = math.ceil(total_steps / len(loader))
    eval_every = max(1, num_epochs // MAX_EVALUATIONS)
    snapshots_at = [snapshot_epochs(c, num_epochs) for c in members]

    state = {"epoch": 0, "step": 0, "histories": [[] for _ in members], "snapshots": [{} for _ in members],
             "elapsed": 0.0}
    saved = restore_checkpoint(checkpoint_path, key, net, optimizer, state.keys())
    if saved is not None:
        state = saved
    else:
        for i, config in enumerate(members):
            if 0 in snapshots_at[i]:
                state["snapshots"][i]["0"] = bn_parameters(models[i], config.snapshot_layers)
    threads = resume_threads(state, saved is not None)
    del models

    prior_elapsed = state["elapsed"]
    bar = tqdm(total=total_steps, initial=state["step"], desc=f"fused x{net.size} {first.optimizer}",
               disable=not progress, mininterval=2.0, leave=False)
    size = net.size
    for epoch in range(state["epoch"], num_epochs):
        loader.set_epoch(epoch)
        net.train()
        loss_sum = torch.zeros(size, device=dev)
        wrong = torch.zeros(size, device=dev)
        bad_step = torch.full((size,), -1, device=dev)
        seen = 0
        for x, y in loader:
            if state["step"] >= total_steps:
                break
            losses, errors = train_step(net, optimizer, x, y, lr_factor(state["step"], drops), penalty=penalty,
                                        forward=forward, amp=amp)
            bad_step = first_bad_step(losses, state["step"] + 1, bad_step)
            loss_sum += losses * y.shape[1]
            wrong += errors
            seen += y.shape[1]
            state["step"] += 1
            bar.update(1)
        train_loss = (loss_sum / max(1, seen)).tolist()
        train_err = (100.0 * wrong / max(1, seen)).tolist()
        for i, (config, bad) in enumerate(zip(members, bad_step.tolist())):  # before any checkpoint
            check_finite(train_loss[i], _run_name(config, keys[i], size), bad if bad >= 0 else state["step"], bar=bar)
        inactive = _inactive_gamma(net)
        evaluated = (epoch + 1) % eval_every == 0 or epoch + 1 == num_epochs
        test_loss, test_err = fused_evaluate(net, test_data) if evaluated else (None, None)
        entries = []
        for i, config in enumerate(members):
            base_lr = config.lr or DEFAULT_LR[config.optimizer]
            entry = history_entry(epoch + 1, state["step"], base_lr * lr_factor(state["step"] - 1, drops),
                                  train_loss[i], train_err[i], inactive[i],
                                  (test_loss[i], test_err[i]) if evaluated else None)
            if epoch + 1 in snapshots_at[i]:
                state["snapshots"][i][str(epoch + 1)] = bn_parameters(unfuse(net, i), config.snapshot_layers)
            state["histories"][i].append(entry)
            entries.append(entry)
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{sum(train_loss) / size:.3f}")
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == num_epochs):
            state["elapsed"] = prior_elapsed + time.time() - started
            save_checkpoint(Path(checkpoint_path), {"config_hash": key, "members": keys, "model": net.state_dict(),
                                                    "optimizer": optimizer.state_dict(),
                                                    "rng": torch.get_rng_state(), "state": state})
        if callback is not None:
            callback(epoch + 1, [entries[order.index(j)] for j in range(size)])  # caller's order
    bar.close()

    records = []
    for i, config in enumerate(members):
        model = unfuse(net, i)
        history = state["histories"][i]
        train_loss, train_err = (history[-1]["train_loss"], history[-1]["train_err"]) if history else (math.nan,) * 2
        final, universality = final_metrics(model, config, train_eval_loader, test_loader, train_loss, train_err)
        check_finite(final["test_loss"], _run_name(config, keys[i], size), state["step"], "test loss")
        records.append((model, final, universality))
    wall = prior_elapsed + time.time() - started  # the whole group's
    precision = "bf16 autocast" if amp else str(next(net.parameters()).dtype).replace("torch.", "")
    results = [None] * size
    for j, (i, (model, final, universality)) in enumerate(zip(order, records)):
        sha256 = None if weights_paths[i] is None else save_checkpoint(Path(weights_paths[i]), model.state_dict())
        made_by = provenance(train_data, test_data, total_steps, dev, wall_time_s=wall, resumed=saved is not None,
                             flush_denormal=flush_denormal, channels_last=channels_last, compiled=compile,
                             fused_models=size, precision=precision, **threads_note(threads))
        results[i] = run_record(members[j], keys[j], model, final, universality, state["histories"][j],
                                state["snapshots"][j], made_by, sha256)
    return results


def group_checkpoint_path(store: RunStore, configs) -> Path:
    """Where a fused group's checkpoint lives in a run store: checkpoints/group-<group_key>.pt."""
    return store.root / "checkpoints" / f"group-{group_key(configs)}.pt"


def run_or_load_group(configs, *, store: RunStore | str | Path | None = None, data_root=None, device: str = "auto",
                      profile: str = "", progress: bool = True, fresh: bool = False, fused: str = "auto",
                      max_models: int = 32, amp: bool = False, channels_last: bool = False,
                      compile: bool = False) -> list[dict]:
    """Records of `configs` (in order): stored ones loaded, missing ones trained in fused groups and stored.

    fused: 'auto' fuses groups of two or more on CUDA only (on CPU a grouped conv is not faster than
    separate runs), 'on' fuses whenever `can_fuse` allows (any device), 'off' trains one run at a
    time with `train.train`. Each finished record is written exactly as `run_or_load` writes it.
    `amp`, `channels_last` and `compile` are `train_group`'s speed options (fused groups only).
    """
    check_choice("fused", fused, FUSED_MODES)
    store = store if isinstance(store, RunStore) else RunStore(store)
    resolved = [resolve_config(c, data_root)[0] for c in configs]
    found = {} if fresh else {config_hash(c): store.load(config_hash(c)) for c in resolved}
    missing = list({config_hash(c): c for c in resolved if found.get(config_hash(c)) is None}.values())
    fuse_here = fused == "on" or (fused == "auto" and pick_device(device).type == "cuda")
    speed = {"amp": amp, "channels_last": channels_last, "compile": compile}
    if any(speed.values()) and not fuse_here:
        raise ValueError(f"{', '.join(k for k, v in speed.items() if v)}: options of the fused trainer, which "
                         f"fused={fused!r} does not use here; pass fused='on' (or 'auto' on CUDA)")
    groups = fusable_groups(missing, max_models) if fuse_here else [[c] for c in missing]
    if groups:
        store.check_writable()
        store.remove_stale_temporaries()
    for group in groups:
        for record in _train_and_store(group, store, data_root=data_root, device=device, progress=progress,
                                       speed=speed, profile=profile):
            found[record["config_hash"]] = record
    return [found[config_hash(c)] for c in resolved]


def _train_and_store(group, store: RunStore, *, data_root, device, progress, speed, profile) -> list[dict]:
    """Train one group (fused when it has two or more configs, or speed options that it can use), then
    store each record with the weights its model wrote to a temporary file (`RunStore.save`: weights
    first, record last); the records, in the group's order."""
    weights = [store.weights_temporary(config_hash(c)) for c in group]
    try:
        if len(group) > 1 or (any(speed.values()) and can_fuse(group)[0]):
            checkpoint = group_checkpoint_path(store, group)
            records = train_group(group, data_root=data_root, device=device, checkpoint_path=checkpoint,
                                  weights_paths=weights, progress=progress, **speed)
        else:
            checkpoint = store.checkpoint_path(config_hash(group[0]))
            records = [train_single(group[0], data_root=data_root, device=device, checkpoint_path=checkpoint,
                                    weights_path=weights[0], progress=progress)]
        for record, path in zip(records, weights):
            record["provenance"]["profile"] = profile
            store.save(record, weights=path)
    finally:
        for path in weights:
            path.unlink(missing_ok=True)  # left only when training or saving failed
    checkpoint.unlink(missing_ok=True)
    return records
