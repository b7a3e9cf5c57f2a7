"""Check a learner's answer to a notebook exercise against what the notebook itself measured.

The expected answer is always computed from the run the learner sees (never typed in), so an exercise stays
right when the numbers change with the seed, the device or real data::

    check_choice("Which strategy reached 70% first?", answer, expected=fastest_strategy)
    check_number("Ratio of the best learning rates", answer, expected=ratio, rel_tol=0.01)
"""

from __future__ import annotations

import math

__all__ = ["check_choice", "check_number", "CheckResult"]


class CheckResult:
    """The outcome of a check: truthy when right; shows itself as one line in a notebook."""

    def __init__(self, ok: bool, message: str):
        self.ok, self.message = bool(ok), message

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return ("✅ " if self.ok else "❌ ") + self.message

    def _repr_markdown_(self):
        return repr(self)


def check_choice(question: str, answer, expected, *, explain: str = "") -> CheckResult:
    """Compare a categorical answer (case- and space-insensitive for strings).

    Examples
    --------
    >>> bool(check_choice("best?", " Fine-Tune ", "fine-tune"))
    True
    """
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return CheckResult(False, f"{question}: no answer yet — replace the None/'' with your answer")
    norm = lambda v: " ".join(v.lower().split()) if isinstance(v, str) else v  # noqa: E731
    ok = norm(answer) == norm(expected)
    msg = f"{question}: {answer!r} is {'right' if ok else 'not what this run measured'}"
    if not ok:
        msg += f" (measured: {expected!r})"
    return CheckResult(ok, msg + (f". {explain}" if explain else ""))


def check_number(question: str, answer, expected: float, *, rel_tol: float = 0.05, abs_tol: float = 0.0,
                 explain: str = "") -> CheckResult:
    """Compare a numeric answer within a relative (and optional absolute) tolerance.

    Examples
    --------
    >>> bool(check_number("ratio", 10.2, 10.0, rel_tol=0.05))
    True
    """
    if answer is None:
        return CheckResult(False, f"{question}: no answer yet — replace the None with a number")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return CheckResult(False, f"{question}: expected a number, got {answer!r}")
    ok = math.isclose(value, float(expected), rel_tol=rel_tol, abs_tol=abs_tol)
    msg = f"{question}: {value:g} is {'right' if ok else 'off'}"
    if not ok:
        msg += f" (measured: {float(expected):.4g}, tolerance {rel_tol:.0%})"
    return CheckResult(ok, msg + (f". {explain}" if explain else ""))
