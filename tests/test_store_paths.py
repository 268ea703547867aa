"""Where the run store and the datasets are looked for: resolved at each use, never from the working folder.

Order: an explicit argument, else (at the entry points only: `sparsity_lib.environment`) $SPARSITY_STORE /
$SPARSITY_DATA, else the checkout's results/ and data/ (the package runs from a clone or `pip install -e .`),
else the per-user cache folder.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparsity_lib import Chapter, RunStore, folders, resolve_data_root, resolve_store
from sparsity_lib.environment import execution_from_environment, open_chapter
from sparsity_lib.runs.execution import Execution

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SPARSITY_STORE", raising=False)
    monkeypatch.delenv("SPARSITY_DATA", raising=False)


def test_this_checkout_is_found(no_env):
    assert folders.checkout_root() == ROOT
    assert resolve_store() == ROOT / "results" and resolve_data_root() == ROOT / "data"


def test_explicit_beats_environment_beats_checkout(no_env, monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSITY_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("SPARSITY_DATA", str(tmp_path / "env-data"))
    execution = execution_from_environment()
    assert execution.run_store.root == tmp_path / "env-store" and resolve_data_root(execution.data_root) == \
        tmp_path / "env-data"
    mine = execution_from_environment(store=tmp_path / "mine", data_root=str(tmp_path / "mine"))
    assert mine.run_store.root == tmp_path / "mine" and resolve_data_root(mine.data_root) == tmp_path / "mine"
    assert open_chapter(profile="smoke", dataset="synthetic", device="cpu").run_store.root == tmp_path / "env-store"


def test_below_the_entry_points_the_environment_is_not_read(no_env, monkeypatch, tmp_path):
    """Issue 21: only `sparsity_lib.environment` (and cli/book) read SPARSITY_*; the library takes what it is given."""
    monkeypatch.setenv("SPARSITY_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("SPARSITY_DATA", str(tmp_path / "env-data"))
    assert resolve_store() == ROOT / "results" and resolve_data_root() == ROOT / "data"
    assert RunStore().root == ROOT / "results"
    assert resolve_store(tmp_path / "mine") == tmp_path / "mine"


def test_outside_a_checkout_the_user_cache_is_used(no_env, monkeypatch, tmp_path):
    monkeypatch.setattr(folders, "checkout_root", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # platformdirs honours it on Linux
    if sys.platform.startswith("linux"):
        assert resolve_store() == tmp_path / "cache" / "implicit-sparsity-book" / "results"
        assert resolve_data_root() == tmp_path / "cache" / "implicit-sparsity-book" / "data"
    assert resolve_store().name == "results" and folders.CACHE_NAME in resolve_store().parts


def test_resolved_at_use_not_at_import(no_env, monkeypatch, tmp_path):
    assert execution_from_environment().run_store.root == ROOT / "results"
    monkeypatch.setenv("SPARSITY_STORE", str(tmp_path))
    assert execution_from_environment().run_store.root == tmp_path  # imported long before the variable was set


def test_a_chapter_finds_the_committed_store_from_another_folder(no_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    chapter = Chapter(profile="cpu", dataset="synthetic", execution=Execution(device="cpu"))
    assert chapter.run_store.root == ROOT / "results"
    stored = [path.stem for path in (ROOT / "results").glob("*.json")]
    assert stored and all(chapter.run_store.load(key) is not None for key in stored[:3])


def test_cli_ls_lists_the_committed_store_from_another_folder(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("SPARSITY_STORE", "SPARSITY_DATA")}
    env["PYTHONPATH"] = str(ROOT)  # the checkout itself, as `pip install -e .` would provide
    result = subprocess.run([sys.executable, "-m", "sparsity_lib", "ls"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    stored = [path.stem for path in (ROOT / "results").glob("*.json")]
    assert stored and all(key in result.stdout for key in stored), result.stdout[-2000:]
    assert not list(tmp_path.iterdir()), "ls created files in the working folder"


@pytest.mark.parametrize("resolve,parameter,variable", [(resolve_store, "store", "SPARSITY_STORE"),
                                                        (resolve_data_root, "data_root", "SPARSITY_DATA")])
def test_an_empty_folder_is_an_error_not_the_checkout(no_env, monkeypatch, resolve, parameter, variable):
    """'' once meant "not given", so `train --store ''` wrote into the checkout's committed results/."""
    with pytest.raises(ValueError, match=f"{parameter}='' is empty; allowed: a folder path"):
        resolve("")
    with pytest.raises(ValueError, match=f"{parameter}='  ' is empty"):
        resolve("  ")
    with pytest.raises(ValueError, match=f"{parameter}='' is empty; allowed: a folder path"):
        execution_from_environment(**{parameter: ""})
    monkeypatch.setenv(variable, "")
    with pytest.raises(ValueError, match=f"\\${variable}='' is empty; allowed: a folder path"):
        execution_from_environment()
    with pytest.raises(ValueError, match=f"\\${variable}=''"):
        open_chapter(profile="smoke", dataset="synthetic", device="cpu")
