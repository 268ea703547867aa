"""The run store: one folder of `<config_hash>.json` records and `<hash>-<prefix>.pt` weights.

`RunStore` serves a record only when its `record_sha256`, its config hash and its weights' sha256
all check out; a record or weights file that fails is set aside and recomputed, never served.
Every write is atomic (a temporary file, then a rename), so a kill -9 or a concurrent sweep leaves
either the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..folders import resolve_store
from ..validation import check_choice
from .files import (
    STALE_TEMPORARY_S,
    Unservable,
    _fsync,
    atomic_write_text,
    file_sha256,
    is_temporary,
    message_line,
    read_record,
    record_text,
    set_aside,
    temporary_path,
)
from .records import (
    RECORD_KINDS,
    check_record,
    record_digest,
)

__all__ = ["is_key", "KEY_PATTERN", "RunStore"]
KEY_PATTERN = re.compile(r"[0-9a-f]{16}")  # a run's key: `config.config_hash`
WEIGHTS_NAME = re.compile(r"(?P<key>[0-9a-f]{16})-(?P<prefix>[0-9a-f]{16})\.pt")


def is_key(name: str) -> bool:
    """Whether `name` is a run key (16 hex digits, what `config_hash` makes)."""
    return KEY_PATTERN.fullmatch(name) is not None


@dataclass
class RunStore:
    """A folder of finished runs: `<key>.json` (the record) and `<key>-<sha>.pt` (its final weights).

    `kind` is 'run' (trained runs, with weights) or 'pruned' (pruned records, rebuilt from their run's
    weights, so they keep none). Checkpoints of unfinished runs live in `checkpoints/<key>.pt` until
    the run finishes. `load` serves only records it can vouch for (module docstring); anything else is
    moved aside as `<name>.corrupt` with a one-line warning, so the run is recomputed, except symbolic
    links and records of the old format (no `record_sha256`: see scripts/migrate_store.py), which are
    left in place. With `read_only=True` nothing is ever moved: a bad entry is skipped with a warning.
    """
    root: Path | str | None = None         # None: resolve_store()
    kind: str = "run"

    def __post_init__(self):
        self.root = resolve_store(self.root)
        check_choice("kind", self.kind, RECORD_KINDS)

    def record_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def weights_path(self, key: str, sha256: str) -> Path:
        """Where the weights of run `key` whose sha256 is `sha256` live: `<key>-<its first 16 hex digits>.pt`.
        Content-addressed, so two writers of one run never overwrite each other's weights."""
        if not is_key(key):
            raise ValueError(f"key={key!r} is not a run key; allowed: 16 hex digits (config_hash)")
        if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
            raise ValueError(f"sha256={sha256!r} is not a sha256 hex digest; allowed: 64 hex digits")
        return self.root / f"{key}-{sha256[:16]}.pt"

    def weights_file(self, record: dict) -> Path:
        """The weights file a stored run record names (its config_hash and weights_sha256)."""
        return self.weights_path(record["config_hash"], record["weights_sha256"])

    def weights_temporary(self, key: str) -> Path | None:
        """A fresh name for a trainer to write run `key`'s final weights to; `save` moves them to their
        content-addressed name. None in a store of pruned records, which keep no weights."""
        return temporary_path(self.root / f"{key}.pt") if self.kind == "run" else None

    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / f"{key}.pt"

    def load(self, key: str, read_only: bool = False) -> dict | None:
        """The stored record of run `key`, or None when absent or unservable (see the class docstring);
        `read_only=True` changes nothing on disk."""
        path = self.record_path(key)
        try:
            return self._verified(key)
        except (FileNotFoundError, NotADirectoryError):  # absent (or the store is a file: check_writable says so),
            return None  # or another reader moved a corrupt record aside meanwhile
        except OSError as error:  # e.g. no permission: not the store's to move
            self._refuse(path, Unservable(f"it cannot be read: {error.strerror or error}", keep=True), read_only)
            return None
        except Unservable as problem:
            self._refuse(path, problem, read_only)
            return None

    def _verified(self, key: str) -> dict:
        """The record of `key` after every check of the class docstring; Unservable saying which failed."""
        record = read_record(self.record_path(key))
        try:
            check_record(record, key, self.kind)
            if "record_sha256" not in record:
                raise Unservable("it has no record_sha256, so its numbers cannot be checked: a store of the old "
                                 "format; run python scripts/migrate_store.py STORE", keep=True)
            if record_digest(record) != record["record_sha256"]:
                raise Unservable("its content does not match its record_sha256: it was edited")
        except RecursionError:
            raise Unservable("its JSON is nested too deep to be a record") from None
        except Unservable:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:  # whatever a damaged config raises
            raise Unservable(message_line(error)) from None
        if self.kind == "run":
            self._check_weights(record)
        return record

    def _check_weights(self, record: dict) -> None:
        """Raise Unservable when the weights the record names are missing or their sha256 differs."""
        weights = self.weights_file(record)
        try:
            matches = file_sha256(weights) == record["weights_sha256"]
        except (OSError, ValueError):  # missing, or not a regular file: no weights
            matches = False
        if not matches:
            raise Unservable(f"its weights {weights.name} are missing or do not match its weights_sha256",
                             weights=weights)

    def _refuse(self, path: Path, problem: Unservable, read_only: bool) -> None:
        """Warn about an unservable entry; set it (and its bad weights) aside unless `read_only` or kept."""
        if read_only or problem.keep:
            warnings.warn(f"run store: record {path} skipped ({problem})" + ("; nothing was changed" if read_only
                                                                             else ""))
            return
        if problem.weights is not None and os.path.lexists(problem.weights):
            set_aside(problem.weights, f"its sha256 differs from the one in {path.name}", "weights")
        set_aside(path, str(problem))

    def check_writable(self) -> None:
        """Raise ValueError naming the folder when finished runs cannot be written to it; run before
        training, so a bad store fails at once instead of after the first epoch."""
        where = f"store={str(self.root)!r}"
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"{where} is a file, not a folder; allowed: a folder (created when missing)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = temporary_path(self.root / "write-check")
            probe.open("x").close()
            probe.unlink()
        except OSError as error:
            raise ValueError(f"{where} cannot be written ({error.strerror or error}); "
                             "allowed: a folder you can create and write to") from None

    def remove_stale_temporaries(self, max_age_s: float = STALE_TEMPORARY_S) -> list[Path]:
        """Delete what killed or superseded writes left more than `max_age_s` seconds ago (younger files
        may belong to a write in progress): temporary files, and weights no record names (`_orphans`).
        The paths removed."""
        candidates = [path for folder in (self.root, self.root / "checkpoints") for path in folder.glob(".*.tmp")
                      if is_temporary(path)] + self._orphans()
        removed = []
        for path in candidates:
            try:
                if time.time() - path.lstat().st_mtime > max_age_s:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # another process removed it first
                pass
        return removed

    def _orphans(self) -> list[Path]:
        """Weights files that no record names: left by a rewrite of their run (fresh=True) or by the
        writer that lost a race to store one run. Weights of an unreadable record are kept."""
        found = []
        for path in self.root.glob("*-*.pt"):
            match = WEIGHTS_NAME.fullmatch(path.name)
            if match is None:
                continue
            try:
                record = read_record(self.record_path(match["key"]))
            except FileNotFoundError:
                record = {}
            except (Unservable, OSError):
                continue
            named = record.get("weights_sha256") if isinstance(record, dict) else None
            if not (isinstance(named, str) and named.startswith(match["prefix"])):
                found.append(path)
        return found

    def save(self, record: dict, weights: Path | str | None = None) -> Path:
        """Store `record` (adding its `record_sha256`) with its weights; the record file's path.

        `weights`: the file the trainer wrote (a run store's records need it, unless their weights are
        already in place). It is moved to its content-addressed name first, then the record is written
        atomically: a reader sees the old record with its weights or the new one with its, never a
        mix, even while another writer stores the same run. Raises ValueError (nothing written) for a
        record `load` would refuse, or weights whose sha256 is not the record's `weights_sha256`.
        """
        key = record["config_hash"]
        parsed = json.loads(json.dumps(record))  # what `load` will read back
        check_record(parsed, key, self.kind)
        record["record_sha256"] = record_digest(parsed)
        if self.kind == "run":
            self._place_weights(record, weights)
        elif weights is not None:
            raise ValueError(f"weights={str(weights)!r}, but a store of pruned records keeps no weights; allowed: None")
        path = self.record_path(key)
        atomic_write_text(path, record_text(record))
        return path

    def _place_weights(self, record: dict, weights) -> None:
        """Move `weights` (synced first) to the content-addressed name of `record`'s weights_sha256."""
        target = self.weights_file(record)
        if weights is None:
            if not target.is_file():
                raise ValueError(f"weights=None, but {target} is not in place; allowed: the weights file the "
                                 "trainer wrote")
            return
        actual = file_sha256(Path(weights))
        if actual != record["weights_sha256"]:
            raise ValueError(f"weights={str(weights)!r} has sha256 {actual[:16]}..., not the record's weights_sha256 "
                             f"{record['weights_sha256'][:16]}...; allowed: the weights file the trainer wrote")
        _fsync(Path(weights))
        os.replace(weights, target)

    def records(self, read_only: bool = False) -> list[dict]:
        """Every servable record in the store, by key. Damaged ones are skipped with a warning (and set
        aside unless `read_only`); a `.json` file whose name is not a run key is skipped, never moved."""
        found = []
        for path in sorted(self.root.glob("*.json")):
            if not is_key(path.stem):
                warnings.warn(f"run store: {path} skipped (its name is not a run key: 16 hex digits)")
                continue
            record = self.load(path.stem, read_only=read_only)
            if record is not None:
                found.append(record)
        return found

    def analysis_path(self, name: str) -> Path:
        """`<store>/analysis/<name>.json`: a measurement kept beside the runs (scripts/optimizer_state.py,
        scripts/early_universality.py). `name`: letters, digits, '.', '_' and '-' only."""
        if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", name)):
            raise ValueError(f"analysis name={name!r} is invalid; allowed: letters, digits, '.', '_', '-'")
        return self.root / "analysis" / f"{name}.json"

    def analysis(self, name: str) -> dict | None:
        """The analysis file `name`, or None when absent or unservable (a one-line warning says why; it is
        never moved): a JSON object read like a record (`read_record`) whose `record_sha256` matches its
        content (`records.record_digest`), so a hand-edited number is never shown."""
        path = self.analysis_path(name)
        try:
            found = read_record(path)
        except FileNotFoundError:
            return None
        except (Unservable, OSError) as error:
            warnings.warn(f"run store: analysis {path} skipped ({message_line(error)})")
            return None
        if not isinstance(found, dict) or found.get("record_sha256") != record_digest(found):
            warnings.warn(f"run store: analysis {path} skipped (its record_sha256 does not match its content)")
            return None
        return found

    def save_analysis(self, name: str, found: dict) -> Path:
        """Write the analysis `found` (a JSON object) as `name`, with its `record_sha256`, atomically."""
        path = self.analysis_path(name)
        atomic_write_text(path, record_text({**found, "record_sha256": record_digest(found)}))
        return path
