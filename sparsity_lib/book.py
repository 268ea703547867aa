"""Execute the chapter notebooks with papermill into book/ and build the site with jupyter-book.

`python -m sparsity_lib book --profile cpu --chapter 2 -p l2_values "[1e-4, 1e-3]"`
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
OUTPUT = ROOT / "book"


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message names the notebook and the cell."""


def chapters(selection: str = "all") -> list[Path]:
    """Chapter sources in order; `selection` is 'all', a number ('2') or a comma list ('2,5')."""
    found = sorted(SOURCES.glob("[0-9][0-9]_*.ipynb"))
    if selection == "all":
        return found
    wanted = {int(part) for part in selection.split(",") if part.strip()}
    picked = [path for path in found if int(path.name[:2]) in wanted]
    if len(picked) != len(wanted):
        available = ", ".join(str(int(path.name[:2])) for path in found)
        raise ValueError(f"chapter={selection!r} not found; available chapters: {available}")
    return picked


def parse_parameter(text: str):
    """A -p value as a Python literal when it is one ('[1e-4, 1e-3]', '3'), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def execute_chapter(source: Path, parameters: dict, output_dir: Path = OUTPUT) -> Path:
    """Run one notebook with papermill; raise ChapterFailed naming the notebook and cell on error."""
    import papermill

    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / source.name
    try:
        papermill.execute_notebook(str(source), str(target), parameters=parameters, cwd=str(ROOT),
                                   kernel_name="python3", progress_bar=False)
    except papermill.PapermillExecutionError as error:
        raise ChapterFailed(f"{source.name}: cell {error.exec_count} raised {error.ename}: {error.evalue}") from error
    return target


def build_html() -> None:
    """jupyter-book build of the repository root (notebooks are already executed)."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--warningiserror", "--quiet"]
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise ChapterFailed("jupyter-book build failed (see the messages above)")


def build_book(profile="cpu", dataset="auto", chapter="all", fresh=False, extra=None, html=True,
               output_dir: Path = OUTPUT) -> list[Path]:
    """Execute the selected chapters, then build the HTML. Returns the executed notebooks."""
    os.environ.setdefault("SPARSITY_STORE", str(ROOT / "results"))
    selected = chapters(chapter)
    parameters = {"profile": profile, "dataset": dataset, "fresh": fresh, **(extra or {})}
    executed = []
    for index, source in enumerate(selected, start=1):
        started = time.time()
        print(f"[{index}/{len(selected)}] {source.name} (profile={profile}, dataset={dataset})", flush=True)
        executed.append(execute_chapter(source, parameters, output_dir))
        print(f"    done in {time.time() - started:.0f} s", flush=True)
    if html:
        build_html()
        print(f"book: {ROOT / '_build' / 'html' / 'index.html'}")
    return executed
