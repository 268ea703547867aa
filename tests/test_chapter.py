import pytest

from sparsity_lib import Chapter, RunStore, config_hash, layer_frame, make_config, mean_over_seeds
from sparsity_lib.environment import open_chapter
from sparsity_lib.report.markdown import provenance_markdown
from sparsity_lib.runs.execution import Execution
from sparsity_lib.study.chapter import MissingRuns


def test_chapter_resolves_auto_and_runs_each_seed_once(tmp_path):
    chapter = Chapter(profile="smoke", seeds=2, execution=Execution(data_root=str(tmp_path / "no-data"),
                                                                    store=str(tmp_path / "store")))
    assert chapter.dataset_used == "synthetic" and chapter.fell_back_to_synthetic
    records = chapter.runs([dict(optimizer="sgd", l2=1e-3)], progress=False)
    assert [r["config"]["seed"] for r in records] == [0, 1]
    assert records[0]["config_hash"] == config_hash(make_config("smoke", dataset="synthetic", optimizer="sgd", l2=1e-3))
    assert len(RunStore(tmp_path / "store").records()) == 2
    frame = mean_over_seeds(records, ["optimizer", "l2"])
    assert len(frame) == 1 and frame.seeds.item() == 2
    assert set(layer_frame(records, ["optimizer"]).layer) == {f"C{i}" for i in range(1, 8)}
    text = provenance_markdown(chapter, records)
    assert "profile smoke" in text and "2 seeds" in text and ":::{warning}" in text


def test_chapter_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="profile='fast'"):
        Chapter(profile="fast")
    with pytest.raises(ValueError, match="dataset='mnist'.*cifar10"):
        Chapter(dataset="mnist")
    with pytest.raises(ValueError, match="seeds=0"):
        Chapter(seeds=0)


def test_fresh_chapter_retrains_through_the_fused_trainer_when_asked(tmp_path, monkeypatch):
    """FRESH=1 with every run stored still honours $SPARSITY_FUSED (and $SPARSITY_BACKEND), and each run
    trains once: the records come back from the fused trainer, not from a second pass."""
    common = dict(profile="smoke", dataset="synthetic", store=str(tmp_path), seeds=2)
    first = open_chapter(**common).runs([dict(optimizer="adam", l2=1e-3)], progress=False)
    assert all("fused_models" not in r["provenance"] for r in first)
    monkeypatch.setenv("SPARSITY_FUSED", "on")
    again = open_chapter(**common, fresh=True).runs([dict(optimizer="adam", l2=1e-3)], progress=False)
    assert [r["provenance"]["fused_models"] for r in again] == [2, 2]
    assert [r["config_hash"] for r in again] == [r["config_hash"] for r in first]


def test_stored_runs_loads_without_training_and_names_what_is_missing(tmp_path):
    chapter = Chapter(profile="smoke", dataset="synthetic", seeds=2, execution=Execution(store=str(tmp_path)))
    with pytest.raises(MissingRuns, match="2 of 2 runs not in the store"):
        chapter.stored_runs([dict(optimizer="sgd", l2=1e-3)])
    trained = chapter.runs([dict(optimizer="sgd", l2=1e-3)], progress=False)
    loaded = chapter.stored_runs([dict(optimizer="sgd", l2=1e-3)])
    assert [r["config_hash"] for r in loaded] == [r["config_hash"] for r in trained]
    assert [r["final"]["test_err"] for r in loaded] == [r["final"]["test_err"] for r in trained]
    with pytest.raises(MissingRuns, match="2 of 4 runs"):
        chapter.stored_runs([dict(optimizer="sgd", l2=1e-3), dict(optimizer="adam", l2=1e-3)])


def test_profile_synthetic_fields_are_defaults_that_explicit_values_override(monkeypatch):
    from sparsity_lib.runs.config import PROFILES
    monkeypatch.setitem(PROFILES, "smoke", PROFILES["smoke"].__class__(
        **{**PROFILES["smoke"].__dict__, "synthetic": {"num_classes": 20, "clutter": 0.5}}))
    config = make_config("smoke", dataset="synthetic")
    assert (config.num_classes, config.clutter) == (20, 0.5)
    assert make_config("smoke", dataset="synthetic", clutter=0.0).clutter == 0.0
    assert make_config("smoke", dataset="cifar10").num_classes is None
