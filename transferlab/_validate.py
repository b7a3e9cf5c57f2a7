"""Argument checks at the kit's public boundary: the only copies, each with a message that quotes the bad value
and says what was expected.

Numbers: Python and NumPy scalars are accepted alike (``np.int64(3)`` is an integer, ``np.float32(0.5)`` a
number); ``bool`` is never a number; ``NaN`` and infinities are rejected unless asked for. Names: a typo gets a
"did you mean" hint. Sequences: a single string where a list is expected is taken as a list of one, never
iterated character by character.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence

__all__ = ["did_you_mean", "as_int", "as_float", "as_seed", "as_choice", "as_key", "as_list", "as_probability"]


def did_you_mean(value, options: Iterable, *, cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the closest option, or ``""``.

    Examples
    --------
    >>> did_you_mean("kitnet_m-scr", ["kitnet_m-src", "kitnet_s-src"])
    " Did you mean 'kitnet_m-src'?"
    >>> did_you_mean("zzz", ["a", "b"])
    ''
    """
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=cutoff)
    return f" Did you mean {close[0]!r}?" if close else ""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def as_int(name: str, value, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` as a Python int (NumPy integers too), checked against ``min``/``max`` (inclusive).

    Examples
    --------
    >>> import numpy as np; as_int("n", np.int64(3), min=1)
    3
    >>> as_int("batch_size", 2.7, min=1)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer >= 1, got 2.7
    """
    if not _is_int(value) or (min is not None and value < min) or (max is not None and value > max):
        bounds = (f" >= {min}" if min is not None else "") + (f" and <= {max}" if max is not None else "")
        if min is None and max is not None:
            bounds = f" <= {max}"
        raise ValueError(f"{name} must be an integer{bounds}, got {value!r}")
    return int(value)


def as_seed(value, name: str = "seed") -> int:
    """A non-negative integer seed.

    Examples
    --------
    >>> as_seed(0), as_seed(7)
    (0, 7)
    """
    return as_int(name, value, min=0)


def as_float(name: str, value, *, min: float | None = None, max: float | None = None, min_open: bool = False,
             max_open: bool = False, finite: bool = True) -> float:
    """``value`` as a Python float (ints and NumPy scalars too), finite unless ``finite=False``, within bounds.

    Examples
    --------
    >>> import numpy as np; as_float("lr", np.float32(0.5), min=0, min_open=True)
    0.5
    >>> as_float("lr", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number, got nan
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
    f = float(value) if ok else math.nan
    if ok and finite and not math.isfinite(f):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    lo_ok = min is None or (f > min if min_open else f >= min)
    hi_ok = max is None or (f < max if max_open else f <= max)
    if not ok or math.isnan(f) or not lo_ok or not hi_ok:
        parts = []
        if min is not None:
            parts.append(f"{'>' if min_open else '>='} {min:g}")
        if max is not None:
            parts.append(f"{'<' if max_open else '<='} {max:g}")
        bounds = (" " + " and ".join(parts)) if parts else ""
        raise ValueError(f"{name} must be a number{bounds}, got {value!r}")
    return f


def as_probability(name: str, value) -> float:
    """A number in [0, 1].

    Examples
    --------
    >>> as_probability("similarity", 1)
    1.0
    """
    return as_float(name, value, min=0.0, max=1.0)


def as_choice(name: str, value, choices: Sequence, *, error: type[Exception] = ValueError):
    """``value`` if it is one of ``choices``, else ``error`` (ValueError by default) with a hint.

    Examples
    --------
    >>> as_choice("schedule", "cosine", ("onecycle", "cosine"))
    'cosine'
    >>> as_choice("schedule", "cosin", ("onecycle", "cosine"))
    Traceback (most recent call last):
    ...
    ValueError: unknown schedule 'cosin'; expected one of ('onecycle', 'cosine'). Did you mean 'cosine'?
    """
    try:
        if value in choices:
            return value
    except TypeError:  # unhashable value against a dict/set
        pass
    hint = did_you_mean(value, choices)
    raise error(f"unknown {name} {value!r}; expected one of {tuple(choices)}" + (f".{hint}" if hint else ""))


def as_key(what: str, value, mapping) -> object:
    """``mapping[value]``, or ``KeyError`` naming the known keys and the closest one.

    Examples
    --------
    >>> as_key("zoo model", "a", {"a": 1})
    1
    """
    if isinstance(value, str) and value in mapping:
        return mapping[value]
    raise KeyError(f"no {what} named {value!r}.{did_you_mean(value, mapping)} Known: {sorted(mapping)}")


def as_list(name: str, value, *, allow_empty: bool = False) -> list:
    """A list from a sequence, or a list of one from a single string or number (never split into characters).

    Examples
    --------
    >>> as_list("plan", "scratch"), as_list("sizes", (20, 200)), as_list("sizes", 20)
    (['scratch'], [20, 200], [20])
    """
    if isinstance(value, (str, bytes, numbers.Number)):
        out = [value]
    elif isinstance(value, Iterable):
        out = list(value)
    else:
        raise TypeError(f"{name} must be a list (or a single item), got {type(value).__name__} {value!r}")
    if not out and not allow_empty:
        raise ValueError(f"{name} is empty; give at least one item")
    return out
