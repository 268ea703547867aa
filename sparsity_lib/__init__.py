"""sparsity_lib: the helper library behind the implicit filter sparsity book.

Public names are stable: notebooks and tests import them from here.
"""
from .cluster import SweepFailed, run_sweep, sweep_records
from .data import DATASETS, DatasetError, GpuLoader, ImageData, load_dataset, make_loader, resolve_dataset
from .experiments import (PROFILES, Chapter, Profile, RunConfig, RunStore, config_hash, get_profile, layer_frame,
                          make_config, mean_over_seeds, resolve_config, resolve_data_root, resolve_store,
                          run_or_load, runs_frame, width_variant)
from .fused import can_fuse, run_or_load_group, train_group
from .models import BasicNet, VGG, conv_bn_layers, conv_parameter_count, feature_count, make_model, vgg
from .optim import DEFAULT_LR, OPTIMIZERS, make_optimizer, simulate_weight
from .prune import PruneReport, fine_tune, fold_bn, latency, layer_costs, prune_inactive, prune_or_load
from .regularizers import explicit_penalty, l1l2_penalty, slimming_penalty
from .sparsity import (activation_sparsity, feature_universality, gamma_masks, gamma_sparsity, total_percent,
                       zero_inactive)
from .train import TrainingDiverged, evaluate, load_model, train

__all__ = [name for name in dir() if not name.startswith("_")]
