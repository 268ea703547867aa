"""Every chapter opens with the Colab set-up cell (scripts/colab_setup.py), and that cell does the right
thing where it runs: nothing where sparsity_lib is installed, the enclosing checkout where Jupyter was
started inside one, and a sparse clone plus `pip install -e` on a fresh Colab runtime.

The cell runs in a subprocess started with `python -S` (no site-packages, so an installed sparsity_lib is
hidden), with a fake `git` on PATH and a fake `pip` module that record their arguments instead of
fetching anything.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "colab_setup.py"
CELL = SCRIPT.read_text().rstrip("\n")
REPOSITORY = re.search(r'^REPOSITORY = "([^"]+)"', CELL, re.M).group(1)
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

FAKE_GIT = """#!/bin/sh
echo "git $*" >> "$SETUP_CALLS"
if [ "$1" = clone ]; then
  for target; do :; done
  mkdir -p "$target/sparsity_lib" "$target/results"
  : > "$target/sparsity_lib/__init__.py"
  : > "$target/pyproject.toml"
fi
"""
FAKE_PIP = """import os, sys
with open(os.environ["SETUP_CALLS"], "a") as log:
    log.write("pip " + " ".join(sys.argv[1:]) + "\\n")
"""
PROBE = "\nimport importlib.util\nprint('FOUND', importlib.util.find_spec('sparsity_lib').origin)\n"


def run_cell(cwd: Path, fakes: Path, installed: bool = False) -> tuple[list[str], str]:
    """(recorded git/pip calls, stdout) of the setup cell run in `cwd` with sparsity_lib hidden."""
    (fakes / "bin").mkdir(parents=True, exist_ok=True)
    (fakes / "bin" / "git").write_text(FAKE_GIT)
    (fakes / "bin" / "git").chmod(0o755)
    (fakes / "pip").mkdir(exist_ok=True)
    (fakes / "pip" / "__init__.py").write_text("")
    (fakes / "pip" / "__main__.py").write_text(FAKE_PIP)
    if installed:  # an importable sparsity_lib, standing in for `pip install -e .`
        (fakes / "sparsity_lib").mkdir(exist_ok=True)
        (fakes / "sparsity_lib" / "__init__.py").write_text("")
    calls = fakes / "calls.log"
    calls.write_text("")
    env = {**os.environ, "PATH": f"{fakes / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(fakes),
           "SETUP_CALLS": str(calls)}
    result = subprocess.run([sys.executable, "-S", "-c", CELL + PROBE], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return calls.read_text().splitlines(), result.stdout


def first_code_cell(path: Path):
    return next(cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", CHAPTERS, ids=[f"{p.parent.name}/{p.stem}" for p in CHAPTERS])
def test_every_chapter_opens_with_the_setup_cell(path):
    cell = first_code_cell(path)
    assert cell.source.rstrip("\n") == CELL, \
        f"{path.name}: the first code cell differs from scripts/colab_setup.py; run python scripts/sync_setup_cell.py"
    assert "hide-input" in cell.metadata.get("tags", []), f"{path.name}: the setup cell must be tagged hide-input"


def test_on_a_fresh_runtime_it_clones_the_package_and_the_store_and_installs_them(tmp_path):
    colab = tmp_path / "content"
    colab.mkdir()
    calls, out = run_cell(colab, tmp_path / "fakes")
    clone = colab / "implicit-sparsity-book"
    assert calls[0].startswith("git clone") and "--depth=1" in calls[0] and "--sparse" in calls[0]
    assert calls[0].endswith(f"{REPOSITORY} {clone}")
    assert calls[1] == f"git -C {clone} sparse-checkout set sparsity_lib results"
    assert calls[2] == f"pip install --quiet -e {clone}" and len(calls) == 3
    assert f"FOUND {clone / 'sparsity_lib' / '__init__.py'}" in out, "the kernel cannot import the clone"
    # Run again (a second chapter in the same runtime): the clone is reused, not fetched again.
    calls, _ = run_cell(colab, tmp_path / "fakes")
    assert not any(call.startswith("git") for call in calls)


def test_inside_a_checkout_it_imports_the_checkout_and_fetches_nothing(tmp_path):
    before = sorted(path.name for path in (ROOT / "notebooks").iterdir())
    calls, out = run_cell(ROOT / "notebooks", tmp_path / "fakes")
    assert calls == [], "a checkout needs no clone and no install"
    assert f"FOUND {ROOT / 'sparsity_lib' / '__init__.py'}" in out
    assert sorted(path.name for path in (ROOT / "notebooks").iterdir()) == before, "it wrote into notebooks/"


def test_where_the_package_is_installed_it_does_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    calls, out = run_cell(work, tmp_path / "fakes", installed=True)
    assert calls == [] and out.startswith("FOUND"), out
    assert list(work.iterdir()) == []


def test_one_repository_url_everywhere():
    """The Colab cell, the package metadata, the book's repository button and the README's launch links
    must all name the same GitHub repository (change them together when the repository moves)."""
    owner_name = REPOSITORY.removeprefix("https://github.com/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", owner_name), REPOSITORY
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"] == REPOSITORY
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"] == REPOSITORY
    readme = (ROOT / "README.md").read_text()
    assert f"colab.research.google.com/github/{owner_name}/" in readme
    assert f"mybinder.org/v2/gh/{owner_name}/" in readme
    owner, name = owner_name.split("/")
    assert f"https://{owner}.github.io/{name}/" in readme, "the published site's address"
    for path in [ROOT / "README.md", ROOT / "_config.yml", *ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"),
                 *(ROOT / ".github" / "workflows").glob("*.yml")]:
        for found in re.findall(r"(?:github\.com|/github|/gh)/([\w.-]+/[\w.-]+)", path.read_text()):
            owner, name = found.split("/")
            if owner == owner_name.split("/")[0] or name.removesuffix(".git") == owner_name.split("/")[1]:
                assert found.removesuffix(".git") == owner_name, f"{path.name} names {found}, not {owner_name}"
