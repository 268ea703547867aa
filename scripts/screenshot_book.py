"""Screenshot every chapter of the built book at a 1280-pixel-wide window and report what overflows.

    python scripts/screenshot_book.py                  # after `jupyter-book build .` (or `make book`)
    python scripts/screenshot_book.py --html _build/html --out _build/screenshots --width 1280

Serves `--html` on localhost, opens each chapter (book/*.html; `--pages` to choose) in headless Chromium
(Debian's `chromium` package, or $CHROMIUM) and writes `<out>/<chapter>.png` (the whole page) plus
`<out>/report.json`. Per page it reports whether the document scrolls sideways (scrollWidth >
clientWidth) and which elements of the text column are wider than the column: ones that stick out of
it, and ones whose content is cut off behind a horizontal scroll bar (a wide table or a long code line).
Exit status 1 when any page overflows, 0 when none does, 2 when Chromium is missing.

A tool for looking at the next change, not part of `make test`. It needs only Chromium and the
standard library: the measuring script is injected by the local server into a second, unseen load of
each page, whose DOM Chromium prints (`--dump-dom`). Off-line, MathJax (loaded from a CDN) does not
render and formulas show as TeX source, unless `--mathjax DIR` names a local copy of MathJax 3's es5
folder (e.g. the `static/mathjax` folder of the `sphinx-mathjax-offline` wheel): the server then
rewrites the CDN address to it, and the report counts the formulas MathJax rendered ('math_rendered')
and the `$$` TeX source left in the text ('math_source_left').
"""
from __future__ import annotations

import argparse
import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT_ID = "overflow-report"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/"
MATHJAX_LOCAL = "/_mathjax/"  # where the server maps --mathjax
MAX_HEIGHT = 20000  # px: Chromium's screenshot of a taller window is cut here
# Measures the page after load and writes the result as JSON into a <pre id="overflow-report">.
MEASURE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const doc = document.documentElement;
  const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const box = column.getBoundingClientRect();
  const wide = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
      + (el.classList.length ? "." + [...el.classList].slice(0, 3).join(".") : "");
  const kind = (el) => el.matches("table, table *") || el.querySelector("table") ? "table"
      : el.matches("pre, pre *, .highlight, .highlight *") || el.querySelector("pre") ? "code or output"
      : el.matches("img, svg, canvas") || el.querySelector("img") ? "image"
      : el.matches(".math, mjx-container, .MathJax") || el.querySelector(".math, mjx-container") ? "math" : "text";
  for (const el of column.querySelectorAll("*")) {
    if (wide.some((w) => w.node.contains(el))) continue;  // report the outermost offender only
    if (el.checkVisibility && !el.checkVisibility()) continue;  // inside a collapsed cell
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const sticksOut = r.right > box.right + 1;
    const overflowX = getComputedStyle(el).overflowX;
    // A rendered formula's hidden assistive MathML (clipped to 1 px) widens scrollWidth: judge by the drawn formula.
    const drawn = el.querySelector(":scope > mjx-container > mjx-math");
    const contentWidth = drawn ? drawn.getBoundingClientRect().width : el.scrollWidth;
    const clipped = el.clientWidth > 0 && contentWidth > el.clientWidth + 1 && overflowX !== "visible";
    if (sticksOut || clipped) {
      wide.push({node: el, element: describe(el), kind: kind(el), how: sticksOut ? "sticks out" : "scrolls",
                 width: Math.round(sticksOut ? r.width : contentWidth), visible: Math.round(el.clientWidth),
                 text: (el.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 80)});
    }
  }
  const out = document.createElement("pre");
  out.id = "%s";
  out.textContent = JSON.stringify({
    page_scrolls_sideways: doc.scrollWidth > doc.clientWidth, scroll_width: doc.scrollWidth,
    client_width: doc.clientWidth, height: doc.scrollHeight, column_width: Math.round(box.width),
    math_rendered: column.querySelectorAll("mjx-container").length,
    math_source_left: (column.innerText.match(/\\$\\$/g) || []).length,
    wide: wide.map(({node, ...rest}) => rest)});
  document.body.appendChild(out);
}, 500));
</script>
""" % REPORT_ID


class Handler(SimpleHTTPRequestHandler):
    """Serves the built site; `?measure` pages get the measuring script before </body>; with a local
    MathJax (`mathjax`), pages load it instead of the CDN's."""

    mathjax: Path | None = None

    def log_message(self, *args):  # quiet
        pass

    def translate_path(self, path):
        if self.mathjax is not None and path.startswith(MATHJAX_LOCAL):
            return str(self.mathjax / path[len(MATHJAX_LOCAL):].partition("?")[0])
        return super().translate_path(path)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        measuring = "measure" in query.split("&")
        if not path.endswith(".html") or not (measuring or self.mathjax is not None):
            return super().do_GET()
        file = Path(self.translate_path(path))
        if not file.is_file():
            return super().do_GET()
        page = file.read_text(encoding="utf-8")
        if self.mathjax is not None:
            page = page.replace(MATHJAX_CDN, MATHJAX_LOCAL)
        if measuring:
            page = page.replace("</body>", MEASURE + "</body>", 1)
        page = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


def chromium() -> str | None:
    """The Chromium executable: $CHROMIUM, else `chromium` / `chromium-browser` / `google-chrome` on PATH."""
    candidates = [os.environ.get("CHROMIUM")] + ["chromium", "chromium-browser", "google-chrome"]
    return next((found for name in candidates if name and (found := shutil.which(name))), None)


def run_chromium(browser: str, profile: str, *args: str, timeout: float = 120) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout


def measure(browser: str, profile: str, url: str, width: int) -> dict:
    """The overflow report of one page (see MEASURE), at a `width`-pixel window."""
    dom = run_chromium(browser, profile, f"--window-size={width},1000", "--virtual-time-budget=15000", "--dump-dom",
                       url + "?measure")
    found = re.search(rf'<pre id="{REPORT_ID}">(.*?)</pre>', dom, re.S)
    if found is None:
        return {"error": "the measuring script did not report (page failed to load?)"}
    return json.loads(html.unescape(found.group(1)))


def screenshot(browser: str, profile: str, url: str, width: int, height: int, path: Path) -> None:
    run_chromium(browser, profile, f"--window-size={width},{min(max(height, 800), MAX_HEIGHT)}",
                 "--virtual-time-budget=15000", f"--screenshot={path}", url)


def serve(folder: Path, mathjax: Path | None = None) -> ThreadingHTTPServer:
    handler = type("SiteHandler", (Handler,), {"mathjax": mathjax})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def summary_line(name: str, report: dict) -> str:
    if "error" in report:
        return f"{name}: {report['error']}"
    sideways = "page scrolls sideways" if report["page_scrolls_sideways"] else "no sideways page scroll"
    if report.get("math_rendered") or report.get("math_source_left"):
        sideways += f"; {report['math_rendered']} formulas rendered, {report['math_source_left']} $$ left as source"
    if not report["wide"]:
        return f"{name}: OK ({sideways}; column {report['column_width']} px)"
    kinds = sorted({w["kind"] for w in report["wide"]})
    return (f"{name}: {len(report['wide'])} element(s) wider than the {report['column_width']} px column "
            f"({', '.join(kinds)}); {sideways}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built site (default: _build/html)")
    parser.add_argument("--out", default=str(ROOT / "_build" / "screenshots"), help="where PNGs and report.json go")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default: 1280)")
    parser.add_argument("--pages", nargs="*", help="pages relative to --html (default: every book/*.html)")
    parser.add_argument("--mathjax", type=Path, help="a local MathJax 3 es5 folder, served instead of the CDN's")
    args = parser.parse_args(argv)
    browser = chromium()
    if browser is None:
        print("Chromium not found: install Debian's `chromium` package or set $CHROMIUM", file=sys.stderr)
        return 2
    site, out = Path(args.html), Path(args.out)
    pages = args.pages or sorted(str(p.relative_to(site)) for p in (site / "book").glob("*.html"))
    if not pages:
        print(f"no chapters under {site}/book: build the book first (jupyter-book build .)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.mathjax is not None and not (args.mathjax / "tex-mml-chtml.js").is_file():
        print(f"--mathjax {args.mathjax}: no tex-mml-chtml.js there", file=sys.stderr)
        return 2
    server = serve(site, args.mathjax)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    reports = {}
    with tempfile.TemporaryDirectory() as profile:
        for page in pages:
            name = Path(page).stem
            report = measure(browser, profile, base + page, args.width)
            screenshot(browser, profile, base + page, args.width, report.get("height", 4000), out / f"{name}.png")
            reports[page] = report
            print(summary_line(name, report), flush=True)
            for wide in report.get("wide", []):
                print(f"    {wide['kind']:>14}: {wide['element']} {wide['how']}, {wide['width']} px "
                      f"(visible {wide['visible']}): {wide['text']!r}", flush=True)
    server.shutdown()
    (out / "report.json").write_text(json.dumps({"width": args.width, "pages": reports}, indent=1))
    print(f"screenshots and report.json in {out}")
    overflowing = [p for p, r in reports.items() if "error" in r or r["wide"] or r["page_scrolls_sideways"]]
    return 1 if overflowing else 0


if __name__ == "__main__":
    sys.exit(main())
