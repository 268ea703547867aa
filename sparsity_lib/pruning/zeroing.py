"""Test error with the dead features zeroed in place (paper Sec. 2.1, Table 2's "err" row): a stored
run's weights reloaded, every BN feature with |gamma| below a threshold set to zero, the test set
evaluated again. No retraining; the table shows how little the zeroed features carried."""
from __future__ import annotations

import pandas as pd

from ..data.loaders import make_loader
from ..nets.sparsity import (
    GAMMA_THRESHOLD,
    gamma_masks,
    zero_inactive,
)
from ..runs.build import load_model, load_splits
from ..runs.config import RunConfig
from ..runs.metrics import evaluate

__all__ = ["zeroed_test_errors"]


def zeroed_test_errors(record: dict, weights_path, thresholds=(GAMMA_THRESHOLD, 1e-2), data_root=None,
                       device: str = "cpu") -> pd.DataFrame:
    """Test error (%) of a stored run's model after zeroing its features with |gamma| < each threshold
    (Sec. 2.1: dead features can be removed without changing the output). Rows: 'as stored' then one
    per threshold; columns: features zeroed, test error. Raises ValueError when the weights are missing."""
    model = load_model(record, weights_path, device)
    _, test_data = load_splits(RunConfig.from_dict(record["config"]), data_root)
    loader = make_loader(test_data, 500, train=False)
    rows = [{"model": "as stored", "features zeroed": 0, "test error": evaluate(model, loader)[1]}]
    for threshold in thresholds:
        masks = gamma_masks(model, threshold)
        zeroed = sum(int(mask.sum()) for mask in masks.values())
        rows.append({"model": f"|γ| < {threshold:g} zeroed", "features zeroed": zeroed,
                     "test error": evaluate(zero_inactive(model, masks), loader)[1]})
    return pd.DataFrame(rows).set_index("model")
