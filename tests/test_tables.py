"""Tests of sparsity_lib.tables: the paper's tables next to ours, one row per setting."""
import math

from sparsity_lib import tables


def record(optimizer, l2, wd, seed, sparsity, err):
    config = {"optimizer": optimizer, "l2": l2, "wd": wd, "seed": seed}
    return {"config": config, "final": {"sparsity_gamma": sparsity, "test_err": err}}


def test_table1_puts_the_papers_row_beside_our_seed_mean_and_std():
    records = [record("adam", 1e-4, 0.0, 0, 20.0, 10.0), record("adam", 1e-4, 0.0, 1, 24.0, 12.0),
               record("sgd", 0.0, 1e-3, 0, 5.0, 30.0), record("rmsprop", 3e-7, 0.0, 0, 1.0, 50.0)]
    table = tables.table1(records, "synthetic")
    assert list(table.index) == ["Adam L2 1e-4", "SGD WD 1e-3", "RMSProp L2 3e-7"]
    assert list(table.columns) == ["%γ paper", "%γ ours", "err paper", "err ours", "seeds"]
    adam = table.loc["Adam L2 1e-4"]
    assert adam["%γ ours"] == "22.0±2.8" and adam["err ours"] == "11.0±1.4" and adam["seeds"] == 2
    assert adam["%γ paper"] == 70.0 and adam["err paper"] == 10.5  # TABLES.md, BasicNet on CIFAR-10
    assert table.loc["SGD WD 1e-3", "%γ ours"] == "5.0"  # one seed: no spread shown
    assert math.isnan(table.loc["RMSProp L2 3e-7", "%γ paper"])  # no such row in the paper


def test_table1_compares_cifar100_runs_with_the_papers_cifar100_column():
    records = [record("adam", 1e-4, 0.0, 0, 20.0, 40.0)]
    c10 = tables.table1(records, "cifar10").loc["Adam L2 1e-4", "%γ paper"]
    c100 = tables.table1(records, "cifar100").loc["Adam L2 1e-4", "%γ paper"]
    assert c10 != c100
