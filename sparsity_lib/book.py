"""Execute the chapter notebooks with papermill into book/ and build the site with jupyter-book.

`python -m sparsity_lib book --profile cpu --chapter 2 -p l2_values "{'adam': [1e-4, 1e-3]}"`

A chapter replaces its executed copy only when it ran through, and never one executed at another
profile unless asked (`--replace`). `-p` parameters are data, never code: each must be plain data of the
kind its chapter's parameters cell declares (`check_parameter`), and the cell papermill injects must read
back as exactly those literals (`parameterized_notebook`). Ctrl-C at any moment stops the chapter unwritten
(`KernelRun`).
"""
from __future__ import annotations

import ast
import functools
import json
import logging
import operator
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from jupyter_client import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .runs.config import DATASET_CHOICES, get_profile
from .runs.files import atomic_write
from .validation import NotOfKind, as_kind, describe, shown

__all__ = ["build_book", "build_html", "chapter_parameters", "ChapterFailed", "chapters", "check_parameter",
           "declared_kind", "declared_parameters", "execute_chapter", "KernelRun", "NONE_DEFAULTS", "OUTPUT",
           "output_folder", "parameterized_notebook", "parse_parameter", "QuietKernelManager", "recorded_profile",
           "ROOT", "SOURCES"]

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
OUTPUT = ROOT / "book"


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message names the notebook and the cell."""


class QuietKernelManager(AsyncKernelManager):
    """The kernel's own log (its process stderr: a TCP warning at start, tracebacks of messages it could
    not send after an interrupted run) is discarded; cell outputs travel over ZMQ and are kept. `run`, when
    set (by `KernelRun.manager`), is told the kernel's process group when it starts and when it is gone."""

    run = None

    async def start_kernel(self, **kwargs):
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        started = await super().start_kernel(**kwargs)
        if self.run is not None:
            self.run.started(getattr(self.provisioner, "pgid", None))
        return started

    async def cleanup_resources(self, restart: bool = False) -> None:
        if self.run is not None:
            self.run.ended(getattr(self.provisioner, "pgid", None))
        await super().cleanup_resources(restart=restart)


def chapters(selection: str = "all", sources: Path | None = None) -> list[Path]:
    """Chapter sources in order; `selection` is 'all', a number ('2') or a comma list ('2,5')."""
    found = sorted((sources or SOURCES).glob("[0-9][0-9]_*.ipynb"))
    if selection == "all":
        return found
    available = ", ".join(str(int(path.name[:2])) for path in found)
    try:
        wanted = {int(part) for part in selection.split(",") if part.strip()}
    except ValueError:
        wanted = set()
    picked = [path for path in found if int(path.name[:2]) in wanted]
    if not wanted or len(picked) != len(wanted):
        raise ValueError(f"chapter={selection!r} not found; allowed: all, a chapter number or a comma list "
                         f"of them; chapters: {available}")
    return picked


def parse_parameter(text: str):
    """A -p value as a Python literal when it is one ('[1e-4, 1e-3]', '3'), else the string ('C6').

    Text that is not a literal of plain data ('{[1]: 2}', nesting too deep to parse) stays a string too;
    `chapter_parameters` then says what the parameter allows.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return text


def declared_parameters(source: Path) -> dict:
    """{name: default} of the chapter's cell tagged `parameters` (literals only; {} without one)."""
    notebook = json.loads(Path(source).read_text())
    for cell in notebook["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(text).body
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    return {}


# What a parameter whose default is None takes besides None, as its comment in the chapters' parameters
# cells says (e.g. `clutter_levels = None  # None: the book's ...; or levels in [0, 1]`). The kinds are
# those of sparsity_lib.validation.as_kind; tests/test_book.py checks that every None default is listed.
FIELD_VALUE = bool | float | str | None | list[float] | list[str]  # a RunConfig field's value
SETTINGS = list[dict[str, FIELD_VALUE]]  # RunConfig field dicts, e.g. [{"optimizer": "sgd", "l2": 5e-4}]
NONE_DEFAULTS = {
    "data_root": str, "store": str, "seeds": int,  # every chapter
    "settings": SETTINGS,  # 1
    "l2_values": dict[str, list[float]], "wd_values": dict[str, list[float]],  # 2
    "layer_settings": SETTINGS, "pair_l2": float,  # 3
    "strength": float, "steps": int,  # 4
    "clutter_levels": list[float], "class_counts": list[int],  # 5
    "negative_slope": float, "gamma_lr_scale": float,  # 7
    "l2": float, "tinyimagenet_root": str, "imagenet_root": str, "imagenet_subset": int,  # 8
    "vgg_batches": list[int], "slimming_fraction": float,  # 9
    "l1l2_lambdas": list[float],  # 10
    "train_missing": bool,  # 11
}


def declared_kind(name: str, default):
    """The kind a -p value must have: the default's type (a list: of its items' kind, ints and floats
    together a number; a dict: string keys to its values' kind); a None default: None or NONE_DEFAULTS[name]."""
    if default is None:
        return NONE_DEFAULTS[name] | None if name in NONE_DEFAULTS else type(None)
    if isinstance(default, (list, tuple)):
        return list[_merged(declared_kind(name, item) for item in default)]
    if isinstance(default, dict):
        return dict[str, _merged(declared_kind(name, item) for item in default.values())]
    return type(default)


def _merged(kinds) -> object:
    """One kind for a container's items: a number for ints and floats, a union otherwise."""
    kinds = set(kinds)
    if not kinds:
        return FIELD_VALUE
    if kinds == {int, float}:
        return float
    return functools.reduce(operator.or_, sorted(kinds, key=str))


def check_parameter(name: str, value, default, chapter: str):
    """`value` as plain data of the kind the chapter's default declares (tuples become lists); raise
    ValueError naming the parameter, the value and what it allows."""
    kind = declared_kind(name, default)
    try:
        return as_kind(value, kind)
    except NotOfKind as error:
        raise ValueError(f"-p {name}={shown(value)} {error}; allowed: {describe(kind)} "
                         f"(the default of {chapter} is {shown(default)})") from None


def chapter_parameters(selected: list[Path], base: dict, extra: dict) -> dict[Path, dict]:
    """Per chapter, the parameters to inject: `base` and `extra` limited to the names its parameters cell
    declares. Raises ValueError for a name no selected chapter declares or a value of the wrong kind."""
    declared = {source: declared_parameters(source) for source in selected}
    checked = {}
    for name, value in extra.items():
        if name in base:
            raise ValueError(f"-p {name}: set it with --{name} instead")
        owners = [source for source in selected if name in declared[source]]
        if not owners:
            allowed = sorted({n for names in declared.values() for n in names} - set(base))
            numbers = ", ".join(str(int(source.name[:2])) for source in selected)
            raise ValueError(f"-p {name}: no such parameter in chapter(s) {numbers}; allowed: {', '.join(allowed)}")
        for source in owners:
            checked[source, name] = check_parameter(name, value, declared[source][name], source.name)
    return {source: {name: checked.get((source, name), value) for name, value in {**base, **extra}.items()
                     if name in declared[source]} for source in selected}


def recorded_profile(notebook: Path) -> str | None:
    """The profile an executed chapter was run at (papermill's recorded parameters), or None."""
    try:
        return json.loads(Path(notebook).read_text())["metadata"]["papermill"]["parameters"].get("profile")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def execute_chapter(source: Path, parameters: dict, output_dir: Path | None = None,
                    cell_timeout_s: float | None = None) -> Path:
    """Run one notebook with papermill; raise ChapterFailed naming the notebook and cell on error.

    `cell_timeout_s`: seconds one cell may run before the chapter fails (None: no limit, as the book
    needs for long training cells). The tests set one, so a kernel message lost upstream (a
    jupyter_client/papermill hang with the kernel idle) fails the chapter instead of hanging the suite.

    The parameters are checked to be written as literals (`parameterized_notebook`). The notebook executes
    into a temporary folder and replaces `output_dir/<name>` (atomically) only when every cell succeeded:
    a failed, interrupted (Ctrl-C, `KernelRun`) or killed run leaves the previous chapter as it was.
    """
    target = Path(output_dir or OUTPUT) / source.name
    with tempfile.TemporaryDirectory(prefix="sparsity-book-") as scratch:
        prepared, executed = Path(scratch) / f"parameterized-{source.name}", Path(scratch) / source.name
        nbformat.write(parameterized_notebook(source, parameters), prepared)
        run_in_kernel(source.name, prepared, executed, cell_timeout_s)
        finish_executed(executed, source)
        atomic_write(target, lambda tmp: shutil.copyfile(executed, tmp))
    return target


def parameterized_notebook(source: Path, parameters: dict) -> nbformat.NotebookNode:
    """The chapter with papermill's injected-parameters cell after its parameters cell. Raises ValueError
    unless that cell is nothing but `name = literal` lines whose literals are `parameters`: it cannot run code."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = load_notebook_node(str(source))
    if not parameters:
        return notebook
    notebook = parameterize_notebook(notebook, parameters, kernel_name="python3", language="python")
    [cell] = [cell for cell in notebook.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    check_literal_cell(cell.source, parameters)
    return notebook


def check_literal_cell(text: str, parameters: dict) -> None:
    """Raise ValueError unless `text` only assigns each parameter, in order, a literal equal to its value."""
    written = literal_assignments(text)
    for index, (name, value) in enumerate(parameters.items()):
        if written is None or len(written) <= index or written[index] != (name, repr(value)):
            raise ValueError(f"parameter {name}={shown(value)} cannot be written into the parameters cell as a "
                             "literal; allowed: numbers, strings, True, False, None and lists and dicts of them")
    if len(written) != len(parameters):
        raise ValueError(f"the injected parameters cell assigns more than the parameters: {shown(text)}")


def literal_assignments(text: str) -> list[tuple[str, str]] | None:
    """[(name, repr(value))] of a cell made only of `name = literal` statements; None for anything else."""
    try:
        body = ast.parse(text).body
        if all(isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
               for node in body):
            return [(node.targets[0].id, repr(ast.literal_eval(node.value))) for node in body]
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        pass
    return None


def run_in_kernel(name: str, prepared: Path, executed: Path, cell_timeout_s: float | None = None) -> None:
    """Execute the `prepared` notebook into `executed` (`KernelRun`); a cell's error, a cell running past
    `cell_timeout_s` or the kernel's death is a ChapterFailed naming the chapter."""
    import papermill

    try:
        KernelRun(cell_timeout_s).execute(prepared, executed)
    except papermill.PapermillExecutionError as error:
        if error.ename == "KeyboardInterrupt":  # the kernel was interrupted (SIGINT sent to it directly)
            raise KeyboardInterrupt from error
        raise ChapterFailed(f"{name}: cell {error.exec_count} raised {error.ename}: {error.evalue}") from error
    except CellTimeoutError as error:
        raise ChapterFailed(f"{name}: a cell ran past {cell_timeout_s:g} s ({error})") from error
    except DeadKernelError as error:  # the kernel's process ended mid-cell (out of memory, a crash)
        raise ChapterFailed(f"{name}: the kernel died ({error})") from error
    except RuntimeError as error:  # jupyter_client: 'Kernel died before replying to kernel_info' and the like
        raise ChapterFailed(f"{name}: the kernel failed to start ({error})") from error


def finish_executed(path: Path, source: Path) -> None:
    """Tag papermill's injected-parameters cell `remove-cell` (the page shows the chapter's own parameters
    cell, what a reader edits, and its provenance line, not a second cell of values), and record `source`,
    not the temporary copy it was executed from, as the input."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.papermill["input_path"] = str(source)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, path)


# ------------------------------------------------------------------------------ Ctrl-C while a chapter runs
GRACE_S = 5.0  # after Ctrl-C, seconds an interrupted kernel has to stop before it is killed


class ChapterInterrupted(Exception):
    """Raised in the papermill thread at the next cell once Ctrl-C was pressed."""


class KernelRun:
    """One chapter executing in a papermill thread while the main thread waits and takes Ctrl-C.

    jupyter_client starts the kernel in a session of its own, so a terminal's Ctrl-C reaches only this
    process. A SIGINT handler counts it (an interrupt is never lost, wherever it lands) and the main thread
    passes it on: the kernel's process group gets SIGINT and the next cell is refused; after GRACE_S seconds
    or a second Ctrl-C the group gets SIGKILL (its checkpoints and records are written atomically; a third
    Ctrl-C stops waiting). An interrupted chapter then raises KeyboardInterrupt, whatever the thread returned.
    """

    def __init__(self, cell_timeout_s: float | None = None):
        self.cell_timeout_s = cell_timeout_s
        self.lock = threading.Lock()
        self.groups: set[int] = set()  # process groups of the kernels started and not yet cleaned up
        self.interrupts = 0
        self.error: BaseException | None = None

    def execute(self, prepared: Path, executed: Path) -> None:
        """Run papermill in a thread until it ends; raise KeyboardInterrupt if interrupted, else its error."""
        worker = threading.Thread(target=self.papermill, args=(prepared, executed), name="papermill", daemon=True)
        papermill_log = logging.getLogger("papermill")
        papermill_log.addFilter(self.quiet)
        try:
            with self.counting_interrupts():
                worker.start()
                self.wait(worker)
        finally:
            papermill_log.removeFilter(self.quiet)
        if self.interrupts:
            raise KeyboardInterrupt
        if self.error is not None:
            raise self.error

    def papermill(self, prepared: Path, executed: Path) -> None:
        """The thread: papermill executes `prepared`; its exception is kept for the main thread."""
        import papermill

        try:
            papermill.execute_notebook(str(prepared), str(executed), cwd=str(ROOT), kernel_name="python3",
                                       progress_bar=False, kernel_manager_class=self.manager(),
                                       on_cell_start=self.refuse_cell, execution_timeout=self.cell_timeout_s)
        except BaseException as error:  # noqa: BLE001 -- re-raised by `execute` in the main thread
            self.error = error

    def manager(self) -> type:
        """QuietKernelManager reporting its kernel's process group to this run."""
        return type("ChapterKernelManager", (QuietKernelManager,), {"run": self})

    def wait(self, worker: threading.Thread) -> None:
        """Join `worker`; each Ctrl-C, or GRACE_S seconds after the last step, takes the next step of
        SIGINT to the kernel, SIGKILL to it, and giving up on the thread (a daemon)."""
        steps, taken, since = (signal.SIGINT, signal.SIGKILL, None), 0, 0.0
        while worker.is_alive():
            worker.join(0.1)
            if self.interrupts > taken or (taken and time.monotonic() - since > GRACE_S):
                if steps[taken] is None:
                    return
                self.signal_kernels(steps[taken])
                taken, since = taken + 1, time.monotonic()

    @contextmanager
    def counting_interrupts(self):
        """SIGINT counted in `interrupts` (main thread only; an ignored SIGINT stays ignored)."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if main else signal.SIG_IGN
        if previous in (signal.SIG_IGN, None):
            yield
            return
        signal.signal(signal.SIGINT, self.count)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def count(self, _signum, _frame) -> None:
        self.interrupts += 1

    def quiet(self, record: logging.LogRecord) -> bool:
        """papermill's log filter: its errors repeat what ChapterFailed says; nothing after Ctrl-C."""
        return not self.interrupts and record.levelno < logging.ERROR

    def refuse_cell(self, **_kwargs) -> None:
        """nbclient's on_cell_start hook: no cell starts after Ctrl-C."""
        if self.interrupts:
            raise ChapterInterrupted("interrupted (Ctrl-C)")

    def started(self, group: int | None) -> None:
        """A kernel started in process group `group`; killed at once if Ctrl-C came first."""
        with self.lock:
            if group is not None:
                self.groups.add(group)
                if self.interrupts:
                    _signal_group(group, signal.SIGKILL)

    def ended(self, group: int | None) -> None:
        with self.lock:
            self.groups.discard(group)

    def signal_kernels(self, signum: int) -> None:
        with self.lock:
            for group in self.groups:
                _signal_group(group, signum)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):  # already gone
        pass


def build_html() -> None:
    """jupyter-book build of the repository root (notebooks are already executed)."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--warningiserror", "--quiet"]
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise ChapterFailed("jupyter-book build failed (see the messages above)")


def output_folder(selected: list[Path], profile: str, output_dir, replace: bool) -> Path:
    """Where the chapters go. A chapter executed at another profile (book/ holds the committed `cpu`
    ones) is replaced only with `replace`; otherwise the default book/ becomes _build/book-<profile>/,
    and an explicit `output_dir` is an error."""
    output = Path(output_dir or OUTPUT)
    recorded = [(source.name, recorded_profile(output / source.name)) for source in selected]
    clashes = [(name, other) for name, other in recorded if other not in (None, profile)]
    if not clashes or replace:
        return output
    name, other = clashes[0]
    if output_dir is not None:
        raise ValueError(f"--output {output}: {name} there was executed at profile {other!r} and --profile {profile} "
                         "would replace it; allowed: --replace, or another --output folder")
    redirected = output.parent / "_build" / f"book-{profile}"
    print(f"note: {output} holds chapters executed at profile {other!r}; writing the profile {profile!r} chapters "
          f"to {redirected} instead (--replace replaces them)", flush=True)
    return redirected


def check_book_options(profile: str, dataset: str, fresh: bool) -> None:
    """The options every chapter gets, checked before a kernel starts."""
    get_profile(profile)
    if dataset not in DATASET_CHOICES:
        raise ValueError(f"dataset={dataset!r} is unknown; allowed: {', '.join(DATASET_CHOICES)}")
    if not isinstance(fresh, bool):
        raise ValueError(f"fresh={fresh!r} is invalid; allowed: True or False")


def check_writable_folder(output: Path) -> None:
    """`output` is a folder, or can be made one: checked before a chapter runs, not after."""
    existing = next(path for path in (output, *output.parents) if path.exists())
    if not existing.is_dir():
        where = "is a file" if existing == output else f"is inside the file {existing}"
        raise ValueError(f"--output {output} {where}; allowed: a folder (created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output {output}: {existing} cannot be written; allowed: a folder you can write")


def build_book(profile="cpu", dataset="auto", chapter="all", fresh=False, extra=None, html=True,
               output_dir: Path | None = None, replace: bool = False, sources: Path | None = None) -> list[Path]:
    """Execute the selected chapters, then build the HTML. Returns the executed notebooks.

    Parameters are checked against each chapter's parameters cell before anything runs. Chapters go
    to `output_folder(...)`; the HTML is built only when they went to book/ (the site's source).
    """
    os.environ.setdefault("SPARSITY_STORE", str(ROOT / "results"))
    check_book_options(profile, dataset, fresh)
    selected = chapters(chapter, sources)
    per_chapter = chapter_parameters(selected, {"profile": profile, "dataset": dataset, "fresh": fresh}, extra or {})
    output = output_folder(selected, profile, output_dir, replace)
    check_writable_folder(output)
    executed = []
    for index, source in enumerate(selected, start=1):
        started = time.time()
        print(f"[{index}/{len(selected)}] {source.name} (profile={profile}, dataset={dataset})", flush=True)
        executed.append(execute_chapter(source, per_chapter[source], output))
        print(f"    done in {time.time() - started:.0f} s", flush=True)
    if html and output.resolve() != OUTPUT.resolve():
        print(f"HTML not built: the site is built from {OUTPUT}, and the chapters went to {output}")
    elif html:
        build_html()
        print(f"book: {ROOT / '_build' / 'html' / 'index.html'}")
    return executed
