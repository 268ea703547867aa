"""pyproject.toml against the recorded Colab runtime (colab/runtime.toml, issue 23): the set-up cell's
`pip install -e` must keep Colab's own Python, torch, numpy and pandas rather than replace them."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = tomllib.loads((ROOT / "colab" / "runtime.toml").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def core_requirements() -> dict[str, Requirement]:
    return {Requirement(text).name: Requirement(text) for text in PROJECT["dependencies"]}


def test_the_record_says_when_and_where_it_was_taken():
    assert RUNTIME["recorded"] and "googlecolab/backend-info" in RUNTIME["source"]
    assert {"torch", "numpy", "pandas"} <= set(RUNTIME["packages"])


def test_colabs_python_satisfies_requires_python():
    assert Version(RUNTIME["python"]) in SpecifierSet(PROJECT["requires-python"])


def test_every_core_dependency_colab_ships_is_kept_at_colabs_version():
    requirements = core_requirements()
    shipped = {name: version for name, version in RUNTIME["packages"].items() if name in requirements}
    assert {"torch", "torchvision", "numpy", "pandas"} <= set(shipped)
    refused = {name: (version, str(requirements[name].specifier)) for name, version in shipped.items()
               if Version(version) not in requirements[name].specifier}
    assert refused == {}, f"pip would replace Colab's packages: {refused}"


def test_a_range_that_excludes_colab_is_caught():
    assert Version(RUNTIME["packages"]["numpy"]) not in SpecifierSet(">=1.26,<2")
    assert Version(RUNTIME["python"]) not in SpecifierSet("<3.13")
