"""Fused sweeps: N runs that differ only in optimizer hyperparameters and seed, trained as one wide network.

The paper's protocol (Sec. 2.1: batch 40, 325 epochs) leaves a GPU launch-bound, and the batch size
cannot be raised without changing the science. Horizontal fusion (HFTA, Wang et al., MLSys 2021)
keeps every model at its own batch of 40 and stacks the N models along the channel axis:

* every conv becomes one grouped conv (groups = N) over activations laid out (batch, N*C, H, W);
  BatchNorm2d over N*C channels then computes each model's statistics over its own 40 images only;
* the fc head runs as batched matmuls over (N, batch, features);
* each model draws its own shuffled, flipped mini-batch (seed, epoch), exactly as `data.GpuLoader`;
* `FusedOptimizer` steps all models at once with per-model lr, L2 and WD held as tensors, with the
  L2-vs-WD semantics of `sparsity_lib.nets.optim` (coupled L2 in the gradient, then theta *= 1 - wd).

`train_group` sets up the group and runs the loop `training.train` runs (`loop.run_epochs`), so its
records have the same format; final metrics come from the library's own functions applied to each
model unfused back into a plain `BasicNet`/`VGG`. The grouping rules live in `fused.groups`, the
network in `fused.net`, the optimizer in `fused.optim`. `run_or_load_group` is the store-aware entry
point (`--fused auto|on|off`); it stores through `runner.store_trained`, as `run_or_load` does.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn import functional as F

from ...data.loaders import make_loader
from ...nets.sparsity import GAMMA_THRESHOLD
from ..build import build_model, load_splits, training_device
from ..config import RunConfig, config_hash
from ..execution import SPEED_OPTIONS, Execution
from ..loop import Trainee, run_epochs
from ..runner import resolve_config, store_trained
from ..schedule import iterations, lr_factor
from ..store import RunStore
from ..training import train as train_single
from .groups import can_fuse, fusable_groups, group_key
from .net import FusedLoader, FusedNet, FusedPenalty, fused_evaluate, unfuse
from .optim import FusedOptimizer

__all__ = ["group_checkpoint_path", "run_or_load_group", "train_group", "train_step"]


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
    """Train `configs` together as one `FusedNet`; return one `training.train`-format record per config.

    Each model is initialized by `build.build_model` from its own seed, sees its own shuffled
    mini-batches of `batch_size` images, and follows the LR schedule of `training.iterations` /
    `training.lr_factor`, so its record matches its single run up to float rounding. The checkpoint at
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
    keys = [config_hash(c) for c in members]
    first = members[0]
    dev, flush_denormal = training_device(device)

    train_data, test_data = load_splits(first, data_root)
    # Moved once: the fused loader, the eval loaders and the fused evaluation share these copies.
    train_data.images, test_data.images = train_data.images.to(dev), test_data.images.to(dev)
    loader = FusedLoader(train_data, first.batch_size, [c.seed for c in members], device=dev)
    train_eval_loader = make_loader(train_data, 500, train=False, device=dev)
    test_loader = make_loader(test_data, 500, train=False, device=dev)
    net = FusedNet([build_model(c, train_data.num_classes, train_data.image_size) for c in members],
                   channels_last=channels_last).to(dev)
    optimizer = FusedOptimizer(net, members)
    penalty = FusedPenalty(net, members)
    forward = torch.compile(net) if compile else net
    total_steps, drops = iterations(first, len(train_data))

    def step(batch, at: int):
        x, y = batch
        losses, errors = train_step(net, optimizer, x, y, lr_factor(at, drops), penalty=penalty, forward=forward,
                                    amp=amp)
        return losses, errors, y.shape[1]

    precision = "bf16 autocast" if amp else str(next(net.parameters()).dtype).replace("torch.", "")
    trainee = Trainee(configs=members, keys=keys, names=[_run_name(c, k, net.size) for c, k in zip(members, keys)],
                      checkpoint_key=group_key(members), network=net, optimizer=optimizer, loader=loader, step=step,
                      inactive=lambda: _inactive_gamma(net),
                      evaluate=lambda: list(zip(*fused_evaluate(net, test_data))),
                      model=lambda i: unfuse(net, i), data=(train_data, test_data), device=dev,
                      flush_denormal=flush_denormal, total_steps=total_steps, drops=drops,
                      desc=f"fused x{net.size} {first.optimizer}", checkpoint_extra={"members": keys},
                      provenance={"channels_last": channels_last, "compiled": compile, "fused_models": net.size,
                                  "precision": precision})
    records = run_epochs(trainee, started=started, train_eval_loader=train_eval_loader, test_loader=test_loader,
                         checkpoint_path=checkpoint_path, weights_paths=[weights_paths[i] for i in order],
                         checkpoint_every=checkpoint_every, progress=progress,
                         callback=None if callback is None else
                         lambda epoch, entries: callback(epoch, [entries[order.index(j)] for j in range(len(order))]))
    results = [None] * len(records)
    for j, i in enumerate(order):  # back to the caller's order
        results[i] = records[j]
    return results


def group_checkpoint_path(store: RunStore, configs) -> Path:
    """Where a fused group's checkpoint lives in a run store: checkpoints/group-<group_key>.pt."""
    return store.root / "checkpoints" / f"group-{group_key(configs)}.pt"


def run_or_load_group(configs, execution: Execution = Execution(fused="auto")) -> list[dict]:
    """Records of `configs` (in order): stored ones loaded, missing ones trained in fused groups and stored.

    `execution.fused`: 'auto' fuses groups of two or more on CUDA only (on CPU a grouped conv is not
    faster than separate runs), 'on' fuses whenever `can_fuse` allows (any device), 'off' trains one
    run at a time with `training.train`; at most `execution.max_models` per group, with its `speed`
    options (fused groups only). Each finished record is stored by `runner.store_trained`, the store
    protocol of `run_or_load`.
    """
    store = execution.run_store
    resolved = [resolve_config(c, execution.data_root)[0] for c in configs]
    found = {} if execution.fresh else {config_hash(c): store.load(config_hash(c)) for c in resolved}
    missing = list({config_hash(c): c for c in resolved if found.get(config_hash(c)) is None}.values())
    fuse_here = execution.fuses()
    speed = {name: name in execution.speed for name in SPEED_OPTIONS}
    if execution.speed and not fuse_here:
        raise ValueError(f"{', '.join(execution.speed)}: options of the fused trainer, which "
                         f"fused={execution.fused!r} does not use here; pass fused='on' (or 'auto' on CUDA)")
    groups = fusable_groups(missing, execution.max_models) if fuse_here else [[c] for c in missing]
    for group in groups:
        for record in _train_and_store(group, execution, speed):
            found[record["config_hash"]] = record
    return [found[config_hash(c)] for c in resolved]


def _train_and_store(group, execution: Execution, speed: dict) -> list[dict]:
    """Train one group (fused when it has two or more configs, or speed options that it can use) and
    store its records (`store_trained`); the records, in the group's order."""
    store = execution.run_store
    common = dict(data_root=execution.data_root, device=execution.device, progress=execution.progress)
    if len(group) > 1 or (any(speed.values()) and can_fuse(group)[0]):
        checkpoint = group_checkpoint_path(store, group)

        def train(weights):
            return train_group(group, checkpoint_path=checkpoint, weights_paths=weights, **common, **speed)
    else:
        checkpoint = store.checkpoint_path(config_hash(group[0]))

        def train(weights):
            return [train_single(group[0], checkpoint_path=checkpoint, weights_path=weights[0], **common)]
    return store_trained(group, execution, train, checkpoint)
