"""Entry points check what they are asked before any work (sparsity_lib.cli, config.validate, book): a bad
value is one line `error: ...` naming the parameter, the value and what is allowed, with exit 2; what is asked
is what runs (no field silently replaced); out of memory and a full disk are one line with exit 1."""
import errno
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error

from sparsity_lib.cli import main

SMOKE = ["--profile", "smoke"]




@pytest.mark.parametrize("argv,expected", [
    (["train", "--batch-size", "1000000000"],
     "RunConfig.batch_size=1000000000 is invalid; allowed: an integer from 1 to the 50,000 training images of "
     "synthetic"),  # the smoke profile's default dataset
    (["train", "--dataset", "synthetic", "--batch-size", "1000"],
     "RunConfig.batch_size=1000 is invalid; allowed: an integer from 1 to the 400 training images of train_subset=400"),
    (["train", "--profile", "paper", "--dataset", "synthetic", "--batch-size", "50001"],
     "allowed: an integer from 1 to the 50,000 training images of synthetic"),
    (["sweep", "--grid", "batch_size=40,401", "--dry-run"], "RunConfig.batch_size=401"),
    (["train", "--lr", "1e300"],
     "RunConfig.lr=1e+300 is invalid; allowed: None (paper default) or a number in (0, 10]"),
    (["train", "--lr", "0"], "RunConfig.lr=0.0 is invalid; allowed: None (paper default) or a number in (0, 10]"),
    (["sweep", "--grid", "l2=1e-4", "--grid", "l2=1e-3"],
     "--grid l2=1e-3: l2 is already given by --grid l2=1e-4; allowed: each field once, in one --set or one --grid"),
    (["sweep", "--set", "l2=1e-4", "--grid", "l2=1e-3,1e-2"],
     "--grid l2=1e-3,1e-2: l2 is already given by --set l2=1e-4"),
    (["sweep", "--set", "optimizer=sgd", "--set", "optimizer=adam"],
     "optimizer is already given by --set optimizer=sgd"),
    (["sweep", "--grid", "l2=1e-3,0.001"], "--grid l2=1e-3,0.001: a value of l2 is repeated; allowed: distinct values"),
    (["sweep", "--grid", "seed=0,1", "--seeds", "2"],
     "--seeds 2: the seeds are already given as seed=0,1; allowed: --seeds N or a seed field, not both"),
    (["sweep", "--set", "seed=3", "--seeds", "1"], "the seeds are already given as seed=3"),
    (["book", "--chapter", "2", "--dataset", "foo", "--no-html"],
     "dataset='foo' is unknown; allowed: auto, cifar10, cifar100, tinyimagenet, imagenet, synthetic"),
    (["book", "--chapter", "2", "-p", "l2_values", "{'adam': [1e999]}"],
     "-p l2_values={'adam': [inf]} has ['adam'][0]=inf, not finite; allowed: a dict of string keys to lists"),
    (["book", "--chapter", "4", "-p", "rare_value", "1e999"], "-p rare_value=inf is not finite; allowed: a number"),
    (["book", "--chapter", "5", "-p", "clutter_levels", "{0.5}"],
     "-p clutter_levels={0.5} is a set; allowed: a list of at most 1000 numbers or None"),
    (["book", "--chapter", "2", "-p", "l2_values", "{('adam', 1): [1e-3]}"],
     "-p l2_values={('adam', 1): [0.001]} has a key ('adam', 1), a tuple"),
    (["book", "--chapter", "3", "-p", "data_root", "b'/data'"], "-p data_root=b'/data' is a bytes; allowed: a string"),
    (["book", "--chapter", "5", "-p", "class_counts", "{(20, 1): 36}"], "-p class_counts={(20, 1): 36} is a dict"),
])
def test_bad_values_are_one_line_and_exit_2_before_any_work(tmp_path, capsys, no_training, argv, expected):
    profile = [] if "--profile" in argv or argv[0] == "book" else SMOKE
    store = [] if argv[0] == "book" else ["--store", str(tmp_path / "store")]
    assert main([argv[0], *profile, *store, *argv[1:]]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "store").exists()


def test_a_batch_within_the_training_set_is_accepted(tmp_path, capsys):
    assert main(["sweep", *SMOKE, "--store", str(tmp_path), "--grid", "batch_size=40,400", "--dry-run"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["missing", "missing"]


@pytest.mark.parametrize("fields,seeds", [
    (["--grid", "seed=4,5"], [4, 5]), (["--set", "seed=3"], [3]), (["--grid", "l2=1e-4,1e-3", "--seeds", "2"], [0, 1]),
    ([], [0]),  # the profile's seeds (smoke: 1)
])
def test_seeds_asked_for_are_the_seeds_swept(tmp_path, capsys, fields, seeds):
    assert main(["sweep", *SMOKE, "--store", str(tmp_path), *fields, "--dry-run"]) == 0
    listed = [int(line.rsplit(" ", 1)[1]) for line in capsys.readouterr().out.splitlines()]
    assert sorted(set(listed)) == seeds and len(listed) == len(seeds) * (2 if "l2=1e-4,1e-3" in fields else 1)


def test_book_output_that_is_a_file_fails_before_any_chapter_runs(tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("x")
    assert main(["book", "--chapter", "2", "--no-html", "--output", str(tmp_path / "file")]) == 2
    assert f"--output {tmp_path / 'file'} is a file; allowed: a folder (created if missing)" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "x"


def test_scorecard_of_a_missing_or_file_store_exits_2(tmp_path, capsys):
    assert main(["scorecard", "--profile", "smoke", "--store", str(tmp_path / "nowhere")]) == 2
    assert f"store='{tmp_path / 'nowhere'}' does not exist; allowed: a run store folder" in one_line_error(capsys)
    (tmp_path / "file").write_text("x")
    assert main(["scorecard", "--profile", "smoke", "--store", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 8 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 2304000000000 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
], ids=["cuda", "cpu", "python"])
def test_out_of_memory_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch, error):
    def fail(*_args, **_kwargs):
        raise error
    monkeypatch.setattr("sparsity_lib.cli.run_configs", fail)
    assert main(["train", *SMOKE, "--store", str(tmp_path)]) == 1
    line = one_line_error(capsys)
    assert line.startswith("error: out of memory (") and "allowed: a smaller width or batch size" in line, line
    assert "[enforce fail" not in line


def test_another_runtime_error_is_not_called_out_of_memory(tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr("sparsity_lib.cli.run_configs", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", *SMOKE, "--store", str(tmp_path)])


@pytest.mark.skipif(not sys.platform.startswith("linux") or Path("/proc/sys/vm/overcommit_memory").read_text().strip()
                    == "1", reason="needs Linux refusing an allocation larger than its memory at once")
def test_a_width_that_does_not_fit_in_memory_is_one_line_and_exit_1(tmp_path, capsys):
    argv = ["train", *SMOKE, "--store", str(tmp_path), "--dataset", "synthetic", "--width", "1e9", "--device", "cpu"]
    assert main(argv) == 1
    assert "error: out of memory (DefaultCPUAllocator: can't allocate memory" in one_line_error(capsys)
    assert not list(tmp_path.glob("*.json"))


def test_a_full_disk_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    def full(_obj, path, *_args, **_kwargs):
        Path(path).write_bytes(b"half")  # torch's stream writer fails mid-file when the disk fills
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")
    monkeypatch.setattr(torch, "save", full)
    assert main(["train", *SMOKE, "--store", str(tmp_path), "--dataset", "synthetic"]) == 1
    line = one_line_error(capsys)
    assert "cannot write " in line and "(is the disk full?)" in line, line
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


def test_a_disk_full_oserror_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))
    monkeypatch.setattr("sparsity_lib.cli.run_configs", full)
    assert main(["train", *SMOKE, "--store", str(tmp_path)]) == 1
    assert "No space left on device" in one_line_error(capsys)
