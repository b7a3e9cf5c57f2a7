"""Choosing a pretrained model without fine-tuning it: LogME, and the LEEP, NCE and H-score baselines.

LogME (You et al., ICML 2021) scores a model by how well a *linear* model on its frozen features explains
the target labels, measured by the **evidence** (marginal likelihood) of Bayesian linear regression

    w ~ N(0, alpha^-1 I),   y | F, w ~ N(F w, beta^-1 I),

with the prior precision ``alpha`` and noise precision ``beta`` set to the values that maximise the evidence.
Those are found by MacKay's fixed-point iteration rather than a grid search::

    gamma = sum_i beta s_i / (alpha + beta s_i)        (effective number of well-determined weights)
    alpha <- gamma / |m|^2,    beta <- (N - gamma) / |y - F m|^2

where ``s_i`` are the eigenvalues of ``F^T F`` and ``m`` the posterior mean of ``w``. The fast algorithm
decomposes the features once and then runs the fixed point for all one-hot classes (or regression targets)
together, in closed form per eigen-direction; nothing is inverted inside the loop. :func:`logme_naive`
is the deliberately slow version (a ``D x D`` inverse per iteration and per class) for the speed lesson.

What the evidence rewards: a good fit of the labels (large ``beta``) with small weights (large ``alpha``),
and it pays ``1/2 log|A|`` for every direction of feature space the labels make it use. A score is a log
probability density per sample: it is comparable between models on *the same* target data, not across tasks
or datasets, and its absolute value has no meaning of its own.

Exactness: LogME here is exact whether ``N > D`` or ``N <= D``. When ``N <= D`` the ``D - N`` (or more)
zero eigenvalues of ``F^T F`` still count in ``log|A| = sum_i log(alpha + beta s_i)`` (each adds
``log alpha``) and add nothing to ``gamma``. The widely used reference code keeps ``D/2 log alpha`` but sums
``log(alpha + beta s_i)`` over only ``min(N, D)`` singular values, which overstates the score when N < D.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "LogMEResult",
    "logme",
    "logme_fit",
    "logme_naive",
    "leep",
    "nce",
    "hscore",
    "rank_models",
    "check_evidence",
]

# Convergence of the fixed point: a class (target) has converged when neither its alpha nor its beta changes
# by more than RTOL relative in one step. A step costs O(min(N, D) * C) after the one decomposition, i.e. next
# to nothing, so we afford a tight tolerance instead of the reference code's rule (at most 11 steps, stop at
# 1e-2 relative change of alpha/beta), which can stop well short of the optimum.
# The fixed point converges linearly, in 5-30 steps on informative features. Where the evidence is largest
# at a boundary (alpha -> inf: "the features explain nothing of this class"; beta -> inf when N <= D: "the
# labels are fitted exactly") it walks geometrically towards infinity and would take thousands of steps
# (measured: 1,000-10,000+ on random features). Classes still moving after MAX_ITER steps are therefore
# finished by bisection on the slope of the evidence profiled over beta (a 1-D problem with the same
# stationary point), which either converges inside the bracket or stops at its end.
RTOL = 1e-9
MAX_ITER = 50
# alpha and beta are kept within exp(+-BOUND) of their scale-aware starting values (lambda = alpha / beta
# within exp(+-2 BOUND)); at a boundary optimum the evidence then reaches its limit to ~exp(-BOUND) relative.
BOUND = 35.0


# ----------------------------------------------------------------------------------------------------------
# Input checks (the public boundary)
def _to_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object:
            raise ValueError(f"{name} must be numeric, got an array of Python objects")
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise ValueError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")


def _work_device(t: torch.Tensor, device) -> torch.device:
    dev = t.device if device is None else torch.device(device)
    return torch.device("cpu") if dev.type == "mps" else dev  # MPS has no float64: compute on the CPU


def _check_features(features, device=None) -> torch.Tensor:
    f = _to_tensor(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got shape {tuple(f.shape)}")
    if not (f.dtype.is_floating_point or f.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                      torch.uint8)):
        raise ValueError(f"features must be real numbers, got dtype {f.dtype}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least N = 2 samples, got features of shape {tuple(f.shape)}")
    if f.shape[1] < 1:
        raise ValueError(f"features need at least one dimension, got shape {tuple(f.shape)}")
    f = f.to(_work_device(f, device), torch.float64)
    if not torch.isfinite(f).all():
        bad = (~torch.isfinite(f)).nonzero()[0].tolist()
        raise ValueError(f"features contain NaN or inf (first at row {bad[0]}, column {bad[1]}: "
                         f"{f[bad[0], bad[1]].item()}); expected finite numbers")
    return f


def _check_labels(targets, n: int, name: str = "targets", min_classes: int = 2) -> tuple[torch.Tensor, int]:
    """Integer labels [N] -> (indices 0..K-1 into the sorted classes that occur, K)."""
    y = _to_tensor(targets, name)
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


def _check_real_targets(targets, n: int) -> torch.Tensor:
    y = _to_tensor(targets, "targets")
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


# ----------------------------------------------------------------------------------------------------------
# LogME, fast
@dataclass
class LogMEResult:
    """The fixed point of every class (or regression target), from :func:`logme_fit`.

    ``evidence``, ``alpha``, ``beta`` and ``gamma`` are float64 tensors of shape ``[C]`` (on the computing
    device); ``evidence`` is the log maximum evidence per sample. ``score`` is their mean (what
    :func:`logme` returns). ``iterations`` is the number of fixed-point steps taken; ``converged`` is True
    when the fixed point converged for every class (False: some were finished by the 1-D solver);
    ``at_bound`` marks classes whose optimum lies at alpha or beta -> infinity (clamped, see ``BOUND``).
    """

    evidence: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    gamma: torch.Tensor
    iterations: int
    converged: bool
    at_bound: torch.Tensor

    @property
    def score(self) -> float:
        return float(self.evidence.mean())


def _spectral(f: torch.Tensor, onehot: torch.Tensor | None, y: torch.Tensor | None):
    """One decomposition of the features and the projections of every target on its eigenbasis.

    Returns ``(s, p, yy, primal)``: eigenvalues ``s`` [k] of ``F^T F`` (k = D, primal) or ``F F^T``
    (k = N, dual, used when N < D); per-target projections ``p`` [k, C] (``V^T F^T y`` in the primal,
    ``U^T y`` in the dual); squared norms ``yy`` [C].
    """
    n, d = f.shape
    primal = n >= d
    if primal:
        s, v = torch.linalg.eigh(f.T @ f)
        if onehot is not None:  # F^T Y for one-hot Y is a sum of rows per class: O(N D), not O(N D C)
            fty = torch.zeros(onehot[1], d, dtype=f.dtype, device=f.device).index_add_(0, onehot[0], f).T
        else:
            fty = f.T @ y
        p = v.T @ fty
    else:
        s, u = torch.linalg.eigh(f @ f.T)
        if onehot is not None:
            p = torch.zeros(onehot[1], n, dtype=f.dtype, device=f.device).index_add_(0, onehot[0], u).T
        else:
            p = u.T @ y
    if onehot is not None:
        yy = torch.bincount(onehot[0], minlength=onehot[1]).to(f.dtype)
    else:
        yy = (y * y).sum(0)
    return s.clamp(min=0), p, yy, primal


def _terms(alpha, beta, s, p2, yy, primal):
    """gamma, |m|^2 and |y - F m|^2 for every target at (alpha, beta), in closed form per eigen-direction.

    With w = beta / (alpha + beta s) and u = alpha / (alpha + beta s) (so u + s w = 1):
    primal (p = V^T F^T y): |m|^2 = sum p^2 w^2 and |y - Fm|^2 = |y|^2 - sum p^2 w (1 + u), with no
    division by s, so zero eigenvalues are harmless; dual (p = U^T y, U a full basis of R^N):
    |m|^2 = sum s p^2 w^2 and |y - Fm|^2 = sum p^2 u^2. Always gamma = sum s w.
    """
    denom = alpha[None, :] + beta[None, :] * s[:, None]  # [k, C]
    w = beta[None, :] / denom
    u = alpha[None, :] / denom
    gamma = s @ w
    if primal:
        pw = p2 * w
        mm = (pw * w).sum(0)
        res = yy - (pw * (1 + u)).sum(0)
        res = torch.clamp(res, min=torch.finfo(res.dtype).tiny)  # cancellation can leave -1e-16 |y|^2
    else:
        mm = (s[:, None] * p2 * w * w).sum(0)
        res = (p2 * u * u).sum(0)
    return gamma, mm, res, denom


def _evidence(alpha, beta, s, p2, yy, primal, n, d):
    """Log evidence per sample, for every target, at (alpha, beta)."""
    gamma, mm, res, denom = _terms(alpha, beta, s, p2, yy, primal)
    logdet = torch.log(denom).sum(0) + (d - len(s)) * torch.log(alpha)  # zero eigenvalues: log(alpha) each
    ev = (n / 2 * torch.log(beta) + d / 2 * torch.log(alpha) - n / 2 * math.log(2 * math.pi)
          - beta / 2 * res - alpha / 2 * mm - logdet / 2)
    return ev / n, gamma


def _mackay(s, p2, yy, primal, n, alpha, beta, rtol, max_iter):
    """MacKay's fixed point for every target at once; returns (alpha, beta, steps, converged [C]).

    Targets that have converged are dropped from the working set, so later steps only pay for the rest.
    """
    lo_a, hi_a = alpha * math.exp(-BOUND), alpha * math.exp(BOUND)
    lo_b, hi_b = beta * math.exp(-BOUND), beta * math.exp(BOUND)
    alpha, beta = alpha.clone(), beta.clone()
    done = torch.zeros_like(alpha, dtype=torch.bool)
    act = torch.arange(len(alpha), device=alpha.device)  # the targets still iterating
    a, b, pa, ya = alpha, beta, p2, yy
    tiny = torch.finfo(s.dtype).tiny
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        gamma, mm, res, _ = _terms(a, b, s, pa, ya, primal)
        new_a = torch.minimum(torch.maximum(gamma / mm.clamp(min=tiny), lo_a[act]), hi_a[act])
        new_b = torch.minimum(torch.maximum((n - gamma).clamp(min=0) / res, lo_b[act]), hi_b[act])
        change = torch.maximum((new_a - a).abs() / a, (new_b - b).abs() / b)
        a, b = new_a, new_b
        if it < 8 or it % 4 == 0 or it == max_iter:  # on CUDA each check is a host sync: not every step
            alpha[act], beta[act] = a, b
            fin = (change <= rtol) & (a < hi_a[act]) & (a > lo_a[act]) & (b < hi_b[act]) & (b > lo_b[act])
            done[act] = fin
            if bool(fin.all()):
                break
            if bool(fin.any()):
                keep = ~fin
                act, a, b, pa, ya = act[keep], a[keep], b[keep], pa[:, keep], ya[keep]
    return alpha, beta, it, done


def _profile_slope(t, s, p2, yy, primal, n):
    """d/dt of the evidence maximised over beta, at lambda = alpha / beta = exp(t); and q = N / beta.

    For a fixed ratio lambda the best beta is N / q with q = y^T (I + F F^T / lambda)^-1 y, which leaves a
    1-D problem in t. q is kept >= |y|^2 exp(-BOUND), i.e. beta <= beta0 exp(BOUND), as in the fixed point.
    """
    lam = torch.exp(t)[None, :]
    denom = lam + s[:, None]
    gamma = (s[:, None] / denom).sum(0)
    if primal:
        q = yy - (p2 / denom).sum(0)
        dq = (lam * p2 / denom**2).sum(0)
    else:
        q = (lam * p2 / denom).sum(0)
        dq = (lam * s[:, None] * p2 / denom**2).sum(0)
    q = torch.maximum(q, yy * math.exp(-BOUND))
    return gamma / 2 - n / 2 * dq / q, q


def _profile_solve(s, p2, yy, primal, n, lam0, steps=50):
    """Bisection on the slope of the profile evidence in t = log(lambda), within lam0 * exp(+-2 BOUND).

    Keeping slope(lo) > 0 >= slope(hi) converges to a local maximum; where the slope keeps one sign over the
    whole bracket, bisection runs to the bracket's end (the optimum is at alpha -> inf or beta -> inf).
    """
    c = p2.shape[1]
    t_lo, t_hi = math.log(lam0) - 2 * BOUND, math.log(lam0) + 2 * BOUND
    lo = torch.full((c,), t_lo, dtype=s.dtype, device=s.device)
    hi = torch.full((c,), t_hi, dtype=s.dtype, device=s.device)
    for _ in range(steps):  # the bracket shrinks from 4 BOUND = 140 to 1.2e-13 in log(lambda)
        mid = (lo + hi) / 2
        rising = _profile_slope(mid, s, p2, yy, primal, n)[0] > 0
        lo, hi = torch.where(rising, mid, lo), torch.where(rising, hi, mid)
    t = (lo + hi) / 2
    beta = n / _profile_slope(t, s, p2, yy, primal, n)[1]
    return torch.exp(t) * beta, beta


def _near_bound(alpha, beta, yy, n, lam0):
    """True where (alpha, beta) lie within exp(2) of the bracket's ends: the optimum is at infinity."""
    t = torch.log(alpha / beta) - math.log(lam0)
    return (t.abs() > 2 * BOUND - 2) | (beta > n / yy * math.exp(BOUND - 2))


def logme_fit(features, targets, *, regression: bool = False, device=None, rtol: float = RTOL,
              max_iter: int = MAX_ITER) -> LogMEResult:
    """LogME with its details: the evidence, alpha, beta and gamma of every class (or target).

    Parameters are those of :func:`logme`, plus the stopping rule of the fixed point: ``rtol`` (a target
    has converged when neither its alpha nor its beta changes by more than ``rtol`` relative in one step)
    and ``max_iter`` (fixed-point steps before the targets still moving are handed to the 1-D solver).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> f = torch.randn(200, 8, generator=g, dtype=torch.float64); y = (f[:, 0] > 0).long()
    >>> r = logme_fit(f, y); r.converged, r.evidence.shape
    (True, torch.Size([2]))
    """
    if not rtol > 0 or isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"need rtol > 0 and an integer max_iter >= 1, got rtol={rtol!r}, max_iter={max_iter!r}")
    f = _check_features(features, device)
    n, d = f.shape
    if regression:
        y = _check_real_targets(targets, n).to(f.device)
        if bool(((y * y).sum(0) == 0).any()):
            raise ValueError("a regression target is identically zero; its evidence is unbounded (beta -> inf)")
        s, p, yy, primal = _spectral(f, None, y)
    else:
        inverse, k = _check_labels(targets, n)
        s, p, yy, primal = _spectral(f, (inverse.to(f.device), k), None)
    p2 = p * p
    # Scale-aware start: beta0 = N / |y|^2 (the noise-only fit), alpha0 = beta0 * mean eigenvalue of F^T F.
    # LogME is invariant to rescaling the features, and so, with this start, is the path of the iteration.
    lam0 = float(s.sum().clamp(min=torch.finfo(f.dtype).tiny)) / d
    beta = n / yy
    alpha, beta, it, done = _mackay(s, p2, yy, primal, n, beta * lam0, beta, rtol, max_iter)
    if not bool(done.all()):  # optimum at a boundary, or slow linear convergence: finish in 1-D
        idx = (~done).nonzero(as_tuple=True)[0]
        a2, b2 = _profile_solve(s, p2[:, idx], yy[idx], primal, n, lam0)
        alpha, beta = alpha.index_put((idx,), a2), beta.index_put((idx,), b2)
    ev, gamma = _evidence(alpha, beta, s, p2, yy, primal, n, d)
    # Both the fixed point and the bisection find a local maximum. The evidence can also rise towards a
    # boundary (alpha -> inf or beta -> inf) elsewhere; compare with both limits and keep the best.
    for t in (math.log(lam0) - 2 * BOUND, math.log(lam0) + 2 * BOUND):
        tt = torch.full_like(alpha, t)
        b_edge = n / _profile_slope(tt, s, p2, yy, primal, n)[1]
        a_edge = torch.exp(tt) * b_edge
        ev_edge, gamma_edge = _evidence(a_edge, b_edge, s, p2, yy, primal, n, d)
        better = ev_edge > ev + 1e-12 * ev.abs()
        if bool(better.any()):
            alpha, beta = torch.where(better, a_edge, alpha), torch.where(better, b_edge, beta)
            ev, gamma = torch.where(better, ev_edge, ev), torch.where(better, gamma_edge, gamma)
    at_bound = _near_bound(alpha, beta, yy, n, lam0)
    return LogMEResult(ev, alpha, beta, gamma, it, bool(done.all()), at_bound)


def logme(features, targets, *, regression: bool = False, device=None) -> float:
    """LogME: the log maximum evidence of a linear model on ``features`` for ``targets``, per sample.

    Parameters
    ----------
    features : Tensor or ndarray [N, D]
        Frozen features of the target training images (any real dtype; computed in float64). No bias term
        and no centring, as in the paper and its reference code.
    targets : [N] integer class labels, or (with ``regression=True``) real targets [N] or [N, T].
        Class labels need not be contiguous (``{0, 3, 7}`` is fine): the score averages over the classes
        that **occur** in ``targets``. A class with no sample would be an all-zero one-hot column, whose
        evidence is unbounded (a noise precision -> infinity fits it exactly), so it cannot take part; and
        scoring only the classes present keeps the score unchanged under any relabelling of the classes.
    regression : bool
        Treat ``targets`` as real-valued (one evidence per target column) instead of one-hot classes.
    device : optional
        Where to compute. ``None`` means the device ``features`` live on (CPU for NumPy input); CUDA works
        in float64 like the CPU. MPS has no float64, so MPS input is computed on the CPU.

    Returns
    -------
    float
        The mean over classes (or target columns) of the log maximum evidence divided by N, the quantity the
        reference implementation returns. Higher is better. It is comparable between models scored on the
        same target data only.

    Notes
    -----
    One symmetric eigendecomposition (of ``F^T F`` when N >= D, of ``F F^T`` when N < D), then the
    fixed point for all classes at once in closed form per eigen-direction. Convergence: a class is done
    when neither its alpha nor its beta changes by more than ``RTOL`` (1e-9) relative in one step; a step
    costs O(min(N, D) * C), so a tight tolerance is nearly free. Classes still moving after ``MAX_ITER`` (50)
    steps (optima at alpha or beta -> infinity, or slow linear convergence) are finished by bisection on the
    slope of the evidence maximised over beta, which has the same stationary point; the result is then
    compared with both limits (alpha -> inf, beta -> inf) and the largest evidence is kept. The evidence is
    evaluated at the final (alpha, beta) exactly, zero eigenvalues included. See ``logme_fit`` for alpha,
    beta, gamma per class.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(300) % 3
    >>> good = torch.randn(300, 16, generator=g) + 3 * torch.nn.functional.one_hot(y, 16)
    >>> bad = torch.randn(300, 16, generator=g)
    >>> logme(good, y) > logme(bad, y)
    True
    """
    return logme_fit(features, targets, regression=regression, device=device).score


# ----------------------------------------------------------------------------------------------------------
# LogME, naive (for the speed lesson)
def logme_naive(features, targets, *, regression: bool = False, device=None, rtol: float = RTOL,
                max_iter: int = 200) -> float:
    """LogME the slow way: one class at a time, a ``D x D`` matrix inverted at every fixed-point step.

    The same fixed point and stopping rule as :func:`logme`, written as the textbook states it::

        A = alpha I + beta F^T F;  m = beta A^-1 F^T y;  gamma = beta tr(A^-1 F^T F)

    so it costs O(D^3) per iteration and class instead of one decomposition in all. Where the fixed point
    converges (informative features) it agrees with :func:`logme` to rounding, in both regimes N > D and
    N <= D, which makes it a check as well as a lesson; where it does not within ``max_iter`` steps it warns
    and returns the last iterate's evidence.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> f = torch.randn(100, 5, generator=g, dtype=torch.float64); y = (f[:, 0] > 0).long()
    >>> abs(logme_naive(f, y) - logme(f, y)) < 1e-8
    True
    """
    f = _check_features(features, device)
    n, d = f.shape
    if regression:
        ys = _check_real_targets(targets, n).to(f.device)
    else:
        inverse, k = _check_labels(targets, n)
        ys = torch.nn.functional.one_hot(inverse, k).to(f.device, torch.float64)
    ftf = f.T @ f
    eye = torch.eye(d, dtype=f.dtype, device=f.device)
    scores = []
    for c in range(ys.shape[1]):
        y = ys[:, c]
        fty = f.T @ y
        beta = n / float(y @ y)
        alpha = beta * float(torch.trace(ftf)) / d
        lo_a, hi_a = alpha * math.exp(-BOUND), alpha * math.exp(BOUND)
        lo_b, hi_b = beta * math.exp(-BOUND), beta * math.exp(BOUND)
        for _ in range(max_iter):
            a_inv = torch.linalg.inv(alpha * eye + beta * ftf)  # the deliberate O(D^3) inside the loop
            m = beta * a_inv @ fty
            gamma = beta * float((a_inv * ftf).sum())  # tr(beta A^-1 F^T F); D - alpha tr(A^-1) cancels badly
            new_alpha = min(max(gamma / max(float(m @ m), 1e-300), lo_a), hi_a)
            new_beta = min(max(max(n - gamma, 0.0) / max(float(((y - f @ m) ** 2).sum()), 1e-300), lo_b), hi_b)
            change = max(abs(new_alpha - alpha) / alpha, abs(new_beta - beta) / beta)
            alpha, beta = new_alpha, new_beta
            if change <= rtol:
                break
        else:
            warnings.warn(f"logme_naive: class/target {c} did not converge in {max_iter} steps (the fast logme "
                          f"finishes such cases in 1-D; this one stops here)", RuntimeWarning, stacklevel=2)
        a = alpha * eye + beta * ftf
        m = beta * torch.linalg.solve(a, fty)
        res = float(((y - f @ m) ** 2).sum())
        logdet = float(torch.linalg.slogdet(a)[1])
        ev = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
              - beta / 2 * res - alpha / 2 * float(m @ m) - logdet / 2)
        scores.append(ev / n)
    return float(np.mean(scores))


# ----------------------------------------------------------------------------------------------------------
# Baselines
def leep(source_probs, targets) -> float:
    """LEEP (Nguyen et al., 2020): log expected empirical prediction of the source classifier's outputs.

    The source model's class probabilities ``theta(x)`` [N, Z] on the target images define an empirical
    joint ``P(y, z) = mean_i theta(x_i)_z [y_i = y]``, hence ``P(y | z)``; LEEP is the mean log-likelihood of
    the "dummy" classifier ``p(y | x) = sum_z P(y | z) theta(x)_z``. It needs a source classifier (the zoo
    models' source heads). Higher is better; at most 0.

    Parameters
    ----------
    source_probs : [N, Z] probabilities (rows sum to 1; apply a softmax to logits first).
    targets : [N] integer class labels (need not be contiguous).

    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]]); y = torch.tensor([0, 0, 1, 1])
    >>> round(leep(p, y), 3)
    -0.295
    """
    p = _to_tensor(source_probs, "source_probs")
    if p.ndim != 2 or not p.dtype.is_floating_point:
        raise ValueError(f"source_probs must be float probabilities [N, Z], got shape {tuple(p.shape)} "
                         f"dtype {p.dtype}")
    p = p.to("cpu", torch.float64)
    if not torch.isfinite(p).all() or (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(1,
                                                                          dtype=p.dtype), atol=1e-4):
        raise ValueError("source_probs must be finite, non-negative and sum to 1 per row (softmax the logits "
                         f"first); row sums range over [{float(p.sum(1).min()):.4g}, {float(p.sum(1).max()):.4g}]")
    inverse, k = _check_labels(targets, p.shape[0])
    joint = torch.zeros(k, p.shape[1], dtype=p.dtype).index_add_(0, inverse, p) / p.shape[0]  # P(y, z)
    cond = joint / joint.sum(0, keepdim=True).clamp(min=1e-300)  # P(y | z)
    eep = (p @ cond.T)[torch.arange(p.shape[0]), inverse]
    return float(torch.log(eep.clamp(min=1e-300)).mean())


def nce(source_labels, targets) -> float:
    """NCE (Tran et al., 2019): negative conditional entropy ``-H(Y | Z)`` of target given source labels.

    ``Z`` are source-task labels of the target images. Target images have none, so the common practice,
    followed in the lesson, is the source model's *pseudo-label*: the argmax of its source head. Higher is
    better; at most 0 (0 when each source label determines the target label).

    Examples
    --------
    >>> nce(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 7, 7]))
    0.0
    """
    z_inv, kz = _check_labels(source_labels, len(_to_tensor(source_labels, "source_labels")), "source_labels", 1)
    y_inv, ky = _check_labels(targets, len(z_inv))
    joint = torch.zeros(ky * kz, dtype=torch.float64).index_add_(
        0, y_inv * kz + z_inv, torch.ones(len(y_inv), dtype=torch.float64)).view(ky, kz) / len(y_inv)
    pz = joint.sum(0, keepdim=True)
    nz = joint > 0
    return float((joint[nz] * torch.log(joint[nz] / pz.expand_as(joint)[nz])).sum())


def hscore(features, targets, *, device=None) -> float:
    """H-score (Bao et al., 2019): ``tr(cov(f)^+ cov(E[f | y]))``, how well class means separate in features.

    The features are centred; ``cov(f)^+`` is the Moore-Penrose pseudo-inverse (``torch.linalg.pinv`` with
    its default cut-off), as in common implementations, since ``cov(f)`` is singular when N <= D or when
    features are collinear. Higher is better; bounded by ``min(C - 1, D)``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0); y = torch.arange(200) % 2
    >>> hscore(torch.randn(200, 4, generator=g) + 5 * y[:, None], y) > 0.9
    True
    """
    f = _check_features(features, device)
    inverse, k = _check_labels(targets, f.shape[0])
    inverse = inverse.to(f.device)
    f = f - f.mean(0, keepdim=True)
    cov_f = f.T @ f / f.shape[0]
    counts = torch.bincount(inverse, minlength=k).to(f.dtype)
    means = torch.zeros(k, f.shape[1], dtype=f.dtype, device=f.device).index_add_(0, inverse, f) / counts[:, None]
    cov_g = (means.T * (counts / f.shape[0])) @ means  # class-conditional means, weighted by class frequency
    return float(torch.trace(torch.linalg.pinv(cov_f, hermitian=True) @ cov_g))


# ----------------------------------------------------------------------------------------------------------
# Ranking
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
        x = np.array([scores[k] for k in names], dtype=float)
        y = np.array([ground_truth[k] for k in names], dtype=float)
    else:
        x, y = np.asarray(scores, dtype=float), np.asarray(ground_truth, dtype=float)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"scores and ground_truth must be 1-D and of equal length, got shapes {x.shape} "
                             f"and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"need at least two models to rank, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"scores and ground_truth must be finite, got {x.tolist()} and {y.tolist()}")
    return float(weightedtau(x, y).statistic)


# ----------------------------------------------------------------------------------------------------------
# Exercise check
def check_evidence(fn, *, seed: int = 0) -> bool:
    """Check a learner's ``fn(features, y, alpha, beta) -> float``: the log evidence per sample.

    ``fn`` is called on float64 tensors in both regimes (N > D and N < D) at several (alpha, beta) and
    compared with the Gaussian marginal likelihood ``y ~ N(0, I / beta + F F^T / alpha)`` evaluated
    independently. Returns True, or raises ``ValueError`` saying where the answer differs.

    Examples
    --------
    >>> def mine(f, y, a, b):
    ...     n = len(y); cov = torch.eye(n, dtype=f.dtype) / b + f @ f.T / a
    ...     return float(torch.distributions.MultivariateNormal(torch.zeros(n, dtype=f.dtype), cov).log_prob(y)) / n
    >>> check_evidence(mine)
    True
    """
    from scipy.stats import multivariate_normal

    g = torch.Generator().manual_seed(seed)
    for n, d in ((40, 6), (8, 20)):
        f = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = f[:, 0] + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        for alpha, beta in ((1.0, 1.0), (0.3, 5.0), (20.0, 0.7)):
            cov = np.eye(n) / beta + f.numpy() @ f.numpy().T / alpha
            want = multivariate_normal(np.zeros(n), cov).logpdf(y.numpy()) / n
            got = float(fn(f.clone(), y.clone(), alpha, beta))
            if not abs(got - want) <= 1e-8 * max(1.0, abs(want)):
                raise ValueError(f"at N={n}, D={d}, alpha={alpha}, beta={beta}: expected {want:.10f}, got {got!r}")
    return True
