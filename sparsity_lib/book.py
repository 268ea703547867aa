"""Execute the chapter notebooks with papermill into book/ and build the site with jupyter-book.

`python -m sparsity_lib book --profile cpu --chapter 2 -p l2_values "{'adam': [1e-4, 1e-3]}"`

A chapter replaces its executed copy only when it ran through, and never one executed at another
profile unless asked (`--replace`); `-p` parameters are checked against the parameters cells.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import AsyncKernelManager
from nbclient.exceptions import DeadKernelError

from .store import atomic_write

__all__ = ["OUTPUT", "ROOT", "SOURCES", "build_book", "build_html", "chapter_parameters", "ChapterFailed", "chapters",
           "declared_parameters", "execute_chapter", "output_folder", "parse_parameter", "QuietKernelManager",
           "recorded_profile"]

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
OUTPUT = ROOT / "book"


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message names the notebook and the cell."""


class QuietKernelManager(AsyncKernelManager):
    """The kernel's own log (its process stderr: a TCP warning at start, tracebacks of messages it could
    not send after an interrupted run) is discarded; cell outputs travel over ZMQ and are kept."""

    async def start_kernel(self, **kwargs):
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return await super().start_kernel(**kwargs)


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
    """A -p value as a Python literal when it is one ('[1e-4, 1e-3]', '3'), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
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


# A default's type -> (accepted types, what to call them). A None default accepts any literal.
_KINDS = ((bool, (bool,), "True or False"), (int, (int,), "an integer"), (float, (int, float), "a number"),
          (str, (str,), "a string"), (list, (list, tuple), "a list"), (tuple, (list, tuple), "a list"),
          (dict, (dict,), "a dict"))


def _check_type(name: str, value, default, chapter: str) -> None:
    for kind, accepted, words in _KINDS:
        if isinstance(default, kind):
            if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
                shown = repr(default) if len(repr(default)) <= 60 else repr(default)[:57] + "..."
                kind_name = type(value).__name__
                article = "an" if kind_name[0] in "aeiou" else "a"
                raise ValueError(f"-p {name}={value!r} is {article} {kind_name}; allowed: {words} "
                                 f"(the default of {chapter} is {shown})")
            return


def chapter_parameters(selected: list[Path], base: dict, extra: dict) -> dict[Path, dict]:
    """Per chapter, the parameters to inject: `base` and `extra` limited to the names its parameters cell
    declares. Raises ValueError for a name no selected chapter declares or a value of the wrong type."""
    declared = {source: declared_parameters(source) for source in selected}
    for name, value in extra.items():
        if name in base:
            raise ValueError(f"-p {name}: set it with --{name} instead")
        owners = [source for source in selected if name in declared[source]]
        if not owners:
            allowed = sorted({n for names in declared.values() for n in names} - set(base))
            numbers = ", ".join(str(int(source.name[:2])) for source in selected)
            raise ValueError(f"-p {name}: no such parameter in chapter(s) {numbers}; allowed: {', '.join(allowed)}")
        for source in owners:
            _check_type(name, value, declared[source][name], source.name)
    return {source: {name: value for name, value in {**base, **extra}.items() if name in declared[source]}
            for source in selected}


def recorded_profile(notebook: Path) -> str | None:
    """The profile an executed chapter was run at (papermill's recorded parameters), or None."""
    try:
        return json.loads(Path(notebook).read_text())["metadata"]["papermill"]["parameters"].get("profile")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def execute_chapter(source: Path, parameters: dict, output_dir: Path | None = None) -> Path:
    """Run one notebook with papermill; raise ChapterFailed naming the notebook and cell on error.

    The notebook executes into a temporary folder and replaces `output_dir/<name>` (atomically) only
    when every cell succeeded: a failed, interrupted or killed run leaves the previous chapter as it was.
    """
    import papermill

    target = Path(output_dir or OUTPUT) / source.name
    with tempfile.TemporaryDirectory(prefix="sparsity-book-") as scratch:
        executed = Path(scratch) / source.name
        try:
            papermill.execute_notebook(str(source), str(executed), parameters=parameters, cwd=str(ROOT),
                                       kernel_name="python3", progress_bar=False,
                                       kernel_manager_class=QuietKernelManager)
        except papermill.PapermillExecutionError as error:
            if error.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel too
                raise KeyboardInterrupt from error
            raise ChapterFailed(f"{source.name}: cell {error.exec_count} raised {error.ename}: "
                                f"{error.evalue}") from error
        except DeadKernelError as error:  # the kernel's process ended mid-cell (out of memory, a crash)
            raise ChapterFailed(f"{source.name}: the kernel died ({error})") from error
        hide_injected_parameters(executed)
        atomic_write(target, lambda tmp: shutil.copyfile(executed, tmp))
    return target


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell `remove-cell`: the page shows the chapter's own
    parameters cell (what a reader edits) and its provenance line, not a second cell of values."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, path)


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


def build_book(profile="cpu", dataset="auto", chapter="all", fresh=False, extra=None, html=True,
               output_dir: Path | None = None, replace: bool = False, sources: Path | None = None) -> list[Path]:
    """Execute the selected chapters, then build the HTML. Returns the executed notebooks.

    Parameters are checked against each chapter's parameters cell before anything runs. Chapters go
    to `output_folder(...)`; the HTML is built only when they went to book/ (the site's source).
    """
    os.environ.setdefault("SPARSITY_STORE", str(ROOT / "results"))
    selected = chapters(chapter, sources)
    per_chapter = chapter_parameters(selected, {"profile": profile, "dataset": dataset, "fresh": fresh}, extra or {})
    output = output_folder(selected, profile, output_dir, replace)
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
