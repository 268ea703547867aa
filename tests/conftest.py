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
