"""The package as readers install it: pyproject.toml, the wheel's contents (the paper's tables ride along),
and the files that repeat its version ranges (requirements, Binder, the Pages workflow) kept equal."""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement(name: str, requirements: list[str]) -> str:
    """The entry of `requirements` for package `name` ('torch' does not match 'torchvision')."""
    return next(line for line in requirements if re.match(rf"{re.escape(name)}(?=[<>=!~ \[;]|$)", line))


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


SUBPACKAGES = sorted(str(path.parent.relative_to(ROOT)) for path in (ROOT / "sparsity_lib").rglob("__init__.py"))


def test_the_paper_tables_are_package_data_of_every_subpackage_found():
    from sparsity_lib.report import paper
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["sparsity_lib", "sparsity_lib.*"]
    assert paper.SOURCE.name in PYPROJECT["tool"]["setuptools"]["package-data"]["sparsity_lib.report"]
    assert paper.SOURCE.parent == ROOT / "sparsity_lib" / "report"
    expected = {"sparsity_lib/data", "sparsity_lib/nets", "sparsity_lib/runs/fused", "sparsity_lib/report"}
    assert expected <= set(SUBPACKAGES)


def test_the_wheel_holds_the_package_and_the_paper_tables(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(part) for part in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip(f"setuptools {setuptools.__version__} cannot build a wheel offline (needs >= 70.1)")
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "sparsity_lib", source / "sparsity_lib", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("*.whl"))).namelist()
    assert "sparsity_lib/report/paper_tables.md" in names and "sparsity_lib/runs/store.py" in names
    missing = [package for package in SUBPACKAGES if f"{package}/__init__.py" not in names]
    assert not missing, f"the wheel lacks the subpackages {missing}"
    sources = {str(path.relative_to(ROOT)) for path in (ROOT / "sparsity_lib").rglob("*.py")}
    assert not sources - set(names), f"the wheel lacks {sorted(sources - set(names))}"
    assert not [name for name in names if name.split("/")[0] in ("results", "notebooks", "book", "tests")]


def test_installed_package_imports_from_any_folder_and_finds_the_checkout_store(tmp_path):
    # The build's *.egg-info beside the sources (seen through pytest's pythonpath) is not an installation.
    installed = [dist for dist in importlib.metadata.distributions(name=PYPROJECT["project"]["name"])
                 if Path(dist.locate_file("")).resolve() != ROOT]
    if not installed:
        pytest.skip("the package is not installed in this environment (pip install -e .)")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "SPARSITY_STORE", "SPARSITY_DATA")}
    result = subprocess.run([sys.executable, "-c", "import sparsity_lib; print(sparsity_lib.resolve_store())"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(ROOT / "results")


def test_version_ranges_live_in_pyproject_and_are_repeated_equal():
    dependencies = PYPROJECT["project"]["dependencies"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    for path in (ROOT / "requirements.txt", ROOT / "requirements-cluster.txt"):
        assert all(line.startswith("-e .[") for line in requirement_lines(path)), f"{path.name}: not -e .[...]"
    binder = requirement_lines(ROOT / "binder" / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in binder and "-e ." in binder
    for name in ("torch", "torchvision"):
        assert requirement(name, binder) == requirement(name, dependencies), f"binder/requirements.txt: {name}"
    workflow = (ROOT / ".github" / "workflows" / "pages.yml").read_text()
    installed = re.search(r'pip install "([^"]+)"', workflow).group(1)
    assert installed == requirement("jupyter-book", extras["book"]), "pages.yml installs another jupyter-book"
    assert "jupyter-book build . --warningiserror" in workflow and "scripts/check_links.py" in workflow
    assert f"{PYPROJECT['project']['name']}[book,test]" in extras["dev"]
    dev = {re.split(r"[<>=!~ \[]", line)[0] for line in extras["dev"] + extras["test"] + extras["book"]}
    assert {"jupyterlab", "nbconvert", "pytest", "ruff", "papermill", "jupyter-book"} <= dev
