"""The docs site's local Sphinx extension: offline plotly figures, the lesson list, the build environment and the
claims ledger.

- ``PlotlyMimeRenderer`` renders ``application/vnd.plotly.v1+json`` notebook outputs (what plotly stores when a
  figure is shown under nbclient) as a ``<div>`` plus ``Plotly.newPlot(...)``, using the plotly.js copied from the
  plotly wheel into ``_static/vendor``. myst-nb finds it through the ``myst_nb.mime_renderers`` entry point that
  ``transferlab_docs-0.1.dist-info`` (next to this file, on ``sys.path`` via ``conf.py``) declares.
- ``{transferlab-lessons}`` lists the lessons with the title and learning goals of each notebook's first cell.
- ``{transferlab-env}`` shows ``transferlab.device.env_report()`` of the machine that built (and executed) the site.
- ``{transferlab-claims}`` becomes the claims ledger: one row per claim that the executed notebooks recorded with
  ``transferlab.claims.Ledger`` (JSON files in ``transferlab_results_dir``). Nothing in it is typed by hand; a lesson
  that recorded nothing is a build warning (an error under ``-W``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

__all__ = ["PlotlyMimeRenderer", "plotly_html", "lesson_summary", "load_claims", "setup"]

logger = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "vendor/plotly/plotly.min.js"  # relative to _static
LESSONS_DIR = "lessons"  # notebooks live in <srcdir>/lessons/NN_*.ipynb
CLAIMS_DOC = "claims"
VERDICT_ORDER = ("reproduced", "partly", "not at this scale", "contradicted")


# --------------------------------------------------------------------------------------------------- plotly
def plotly_html(figure: dict, div_id: str) -> str:
    """HTML that draws one plotly figure (``{"data": ..., "layout": ..., "config": ...}``) with a local plotly.js.

    The script waits for ``Plotly`` (loaded in the page head) and for the DOM, and escapes ``</`` so that no
    string inside the figure can close the script element.

    Examples
    --------
    >>> html = plotly_html({"data": [{"y": [1, 2]}], "layout": {}}, "fig-1")
    >>> 'id="fig-1"' in html and "Plotly.newPlot" in html
    True
    """
    if not isinstance(figure, dict) or "data" not in figure:
        raise ValueError(f"a plotly figure needs a 'data' key, got {type(figure).__name__} "
                         f"with keys {sorted(figure) if isinstance(figure, dict) else None}")
    layout = dict(figure.get("layout") or {})
    config = {"responsive": True, "displaylogo": False, **(figure.get("config") or {})}
    height = layout.get("height") or 450
    payload = json.dumps({"data": figure["data"], "layout": layout, "config": config}, sort_keys=True)
    payload = payload.replace("</", "<\\/")
    return (
        f'<div class="transferlab-plotly"><div id="{div_id}" class="plotly-graph-div" '
        f'style="height:{int(height)}px; width:100%;"></div></div>\n'
        f'<script type="text/javascript">(function () {{\n'
        f'  var fig = {payload};\n'
        f'  function draw() {{ Plotly.newPlot("{div_id}", fig.data, fig.layout, fig.config); }}\n'
        f'  if (document.readyState === "loading") {{ document.addEventListener("DOMContentLoaded", draw); }}\n'
        f'  else {{ draw(); }}\n'
        f'}})();</script>'
    )


class PlotlyMimeRenderer:
    """myst-nb MIME renderer plugin for plotly figures (block outputs, HTML builders)."""

    # Prefer the figure JSON over any text/html fallback (which would load plotly.js from a CDN).
    mime_priority_overrides = [
        ("html", PLOTLY_MIME, 5),
        ("dirhtml", PLOTLY_MIME, 5),
        ("singlehtml", PLOTLY_MIME, 5),
    ]

    @staticmethod
    def handle_mime(renderer, data, inline: bool):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        content = data.content if isinstance(data.content, dict) else json.loads(data.string)
        digest = hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]
        div_id = f"plotly-{data.cell_index}-{data.output_index}-{digest}"
        renderer.add_js_file("transferlab_plotly", PLOTLY_JS, {})
        return [nodes.raw(text=plotly_html(content, div_id), format="html", classes=["output", "plotly"])]


# --------------------------------------------------------------------------------------------------- lessons
_HEADING = re.compile(r"^#\s+(.+?)\s*$", re.M)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_GOALS = re.compile(r"what you(?:'ll|\s+will)\s+learn|you will learn|learning (?:goals|objectives)", re.I)


def lesson_summary(path: Path) -> dict[str, Any]:
    """Title and learning goals of a lesson, read from its notebook's first markdown cell.

    The goals are the list that follows the line "What you will learn" (or "Learning goals"), as a heading, a
    bold line or a sentence; a notebook without one gets its first paragraph after the title instead.

    Examples
    --------
    >>> import nbformat, tempfile, pathlib
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
    ...     "# 01 Freezing\\n\\n## What you will learn\\n- which layers to freeze\\n- why\\n\\nMore.")])
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "01_freezing.ipynb"; nbformat.write(nb, p)
    >>> lesson_summary(p)["goals"]
    ['which layers to freeze', 'why']
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    if not cells:
        raise ValueError(f"{Path(path).name}: a lesson must open with a markdown cell (title, goals), found none")
    text = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
    m = _HEADING.search(text)
    title = m.group(1).strip() if m else Path(path).stem.replace("_", " ")
    lines = text.splitlines()
    goals: list[str] = []
    start = next((i for i, line in enumerate(lines) if _GOALS.search(line)), None)
    if start is not None:
        for line in lines[start + 1:]:
            if _LIST_ITEM.match(line):
                goals.append(_LIST_ITEM.sub("", line).strip())
            elif goals and line.startswith(("  ", "\t")) and line.strip():
                goals[-1] += " " + line.strip()  # continuation of a wrapped item
            elif goals or line.lstrip().startswith("#"):
                break
    intro = ""
    if not goals:
        body = text[m.end():] if m else text
        intro = next((p.strip() for p in re.split(r"\n\s*\n", body) if p.strip() and not p.lstrip().startswith("#")),
                     "")
    return {"stem": Path(path).stem, "title": title, "goals": goals, "intro": intro}


def _lesson_paths(app: Sphinx) -> list[Path]:
    return sorted((Path(app.srcdir) / LESSONS_DIR).glob("[0-9][0-9]_*.ipynb"))


class LessonsDirective(SphinxDirective):
    """``{transferlab-lessons}``: each lesson's title (linked) and what it teaches."""

    def run(self) -> list[nodes.Node]:
        paths = _lesson_paths(self.env.app)
        if not paths:
            logger.warning(f"no lessons found in {Path(self.env.srcdir) / LESSONS_DIR}", location=self.get_location())
            return []
        parts = []
        for path in paths:
            self.env.note_dependency(str(path))
            info = lesson_summary(path)
            parts.append(f"**{{doc}}`{info['title']} <{LESSONS_DIR}/{info['stem']}>`**\n")
            if info["goals"]:
                parts.extend(f"- {g}" for g in info["goals"])
                parts.append("")
            elif info["intro"]:
                parts.append(info["intro"] + "\n")
        return self.parse_text_to_nodes("\n".join(parts))


# --------------------------------------------------------------------------------------------------- environment
class EnvDirective(SphinxDirective):
    """``{transferlab-env}``: the build machine's ``env_report()`` and the build mode, as a table."""

    def run(self) -> list[nodes.Node]:
        from transferlab.device import env_report

        cfg = self.env.config
        rows = [("build mode", "smoke (tiny budgets: not the lessons' numbers)" if cfg.transferlab_smoke
                 else "default (the lessons' budgets)"),
                ("built", time.strftime("%Y-%m-%d %H:%M %Z"))]
        rows += [(k.replace("_", " "), str(v)) for k, v in env_report().items()]
        return [_table(["", "value"], [[nodes.Text(k), nodes.literal(text=v)] for k, v in rows], widths=[1, 3],
                       classes=["transferlab-env"])]


# --------------------------------------------------------------------------------------------------- claims ledger
class claims_placeholder(nodes.General, nodes.Element):
    """Replaced by the ledger once every notebook has been executed (``doctree-resolved``)."""


class ClaimsDirective(SphinxDirective):
    """``{transferlab-claims}``: the claims ledger built from the notebooks' recorded results."""

    def run(self) -> list[nodes.Node]:
        return [claims_placeholder()]


def load_claims(results_dir: Path) -> list[dict]:
    """Every claim record in ``results_dir/*.json`` (the files ``transferlab.claims.Ledger`` writes), in order.

    The package's own reader (``transferlab.claims.load_records``): a file that is not a ledger raises
    ``ValueError`` naming it, rather than showing a partial ledger.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> load_claims(pathlib.Path(tempfile.mkdtemp()))
    []
    """
    from transferlab.claims import load_records

    return load_records(results_dir) if Path(results_dir).is_dir() else []


def _table(header: list[str], rows: list[list[nodes.Node]], widths: list[int], classes=()) -> nodes.table:
    table = nodes.table(classes=list(classes) + ["colwidths-given"])  # the HTML writer emits the widths only then
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    thead = nodes.thead()
    group += thead
    row = nodes.row()
    for h in header:
        row += nodes.entry("", nodes.paragraph(text=h))
    thead += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += cell if isinstance(cell, (nodes.paragraph, nodes.table)) else nodes.paragraph("", "", cell)
            row += entry
        body += row
    return table


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _verdict(v: str) -> nodes.inline:
    return nodes.inline(text=v, classes=["transferlab-verdict", "verdict-" + v.replace(" ", "-")])


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, inside dicts and lists too (the ledger keeps full precision in its JSON)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _value_text(value: Any) -> str:
    """A recorded value as the ledger's last column shows it: rounded, and cut after 80 characters.

    >>> _value_text({"finetune": 0.872, "scratch": 0.5379999999999999}), _value_text(3.3333333333333335)
    ('{"finetune": 0.872, "scratch": 0.538}', '3.333')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(_rounded(value))
    return text if len(text) <= 80 else text[:77] + "..."


def build_ledger(app: Sphinx, fromdocname: str, records: list[dict], lessons: list[str]) -> list[nodes.Node]:
    """The ledger's nodes: a verdict count, then one table per lesson (claim, measured, verdict, value)."""
    out: list[nodes.Node] = []
    counts = Counter(r["verdict"] for r in records)
    summary = nodes.paragraph()
    n_nb = len({r["notebook"] for r in records})
    summary += nodes.Text(f"{_plural(len(records), 'claim')} measured by {_plural(n_nb, 'lesson')}"
                          + (": " if records else "."))
    for i, v in enumerate(sorted(counts, key=lambda v: VERDICT_ORDER.index(v) if v in VERDICT_ORDER else 99)):
        if i:
            summary += nodes.Text(", ")
        summary += nodes.Text(f"{counts[v]} ")
        summary += _verdict(v)
    if records:
        summary += nodes.Text(".")
    out.append(summary)
    if any(r.get("smoke") for r in records):
        note = nodes.warning()
        para = nodes.paragraph(text="These results come from a smoke build: every experiment ran on a tiny budget to "
                                    "check that the lessons work, so the figures and verdicts are not the lessons' "
                                    "findings. ")
        para += nodes.literal(text="make docs")
        para += nodes.Text(" builds the site with the lessons' budgets.")
        note += para
        out.append(note)
    by_nb: dict[str, list[dict]] = {}
    for r in records:
        by_nb.setdefault(r["notebook"], []).append(r)
    for nb in sorted(by_nb):
        section = nodes.section(ids=[f"ledger-{nb}"], names=[f"ledger-{nb}"])
        title = nodes.title()
        docname = f"{LESSONS_DIR}/{nb}"
        if nb in lessons:
            ref = nodes.reference("", "", internal=True,
                                  refuri=app.builder.get_relative_uri(fromdocname, docname))
            ref += nodes.Text(app.env.titles[docname].astext() if docname in app.env.titles else nb)
            title += ref
        else:
            title += nodes.Text(nb)
        section += title
        rows = []
        for r in by_nb[nb]:
            claim = nodes.paragraph()
            claim += nodes.strong(text=r["claim"])
            claim += nodes.Text(" ")
            claim += nodes.literal(text=r["id"])
            if r.get("source"):
                claim += nodes.Text(" ")
                claim += nodes.emphasis(text=f"({r['source']})")
            rows.append([claim, nodes.Text(r["measured"]), _verdict(r["verdict"]),
                         nodes.literal(text=_value_text(r.get("value")))])
        section += _table(["claim", "measured", "verdict", "value"], rows, widths=[8, 10, 5, 6],
                          classes=["transferlab-ledger"])
        out.append(section)
    return out


def _fill_claims(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    placeholders = list(doctree.findall(claims_placeholder))
    if not placeholders:
        return
    results = Path(app.config.transferlab_results_dir or "")
    if not app.config.transferlab_results_dir or not results.is_dir():
        logger.warning(f"claims ledger: results folder {str(results)!r} does not exist; the notebooks record their "
                       f"claims there when executed with TRANSFERLAB_RESULTS set (docs/build.py does this)",
                       location=docname)
        records = []
    else:
        try:
            records = load_claims(results)
        except ValueError as err:
            logger.warning(f"claims ledger: {err}", location=docname)
            records = []
    lessons = [p.stem for p in _lesson_paths(app)]
    recorded = {r["notebook"] for r in records}
    for name in sorted(recorded - set(lessons)):
        logger.warning(f"claims ledger: results for {name!r} match no lesson in {LESSONS_DIR}/ (a Ledger must be "
                       f"named after its notebook's file name, e.g. Ledger({lessons[0] if lessons else '00_intro'!r}))",
                       location=docname)
    for stem in lessons:
        if stem not in recorded:
            logger.warning(f"claims ledger: lesson {stem} recorded no claims in {results} (was it executed with "
                           f"TRANSFERLAB_RESULTS set? a stale execution cache? rebuild with --clean)",
                           location=docname)
    for ph in placeholders:
        ph.replace_self(build_ledger(app, docname, records, lessons))


def _always_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """The landing page and the ledger depend on every notebook (and its run): re-read them on every build."""
    return [d for d in ("index", CLAIMS_DOC) if d in env.found_docs]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("transferlab_results_dir", "", "env", types=frozenset({str}))
    app.add_config_value("transferlab_smoke", False, "env", types=frozenset({bool}))
    app.add_node(claims_placeholder)
    app.add_directive("transferlab-lessons", LessonsDirective)
    app.add_directive("transferlab-env", EnvDirective)
    app.add_directive("transferlab-claims", ClaimsDirective)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("doctree-resolved", _fill_claims)
    app.add_css_file("transferlab.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
