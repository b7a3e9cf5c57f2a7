"""Ranking candidates: weighted Kendall tau between a method's scores and the models' fine-tuned accuracies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["rank_models"]


def rank_models(scores: Mapping[str, float] | Sequence[float],
                ground_truth: Mapping[str, float] | Sequence[float]) -> float:
    """Weighted Kendall tau between a method's scores and the models' fine-tuned accuracies.

    ``scipy.stats.weightedtau`` with its defaults: the *additive hyperbolic* weighting, in which swapping
    the models ranked ``r`` and ``s`` (0 = best) costs ``1/(r+1) + 1/(s+1)``, so mistakes among the top
    models weigh most; as no external ranking is given, it averages the values obtained when the ranks
    come from ``scores`` and from ``ground_truth``. +1: the same order; -1: reversed; about 0: unrelated.
    The LogME paper reports weighted tau without its exact weighting in code, so compare trends, not third
    decimals.

    Parameters
    ----------
    scores, ground_truth : mappings model name -> number (the same names), or equal-length sequences.
        Python, NumPy and 0-d torch numbers; finite; each side must hold at least two different values
        (a constant side orders nothing, and is a ``ValueError``).

    Examples
    --------
    >>> rank_models({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 0.9, "b": 0.8, "c": 0.7})
    1.0
    """
    from scipy.stats import weightedtau

    if isinstance(scores, Mapping) != isinstance(ground_truth, Mapping):
        raise ValueError("scores and ground_truth must both be mappings (model -> value) or both sequences")
    if isinstance(scores, Mapping):
        missing = sorted(set(ground_truth) - set(scores))
        extra = sorted(set(scores) - set(ground_truth))
        if missing or extra:
            raise KeyError(f"scores and ground_truth name different models: only in ground_truth {missing}, "
                           f"only in scores {extra}")
        names = sorted(scores)
        x = _numbers("scores", [scores[k] for k in names])
        y = _numbers("ground_truth", [ground_truth[k] for k in names])
    else:
        x, y = _numbers("scores", scores), _numbers("ground_truth", ground_truth)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"scores and ground_truth must be 1-D and of equal length, got shapes {x.shape} "
                             f"and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"need at least two models to rank, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"scores and ground_truth must be finite, got {x.tolist()} and {y.tolist()}")
    for name, v in (("scores", x), ("ground_truth", y)):
        if (v == v[0]).all():
            raise ValueError(f"{name} are all equal ({v[0]:g} for all {len(v)} models): they put the models in no "
                             "order, so weighted tau is undefined; expected at least two different values")
    return float(weightedtau(x, y).statistic)


def _numbers(name: str, values) -> np.ndarray:
    """``values`` (a sequence of Python, NumPy or 0-d torch numbers) as a float array; bools are refused."""
    try:
        raw = np.asarray(values)
        if raw.dtype == bool or raw.dtype.kind in "USV" or any(isinstance(v, (bool, np.bool_)) for v in raw.flat):
            raise TypeError
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, one per model; got {values!r:.120}") from None
