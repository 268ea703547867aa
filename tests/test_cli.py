import json

from sparsity_lib.cli import main

SMOKE = ["--profile", "smoke"]


def test_train_then_ls(tmp_path, capsys):
    store = str(tmp_path)
    assert main(["train", *SMOKE, "--store", store, "--dataset", "synthetic", "--optimizer", "sgd", "--l2", "1e-3"]) == 0
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
