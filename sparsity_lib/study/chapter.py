"""The chapter context: what a chapter notebook runs with (profile, dataset, seeds, and an `Execution`:
store, device, where missing runs train).

Built from a notebook's parameters cell; every run of the chapter goes through `Chapter.runs`
(train missing, load stored) or `Chapter.stored_runs` (load only, else `MissingRuns`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runs.build import pick_device
from ..runs.config import (
    DATASET_CHOICES,
    RunConfig,
    config_hash,
    get_profile,
    make_config,
)
from ..runs.dispatch import missing_count, run_or_load_all
from ..runs.execution import Execution
from ..runs.runner import resolve_config
from ..validation import is_int as _is_int

__all__ = ["Chapter", "MissingRuns"]


class MissingRuns(LookupError):
    """Runs a table or verdict needs are not in the store (and training them was not asked for)."""


@dataclass
class Chapter:
    """What a chapter notebook runs with: profile, resolved dataset, seeds, and where its runs execute.

    Built from the notebook's parameters cell (`sparsity_lib.environment.open_chapter` adds the
    environment's store and backend); every run of the chapter goes through `runs`, so a re-executed
    chapter with new parameters trains only the configurations not yet stored. `execution` is stamped
    with this chapter's profile.
    """
    profile: str = "cpu"
    dataset: str = "auto"
    seeds: int | None = None
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self):
        self.settings = get_profile(self.profile)
        if self.dataset not in DATASET_CHOICES:
            raise ValueError(f"dataset={self.dataset!r} is unknown; allowed: {', '.join(DATASET_CHOICES)}")
        if self.seeds is not None and (not _is_int(self.seeds) or self.seeds < 1):
            raise ValueError(f"seeds={self.seeds!r} is invalid; allowed: None (the profile's) or an integer >= 1")
        if not isinstance(self.execution, Execution):
            raise ValueError(f"execution={self.execution!r} is invalid; allowed: an Execution")
        self.execution = self.execution.replace(profile=self.profile)
        probe, self.dataset_reason = resolve_config(RunConfig(dataset=self.dataset), self.data_root)
        self.dataset_used = probe.dataset
        self.device_used = str(pick_device(self.device))
        self.run_store = self.execution.run_store

    @property
    def data_root(self):
        return self.execution.data_root

    @property
    def device(self) -> str:
        return self.execution.device

    @property
    def fell_back_to_synthetic(self) -> bool:
        return self.dataset == "auto" and self.dataset_used == "synthetic"

    @property
    def seed_list(self) -> list[int]:
        return self.settings.seed_list(self.seeds)

    def config(self, seed: int = 0, **fields) -> RunConfig:
        """The profile-scaled RunConfig of this chapter's dataset with `fields` changed."""
        fields.setdefault("dataset", self.dataset_used)
        return make_config(self.profile, seed=seed, **fields)

    def runs(self, variants: list[dict], progress: bool = True) -> list[dict]:
        """Records for every variant (a dict of RunConfig fields) and every seed, trained if missing
        (where `execution` says: `dispatch.run_or_load_all`)."""
        configs = [self.config(seed=seed, **fields) for fields in variants for seed in self.seed_list]
        execution = self.execution.replace(progress=progress)
        to_train = missing_count(configs, execution)
        if progress and to_train:
            print(f"{len(configs) - to_train} of {len(configs)} runs stored; training {to_train} "
                  f"(profile {self.profile}, device {self.device_used})")
        return run_or_load_all(configs, execution)

    def stored_runs(self, variants: list[dict]) -> list[dict]:
        """Like `runs`, but never trains: raises MissingRuns naming how many runs the store lacks."""
        asked = [(fields, self.config(seed=seed, **fields)) for fields in variants for seed in self.seed_list]
        records = [self.run_store.load(config_hash(config)) for _, config in asked]
        missing = [(fields, config) for (fields, config), record in zip(asked, records) if record is None]
        if missing:
            fields, config = missing[0]
            shown = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                              for key, value in fields.items())
            raise MissingRuns(f"{len(missing)} of {len(asked)} runs not in the store "
                              f"(first: {shown}, seed {config.seed})")
        return records

    def describe(self, records: list[dict] | None = None) -> str:
        """'profile cpu · synthetic (16x16, 20,000 train images) · cpu · 1 seed': for captions. With
        `records`, their image size, training images, devices and number of distinct seeds; without,
        the chapter's dataset, device and seeds."""
        seeds = len(self.seed_list)
        data = self.dataset_used
        if records:
            seeds = len({r["config"]["seed"] for r in records})
            first = records[0]["provenance"]
            data += f" ({first['image_size']}x{first['image_size']}, {first['train_images']:,} train images)"
            devices = sorted({r["provenance"]["device"] for r in records})
            device = "/".join(devices)
        else:
            device = self.device_used
        return f"profile {self.profile} · {data} · {device} · {seeds} seed{'s' if seeds != 1 else ''}"
