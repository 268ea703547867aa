"""Make scripts/colab_setup.py the first code cell of every chapter in notebooks/ and book/.

`python scripts/sync_setup_cell.py` after editing colab_setup.py: the cell (id `colab-setup`, tagged
hide-input) is replaced where present and inserted before the parameters cell where not. Outputs of
the other cells are left as they are; the inserted cell has none.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
CELL_ID = "colab-setup"
SOURCE = (ROOT / "scripts" / "colab_setup.py").read_text().rstrip("\n")


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def setup_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(SOURCE, metadata={"tags": ["hide-input"], "cellView": "form"})
    cell.id = CELL_ID
    return cell


def sync(path: Path) -> bool:
    """Put the current setup cell into `path`; True when the file changed."""
    before = path.read_text()
    notebook = nbformat.reads(before, as_version=4)
    cells = [cell for cell in notebook.cells if cell.get("id") != CELL_ID]
    first_code = next(index for index, cell in enumerate(cells) if cell.cell_type == "code")
    cells.insert(first_code, setup_cell())
    notebook.cells = cells
    after = nbformat.writes(notebook) + ("\n" if before.endswith("\n") else "")  # keep the file's last line
    if after != before:
        path.write_text(after)
    return after != before


if __name__ == "__main__":
    for chapter in chapters():
        if sync(chapter):
            print(f"updated {chapter.relative_to(ROOT)}")
