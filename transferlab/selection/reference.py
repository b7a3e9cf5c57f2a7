"""Reference formulations of the evidence: the textbook LogME and the exercise check of a learner's evidence.

:func:`logme_naive` runs MacKay's fixed point as the textbook states it, one class at a time with a ``D x D``
inverse at every step: the "before" of the speed lesson, and an independent check of :func:`~.logme.logme`.
:func:`check_evidence` compares a learner's evidence function with the Gaussian marginal likelihood.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .._validate import as_seed
from ..checks import CheckResult, exercise_solution
from .inputs import as_logme_inputs
from .logme import BOUND, RTOL

__all__ = ["logme_naive", "check_evidence"]


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
    >>> from transferlab.selection import logme
    >>> g = torch.Generator().manual_seed(0)
    >>> f = torch.randn(100, 5, generator=g, dtype=torch.float64); y = (f[:, 0] > 0).long()
    >>> abs(logme_naive(f, y) - logme(f, y)) < 1e-8
    True
    """
    x = as_logme_inputs(features, targets, regression=regression, device=device, rtol=rtol, max_iter=max_iter)
    f, rtol, max_iter = x.features, x.rtol, x.max_iter
    n, d = f.shape
    ys = x.targets if x.targets is not None else torch.nn.functional.one_hot(x.labels, x.num_classes).to(f.dtype)
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
    scores = x.given_evidence(torch.tensor(scores, dtype=torch.float64, device=f.device))  # targets far from 1
    return float(np.mean(scores.cpu().numpy()))


@exercise_solution("def $fn(features, y, alpha, beta):\n    import torch\n\n    n = len(y)\n"
                   "    cov = torch.eye(n, dtype=features.dtype) / beta + features @ features.T / alpha\n"
                   "    normal = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=features.dtype), cov)\n"
                   "    return float(normal.log_prob(y)) / n", answer="fn")
def check_evidence(fn, *, seed: int = 0) -> CheckResult:
    """Check a learner's ``fn(features, y, alpha, beta) -> float``: the log evidence per sample.

    ``fn`` is called on float64 tensors in both regimes (N > D and N < D) at several (alpha, beta) and
    compared with the Gaussian marginal likelihood ``y ~ N(0, I / beta + F F^T / alpha)`` evaluated
    independently. The data come from a private generator seeded with ``seed``: the caller's random state
    does not move.

    Returns
    -------
    CheckResult
        Truthy when every value agrees to 1e-8 (relative); otherwise falsy, with a message that names the first
        case where the answer differs (N, D, alpha, beta, expected and obtained values). In a notebook it shows
        itself as one line. An exception raised by ``fn`` is not caught, so its traceback points at the bug.

    Examples
    --------
    >>> def mine(f, y, a, b):
    ...     n = len(y); cov = torch.eye(n, dtype=f.dtype) / b + f @ f.T / a
    ...     return float(torch.distributions.MultivariateNormal(torch.zeros(n, dtype=f.dtype), cov).log_prob(y)) / n
    >>> check_evidence(mine)  # doctest: +ELLIPSIS
    ✅ mine: the log evidence per sample is right in both regimes (N=40, D=6 and N=8, D=20), ...
    >>> bool(check_evidence(lambda f, y, a, b: 0.0))
    False
    """
    from scipy.stats import multivariate_normal

    if not callable(fn):
        raise TypeError(f"check_evidence needs a callable, your function itself: check_evidence(my_evidence), "
                        f"got {type(fn).__name__} {fn!r:.60}")
    name = getattr(fn, "__name__", "your function")
    g = torch.Generator().manual_seed(as_seed(seed))
    for n, d in ((40, 6), (8, 20)):
        f = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = f[:, 0] + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        for alpha, beta in ((1.0, 1.0), (0.3, 5.0), (20.0, 0.7)):
            cov = np.eye(n) / beta + f.numpy() @ f.numpy().T / alpha
            want = multivariate_normal(np.zeros(n), cov).logpdf(y.numpy()) / n
            where = f"at N={n}, D={d}, alpha={alpha}, beta={beta}"
            out = fn(f.clone(), y.clone(), alpha, beta)
            try:
                got = float(out)
            except (TypeError, ValueError):
                hint = " (did you forget to `return` it?)" if out is None else ""
                return CheckResult.general(False, f"{name} returned {out!r:.60} {where}: expected a number, the log "
                                                  f"evidence per sample{hint}")
            if not abs(got - want) <= 1e-8 * max(1.0, abs(want)):
                hint = ""
                if math.isfinite(got) and abs(got - n * want) <= 1e-8 * max(1.0, abs(n * want)):
                    hint = " That is N times the answer: divide the log evidence by N."
                return CheckResult(False, f"{name} {where}: expected {want:.10f}, got {got!r}.{hint}",
                                   graded_message=f"{name} {where}: got {got!r}, not the Gaussian marginal likelihood "
                                                  f"per sample.{hint}")
    return CheckResult(True, f"{name}: the log evidence per sample is right in both regimes (N=40, D=6 and "
                             f"N=8, D=20), at 3 (alpha, beta) each")
