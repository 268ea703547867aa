"""The run record both trainers build (sparsity_lib.runs.records)."""
import torch

from sparsity_lib import BasicNet, RunConfig, config_hash, load_dataset
from sparsity_lib.runs.records import history_entry, provenance, run_record

SINGLE_KEYS = {"dataset_used", "train_images", "test_images", "image_size", "steps", "device", "device_name",
               "cpu_threads", "torch", "commit", "date", "wall_time_s", "resumed", "flush_denormal", "channels_last",
               "compiled"}


def test_history_entry_has_test_numbers_only_when_evaluated():
    plain = history_entry(3, 30, 1e-3, 0.5, 12.0, {"C1": 0})
    assert set(plain) == {"epoch", "step", "lr", "train_loss", "train_err", "inactive_gamma"}
    evaluated = history_entry(3, 30, 1e-3, 0.5, 12.0, {"C1": 0}, (0.7, 20.0))
    assert (evaluated["test_loss"], evaluated["test_err"]) == (0.7, 20.0)


def test_provenance_keys_and_extras():
    data = load_dataset("synthetic", split="test", image_size=16, subset=20)
    made_by = provenance(data, data, 15, torch.device("cpu"), wall_time_s=1.234, resumed=False, flush_denormal=True,
                         channels_last=False, compiled=False)
    assert set(made_by) == SINGLE_KEYS and made_by["wall_time_s"] == 1.2 and made_by["image_size"] == 16
    fused = provenance(data, data, 15, torch.device("cpu"), wall_time_s=1.0, resumed=True, flush_denormal=True,
                       channels_last=False, compiled=False, fused_models=2, precision="float32")
    assert set(fused) == SINGLE_KEYS | {"fused_models", "precision"}


def test_run_record_holds_weights_checksum_only_when_given():
    config = RunConfig(model="basicnet", width=0.0625, first_width=8)
    model = BasicNet(width=0.0625, first_width=8, image_size=16)
    record = run_record(config, config_hash(config), model, {"test_err": 1.0}, {}, [], {}, {"steps": 1})
    assert "weights_sha256" not in record and set(record["bn"]) == {f"C{i}" for i in range(1, 8)}
    assert run_record(config, "k", model, {}, {}, [], {}, {}, "abc")["weights_sha256"] == "abc"
