"""Transferability baselines next to LogME: LEEP, NCE and H-score.

LEEP and NCE read the *source classifier* of a candidate model (its class probabilities, or their argmax, on
the target samples); H-score, like LogME, reads only the frozen features. None of them fine-tunes anything, and
none assumes what the samples are (images, sentences, tabular rows): features in, a number out. Each is higher
for a better candidate and, like LogME, comparable only between candidates scored on the same target data.
"""

from __future__ import annotations

import torch

from .inputs import as_features, as_labels, as_tensor, unit_scale

__all__ = ["leep", "nce", "hscore"]


def leep(source_probs, targets) -> float:
    """LEEP (Nguyen et al., 2020): log expected empirical prediction of the source classifier's outputs.

    The source model's class probabilities ``theta(x)`` [N, Z] on the target samples define an empirical
    joint ``P(y, z) = mean_i theta(x_i)_z [y_i = y]``, hence ``P(y | z)``; LEEP is the mean log-likelihood of
    the "dummy" classifier ``p(y | x) = sum_z P(y | z) theta(x)_z``. It needs a source classifier (the zoo
    models' source heads). Higher is better; at most 0.

    Parameters
    ----------
    source_probs : [N, Z] probabilities (rows sum to 1, to rounding in their dtype: float16 and bfloat16
        rows may be off by twice their epsilon; apply a softmax to logits first).
    targets : [N] class labels, integers (need not be contiguous) or strings.

    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]]); y = torch.tensor([0, 0, 1, 1])
    >>> round(leep(p, y), 3)
    -0.295
    """
    p = as_tensor(source_probs, "source_probs")
    if p.ndim != 2 or not p.dtype.is_floating_point:
        raise ValueError(f"source_probs must be float probabilities [N, Z], got shape {tuple(p.shape)} "
                         f"dtype {p.dtype}")
    atol = max(1e-4, 2 * torch.finfo(p.dtype).eps)  # a softmax rounded to float16 / bfloat16 is off by ~eps
    p = p.to("cpu", torch.float64)
    if not torch.isfinite(p).all() or (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(1,
                                                                          dtype=p.dtype), atol=atol):
        raise ValueError("source_probs must be finite, non-negative and sum to 1 per row (softmax the logits "
                         f"first); row sums range over [{float(p.sum(1).min()):.4g}, {float(p.sum(1).max()):.4g}]")
    inverse, k = as_labels(targets, p.shape[0], other="source_probs")
    joint = torch.zeros(k, p.shape[1], dtype=p.dtype).index_add_(0, inverse, p) / p.shape[0]  # P(y, z)
    cond = joint / joint.sum(0, keepdim=True).clamp(min=1e-300)  # P(y | z)
    eep = (p @ cond.T)[torch.arange(p.shape[0]), inverse]
    return float(torch.log(eep.clamp(min=1e-300)).mean())


def nce(source_labels, targets) -> float:
    """NCE (Tran et al., 2019): negative conditional entropy ``-H(Y | Z)`` of target given source labels.

    ``Z`` are source-task labels of the target samples. Target samples have none, so the common practice,
    followed in the lesson, is the source model's *pseudo-label*: the argmax of its source head. Higher is
    better; at most 0 (0 when each source label determines the target label).

    Examples
    --------
    >>> nce(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 7, 7]))
    0.0
    """
    z_inv, kz = as_labels(source_labels, None, "source_labels", 1)
    y_inv, ky = as_labels(targets, len(z_inv), other="source_labels")
    joint = torch.zeros(ky * kz, dtype=torch.float64).index_add_(
        0, y_inv * kz + z_inv, torch.ones(len(y_inv), dtype=torch.float64)).view(ky, kz) / len(y_inv)
    pz = joint.sum(0, keepdim=True)
    nz = joint > 0
    return float((joint[nz] * torch.log(joint[nz] / pz.expand_as(joint)[nz])).sum())


def hscore(features, targets, *, device=None) -> float:
    """H-score (Bao et al., 2019): ``tr(cov(f)^+ cov(E[f | y]))``, how well class means separate in features.

    The features are centred; ``cov(f)^+`` is the Moore-Penrose pseudo-inverse (``torch.linalg.pinv`` with
    its default cut-off), as in common implementations, since ``cov(f)`` is singular when N <= D or when
    features are collinear. Higher is better; bounded by ``min(C - 1, D)``. Features with zero variance in
    every dimension are a ``ValueError`` (the ratio is 0 / 0). Like LogME it ignores the features' scale.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0); y = torch.arange(200) % 2
    >>> hscore(torch.randn(200, 4, generator=g) + 5 * y[:, None], y) > 0.9
    True
    """
    f = unit_scale(as_features(features, device, score="H-score", centred=True))[0]  # extreme scales: see inputs
    inverse, k = as_labels(targets, f.shape[0])
    inverse = inverse.to(f.device)
    f = f - f.mean(0, keepdim=True)
    cov_f = f.T @ f / f.shape[0]
    counts = torch.bincount(inverse, minlength=k).to(f.dtype)
    means = torch.zeros(k, f.shape[1], dtype=f.dtype, device=f.device).index_add_(0, inverse, f) / counts[:, None]
    cov_g = (means.T * (counts / f.shape[0])) @ means  # class-conditional means, weighted by class frequency
    return float(torch.trace(torch.linalg.pinv(cov_f, hermitian=True) @ cov_g))
