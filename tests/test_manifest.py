"""The manifest of the sources' claims against what the lessons record.

Both directions are checked, statically, on the notebooks' code (executing them is test_notebooks.py's job):

- every claim id a lesson records is in :data:`transferlab.claims.MANIFEST`, under an entry that names that
  lesson (``lesson`` or ``also``);
- every lesson an entry names records that id.

How the recorded ids are found (:func:`scan_notebook`). Each code cell is parsed with :mod:`ast` (IPython lines
starting with ``%`` or ``!`` are blanked first). A *ledger call* is a call of ``.record(...)`` or ``.judge(...)``
on a name bound to ``Ledger(...)`` anywhere in the notebook, on any name containing "ledger", or directly on a
``Ledger(...)`` expression; other ``.record`` methods (CUDA events, say) are ignored. Its claim id is the first
positional argument or ``claim_id=``:

- a string literal is taken as it is;
- anything else (a loop variable, a dict lookup, an f-string) cannot be read statically. Then the *cell* that
  makes the call must spell its ids as string literals (lesson 01 loops over a dict of its four quadrant ids):
  every literal of the cell that is a manifest id counts as recorded. Two guards keep this honest: a literal
  that looks like a claim id but is not in the manifest, and is close to one (difflib ratio >= 0.85), is
  reported as a probable misspelling; and a cell that records through a variable without any manifest id among
  its literals is reported, because the test cannot see what it records (keep the ids in that cell).

So a misspelt id fails here when it is a literal, or a near-miss in a variable-recording cell; anything else the
docs build catches at run time (a record whose id is not in the manifest is a build warning, an error under -W).
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from transferlab.claims import MANIFEST, SOURCES, ClaimEntry, coverage, entries_for
from transferlab.claims.manifest import _ENTRIES, by_source

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ID_SHAPE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")  # at least one dash: "lr-10x-smaller", not "probe"
LEDGER_METHODS = {"record", "judge"}
NLP_LESSON = "06_nlp_transfer"


# ------------------------------------------------------------------------------------------ the scanner
@dataclass
class Scan:
    """What one notebook records: ids read from literals, ids inferred from variable-recording cells, problems."""

    literal: set[str] = field(default_factory=set)
    inferred: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        return self.literal | self.inferred


def _parse(source: str, where: str) -> ast.Module:
    if source.lstrip().startswith("%%"):  # a cell magic: not Python
        return ast.Module(body=[], type_ignores=[])
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError as err:
        raise AssertionError(f"{where}: the code does not parse ({err}); the manifest test reads claim ids "
                             f"from it") from err


def _is_ledger_ctor(node: ast.AST) -> bool:
    f = node.func if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Name) and f.id == "Ledger") or (isinstance(f, ast.Attribute) and f.attr == "Ledger")


def _ledger_names(trees: list[ast.Module]) -> set[str]:
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _is_ledger_ctor(node.value):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _wrappers(trees: list[ast.Module], names: set[str]) -> set[str]:
    """Notebook functions that pass their first argument on as a ledger call's claim id (``def judge(cid, ...):
    ledger.judge(cid, ...)``): a call of one of them with a literal id records that id."""
    out = set()
    for tree in trees:
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or not fn.args.args:
                continue
            first = fn.args.args[0].arg
            for call in _ledger_calls(fn, names, set()):
                arg = _id_arg(call)
                if isinstance(arg, ast.Name) and arg.id == first:
                    out.add(fn.name)
    return out


def _ledger_calls(tree: ast.AST, names: set[str], wrappers: set[str] = frozenset()) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in wrappers:
            calls.append(node)
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEDGER_METHODS):
            continue
        recv = node.func.value
        if (isinstance(recv, ast.Name) and (recv.id in names or "ledger" in recv.id.lower())) \
                or _is_ledger_ctor(recv) or (isinstance(recv, ast.Attribute) and "ledger" in recv.attr.lower()):
            calls.append(node)
    return calls


def _id_arg(call: ast.Call) -> ast.AST | None:
    if call.args:
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg == "claim_id"), None)


def scan_notebook(path: Path, manifest=MANIFEST) -> Scan:
    """The claim ids a notebook records, read from its code (see the module docstring for the rules)."""
    nb = nbformat.read(path, as_version=4)
    cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    trees = [(i, _parse(c.source, f"{Path(path).name} cell {i}")) for i, c in cells]
    names = _ledger_names([t for _, t in trees])
    wrappers = _wrappers([t for _, t in trees], names)
    tables: dict[str, set[str]] = {}  # NAME = {...} / [...] / (...) at a cell's top level: the strings it holds
    for _, tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Dict, ast.List, ast.Tuple, ast.Set)):
                held = {n.value for n in ast.walk(node.value)
                        if isinstance(n, ast.Constant) and isinstance(n.value, str)}
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        tables.setdefault(target.id, set()).update(held)
    scan = Scan()
    for i, tree in trees:
        where = f"{Path(path).name} cell {i}"
        variable = False
        wrapper_defs = {fn for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) and fn.name in wrappers}
        inside = {id(c) for fn in wrapper_defs for c in ast.walk(fn)}
        for call in _ledger_calls(tree, names, wrappers):
            if id(call) in inside:  # the wrapper's own body passes its parameter on: not a recording by itself
                continue
            arg = _id_arg(call)
            if arg is None:
                what = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
                scan.problems.append(f"{where}: a ledger {what}() call without a claim id")
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                scan.literal.add(arg.value)
            else:
                variable = True
        if not variable:
            continue
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        found = literals & set(manifest)
        if not found:  # the ids may live in a table another cell defines and this cell reads (lesson 01's ADVICE)
            used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            found = {lit for name in used for lit in tables.get(name, ())} & set(manifest)
        if not found:
            scan.problems.append(f"{where}: records a claim through a variable, but no manifest id appears as a "
                                 f"string literal in the cell; spell the ids out in that cell")
        scan.inferred |= found
        for text in sorted(literals - set(manifest)):
            close = difflib.get_close_matches(text, list(manifest), n=1, cutoff=0.85) if ID_SHAPE.match(text) else []
            if close:
                scan.problems.append(f"{where}: {text!r} is not a manifest id; did you mean {close[0]!r}?")
    return scan


@pytest.fixture(scope="module")
def scans() -> dict[str, Scan]:
    return {p.stem: scan_notebook(p) for p in LESSONS}


# ------------------------------------------------------------------------------------------ the scanner, checked
def _nb(tmp_path: Path, *sources: str, name: str = "07_demo") -> Path:
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def test_scanner_reads_literal_record_judge_and_keyword_ids(tmp_path):
    path = _nb(tmp_path,
               "%matplotlib inline\n!echo hi\nfrom transferlab import claims\nlg = claims.Ledger('07_demo')",
               "lg.record('few-epochs', claim='c', measured='m', verdict='partly')",
               "lg.judge('swa-beats-sgd', rule, data)\nlg.record(claim_id='toy-monotone', claim='c', measured='m', "
               "verdict='partly')",
               "from transferlab.claims import Ledger\nLedger('07_demo').record('ranks-models', claim='c', "
               "measured='m', verdict='partly')",
               "start.record()\nevent.record(stream)\nrecorder.record('not-a-claim-at-all')")  # not ledgers
    scan = scan_notebook(path)
    assert scan.literal == {"few-epochs", "swa-beats-sgd", "toy-monotone", "ranks-models"}
    assert scan.inferred == set() and scan.problems == []


def test_scanner_infers_ids_recorded_through_a_variable_from_the_cells_literals(tmp_path):
    """Lesson 01's pattern: the ids live in a dict, the record call gets a loop variable."""
    path = _nb(tmp_path, "ledger = make()",
               "QUADRANTS = {1: ('small-similar-head-only', 'advice'), 2: ('large-dissimilar-scratch', 'x')}\n"
               "for k, (cid, advice) in QUADRANTS.items():\n    ledger.record(cid, claim=advice, measured='m', "
               "verdict='partly')",
               "label = 'finetune-scratch-lr'  # an id-shaped strategy name elsewhere is not a claim")
    scan = scan_notebook(path)
    assert scan.inferred == {"small-similar-head-only", "large-dissimilar-scratch"}
    assert scan.literal == set() and scan.problems == []


def test_scanner_reports_a_near_miss_and_a_cell_it_cannot_read(tmp_path):
    path = _nb(tmp_path, "ledger = None",
               "for cid in ['few-epochs', 'small-similar-head-onyl']:\n    ledger.record(cid, claim='c', "
               "measured='m', verdict='partly')",
               "def rec(cid):\n    ledger.judge(cid, rule, data)\nrec(f'{cid}-x')",
               "ledger.record(f'{prefix}-x', claim='c', measured='m', verdict='partly')",
               "ledger.record(claim='c', measured='m', verdict='partly')")
    scan = scan_notebook(path)
    assert scan.inferred == {"few-epochs"}
    assert len(scan.problems) == 4, scan.problems
    assert "did you mean 'small-similar-head-only'" in scan.problems[0]
    assert "cell 2" in scan.problems[1] and "spell the ids out" in scan.problems[1]
    assert "cell 3" in scan.problems[2] and "without a claim id" in scan.problems[3]


def test_scanner_reads_ids_from_a_table_another_cell_defines(tmp_path):
    """Lesson 01's pattern: ``ADVICE = {"small-similar-head-only": ...}`` in one cell, the loop in the next."""
    path = _nb(tmp_path, "ledger = make()", "ADVICE = {'small-similar-head-only': 1, 'large-dissimilar-scratch': 2}",
               "for cid, x in ADVICE.items():\n    ledger.judge(cid, rule, data)")
    scan = scan_notebook(path)
    assert scan.inferred == {"small-similar-head-only", "large-dissimilar-scratch"} and scan.problems == []


def test_scanner_follows_a_notebook_function_that_passes_the_id_on(tmp_path):
    """Lesson 00's pattern: ``def judge(claim_id, ...): ledger.judge(claim_id, ...)``, then ``judge("few-epochs")``."""
    path = _nb(tmp_path, "ledger = make()",
               "def judge(claim_id, data, text):\n    return ledger.judge(claim_id, RULES[claim_id], data)",
               "few = judge('few-epochs', {}, str)")
    scan = scan_notebook(path)
    assert scan.literal == {"few-epochs"} and scan.problems == []


def test_scanner_refuses_code_it_cannot_parse(tmp_path):
    with pytest.raises(AssertionError, match="07_demo.ipynb cell 0: the code does not parse"):
        scan_notebook(_nb(tmp_path, "ledger.record('few-epochs',"))
    assert scan_notebook(_nb(tmp_path, "%%bash\necho not python")).ids == set()


# ------------------------------------------------------------------------------------------ lessons x manifest
def test_the_lessons_are_there_and_each_records_claims(scans):
    assert LESSONS, "no lesson notebooks in notebooks/"
    for stem, scan in scans.items():
        assert scan.ids, f"{stem}: no ledger.record/judge call with a readable claim id"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_records_only_manifest_ids_listed_for_it(path, scans):
    scan = scans[path.stem]
    assert not scan.problems, "\n".join(scan.problems)
    unknown = sorted(scan.ids - set(MANIFEST))
    assert not unknown, (f"{path.stem} records claim ids that are not in transferlab/claims/manifest.py: {unknown}; "
                         f"add an entry for each (id, source, says, lesson={path.stem!r})")
    unlisted = sorted(i for i in scan.ids if path.stem not in MANIFEST[i].lessons)
    assert not unlisted, (f"{path.stem} records {unlisted}, but their manifest entries name "
                          f"{[MANIFEST[i].lessons for i in unlisted]}; add {path.stem!r} (lesson= or also=)")


def test_every_lesson_an_entry_names_records_that_id(scans):
    missing = []
    for entry in MANIFEST.values():
        for stem in entry.lessons:
            if stem not in scans:
                missing.append(f"{entry.id}: lesson {stem!r} has no notebook in notebooks/")
            elif entry.id not in scans[stem].ids:
                missing.append(f"{entry.id}: {stem} does not record it")
    assert not missing, "manifest entries name lessons that do not record them:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------------------ the manifest itself
def test_manifest_size_ids_and_sources():
    assert 80 <= len(MANIFEST) <= 120, f"{len(MANIFEST)} entries; the sources make 80-120 claims"
    assert len(MANIFEST) == len(_ENTRIES), "duplicate claim ids"
    for e in MANIFEST.values():
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)+", e.id), e.id
        assert e.source in SOURCES, (e.id, e.source)
        assert e.says.strip() and len(e.says) <= 200 and "\n" not in e.says, f"{e.id}: 'says' must be a brief line"
        assert "\n" not in e.why and len(e.why) <= 160, f"{e.id}: 'why' must be one line"
        assert e.measured or e.why, e.id
    assert all(by_source()[k] for k in SOURCES), "a source without claims"


def test_entries_are_grouped_by_source_in_the_order_of_sources():
    order = [e.source for e in _ENTRIES]
    blocks = [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s]
    assert blocks == list(SOURCES), f"sources appear as blocks {blocks}, expected {list(SOURCES)}"


def test_sources_are_described_and_urls_are_plain_links():
    for s in SOURCES.values():
        assert s.title and s.author and s.kind in {"lecture", "article", "paper", "docs"}, s
        assert s.url == "" or re.fullmatch(r"https://[^\s\"'<>]+", s.url), s.url


def test_nlp_claims_belong_to_lesson_06():
    nlp = [e for e in MANIFEST.values() if e.id.startswith("nlp-")]
    for wanted in ("nlp-pretrained-beats-scratch", "nlp-mlm-vs-lm", "nlp-mlm-plateau", "nlp-bertadam-unstable",
                   "nlp-few-epochs-too-few", "nlp-reinit-top-layers", "nlp-freeze-bottom", "nlp-three-heads",
                   "nlp-lora-matches-finetune", "nlp-logme-ranks-text-models"):
        assert wanted in MANIFEST, wanted
    for e in nlp:
        assert e.lessons in ((), (NLP_LESSON,)), f"{e.id}: nlp- claims are lesson 06's, got {e.lessons}"
        assert e.measured or e.why.startswith("not measured yet"), e.id
    assert not [e.id for e in MANIFEST.values() if NLP_LESSON in e.lessons and not e.id.startswith("nlp-")]


def test_coverage_and_entries_for_agree_with_the_entries():
    c = coverage()
    assert c["claims"] == len(MANIFEST) == sum(r["claims"] for r in c["by_source"].values())
    assert c["measured"] == sum(e.measured for e in MANIFEST.values()) == sum(r["measured"]
                                                                             for r in c["by_source"].values())
    assert list(c["by_source"]) == list(SOURCES)
    assert {e.id for e in entries_for("01_freezing_strategies")} >= {"lr-smaller-per-cell", "head-first"}
    assert "lr-10x-smaller" in {e.id for e in entries_for("00_transfer_learning_basics")}


@pytest.mark.parametrize("kwargs, match", [
    (dict(id="Bad_Id", source="swa-paper", says="x", why="w"), "lowercase words joined by dashes"),
    (dict(id="x-y", source="nowhere", says="x", why="w"), "unknown source 'nowhere'"),
    (dict(id="x-y", source="swa-paper", says="x"), "say why"),
    (dict(id="x-y", source="swa-paper", says="x", why="w", also=("03_swa",)), "needs a lesson= first"),
    (dict(id="x-y", source="swa-paper", says="x", lesson="lesson three"), "not a lesson notebook stem"),
])
def test_claim_entry_refuses_what_the_manifest_cannot_hold(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClaimEntry(**kwargs)
