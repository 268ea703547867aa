"""Rewrite a run store of the old format in place: content-addressed weights, a content hash in each record.

    python scripts/migrate_store.py STORE [--check]

Old format: `<key>.json` and `<key>.pt`. New (`sparsity_lib.runs.store`): `<key>.json` with a `record_sha256`
field and `<key>-<first 16 hex digits of its sha256>.pt`; the pruned records in `pruned/<name>/` (no
weights) and the measurements in `analysis/` get `record_sha256` only. A record is migrated only when it
passes `check_record` and, for a trained run, its legacy weights match its `weights_sha256`: a record
without one, with a mismatch, or with missing weights is reported and left as it is, never blessed with
a hash. Each record is written with the store's own formatting (`record_text`), so its diff is the one
added `record_sha256` line. Idempotent. `--check` changes nothing; the exit code is 1 when something
would change or is wrong.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sparsity_lib.runs.files import atomic_write_text, file_sha256, read_record, record_text
from sparsity_lib.runs.records import check_record, record_digest
from sparsity_lib.runs.store import RunStore, Unservable, is_key

OK, MIGRATED, LEFT = "ok", "migrated", "left alone"


def stores(root: Path) -> list[RunStore]:
    """The run store at `root` and the stores of pruned records nested in its `pruned/` folder."""
    pruned = sorted(path for path in (root / "pruned").glob("*") if path.is_dir() and not path.is_symlink())
    return [RunStore(root)] + [RunStore(path, kind="pruned") for path in pruned]


def weights_source(store: RunStore, record: dict) -> Path:
    """The weights file of a run record to keep: its content-addressed file when already there, else
    the legacy `<key>.pt`. Raises ValueError when neither holds weights with the record's sha256."""
    target, legacy = store.weights_file(record), store.root / f"{record['config_hash']}.pt"
    for path in (target, legacy):
        if path.is_file() and not path.is_symlink():
            found = file_sha256(path)
            if found != record["weights_sha256"]:
                raise ValueError(f"{path.name} has sha256 {found[:16]}..., not the record's weights_sha256 "
                                 f"{record['weights_sha256'][:16]}...")
            return path
    raise ValueError(f"neither {target.name} nor {legacy.name} exists")


def migrate_record(store: RunStore, key: str, check: bool) -> tuple[str, str]:
    """(status, reason) of record `key` of `store` (status OK, MIGRATED or LEFT), migrated in place
    unless `check`: weights renamed to their content-addressed name, then the record rewritten."""
    path = store.record_path(key)
    try:
        record = read_record(path)
        check_record(record, key, store.kind)
        if "record_sha256" in record and record_digest(record) != record["record_sha256"]:
            raise ValueError("its record_sha256 does not match its content (edited after it was stored?)")
        source = weights_source(store, record) if store.kind == "run" else None
    except (Unservable, ValueError, TypeError, KeyError) as error:
        return LEFT, str(error).splitlines()[0]
    target = store.weights_file(record) if source is not None else None
    if "record_sha256" in record and source == target:
        return OK, ""
    if not check:
        if source is not None and source != target:
            os.replace(source, target)
        record["record_sha256"] = record_digest(record)
        atomic_write_text(path, record_text(record))
    return MIGRATED, f"{source.name} -> {target.name}" if source is not None and source != target else "hashed"


def stray_weights(store: RunStore) -> list[Path]:
    """Legacy `<key>.pt` files that no record of the store names (reported, never touched)."""
    return sorted(path for path in store.root.glob("*.pt") if is_key(path.stem)
                  and not store.record_path(path.stem).exists())


def migrate(root: Path, check: bool) -> dict[str, int]:
    """Migrate (or with `check`, inspect) every record of the store at `root`; counts per status.
    Prints one line per record that is not already in the new format, and per stray file."""
    counts = {OK: 0, MIGRATED: 0, LEFT: 0}
    for store in stores(root):
        for path in sorted(store.root.glob("*.json")):
            if not is_key(path.stem):
                print(f"{LEFT}: {path} (its name is not a run key: 16 hex digits)")
                counts[LEFT] += 1
                continue
            status, reason = migrate_record(store, path.stem, check)
            counts[status] += 1
            if status != OK:
                print(f"{'would migrate' if check and status == MIGRATED else status}: {path} ({reason})")
        for path in stray_weights(store) if store.kind == "run" else []:
            print(f"{LEFT}: {path} (weights without a record)")
            counts[LEFT] += 1
    for path in sorted((root / "analysis").glob("*.json")):
        status = migrate_analysis(RunStore(root), path, check)
        counts[status] += 1
        if status != OK:
            print(f"{'would migrate' if check and status == MIGRATED else status}: {path} (analysis, hashed)")
    return counts


def migrate_analysis(store: RunStore, path: Path, check: bool) -> str:
    """Give the analysis file `path` (a JSON object written before checksums) its `record_sha256`, through
    `RunStore.save_analysis`; one that has a checksum already is left as it is (ok, or left alone when
    the checksum does not match: an edited file is never blessed)."""
    found = read_record(path)
    if not isinstance(found, dict):
        return LEFT
    if "record_sha256" in found:
        return OK if found["record_sha256"] == record_digest(found) else LEFT
    if not check:
        store.save_analysis(path.stem, found)
    return MIGRATED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="the run store folder (e.g. results)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when something would change")
    args = parser.parse_args(argv)
    if not args.store.is_dir():
        parser.error(f"store={str(args.store)!r} is not a folder; allowed: a run store folder")
    counts = migrate(args.store, args.check)
    verb = "to migrate" if args.check else "migrated"
    print(f"{args.store}: {counts[MIGRATED]} {verb}, {counts[OK]} already in the new format, {counts[LEFT]} left alone")
    return 1 if counts[LEFT] or (args.check and counts[MIGRATED]) else 0


if __name__ == "__main__":
    sys.exit(main())
