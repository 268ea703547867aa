"""Pruning stored runs by a method (paper Sec. 5.2, Tables 7, 9, 10): the chapters' one call.

`prune_or_load(config, method)` trains or loads the run of `config`, selects features by `method`
(`method_masks`), removes them (`surgery.prune_with_report`), optionally fine-tunes, and stores the
pruned record, so a re-run only loads.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data.loaders import make_loader
from ..runs.build import load_model, load_splits, pick_device
from ..runs.execution import Execution
from ..runs.metrics import evaluate
from ..runs.runner import run_or_load
from ..runs.store import RunStore
from ..validation import check_choice
from .criteria import l1l2_masks, li_masks, slimming_masks
from .finetune import fine_tune
from .surgery import PruneReport, dead_masks, prune_inactive, prune_with_report

__all__ = ["dense_and_pruned", "method_masks", "METHODS", "prune_or_load", "stored_model"]


METHODS = ("implicit", "slimming", "li", "l1l2")


def method_masks(model: nn.Module, method: str, amount=None) -> tuple[dict[str, torch.Tensor], str]:
    """(masks, removal) of a pruning method of METHODS applied to a trained model.

    implicit: gamma-dead (|gamma| < amount, default 1e-3), removal 'gamma'; slimming: global
    smallest-|gamma| fraction `amount` (default 0.5), removal 'gamma'; li: per-layer fractions
    `amount` (default LI_VGG16_A), removal 'filter'; l1l2: filters with norm < amount (default
    1e-2) times the layer's largest, removal 'filter'.
    """
    check_choice("method", method, METHODS)
    if method == "implicit":
        return dead_masks(model, "gamma", amount), "gamma"
    if method == "slimming":
        return slimming_masks(model, 0.5 if amount is None else amount), "gamma"
    if method == "li":
        return li_masks(model, amount), "filter"
    return (l1l2_masks(model) if amount is None else l1l2_masks(model, amount)), "filter"  # method 'l1l2'


def _amount_tag(amount) -> str:
    if amount is None:
        return "default"
    if isinstance(amount, dict):
        return "-".join(f"{k}{v:g}" for k, v in sorted(amount.items()))
    return f"{amount:g}"


def prune_or_load(config, method: str = "implicit", amount=None, execution: Execution = Execution(), *,
                  fine_tune_steps: int = 0) -> dict:
    """The record of `config` trained (or loaded) with `run_or_load`, pruned by `method`, fine-tuned
    for `fine_tune_steps`: the chapters' one call for Sec. 5.2 (stored, so a re-run only loads).

    `method` picks the features (`method_masks`), whatever regularizer trained `config`: 'implicit'
    removes the features with |gamma| < `amount` (default 1e-3, the paper's rule), so applied to a
    Network Slimming run it removes only what slimming drove below that threshold; 'slimming' removes
    the globally smallest `amount` fraction of |gamma|. Only the record is stored (costs, errors,
    history), not the pruned weights: `surgery.prune_with_report` rebuilds them from the stored run.

    Pruned records live in `<store>/pruned/<method>-<amount>-ft<steps>/<config hash>.json` (a RunStore of
    kind 'pruned': checked and content-hashed like run records, without weights) with
    `final` = the `PruneReport` summary + 'test_err' (after fine-tuning), 'features_kept_pct', and
    `layers` = the per-layer cost rows.
    """
    base_store = execution.run_store
    pruned_store = RunStore(Path(base_store.root) / "pruned" / f"{method}-{_amount_tag(amount)}-ft{fine_tune_steps}",
                            kind="pruned")
    base = run_or_load(config, execution)

    def prune_and_tune(config, *, data_root, device, checkpoint_path, weights_path, progress):
        dev = pick_device(device)
        model = load_model(base, base_store.weights_file(base), device=str(dev))
        _, test_data = load_splits(config, data_root)
        test_loader = make_loader(test_data, 500, train=False, device=dev)
        masks, removal = method_masks(model, method, amount)
        pruned, report = prune_with_report(model, masks, removal, criterion=method, test_loader=test_loader)
        history = fine_tune(pruned, config, fine_tune_steps, data_root=data_root, device=device)
        _, test_err = evaluate(pruned, test_loader)
        final = {**report.summary(), "test_err": test_err, "base_test_err": base["final"]["test_err"]}
        return {"config": config.to_dict(), "config_hash": base["config_hash"], "method": method,
                "amount": amount, "fine_tune_steps": fine_tune_steps, "final": final,
                "layers": report.layers.to_dict("records"), "history": history,
                "provenance": {**base["provenance"], "pruned_on": str(dev)}}

    return run_or_load(config, execution.replace(store=pruned_store, fused="off", speed=(), train_fn=prune_and_tune))


def stored_model(record: dict, store=None, device: str = "cpu") -> nn.Module:
    """The trained network of a stored run record (`store`: a RunStore, a folder, or None for results/)."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    return load_model(record, store.weights_file(record), device=device)


def dense_and_pruned(record: dict, store=None, borders: str = "fold") -> tuple[nn.Module, nn.Module, PruneReport]:
    """(trained network, the same with its dead features removed, the `PruneReport`) of a stored run:
    the paper's implicit pruning (|gamma| < 1e-3, Sec. 5.2), on the CPU, costs counted at the run's
    image size. No test set is evaluated (`prune_or_load` records the errors)."""
    dense = stored_model(record, store)
    side = record["provenance"]["image_size"]
    pruned, report = prune_inactive(dense, input_shape=(1, 3, side, side), borders=borders)
    return dense, pruned, report
