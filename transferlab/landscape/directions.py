"""Random directions in weight space: uniform on the sphere (the SWA paper's) or filter-normalised (Li et al.),
and the exercise check for drawing one."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from .._validate import as_choice, as_int, as_seed
from ..checks import CheckResult, exercise_solution
from ..device import model_device, resolve_device, seeded

__all__ = ["flat_weights", "random_directions", "check_sphere_direction"]


def flat_weights(model: nn.Module) -> torch.Tensor:
    """Every parameter of ``model`` as one flat vector (a copy; ``parameters_to_vector`` order).

    Examples
    --------
    >>> flat_weights(nn.Linear(3, 2)).shape
    torch.Size([8])
    """
    return parameters_to_vector(list(model.parameters())).detach().clone()


def random_directions(model: nn.Module, n: int, *, seed: int, normalization: str = "sphere",
                      device=None) -> torch.Tensor:
    """``n`` random directions in the model's weight space, as rows of an ``[n, P]`` tensor.

    Parameters
    ----------
    n : int
        Number of directions (rays).
    seed : int
        Seeds the draw (on the CPU, so the same seed gives the same directions on every device).
    normalization : {"sphere", "filter"}
        ``"sphere"``: uniform on the unit sphere (each row has norm 1). ``"filter"``: Li et al.'s filter
        normalisation (each filter of ``d`` has the norm of the same filter of the model; BN/bias entries 0).
    device : where the result lives (``None``: the model's device).

    Examples
    --------
    >>> d = random_directions(nn.Linear(3, 2), 4, seed=0)
    >>> d.shape, torch.allclose(d.norm(dim=1), torch.ones(4))
    (torch.Size([4, 8]), True)
    """
    n, seed = as_int("n", n, min=1), as_seed(seed)
    normalization = as_choice("normalization", normalization, ("sphere", "filter"))
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n, total, generator=gen, dtype=torch.float64)
    if normalization == "sphere":
        d = g / g.norm(dim=1, keepdim=True)
    else:
        d = torch.zeros_like(g)
        offset = 0
        for p in params:
            k = p.numel()
            if p.dim() > 1:  # conv / linear weight: one filter per output unit
                w = p.detach().cpu().double().reshape(p.shape[0], -1)
                gi = g[:, offset:offset + k].reshape(n, p.shape[0], -1)
                gi = gi / gi.norm(dim=2, keepdim=True) * w.norm(dim=1)[None, :, None]
                d[:, offset:offset + k] = gi.reshape(n, k)
            offset += k
    return d.float().to(model_device(model) if device is None else resolve_device(device))  # the model stays put


@exercise_solution("def $fn(n_params, seed):\n    import torch\n\n"
                   "    g = torch.randn(n_params, generator=torch.Generator().manual_seed(seed))\n"
                   "    return g / g.norm()  # a normalised Gaussian is uniform on the sphere", answer="fn")
def check_sphere_direction(fn) -> CheckResult:
    """Exercise check: does ``fn(n_params, seed)`` draw a direction uniformly on the unit sphere?

    ``fn`` returns a 1-D tensor of ``n_params`` entries. Checked: unit norm, same seed -> same direction,
    other seed -> other direction, and uniformity (in 2 dimensions over 4000 seeds, half the directions lie
    within 22.5 degrees of an axis; a direction drawn uniformly *in the square* and normalised gives 0.41).
    Returns a :class:`~transferlab.checks.CheckResult` that says what is wrong, if anything.

    Examples
    --------
    >>> def mine(n, seed):
    ...     g = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    ...     return g / g.norm()
    >>> bool(check_sphere_direction(mine))
    True
    """
    q = "random direction on the sphere"
    try:
        with seeded(0):  # a learner's fn may draw from the global stream: never the caller's
            d = torch.as_tensor(fn(100, 0)).double()
            same = torch.as_tensor(fn(100, 0)).double()
            other = torch.as_tensor(fn(100, 1)).double()
            many = torch.stack([torch.as_tensor(fn(2, s)).double() for s in range(4000)]) if d.shape == (100,) else None
    except Exception as err:  # noqa: BLE001 - the learner's code: report it, do not crash the check
        return CheckResult.general(False, f"{q}: your function raised {type(err).__name__}: {err}")
    if d.shape != (100,):
        return CheckResult.general(False, f"{q}: expected a vector of 100 entries, got shape {tuple(d.shape)}")
    if abs(float(d.norm()) - 1) > 1e-4:
        return CheckResult.general(False, f"{q}: the direction has norm {float(d.norm()):.4f}; it must lie on the "
                                          f"unit sphere")
    if not torch.allclose(d, same):
        return CheckResult.general(False, f"{q}: the same seed gave two different directions: draw from a seeded "
                                          f"torch.Generator")
    if torch.allclose(d, other):
        return CheckResult.general(False, f"{q}: seeds 0 and 1 gave the same direction")
    angle = torch.atan2(many[:, 1], many[:, 0]) % (math.pi / 2)  # fold the circle onto one quadrant
    near_axis = float(((angle < math.pi / 8) | (angle > 3 * math.pi / 8)).double().mean())
    if many.mean(0).abs().max() > 0.05 or abs(near_axis - 0.5) > 0.04:
        return CheckResult.general(False, f"{q}: not uniform on the circle (n=2, 4000 seeds): {near_axis:.3f} of the "
                                          f"directions lie within 22.5 degrees of an axis, expected 0.5; coordinate "
                                          f"means {many.mean(0).numpy().round(3)}. A normalised Gaussian is uniform on "
                                          f"the sphere; a normalised uniform-in-the-cube draw crowds the diagonals")
    return CheckResult(True, f"{q}: right: unit norm, seeded, and uniform on the circle")
