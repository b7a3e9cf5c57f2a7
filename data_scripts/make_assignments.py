#!/usr/bin/env python
"""Generate an nbgrader source course from the lessons: the committed lessons stay the self-study version.

    python data_scripts/make_assignments.py                     # every lesson, smoke mode, into assignments/
    python data_scripts/make_assignments.py 00 02 --mode default --out /srv/course
    python data_scripts/make_assignments.py --dry-run           # the exercises, points and solutions found

Writes ``<out>/source/<lesson>/<lesson>.ipynb`` for each lesson and ``<out>/nbgrader_config.py``; then nbgrader's
own commands take over (``nbgrader generate_assignment``, ``release_assignment``, ``collect``, ``autograde``).

An exercise is one code cell whose first line is ``# exercise N`` (``# exercise N (2 points)`` sets its points),
with the learner's answer variable(s) set to ``None`` (or a stub ``def`` that returns ``None``) and the check call
as its last expression. It becomes:

- a read-only set-up cell with the cell's other statements, when it has any (so the measurement the check
  compares with cannot be edited);
- a solution cell: the answer lines as the learner sees them, then ``### BEGIN SOLUTION`` ... ``### END
  SOLUTION`` (nbgrader's release replaces that region with ``raise NotImplementedError()``);
- an autograded test cell worth the exercise's points: ``assert`` on the check, which compares the answer with
  what this very run measured, in graded mode (a wrong answer is told why in general terms, never the value).

Every other code cell is read-only (the autograder restores it), and a cell after the parameters cell fixes
``SMOKE`` (``--mode``), ``DEVICE`` (``--device``) and switches graded mode on. The solution of an exercise comes
from, in this order:

1. ``# solution:`` comment lines in the exercise cell (``# solution: answer_2 = ratio["scratch LR"]``; several
   lines for a function), removed from the student's version. Visible in the self-study lesson: a spoiler,
   so only where nothing else gives the solution;
2. the solution the check declares (``transferlab.checks.exercise_solution``): for ``check_choice`` and
   ``check_number`` the ``expected`` argument (``answer_1 = <expected expression>``), for the kit's code
   checks (a function the learner writes) the code stated next to the check;
3. the lesson's own check (a function the notebook defines): the solution it declares with
   ``@exercise_solution(code, answer=...)`` like the kit's checks; otherwise, when it is called with the answer
   alone, the solution of the check it returns or its local ``expected``, with the statements that compute them.

An exercise with none of these stops the conversion of its lesson with a message naming the lesson and exercise.
Points: 1 per exercise, 2 when the answer is a function the learner writes, unless the header says otherwise.

A file this script wrote and nobody edited since is replaced; an edited one is kept aside as
``<file>.edited-<time>-<pid>`` before the new one is written, unless ``--force`` (then it is overwritten).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import re
import string
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from nbrun import inject  # noqa: E402  (the harness's papermill-style injection: one definition of "smoke")

from transferlab._paths import atomic_write, keep_aside  # noqa: E402
from transferlab.checks import exercise_solution, render_solution  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
MODES = {"smoke": True, "default": False}
EXERCISE = re.compile(r"#\s*exercise\s+(\d+)\b(.*)", re.IGNORECASE)
POINTS = re.compile(r"\(\s*(\d+(?:\.\d+)?)\s*points?\s*\)", re.IGNORECASE)
SOLUTION_LINE = re.compile(r"^\s*#\s*solution:\s?(.*)$")
RECORD = ".transferlab-assignments.json"  # what this script wrote: relative path -> sha256


class ConversionError(Exception):
    """An exercise the converter cannot turn into a graded one; the message names the lesson and the exercise."""


@dataclass
class Exercise:
    number: int
    answers: list[str]
    head: str  # the header line and the answer lines, as the learner sees them
    setup: str  # statements that do not touch the answers: a read-only cell before the solution cell
    after: str  # statements that use the answers, before the check: the test cell
    check: str  # the check call's source
    solution: str
    origin: str  # where the solution came from
    points: float
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading a lesson
def _code(source: str) -> str:
    """A cell's source with IPython magics and shell escapes blanked (line numbers kept)."""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.split("\n"))


class Namespace:
    """What a lesson's code cells define: transferlab imports (name -> dotted path) and top-level functions."""

    def __init__(self, nb):
        self.imports: dict[str, str] = {}
        self.defs: dict[str, tuple[ast.FunctionDef, str]] = {}
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(_code(cell.source))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "transferlab":
                    for a in node.names:
                        self.imports[a.asname or a.name] = f"{node.module}.{a.name}"
                elif isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name.split(".")[0] == "transferlab":
                            self.imports[a.asname or a.name.split(".")[0]] = a.name if a.asname else "transferlab"
                elif isinstance(node, ast.FunctionDef):
                    self.defs[node.name] = (node, cell.source)

    def resolve(self, func: ast.expr):
        """A notebook function (``("notebook", (node, source))``), a kit object (``("kit", obj)``) or None."""
        chain = []
        while isinstance(func, ast.Attribute):
            chain.insert(0, func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        if not chain and func.id in self.defs:
            return "notebook", self.defs[func.id]
        if func.id not in self.imports:
            return None
        parts = self.imports[func.id].split(".") + chain
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for name in parts[cut:]:
                    obj = getattr(obj, name)
            except AttributeError:
                return None
            return "kit", obj
        return None


def _names(node: ast.AST, ctx) -> set[str]:
    found = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}
    if ctx is ast.Store:
        found |= {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        found |= {(a.asname or a.name).split(".")[0] for n in ast.walk(node) if isinstance(n, (ast.Import,
                  ast.ImportFrom)) for a in n.names}
    return found


def _segments(source: str, body: list[ast.stmt]) -> list[tuple[str, str]]:
    """``(comment lines just above, source text)`` of each top-level statement; the lines after the last
    statement count as its comments too (they come after it)."""
    lines = source.split("\n")
    out, start = [], 0
    for stmt in body:
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        out.append(("\n".join(lines[start:first - 1]).strip("\n"), "\n".join(lines[first - 1:stmt.end_lineno])))
        start = stmt.end_lineno
    if body and lines[start:]:
        lead, text = out[-1]
        out[-1] = (lead, text + ("\n" + "\n".join(lines[start:])).rstrip())
    return out


def _joined(seg: tuple[str, str]) -> str:
    return "\n".join(t for t in seg if t)


def _statement_text(source: str, stmt: ast.stmt, indent: int) -> str:
    first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
    lines = source.split("\n")[first - 1:stmt.end_lineno]
    return "\n".join(ln[indent:] if ln[:indent].isspace() else ln.lstrip() for ln in lines)


def _declared(node: ast.FunctionDef, ns: Namespace, ex: str) -> tuple[str, str] | None:
    """``(answer parameter, code)`` of an ``@exercise_solution(code, answer=...)`` on a lesson's own check."""
    for dec in node.decorator_list:
        if isinstance(dec, ast.Call) and ns.resolve(dec.func) == ("kit", exercise_solution):
            args = {k.arg: k.value for k in dec.keywords} | dict(zip(("code",), dec.args, strict=False))
            try:
                return ast.literal_eval(args["answer"]), ast.literal_eval(args["code"])
            except (KeyError, ValueError) as err:
                raise ConversionError(f"{ex}: the lesson's {node.name}: @exercise_solution needs literal code and "
                                      f"answer= ({err})") from None
    return None


def _render_declared(node: ast.FunctionDef, declared: tuple[str, str], call: ast.Call, source: str, ex: str):
    """The declared solution of a lesson's own check, filled in with the call's arguments: (answer, code)."""
    names = [a.arg for a in node.args.args]
    values = dict(zip(names, (ast.get_source_segment(source, a) for a in call.args), strict=False))
    values |= {k.arg: ast.get_source_segment(source, k.value) for k in call.keywords}
    param, code = declared
    if param not in values:
        raise ConversionError(f"{ex}: the call passes no argument for {node.name}'s answer parameter {param!r}")
    try:
        return values[param], string.Template(code).substitute(values)
    except (KeyError, ValueError) as err:
        raise ConversionError(f"{ex}: {node.name}'s declared solution needs the argument {err}") from None


def _wrapper_solution(where: str, number: int, fname: str, node: ast.FunctionDef, source: str, answer: str,
                      ns: Namespace) -> tuple[str, str]:
    """The solution of a lesson's own check ``fname(answer)``: computed as the function computes its expected."""
    params = node.args.args
    if len(params) != 1 or node.args.vararg or node.args.kwonlyargs:
        raise ConversionError(f"{where}, exercise {number}: the lesson's {fname} takes other arguments than the "
                              f"answer; give the solution as '# solution:' lines")
    param = params[0].arg
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    last = body[-1] if body else None
    code, result, upto = None, None, None
    if isinstance(last, ast.Return) and isinstance(last.value, ast.Call):
        kind = ns.resolve(last.value.func)
        if kind and kind[0] == "kit" and hasattr(kind[1], "__solution__"):
            got, code = render_solution(kind[1], last.value, answer_as=param, source=source)
            if got != param:
                code = None
            result, upto = param, len(body) - 1
    if code is None:
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "expected"
                                                    for t in stmt.targets):
                code, result, upto = "", "expected", i + 1
    if code is None:
        raise ConversionError(f"{where}, exercise {number}: the lesson's {fname} neither returns a check that "
                              f"declares a solution nor names its answer 'expected'; give the solution as "
                              f"'# solution:' lines")
    needed = _names(ast.parse(code), ast.Load) if code else {"expected"}
    kept = []
    for stmt in reversed(body[:upto]):
        if _names(stmt, ast.Store) & needed:
            if param in _names(stmt, ast.Load):
                raise ConversionError(f"{where}, exercise {number}: in the lesson's {fname} the expected answer "
                                      f"depends on the learner's answer; give the solution as '# solution:' lines")
            kept.insert(0, stmt)
            needed |= _names(stmt, ast.Load)
    if not kept:  # the returned check's solution needs nothing from the function's body
        check = ns.resolve(last.value.func)[1]
        return render_solution(check, last.value, answer_as=answer, source=source)[1], f"lesson's {fname}"
    indent = body[0].col_offset
    inner = "\n".join(_statement_text(source, s, indent) for s in kept) + ("\n" + code if code else "")
    fn = f"_solution_{number}"
    return (f"def {fn}():  # the answer, computed as the lesson's own {fname} computes it\n"
            + textwrap.indent(inner, "    ") + f"\n    return {result}\n\n\n{answer} = {fn}()"), f"lesson's {fname}"


def _answer_name(stmt: ast.stmt) -> str | None:
    """The answer a statement sets up: ``name = None``, or a stub ``def name(...)`` whose body only returns None."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
            and isinstance(stmt.value, ast.Constant) and stmt.value.value is None:
        return stmt.targets[0].id
    if isinstance(stmt, ast.FunctionDef):
        body = [s for s in stmt.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if all(isinstance(s, ast.Pass) or isinstance(s, ast.Return) and (s.value is None or isinstance(
                s.value, ast.Constant) and s.value.value is None) for s in body):
            return stmt.name
    return None


def parse_exercise(source: str, ns: Namespace, where: str) -> Exercise:
    """One exercise cell of the convention as an :class:`Exercise`; ConversionError says what is wrong."""
    lines = source.split("\n")
    head = EXERCISE.match(lines[0].strip())
    number = int(head.group(1))
    points = POINTS.search(head.group(2))
    given = [m.group(1) for m in map(SOLUTION_LINE.match, lines) if m]
    code = "\n".join(ln for ln in lines[1:] if not SOLUTION_LINE.match(ln))
    ex = f"{where}, exercise {number}"
    try:
        body = ast.parse(_code(code)).body
    except SyntaxError as err:
        raise ConversionError(f"{ex}: the cell is not valid Python ({err.msg}, line {err.lineno})") from None
    if not body or not (isinstance(body[-1], ast.Expr) and isinstance(body[-1].value, ast.Call)):
        raise ConversionError(f"{ex}: the cell's last line must be the check call (the convention: answers set to "
                              f"None, then the check)")
    answers = [name for name in map(_answer_name, body[:-1]) if name]
    if not answers:
        raise ConversionError(f"{ex}: no answer variable set to None (or stub function returning None) before the "
                              f"check")
    segs = _segments(code, body)
    parts = {"head": [lines[0]], "setup": [], "after": []}
    for stmt, seg in zip(body[:-1], segs[:-1], strict=True):
        if _answer_name(stmt):
            parts["head"].append(_joined(seg))
        else:
            parts["after" if _names(stmt, ast.Load) & set(answers) else "setup"].append(_joined(seg))
    lead, check = segs[-1]
    if lead:
        parts["after"].append(lead)
    call = body[-1].value
    if given:
        solution, origin = "\n".join(given), "'# solution:' lines"
    else:
        kind = ns.resolve(call.func)
        arg = next((a.id for a in call.args if isinstance(a, ast.Name) and a.id in answers), None)
        fname = ast.unparse(call.func)
        if kind and kind[0] == "kit" and hasattr(kind[1], "__solution__"):
            try:
                got, solution = render_solution(kind[1], call, source=_code(code))
            except ValueError as err:
                raise ConversionError(f"{ex}: {err}") from None
            if got not in answers:
                raise ConversionError(f"{ex}: {fname}'s answer argument is {got!r}, not one of the cell's answer "
                                      f"variables {answers}")
            answers_solved, origin = {got}, f"{fname}'s declared solution"
        elif kind and kind[0] == "notebook" and _declared(kind[1][0], ns, ex):
            got, solution = _render_declared(kind[1][0], _declared(kind[1][0], ns, ex), call, _code(code), ex)
            answers_solved, origin = {got}, f"the lesson's {fname}'s declared solution"
        elif kind and kind[0] == "notebook" and arg is not None and len(call.args) == 1 and not call.keywords:
            solution, origin = _wrapper_solution(where, number, fname, *kind[1], arg, ns)
            answers_solved = {arg}
        else:
            what = (f"{fname} is neither imported from transferlab nor defined in the lesson" if kind is None else
                    f"{fname} declares none (transferlab.checks.exercise_solution)" if kind[0] == "kit" else
                    f"the lesson's {fname} is not called with the answer alone")
            raise ConversionError(f"{ex}: no solution found: {what}; add '# solution:' lines to the cell (see "
                                  f"data_scripts/make_assignments.py)")
        if set(answers) - answers_solved:
            raise ConversionError(f"{ex}: the solution sets {sorted(answers_solved)} but the cell has the answer "
                                  f"variables {answers}; give the solution as '# solution:' lines")
    try:
        tree = ast.parse(solution)
    except SyntaxError as err:
        raise ConversionError(f"{ex}: the solution ({origin}) is not valid Python: {err.msg}") from None
    writes_code = any(isinstance(s, ast.FunctionDef) and s.name in answers for s in tree.body)
    return Exercise(number, answers, "\n".join(parts["head"]), "\n".join(parts["setup"]), "\n".join(parts["after"]),
                    check, solution, origin, float(points.group(1)) if points else (2.0 if writes_code else 1.0))


def find_exercises(nb, where: str) -> list[tuple[int, Exercise]]:
    """``(cell index, exercise)`` for every exercise cell; ConversionError lists every problem found."""
    ns, found, problems, seen = Namespace(nb), [], [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not EXERCISE.match(cell.source.split("\n")[0].strip()):
            continue
        try:
            ex = parse_exercise(cell.source, ns, where)
        except ConversionError as err:
            problems.append(str(err))
            continue
        if ex.number in seen:
            problems.append(f"{where}, exercise {ex.number}: two cells are exercise {ex.number}")
        seen.add(ex.number)
        found.append((i, ex))
    if problems:
        raise ConversionError("\n".join(problems))
    return found


# ------------------------------------------------------------------------------------------ writing the assignment
def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _cell(kind: str, cell_id: str, source: str, meta: dict | None = None):
    new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    cell = new(source, metadata=meta or {})
    cell.id = cell_id  # deterministic: the same lesson gives the same file
    return cell


def build_assignment(nb, stem: str, *, mode: str = "smoke", device: str | None = "cpu"):
    """The nbgrader source version of lesson ``nb``: ``(notebook, exercises)``."""
    params = {"SMOKE": MODES[mode]} | ({"DEVICE": device} if device else {})
    try:
        nb = inject(nb, params)
    except ValueError as err:
        raise ConversionError(f"lesson {stem[:2]} ({stem}): {err}") from None
    exercises = dict(find_exercises(nb, f"lesson {stem[:2]} ({stem})"))
    total = sum(ex.points for ex in exercises.values())
    out = []
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
            cell.source = ("# Graded assignment: the autograder runs this notebook with these settings, as you do\n"
                           + "\n".join(f"{k} = {v!r}" for k, v in params.items())
                           + "\nimport transferlab.checks\n\ntransferlab.checks.set_graded(True)  # a wrong answer is "
                             "told why in general terms, never the expected value")
            cell.metadata.update(_meta("graded-settings", locked=True))
        ex = exercises.get(i)
        if cell.cell_type == "code" and ex is None and cell.id != "injected-parameters":
            cell.metadata.update(_meta(f"lesson-{cell.id or i}", locked=True))
        if ex is None:
            out.append(cell)
            continue
        n = ex.number
        if ex.setup:
            out.append(_cell("code", f"ex{n}-setup", f"# exercise {n}: set-up (read-only)\n{ex.setup}",
                             _meta(f"ex{n}-setup", locked=True)))
        out.append(_cell("code", f"ex{n}-answer", f"{ex.head}\n### BEGIN SOLUTION\n{ex.solution}\n### END SOLUTION",
                         _meta(f"ex{n}-answer", solution=True)))
        pts = f"{ex.points:g} point{'s' if ex.points != 1 else ''}"
        test = (f"# exercise {n}: graded test ({pts}): your answer against what this run measured\n"
                + (f"{ex.after}\n" if ex.after else "") + f"_result_{n} = {ex.check}\nassert _result_{n}, _result_{n}\n"
                f"_result_{n}")
        out.append(_cell("code", f"ex{n}-test", test, _meta(f"ex{n}-test", grade=True, locked=True, points=ex.points)))
    how = "in smoke mode (tiny budgets)" if MODES[mode] else "in default mode (the lesson's own budgets)"
    intro = (f"**Graded version of lesson {stem[:2]}**, generated from `notebooks/{stem}.ipynb`: {len(exercises)} "
             f"exercises, {total:g} points. Run the whole notebook, then answer each exercise in its answer cell "
             f"(replace `raise NotImplementedError()`) and run the test cell below it: it compares your answer with "
             f"what *your* run measured and says whether it is right and why in general terms, never the expected "
             f"value. The autograder runs the notebook again exactly as you do, {how}"
             + (f" on `{device}`" if device else "") + ", so answer from this notebook's own output.")
    nb.cells = [_cell("markdown", "graded-intro", intro)] + out
    nb.metadata["transferlab"] = {"lesson": stem, "mode": mode, "device": device, "points": total,
                                  "exercises": {str(ex.number): ex.points for ex in exercises.values()}}
    return nb, list(exercises.values())


def nbgrader_config(mode: str) -> str:
    timeout = 600 if MODES[mode] else 3600
    return f'''# nbgrader configuration of the transferlab course, generated by data_scripts/make_assignments.py
# ({mode} mode). Run nbgrader's commands from this folder. The autograder's kernels must import the kit and find
# the zoo: run them with the same environment as the students (TRANSFERLAB_HOME; TRANSFERLAB_RESULTS elsewhere).
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "transferlab"
# seconds per cell ({"a smoke-mode cell takes well under a minute" if MODES[mode] else "default mode trains longer"})
c.Execute.timeout = {timeout}
'''


def _digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def write_file(out: Path, rel: str, text: str, record: dict, *, force: bool) -> str:
    """Write ``out/rel`` atomically; an edited copy is kept aside unless ``force``. Returns what happened."""
    path = out / rel
    if path.exists():
        current = _digest(path.read_text(errors="replace"))
        if current == _digest(text):
            record[rel] = current
            return "unchanged"
        if current != record.get(rel) and not force:
            aside = keep_aside(path, "edited")
            atomic_write(path, text)
            record[rel] = _digest(text)
            return f"written; your edited copy is kept as {aside.name}"
    atomic_write(path, text)
    record[rel] = _digest(text)
    return "written"


def lesson_paths(names: list[str]) -> list[Path]:
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    out = []
    for name in names:
        hits = [p for p in every if p.stem == name or p.stem[:2] == name or p.name == name]
        if not hits:
            raise SystemExit(f"make_assignments: no lesson {name!r}; the lessons: {[p.stem for p in every]}")
        out += hits
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lessons", nargs="*", help="lesson numbers or notebook names (default: every lesson)")
    ap.add_argument("--out", type=Path, default=ROOT / "assignments", help="the course folder (default assignments/)")
    ap.add_argument("--mode", choices=sorted(MODES), default="smoke",
                    help="smoke (default: each submission autogrades in about a minute) or default (the lesson's "
                         "own budgets)")
    ap.add_argument("--device", default="cpu", help="the DEVICE students and the autograder run on (default cpu, "
                                                    "so both measure the same numbers); 'auto': the lesson's choice")
    ap.add_argument("--force", action="store_true", help="overwrite files you edited instead of keeping them aside")
    ap.add_argument("--dry-run", action="store_true", help="list the exercises, points and solutions; write nothing")
    args = ap.parse_args(argv)
    device = None if args.device == "auto" else args.device
    out = args.out.resolve()
    record_path = out / RECORD
    try:
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
    except ValueError:
        record = {}
    failed = []
    for path in lesson_paths(args.lessons):
        try:
            nb, exercises = build_assignment(nbformat.read(path, as_version=4), path.stem, mode=args.mode,
                                             device=device)
        except ConversionError as err:
            failed.append(path.stem)
            print(f"{path.stem}: not converted:\n  " + str(err).replace("\n", "\n  "), file=sys.stderr)
            continue
        total = sum(e.points for e in exercises)
        print(f"{path.stem}: {len(exercises)} exercises, {total:g} points"
              + ("  (no exercise in the '# exercise N' convention yet)" if not exercises else ""))
        for e in exercises:
            print(f"  exercise {e.number}: {e.points:g} pt, answer {', '.join(e.answers)}; solution from {e.origin}")
        if not args.dry_run:
            text = nbformat.writes(nb) + "\n"
            rel = f"source/{path.stem}/{path.stem}.ipynb"
            print(f"  {rel}: {write_file(out, rel, text, record, force=args.force)}")
    if not args.dry_run:
        done = write_file(out, "nbgrader_config.py", nbgrader_config(args.mode), record, force=args.force)
        print(f"nbgrader_config.py: {done}")
        atomic_write(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"course folder: {out} (cd there and run nbgrader generate_assignment <lesson>)")
    if failed:
        print(f"not converted: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
