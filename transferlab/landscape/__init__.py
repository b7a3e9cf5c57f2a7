"""Loss landscapes along rays: random directions, evaluation along ``w + t * d``, and the width of an optimum.

This follows the SWA paper's Figure 4 (Izmailov et al., 2018): from a solution ``w``, draw directions ``d``
uniformly on the unit sphere of the *whole* weight vector, and measure test error and train loss at
``w + t * d`` for growing ``t`` (then ``t`` is the Euclidean distance from ``w``). Because BatchNorm statistics
belong to the weights that produced them, they are recomputed at every point (as the authors' plane code
does) on a fixed set of training batches.

Two kinds of direction:

- ``"sphere"`` (the paper's): ``d = g / ||g||`` with ``g ~ N(0, I)`` over every parameter. Isotropic, so
  distances are comparable between two solutions *of the same network*; but a layer with small weights is
  perturbed relatively more than a layer with large ones, and rescaling a layer before BN (which leaves the
  function unchanged) changes the picture.
- ``"filter"`` (Li et al., 2018, "Visualizing the loss landscape"): per output filter (row of a conv or
  linear weight) the Gaussian direction is rescaled to the norm of that filter of ``w``; BN and bias
  parameters get zero. This removes the scale invariance, at the price that ``d`` depends on ``w``:
  rays from two solutions then use different directions, and ``t`` is a fraction of each filter's norm, not
  a Euclidean distance (the ``distance`` column still reports ``t * ||d||``).

Evaluation results are a :class:`pandas.DataFrame` with one row per point, the structure the notebooks and
widgets read (see :data:`RAY_COLUMNS`).
"""

from .directions import check_sphere_direction, flat_weights, random_directions
from .rays import RAY_COLUMNS, evaluate_line, evaluate_point, evaluate_rays, l2_term, materialize
from .widths import ray_width, width_summary

__all__ = ["RAY_COLUMNS", "flat_weights", "random_directions", "materialize", "l2_term", "evaluate_point",
           "evaluate_rays", "evaluate_line", "ray_width", "width_summary", "check_sphere_direction"]
