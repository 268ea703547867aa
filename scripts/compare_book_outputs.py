"""Compare the text and table outputs of two folders of executed chapters (issue 21's acceptance).

    python scripts/compare_book_outputs.py BEFORE_DIR AFTER_DIR

For every chapter notebook present in both folders, every code cell's outputs are compared as text:
stdout streams, and the text/plain, text/markdown, text/html and text/latex parts of display and
result outputs, with object addresses and pandas' random table ids masked (VOLATILE). Images
(image/png, image/svg+xml) are left out (rendering noise), as are stderr streams (progress bars with
timings) and execution metadata. Exit code 0 when every compared output
is identical, 1 otherwise (each difference is printed with its notebook, cell and a unified diff).
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

import nbformat

TEXT_PARTS = ("text/plain", "text/markdown", "text/html", "text/latex")
# What differs between two executions of the same code on the same data: object addresses in reprs
# ('<... Styler at 0x7fe2...>') and the random ids pandas gives each styled table ('T_1195c').
VOLATILE = [(re.compile(r" at 0x[0-9a-f]+"), " at 0x…"), (re.compile(r"\bT_[0-9a-f]{5}(?=[_\"\s])"), "T_…")]


def normalized(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def cell_texts(cell) -> list[str]:
    """The comparable text of one code cell's outputs, in order."""
    texts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            if output.name == "stdout":
                texts.append(f"[stdout]\n{output.text}")
        elif output.output_type in ("display_data", "execute_result"):
            for part in TEXT_PARTS:
                if part in output.data:
                    value = output.data[part]
                    texts.append(f"[{part}]\n" + normalized(value if isinstance(value, str) else "".join(value)))
        elif output.output_type == "error":
            texts.append(f"[error]\n{output.ename}: {output.evalue}")
    return texts


def notebook_texts(path: Path) -> list[tuple[str, list[str]]]:
    """(cell label, its output texts) for every code cell of the notebook at `path`."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [(f"code cell {index} ({cell.get('id', '?')})", cell_texts(cell)) for index, cell in enumerate(code)]


def differences(before: Path, after: Path) -> list[str]:
    """One report per differing cell (or per notebook whose cell count differs)."""
    found = []
    old, new = notebook_texts(before), notebook_texts(after)
    if len(old) != len(new):
        return [f"{after.name}: {len(old)} code cells before, {len(new)} after"]
    for (label, first), (_, second) in zip(old, new):
        if first != second:
            diff = difflib.unified_diff("\n".join(first).splitlines(), "\n".join(second).splitlines(),
                                        "before", "after", lineterm="", n=1)
            found.append(f"{after.name} {label}:\n" + "\n".join(list(diff)[:60]))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    names = sorted({p.name for p in args.before.glob("*.ipynb")} & {p.name for p in args.after.glob("*.ipynb")})
    if not names:
        print(f"error: no chapter notebook in both {args.before} and {args.after}", file=sys.stderr)
        return 2
    reports = [report for name in names for report in differences(args.before / name, args.after / name)]
    cells = sum(len(notebook_texts(args.after / name)) for name in names)
    for report in reports:
        print(report, end="\n\n")
    print(f"{len(names)} chapters, {cells} code cells compared: {len(reports)} differ")
    return 1 if reports else 0


if __name__ == "__main__":
    raise SystemExit(main())
