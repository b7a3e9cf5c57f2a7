"""The input checks of the selection scores: features, class labels and real-valued targets.

Every score in :mod:`transferlab.selection` takes its arrays through these, so the rules (and the messages) are the
same for all of them: features are a real ``[N, D]`` array of any origin (a vision backbone's pooled output, a
text encoder's sentence embedding, hand-made columns), computed in float64; class labels are integers that need
not be contiguous; regression targets are real ``[N]`` or ``[N, T]``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_tensor", "work_device", "as_features", "as_labels", "as_real_targets"]


def as_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a tensor (detached; NumPy arrays, lists and tuples are converted), or ``ValueError``.

    Examples
    --------
    >>> as_tensor([[1, 2], [3, 4]], "features").shape
    torch.Size([2, 2])
    """
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError(f"{name} must be numeric, got an array of Python objects")
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise ValueError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")


def work_device(t: torch.Tensor, device) -> torch.device:
    """Where to compute on ``t``: ``device``, or ``t``'s own device when it is None; MPS (no float64) -> CPU."""
    dev = t.device if device is None else torch.device(device)
    return torch.device("cpu") if dev.type == "mps" else dev  # MPS has no float64: compute on the CPU


def as_features(features, device=None) -> torch.Tensor:
    """Features ``[N, D]`` (N >= 2, D >= 1, finite real numbers) as float64 on the computing device.

    Examples
    --------
    >>> as_features([[1, 2], [3, 4]]).dtype
    torch.float64
    """
    f = as_tensor(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got shape {tuple(f.shape)}")
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
    return f


def as_labels(targets, n: int, name: str = "targets", min_classes: int = 2) -> tuple[torch.Tensor, int]:
    """Integer labels [N] -> (indices 0..K-1 into the sorted classes that occur, K).

    Examples
    --------
    >>> as_labels([7, 3, 7], 3)
    (tensor([1, 0, 1]), 2)
    """
    y = as_tensor(targets, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer class labels [N], got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class labels, got dtype {y.dtype}; cast class ids with "
                         f".long() / .astype(int), or pass regression=True for real-valued targets")
    if len(y) != n:
        raise ValueError(f"features and {name} disagree on N: {n} feature rows but {len(y)} labels")
    classes, inverse = torch.unique(y.cpu().long(), return_inverse=True)
    if len(classes) < min_classes:
        raise ValueError(f"{name} must contain at least {min_classes} distinct classes, got "
                         f"{classes.tolist()}")
    return inverse, len(classes)


def as_real_targets(targets, n: int) -> torch.Tensor:
    """Regression targets [N] or [N, T] (finite) as float64 [N, T].

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
    y = y.to(torch.float64)
    if not torch.isfinite(y).all():
        raise ValueError("regression targets contain NaN or inf; expected finite numbers")
    return y.reshape(n, -1)
