"""Tests of sparsity_lib.report.tables: the paper's tables next to ours, one row per setting."""
import math

import pandas as pd
import pytest

from sparsity_lib.nets import models, optim
from sparsity_lib.report import tables


def record_with(optimizer, l2, wd, seed, sparsity, err):
    config = {"optimizer": optimizer, "l2": l2, "wd": wd, "seed": seed}
    return {"config": config, "final": {"sparsity_gamma": sparsity, "test_err": err}}


def test_table1_puts_the_papers_row_beside_our_seed_mean_and_std():
    records = [record_with("adam", 1e-4, 0.0, 0, 20.0, 10.0), record_with("adam", 1e-4, 0.0, 1, 24.0, 12.0),
               record_with("sgd", 0.0, 1e-3, 0, 5.0, 30.0), record_with("rmsprop", 3e-7, 0.0, 0, 1.0, 50.0)]
    table = tables.table1(records, "synthetic")
    assert list(table.index) == ["Adam L2 1e-4", "SGD WD 1e-3", "RMSProp L2 3e-7"]
    assert list(table.columns) == ["%γ paper", "%γ ours", "err paper", "err ours", "seeds"]
    adam = table.loc["Adam L2 1e-4"]
    assert adam["%γ ours"] == "22.0±2.8" and adam["err ours"] == "11.0±1.4" and adam["seeds"] == 2
    assert adam["%γ paper"] == 70.0 and adam["err paper"] == 10.5  # TABLES.md, BasicNet on CIFAR-10
    assert table.loc["SGD WD 1e-3", "%γ ours"] == "5.0"  # one seed: no spread shown
    assert math.isnan(table.loc["RMSProp L2 3e-7", "%γ paper"])  # no such row in the paper


def test_table1_compares_cifar100_runs_with_the_papers_cifar100_column():
    records = [record_with("adam", 1e-4, 0.0, 0, 20.0, 40.0)]
    c10 = tables.table1(records, "cifar10").loc["Adam L2 1e-4", "%γ paper"]
    c100 = tables.table1(records, "cifar100").loc["Adam L2 1e-4", "%γ paper"]
    assert c10 != c100


def test_adagrad_horizon_counts_the_steps_a_silent_gamma_needs_per_layer():
    found = {"lr": 0.01, "l2": 0.02, "layers": {"C1": {"gamma": [0.5, -0.2], "state": [4.0, 16.0]},
                                                "C2": {"gamma": [0.0005], "state": [1.0]}}}
    table = tables.adagrad_horizon(found)
    assert list(table.index) == ["C1", "C2"] and table.loc["C1", "features"] == 2
    assert table.loc["C1", "min |γ|"] == 0.2 and table.loc["C1", "median √G"] == 3.0
    # |γ| 0.2 with sqrt(G) 4 shrinks by 5e-5 per step: ln(200)/5e-5 ~ 106,000 steps; 0.5 with 2 needs ~62,000
    assert 6.1e4 < table.loc["C1", "Adagrad steps"] < 6.3e4
    assert table.loc["C1", "Adam steps"] == 20  # ceil((0.2 - 1e-3) / 0.01)
    assert table.loc["C2", "Adagrad steps"] == 0.0 and table.loc["C2", "Adam steps"] == 0.0


def test_basicnet_layers_counts_the_papers_network_and_ours():
    table = models.basicnet_layers(width=0.25, first_width=32)
    assert list(table.index) == [f"C{i}" for i in range(1, 8)]
    assert table["conv weights"].sum() == 4_649_664 and table["features"].sum() == 1856  # Sec. 2.1
    assert table.loc["C1", "ours"] == 32 and table.loc["C7", "ours"] == 128 and table.loc["C1", "kernel"] == "5x5"


def test_l2_vs_wd_example_and_torch_adamw_follow_their_update_rules():
    import torch
    table = optim.l2_vs_wd_example(1e-4, steps=(1, 100, 1000), lr=1e-3)
    assert table.loc[1000, "Adam + WD"] == pytest.approx((1 - 1e-4) ** 1000)
    assert table.loc[1000, "Adam + L2"] < 0.2  # about lr per step: 1 - 1000 * 1e-3, Sec. 3
    theta = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    adamw = torch.optim.AdamW([theta], lr=1e-3, weight_decay=1e-4)
    for _ in range(1000):
        theta.grad = torch.zeros_like(theta)
        adamw.step()
    assert theta.item() == pytest.approx(table.loc[1000, "AdamW"], rel=1e-12)


def layered(seed, err, zeroed, dead_gamma, dead_act, gammas, betas):
    record = record_with("adam", 1e-3, 0.0, seed, 100.0 * dead_gamma / len(gammas), err)
    record["final"].update(test_err_zeroed=zeroed, sparsity_act=100.0 * dead_act / len(gammas),
                           layers=[{"layer": "C1", "features": len(gammas), "inactive_gamma": dead_gamma,
                                    "inactive_act": dead_act}])
    record["bn"] = {"C1": {"gamma": gammas, "beta": betas}}
    return record


def test_dead_by_layer_and_zeroing_table_count_what_the_records_hold():
    one = layered(0, 20.0, 20.5, 2, 1, [0.0, 1e-4, 0.5, 0.7], [0.3, 0.0, 0.1, 0.1])
    two = layered(1, 22.0, 21.0, 2, 2, [0.0, 1e-4, 0.5, 0.7], [0.0, 0.0, 0.1, 0.1])
    per_layer = tables.dead_by_layer(one)
    assert per_layer.loc["C1"].to_dict() == {"features": 4, "dead by γ": 2, "dead by act.": 1, "γ-dead, β > 0": 1}
    table = tables.zeroing_table([one, two])
    assert list(table.index) == ["Adam L2 1e-3"]
    assert table.loc["Adam L2 1e-3", "max |change|"] == pytest.approx(1.0)
    assert table.loc["Adam L2 1e-3", "err zeroed"] == "20.8±0.4"


def test_threshold_table_has_a_column_per_threshold_and_the_spread():
    frame = pd.DataFrame({"setting": ["b", "b", "a", "a"], "threshold": [1e-3, 1e-2, 1e-3, 1e-2],
                          "percent": [10.0, 14.0, 0.0, 0.0]})
    table = tables.threshold_table(frame)
    assert list(table.index) == ["b", "a"] and list(table.columns) == ["< 0.001", "< 0.01", "spread"]
    assert table.loc["b", "spread"] == 4.0 and table.loc["a", "spread"] == 0.0
