import importlib

import pytest

from sparsity_lib import RunConfig


@pytest.fixture
def tiny_config():
    """A few-second synthetic run: 16x16 images, a very narrow BasicNet, 3 epochs of 5 steps."""
    return RunConfig(dataset="synthetic", image_size=16, train_subset=200, test_subset=100, width=0.0625,
                     first_width=8, epochs=3, lr_drops=(2.0,), snapshot_count=3)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped without one (`make gpu-check` runs them "
                                       "with pytest -m cuda)")


@pytest.fixture
def no_training(monkeypatch):
    """Anything that would start training or execute a chapter fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a usage error must be caught before training starts")
    for module, name in [("runs.training", "train"), ("runs.runner", "train"), ("runs.fused.trainer", "train_single"),
                         ("runs.fused.trainer", "train_group"), ("book", "execute_chapter")]:
        monkeypatch.setattr(importlib.import_module(f"sparsity_lib.{module}"), name, refuse)


def one_line_error(capsys) -> str:
    """The error line; before it stderr may hold only progress bars that cleared themselves ('\r')."""
    err = capsys.readouterr().err
    line = err.split("\r")[-1]
    assert line.startswith("error: ") and line.count("\n") == 1 and "\n" not in err[:-1], err
    return line
