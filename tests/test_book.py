"""`book`: a chapter replaces its executed copy only when it ran through; chapters of another profile are
kept unless asked; -p parameters are checked against the parameters cell. Tiny fixture notebooks stand in
for the chapters, so each execution takes a kernel start, not a training run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from sparsity_lib import book
from sparsity_lib.book import ChapterFailed, build_book, chapter_parameters, chapters, recorded_profile

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = 'profile = "cpu"\ndataset = "auto"\nfresh = False\nvalue = 1  # an int below 10\n' \
             'items = {"a": 1}\nseconds = 0.0\nmarker = None\ncrash = False'
BODY = textwrap.dedent("""\
    import os, time
    if crash:
        os._exit(1)  # the kernel process ends, as on running out of memory
    if marker:
        open(marker, "w").close()
    time.sleep(seconds)
    assert value < 10, "value too large"
    print("value", value, items)""")


def write_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell(BODY)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """(sources, book folder): one fixture chapter, executed at profile cpu as the committed book is."""
    root = tmp_path_factory.mktemp("repo")
    sources = root / "notebooks"
    sources.mkdir()
    write_notebook(sources / "01_one.ipynb")
    build_book("cpu", sources=sources, output_dir=root / "book", html=False)
    assert recorded_profile(root / "book" / "01_one.ipynb") == "cpu"
    return sources, root / "book"


@pytest.fixture
def copy_of_book(committed, tmp_path):
    """(sources, a copy of the committed book folder, its files' bytes)."""
    sources, original = committed
    folder = tmp_path / "book"
    folder.mkdir()
    for path in original.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return sources, folder, snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_chapter_that_runs_through_replaces_its_copy(copy_of_book):
    sources, folder, before = copy_of_book
    [executed] = build_book("cpu", sources=sources, output_dir=folder, html=False, extra={"value": 7})
    assert executed == folder / "01_one.ipynb" and sorted(snapshot(folder)) == sorted(before)  # no leftovers
    assert snapshot(folder) != before
    notebook = nbformat.read(executed, as_version=4)
    assert notebook.metadata.papermill.parameters == {"profile": "cpu", "dataset": "auto", "fresh": False,
                                                      "value": 7}
    assert "value 7" in notebook.cells[-1].outputs[0].text
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata.tags  # the page shows one parameters cell
    assert not any("remove-cell" in c.metadata.get("tags", []) for c in notebook.cells if c not in injected)


def test_a_failing_chapter_leaves_the_folder_byte_identical(copy_of_book):
    sources, folder, before = copy_of_book
    with pytest.raises(ChapterFailed, match="01_one.ipynb: cell 3 raised AssertionError: value too large"):
        build_book("cpu", sources=sources, output_dir=folder, html=False, extra={"value": 99})
    assert snapshot(folder) == before


def test_a_dying_kernel_is_a_failed_chapter(copy_of_book):
    sources, folder, before = copy_of_book
    with pytest.raises(ChapterFailed, match="01_one.ipynb: the kernel died"):
        build_book("cpu", sources=sources, output_dir=folder, html=False,
                   extra={"crash": True})
    assert snapshot(folder) == before


@pytest.mark.parametrize("extra,message", [
    ({"valeu": 2}, "-p valeu: no such parameter in chapter(s) 1; allowed: crash, items, marker, seconds, value"),
    ({"items": [1]}, "-p items=[1] is a list; allowed: a dict (the default of 01_one.ipynb is {'a': 1})"),
    ({"value": 2.5}, "-p value=2.5 is a float; allowed: an integer"),
    ({"value": True}, "-p value=True is a bool; allowed: an integer"),
    ({"seconds": "1"}, "-p seconds='1' is a str; allowed: a number"),
    ({"fresh": True}, "-p fresh: set it with --fresh instead"),
])
def test_bad_parameters_fail_before_anything_runs(copy_of_book, extra, message):
    sources, folder, before = copy_of_book
    with pytest.raises(ValueError) as error:
        build_book("cpu", sources=sources, output_dir=folder, html=False, extra=extra)
    assert str(error.value).startswith(message)
    assert snapshot(folder) == before


def test_parameters_go_only_to_chapters_that_declare_them():
    selected = chapters("2,5")
    base = {"profile": "cpu", "dataset": "auto", "fresh": False}
    per_chapter = chapter_parameters(selected, base, {"clutter_levels": [0.0, 1.0], "seeds": 2})
    assert [per_chapter[source] for source in selected] == [{**base, "seeds": 2},
                                                            {**base, "clutter_levels": [0.0, 1.0], "seeds": 2}]
    assert per_chapter[selected[1]]["clutter_levels"] == [0.0, 1.0]  # a default of None accepts any literal


def test_another_profile_does_not_replace_the_committed_chapters(copy_of_book, monkeypatch, capsys):
    sources, folder, before = copy_of_book
    with pytest.raises(ValueError, match=f"--output {folder}: 01_one.ipynb there was executed at profile 'cpu' "
                                         "and --profile smoke would replace it; allowed: --replace"):
        build_book("smoke", sources=sources, output_dir=folder, html=False)
    monkeypatch.setattr(book, "OUTPUT", folder)  # the default folder, as book/ is
    [executed] = build_book("smoke", sources=sources, html=True)
    assert executed == folder.parent / "_build" / "book-smoke" / "01_one.ipynb"
    assert recorded_profile(executed) == "smoke" and snapshot(folder) == before
    out = capsys.readouterr().out
    assert "writing the profile 'smoke' chapters to" in out and "HTML not built" in out
    [replaced] = build_book("smoke", sources=sources, html=False, replace=True)
    assert replaced == folder / "01_one.ipynb" and recorded_profile(replaced) == "smoke"


def start_long_run(sources: Path, folder: Path, marker: Path, cli: bool) -> subprocess.Popen:
    """A `book` run in its own process group whose one cell waits 60 s after touching `marker`."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        import sparsity_lib.book as book
        from sparsity_lib.cli import main
        book.SOURCES, book.OUTPUT = Path({str(sources)!r}), Path({str(folder)!r})
        if {cli!r}:
            raise SystemExit(main(["book", "--no-html", "-p", "seconds", "60", "-p", "marker", {str(marker)!r}]))
        book.build_book("cpu", html=False, extra={{"seconds": 60.0, "marker": {str(marker)!r}}})
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(marker: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the chapter's cell never started"
        time.sleep(0.2)


def test_a_killed_run_leaves_the_folder_byte_identical(copy_of_book, tmp_path):
    sources, folder, before = copy_of_book
    marker = tmp_path / "cell-started"
    process = start_long_run(sources, folder, marker, cli=False)
    wait_for(marker, process)
    os.killpg(process.pid, signal.SIGKILL)  # the python process and its kernel, mid-cell
    process.communicate(timeout=60)
    assert snapshot(folder) == before


def test_ctrl_c_is_one_line_and_leaves_the_folder_byte_identical(copy_of_book, tmp_path):
    sources, folder, before = copy_of_book
    marker = tmp_path / "cell-started"
    process = start_long_run(sources, folder, marker, cli=True)
    wait_for(marker, process)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: interrupted (Ctrl-C)"), err
    assert snapshot(folder) == before
