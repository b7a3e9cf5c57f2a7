"""The width of an optimum along each ray: where the metric first rises a given amount above the solution's own."""

from __future__ import annotations

import numpy as np

from .._validate import as_float

__all__ = ["ray_width", "width_summary"]


def ray_width(frame, *, metric: str = "test_error", rise: float | None = 0.1, threshold: float | None = None):
    """Width of the optimum along each ray: the distance at which ``metric`` first exceeds a threshold.

    The threshold is ``metric at distance 0 + rise`` (default: 10 points of test error above the solution's
    own), or the absolute ``threshold`` when given. The crossing is linearly interpolated between the two
    grid points around it. A ray that never crosses within the range gets ``NaN`` and ``reached=False``.

    Returns
    -------
    pandas.DataFrame with columns solution, ray, base, threshold, width, reached.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame(dict(solution="a", ray=0, distance=[0.0, 1.0, 2.0], test_error=[0.1, 0.15, 0.35]))
    >>> float(ray_width(f)["width"][0])
    1.25
    """
    if (rise is None) == (threshold is None):
        raise ValueError(f"give exactly one of rise= (relative to the solution) or threshold= (absolute); got "
                         f"rise={rise!r}, threshold={threshold!r}")
    if rise is not None:  # a rise <= 0 puts the threshold at or below the solution itself: every width 0
        rise = as_float("rise (how far the metric must climb above the solution's own)", rise, min=0.0,
                        min_open=True)
    else:
        threshold = as_float("threshold", threshold)
    if metric not in frame.columns:
        raise KeyError(f"metric {metric!r} is not a column; columns: {list(frame.columns)}")
    import pandas as pd

    rows = []
    for (sol, ray), g in frame.groupby(["solution", "ray"], sort=True):
        g = g.sort_values("distance")
        dist, val = g["distance"].to_numpy(float), g[metric].to_numpy(float)
        if not np.isclose(dist[0], 0.0):
            raise ValueError(f"ray {ray} of {sol!r} does not start at distance 0 (first point {dist[0]}); the width "
                             f"is measured from the solution itself")
        base = val[0]
        thr = base + rise if threshold is None else threshold
        above = np.nonzero(val > thr)[0]
        if len(above) == 0:
            width, reached = float("nan"), False
        else:
            i = above[0]
            if i == 0:
                width = 0.0
            else:
                frac = (thr - val[i - 1]) / (val[i] - val[i - 1])
                width = float(dist[i - 1] + frac * (dist[i] - dist[i - 1]))
            reached = True
        rows.append(dict(solution=sol, ray=int(ray), base=float(base), threshold=float(thr), width=width,
                         reached=reached))
    return pd.DataFrame(rows)


def width_summary(widths) -> dict:
    """Mean and std of the width per solution, over rays (``{solution: {"mean", "std", "n", "unreached"}}``).

    Rays that never crossed the threshold (``NaN`` width) are left out of the mean and counted in "unreached".

    Examples
    --------
    >>> import pandas as pd
    >>> w = pd.DataFrame(dict(solution="a", ray=[0, 1, 2], width=[1.0, 3.0, float("nan")]))
    >>> width_summary(w)["a"]
    {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2, 'unreached': 1}
    """
    out = {}
    for sol, g in widths.groupby("solution", sort=True):
        w = g["width"].to_numpy(float)
        ok = w[~np.isnan(w)]
        out[sol] = dict(mean=float(ok.mean()) if len(ok) else float("nan"),
                        std=float(ok.std(ddof=1)) if len(ok) > 1 else float("nan"), n=int(len(ok)),
                        unreached=int(np.isnan(w).sum()))
    return out


