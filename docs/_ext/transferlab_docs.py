"""The docs site's local Sphinx extension: offline plotly figures, the lesson list, the build environment and the
claims ledger.

- ``PlotlyMimeRenderer`` renders ``application/vnd.plotly.v1+json`` notebook outputs (what plotly stores when a
  figure is shown under nbclient) as a ``<div>`` plus ``Plotly.newPlot(...)``, using the plotly.js copied from the
  plotly wheel into ``_static/vendor``. myst-nb finds it through the ``myst_nb.mime_renderers`` entry point that
  ``transferlab_docs-0.1.dist-info`` (next to this file, on ``sys.path`` via ``conf.py``) declares.
- ``{transferlab-lessons}`` lists the lessons with the title and learning goals of each notebook's first cell.
- ``{transferlab-env}`` shows ``transferlab.device.env_report()`` of the machine that built (and executed) the site.
- ``{transferlab-claims}`` becomes the claims ledger: every claim of the manifest
  (``transferlab.claims.MANIFEST``), grouped by source, with what the executed notebooks recorded for it with
  ``transferlab.claims.Ledger`` (JSON files in ``transferlab_results_dir``): the measured text, the verdict and the
  value, and for a verdict reached by a declared rule (``Ledger.judge``) the rule in words and its evidence; a
  claim no lesson measures shows "not measured yet" and why. Nothing in it is typed by hand. A lesson that recorded
  nothing, and a record whose id is not in the manifest, are build warnings (errors under ``-W``).
- ``{transferlab-coverage}`` (landing page): "N of M claims of the source material measured (P%)" in this build,
  and the same per source, linked to the source's section of the ledger.
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

__all__ = ["PlotlyMimeRenderer", "plotly_html", "lesson_summary", "load_claims", "build_ledger", "build_coverage",
           "evidence_text", "split_records", "setup"]

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


class coverage_placeholder(nodes.General, nodes.Element):
    """Replaced by the coverage of the source material once every notebook has been executed."""


class ClaimsDirective(SphinxDirective):
    """``{transferlab-claims}``: every claim of the manifest, grouped by source, with what this build measured."""

    def run(self) -> list[nodes.Node]:
        return [claims_placeholder()]


class CoverageDirective(SphinxDirective):
    """``{transferlab-coverage}``: how many of the sources' claims this build measured, overall and per source."""

    def run(self) -> list[nodes.Node]:
        return [coverage_placeholder()]


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


def _table(header: list[str], rows: list[list[Any]], widths: list[int], classes=()) -> nodes.table:
    """A table with set column widths; a cell is a node (wrapped in a paragraph unless it is a block) or a list
    of block nodes."""
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
            if isinstance(cell, list):
                entry.extend(cell)
            elif isinstance(cell, (nodes.paragraph, nodes.table)):
                entry += cell
            else:
                entry += nodes.paragraph("", "", cell)
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


def _num(v: Any) -> str:
    """A number at 3 significant digits; the ledger's "NaN"/"Infinity" strings as they are."""
    return f"{v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def evidence_text(rec: dict) -> str:
    """The evidence behind a verdict reached by a rule (``Ledger.judge``): estimate, interval and n.

    Empty for a record made with ``Ledger.record`` (no rule). For an ``Across`` rule the interval is the range of
    the per-setting estimates and n the number of settings.

    Examples
    --------
    >>> evidence_text({"rule": {"kind": "compare", "confidence": 0.95},
    ...                "evidence": {"estimate": 0.31234, "interval": [0.1, 0.52], "n": 3}})
    'estimate 0.312, 95% interval 0.1 to 0.52, n=3'
    >>> evidence_text({"rule": {"kind": "across"}, "evidence": {"estimate": 1.5, "interval": [1, 2], "n": 4}})
    'mean 1.5 over 4 settings (range 1 to 2)'
    """
    rule = rec.get("rule")
    if not isinstance(rule, dict):
        return ""
    ev = rec.get("evidence") if isinstance(rec.get("evidence"), dict) else {}
    val = rec.get("value") if isinstance(rec.get("value"), dict) else {}
    est, interval, n = (ev.get(k, val.get(k)) for k in ("estimate", "interval", "n"))
    if est is None:
        return ""
    lo, hi = interval if isinstance(interval, (list, tuple)) and len(interval) == 2 else (est, est)
    if rule.get("kind") == "across":
        return f"mean {_num(est)} over {n} settings (range {_num(lo)} to {_num(hi)})"
    conf = rule.get("confidence")
    level = f"{conf:.0%} interval" if isinstance(conf, (int, float)) else "interval"
    return f"estimate {_num(est)}, {level} {_num(lo)} to {_num(hi)}, n={n}"


def _setting_text(rec: dict) -> str:
    from transferlab.claims import DEFAULT_SETTING

    setting = rec.get("setting")
    if not isinstance(setting, dict) or setting == DEFAULT_SETTING:
        return ""
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def split_records(records: list[dict], manifest=None) -> tuple[dict[str, list[dict]], list[dict]]:
    """``({claim id: its records}, [records whose id is not in the manifest])``, each in the records' order."""
    from transferlab.claims import MANIFEST

    manifest = MANIFEST if manifest is None else manifest
    known: dict[str, list[dict]] = {}
    unknown = []
    for r in records:
        if r["id"] in manifest:
            known.setdefault(r["id"], []).append(r)
        else:
            unknown.append(r)
    return known, unknown


def _claim_cell(text: str, claim_id: str) -> nodes.paragraph:
    para = nodes.paragraph()
    para += nodes.strong(text=text)
    para += nodes.Text(" ")
    para += nodes.literal(text=claim_id)
    return para


def _lessons_cell(stems: list[str], lesson_ref) -> nodes.paragraph:
    para = nodes.paragraph()
    for i, stem in enumerate(stems):
        if i:
            para += nodes.Text(", ")
        para += lesson_ref(stem)
    if not stems:
        para += nodes.Text("—")
    return para


def _record_cells(recs: list[dict], lesson_ref) -> tuple[list[nodes.Node], list[nodes.Node], list[nodes.Node]]:
    """The measured / verdict / value cells of one claim's records (one paragraph per record in each)."""
    measured, verdicts, values = [], [], []
    several = len(recs) > 1
    for r in recs:
        para = nodes.paragraph()
        if several:
            para += lesson_ref(r["notebook"])
            para += nodes.Text(": ")
        if setting := _setting_text(r):
            para += nodes.emphasis(text=f"({setting}) ")
        para += nodes.Text(r["measured"])
        measured.append(para)
        if r.get("rule_text"):
            rule = nodes.paragraph(classes=["transferlab-rule"])
            rule += nodes.emphasis(text="Rule: ")
            rule += nodes.Text(r["rule_text"])
            measured.append(rule)
        verdicts.append(nodes.paragraph("", "", _verdict(r["verdict"])))
        evidence = evidence_text(r)
        values.append(nodes.paragraph("", "", nodes.Text(evidence)) if evidence
                      else nodes.paragraph("", "", nodes.literal(text=_value_text(r.get("value")))))
    return measured, verdicts, values


def _entry_row(entry, recs: list[dict], lesson_ref) -> list[Any]:
    if recs:
        stems = list(dict.fromkeys(r["notebook"] for r in recs))
        measured, verdicts, values = _record_cells(recs, lesson_ref)
        return [_claim_cell(entry.says, entry.id), _lessons_cell(stems, lesson_ref), measured, verdicts, values]
    if entry.lessons:  # a lesson is written to record it, but this run has no record of it
        why = nodes.paragraph(text="No record in this build, although the lesson is written to record it (does "
                                   "its cell skip the claim in this setting?).")
        return [_claim_cell(entry.says, entry.id), _lessons_cell(list(entry.lessons), lesson_ref), [why],
                _verdict("no record"), nodes.Text("")]
    why = nodes.paragraph(text=entry.why[:1].upper() + entry.why[1:] + ("" if entry.why.endswith(".") else "."))
    return [_claim_cell(entry.says, entry.id), _lessons_cell([], lesson_ref), [why], _verdict("not measured yet"),
            nodes.Text("")]


LEDGER_HEADER = ["claim", "lesson", "measured", "verdict", "value"]
LEDGER_WIDTHS = [8, 3, 10, 4, 5]


def _source_line(source, n_claims: int, n_measured: int) -> nodes.paragraph:
    para = nodes.paragraph(classes=["transferlab-source"])
    para += nodes.Text(f"{source.author}; {source.kind}")
    if source.url:
        para += nodes.Text(": ")
        para += nodes.reference("", source.url, refuri=source.url)
    para += nodes.Text(f". {n_measured} of {_plural(n_claims, 'claim')} measured in this build.")
    return para


def build_ledger(records: list[dict], lesson_ref, *, smoke: bool | None = None, manifest=None,
                 sources=None) -> list[nodes.Node]:
    """The ledger's nodes: a summary, then one section per source (``id="ledger-<source key>"``) with a row per
    manifest entry, then the records whose id is not in the manifest (if any).

    ``lesson_ref(stem)`` returns the node that names a lesson (a link in the site). A row shows the run's
    records of its claim (measured text, and for ``Ledger.judge`` records the rule in words and the evidence),
    or "not measured yet" with the manifest's reason. ``smoke`` (default: any record says so) adds the smoke note.
    """
    from transferlab.claims import MANIFEST, SOURCES

    manifest = MANIFEST if manifest is None else manifest
    sources = SOURCES if sources is None else sources
    known, unknown = split_records(records, manifest)
    groups: dict[str, list] = {key: [] for key in sources}
    for e in manifest.values():
        groups.setdefault(e.source, []).append(e)
    out: list[nodes.Node] = []

    measured_recs = [r for recs in known.values() for r in recs]
    n_nb = len({r["notebook"] for r in measured_recs})
    silent = sum(1 for e in manifest.values() if e.lessons and e.id not in known)
    summary = nodes.paragraph(classes=["transferlab-ledger-summary"])
    summary += nodes.Text(f"{_plural(len(manifest), 'claim')} of the source material, from "
                          f"{_plural(len([k for k in groups if groups[k]]), 'source')}. ")
    summary += nodes.strong(text=f"{_plural(len(known), 'claim')} measured by {_plural(n_nb, 'lesson')} in this "
                                 f"build ({_percent(len(known), len(manifest))})")
    counts = Counter(r["verdict"] for r in measured_recs)
    summary += nodes.Text(": " if counts else ". ")
    for i, v in enumerate(sorted(counts, key=lambda v: VERDICT_ORDER.index(v) if v in VERDICT_ORDER else 99)):
        if i:
            summary += nodes.Text(", ")
        summary += nodes.Text(f"{counts[v]} ")
        summary += _verdict(v)
    if counts:
        summary += nodes.Text(". ")
    summary += nodes.Text(f"{len(manifest) - len(known)} not measured in this build"
                          + (f" ({silent} of them in a lesson's plan, with no record in this build)" if silent else "")
                          + ", each listed below with the reason.")
    out.append(summary)
    if smoke if smoke is not None else any(r.get("smoke") for r in records):
        note = nodes.warning()
        para = nodes.paragraph(text="These results come from a smoke build: every experiment ran on a tiny budget to "
                                    "check that the lessons work, so the figures and verdicts are not the lessons' "
                                    "findings. ")
        para += nodes.literal(text="make docs")
        para += nodes.Text(" builds the site with the lessons' budgets.")
        note += para
        out.append(note)

    for key, entries in groups.items():
        if not entries:
            continue
        source = sources[key]
        section = nodes.section(ids=[f"ledger-{key}"], names=[f"ledger-{key}"])
        section += nodes.title(text=source.title)
        section += _source_line(source, len(entries), sum(e.id in known for e in entries))
        rows = [_entry_row(e, known.get(e.id, []), lesson_ref) for e in entries]
        section += _table(LEDGER_HEADER, rows, widths=LEDGER_WIDTHS, classes=["transferlab-ledger"])
        out.append(section)

    if unknown:
        section = nodes.section(ids=["ledger-unlisted"], names=["ledger-unlisted"])
        section += nodes.title(text="Recorded, but not in the manifest")
        section += nodes.paragraph(text="These records carry claim ids that transferlab/claims/manifest.py does not "
                                        "list (the build warns about each): add an entry, or fix the id.")
        rows = []
        for r in unknown:
            measured, verdicts, values = _record_cells([r], lesson_ref)
            rows.append([_claim_cell(r["claim"], r["id"]), _lessons_cell([r["notebook"]], lesson_ref), measured,
                         verdicts, values])
        section += _table(LEDGER_HEADER, rows, widths=LEDGER_WIDTHS, classes=["transferlab-ledger"])
        out.append(section)
    return out


def _percent(n: int, total: int) -> str:
    """``n / total`` as a whole percentage; a non-zero share never rounds to 0% or a partial one to 100%.

    >>> _percent(1, 94), _percent(32, 94), _percent(0, 5), _percent(199, 200)
    ('1%', '34%', '0%', '99%')
    """
    if not total:
        return "0%"
    p = round(100 * n / total)
    return f"{min(max(p, 1 if n else 0), 99 if n < total else 100)}%"


def build_coverage(records: list[dict], source_ref=None, *, manifest=None, sources=None) -> list[nodes.Node]:
    """The landing page's coverage: "N of M claims of the source material measured (P%)", then a table per source.

    A claim counts as measured when this build has a record of it. ``source_ref(key, title)`` returns the node
    naming a source (a link to its section of the ledger page); default: the title as text.
    """
    from transferlab.claims import MANIFEST, SOURCES

    manifest = MANIFEST if manifest is None else manifest
    sources = SOURCES if sources is None else sources
    known, _ = split_records(records, manifest)
    planned = sum(bool(e.lessons) for e in manifest.values())
    head = nodes.paragraph(classes=["transferlab-coverage-summary"])
    head += nodes.strong(text=f"{len(known)} of {_plural(len(manifest), 'claim')} of the source material measured "
                              f"({_percent(len(known), len(manifest))})")
    head += nodes.Text(f" in this build; the lessons are written to measure {planned}. The claims ledger lists every "
                       f"claim with its verdict, or with the reason it is not measured yet.")
    rows = []
    for key, source in sources.items():
        entries = [e for e in manifest.values() if e.source == key]
        if not entries:
            continue
        n = sum(e.id in known for e in entries)
        name = source_ref(key, source.title) if source_ref else nodes.Text(source.title)
        rows.append([name, nodes.Text(str(len(entries))), nodes.Text(str(n)),
                     nodes.Text(_percent(n, len(entries)))])
    table = _table(["source", "claims", "measured", "coverage"], rows, widths=[12, 3, 3, 3],
                   classes=["transferlab-ledger", "transferlab-coverage"])
    return [head, table]


def _load_run(app: Sphinx, docname: str, warn: bool) -> list[dict]:
    results = Path(app.config.transferlab_results_dir or "")
    if not app.config.transferlab_results_dir or not results.is_dir():
        if warn:
            logger.warning(f"claims ledger: results folder {str(results)!r} does not exist; the notebooks record "
                           f"their claims there when executed with TRANSFERLAB_RESULTS set (docs/build.py does this)",
                           location=docname)
        return []
    try:
        return load_claims(results)
    except ValueError as err:
        if warn:
            logger.warning(f"claims ledger: {err}", location=docname)
        return []


def _lesson_ref(app: Sphinx, fromdocname: str, lessons: list[str]):
    def ref(stem: str) -> nodes.Node:
        docname = f"{LESSONS_DIR}/{stem}"
        label = f"lesson {stem[:2]}" if re.match(r"\d\d_", stem) else stem
        if stem not in lessons:  # a lesson of the manifest that this build does not have
            return nodes.inline(text=label, classes=["transferlab-lesson-absent"])
        title = app.env.titles[docname].astext() if docname in app.env.titles else stem
        node = nodes.reference("", "", internal=True, refuri=app.builder.get_relative_uri(fromdocname, docname),
                               reftitle=title)
        node += nodes.Text(label)
        return node

    return ref


def _fill_claims(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    ledgers = list(doctree.findall(claims_placeholder))
    covers = list(doctree.findall(coverage_placeholder))
    if not ledgers and not covers:
        return
    records = _load_run(app, docname, warn=bool(ledgers))
    lessons = [p.stem for p in _lesson_paths(app)]
    if ledgers:
        from transferlab.claims import MANIFEST

        recorded = {r["notebook"] for r in records}
        for name in sorted(recorded - set(lessons)):
            logger.warning(f"claims ledger: results for {name!r} match no lesson in {LESSONS_DIR}/ (a Ledger must be "
                           f"named after its notebook's file name, e.g. "
                           f"Ledger({lessons[0] if lessons else '00_intro'!r}))", location=docname)
        for stem in lessons:
            if stem not in recorded:
                logger.warning(f"claims ledger: lesson {stem} recorded no claims in "
                               f"{app.config.transferlab_results_dir} (was it executed with TRANSFERLAB_RESULTS set? "
                               f"a stale execution cache? rebuild with --clean)", location=docname)
        for r in records:
            if r["id"] not in MANIFEST:
                logger.warning(f"claims ledger: {r['notebook']} recorded claim {r['id']!r}, which is not in the "
                               f"manifest (transferlab/claims/manifest.py): add an entry for it or fix the id",
                               location=docname, type="transferlab", subtype="unlisted-claim")
        for ph in ledgers:
            ph.replace_self(build_ledger(records, _lesson_ref(app, docname, lessons),
                                         smoke=any(r.get("smoke") for r in records)))
    if covers:
        def source_ref(key: str, title: str) -> nodes.Node:
            if CLAIMS_DOC not in app.env.found_docs:
                return nodes.Text(title)
            node = nodes.reference("", "", internal=True,
                                   refuri=app.builder.get_relative_uri(docname, CLAIMS_DOC) + f"#ledger-{key}")
            node += nodes.Text(title)
            return node

        for ph in covers:
            ph.replace_self(build_coverage(records, source_ref))


def _always_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """The landing page and the ledger depend on every notebook (and its run): re-read them on every build."""
    return [d for d in ("index", CLAIMS_DOC) if d in env.found_docs]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("transferlab_results_dir", "", "env", types=frozenset({str}))
    app.add_config_value("transferlab_smoke", False, "env", types=frozenset({bool}))
    app.add_node(claims_placeholder)
    app.add_node(coverage_placeholder)
    app.add_directive("transferlab-lessons", LessonsDirective)
    app.add_directive("transferlab-env", EnvDirective)
    app.add_directive("transferlab-claims", ClaimsDirective)
    app.add_directive("transferlab-coverage", CoverageDirective)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("doctree-resolved", _fill_claims)
    app.add_css_file("transferlab.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
