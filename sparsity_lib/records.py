"""A run's record, the one format both trainers produce (`train.train`, `fused.train_group`) and the
store keeps: config, config_hash, per-epoch history, final metrics (Tables 1-2), BN snapshots
(Fig. 2), universality (Fig. 3), final BN parameters, optional weights checksum, and provenance
(what data, device, code and time produced it).
"""
from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from .config import RunConfig
from .data import ImageData
from .sparsity import bn_parameters

__all__ = ["device_name", "git_commit", "history_entry", "provenance", "run_record"]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(dev: torch.device) -> str:
    """The GPU's name on CUDA, else the processor's (provenance `device_name`)."""
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"


def history_entry(epoch: int, step: int, lr: float, train_loss: float, train_err: float,
                  inactive_gamma: dict[str, int], test: tuple[float, float] | None = None) -> dict:
    """One epoch of a run's history: epoch and optimizer step reached, the learning rate of the
    epoch's last step, mean training loss and error (%) over the epoch, the features per layer with
    |gamma| < 1e-3 (Sec. 2.1), and, on evaluated epochs, `test` = (test loss, test error %)."""
    entry = {"epoch": epoch, "step": step, "lr": lr, "train_loss": train_loss, "train_err": train_err,
             "inactive_gamma": inactive_gamma}
    if test is not None:
        entry["test_loss"], entry["test_err"] = test
    return entry


def provenance(train_data: ImageData, test_data: ImageData, steps: int, dev: torch.device, *, wall_time_s: float,
               resumed: bool, flush_denormal: bool, channels_last: bool, compiled: bool, **extra) -> dict:
    """What produced a run: the data (name, image counts, size in pixels), the optimizer steps, the
    device, thread count, torch version, git commit, UTC date, wall time in seconds, whether it resumed
    from a checkpoint, and the speed options; `extra` adds trainer-specific keys (the fused trainer's
    `fused_models`, `precision`)."""
    return {"dataset_used": train_data.name, "train_images": len(train_data), "test_images": len(test_data),
            "image_size": train_data.image_size, "steps": steps, "device": str(dev),
            "device_name": device_name(dev), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(wall_time_s, 1), "resumed": resumed, "flush_denormal": flush_denormal,
            "channels_last": channels_last, "compiled": compiled, **extra}


def run_record(config: RunConfig, key: str, model: nn.Module, final: dict, universality: dict, history: list[dict],
               snapshots: dict, provenance: dict, weights_sha256: str | None = None) -> dict:
    """The record of a finished run (see the module docstring); `bn` holds `model`'s final BN parameters.
    `weights_sha256` (of the saved final weights) is present only when the weights were saved."""
    weights = {} if weights_sha256 is None else {"weights_sha256": weights_sha256}
    return {**weights, "config": config.to_dict(), "config_hash": key, "final": final, "history": history,
            "snapshots": snapshots, "universality": universality, "bn": bn_parameters(model),
            "provenance": provenance}
