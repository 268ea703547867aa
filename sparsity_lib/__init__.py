"""sparsity_lib: the helper library behind the implicit filter sparsity book.

Subpackages follow the data path, each importing only those before it (tests/test_imports.py):
nets (models, sparsity measures, penalties, optimizers) and data (datasets, loaders); runs (configs and
profiles, the store, training, where missing runs train); pruning; study (chapters, run plans, claim
criteria, verdicts); report (tables, frames, figures, page Markdown, widgets, the paper's tables); then
the entry points on top: `environment` (the one reader of the SPARSITY_* variables), book and cli.
`startup`, `validation` and `folders` are leaves every layer may use.
Public names are stable: notebooks and tests import them from here.
"""
from . import startup  # noqa: F401 -- first: Ctrl-C while `python -m sparsity_lib` imports
from .data.datasets import DATASETS, load_dataset, resolve_dataset
from .data.images import DatasetError, ImageData
from .data.loaders import GpuLoader, make_loader
from .environment import execution_from_environment, open_chapter
from .folders import resolve_data_root, resolve_store
from .nets.models import VGG, BasicNet, conv_bn_layers, conv_parameter_count, feature_count, make_model, vgg
from .nets.optim import DEFAULT_LR, OPTIMIZERS, make_optimizer, simulate_weight
from .nets.regularizers import explicit_penalty, filter_norms, l1l2_penalty, layer_l1l2, slimming_penalty
from .nets.sparsity import (
    activation_sparsity,
    feature_universality,
    gamma_masks,
    gamma_sparsity,
    total_percent,
    zero_inactive,
)
from .pruning.costs import fold_bn, latency, layer_costs
from .pruning.finetune import fine_tune
from .pruning.runner import prune_or_load
from .pruning.surgery import PruneReport, prune_inactive
from .pruning.zeroing import zeroed_test_errors
from .report.frames import (
    gamma_threshold_frame,
    layer_frame,
    mean_over_seeds,
    runs_frame,
    snapshot_frame,
    trajectory_frame,
    universality_frame,
)
from .runs.build import load_model, load_splits
from .runs.cluster import SweepFailed, run_sweep
from .runs.config import PROFILES, Profile, RunConfig, config_hash, get_profile, make_config, width_variant
from .runs.dispatch import run_or_load_all
from .runs.execution import Execution
from .runs.fused.groups import can_fuse
from .runs.fused.trainer import run_or_load_group, train_group
from .runs.loop import TrainingDiverged
from .runs.metrics import evaluate
from .runs.runner import resolve_config, run_or_load
from .runs.store import RunStore
from .runs.training import train
from .study.chapter import Chapter, MissingRuns

__all__ = ["activation_sparsity", "BasicNet", "can_fuse", "Chapter", "config_hash", "conv_bn_layers",
           "conv_parameter_count", "DatasetError", "DATASETS", "DEFAULT_LR", "evaluate", "Execution",
           "execution_from_environment", "explicit_penalty", "feature_count", "feature_universality", "filter_norms",
           "fine_tune", "fold_bn", "gamma_masks", "gamma_sparsity", "gamma_threshold_frame", "get_profile",
           "GpuLoader", "ImageData", "l1l2_penalty", "latency", "layer_costs", "layer_frame", "layer_l1l2",
           "load_dataset", "load_model", "load_splits", "make_config", "make_loader", "make_model", "make_optimizer",
           "mean_over_seeds", "MissingRuns", "open_chapter", "OPTIMIZERS", "Profile", "PROFILES", "prune_inactive",
           "prune_or_load", "PruneReport", "resolve_config", "resolve_data_root", "resolve_dataset", "resolve_store",
           "run_or_load", "run_or_load_all", "run_or_load_group", "run_sweep", "RunConfig", "runs_frame", "RunStore",
           "simulate_weight", "slimming_penalty", "snapshot_frame", "SweepFailed", "total_percent", "train",
           "train_group", "TrainingDiverged", "trajectory_frame", "universality_frame", "VGG", "vgg", "width_variant",
           "zero_inactive", "zeroed_test_errors"]
