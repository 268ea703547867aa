"""Check the links inside a built book: `python scripts/check_links.py [_build/html]`.

Every relative href/src of every HTML page must name a file of the build (and its #fragment an id on
that page). External links are not fetched, with one exception caught offline: a file name that MyST's
linkify turned into a web address (`BENCHMARKS.md` -> http://BENCHMARKS.md). Standard library only, so
the Pages workflow can run it without installing the package. Exits 1 and lists the links when any
is broken.
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINK_ATTRIBUTES = {"href", "src"}
SKIPPED_SCHEMES = {"mailto", "javascript", "data", "tel"}
# A host ending like a file of this repository is a file name that linkify mistook for a web address.
FILE_LIKE_HOST = re.compile(r"\.(md|py|ipynb|txt|yml|yaml|toml|json|sh|cfg|ini)$", re.IGNORECASE)


class _Links(HTMLParser):
    """Collects link targets and element ids of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in LINK_ATTRIBUTES and value is not None:
                self.links.append(value.strip())
            elif name in ("id", "name") and value:
                self.ids.add(value)


@lru_cache(maxsize=None)
def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return parser


def _problem(page: Path, link: str, root: Path) -> str | None:
    """Why `link` on `page` is broken, or None when it resolves."""
    parts = urlsplit(link)
    if parts.scheme in SKIPPED_SCHEMES:
        return None
    if parts.scheme or parts.netloc:
        return "a file name turned into a web address" if FILE_LIKE_HOST.search(parts.hostname or "") else None
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    if root not in target.parents and target != root:
        return "points outside the built site"
    if not target.is_file():
        return "no such file in the build"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target).ids:
        return f"no id {parts.fragment!r} on {target.relative_to(root)}"
    return None


def broken_links(root: Path | str) -> list[str]:
    """'page: link (why)' for every broken link of the HTML build in `root`."""
    root = Path(root).resolve()
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"root={str(root)!r} holds no index.html; build the book first (jupyter-book build .)")
    found = []
    for page in sorted(root.rglob("*.html")):
        if "_static" in page.relative_to(root).parts:
            continue
        for link in sorted(set(_parse(page).links)):
            why = _problem(page, link, root)
            if why:
                found.append(f"{page.relative_to(root)}: {link} ({why})")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("_build/html")
    found = broken_links(root)
    for line in found:
        print(line)
    pages = sum(1 for _ in root.rglob("*.html"))
    print(f"{len(found)} broken link(s) in {pages} pages under {root}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
