"""Tests of sparsity_lib.study.plans: which runs feed which claim, on a fake store."""
import pytest

from sparsity_lib import Chapter, config_hash
from sparsity_lib.runs.execution import Execution
from sparsity_lib.study import judge, plans
from sparsity_lib.study.claims import HOLDS, NOT_TESTED

LAYERS = [f"C{i}" for i in range(1, 8)]


def fake_record(config, sparsity, err, dead=None, beta=0.0, universality=50.0):
    dead = dead or {}
    return {"config": config.to_dict(), "final": {
        "sparsity_gamma": sparsity, "test_err": err,
        "layers": [{"layer": n, "features": 30, "inactive_gamma": dead.get(n, 0), "inactive_act": 0} for n in LAYERS]},
        "bn": {n: {"gamma": [0.0] * dead.get(n, 0) + [1.0] * (30 - dead.get(n, 0)), "beta": [beta] * 30}
               for n in LAYERS},
        "universality": {n: [universality] * 30 for n in LAYERS}}


def paper_like(config):
    """A record that behaves as the paper says, computed from the config alone (plus a seed wobble)."""
    c, wobble = config, 0.3 * config.seed
    reg = c.l2 or c.wd
    adaptive = c.optimizer not in ("sgd", "amsgrad")
    sparsity = 0.0 if reg == 0 else (30.0 if reg >= 1e-3 else 10.0) * (1.0 if adaptive else 0.1)
    if c.wd:
        sparsity *= 0.3
    sparsity *= {20: 1.2, 40: 1.0, 160: 0.6}[c.batch_size] * (1.0 - c.clutter * 0.5) * min(1.0, c.width * 4)
    sparsity *= 0.5 if c.gamma_lr_scale < 1 else 1.0
    err = 15.0 + 10.0 * c.clutter + (3.0 if c.optimizer == "sgd" else 0.0)
    late = {"C6": 10, "C7": 15} if adaptive else {}
    early = {"C1": 12, "C2": 5} if c.optimizer == "sgd" else {}
    return fake_record(config, sparsity + wobble, err + wobble, {**late, **early},
                       beta=-0.3 if adaptive else 0.1, universality=25.0 if adaptive else 60.0)


@pytest.fixture
def chapter(tmp_path, monkeypatch):
    ch = Chapter(profile="smoke", dataset="synthetic", seeds=3, execution=Execution(store=str(tmp_path)))
    seen = []

    def stored_runs(variants):
        seen.append(variants)
        return [paper_like(ch.config(seed=s, **fields)) for fields in variants for s in ch.seed_list]
    monkeypatch.setattr(ch, "stored_runs", stored_runs)

    def pruned(config, method, amount=None, execution=None, fine_tune_steps=0):
        """Dead features removed at no error cost (40% of parameters kept); Li et al.: 36% removed."""
        kept = 40.0 if method == "implicit" else 64.0
        return {"final": {"test_err_before": 8.0, "test_err_after": 8.0 + 0.3 * (method == "li"), "test_err": 8.0,
                          "params_kept_pct": kept, "features_kept_pct": 70.0}, "method": method}
    monkeypatch.setattr(plans, "prune_or_load", pruned)
    ch.seen = seen
    return ch


def test_every_claim_is_judged_on_its_runs(chapter):
    verdicts = judge.claim_verdicts(chapter)
    assert sorted(verdicts) == list(range(1, 11))
    assert all(v.status == HOLDS for v in verdicts.values()), [str(v) for v in verdicts.values() if not v.holds]
    asked = [fields for call in chapter.seen for fields in call]
    assert {"optimizer": "adam", "l2": 0.0} in asked and {"optimizer": "sgd", "l2": 0.0, "wd": 1e-3} in asked
    assert {"optimizer": "adam", "l2": 1e-3, "clutter": 1.0} in asked  # the hardest task at section5_l2 (smoke: 1e-3)
    assert {"model": "vgg16", "width": 0.5, "image_size": 32, "optimizer": "adam", "l2": 1e-3} in asked


def test_missing_runs_make_a_claim_not_tested_with_the_reason(tmp_path):
    verdicts = judge.claim_verdicts(Chapter(profile="smoke", dataset="synthetic",
                                            execution=Execution(store=str(tmp_path))))
    assert verdicts[1].status == NOT_TESTED and "not in the store" in verdicts[1].reason
    assert verdicts[7].status == HOLDS  # a simulation: needs no stored run


def test_scorecard_names_the_chapter_of_each_claim(chapter):
    card = judge.scorecard(chapter)
    assert list(card["claim"]) == list(range(1, 11)) and card.set_index("claim").loc[4, "chapter"] == 5
    assert card.set_index("claim").loc[10, "chapter"] == 9


def test_chapter_files_are_the_chapter_notebooks():
    from sparsity_lib.book import ROOT
    files = plans.chapter_files()
    assert all((ROOT / "notebooks" / name).is_file() and name.startswith(f"{number:02d}_")
               for number, name in files.items())
    assert set(plans.CHAPTER_OF_CLAIM.values()) <= set(files)


def test_training_the_book_asks_every_seed_of_the_verdict_runs_and_seed_0_of_the_illustrations(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(Chapter, "runs", lambda self, variants, progress=True: asked.append((self.seed_list, variants)))
    ch = Chapter(profile="cpu", dataset="synthetic", execution=Execution(store=str(tmp_path)))
    plans.train_book_runs(ch)
    (verdict_seeds, verdict_runs), (extra_seeds, extra_runs) = asked
    assert verdict_seeds == [0, 1, 2] and verdict_runs == plans.all_variants(ch) and len(verdict_runs) == 22
    assert extra_seeds == [0] and extra_runs == plans.extra_variants(ch) and len(extra_runs) == 8
    judged = {config_hash(ch.config(**fields)) for fields in verdict_runs}
    assert not judged & {config_hash(ch.config(**fields)) for fields in extra_runs}


def test_a_claim_is_judged_when_its_runs_are_stored_though_another_claims_are_missing(chapter, monkeypatch):
    from sparsity_lib import MissingRuns
    judged_only_adam = chapter.stored_runs

    def adam_only(variants):
        if any(fields["optimizer"] != "adam" for fields in variants):
            raise MissingRuns("1 of 2 runs not in the store (first: optimizer sgd, seed 1)")
        return judged_only_adam(variants)
    monkeypatch.setattr(chapter, "stored_runs", adam_only)
    verdicts = judge.claim_verdicts(chapter)
    assert verdicts[1].status == HOLDS
    assert verdicts[2].status == NOT_TESTED and "optimizer sgd" in verdicts[2].reason
    assert verdicts[3].status == NOT_TESTED


def test_scorecard_by_profile_has_one_verdict_column_per_profile(tmp_path, monkeypatch):
    """Runs stored at `smoke` only: every claim judged there, each one needing runs 'not tested' at
    `cpu`, and `verdict_changes` compares only claims judged at both."""
    from sparsity_lib.study import chapter as chapter_module

    def stored_runs(self, variants):
        if self.profile != "smoke":
            raise chapter_module.MissingRuns(f"run(s) not in the store at {self.profile}")
        return [paper_like(self.config(seed=s, **fields)) for fields in variants for s in range(3)]
    monkeypatch.setattr(chapter_module.Chapter, "stored_runs", stored_runs)
    monkeypatch.setattr(plans, "prune_or_load", lambda config, method, amount=None, execution=None, **_: {
        "final": {"test_err_before": 8.0, "test_err_after": 8.0 + 0.3 * (method == "li"), "test_err": 8.0,
                  "params_kept_pct": 40.0 if method == "implicit" else 64.0, "features_kept_pct": 70.0}})
    base = Chapter(profile="smoke", dataset="synthetic", execution=Execution(store=str(tmp_path)))
    frame = judge.scorecard_by_profile(base, ("smoke", "cpu"))
    assert list(frame.columns) == ["claim", "statement", "chapter", "smoke", "why (smoke)", "cpu", "why (cpu)"]
    assert (frame["smoke"] == HOLDS).all()
    card = frame.set_index("claim")
    assert card.loc[1, "cpu"] == NOT_TESTED and "not in the store at cpu" in card.loc[1, "why (cpu)"]
    assert card.loc[7, "cpu"] == HOLDS  # a simulation, judged at every profile
    assert judge.verdict_changes(frame, "smoke", "cpu") == []
    flipped = frame.assign(cpu=frame["smoke"].where(frame["claim"] != 7, "fails"))
    assert judge.verdict_changes(flipped, "smoke", "cpu") == [7]
