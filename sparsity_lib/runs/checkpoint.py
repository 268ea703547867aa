"""Resumable training: checkpoints written atomically and loaded with `weights_only=True` only when
their key matches the run (a mismatched or damaged one is set aside with a warning, never
unpickled), and the thread counts a resumed run records."""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write, file_sha256

__all__ = ["error_line", "load_checkpoint", "restore_checkpoint", "resume_threads", "save_checkpoint",
           "set_checkpoint_aside", "threads_note"]


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


def error_line(error: BaseException) -> str:
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
    warnings.warn(f"checkpoint {path} is unusable ({error_line(error)}); moved to {aside.name} "
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
