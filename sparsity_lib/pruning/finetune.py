"""Fine-tuning a (pruned) network for a few optimizer steps on its run's training data (paper Sec. 5.2:
Network Slimming and Li et al. fine-tune after pruning; the paper's implicit pruning needs none).
"""
from __future__ import annotations

from torch import nn

from ..data.loaders import make_loader
from ..nets.optim import DEFAULT_LR
from ..runs.build import build_optimizer, load_splits, training_device
from ..runs.schedule import set_lr
from ..runs.training import train_step

__all__ = ["fine_tune"]


def fine_tune(model: nn.Module, config, steps: int, *, lr_scale: float = 0.1, data_root=None,
              device: str = "auto", seed: int | None = None) -> list[dict]:
    """Train a (pruned) model in place for `steps` optimizer steps on `config`'s training data.

    The optimizer, L2/WD and batch size are `config`'s; the learning rate is the base rate times
    `lr_scale` (0.1: the paper's final-stage rate); no explicit sparsity penalty is applied (Network
    Slimming and Li et al. fine-tune without one). Returns [{'step', 'train_loss'}] every ~10%.
    """
    if steps < 0:
        raise ValueError(f"steps={steps!r} is invalid; allowed: an integer >= 0")
    if steps == 0:
        return []
    dev, _ = training_device(device)
    train_data, _ = load_splits(config, data_root)
    loader = make_loader(train_data, config.batch_size, train=True, device=dev,
                         seed=config.seed if seed is None else seed)
    model.to(dev).train()
    optimizer = build_optimizer(config, model)
    set_lr(optimizer, (config.lr or DEFAULT_LR[config.optimizer]) * lr_scale, 1.0)
    history, step, epoch = [], 0, 1000  # epochs offset from training's so batches differ
    every = max(1, steps // 10)
    while step < steps:
        loader.set_epoch(epoch)
        for x, y in loader:
            loss, _ = train_step(model, optimizer, x, y)
            step += 1
            if step % every == 0 or step == steps:
                history.append({"step": step, "train_loss": float(loss)})
            if step >= steps:
                break
        epoch += 1
    return history
