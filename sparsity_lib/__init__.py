"""sparsity_lib: the helper library behind the implicit filter sparsity book.

Public names are stable: notebooks and tests import them from here. Modules, from the leaves up:
startup (Ctrl-C while the package imports), validation, labels; models, data, optim; regularizers,
selection, sparsity; config; store; records, train; runner; fused_groups, fused_net, fused_optim, fused;
cluster; dispatch; chapter; costs, prune, finetune, pruned_runs; frames, claims, evidence, paper, horizon;
plots, tables, widgets; book; cli.
"""
from . import startup  # noqa: F401 -- first: Ctrl-C while `python -m sparsity_lib` imports
from .chapter import Chapter, MissingRuns
from .cluster import SweepFailed, run_sweep, sweep_records
from .config import PROFILES, Profile, RunConfig, config_hash, get_profile, make_config, width_variant
from .costs import fold_bn, latency, layer_costs
from .data import DATASETS, DatasetError, GpuLoader, ImageData, load_dataset, make_loader, resolve_dataset
from .finetune import fine_tune
from .frames import (
                     gamma_threshold_frame,
                     layer_frame,
                     mean_over_seeds,
                     runs_frame,
                     snapshot_frame,
                     trajectory_frame,
                     universality_frame,
)
from .fused import run_or_load_group, train_group
from .fused_groups import can_fuse
from .models import VGG, BasicNet, conv_bn_layers, conv_parameter_count, feature_count, make_model, vgg
from .optim import DEFAULT_LR, OPTIMIZERS, make_optimizer, simulate_weight
from .prune import PruneReport, prune_inactive
from .pruned_runs import prune_or_load
from .regularizers import explicit_penalty, filter_norms, l1l2_penalty, layer_l1l2, slimming_penalty
from .runner import resolve_config, run_or_load
from .sparsity import (
                     activation_sparsity,
                     feature_universality,
                     gamma_masks,
                     gamma_sparsity,
                     total_percent,
                     zero_inactive,
)
from .store import RunStore, resolve_data_root, resolve_store
from .train import TrainingDiverged, evaluate, load_model, load_splits, train, zeroed_test_errors

__all__ = [
    "activation_sparsity", "BasicNet", "can_fuse", "Chapter", "config_hash", "conv_bn_layers", "conv_parameter_count",
    "DatasetError", "DATASETS", "DEFAULT_LR", "evaluate", "explicit_penalty", "feature_count", "feature_universality",
    "filter_norms", "fine_tune", "fold_bn", "gamma_masks", "gamma_sparsity", "gamma_threshold_frame", "get_profile",
    "GpuLoader", "ImageData", "l1l2_penalty", "latency", "layer_costs", "layer_frame", "layer_l1l2", "load_dataset",
    "load_model", "load_splits", "make_config", "make_loader", "make_model", "make_optimizer", "mean_over_seeds",
    "MissingRuns", "OPTIMIZERS", "Profile", "PROFILES", "prune_inactive", "prune_or_load", "PruneReport",
    "resolve_config", "resolve_data_root", "resolve_dataset", "resolve_store", "run_or_load", "run_or_load_group",
    "run_sweep", "RunConfig", "runs_frame", "RunStore", "simulate_weight", "slimming_penalty", "snapshot_frame",
    "sweep_records", "SweepFailed", "total_percent", "train", "train_group", "TrainingDiverged", "trajectory_frame",
    "universality_frame", "VGG", "vgg", "width_variant", "zero_inactive", "zeroed_test_errors",
]
