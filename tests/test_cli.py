import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error

from sparsity_lib.cli import build_parser, main

SMOKE = ["--profile", "smoke"]


def test_train_then_ls(tmp_path, capsys):
    store = str(tmp_path)
    assert main(["train", *SMOKE, "--store", store, "--dataset", "synthetic", "--optimizer", "sgd",
                 "--l2", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert "sgd" in out
    assert main(["ls", "--store", store, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 1 and records[0]["config"]["optimizer"] == "sgd" and records[0]["config"]["l2"] == 1e-3


def test_sweep_dry_run_lists_grid(tmp_path, capsys):
    code = main(["sweep", *SMOKE, "--store", str(tmp_path), "--set", "dataset=synthetic",
                 "--grid", "optimizer=adam,sgd", "--grid", "l2=1e-4,1e-3", "--dry-run"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("missing" in line for line in lines)


def test_bad_optimizer_is_a_clear_error(tmp_path, capsys):
    assert main(["train", *SMOKE, "--store", str(tmp_path), "--optimizer", "adamw"]) == 2
    err = capsys.readouterr().err
    assert "RunConfig.optimizer='adamw'" in err and "sgd" in err
    assert main(["train", *SMOKE, "--store", str(tmp_path), "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_sweep_speed_options_train_fused_and_are_recorded(tmp_path, capsys):
    grid = ["sweep", *SMOKE, "--store", str(tmp_path), "--set", "dataset=synthetic", "--set", "train_subset=200",
            "--grid", "l2=1e-4,1e-3", "--seeds", "1"]
    assert main(grid + ["--fused", "off", "--amp", "--channels-last"]) == 2
    assert "--amp, --channels-last: options of the fused trainer" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))  # nothing trained
    assert main(grid + ["--fused", "on", "--amp"]) == 0
    assert main(["ls", "--store", str(tmp_path), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["provenance"]["fused_models"], r["provenance"]["precision"]) for r in records] == \
        [(2, "bf16 autocast")] * 2


def test_boolean_field_parses_true_false_and_rejects_other_words(tmp_path, capsys):
    assert main(["sweep", *SMOKE, "--store", str(tmp_path), "--set", "dataset=synthetic",
                 "--grid", "train_stream=true,false", "--dry-run"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["train", *SMOKE, "--store", str(tmp_path), "--train-stream", "maybe"]) == 2
    err = capsys.readouterr().err
    assert "train_stream" in err and "true, false" in err


# ------------------------------------------------------------------------------- the error boundary
ROOT = Path(__file__).resolve().parent.parent




@pytest.mark.parametrize("argv,expected", [
    (["train", "--lr", "inf"], ["RunConfig.lr=inf", "finite number"]),
    (["train", "--gamma-lr-scale", "inf"], ["RunConfig.gamma_lr_scale=inf", "finite number"]),
    (["train", "--bn-weight-init", "nan"], ["RunConfig.bn_weight_init=nan", "finite number"]),
    (["train", "--width", "inf"], ["RunConfig.width=inf"]),
    (["train", "--l2", "-1e-3"], ["RunConfig.l2=-0.001", "[0, 1)"]),  # read as a value, not as an option
    (["train", "--seed", "1.5"], ["seed='1.5'", "allowed: an integer"]),
    (["train", "--seed", "-1"], ["RunConfig.seed=-1", "integer >= 0"]),
    (["train", "--snapshot-count", "2.5"], ["snapshot_count='2.5'", "an integer"]),
    (["train", "--snapshot-layers", "C99"], ["RunConfig.snapshot_layers=('C99',)", "C1, C2, C3, C4, C5, C6, C7"]),
    (["train", "--epochs", "50"], ["--profile smoke fixes epochs at 2", "--profile paper"]),
    (["train", "--device", "foo"], ["device='foo'", "auto, cpu, cuda, cuda:N"]),
    (["train", "--profile", "huge"], ["--profile", "'huge'", "smoke"]),
    (["sweep", "--seeds", "0"], ["--seeds", "'0'", "integer >= 1"]),
    (["sweep", "--seeds", "-1"], ["--seeds", "'-1'", "integer >= 1"]),
    (["sweep", "--set", "bogus=1"], ["unknown config field 'bogus'", "allowed: dataset"]),
    (["sweep", "--set", "l2"], ["expected FIELD=VALUE", "'l2'"]),
    (["sweep", "--set", "epochs=50"], ["fixes epochs at 2"]),
    (["sweep", "--grid", "epochs=5,6"], ["fixes epochs at 2"]),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, capsys, no_training, argv, expected):
    profile = [] if "--profile" in argv else SMOKE
    assert main([argv[0], *profile, "--store", str(tmp_path / "store"), *argv[1:]]) == 2
    err = one_line_error(capsys)
    assert all(text in err for text in expected), err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("argv,expected", [
    (["book", "--chapter", "abc"], ["chapter='abc' not found", "chapters: 0, 1, 2, 3"]),
    (["book", "--chapter", "2", "-p", "setings", "{}"], ["-p setings: no such parameter", "allowed: data_root"]),
    (["book", "--chapter", "6", "-p", "batch_sizes", "40"], ["-p batch_sizes=40 is an int", "allowed: a list"]),
    (["book", "--chapter", "4", "-p", "rare_every", "1e3"], ["-p rare_every=1000.0 is a float", "allowed: an integer"]),
    (["book", "--chapter", "2", "-p", "profile", "smoke"], ["-p profile: set it with --profile"]),
])
def test_book_parameter_errors_are_one_line_and_exit_2(capsys, no_training, argv, expected):
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert all(text in err for text in expected), err


def test_ls_of_a_missing_folder_or_a_file_says_so(tmp_path, capsys):
    assert main(["ls", "--store", str(tmp_path / "nowhere")]) == 2
    assert f"store='{tmp_path / 'nowhere'}' does not exist" in one_line_error(capsys)
    (tmp_path / "file").write_text("x")
    assert main(["ls", "--store", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)


def test_ls_skips_a_null_record_and_changes_nothing(tmp_path, capsys):
    (tmp_path / "44136fa355b3678a.json").write_text("null")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.warns(UserWarning, match="44136fa355b3678a.json skipped .*nothing was changed"):
        assert main(["ls", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "no runs"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["44136fa355b3678a.json", "notes.json"]  # ls only reads


def test_store_that_is_a_file_or_unwritable_fails_before_training(tmp_path, capsys, no_training):
    store = tmp_path / "results"
    store.write_text("a file")
    assert main(["train", *SMOKE, "--store", str(store)]) == 2
    assert f"error: store='{store}' is a file, not a folder" in one_line_error(capsys)
    assert main(["train", *SMOKE, "--store", str(store / "sub")]) == 2
    assert f"error: store='{store / 'sub'}' cannot be written" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path, capsys, no_training):
    assert main(["train", *SMOKE, "--store", str(tmp_path), "--device", "cuda"]) == 2
    assert "device='cuda' is not available here" in one_line_error(capsys)


def test_diverged_run_exits_1_and_stores_nothing(tmp_path, capsys):
    argv = ["train", *SMOKE, "--store", str(tmp_path), "--dataset", "synthetic", "--optimizer", "sgd", "--lr", "10",
            "--gamma-lr-scale", "1e6"]  # lr is at most 10; γ's step is scaled up instead
    assert main(argv) == 1
    err = one_line_error(capsys)
    assert "diverged: the training loss became nan at step" in err and "nothing was stored" in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_damaged_dataset_exits_1_naming_the_file(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    argv = ["train", *SMOKE, "--store", str(tmp_path / "store"), "--dataset", "cifar10",
            "--data-root", str(tmp_path / "data")]
    with pytest.warns(UserWarning, match="md5"):
        assert main(argv) == 1
    err = one_line_error(capsys)
    assert f"error: {tmp_path / 'data' / 'cifar-10-python.tar.gz'} is not a readable CIFAR-10 tarball" in err
    assert not list((tmp_path / "store").glob("*.json"))


def test_ctrl_c_is_one_line(tmp_path, capsys, monkeypatch):
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("sparsity_lib.cli.run_configs", interrupt)
    assert main(["train", *SMOKE, "--store", str(tmp_path)]) == 130
    assert "error: interrupted (Ctrl-C); finished runs are stored" in one_line_error(capsys)
    monkeypatch.setattr("sparsity_lib.cli.build_book", interrupt)  # cli binds it at import
    assert main(["book", "--chapter", "2", "--no-html"]) == 130
    assert "chapters not finished were not written" in one_line_error(capsys)


def test_negative_numbers_in_scientific_notation_are_values():
    args = build_parser().parse_args(["train", "--l2", "-1e-3", "--bn-bias-init", "-.5", "--negative-slope", "-2E+1"])
    assert (args.l2, args.bn_bias_init, args.negative_slope) == ("-1e-3", "-.5", "-2E+1")


def test_command_line_output_of_a_damaged_dataset(tmp_path):
    """As a user sees it: a one-line warning and a one-line error, no traceback."""
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    result = subprocess.run([sys.executable, "-m", "sparsity_lib", "train", *SMOKE, "--store", str(tmp_path / "s"),
                             "--dataset", "cifar10", "--data-root", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["warning", "error"], result.stderr
    assert "is not a readable CIFAR-10 tarball" in lines[1]


def test_scorecard_judges_the_stored_runs_and_names_what_is_missing(tmp_path, capsys):
    assert main(["scorecard", "--profile", "smoke", "--dataset", "synthetic", "--store", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and "profile smoke" in lines[0]
    assert "claim  7 (chapter  4) holds" in lines[7]
    assert "claim  1 (chapter  2) not tested" in lines[1] and "not in the store" in lines[1]
