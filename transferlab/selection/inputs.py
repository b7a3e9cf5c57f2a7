"""The input checks of the selection scores: features, class labels, real-valued targets and LogME's options.

Every score in :mod:`transferlab.selection` takes its arrays through these, so the rules (and the messages) are the
same for all of them. Nothing here assumes what the samples are:

- features are a real ``[N, D]`` array of any origin (a vision backbone's pooled output, a text encoder's
  sentence embedding, hand-made columns), in any real dtype (float16 and bfloat16 included), computed in
  float64; NaN and inf are refused;
- class labels are integers that need not be contiguous, or strings (``"pos"``, ``"neg"``); the scores only
  see which samples share a class, so any relabelling gives the same number;
- regression targets are real ``[N]`` or ``[N, T]``.

Scale. LogME and H-score do not depend on the scale of the features, but ``F^T F`` overflows float64 for
entries beyond about 1e150 and underflows below about 1e-160. Both therefore divide features whose largest
magnitude lies outside ``2^+-SAFE_EXPONENT`` by a power of two (:func:`unit_scale`, exact in binary floating
point) that brings it near 1, and LogME does the same per column of regression targets, then turns its results
back to the units of the data as given. Data inside that range is used as given: its scores are unchanged to
the last bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .._validate import as_float, as_int
from ..device import resolve_device

__all__ = ["SAFE_EXPONENT", "as_tensor", "work_device", "as_features", "as_labels", "as_real_targets", "as_flag",
           "unit_scale", "times_power_of_two", "LogMEInputs", "as_logme_inputs"]

SAFE_EXPONENT = 200  # |x| up to 2^200 (1.6e60) and down to 2^-200: squares and their sums stay far from the limits


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a tensor (detached; NumPy arrays, lists, tuples and array-likes such as a pandas Series).

    Examples
    --------
    >>> as_tensor([[1, 2], [3, 4]], "features").shape
    torch.Size([2, 2])
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, list, tuple)) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind in "USV":
            raise ValueError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr)
        return torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # read-only (pandas, memmap): copy
    raise ValueError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")


def work_device(t: torch.Tensor, device) -> torch.device:
    """Where to compute on ``t``: ``device`` (checked), or ``t``'s own device when it is None; MPS -> CPU.

    An unknown or unavailable device is a ``ValueError`` from :func:`transferlab.device.resolve_device`.
    """
    if device is None:
        dev = t.device
    else:  # a torch.device is checked too: torch.device("cuda") exists on every machine, a GPU does not
        dev = resolve_device(str(device) if isinstance(device, torch.device) else device)
    return torch.device("cpu") if dev.type == "mps" else dev  # MPS has no float64: compute on the CPU


def unit_scale(x: torch.Tensor, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x / 2^e, e)`` with the power of two ``e`` (int64) that brings ``x``'s largest magnitude near 1.

    ``e`` is 0, and ``x`` is returned as it is, where that magnitude is zero or already within
    ``2^+-SAFE_EXPONENT``: ordinary data is used exactly as given. Dividing by a power of two is exact in binary
    floating point. With ``dim``, one exponent per slice along ``dim`` (per target column with ``dim=0``).

    Examples
    --------
    >>> x, e = unit_scale(torch.tensor([3.0, -1e200], dtype=torch.float64)); x.tolist(), e.item()
    ([1.9596302649453906e-200, -0.6532100883151302], 665)
    >>> unit_scale(torch.tensor([1e-3, 1e3], dtype=torch.float64))[1]
    tensor(0)
    """
    top = x.abs().amax() if dim is None else x.abs().amax(dim)
    e = torch.frexp(top).exponent.long()  # top = m 2^e with m in [0.5, 1); frexp(0) gives e = 0
    e = torch.where(e.abs() > SAFE_EXPONENT, e, torch.zeros_like(e)).clamp(-1000, 1000)  # 2^+-1000 is finite
    return (x * torch.pow(2.0, -e.to(x.dtype)) if bool(e.any()) else x), e


def times_power_of_two(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``x * 2^k`` elementwise, exactly (``ldexp``: no intermediate ``2^k`` to overflow); ``x`` when k is 0.

    A result beyond float64's range is inf (or 0), as any float64 arithmetic would give.

    Examples
    --------
    >>> times_power_of_two(torch.tensor([1e-300, 3.0], dtype=torch.float64), torch.tensor([1100, -1])).tolist()
    [1.3582...e+31, 1.5]
    """
    if not bool(k.any()):
        return x
    k = k.expand_as(x).cpu().numpy()
    with np.errstate(over="ignore", under="ignore"):  # documented: out of range is inf or 0
        return torch.from_numpy(np.ldexp(x.detach().cpu().numpy(), k)).to(x.device)


def as_features(features, device=None, *, score: str = "LogME", centred: bool = False) -> torch.Tensor:
    """Features ``[N, D]`` (N >= 2, D >= 1, finite, not all alike) as float64 on the computing device.

    ``centred=False`` (LogME: no centring) refuses features that are zero in every entry; ``centred=True``
    (H-score: covariances) refuses features with zero variance in every dimension. ``score`` names the score
    in the message. The features are returned as given (see :func:`unit_scale` for the scale-free scores).

    Examples
    --------
    >>> as_features([[1, 2], [3, 4]]).dtype
    torch.float64
    """
    f = as_tensor(features, "features")
    if f.ndim != 2:
        hint = ("; pool the token, time or spatial dimensions first (e.g. features.mean(1)), or flatten them"
                if f.ndim > 2 else "")
        raise ValueError(f"features must be 2-D [N, D], got shape {tuple(f.shape)}{hint}")
    if not (f.dtype.is_floating_point or f.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                      torch.uint8)):
        raise ValueError(f"features must be real numbers, got dtype {f.dtype}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least N = 2 samples, got features of shape {tuple(f.shape)}")
    if f.shape[1] < 1:
        raise ValueError(f"features need at least one dimension, got shape {tuple(f.shape)}")
    f = f.to(work_device(f, device), torch.float64)
    if not torch.isfinite(f).all():
        bad = (~torch.isfinite(f)).nonzero()[0].tolist()
        raise ValueError(f"features contain NaN or inf (first at row {bad[0]}, column {bad[1]}: "
                         f"{f[bad[0], bad[1]].item()}); expected finite numbers")
    if not centred and not bool(f.any()):
        raise ValueError(f"features are zero in every entry (shape {tuple(f.shape)}): with no feature direction "
                         f"to fit, {score}'s evidence has no optimum over the prior precision alpha and the score "
                         "is undefined; expected features with at least one non-zero value (does the feature "
                         "extractor return its activations?)")
    if centred and not bool((f != f[:1]).any()):
        raise ValueError(f"features have zero variance in every dimension (all {f.shape[0]} rows are the same): "
                         f"{score} divides by the features' covariance, so the score is undefined (0 / 0); "
                         "expected features that vary across samples (does the feature extractor return its "
                         "activations?)")
    return f


def as_labels(targets, n: int | None, name: str = "targets", min_classes: int = 2, *, other: str = "features",
              hint: str = "") -> tuple[torch.Tensor, int]:
    """Class labels [N] (integers or strings) -> (indices 0..K-1 into the sorted classes that occur, K).

    ``n`` is the N that ``other`` (the array the labels go with) has, or None not to check it; ``hint`` ends
    the message for float labels.

    Examples
    --------
    >>> as_labels([7, 3, 7], 3)
    (tensor([1, 0, 1]), 2)
    >>> as_labels(["pos", "neg", "pos"], 3)
    (tensor([1, 0, 1]), 2)
    """
    y = _string_labels_as_ids(targets)
    y = as_tensor(targets, name) if y is None else y
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels [N], got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class labels, got dtype {y.dtype}; cast class ids with "
                         f".long() / .astype(int){hint}")
    if n is not None and len(y) != n:
        raise ValueError(f"{other} and {name} disagree on N: {n} rows in {other} but {len(y)} labels in {name}")
    classes, inverse = torch.unique(y.cpu().long(), return_inverse=True)
    if len(classes) < min_classes:
        raise ValueError(f"{name} must contain at least {min_classes} distinct classes, got "
                         f"{classes.tolist()}")
    return inverse, len(classes)


def _string_labels_as_ids(targets) -> torch.Tensor | None:
    """String labels (a list, a NumPy array, a pandas Series of str) as their indices in sorted order; else None."""
    if isinstance(targets, torch.Tensor) or not (isinstance(targets, (list, tuple)) or hasattr(targets, "__array__")):
        return None
    arr = np.asarray(targets)
    if arr.dtype.kind in "US" or (arr.dtype == object and arr.size and all(isinstance(v, str) for v in arr.flat)):
        return torch.from_numpy(np.unique(arr.astype(str), return_inverse=True)[1].reshape(arr.shape).astype(np.int64))
    return None


def as_real_targets(targets, n: int) -> torch.Tensor:
    """Regression targets [N] or [N, T] (finite, no column all zero) as float64 [N, T].

    Examples
    --------
    >>> as_real_targets([1.0, 2.0], 2).shape
    torch.Size([2, 1])
    """
    y = as_tensor(targets, "targets")
    if y.ndim not in (1, 2):
        raise ValueError(f"regression targets must be [N] or [N, T], got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or y.dtype.is_complex:
        raise ValueError(f"regression targets must be real numbers, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"features and targets disagree on N: {n} feature rows but {y.shape[0]} targets")
    y = y.to(torch.float64).reshape(n, -1)
    if not torch.isfinite(y).all():
        raise ValueError("regression targets contain NaN or inf; expected finite numbers")
    zero = (~y.any(0)).nonzero(as_tuple=True)[0].tolist()
    if zero:
        raise ValueError(f"regression target column(s) {zero} are identically zero; their evidence is unbounded "
                         "(beta -> inf fits them exactly); expected targets with at least one non-zero value")
    return y


def as_flag(name: str, value) -> bool:
    """``True`` or ``False`` (NumPy's too); anything else, e.g. the string ``"no"``, is a ``ValueError``.

    Examples
    --------
    >>> as_flag("regression", np.bool_(True))
    True
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


class LogMEInputs(NamedTuple):
    """LogME's arguments, checked (see :func:`as_logme_inputs`), and the way back to the caller's units."""

    features: torch.Tensor  # [N, D] float64 on the computing device, divided by 2^feature_exponent
    feature_exponent: torch.Tensor  # int64 scalar, 0 unless the features are extreme in magnitude
    labels: torch.Tensor | None  # [N] class indices 0..K-1 (classification), on the computing device
    num_classes: int  # K (classification), else 0
    targets: torch.Tensor | None  # [N, T] float64 (regression), column c divided by 2^target_exponent[c]
    target_exponent: torch.Tensor  # [C] int64, one per class or target column; 0 for one-hot columns
    rtol: float
    max_iter: int

    def given_evidence(self, evidence: torch.Tensor) -> torch.Tensor:
        """Evidence per sample [C] of the targets as given: with ``y = 2^t y'`` it is a density of ``y``, so
        it is that of ``y'`` minus ``t log 2`` (unchanged where t = 0)."""
        t = self.target_exponent
        return evidence - t.to(evidence.dtype) * math.log(2) if bool(t.any()) else evidence

    def given_precisions(self, alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha and beta [C] of the data as given. With ``F = 2^f F'`` and ``y = 2^t y'``, beta (the precision
        of y's noise) is ``beta' 2^-2t`` and alpha (that of the weights ``w = 2^(t-f) w'``) is ``alpha' 2^(2f-2t)``."""
        f, t = self.feature_exponent, self.target_exponent
        return times_power_of_two(alpha, 2 * f - 2 * t), times_power_of_two(beta, -2 * t)


def as_logme_inputs(features, targets, *, regression, device, rtol, max_iter) -> LogMEInputs:
    """Check and convert the arguments of :func:`~transferlab.selection.logme.logme_fit` (and ``logme_naive``).

    Features and regression targets of extreme magnitude are brought near 1 by powers of two
    (:func:`unit_scale`: the features as a whole, the targets per column); ``LogMEInputs.given_evidence`` and
    ``given_precisions`` turn the results back. Ordinary data is used exactly as given.
    """
    rtol = as_float("rtol", rtol, min=0, min_open=True)
    max_iter = as_int("max_iter", max_iter, min=1)
    f, e_f = unit_scale(as_features(features, device))
    n = f.shape[0]
    if as_flag("regression", regression):
        y, e_y = unit_scale(as_real_targets(targets, n).to(f.device), dim=0)
        return LogMEInputs(f, e_f, None, 0, y, e_y, rtol, max_iter)
    inverse, k = as_labels(targets, n, hint=", or pass regression=True for real-valued targets")
    e_y = torch.zeros(k, dtype=torch.long, device=f.device)
    return LogMEInputs(f, e_f, inverse.to(f.device), k, None, e_y, rtol, max_iter)
