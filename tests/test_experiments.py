import json
import warnings

import pytest

from sparsity_lib import PROFILES, RunConfig, RunStore, config_hash, get_profile, run_or_load, train


def test_default_config_is_the_papers():
    config = RunConfig()
    assert (config.model, config.optimizer, config.l2, config.wd, config.batch_size) == ("basicnet", "adam", 1e-4, 0.0, 40)
    assert (config.epochs, config.lr_drops) == (325.0, (250.0,))
    assert (config.bn_weight_init, config.bn_bias_init) == (1.0, 0.0)


@pytest.mark.parametrize("field,value,allowed", [
    ("optimizer", "adamw", "sgd, adam"), ("dataset", "mnist", "cifar10"), ("l2", -1e-4, "[0, 1)"),
    ("batch_size", 0, "integer >= 1"), ("wd", 1.0, "[0, 1)"), ("clutter", 2.0, "[0, 1]"),
    ("activation", "gelu", "relu"), ("lr_drops", (400.0,), "epochs strictly between"),
])
def test_bad_values_name_field_and_allowed(field, value, allowed):
    with pytest.raises(ValueError) as error:
        RunConfig(**{field: value})
    assert f"RunConfig.{field}=" in str(error.value) and allowed in str(error.value)


def test_hash_ignores_fields_left_at_their_default():
    # A field added to RunConfig later (default value) must not rename stored runs: the hash covers
    # only non-default fields, so these names are fixed (sha256 of '{}' and of '{"l2":0.001}').
    assert config_hash(RunConfig()) == "44136fa355b3678a"
    assert config_hash(RunConfig(l2=1e-3)) == "34bcaa7df2a57fcf"
    assert config_hash(RunConfig(l2=1e-3, slimming_l1=0.0, l1l2=0.0)) == "34bcaa7df2a57fcf"
    assert config_hash(RunConfig(l2=1e-3)) != config_hash(RunConfig(l2=1e-3, slimming_l1=1e-4))


def test_hash_is_stable_and_distinguishes_configs():
    assert config_hash(RunConfig()) == config_hash(RunConfig())
    assert config_hash(RunConfig()) != config_hash(RunConfig(l2=1e-3))
    assert config_hash(RunConfig(l2=0, wd=0, epochs=325, lr_drops=[250])) == config_hash(RunConfig(l2=0.0, lr_drops=(250.0,)))
    assert config_hash(RunConfig.from_dict(json.loads(json.dumps(RunConfig().to_dict())))) == config_hash(RunConfig())


def test_profiles_scale_schedule_and_width():
    config = RunConfig(lr_drops=(250.0,))
    assert get_profile("paper").apply(config) == config
    cpu = PROFILES["cpu"].apply(config)
    assert cpu.epochs == 16 and cpu.lr_drops == (round(250 * 16 / 325, 3),)
    assert (cpu.first_width, cpu.width) == (32, 0.25)
    narrow = PROFILES["cpu"].apply(RunConfig(first_width=32, width=0.25))
    assert (narrow.first_width, narrow.width) == (16, 0.0625)
    with pytest.raises(ValueError, match="profile='huge'.*smoke, cpu, paper"):
        get_profile("huge")


def counting(train_fn):
    calls = []

    def wrapped(config, **kwargs):
        calls.append(config)
        return train_fn(config, **kwargs)
    return wrapped, calls


def test_run_or_load_hit_miss_and_corruption(tmp_path, tiny_config):
    store = RunStore(tmp_path / "store")
    train_fn, calls = counting(train)
    first = run_or_load(tiny_config, store=store, train_fn=train_fn, progress=False, profile="test")
    assert len(calls) == 1 and store.record_path(config_hash(tiny_config)).exists()
    assert store.weights_path(config_hash(tiny_config)).exists()
    assert not store.checkpoint_path(config_hash(tiny_config)).exists()
    assert first["provenance"]["profile"] == "test"

    second = run_or_load(tiny_config, store=store, train_fn=train_fn, progress=False)
    assert len(calls) == 1 and second == json.loads(json.dumps(first))

    store.record_path(config_hash(tiny_config)).write_text('{"config": {"trunc')
    with pytest.warns(UserWarning, match="corrupt"):
        third = run_or_load(tiny_config, store=store, train_fn=train_fn, progress=False)
    assert len(calls) == 2 and third["final"]["test_err"] == pytest.approx(first["final"]["test_err"])
    assert (tmp_path / "store" / f"{config_hash(tiny_config)}.json.corrupt").exists()
    assert len(store.records()) == 1


def test_missing_dataset_root_is_a_clear_error(tmp_path):
    config = RunConfig(dataset="cifar10", epochs=1, lr_drops=())
    with pytest.raises(FileNotFoundError, match="cifar-10"):
        run_or_load(config, store=tmp_path, data_root=tmp_path / "nowhere", progress=False)
    assert not list(tmp_path.glob("*.json"))
