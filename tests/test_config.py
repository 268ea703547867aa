"""RunConfig validation and hashing, and the size profiles (sparsity_lib.runs.config)."""
import json

import pytest

from sparsity_lib import PROFILES, RunConfig, config_hash, get_profile, make_config


def test_default_config_is_the_papers():
    config = RunConfig()
    assert ((config.model, config.optimizer, config.l2, config.wd, config.batch_size)
            == ("basicnet", "adam", 1e-4, 0.0, 40))
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
    assert (config_hash(RunConfig(l2=0, wd=0, epochs=325, lr_drops=[250]))
            == config_hash(RunConfig(l2=0.0, lr_drops=(250.0,))))
    assert config_hash(RunConfig.from_dict(json.loads(json.dumps(RunConfig().to_dict())))) == config_hash(RunConfig())


def test_profiles_scale_schedule_and_width():
    config = RunConfig(lr_drops=(250.0,))
    assert get_profile("paper").apply(config) == config
    cpu = PROFILES["cpu"].apply(config)
    assert cpu.epochs == 28 and cpu.lr_drops == (round(250 * 28 / 325, 3),)
    assert (cpu.first_width, cpu.width) == (32, 0.25)
    narrow = PROFILES["cpu"].apply(RunConfig(first_width=32, width=0.25))
    assert (narrow.first_width, narrow.width) == (16, 0.0625)
    with pytest.raises(ValueError, match="profile=.huge. is unknown; allowed: smoke, cpu, .*paper"):
        get_profile("huge")


def test_a_config_without_a_dataset_takes_the_profiles_default():
    """`train --profile cpu` without --dataset trains the embedded task the cpu profile was sized for."""
    assert make_config("cpu").dataset == make_config("long").dataset == "synthetic"
    assert make_config("paper").dataset == "cifar10"
    assert make_config("cpu") == make_config("cpu", dataset="synthetic")  # the profile's synthetic fields too
    assert make_config("cpu", dataset="cifar10").dataset == "cifar10"



# ------------------------------------------------------------------ validation: types, NaN, infinity
INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("field,value,allowed", [
    ("lr", INF, "finite number"), ("width", INF, "finite number"), ("epochs", INF, "finite number"),
    ("gamma_lr_scale", INF, "finite number"), ("beta_lr_scale", NAN, "finite number"),
    ("bn_weight_init", NAN, "finite number"), ("bn_bias_init", -INF, "finite number"),
    ("negative_slope", INF, "finite number"), ("l2", NAN, "finite number"), ("wd", INF, "finite number"),
    ("clutter", NAN, "finite number"), ("l2", "1e-3", "finite number"), ("width", True, "finite number"),
    ("seed", "x", "integer >= 0"), ("seed", 1.5, "integer >= 0"), ("seed", True, "integer >= 0"),
    ("seed", -1, "integer >= 0"), ("snapshot_count", 2.5, "integer >= 0"), ("batch_size", True, "integer >= 1"),
    ("image_size", 16.0, "None or an integer"), ("train_subset", False, "None or an integer"),
    ("optimizer", 3, "sgd"), ("lr_drops", ("x",), "epochs strictly between"), ("lr_drops", (INF,), "strictly"),
    ("lr_drops", "100", "strictly between"), ("snapshot_layers", ("C99",), "C1, C2, C3, C4, C5, C6, C7"),
    ("snapshot_layers", "C5", "layers of basicnet"), ("train_stream", 1, "True or False"),
])
def test_bad_types_and_non_finite_values_are_rejected(field, value, allowed):
    with pytest.raises(ValueError) as error:
        RunConfig(**{field: value})
    assert f"RunConfig.{field}=" in str(error.value) and allowed in str(error.value)


def test_snapshot_layers_are_checked_against_the_chosen_model():
    assert RunConfig(model="vgg11", snapshot_layers=("C8",)).snapshot_layers == ("C8",)
    with pytest.raises(ValueError, match="layers of basicnet: C1, .*C7$"):
        RunConfig(snapshot_layers=("C8",))
    with pytest.raises(ValueError, match="layers of vgg11: C1, .*C8$"):
        RunConfig(model="vgg11", snapshot_layers=("C9",))


def test_numbers_of_the_right_type_still_normalize():
    assert RunConfig(l2=0, lr_drops=[250], snapshot_layers=["C5"]) == RunConfig(l2=0.0, lr_drops=(250.0,),
                                                                                snapshot_layers=("C5",))


# ------------------------------------------------------------------- bounds: what would only fail later
@pytest.mark.parametrize("fields,allowed", [
    ({"lr": 1e300}, "RunConfig.lr=1e+300 is invalid; allowed: None (paper default) or a number in (0, 10]"),
    ({"lr": 10.5}, "RunConfig.lr=10.5 is invalid; allowed: None (paper default) or a number in (0, 10]"),
    ({"lr": 0.0}, "RunConfig.lr=0.0 is invalid"),
    ({"batch_size": 101, "train_subset": 100},
     "RunConfig.batch_size=101 is invalid; allowed: an integer from 1 to the 100 training images of train_subset=100"),
    ({"batch_size": 50_001}, "allowed: an integer from 1 to the 50,000 training images of cifar10"),
    ({"batch_size": 50_001, "dataset": "synthetic", "train_subset": 10**6}, "50,000 training images of synthetic"),
])
def test_numbers_that_could_only_fail_later_are_rejected(fields, allowed):
    with pytest.raises(ValueError) as error:
        RunConfig(**fields)
    assert allowed in str(error.value), str(error.value)


def test_the_bounds_themselves_are_allowed():
    assert RunConfig(lr=10.0).lr == 10.0
    assert RunConfig(batch_size=100, train_subset=100).batch_size == 100
    assert RunConfig(dataset="tinyimagenet", batch_size=100_000).batch_size == 100_000
    with pytest.raises(ValueError, match="batch_size=41 .* 40 training images"):  # the profile's subset counts too
        get_profile("smoke").apply(RunConfig(batch_size=41)).replace(train_subset=40)
