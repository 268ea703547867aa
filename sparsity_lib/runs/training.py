"""Training one run (paper Sec. 2.1 protocol): one optimizer step (`train_step`), and `train(config)`,
which builds the data, model and optimizer and runs the shared loop (`loop.run_epochs`: resume from a
matching checkpoint, `schedule.MAX_EVALUATIONS` evaluations, the run record). A non-finite loss
raises `loop.TrainingDiverged` naming the run and step."""
from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from ..data.loaders import make_loader
from ..nets.optim import DEFAULT_LR
from ..nets.regularizers import explicit_penalty
from ..nets.sparsity import gamma_sparsity
from .build import build_model, build_optimizer, load_splits, step_setup, training_device
from .config import RunConfig, config_hash
from .loop import Trainee, run_epochs
from .metrics import evaluate
from .schedule import iterations, lr_factor, set_lr

__all__ = ["train", "train_step"]


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

    The set-up of one model for the shared loop (`loop.run_epochs`). `callback(epoch, entry)` runs
    after each epoch's history entry (tests use it to interrupt).
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

    def step(batch, at: int):
        x, y = batch
        set_lr(optimizer, base_lr, lr_factor(at, drops))
        loss, logits = train_step(model, optimizer, x if prepare is None else prepare(x), y, config, forward=forward)
        return loss.view(1), (logits.argmax(1) != y).sum().view(1), len(y)

    def inactive() -> list[dict]:
        return [{row.layer: row.inactive for row in gamma_sparsity(model).itertuples()}]

    trainee = Trainee(configs=[config], keys=[key], names=[f"{key} ({config.label()} seed {config.seed})"],
                      checkpoint_key=key, network=model, optimizer=optimizer, loader=train_loader, step=step,
                      inactive=inactive, evaluate=lambda: [evaluate(model, test_loader)], model=lambda _: model,
                      data=(train_data, test_data), device=dev, flush_denormal=flush_denormal,
                      total_steps=total_steps, drops=drops, desc=config.label(),
                      provenance={"channels_last": prepare is not None, "compiled": forward is not model})
    return run_epochs(trainee, started=started, train_eval_loader=train_eval_loader, test_loader=test_loader,
                      checkpoint_path=checkpoint_path, weights_paths=[weights_path], checkpoint_every=checkpoint_every,
                      progress=progress,
                      callback=None if callback is None else lambda epoch, entries: callback(epoch, entries[0]))[0]
