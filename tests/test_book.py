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
from sparsity_lib.book import (
    NONE_DEFAULTS,
    ChapterFailed,
    build_book,
    chapter_parameters,
    chapters,
    check_literal_cell,
    declared_parameters,
    execute_chapter,
    recorded_profile,
)
from sparsity_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = 'profile = "cpu"\ndataset = "auto"\nfresh = False\nvalue = 1  # an int below 10\n' \
             'items = {"a": 1}\nseconds = 0.0\nmarker = ""\ncrash = False\nnames = ["a", "b"]\nrates = [0.1, 1]\n' \
             'label = "x"'
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
    ({"valeu": 2}, "-p valeu: no such parameter in chapter(s) 1; allowed: crash, items, label, marker, names, "
                   "rates, seconds, value"),
    ({"items": [1]}, "-p items=[1] is a list; allowed: a dict of string keys to integers (the default of "
                     "01_one.ipynb is {'a': 1})"),
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
    assert per_chapter[selected[1]]["clutter_levels"] == [0.0, 1.0]  # a None default: None or NONE_DEFAULTS' kind


# ------------------------------------------------------------------------- parameters are data, never code
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def hostile(marker: Path) -> list[str]:
    """-p values that would create `marker` if any of them ran as code in the kernel."""
    touch = f'open("{marker}", "w")'  # double quotes inside, as in the issue's `__import__("os").system("id")`
    return [f"""('x" + str({touch}) + "',)""",  # papermill wrote this tuple into the cell unescaped
            f"""'x" + str({touch}) + "'""", f"x\" + str({touch}) + \"", f"__import__('os').system('touch {marker}')",
            f"[{touch}]", f"{{'a': {touch}}}", f"'x\\n{touch}'", f"[1] if {touch} else [2]"]


@pytest.mark.parametrize("chapter,name", [("1", "rates"), ("1", "value"), ("1", "items"), ("1", "seconds"),
                                          ("1", "crash"), ("4", "strengths"), ("5", "clutter_levels"),
                                          ("2", "l2_values"), ("1", "settings")])
def test_injection_strings_are_refused_before_a_kernel_starts(copy_of_book, tmp_path, monkeypatch, capsys,
                                                               chapter, name):
    """Chapter 1 of the fixture book, or the book's own chapters 1, 2, 4 and 5 (None defaults among them)."""
    sources, folder, before = copy_of_book
    if name in declared_parameters(sources / "01_one.ipynb"):
        monkeypatch.setattr(book, "SOURCES", sources)
    monkeypatch.setattr(book, "execute_chapter", lambda *_: pytest.fail("a kernel started"))
    marker = tmp_path / "pwned"
    for text in hostile(marker):
        argv = ["book", "--no-html", "--chapter", chapter, "--output", str(folder), "-p", name, text]
        assert main(argv) == 2, text
        assert f"-p {name}=" in one_line_error(capsys)
    assert not marker.exists() and snapshot(folder) == before


def test_hostile_strings_where_strings_are_allowed_stay_data(copy_of_book, tmp_path, capsys):
    sources, folder, _ = copy_of_book
    marker = tmp_path / "pwned"
    texts = [text for text in hostile(marker) if "\\n" not in text]
    extra = {"names": tuple(texts), "label": texts[2], "items": {text: 1 for text in texts}}
    [executed] = build_book("cpu", sources=sources, output_dir=folder, html=False, extra=extra)
    assert not marker.exists()
    recorded = nbformat.read(executed, as_version=4).metadata.papermill.parameters
    assert (recorded["names"], recorded["label"], recorded["items"]) == (texts, texts[2], extra["items"])


@pytest.mark.parametrize("name,value,message", [
    ("rates", ("1e-3",), "-p rates=('1e-3',) has [0]='1e-3', a str; allowed: a list of at most 1000 numbers"),
    ("rates", {0.1, 1.0}, "-p rates={0.1, 1.0} is a set; allowed: a list of at most 1000 numbers"),
    ("items", {("a", "b"): 1}, "-p items={('a', 'b'): 1} has a key ('a', 'b'), a tuple; allowed: a dict of string"),
    ("label", b"x", "-p label=b'x' is a bytes; allowed: a string of at most 400 printable characters"),
    ("label", "x" * 401, "-p label='xxx"),
    ("label", "a\nb", "-p label='a\\nb' is a string with a newline or another unprintable character"),
    ("seconds", float("inf"), "-p seconds=inf is not finite; allowed: a number"),
    ("rates", [0.1, float("nan")], "-p rates=[0.1, nan] has [1]=nan, not finite"),
    ("value", 10**16, "-p value=10000000000000000 is beyond 10**15 in magnitude; allowed: an integer"),
    ("names", ["a", 1], "-p names=['a', 1] has [1]=1, an int; allowed: a list of at most 1000 strings"),
    ("items", {"a": 1.5}, "-p items={'a': 1.5} has ['a']=1.5, a float; allowed: a dict of string keys to integers"),
    ("marker", None, "-p marker=None is None; allowed: a string"),
])
def test_parameters_must_be_plain_data_of_the_declared_kind(copy_of_book, name, value, message):
    sources, folder, before = copy_of_book
    with pytest.raises(ValueError) as error:
        build_book("cpu", sources=sources, output_dir=folder, html=False, extra={name: value})
    assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)
    assert snapshot(folder) == before


def test_tuples_become_lists_and_ints_are_numbers(committed):
    sources, _ = committed
    [source] = chapters("all", sources)
    got = chapter_parameters([source], {}, {"names": ("c",), "rates": (1, 2.5), "items": {"b": 2}})[source]
    assert got == {"names": ["c"], "rates": [1, 2.5], "items": {"b": 2}} and isinstance(got["names"], list)


def test_every_none_default_of_the_chapters_says_what_else_it_takes():
    defaults = {name for source in chapters() for name, default in declared_parameters(source).items()
                if default is None}
    assert defaults <= set(NONE_DEFAULTS), sorted(defaults - set(NONE_DEFAULTS))


@pytest.mark.parametrize("value,accepted", [
    (None, True), ([0, 0.5, 1.0], True), ((0.0, 1),  True), ("high", False), ([0, "1"], False), ({"a": 1}, False),
    ([float("inf")], False),
])
def test_a_none_default_takes_none_or_its_declared_kind(value, accepted):
    [chapter_5] = chapters("5")
    base = {"profile": "cpu", "dataset": "auto", "fresh": False}
    if accepted:
        got = chapter_parameters([chapter_5], base, {"clutter_levels": value})[chapter_5]["clutter_levels"]
        assert got == (list(value) if isinstance(value, tuple) else value)
        return
    with pytest.raises(ValueError, match=r"^-p clutter_levels=.*; allowed: a list of at most 1000 numbers or None "
                                         r"\(the default of 05_task_difficulty.ipynb is None\)$"):
        chapter_parameters([chapter_5], base, {"clutter_levels": value})


def test_a_value_papermill_cannot_write_as_a_literal_is_refused(committed, tmp_path):
    sources, _ = committed
    [source] = chapters("all", sources)
    marker = tmp_path / "pwned"
    for value in [(f"""x" + str(open({str(marker)!r}, 'w')) + "x""",), object(), float("inf")]:
        with pytest.raises(ValueError, match="cannot be written into the parameters cell as a literal"):
            execute_chapter(source, {"profile": "cpu", "names": value}, tmp_path)
    assert not marker.exists() and not (tmp_path / source.name).exists()


def test_the_injected_cell_must_be_literal_assignments_only():
    check_literal_cell("# Parameters\nvalue = 3\nnames = ['a', \"b\"]\n", {"value": 3, "names": ["a", "b"]})
    for text in ["value = 3\nimport os\nnames = ['a', 'b']", "value = 3\nnames = ['a'] + ['b']",
                 "value = 3\nnames = [str(1)]", "value = True\nnames = ['a', 'b']", "value = 3; names = ('a', 'b')",
                 "value = 3\nnames = ['a', 'b']\nextra = 1", "value, names = 3, ['a', 'b']"]:
        with pytest.raises(ValueError):
            check_literal_cell(text, {"value": 3, "names": ["a", "b"]})


def test_book_options_and_output_are_checked_before_a_kernel_starts(copy_of_book, tmp_path, monkeypatch):
    sources, folder, before = copy_of_book
    monkeypatch.setattr(book, "execute_chapter", lambda *_: pytest.fail("a kernel started"))
    with pytest.raises(ValueError, match="^dataset='foo' is unknown; allowed: auto, cifar10, cifar100"):
        build_book("cpu", dataset="foo", sources=sources, output_dir=folder, html=False)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match=f"^--output {tmp_path / 'a-file'} is a file; allowed: a folder"):
        build_book("cpu", sources=sources, output_dir=tmp_path / "a-file", html=False)
    with pytest.raises(ValueError, match=f"^--output {tmp_path / 'a-file' / 'sub'} is inside the file "):
        build_book("cpu", sources=sources, output_dir=tmp_path / "a-file" / "sub", html=False)
    with pytest.raises(ValueError, match="^profile='huge' is unknown"):
        build_book("huge", sources=sources, output_dir=folder, html=False)
    assert snapshot(folder) == before


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


# ------------------------------------------------------------------------------------- kill -9 and Ctrl-C
PAUSE_HOOK = textwrap.dedent("""\
    # Loaded by every Python process of the test (PYTHONPATH): pauses the one SPARSITY_TEST_PAUSE names, at the
    # moment it names, after touching SPARSITY_TEST_MARKER: the test's explicit signal that the moment is now.
    import atexit, os, pathlib, signal, sys, time
    where, _, moment = os.environ.get("SPARSITY_TEST_PAUSE", "").partition(":")
    def pause():
        pathlib.Path(os.environ["SPARSITY_TEST_MARKER"]).touch()
        time.sleep(60)
    class PauseAtImport:
        def find_spec(self, name, path=None, target=None):
            if name == moment.partition(":")[2]:
                sys.meta_path.remove(self)
                pause()
    def pause_at_exit():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # jupyter_client's SIGTERM halfway through a shutdown
        pause()
    if where and (where == "kernel") == ("ipykernel_launcher" in sys.orig_argv):
        if moment.startswith("import:"):
            sys.meta_path.insert(0, PauseAtImport())
        elif moment == "exit":
            atexit.register(pause_at_exit)
""")


def start_book(tmp_path: Path, sources: Path, folder: Path, marker: Path, pause: str = "", cli: bool = True,
               seconds: float = 60, module: bool = False) -> subprocess.Popen:
    """A `book` run in its own process group (as a terminal's foreground job). Its one cell touches `marker`
    and waits `seconds`; with `pause` ('driver:import:MODULE', 'kernel:import:MODULE', 'kernel:exit') the
    driver or the kernel touches `marker` at that moment instead, and waits there. `module`: run as
    `python -m sparsity_lib` (which never reaches the fixture chapter)."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    cell_marker = "" if pause else str(marker)
    script = textwrap.dedent(f"""
        from pathlib import Path
        import sparsity_lib.book as book
        from sparsity_lib.cli import main
        book.SOURCES = Path({str(sources)!r})
        if {cli!r}:
            raise SystemExit(main(["book", "--no-html", "--output", {str(folder)!r}, "-p", "seconds", "{seconds}",
                                   "-p", "marker", {cell_marker!r}]))
        book.build_book("cpu", html=False, output_dir=Path({str(folder)!r}),
                        extra={{"seconds": {float(seconds)}, "marker": {cell_marker!r}}})
    """)
    command = ["-m", "sparsity_lib", "book", "--no-html", "--output", str(folder)] if module else ["-c", script]
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "SPARSITY_TEST_PAUSE": pause,
           "SPARSITY_TEST_MARKER": str(marker)}
    return subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, preexec_fn=default_sigint)


def default_sigint() -> None:
    """In the child before it starts: SIGINT at its default, as for a terminal's foreground job, whatever
    this test process inherited (a process started in the background of a shell has SIGINT ignored, and
    an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(marker: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the child touches `marker`: its signal that it is at the moment the test wants."""
    deadline = time.time() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the child never reached the moment"
        time.sleep(0.05)


def test_a_killed_run_leaves_the_folder_byte_identical(copy_of_book, tmp_path):
    sources, folder, before = copy_of_book
    marker = tmp_path / "cell-started"
    process = start_book(tmp_path, sources, folder, marker, cli=False)
    wait_for(marker, process)
    os.killpg(process.pid, signal.SIGKILL)  # the python process mid-cell (its kernel is in a session of its own)
    process.communicate(timeout=60)
    assert snapshot(folder) == before


def interrupted(process: subprocess.Popen) -> str:
    """Ctrl-C as a terminal sends it (SIGINT to the foreground process group); the child's stderr."""
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("error: interrupted (Ctrl-C)"), err
    return err


def test_ctrl_c_is_one_line_and_leaves_the_folder_byte_identical(copy_of_book, tmp_path):
    sources, folder, before = copy_of_book
    marker = tmp_path / "cell-started"
    process = start_book(tmp_path, sources, folder, marker)
    wait_for(marker, process)  # the cell is running, so the driver waits on it
    assert "chapters not finished were not written" in interrupted(process)
    assert snapshot(folder) == before


@pytest.mark.parametrize("pause,module", [
    pytest.param("driver:import:sparsity_lib.study.judge", True, id="importing the command line"),
    pytest.param("driver:import:torch", True, id="importing the library"),
    pytest.param("driver:import:papermill.iorw", False, id="importing papermill"),
    pytest.param("kernel:import:ipykernel.kernelapp", False, id="starting the kernel"),
    pytest.param("", False, id="inside a cell"),
    pytest.param("kernel:exit", False, id="stopping the kernel"),
])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(copy_of_book, tmp_path, pause, module):
    sources, folder, before = copy_of_book
    marker = tmp_path / "at-the-moment"
    process = start_book(tmp_path, sources, folder, marker, pause=pause, seconds=0 if pause else 60, module=module)
    wait_for(marker, process)
    interrupted(process)
    assert snapshot(folder) == before


def test_a_cell_past_its_timeout_fails_the_chapter_instead_of_hanging(tmp_path):
    """The tests' guard against a kernel message lost upstream: with `cell_timeout_s` a cell that does not
    finish is a ChapterFailed naming the chapter and the limit, and the output folder is left alone."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('profile = "cpu"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# A slow chapter"), parameters,
                      nbformat.v4.new_code_cell("import time\ntime.sleep(60)")]
    source = tmp_path / "99_slow.ipynb"
    nbformat.write(notebook, source)
    started = time.monotonic()
    with pytest.raises(ChapterFailed, match=r"^99_slow.ipynb: a cell ran past 3 s"):
        execute_chapter(source, {"profile": "smoke"}, tmp_path / "out", cell_timeout_s=3)
    assert time.monotonic() - started < 50 and not (tmp_path / "out" / source.name).exists()
