"""The code base is lint-clean: `ruff check` (rules and line length in pyproject.toml's [tool.ruff])."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("sparsity_lib", "tests", "benchmarks", "scripts")


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (pip install -e '.[test]' installs it)")
def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *PATHS], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"ruff check {' '.join(PATHS)} found problems:\n{result.stdout}{result.stderr}"
