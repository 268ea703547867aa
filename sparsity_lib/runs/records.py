"""A run's record, the one format both trainers produce (`training.train`, `fused.trainer.train_group`) and the
store keeps: config, config_hash, per-epoch history, final metrics (Tables 1-2), BN snapshots
(Fig. 2), universality (Fig. 3), final BN parameters, the weights' sha256, and provenance (what
data, device, code and time produced it). `check_record` says whether a parsed record can be
served (every field a consumer indexes is there, of its type), `record_digest` is the content hash
the store keeps in each record's `record_sha256`.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from ..data.images import ImageData
from ..nets.sparsity import bn_parameters
from ..validation import is_int, is_number
from .config import RunConfig, config_hash

__all__ = ["check_record", "device_name", "git_commit", "HEADLINE_METRICS", "history_entry", "provenance",
           "PRUNED_METRICS", "record_digest", "RECORD_KEYS", "RECORD_KINDS", "run_record"]

RECORD_KINDS = ("run", "pruned")  # a trained run (with weights), a pruned one (rebuilt from its run's weights)
RECORD_KEYS = ("config", "config_hash", "final", "history", "provenance")  # every kind's
# Headline numbers of a record's `final`: each must be a finite number where present (test_err always is).
HEADLINE_METRICS = ("train_loss", "train_err", "test_loss", "test_err", "sparsity_gamma", "sparsity_act")
# A pruned record's numbers the tables and claims read (Tables 7, 9, 10): finite numbers, required.
PRUNED_METRICS = ("test_err", "test_err_before", "test_err_after", "features_kept_pct", "params_kept_pct")
# Fields consumers index, by kind and place: a type, or "int" / "number" (`is_int` / `is_number`).
RUN_FIELDS = {"config": dict, "config_hash": str, "final": dict, "history": list, "provenance": dict,
              "bn": dict, "universality": dict, "snapshots": dict, "weights_sha256": str}
PRUNED_FIELDS = {"config": dict, "config_hash": str, "final": dict, "history": list, "provenance": dict,
                 "layers": list}
RUN_PROVENANCE = {"dataset_used": str, "image_size": "int", "steps": "int", "train_images": "int", "device": str}
LAYER_FIELDS = {"layer": str, "features": "int", "inactive_gamma": "int", "inactive_act": "int"}
HISTORY_FIELDS = {"step": "int", "inactive_gamma": dict}


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
    `fused_models`, `precision`; `resumed_threads` when a resume changed the thread count)."""
    return {"dataset_used": train_data.name, "train_images": len(train_data), "test_images": len(test_data),
            "image_size": train_data.image_size, "steps": steps, "device": str(dev),
            "device_name": device_name(dev), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(wall_time_s, 1), "resumed": resumed, "flush_denormal": flush_denormal,
            "channels_last": channels_last, "compiled": compiled, **extra}


def run_record(config: RunConfig, key: str, model: nn.Module, final: dict, universality: dict, history: list[dict],
               snapshots: dict, provenance: dict, weights_sha256: str | None = None) -> dict:
    """The record of a finished run (see the module docstring); `bn` holds `model`'s final BN parameters.
    `weights_sha256` (of the saved final weights) is present only when the weights were saved; a run
    store requires it (`RunStore.save` adds `record_sha256`)."""
    weights = {} if weights_sha256 is None else {"weights_sha256": weights_sha256}
    return {**weights, "config": config.to_dict(), "config_hash": key, "final": final, "history": history,
            "snapshots": snapshots, "universality": universality, "bn": bn_parameters(model),
            "provenance": provenance}


def record_digest(record: dict) -> str:
    """sha256 hex digest of the canonical JSON (sorted keys, compact separators) of `record` without
    its `record_sha256` field: the store's content hash, so an edited number is detected."""
    body = {name: value for name, value in record.items() if name != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _short(value) -> str:
    """repr of `value`, cut to 60 characters (a field of a damaged record can be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fits(value, kind) -> bool:
    return is_int(value) if kind == "int" else is_number(value) if kind == "number" else isinstance(value, kind)


def _check_fields(where: str, values, kinds: dict) -> None:
    """Raise ValueError naming the first field of `kinds` (name -> kind) that `values` lacks or holds
    with another type; `where` ('provenance ', 'final.layers[2] ') prefixes the field's name."""
    if not isinstance(values, dict):
        raise ValueError(f"{where.strip()} is a {type(values).__name__}, not a dict")
    for name, kind in kinds.items():
        if name not in values:
            raise ValueError(f"{where}{name} is missing")
        if not _fits(values[name], kind):
            wanted = {"int": "an integer", "number": "a finite number"}.get(kind) or f"a {kind.__name__}"
            raise ValueError(f"{where}{name}={_short(values[name])} is not {wanted}")


def _check_top_level(record, kinds: dict) -> None:
    """A dict holding every field of `kinds`, each of its type (message: which fields are missing)."""
    if not isinstance(record, dict):
        raise ValueError(f"it holds {type(record).__name__}, not a record (a JSON object)")
    missing = [name for name in kinds if name not in record]
    if missing:
        raise ValueError(f"field(s) missing: {', '.join(missing)}")
    for name, kind in kinds.items():
        if not isinstance(record[name], kind):
            raise ValueError(f"field {name!r} is a {type(record[name]).__name__}, not a {kind.__name__}")


def _check_identity(record: dict, key: str) -> None:
    """The record's config_hash is `key` and its stored config is valid and hashes to `key`."""
    if record["config_hash"] != key:
        raise ValueError(f"its config_hash field is {_short(record['config_hash'])}, not {key!r}")
    stored = config_hash(RunConfig.from_dict(record["config"]))
    if stored != key:
        raise ValueError(f"its config hashes to {stored}, not {key}: it describes another run")


def _check_numbers(final: dict, required: tuple, optional: tuple) -> None:
    """Every name of `required` and any of `optional` present in `final` is a finite number."""
    for name in required:
        if name not in final:
            raise ValueError(f"final {name} is missing")
    for name in required + optional:
        if name in final and not is_number(final[name]):
            raise ValueError(f"final {name}={_short(final[name])} is not a finite number")


def _check_run_fields(record: dict) -> None:
    """A trained run's fields that frames, tables, claims and `build.load_model` index: provenance
    (data, image size in pixels, steps), the per-layer rows of `final.layers`, each history entry's
    step and inactive_gamma, the BN parameters, and a 64-hex-digit weights_sha256."""
    if not (len(record["weights_sha256"]) == 64 and all(c in "0123456789abcdef" for c in record["weights_sha256"])):
        raise ValueError(f"weights_sha256={_short(record['weights_sha256'])} is not a sha256 hex digest")
    _check_fields("provenance ", record["provenance"], RUN_PROVENANCE)
    layers = record["final"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"final layers={_short(layers)} is not a non-empty list")
    for index, layer in enumerate(layers):
        _check_fields(f"final.layers[{index}] ", layer, LAYER_FIELDS)
    for index, entry in enumerate(record["history"]):
        _check_fields(f"history[{index}] ", entry, HISTORY_FIELDS)
    for name, values in record["bn"].items():
        _check_fields(f"bn[{name!r}] ", values, {"gamma": list, "beta": list})


def check_record(record, key: str, kind: str = "run") -> None:
    """Raise ValueError saying why `record` (parsed JSON) cannot be served as a `kind` record of run `key`.

    A servable record is a dict with every field of its kind of the right type, whose stored config is
    valid and hashes to `key` (an edited config describes another run), and whose headline numbers are
    finite (HEADLINE_METRICS, test_err required; for a pruned record PRUNED_METRICS, all required).
    A run record also holds every field its consumers index (`_check_run_fields`), so a record that
    passes never raises a KeyError later. The content hash (`record_digest`) is the store's check.
    """
    if kind not in RECORD_KINDS:
        raise ValueError(f"kind={kind!r} is not supported; allowed values: {', '.join(RECORD_KINDS)}")
    _check_top_level(record, RUN_FIELDS if kind == "run" else PRUNED_FIELDS)
    _check_identity(record, key)
    if kind == "pruned":
        _check_numbers(record["final"], PRUNED_METRICS, ())
        for index, layer in enumerate(record["layers"]):
            _check_fields(f"layers[{index}] ", layer, {"layer": str})
        return
    _check_numbers(record["final"], ("test_err",), HEADLINE_METRICS)
    _check_run_fields(record)
