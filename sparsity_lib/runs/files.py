"""Untrusted files, read and written safely: regular files only (no links, no devices, no folders
named like records), bounded sizes, sha256, atomic writes through a temporary file and fsync, and
setting a damaged file aside (`*.corrupt`) rather than serving it. `Unservable` marks a record
that fails a check."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import uuid
import warnings
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "file_sha256", "is_temporary", "MAX_RECORD_BYTES", "read_record",
           "record_text", "set_aside", "STALE_TEMPORARY_S", "temporary_path", "Unservable"]


class Unservable(ValueError):
    """Why a store entry cannot be served. `keep`: leave it in place (a symbolic link, a record of
    the old format: not the store's to move); `weights`: the weights file that failed its check."""

    def __init__(self, reason: str, keep: bool = False, weights: Path | None = None):
        super().__init__(reason)
        self.keep, self.weights = keep, weights


STALE_TEMPORARY_S = 3600.0  # a write's temporary file older than this was left by a killed process
MAX_RECORD_BYTES = 64 << 20  # the largest record read (the committed ones are under 200 kB)


def temporary_path(path: Path) -> Path:
    """A fresh name beside `path` for a write-then-rename, unique across threads, processes and
    hosts: a pid is not (containers and cluster nodes sharing one store reuse pids)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def is_temporary(path: Path) -> bool:
    """Whether `path` is named like a `temporary_path` (`.<name>.<32 hex digits>.tmp`)."""
    return re.fullmatch(r"\..+\.[0-9a-f]{32}\.tmp", path.name) is not None


def _kind_of(mode: int) -> str:
    return {stat.S_IFDIR: "folder", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
            stat.S_IFBLK: "block device"}.get(stat.S_IFMT(mode), "special file")


def _open_regular(path: Path, limit: int | None = None) -> int:
    """A read-only descriptor of `path`, a regular file of at most `limit` bytes (None: any size).

    Raises Unservable otherwise: a symbolic link is not followed (keep=True), a FIFO is never waited
    on (opened non-blocking, then refused), a folder or a file over `limit` is refused.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP or Path(path).is_symlink():
            raise Unservable("it is a symbolic link, not followed", keep=True) from None
        raise
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
        os.close(descriptor)
        what = f"{info.st_size:,} bytes, over the {limit:,} allowed" if stat.S_ISREG(info.st_mode) else \
            f"a {_kind_of(info.st_mode)}, not a regular file"
        raise Unservable(f"it is {what}")
    return descriptor


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a regular file's bytes (the store's weights checksum); Unservable (a
    ValueError) for a link, a folder or a FIFO, which hold no weights."""
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(path: Path, limit: int | None = None):
    """The parsed JSON of the record file `path`, read without trusting it: a regular file (see
    `_open_regular`) of at most `limit` bytes (None: MAX_RECORD_BYTES), UTF-8, nested no deeper than
    Python's recursion limit. Raises FileNotFoundError when absent, Unservable saying why it cannot be parsed."""
    limit = MAX_RECORD_BYTES if limit is None else limit
    with os.fdopen(_open_regular(path, limit), "rb") as handle:
        data = handle.read(limit + 1)
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise Unservable("its JSON is nested too deep to be a record") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise Unservable(str(error).splitlines()[0]) from None


def record_text(record: dict) -> str:
    """The text of a record file: the one formatting `RunStore.save` (and the migration) writes."""
    return json.dumps(record, indent=1, sort_keys=True)


def set_aside(path: Path, reason: str, what: str = "record") -> None:
    """Rename a damaged store entry to `<name>.corrupt` (kept for inspection; a unique name when that
    one is taken) and warn in one line, naming it."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        try:
            os.replace(path, aside)
        except OSError as error:
            if isinstance(error, FileNotFoundError):
                raise
            aside = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.corrupt")  # e.g. a folder already there
            os.replace(path, aside)
    except FileNotFoundError:  # another reader moved it aside first
        pass
    warnings.warn(f"run store: {what} {path} is corrupt ({reason}); moved to {aside.name}, will recompute")


def message_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def atomic_write(path: Path, write) -> None:
    """`write(tmp)` fills a temporary file in the same folder, which is then renamed to `path`: readers
    never see half a file, an interrupted write never replaces a good one, and concurrent writers of
    the same path (cluster workers finishing one config) never share a temporary file.

    A failed write (a full disk: torch's stream writer raises RuntimeError, not OSError) raises an
    OSError of one line naming `path`; the temporary file is removed and the previous file is intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:  # OSError(errno, ...) keeps the subclass (PermissionError, ...)
        raise OSError(error.errno or errno.EIO, f"cannot write {path}: {error.strerror or message_line(error)}; "
                                                "the previous file, if any, is unchanged") from None
    except RuntimeError as error:  # torch.save reports a full disk as RuntimeError
        raise OSError(errno.EIO, f"cannot write {path}: {message_line(error)} (is the disk full?); the previous "
                                 "file, if any, is unchanged") from None
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


def _fsync(path: Path) -> None:
    """Flush a written file to disk (weights must be durable before the record naming them is)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
