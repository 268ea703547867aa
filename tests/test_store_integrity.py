"""Nothing on disk changes a served number unnoticed (issue 19): records carry a content hash, weights are
content-addressed and written before their record, odd store entries are skipped or set aside in one
line, a read-only listing changes nothing, and scripts/migrate_store.py converts an old store."""
import difflib
import hashlib
import json
import os
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sparsity_lib import RunConfig, RunStore, config_hash, run_or_load, runs_frame
from sparsity_lib.runs import files
from sparsity_lib.runs.checkpoint import save_checkpoint
from sparsity_lib.runs.execution import Execution

ROOT = Path(__file__).resolve().parent.parent
CONFIG = RunConfig(dataset="synthetic", seed=3)
KEY = config_hash(CONFIG)


def trainer(tag: float, calls: list | None = None, then=None):
    """A stand-in `train_fn`: weights {'w': tag} written where it is told, a valid record naming them
    (provenance 'writer' = tag); `then()` runs after the weights are written, before returning."""
    def train_fn(config, *, weights_path, **_):
        if calls is not None:
            calls.append(tag)
        checksum = save_checkpoint(weights_path, {"w": torch.full((4,), float(tag))})
        if then is not None:
            then()
        return {"config": config.to_dict(), "config_hash": config_hash(config), "weights_sha256": checksum,
                "final": {"test_err": 12.5, "sparsity_gamma": 25.0,
                          "layers": [{"layer": "C1", "features": 8, "inactive_gamma": 2, "inactive_act": 1}]},
                "history": [{"epoch": 1, "step": 5, "inactive_gamma": {"C1": 2}}], "bn": {}, "universality": {},
                "snapshots": {}, "provenance": {"dataset_used": "synthetic", "image_size": 16, "steps": 5,
                                                "train_images": 200, "device": "cpu", "writer": tag}}
    return train_fn


@pytest.fixture
def store(tmp_path):
    """A store holding CONFIG's run, trained by `trainer(1.0)`."""
    found = RunStore(tmp_path / "store")
    run_or_load(CONFIG, execution=Execution(store=found, train_fn=trainer(1.0), progress=False))
    return found


def edit_record(store: RunStore, edit) -> None:
    record = json.loads(store.record_path(KEY).read_text())
    edit(record)
    store.record_path(KEY).write_text(json.dumps(record, indent=1, sort_keys=True))


def listing(root: Path) -> dict:
    """Every entry under `root` -> its bytes (files), its target (links), or its kind: to compare before/after."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path)] = path.read_bytes()
        else:
            found[str(path)] = "dir" if path.is_dir() else "special"
    return found


def content_hash(record: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, compact) of `record` without its record_sha256 field."""
    body = {name: value for name, value in record.items() if name != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def one_line_warnings(caught) -> list[str]:
    messages = [str(w.message) for w in caught]
    assert all("\n" not in m for m in messages), messages
    return messages


# ------------------------------------------------------------------------------- the content hash
def test_a_record_carries_the_hash_of_its_content(store):
    text = store.record_path(KEY).read_text()
    record = json.loads(text)
    assert text == json.dumps(record, indent=1, sort_keys=True)  # the store's one format
    assert record["record_sha256"] == content_hash(record)
    assert store.weights_file(record).name == f"{KEY}-{record['weights_sha256'][:16]}.pt"


@pytest.mark.parametrize("edit", [lambda r: r["final"].update(test_err=1.0),
                                  lambda r: r["final"].update(sparsity_gamma=90.0),
                                  lambda r: r.update(record_sha256="0" * 64)],
                         ids=["test_err", "sparsity_gamma", "hash"])
def test_an_edited_number_is_never_served(store, edit):
    """One edit to a record's test error once flipped claim 1's verdict."""
    edit_record(store, edit)
    with pytest.warns(UserWarning, match="it was edited") as caught:
        assert store.records() == [] and runs_frame(store.records()).empty
    one_line_warnings(caught)
    assert (store.root / f"{KEY}.json.corrupt").exists() and not store.record_path(KEY).exists()
    calls = []
    record = run_or_load(CONFIG, execution=Execution(store=store, train_fn=trainer(1.0, calls), progress=False))
    assert calls == [1.0] and record["final"]["test_err"] == 12.5 and store.load(KEY) == json.loads(json.dumps(record))


def test_a_record_of_the_old_format_is_refused_but_left_in_place(store):
    """No record_sha256 (a store not yet migrated): not served, not moved; the warning says how to migrate."""
    edit_record(store, lambda r: r.pop("record_sha256"))
    before = listing(store.root)
    with pytest.warns(UserWarning, match="scripts/migrate_store.py"):
        assert store.load(KEY) is None
    assert listing(store.root) == before


# --------------------------------------------------------------------------- two writers of one run
def test_two_writers_of_one_run_leave_a_consistent_pair(tmp_path):
    """Forced interleaving: A writes its weights, B writes its weights and its record, A writes its record.
    With one weights name per run, A's record named B's weights and the next read set both aside."""
    store = RunStore(tmp_path)
    writer_b = trainer(2.0)

    def b_finishes_first():
        run_or_load(CONFIG, execution=Execution(store=store, train_fn=writer_b, progress=False, fresh=True))
    run_or_load(CONFIG, execution=Execution(store=store, train_fn=trainer(1.0, then=b_finishes_first), progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = store.load(KEY)
    assert record is not None and record["provenance"]["writer"] == 1.0  # the last record written
    weights = torch.load(store.weights_file(record), weights_only=True)
    assert torch.equal(weights["w"], torch.full((4,), 1.0))  # ... served with its own weights
    assert hashlib.sha256(store.weights_file(record).read_bytes()).hexdigest() == record["weights_sha256"]


def test_save_moves_the_weights_before_the_record_and_checks_them(store, tmp_path):
    record = store.load(KEY)
    wrong = tmp_path / "wrong.pt"
    torch.save({"w": torch.zeros(4)}, wrong)
    text = store.record_path(KEY).read_text()
    with pytest.raises(ValueError, match="not the record's weights_sha256"):
        store.save(dict(record), weights=wrong)
    assert store.record_path(KEY).read_text() == text and wrong.exists()  # nothing written
    store.weights_file(record).unlink()
    with pytest.raises(ValueError, match="is not in place"):
        store.save(dict(record))


def test_orphaned_weights_are_removed_only_when_old(store):
    """Weights no record names (a fresh=True rewrite, the losing writer) go with the stale temporaries."""
    record = store.load(KEY)
    run_or_load(CONFIG, execution=Execution(store=store, train_fn=trainer(5.0), progress=False, fresh=True))
    old = store.weights_file(record)
    assert old.exists() and store.remove_stale_temporaries() == []  # young: may be a write in progress
    os.utime(old, (0, 0))
    current = store.weights_file(store.load(KEY))
    os.utime(current, (0, 0))
    assert store.remove_stale_temporaries() == [old] and current.exists() and store.load(KEY) is not None


# ----------------------------------------------------------------------------- odd store entries
def test_a_folder_named_like_a_record_is_set_aside_and_the_run_recomputed(tmp_path):
    """A folder named <hash>.json once made `ls` exit 1, and the run was never recomputed."""
    store = RunStore(tmp_path)
    store.record_path(KEY).mkdir(parents=True)
    with pytest.warns(UserWarning, match="a folder, not a regular file.*moved to") as caught:
        record = run_or_load(CONFIG, execution=Execution(store=store, train_fn=trainer(1.0), progress=False))
    one_line_warnings(caught)
    assert store.record_path(KEY).is_file() and store.load(KEY) == json.loads(json.dumps(record))
    assert (tmp_path / f"{KEY}.json.corrupt").is_dir()
    store.record_path("a" * 16).mkdir()
    with pytest.warns(UserWarning, match="a folder, not a regular file"):
        assert [r["config_hash"] for r in store.records()] == [KEY]  # `ls` lists the rest


FIFO_CHILD = """
import sys, warnings
from sparsity_lib import RunStore
warnings.simplefilter("always")
store = RunStore(sys.argv[1])
print(len(store.records()), store.load(sys.argv[2]))
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_a_record_is_never_waited_on(tmp_path):
    """Opening a FIFO for reading waits for a writer forever; the store must check before it reads. A child
    process does the reading, so a regression fails this test (timeout) instead of hanging the suite."""
    os.mkfifo(tmp_path / f"{KEY}.json")
    child = subprocess.run([sys.executable, "-c", FIFO_CHILD, str(tmp_path), KEY], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["0", "None"] and "a FIFO, not a regular file" in child.stderr
    assert "Traceback" not in child.stderr


def test_a_symlink_named_like_a_record_is_not_followed(store, tmp_path):
    """A link to a valid record elsewhere is still not served: the store serves only its own files."""
    elsewhere = tmp_path / "elsewhere.json"
    store.record_path(KEY).rename(elsewhere)
    store.record_path(KEY).symlink_to(elsewhere)
    with pytest.warns(UserWarning, match="symbolic link"):
        assert store.load(KEY) is None
    assert store.record_path(KEY).is_symlink()  # skipped, not moved
    with pytest.warns(UserWarning, match="symbolic link"):
        run_or_load(CONFIG, execution=Execution(store=store, train_fn=trainer(1.0), progress=False))
    assert not store.record_path(KEY).is_symlink() and json.loads(elsewhere.read_text())["config_hash"] == KEY


def test_deeply_nested_json_is_set_aside_in_one_line(store):
    """200,000 nested brackets once gave a RecursionError traceback."""
    store.record_path(KEY).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.warns(UserWarning, match="nested too deep") as caught:
        assert store.load(KEY) is None
    one_line_warnings(caught)
    assert (store.root / f"{KEY}.json.corrupt").exists()


def test_reads_are_bounded(store, monkeypatch):
    path = store.record_path(KEY)
    with open(path, "a") as handle:
        handle.write(" " * 1000)  # still a valid record, but longer than the limit below
    monkeypatch.setattr(files, "MAX_RECORD_BYTES", path.stat().st_size - 1)
    with pytest.warns(UserWarning, match="bytes, over the"):
        assert store.load(KEY) is None
    monkeypatch.undo()
    with open(path.with_name(f"{'0' * 16}.json"), "wb") as handle:
        handle.truncate(files.MAX_RECORD_BYTES + 1)  # sparse: costs no disk
    with pytest.warns(UserWarning, match="67,108,865 bytes, over the 67,108,864 allowed"):
        assert store.load("0" * 16) is None


def test_a_stray_json_is_skipped_never_moved(store):
    """`ls` once renamed any *.json to .corrupt: a read that changed the store."""
    stray = store.root / "notes.json"
    stray.write_text('{"mine": true}')
    with pytest.warns(UserWarning, match="not a run key") as caught:
        assert [r["config_hash"] for r in store.records()] == [KEY]
    one_line_warnings(caught)
    assert stray.read_text() == '{"mine": true}' and not (store.root / "notes.json.corrupt").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda r: r["provenance"].pop("image_size"), "provenance image_size is missing"),
    (lambda r: r["provenance"].update(steps="5"), "provenance steps='5' is not an integer"),
    (lambda r: r["provenance"].pop("dataset_used"), "provenance dataset_used is missing"),
    (lambda r: r["final"]["layers"][0].pop("features"), r"final.layers\[0\] features is missing"),
    (lambda r: r["final"].update(layers=[]), "final layers=\\[\\] is not a non-empty list"),
    (lambda r: r["history"][0].pop("step"), r"history\[0\] step is missing"),
    (lambda r: r["history"][0].update(inactive_gamma=[2]), r"history\[0\] inactive_gamma=\[2\] is not a dict"),
    (lambda r: r.pop("bn"), "field\\(s\\) missing: bn"),
    (lambda r: r.update(weights_sha256="../../etc/passwd"), "is not a sha256 hex digest"),
])
def test_a_record_lacking_what_consumers_index_is_set_aside(store, edit, match):
    """A record without provenance.image_size was served, and then `stored_model` raised a KeyError."""
    def edited(record):
        edit(record)
        record["record_sha256"] = content_hash(record)  # a consistent hash: the fields themselves must be checked
    edit_record(store, edited)
    with pytest.warns(UserWarning, match=match):
        assert store.load(KEY) is None
    assert (store.root / f"{KEY}.json.corrupt").exists()


# ------------------------------------------------------------------------------- read-only listing
def test_a_read_only_listing_changes_nothing(store, tmp_path):
    other = CONFIG.replace(seed=4)
    run_or_load(other, execution=Execution(store=store, train_fn=trainer(4.0), progress=False))
    edit_record(store, lambda r: r["final"].update(test_err=1.0))  # edited
    store.weights_file(store.load(config_hash(other))).write_bytes(b"garbage")  # weights differ
    (store.root / "notes.json").write_text("{}")  # stray
    (store.root / f"{'a' * 16}.json").mkdir()  # a folder
    (store.root / f"{'b' * 16}.json").write_text("{trunc")  # unparsable
    before = listing(store.root)
    with pytest.warns(UserWarning) as caught:
        assert store.records(read_only=True) == []
        assert store.load(KEY, read_only=True) is None
    messages = one_line_warnings(caught)
    assert len(messages) == 6 and all("skipped" in m for m in messages)
    assert listing(store.root) == before


# ------------------------------------------------------------------------------------- migration
MIGRATE = ROOT / "scripts" / "migrate_store.py"


def old_format(store: RunStore) -> None:
    """Turn a store into what the code before issue 19 wrote: no record_sha256, weights at <key>.pt."""
    for path in store.root.glob("*.json"):
        record = json.loads(path.read_text())
        record.pop("record_sha256")
        if store.kind == "run":
            store.weights_file(record).rename(store.root / f"{path.stem}.pt")
        path.write_text(json.dumps(record, indent=1, sort_keys=True))


def migrate(*args) -> int:
    """scripts/migrate_store.py's exit code, run in this process (its output goes to capsys)."""
    main = runpy.run_path(str(MIGRATE))["main"]
    return main([str(arg) for arg in args])


def test_migration_converts_an_old_store_in_place(tmp_path, capsys):
    store = RunStore(tmp_path)
    configs = [CONFIG.replace(seed=seed) for seed in range(4)]
    for index, config in enumerate(configs):
        run_or_load(config, execution=Execution(store=store, train_fn=trainer(float(index)), progress=False))
    pruned = RunStore(tmp_path / "pruned" / "implicit-default-ft0", kind="pruned")
    pruned_record = {"config": CONFIG.to_dict(), "config_hash": KEY, "history": [], "layers": [{"layer": "C1"}],
                     "provenance": {}, "final": {name: 1.0 for name in ("test_err", "test_err_before", "test_err_after",
                                                                        "features_kept_pct", "params_kept_pct")}}
    pruned.save(pruned_record)
    old_format(store)
    old_format(pruned)
    unchecked, mismatched = (config_hash(c) for c in configs[2:])
    edit = json.loads(store.record_path(unchecked).read_text())
    del edit["weights_sha256"]  # a record without a weights checksum must not be blessed
    store.record_path(unchecked).write_text(json.dumps(edit, indent=1, sort_keys=True))
    (tmp_path / f"{mismatched}.pt").write_bytes(b"other weights")
    before = listing(tmp_path)

    assert migrate(tmp_path, "--check") == 1 and listing(tmp_path) == before
    assert migrate(tmp_path) == 1  # two records left alone
    out = capsys.readouterr().out
    assert f"left alone: {store.record_path(unchecked)} (field(s) missing: weights_sha256)" in out
    assert f"left alone: {store.record_path(mismatched)} ({mismatched}.pt has sha256" in out
    assert out.strip().endswith("3 migrated, 0 already in the new format, 2 left alone")
    for key in (unchecked, mismatched):
        assert before[str(store.record_path(key))] == store.record_path(key).read_bytes()
        assert (tmp_path / f"{key}.pt").exists()

    for config in configs[:2]:
        key = config_hash(config)
        old_text = before[str(store.record_path(key))].decode()
        diff = [line for line in difflib.unified_diff(old_text.splitlines(), store.record_path(key).read_text()
                                                      .splitlines(), lineterm="", n=0) if line[:1] in "+-"]
        assert diff[2:] == [f'+ "record_sha256": "{store.load(key)["record_sha256"]}",']  # after the ---/+++ header
        assert not (tmp_path / f"{key}.pt").exists() and store.load(key) is not None
    assert pruned.load(KEY)["final"]["test_err"] == 1.0

    after = listing(tmp_path)
    assert migrate(tmp_path) == 1 and listing(tmp_path) == after  # idempotent
    assert "0 migrated, 3 already in the new format, 2 left alone" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- analysis files
def test_analysis_files_carry_a_checksum_and_an_edited_one_is_not_served(tmp_path):
    store = RunStore(tmp_path)
    path = store.save_analysis("adagrad_state", {"config_hash": KEY, "step": 500, "layers": {"C1": {"gamma": [0.5]}}})
    assert path == tmp_path / "analysis" / "adagrad_state.json"
    assert store.analysis("adagrad_state")["step"] == 500 and store.analysis("absent") is None
    edited = json.loads(path.read_text())
    edited["layers"]["C1"]["gamma"] = [0.0]
    path.write_text(json.dumps(edited))
    with pytest.warns(UserWarning, match="record_sha256 does not match"):
        assert store.analysis("adagrad_state") is None
    assert path.exists()  # reported, never moved
    with pytest.raises(ValueError, match=r"analysis name='\.\./x' is invalid"):
        store.analysis_path("../x")


def test_migration_hashes_old_analysis_files_but_never_an_edited_new_one(tmp_path, capsys):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "old.json").write_text(json.dumps({"step": 1}))
    store = RunStore(tmp_path)
    new = store.save_analysis("new", {"step": 2})
    new.write_text(json.dumps({**json.loads(new.read_text()), "step": 3}))
    assert migrate(tmp_path) == 1  # the edited one is left alone
    assert store.analysis("old") == {"step": 1, "record_sha256": json.loads((tmp_path / "analysis" / "old.json")
                                                                             .read_text())["record_sha256"]}
    assert "1 migrated, 0 already in the new format, 1 left alone" in capsys.readouterr().out
