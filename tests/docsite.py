"""Build the static site for the docs tests (tests/test_docs.py, tests/browser/test_site.py), once per process.

Two sites are built with ``docs/build.py --smoke``:

- ``fixture_site()``: a throwaway lesson written here (a plotly figure, a widget, maths, a matplotlib figure and a
  ledger record of a manifest claim judged by a rule), so that every renderer is checked even while the real
  lessons lack one of them;
- ``smoke_site()``: the real ``notebooks/NN_*.ipynb`` in smoke mode, into ``docs/_build/smoke`` (what
  ``make docs-smoke`` builds; myst-nb's cache makes a repeated run cheap, and build.py drops the cache when the
  package or the zoo changes).

Both test modules mark their tests ``xdist_group("docs-site")`` so that, under ``pytest -n 2 --dist loadgroup``,
they share one worker and therefore these builds. Also here: ``external_references``, the grep for URLs that
a page would fetch from outside.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "docs" / "build.py"
BUILD_TIMEOUT_S = int(os.environ.get("TRANSFERLAB_DOCS_TIMEOUT", "1800"))
FIXTURE_STEM = "98_fixture"


@dataclass
class Site:
    out: Path  # the build folder: html/, src/, results/, build.json
    log: str  # sphinx-build's output
    seconds: float

    @property
    def html(self) -> Path:
        return self.out / "html"

    def page(self, name: str) -> str:
        return (self.html / name).read_text(encoding="utf-8")

    def lessons(self) -> list[str]:
        return json.loads((self.out / "build.json").read_text())["lessons"]


_built: dict[str, Site | AssertionError] = {}  # process-level memo: each site built once per worker


def run_build(out: Path, notebooks: Path | None = None, *extra: str) -> Site:
    """``docs/build.py --smoke`` into ``out``; raises AssertionError with the log's tail if it fails.

    The build runs in its own process group, so that a timeout stops Sphinx and its kernels too.
    """
    cmd = [sys.executable, str(BUILD), "--smoke", "--out", str(out), *extra]
    if notebooks is not None:
        cmd += ["--notebooks", str(notebooks)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        os.killpg(proc.pid, signal.SIGTERM)
        log, _ = proc.communicate()
        raise AssertionError(f"docs build exceeded TRANSFERLAB_DOCS_TIMEOUT={BUILD_TIMEOUT_S} s: {' '.join(cmd)}"
                             f"\n...{(log or '')[-3000:]}") from err
    out.mkdir(parents=True, exist_ok=True)
    (out / "test-build.log").write_text(log)
    if proc.returncode != 0:
        raise AssertionError(f"docs build failed (exit {proc.returncode}): {' '.join(cmd)}\n...{log[-6000:]}")
    return Site(out, log, time.perf_counter() - t0)


def _once(key: str, make) -> Site:
    """``make()`` once per process; a failure is remembered too, so the next test module does not rebuild."""
    if key not in _built:
        try:
            _built[key] = make()
        except AssertionError as err:
            _built[key] = err
    if isinstance(_built[key], AssertionError):
        raise AssertionError(f"(the {key} site failed to build earlier in this session) {_built[key]}")
    return _built[key]


def fixture_notebook(directory: Path) -> Path:
    """Write the fixture lesson into ``directory`` and return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# 98 Fixture lesson\n\nA lesson that exercises every renderer of the site.\n\n"
            "## What you will learn\n- how a plotly figure renders offline\n- how a widget keeps its state\n\n"
            "Euler: $e^{i\\pi} + 1 = 0$."),
        nbformat.v4.new_code_cell("SMOKE = False\nDEVICE = None\nDATA = 'world'\nMODELS = 'zoo'\nSEED = 0",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import plotly.graph_objects as go\n"
            "fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name='</script><b>not html</b>'))\n"
            "fig.update_layout(title='fixture figure')\nfig.show()"),
        nbformat.v4.new_code_cell("import ipywidgets as widgets\n"
                                  "widgets.IntSlider(value=7, min=0, max=10, description='n')"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"),
        nbformat.v4.new_code_cell(  # a manifest claim, judged by a declared rule (epochs to a goal: lower wins)
            "from transferlab.claims import Compare, Ledger\n"
            "Ledger('98_fixture', smoke=SMOKE).judge('pretrained-converges-faster',\n"
            "    Compare('pretrained', 'random', min_effect=2, higher_is_better=False),\n"
            "    {'pretrained': [2, 3, 2], 'random': [6, 8, 7]}, measured=f'SMOKE was {SMOKE}')\n"
            "print('recorded')"),
    ]
    path = Path(directory) / f"{FIXTURE_STEM}.ipynb"
    nbformat.write(nb, path)
    return path


def fixture_site() -> Site:
    """The fixture lesson built in smoke mode into a fresh temporary folder (once per process)."""

    def make():
        tmp = Path(tempfile.mkdtemp(prefix="transferlab-docs-fixture-"))
        (tmp / "notebooks").mkdir()
        fixture_notebook(tmp / "notebooks")
        return run_build(tmp / "site", tmp / "notebooks")

    return _once("fixture", make)


def smoke_site() -> Site:
    """The real lessons built in smoke mode into docs/_build/smoke (once per process)."""
    return _once("smoke", lambda: run_build(ROOT / "docs" / "_build" / "smoke"))


# ------------------------------------------------------------------------------------------ offline check
_ATTR_REFS = re.compile(
    r"<(script|link|img|source|iframe|audio|video|embed|object)\b[^>]*?\b(src|href|data|srcset)\s*=\s*"
    r"(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I | re.S)
_CSS_REFS = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")\s]+)", re.I)


def is_external(url: str) -> bool:
    """True for a URL that leaves the site: ``http:``, ``https:``, ``ftp:`` or protocol-relative ``//host``."""
    return bool(re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", url, re.I)) and not url.strip().startswith("file:")


def external_references(html: str) -> list[str]:
    """The external URLs that a page would load: script/link/img/... attributes and CSS ``url()``/``@import``.

    Links that a reader follows (``<a href>``) are not loads and are not reported.

    Examples
    --------
    >>> external_references('<script src="https://cdn.example/x.js"></script><a href="https://ok.example">')
    ['https://cdn.example/x.js']
    """
    found = []
    for m in _ATTR_REFS.finditer(html):
        value = m.group(3) or m.group(4) or m.group(5) or ""
        urls = [part.strip().split(" ")[0] for part in value.split(",")] if m.group(2).lower() == "srcset" \
            else [value]
        found += [u for u in urls if is_external(u)]
    found += [u for u in _CSS_REFS.findall(html) if is_external(u)]
    return found
