import pytest

from sparsity_lib.report import paper


def test_table1_long_form_matches_the_paper():
    table = paper.table1()
    assert len(table) == 2 * 35
    row = table[(table.optimizer == "adam") & (table.regularizer == "L2") & (table.strength == 1e-4)
                & (table.dataset == "cifar10")].iloc[0]
    assert (row.sparsity_act, row.sparsity_gamma, row.test_err) == (71, 70, 10.5)
    wd = table[(table.optimizer == "adam") & (table.regularizer == "WD") & (table.strength == 1e-3)
               & (table.dataset == "cifar100")].iloc[0]
    assert (wd.sparsity_gamma, wd.test_err) == (81, 55.3)


def test_layerwise_and_other_tables():
    table2 = paper.table2()
    row = table2[(table2.dataset == "cifar10") & (table2.optimizer == "sgd") & (table2.strength == 1e-3)
                 & (table2.regularizer == "L2")].iloc[0]
    assert [row[f"C{i}"] for i in range(1, 8)] == [86, 61, 53, 46, 65, 4, 0]
    assert paper.table7().iloc[-2]["Li et al."] == 37
    assert list(paper.table6()["net"]) == ["64-1x", "64-0.5x", "32-0.25x"]
    assert paper.supplement_table(4).shape == (9, 8)
    assert paper.table4().sparsity_gamma.tolist() == [0, 63, 48, 26]


def test_unknown_table_names_allowed_values():
    with pytest.raises(ValueError, match="table9.*table1"):
        paper.paper_table("table9")
