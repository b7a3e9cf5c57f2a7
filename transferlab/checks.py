"""Check a learner's answer to a notebook exercise against what the notebook itself measured.

The expected answer is always computed from the run the learner sees (never typed in), so an exercise stays
right when the numbers change with the seed, the device or real data::

    check_choice("Which strategy reached 70% first?", answer, expected=fastest_strategy)
    check_number("Ratio of the best learning rates", answer, expected=ratio, rel_tol=0.01)

**Self-study and graded mode.** By default a wrong answer is told what this run measured and why (self-study).
In graded mode (``set_graded(True)``, or ``TRANSFERLAB_GRADED=1`` in the environment; the graded assignments
that ``data_scripts/make_assignments.py`` generates switch it on in their first cell) a wrong answer is told that
it is wrong and why in general terms, never the expected value: a :class:`CheckResult` made in graded mode keeps
only its ``graded_message``, or a generic line when the check gave none. :meth:`CheckResult.general` marks a
message that names no expected value (it is shown in both modes). ``explain`` (which may quote the run's numbers)
is shown in self-study only; ``hint`` (general) in both.

**Solutions.** :func:`exercise_solution` declares, next to a check, the instructor's solution of an exercise that
the check judges, as code with ``$parameter`` placeholders (``string.Template``) filled with the source text of
the call's arguments; the assignment generator reads it. The solution of ``check_number(q, answer_2, ratio)`` is
``answer_2 = ratio``: always the value this run measured.
"""

from __future__ import annotations

import ast
import inspect
import math
import os
import string

__all__ = ["check_choice", "check_number", "CheckResult", "set_graded", "graded", "exercise_solution",
           "render_solution", "GRADED_ENV"]

GRADED_ENV = "TRANSFERLAB_GRADED"
"""The environment variable that switches graded mode on (``1``, ``true``, ``yes`` or ``on``)."""

_GRADED: bool | None = None  # None: the environment decides
_GENERIC = "not right (graded: the check shows no expected value; re-read the question and this run's output)"


def set_graded(on: bool | None = True) -> None:
    """Switch graded mode on or off for this process; ``None`` leaves it to ``$TRANSFERLAB_GRADED`` again.

    Examples
    --------
    >>> set_graded(True); graded()
    True
    >>> set_graded(None)
    """
    global _GRADED
    if on is not None and not isinstance(on, bool):
        raise TypeError(f"set_graded takes True, False or None, got {on!r}")
    _GRADED = on


def graded() -> bool:
    """True when checks must not reveal the expected answer (see the module's docstring).

    Examples
    --------
    >>> set_graded(False); graded()
    False
    >>> set_graded(None)
    """
    if _GRADED is not None:
        return _GRADED
    return os.environ.get(GRADED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def exercise_solution(code: str, *, answer: str):
    """Declare the solution of the exercises a check judges; ``answer`` names the parameter holding the answer.

    ``code`` is Python source where ``$name`` stands for the source text of the argument bound to parameter
    ``name`` in the exercise's call (a parameter left at its default stands for ``repr(default)``). Stored on the
    function as ``__solution__`` for the assignment generator; the check itself is unchanged.

    Examples
    --------
    >>> check_choice.__solution__["code"]
    '$answer = $expected'
    """
    def deco(fn):
        fn.__solution__ = {"answer": answer, "code": code}
        return fn
    return deco


def render_solution(check, call: str | ast.Call, *, answer_as: str | None = None,
                    source: str | None = None) -> tuple[str, str]:
    """The solution ``check`` declares (:func:`exercise_solution`), filled in for one call of it.

    ``call`` is the call's source text or its ``ast.Call`` (parsed from ``source``, whose text the arguments then
    keep). Returns ``(answer, code)``: the source of the argument that holds the answer, and the solution's code;
    ``answer_as`` puts another name in the answer's place.

    Examples
    --------
    >>> render_solution(check_number, "check_number('ratio', answer_2, fast / slow, rel_tol=0.1)")
    ('answer_2', 'answer_2 = fast / slow')
    """
    name = getattr(check, "__qualname__", repr(check))
    spec = getattr(check, "__solution__", None)
    if spec is None:
        raise LookupError(f"{name} declares no solution (transferlab.checks.exercise_solution)")
    if isinstance(call, str):
        source, node = call, ast.parse(call, mode="eval").body
    else:
        node = call
    text = lambda n: (source and ast.get_source_segment(source, n)) or ast.unparse(n)  # noqa: E731
    if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) or \
            any(k.arg is None for k in node.keywords):
        raise ValueError(f"expected a plain call of {name} (no *args or **kwargs), got {ast.unparse(node)!r}")
    sig = inspect.signature(check)
    try:
        bound = sig.bind(*map(text, node.args), **{k.arg: text(k.value) for k in node.keywords})
    except TypeError as err:
        raise ValueError(f"{ast.unparse(node)}: {err}") from None
    values = {p.name: repr(p.default) for p in sig.parameters.values() if p.default is not p.empty}
    values.update(bound.arguments)
    answer = values.get(spec["answer"])
    if answer is None:
        raise ValueError(f"{ast.unparse(node)}: no argument for the answer parameter {spec['answer']!r}")
    values[spec["answer"]] = answer_as or answer
    try:
        return answer, string.Template(spec["code"]).substitute(values)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{name}'s solution needs the argument {err} in {ast.unparse(node)}") from None


class CheckResult:
    """The outcome of a check: truthy when right; shows itself as one line in a notebook.

    In graded mode a wrong result keeps ``graded_message`` (which must not name the expected answer) or, when
    that is None, a generic line; its self-study ``message`` is dropped.

    Examples
    --------
    >>> CheckResult(True, "right")
    ✅ right
    """

    def __init__(self, ok: bool, message: str, *, graded_message: str | None = None):
        self.ok = bool(ok)
        self.message = message if self.ok or not graded() else (graded_message or _GENERIC)

    @classmethod
    def general(cls, ok: bool, message: str) -> CheckResult:
        """A result whose message names no expected value: shown as it is in graded mode too."""
        return cls(ok, message, graded_message=message)

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return ("✅ " if self.ok else "❌ ") + self.message

    def _repr_markdown_(self):
        return repr(self)


def _tail(explain: str, hint: str) -> str:
    """Self-study: ``hint`` then ``explain``; graded mode shows only ``hint`` (callers build both)."""
    return "".join(f". {t}" for t in (hint, explain) if t)


@exercise_solution("$answer = $expected", answer="answer")
def check_choice(question: str, answer, expected, *, explain: str = "", hint: str = "") -> CheckResult:
    """Compare a categorical answer (case- and space-insensitive for strings).

    ``explain`` may quote the run's numbers (self-study only); ``hint`` says why in general terms (both modes).

    Examples
    --------
    >>> bool(check_choice("best?", " Fine-Tune ", "fine-tune"))
    True
    >>> check_choice("best?", "scratch", "fine-tune")
    ❌ best?: 'scratch' is not what this run measured (measured: 'fine-tune')
    """
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return CheckResult.general(False, f"{question}: no answer yet — replace the None/'' with your answer")
    norm = lambda v: " ".join(v.lower().split()) if isinstance(v, str) else v  # noqa: E731
    ok = norm(answer) == norm(expected)
    msg = f"{question}: {answer!r} is {'right' if ok else 'not what this run measured'}"
    if ok:
        return CheckResult(True, msg + _tail(explain, hint))
    return CheckResult(False, msg + f" (measured: {expected!r})" + _tail(explain, hint),
                       graded_message=msg + _tail("", hint) + " (graded: the expected answer is not shown)")


@exercise_solution("$answer = $expected", answer="answer")
def check_number(question: str, answer, expected: float, *, rel_tol: float = 0.05, abs_tol: float = 0.0,
                 explain: str = "", hint: str = "") -> CheckResult:
    """Compare a numeric answer within a relative (and optional absolute) tolerance.

    ``explain`` may quote the run's numbers (self-study only); ``hint`` says why in general terms (both modes).

    Examples
    --------
    >>> bool(check_number("ratio", 10.2, 10.0, rel_tol=0.05))
    True
    >>> check_number("ratio", 3.3, 10.0)
    ❌ ratio: 3.3 is off (measured: 10, tolerance 5%)
    """
    if answer is None:
        return CheckResult.general(False, f"{question}: no answer yet — replace the None with a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return CheckResult.general(False, f"{question}: expected a number, got {answer!r}")
    ok = math.isclose(value, float(expected), rel_tol=rel_tol, abs_tol=abs_tol)
    msg = f"{question}: {value:g} is {'right' if ok else 'off'}"
    if ok:
        return CheckResult(True, msg + _tail(explain, hint))
    within = f"{rel_tol:.0%}" + (f" (or {abs_tol:g})" if abs_tol else "")
    shown = f" (measured: {float(expected):.4g}, tolerance {rel_tol:.0%})"
    return CheckResult(False, msg + shown + _tail(explain, hint),
                       graded_message=f"{question}: {value:g} is not within {within} of what this run measured"
                                      + _tail("", hint) + " (graded: the expected answer is not shown)")
