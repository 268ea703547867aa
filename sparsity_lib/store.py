"""The run store: where finished runs live, and how they are written and served safely.

A store folder holds `<hash>.json` (a run's record) and `<hash>.pt` (its final weights); writes are
atomic (write a temporary file, then rename), reads check the record and the weights' sha256.
`resolve_store` / `resolve_data_root` find the store and datasets folders at each use.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .config import RunConfig, config_hash
from .validation import is_number as _is_number

__all__ = ["CACHE_NAME", "HEADLINE_METRICS", "RECORD_KEYS", "RunStore", "STALE_TEMPORARY_S", "atomic_write",
           "atomic_write_text", "check_record", "checkout_root", "file_sha256", "is_temporary", "resolve_data_root",
           "resolve_store", "set_aside", "temporary_path"]

CACHE_NAME = "implicit-sparsity-book"  # the per-user cache folder used outside a checkout
RECORD_KEYS = ("config", "config_hash", "final", "history", "provenance")
# Headline numbers of a record's `final`: each must be a finite number where present (test_err always is).
HEADLINE_METRICS = ("train_loss", "train_err", "test_loss", "test_err", "sparsity_gamma", "sparsity_act")
STALE_TEMPORARY_S = 3600.0  # a write's temporary file older than this was left by a killed process


def checkout_root() -> Path | None:
    """The repository folder when the package runs from a checkout (a clone, `pip install -e .`),
    else None (a wheel installed into site-packages)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _folder(explicit, variable: str, in_checkout: str) -> Path:
    """`explicit`, else $`variable`, else the checkout's `in_checkout`, else the per-user cache's.

    Resolved at each use, not at import, so the working folder (a notebook's, Colab's) never matters.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(variable):
        return Path(os.environ[variable])
    root = checkout_root()
    if root is not None:
        return root / in_checkout
    return platformdirs.user_cache_path(CACHE_NAME) / in_checkout


def resolve_store(store=None) -> Path:
    """The run store folder: `store`, else $SPARSITY_STORE, else the checkout's results/ (the
    committed runs), else results/ in the per-user cache folder."""
    return _folder(store, "SPARSITY_STORE", "results")


def resolve_data_root(data_root=None) -> Path:
    """The datasets folder: `data_root`, else $SPARSITY_DATA, else the checkout's data/, else data/
    in the per-user cache folder."""
    return _folder(data_root, "SPARSITY_DATA", "data")


def temporary_path(path: Path) -> Path:
    """A fresh name beside `path` for a write-then-rename, unique across threads, processes and
    hosts: a pid is not (containers and cluster nodes sharing one store reuse pids)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def is_temporary(path: Path) -> bool:
    """Whether `path` is named like a `temporary_path` (`.<name>.<32 hex digits>.tmp`)."""
    return re.fullmatch(r"\..+\.[0-9a-f]{32}\.tmp", path.name) is not None


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes (the store's weights checksum)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_record(record, key: str) -> None:
    """Raise ValueError saying why `record` (parsed JSON) cannot be served as run `key`.

    A servable record is a dict with every RECORD_KEYS field of the right type, whose stored config
    is valid and hashes to `key` (an edited config describes another run), and whose headline numbers
    (HEADLINE_METRICS, test_err required) are finite.
    """
    if not isinstance(record, dict):
        raise ValueError(f"it holds {type(record).__name__}, not a record (a JSON object)")
    missing = [name for name in RECORD_KEYS if name not in record]
    if missing:
        raise ValueError(f"field(s) missing: {', '.join(missing)}")
    for name, kind in {"config": dict, "config_hash": str, "final": dict, "history": list, "provenance": dict}.items():
        if not isinstance(record[name], kind):
            raise ValueError(f"field {name!r} is a {type(record[name]).__name__}, not a {kind.__name__}")
    if record["config_hash"] != key:
        raise ValueError(f"its config_hash field is {record['config_hash']!r}, not {key!r}")
    stored = config_hash(RunConfig.from_dict(record["config"]))
    if stored != key:
        raise ValueError(f"its config hashes to {stored}, not {key}: it describes another run")
    if "test_err" not in record["final"]:
        raise ValueError("final test_err is missing")
    for name in HEADLINE_METRICS:
        if name in record["final"] and not _is_number(record["final"][name]):
            raise ValueError(f"final {name}={record['final'][name]!r} is not a finite number")
    if "weights_sha256" in record and not isinstance(record["weights_sha256"], str):
        raise ValueError(f"weights_sha256={record['weights_sha256']!r} is not a hex digest")


def set_aside(path: Path, reason: str, what: str = "record") -> None:
    """Rename a damaged store file to `<name>.corrupt` (kept for inspection) and warn, naming it."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another reader moved it aside first
        pass
    warnings.warn(f"run store: {what} {path} is corrupt ({reason}); moved to {aside.name}, will recompute")


def atomic_write(path: Path, write) -> None:
    """`write(tmp)` fills a temporary file in the same folder, which is then renamed to `path`: readers
    never see half a file, an interrupted write never replaces a good one, and concurrent writers of
    the same path (cluster workers finishing one config) never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write failed


def atomic_write_text(path: Path, text: str) -> None:
    """`text` written to `path` atomically (see `atomic_write`) and synced to disk."""
    def write(tmp: Path) -> None:
        with open(tmp, "x") as handle:  # "x": never write into a file someone else created
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write)


@dataclass
class RunStore:
    """A folder of finished runs: `<hash>.json` (the record) and `<hash>.pt` (final weights).

    Checkpoints of unfinished runs live in `checkpoints/<hash>.pt` until the run finishes. `load`
    serves only records it can vouch for (`check_record`, and weights matching the record's
    `weights_sha256`); anything else is moved aside as `<name>.corrupt` with a warning, so the run
    is recomputed.
    """
    root: Path | str | None = None         # None: resolve_store()

    def __post_init__(self):
        self.root = resolve_store(self.root)

    def record_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / f"{key}.pt"

    def load(self, key: str) -> dict | None:
        """The stored record, or None when absent or set aside (see the class docstring).

        Records written before weights checksums existed have no `weights_sha256` field: they are
        served without a weights check (their other checks still apply).
        """
        path = self.record_path(key)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
            check_record(record, key)
        except FileNotFoundError:  # another reader moved a corrupt record aside meanwhile
            return None
        except (ValueError, TypeError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            set_aside(path, str(error))
            return None
        if "weights_sha256" in record:
            weights = self.weights_path(key)
            try:
                matches = file_sha256(weights) == record["weights_sha256"]
            except FileNotFoundError:
                matches = False
            if not matches:
                if weights.exists():
                    set_aside(weights, f"its sha256 differs from the one in {path.name}", "weights")
                set_aside(path, f"its weights {weights.name} are missing or do not match its weights_sha256")
                return None
        return record

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
        """Delete the temporary files of writes killed more than `max_age_s` seconds ago (younger ones
        may belong to a write in progress); the paths removed."""
        removed = []
        for folder in (self.root, self.root / "checkpoints"):
            for path in folder.glob(".*.tmp"):
                try:
                    if is_temporary(path) and time.time() - path.stat().st_mtime > max_age_s:
                        path.unlink()
                        removed.append(path)
                except FileNotFoundError:  # another process removed it first
                    pass
        return removed

    def save(self, record: dict) -> Path:
        path = self.record_path(record["config_hash"])
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
        return path

    def records(self) -> list[dict]:
        """Every readable record in the store (corrupt ones are skipped with a warning)."""
        found = []
        for path in sorted(self.root.glob("*.json")):
            record = self.load(path.stem)
            if record is not None:
                found.append(record)
        return found
