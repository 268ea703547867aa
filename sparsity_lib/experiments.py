"""Run configurations, size profiles and the run store.

`RunConfig()` is the paper's default setting (BasicNet, Adam, L2 1e-4, batch 40, 250 + 75 epochs,
Sec. 2.1 / 5). A `Profile` scales a config down for tests (`smoke`) or a laptop (`cpu`), or keeps
it (`paper`). `run_or_load(config)` trains a config once and afterwards loads its stored record.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from .models import ACTIVATIONS, HEADS, MODELS, WIDTH_VARIANTS, layer_names
from .optim import OPTIMIZERS

DATASET_CHOICES = ("auto", "cifar10", "cifar100", "tinyimagenet", "imagenet", "synthetic")
CACHE_NAME = "implicit-sparsity-book"  # the per-user cache folder used outside a checkout
RECORD_KEYS = ("config", "config_hash", "final", "history", "provenance")
# Headline numbers of a record's `final`: each must be a finite number where present (test_err always is).
HEADLINE_METRICS = ("train_loss", "train_err", "test_loss", "test_err", "sparsity_gamma", "sparsity_act")
STALE_TEMPORARY_S = 3600.0  # a write's temporary file older than this was left by a killed process


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run; its hash names the run in the store.

    Schedule fields are in epochs *at the reference batch size* (`ref_batch_size`, 40): a run at
    another batch size does the same number of iterations (the paper's iteration matching).
    """
    dataset: str = "cifar10"
    image_size: int | None = None          # None: the dataset's native size
    train_subset: int | None = None        # first N training images (None: all)
    test_subset: int | None = None
    clutter: float = 0.0                   # synthetic only: 0 clean background .. 1 cluttered
    num_classes: int | None = None         # synthetic only (None: 10)
    train_stream: bool = False             # synthetic only: fresh training images every epoch
    model: str = "basicnet"
    width: float = 1.0                     # scales C2..C7 of BasicNet / every VGG layer
    first_width: int = 64                  # BasicNet C1 features
    activation: str = "relu"
    negative_slope: float = 0.01
    bn_weight_init: float = 1.0
    bn_bias_init: float = 0.0
    optimizer: str = "adam"
    lr: float | None = None                # None: the optimizer's paper default
    l2: float = 1e-4
    wd: float = 0.0
    gamma_lr_scale: float = 1.0
    beta_lr_scale: float = 1.0
    slimming_l1: float = 0.0               # Network Slimming: L1 on BN gamma (its `s`); 0 = off
    l1l2: float = 0.0                      # l1/l2 pseudo-norm filter regularizer strength; 0 = off
    batch_size: int = 40
    ref_batch_size: int = 40
    epochs: float = 325.0
    lr_drops: tuple[float, ...] = (250.0,)
    seed: int = 0
    snapshot_layers: tuple[str, ...] = ("C5", "C6", "C7")
    snapshot_count: int = 6                # BN gamma/beta snapshots spread over training

    def __post_init__(self):
        normalize_numbers(self)
        validate(self)

    def replace(self, **changes) -> "RunConfig":
        """A copy with `changes` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RunConfig field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)  # __post_init__ turns JSON lists back into tuples

    @property
    def head(self) -> str:
        return {"tinyimagenet": "tinyimagenet", "imagenet": "imagenet"}.get(self.dataset, "cifar")

    def label(self) -> str:
        """A short human-readable name, e.g. 'adam L2 1e-04 b40'."""
        reg = f"WD {self.wd:.0e}" if self.wd else f"L2 {self.l2:.0e}" if self.l2 else "no reg"
        return f"{self.optimizer} {reg} b{self.batch_size}"


# The fields annotated float (or float | None), read off the class so a new one cannot be forgotten.
FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.type.split(" ")[0] == "float")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite int or float (not a bool, a string, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def normalize_numbers(config: RunConfig) -> None:
    """Store float fields as floats (l2=0 and l2=0.0 must hash the same) and sequences as tuples.

    Values of the wrong type are left as they are, for `validate` to reject with a clear message.
    """
    for name in FLOAT_FIELDS:
        value = getattr(config, name)
        if _is_int(value):
            object.__setattr__(config, name, float(value))
    if isinstance(config.lr_drops, (list, tuple)) and all(_is_number(d) for d in config.lr_drops):
        object.__setattr__(config, "lr_drops", tuple(float(d) for d in config.lr_drops))
    if isinstance(config.snapshot_layers, list):
        object.__setattr__(config, "snapshot_layers", tuple(config.snapshot_layers))


def _fail(field_name, value, allowed) -> None:
    raise ValueError(f"RunConfig.{field_name}={value!r} is invalid; allowed: {allowed}")


def validate(config: RunConfig) -> None:
    """Reject bad values with a message naming the field, the value and what is allowed.

    Types are checked first (an int field takes only ints, not 1.5, '1' or True; a float field takes
    ints and floats, not strings), and every number must be finite: NaN and infinity are rejected.
    """
    choices = {"dataset": DATASET_CHOICES, "model": MODELS, "activation": ACTIVATIONS,
               "optimizer": OPTIMIZERS}
    for name, allowed in choices.items():
        if not isinstance(getattr(config, name), str) or getattr(config, name) not in allowed:
            _fail(name, getattr(config, name), ", ".join(allowed))
    positive_ints = ("batch_size", "ref_batch_size", "first_width")
    for name in positive_ints:
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            _fail(name, value, "an integer >= 1")
    for name in ("seed", "snapshot_count"):
        if not _is_int(getattr(config, name)) or getattr(config, name) < 0:
            _fail(name, getattr(config, name), "an integer >= 0")
    for name in ("image_size", "train_subset", "test_subset", "num_classes"):
        value = getattr(config, name)
        if value is not None and (not _is_int(value) or value < 1):
            _fail(name, value, "None or an integer >= 1")
    for name in FLOAT_FIELDS:
        value = getattr(config, name)
        if not (_is_number(value) or (value is None and name == "lr")):
            _fail(name, value, "a finite number" + (" or None (paper default)" if name == "lr" else ""))
    for name in ("l2", "wd", "slimming_l1", "l1l2"):
        if not 0 <= getattr(config, name) < 1:
            _fail(name, getattr(config, name), "a number in [0, 1)")
    for name in ("width", "epochs", "gamma_lr_scale", "beta_lr_scale"):
        if not getattr(config, name) > 0:
            _fail(name, getattr(config, name), "a finite number > 0")
    if config.lr is not None and not config.lr > 0:
        _fail("lr", config.lr, "None (paper default) or a finite number > 0")
    if not 0 <= config.clutter <= 1:
        _fail("clutter", config.clutter, "a number in [0, 1]")
    if not isinstance(config.train_stream, bool):
        _fail("train_stream", config.train_stream, "True or False")
    if not isinstance(config.lr_drops, tuple) or any(not _is_number(drop) or not 0 < drop < config.epochs
                                                     for drop in config.lr_drops):
        _fail("lr_drops", config.lr_drops, f"epochs strictly between 0 and epochs={config.epochs}")
    layers = layer_names(config.model)
    if not isinstance(config.snapshot_layers, tuple) or any(layer not in layers for layer in config.snapshot_layers):
        _fail("snapshot_layers", config.snapshot_layers, f"layers of {config.model}: {', '.join(layers)}")


def config_hash(config: RunConfig) -> str:
    """Stable 16-hex-digit name of a config: sha256 of the canonical JSON of its non-default fields.

    Hashing only what differs from the paper defaults means a field added later (with a default)
    leaves every stored run's name unchanged.
    """
    changed = {f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)
               if getattr(config, f.name) != f.default}
    text = json.dumps(changed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def width_variant(name: str) -> dict:
    """RunConfig fields for a Table 6 width variant name ('64-1x', '64-0.5x', '32-0.25x')."""
    if name not in WIDTH_VARIANTS:
        raise ValueError(f"width variant {name!r} unknown; allowed: {', '.join(WIDTH_VARIANTS)}")
    first_width, width = WIDTH_VARIANTS[name]
    return {"first_width": first_width, "width": width}


# ----------------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """How to size a paper config for a budget. `paper` changes nothing.

    epochs: total epochs at the reference batch (LR drops keep their relative position);
    width_scale / first_width_scale multiply the model width (so the three Table 6 variants stay
    in the same ratios); image_size and the subsets apply to in-memory datasets. `synthetic` holds
    RunConfig fields (e.g. num_classes, clutter, train_stream) that `make_config` uses as defaults
    for the synthetic dataset: they define the profile's embedded task, and a value a chapter or
    the command line gives explicitly wins (chapter 5's clean end sets clutter=0).
    """
    name: str
    description: str
    epochs: float | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None
    width_scale: float = 1.0
    first_width_scale: float = 1.0
    seeds: int = 3
    default_dataset: str = "cifar10"
    synthetic: dict = field(default_factory=dict)
    section5_l2: float = 1e-4  # L2 of the Sec. 5 experiments (batch, width, variants): the paper's default
    vgg: dict = field(default_factory=dict)  # RunConfig fields of the VGG runs (Sec. 5.2), before scaling
    fine_tune_steps: int = 20_000  # steps of fine-tuning after explicit pruning (Li et al., Network Slimming)

    def apply(self, config: RunConfig) -> RunConfig:
        """`config` scaled to this profile."""
        changes: dict = {}
        if self.epochs is not None:
            ratio = self.epochs / config.epochs
            changes["epochs"] = self.epochs
            changes["lr_drops"] = tuple(round(d * ratio, 3) for d in config.lr_drops)
        if config.dataset not in ("imagenet",):
            for name in ("train_subset", "test_subset", "image_size"):
                if getattr(self, name) is not None and getattr(config, name) is None:
                    changes[name] = getattr(self, name)
        if self.width_scale != 1.0:
            changes["width"] = config.width * self.width_scale
        if self.first_width_scale != 1.0:
            changes["first_width"] = max(1, round(config.first_width * self.first_width_scale))
        return config.replace(**changes)

    def seed_list(self, seeds: int | None = None) -> list[int]:
        return list(range(self.seeds if seeds is None else seeds))


# The embedded task of `cpu` (and `smoke`): 20 shape classes on a half-cluttered background, a fresh
# stream of training images every epoch (BENCHMARKS.md, calibration: Adam L2 1e-4 ends at 19% test error).
HARD_SYNTHETIC = {"num_classes": 20, "clutter": 0.5, "train_stream": True}

PROFILES = {
    "smoke": Profile("smoke", "seconds per run: tests and CI only; numbers mean nothing",
                     epochs=2, train_subset=400, test_subset=200, image_size=16, width_scale=0.0625,
                     first_width_scale=0.125, seeds=1, default_dataset="synthetic", synthetic=HARD_SYNTHETIC,
                     section5_l2=1e-3, vgg={"width": 0.5, "image_size": 32}, fine_tune_steps=5),
    "cpu": Profile("cpu", "~9 minutes per run on one CPU core: synthetic 16x16, 20 classes, half-cluttered, "
                   "20k fresh training images per epoch, 14,000 iterations at batch 40, BasicNet 32-0.25x, 3 seeds",
                   epochs=28, train_subset=20000, test_subset=5000, image_size=16, width_scale=0.25,
                   first_width_scale=0.5, seeds=3, default_dataset="synthetic", synthetic=HARD_SYNTHETIC,
                   section5_l2=1e-3, vgg={"width": 0.5, "image_size": 32}, fine_tune_steps=300),
    "gpu": Profile("gpu", "a Table 1 slice in minutes on one large GPU, fused: BasicNet 64-1x (the paper's) at "
                   "32x32 on the synthetic task of `cpu`, 10k fresh training images per epoch, 3,000 iterations "
                   "at batch 40", epochs=12, train_subset=10000, test_subset=2000, image_size=32, seeds=1,
                   default_dataset="synthetic", synthetic=HARD_SYNTHETIC, section5_l2=1e-3),
    "paper": Profile("paper", "the full protocol of the paper (Sec. 2.1): 325 epochs, batch 40, 3 seeds",
                     seeds=3, default_dataset="cifar10"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is unknown; allowed: {', '.join(PROFILES)}")
    return PROFILES[name]


def make_config(profile: str = "paper", **fields) -> RunConfig:
    """`RunConfig(**fields)` scaled by the named profile: the one way chapters and the CLI build runs.

    For the synthetic dataset the profile's `synthetic` fields fill in what `fields` leaves out.
    """
    settings = get_profile(profile)
    if fields.get("dataset", RunConfig.dataset) == "synthetic":
        fields = {**settings.synthetic, **fields}
    return settings.apply(RunConfig(**fields))


# ---------------------------------------------------------------------------------- run store
def checkout_root() -> Path | None:
    """The repository folder when the package runs from a checkout (a clone, `pip install -e .`),
    else None (a wheel installed into site-packages)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _folder(explicit, variable: str, in_checkout: str) -> Path:
    """`explicit`, else $`variable`, else the checkout's `in_checkout`, else the per-user cache's.

    Resolved at each use, not at import, so the working folder (a notebook's, Colab's) never matters.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(variable):
        return Path(os.environ[variable])
    root = checkout_root()
    if root is not None:
        return root / in_checkout
    return platformdirs.user_cache_path(CACHE_NAME) / in_checkout


def resolve_store(store=None) -> Path:
    """The run store folder: `store`, else $SPARSITY_STORE, else the checkout's results/ (the
    committed runs), else results/ in the per-user cache folder."""
    return _folder(store, "SPARSITY_STORE", "results")


def resolve_data_root(data_root=None) -> Path:
    """The datasets folder: `data_root`, else $SPARSITY_DATA, else the checkout's data/, else data/
    in the per-user cache folder."""
    return _folder(data_root, "SPARSITY_DATA", "data")


def temporary_path(path: Path) -> Path:
    """A fresh name beside `path` for a write-then-rename, unique across threads, processes and
    hosts: a pid is not (containers and cluster nodes sharing one store reuse pids)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def is_temporary(path: Path) -> bool:
    """Whether `path` is named like a `temporary_path` (`.<name>.<32 hex digits>.tmp`)."""
    return re.fullmatch(r"\..+\.[0-9a-f]{32}\.tmp", path.name) is not None


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes (the store's weights checksum)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_record(record, key: str) -> None:
    """Raise ValueError saying why `record` (parsed JSON) cannot be served as run `key`.

    A servable record is a dict with every RECORD_KEYS field of the right type, whose stored config
    is valid and hashes to `key` (an edited config describes another run), and whose headline numbers
    (HEADLINE_METRICS, test_err required) are finite.
    """
    if not isinstance(record, dict):
        raise ValueError(f"it holds {type(record).__name__}, not a record (a JSON object)")
    missing = [name for name in RECORD_KEYS if name not in record]
    if missing:
        raise ValueError(f"field(s) missing: {', '.join(missing)}")
    for name, kind in {"config": dict, "config_hash": str, "final": dict, "history": list, "provenance": dict}.items():
        if not isinstance(record[name], kind):
            raise ValueError(f"field {name!r} is a {type(record[name]).__name__}, not a {kind.__name__}")
    if record["config_hash"] != key:
        raise ValueError(f"its config_hash field is {record['config_hash']!r}, not {key!r}")
    stored = config_hash(RunConfig.from_dict(record["config"]))
    if stored != key:
        raise ValueError(f"its config hashes to {stored}, not {key}: it describes another run")
    if "test_err" not in record["final"]:
        raise ValueError("final test_err is missing")
    for name in HEADLINE_METRICS:
        if name in record["final"] and not _is_number(record["final"][name]):
            raise ValueError(f"final {name}={record['final'][name]!r} is not a finite number")
    if "weights_sha256" in record and not isinstance(record["weights_sha256"], str):
        raise ValueError(f"weights_sha256={record['weights_sha256']!r} is not a hex digest")


def set_aside(path: Path, reason: str, what: str = "record") -> None:
    """Rename a damaged store file to `<name>.corrupt` (kept for inspection) and warn, naming it."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another reader moved it aside first
        pass
    warnings.warn(f"run store: {what} {path} is corrupt ({reason}); moved to {aside.name}, will recompute")


def atomic_write(path: Path, write) -> None:
    """`write(tmp)` fills a temporary file in the same folder, which is then renamed to `path`: readers
    never see half a file, an interrupted write never replaces a good one, and concurrent writers of
    the same path (cluster workers finishing one config) never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write failed


def atomic_write_text(path: Path, text: str) -> None:
    """`text` written to `path` atomically (see `atomic_write`) and synced to disk."""
    def write(tmp: Path) -> None:
        with open(tmp, "x") as handle:  # "x": never write into a file someone else created
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write)


@dataclass
class RunStore:
    """A folder of finished runs: `<hash>.json` (the record) and `<hash>.pt` (final weights).

    Checkpoints of unfinished runs live in `checkpoints/<hash>.pt` until the run finishes. `load`
    serves only records it can vouch for (`check_record`, and weights matching the record's
    `weights_sha256`); anything else is moved aside as `<name>.corrupt` with a warning, so the run
    is recomputed.
    """
    root: Path | str | None = None         # None: resolve_store()

    def __post_init__(self):
        self.root = resolve_store(self.root)

    def record_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / f"{key}.pt"

    def load(self, key: str) -> dict | None:
        """The stored record, or None when absent or set aside (see the class docstring).

        Records written before weights checksums existed have no `weights_sha256` field: they are
        served without a weights check (their other checks still apply).
        """
        path = self.record_path(key)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
            check_record(record, key)
        except FileNotFoundError:  # another reader moved a corrupt record aside meanwhile
            return None
        except (ValueError, TypeError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            set_aside(path, str(error))
            return None
        if "weights_sha256" in record:
            weights = self.weights_path(key)
            try:
                matches = file_sha256(weights) == record["weights_sha256"]
            except FileNotFoundError:
                matches = False
            if not matches:
                if weights.exists():
                    set_aside(weights, f"its sha256 differs from the one in {path.name}", "weights")
                set_aside(path, f"its weights {weights.name} are missing or do not match its weights_sha256")
                return None
        return record

    def check_writable(self) -> None:
        """Raise ValueError naming the folder when finished runs cannot be written to it; run before
        training, so a bad store fails at once instead of after the first epoch."""
        where = f"store={str(self.root)!r}"
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"{where} is a file, not a folder; allowed: a folder (created when missing)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = temporary_path(self.root / "write-check")
            probe.open("x").close()
            probe.unlink()
        except OSError as error:
            raise ValueError(f"{where} cannot be written ({error.strerror or error}); "
                             "allowed: a folder you can create and write to") from None

    def remove_stale_temporaries(self, max_age_s: float = STALE_TEMPORARY_S) -> list[Path]:
        """Delete the temporary files of writes killed more than `max_age_s` seconds ago (younger ones
        may belong to a write in progress); the paths removed."""
        removed = []
        for folder in (self.root, self.root / "checkpoints"):
            for path in folder.glob(".*.tmp"):
                try:
                    if is_temporary(path) and time.time() - path.stat().st_mtime > max_age_s:
                        path.unlink()
                        removed.append(path)
                except FileNotFoundError:  # another process removed it first
                    pass
        return removed

    def save(self, record: dict) -> Path:
        path = self.record_path(record["config_hash"])
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
        return path

    def records(self) -> list[dict]:
        """Every readable record in the store (corrupt ones are skipped with a warning)."""
        found = []
        for path in sorted(self.root.glob("*.json")):
            record = self.load(path.stem)
            if record is not None:
                found.append(record)
        return found


def resolve_config(config: RunConfig, data_root=None) -> tuple[RunConfig, str]:
    """Replace dataset='auto' by what is available (CIFAR-10 if found, else synthetic)."""
    if config.dataset != "auto":
        return config, "requested"
    from .data import resolve_dataset
    name, reason = resolve_dataset("auto", resolve_data_root(data_root))
    return config.replace(dataset=name), reason


def run_or_load(config: RunConfig, *, store: RunStore | str | Path | None = None, data_root=None,
                device: str = "auto", profile: str = "", progress: bool = True, fresh: bool = False,
                train_fn=None) -> dict:
    """The record of `config`: loaded from the store when present, else trained and stored.

    `fresh=True` retrains even when stored. `train_fn` replaces `train.train` (used by the fused
    trainer and by tests). A finished run is written atomically before this returns. Before training,
    the store is checked to be writable (ValueError naming it) and stale temporary files are removed.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    config, _ = resolve_config(config, data_root)
    key = config_hash(config)
    record = None if fresh else store.load(key)
    if record is not None:
        return record
    store.check_writable()
    store.remove_stale_temporaries()
    if train_fn is None:
        from .train import train as train_fn
    record = train_fn(config, data_root=data_root, device=device, checkpoint_path=store.checkpoint_path(key),
                      weights_path=store.weights_path(key), progress=progress)
    record["provenance"]["profile"] = profile
    store.save(record)
    store.checkpoint_path(key).unlink(missing_ok=True)
    return record


def runs_frame(records: list[dict]):
    """One row per record: its config fields plus the headline final metrics (for tables/plots)."""
    import pandas as pd
    rows = []
    for record in records:
        row = dict(record["config"])
        row.update({k: v for k, v in record["final"].items() if not isinstance(v, (list, dict))})
        row["config_hash"] = record["config_hash"]
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ chapter context
class MissingRuns(LookupError):
    """Runs a table or verdict needs are not in the store (and training them was not asked for)."""



@dataclass
class Chapter:
    """What a chapter notebook runs with: profile, resolved dataset, device, seeds and store.

    Built from the notebook's parameters cell; every run of the chapter goes through `runs`, so a
    re-executed chapter with new parameters trains only the configurations not yet stored.
    """
    profile: str = "cpu"
    dataset: str = "auto"
    data_root: str | None = None
    device: str = "auto"
    seeds: int | None = None
    fresh: bool = False
    store: str | None = None

    def __post_init__(self):
        self.settings = get_profile(self.profile)
        if self.dataset not in DATASET_CHOICES:
            raise ValueError(f"dataset={self.dataset!r} is unknown; allowed: {', '.join(DATASET_CHOICES)}")
        if self.seeds is not None and (not _is_int(self.seeds) or self.seeds < 1):
            raise ValueError(f"seeds={self.seeds!r} is invalid; allowed: None (the profile's) or an integer >= 1")
        probe, self.dataset_reason = resolve_config(RunConfig(dataset=self.dataset), self.data_root)
        self.dataset_used = probe.dataset
        from .train import pick_device
        self.device_used = str(pick_device(self.device))
        self.run_store = RunStore(self.store)

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
        """Records for every variant (a dict of RunConfig fields) and every seed, trained if missing."""
        from tqdm.auto import tqdm
        configs = [self.config(seed=seed, **fields) for fields in variants for seed in self.seed_list]
        stored = sum(self.run_store.record_path(config_hash(c)).exists() for c in configs)
        to_train = len(configs) if self.fresh else len(configs) - stored
        if progress and to_train:
            print(f"{stored} of {len(configs)} runs stored; training {to_train} "
                  f"(profile {self.profile}, device {self.device_used})")
        # Runs just trained by a cluster or the fused trainer are loaded, not retrained by `fresh`.
        trained_elsewhere = bool(to_train) and self._train_elsewhere(configs, progress)
        records = []
        for config in tqdm(configs, desc="runs", disable=not (progress and to_train), leave=False):
            records.append(run_or_load(config, store=self.run_store, data_root=self.data_root,
                                       device=self.device, profile=self.profile, progress=progress,
                                       fresh=self.fresh and not trained_elsewhere))
        return records

    def stored_runs(self, variants: list[dict]) -> list[dict]:
        """Like `runs`, but never trains: raises MissingRuns naming how many runs the store lacks."""
        configs = [self.config(seed=seed, **fields) for fields in variants for seed in self.seed_list]
        records = [self.run_store.load(config_hash(config)) for config in configs]
        missing = [config for config, record in zip(configs, records) if record is None]
        if missing:
            raise MissingRuns(f"{len(missing)} of {len(configs)} runs not in the store {self.run_store.root} "
                              f"(first: {missing[0].label()}, seed {missing[0].seed})")
        return records

    def _train_elsewhere(self, configs: list[RunConfig], progress: bool) -> bool:
        """Train `configs` as cluster tasks ($SPARSITY_BACKEND, e.g. `make book BACKEND=ray`), as fused
        groups ($SPARSITY_FUSED: auto = on CUDA only) or in a pool of local worker processes
        ($SPARSITY_WORKERS, e.g. `make book WORKERS=4`; auto = one per core on the CPU, 1 on a GPU);
        False when none applies (one worker, or a single run: it trains in this process)."""
        common = dict(store=self.run_store, data_root=self.data_root, device=self.device, profile=self.profile,
                      fresh=self.fresh, progress=progress)
        backend = os.environ.get("SPARSITY_BACKEND", "local")
        if backend != "local":
            from .cluster import run_sweep
            run_sweep(configs, backend=backend, **common)
            return True
        fused = os.environ.get("SPARSITY_FUSED", "auto")
        if fused == "on" or (fused == "auto" and self.device_used.startswith("cuda")):
            from .fused import run_or_load_group
            run_or_load_group(configs, fused=fused, **common)
            return True
        from .cluster import local_workers, run_sweep, workers_from_env
        workers = local_workers(workers_from_env(), self.device)
        if workers > 1 and len(configs) > 1:
            run_sweep(configs, backend="local", workers=workers, **common)
            return True
        return False

    def describe(self, records: list[dict] | None = None) -> str:
        """'profile cpu · synthetic (16x16, 20,000 train images) · cpu · 1 seed': for captions."""
        seeds = len(self.seed_list)
        data = self.dataset_used
        if records:
            first = records[0]["provenance"]
            data += f" ({first['image_size']}x{first['image_size']}, {first['train_images']:,} train images)"
            devices = sorted({r["provenance"]["device"] for r in records})
            device = "/".join(devices)
        else:
            device = self.device_used
        return f"profile {self.profile} · {data} · {device} · {seeds} seed{'s' if seeds != 1 else ''}"


def mean_over_seeds(records: list[dict], keys: list[str]) -> "pd.DataFrame":
    """`runs_frame(records)` averaged over seeds, grouped by `keys` (RunConfig field names)."""
    frame = runs_frame(records)
    numeric = frame.select_dtypes("number").columns.difference(keys + ["seed"])
    grouped = frame.groupby(keys, dropna=False, sort=False)[list(numeric)].mean().reset_index()
    return grouped.assign(seeds=frame.groupby(keys, dropna=False, sort=False).size().values)


def layer_frame(records: list[dict], keys: list[str]) -> "pd.DataFrame":
    """Long form per layer: keys + layer, features, inactive_gamma/act and % (mean over seeds)."""
    import pandas as pd
    rows = []
    for record in records:
        for layer in record["final"]["layers"]:
            row = {key: record["config"][key] for key in keys}
            row.update(layer)
            row["percent_gamma"] = 100.0 * layer["inactive_gamma"] / layer["features"]
            row["percent_act"] = 100.0 * layer["inactive_act"] / layer["features"]
            rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.groupby(keys + ["layer"], dropna=False, sort=False).mean(numeric_only=True).reset_index()
