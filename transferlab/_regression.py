"""The world's regression targets: what it drew for each image (rotation, size, position, colour) as real-valued
labels, the analogue of dSprites' latent factors. Public through :mod:`transferlab.world`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ._validate import as_int, as_list, as_probability, as_seed, did_you_mean
from .tasks import ImageTask, split_seed

__all__ = ["ROTATION_ORDER", "REGRESSION_TARGETS", "RegressionTask", "regression_task", "regression_columns"]

ROTATION_ORDER = {"disc": 0, "square": 4, "triangle": 3, "cross": 4, "ring": 0, "bar": 2, "star": 5, "crescent": 1,
                  "ell": 1, "dumbbell": 2, "waveband": 2, "semicircle": 1}
"""How many rotations map each shape onto itself (a square: 4, by quarter turns; 0: every rotation, so the
rotation of a disc or a ring cannot be seen at all). Its rotation is visible only modulo ``2 pi / order``."""

REGRESSION_TARGETS = {
    "rotation": ("rotation_cos", "rotation_sin"),
    "size": ("size",),
    "position": ("x", "y"),
    "colour": ("hue_cos", "hue_sin"),
}
"""The regression targets a :func:`regression_task` offers, and the columns each one is: rotation as
``(cos k theta, sin k theta)`` with ``k`` the shape's :data:`ROTATION_ORDER` (what the image shows of it: a square
turned by a quarter turn is the same square), colour as the hue on the colour wheel ``(cos 2 pi h, sin 2 pi h)``
(hue 0.99 is next to hue 0.01), size as the radius, position as ``(x, y)``; units as in :data:`NUISANCES`."""


def _target_names(targets) -> tuple[str, ...]:
    names = as_list("targets", targets)
    for t in names:
        if t not in REGRESSION_TARGETS:
            hint = did_you_mean(t, REGRESSION_TARGETS)
            raise ValueError(f"unknown regression target {t!r}; expected some of {tuple(REGRESSION_TARGETS)}" +
                             (f".{hint}" if hint else ""))
    if len(set(names)) != len(names):
        raise ValueError(f"targets name a target twice: {names}")
    return tuple(names)


def regression_columns(nuisances: dict, shape, targets=tuple(REGRESSION_TARGETS)):
    """The regression targets of rendered images, from :func:`render`'s nuisances and the images' shapes.

    Parameters
    ----------
    nuisances : dict
        What ``render(..., return_nuisances=True)`` returned.
    shape : LongTensor [N]
        The shape index of each image (into ``SHAPES``); the rotation target needs it (see ``ROTATION_ORDER``).
    targets : names from :data:`REGRESSION_TARGETS`.

    Returns
    -------
    ``(values float32 [N, K], columns)``: one or two columns per target, named as in ``REGRESSION_TARGETS``.

    Examples
    --------
    >>> from transferlab.world import render
    >>> s = torch.tensor([1, 5]); _, nuis = render(s, torch.tensor([0, 0]), torch.tensor([0, 0]), return_nuisances=True)
    >>> y, cols = regression_columns(nuis, s, ["size", "rotation"]); tuple(y.shape), cols
    ((2, 3), ('size', 'rotation_cos', 'rotation_sin'))
    """
    from .world import NUISANCES, SHAPES, factor_indices  # world imports this module: import it when called

    names = _target_names(targets)
    if not isinstance(nuisances, dict) or set(NUISANCES) - set(nuisances):
        raise ValueError("nuisances must be the dict that render(..., return_nuisances=True) returns, with keys "
                         f"{tuple(NUISANCES)}")
    shape = factor_indices("shape", shape, len(SHAPES), SHAPES)
    n = len(shape)
    if any(len(v) != n for v in nuisances.values()):
        raise ValueError(f"nuisances and shape disagree on N: {n} shapes but {len(nuisances['x'])} drawn nuisances")
    cols, names_out = [], []
    for t in names:
        if t == "rotation":
            order = torch.tensor([ROTATION_ORDER[SHAPES[i]] for i in range(len(SHAPES))])[shape]
            if bool((order == 0).any()):
                round_ = sorted({SHAPES[i] for i in shape[order == 0].tolist()})
                raise ValueError(f"the rotation of {', '.join(round_)} cannot be seen (every rotation maps the "
                                 "shape onto itself), so it is no regression target; leave those shapes out")
            angle = order.to(torch.float32) * nuisances["rotation"]
            cols += [torch.cos(angle), torch.sin(angle)]
        elif t == "colour":
            cols += [torch.cos(2 * math.pi * nuisances["hue"]), torch.sin(2 * math.pi * nuisances["hue"])]
        elif t == "size":
            cols.append(nuisances["size"])
        else:  # position
            cols += [nuisances["x"], nuisances["y"]]
        names_out += REGRESSION_TARGETS[t]
    return torch.stack(cols, 1).float(), tuple(names_out)


@dataclass(frozen=True, repr=False)
class RegressionTask(ImageTask):
    """An image task whose labels are real numbers: ``y`` is float ``[N, K]``, one or two columns per target.

    ``columns`` names the K columns (``classes`` holds the same names, so that a model gets K outputs from
    ``replace_head(model, task.num_outputs)``); ``targets`` names the targets and ``columns_of(target)`` gives
    a target's column indices. Splits, sealing and loaders are those of :class:`ImageTask`.

    Examples
    --------
    >>> t = regression_task(8, ["size", "position"], n_test=4, size=16); t.columns, t.columns_of("position")
    (('size', 'x', 'y'), [1, 2])
    """

    targets: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.classes

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def columns_of(self, target: str) -> list[int]:
        """The column indices of ``target`` (e.g. ``[1, 2]`` for ``"position"``)."""
        if target not in self.targets:
            hint = did_you_mean(target, self.targets)
            raise KeyError(f"this task has no target {target!r}; its targets are {self.targets}" +
                           (f".{hint}" if hint else ""))
        return [self.classes.index(c) for c in REGRESSION_TARGETS[target]]

    def subset(self, n: int, *, seed: int = 0) -> RegressionTask:
        """The first ``n`` training images (they are drawn independently, so this is a random subset, and a
        smaller ``n`` is a subset of a larger one); ``seed`` is accepted for the interface and not used."""
        n = as_int("n", n, min=2, max=len(self.y_train))
        return dataclasses.replace(self, x_train=self.x_train[:n], y_train=self.y_train[:n],
                                   info=dict(self.info, n_train=n))

    def __repr__(self):
        val = f", val={len(self.y_val)}" if self.has_val else ""
        sealed = ", test sealed" if self.sealed else ""
        return (f"RegressionTask({self.name!r}, targets={self.targets}, columns={len(self.classes)}, "
                f"train={len(self.y_train)}{val}, test={len(self.y_test)}, size={self.image_size}{sealed})")


def regression_task(n_train: int, targets=tuple(REGRESSION_TARGETS), *, similarity: float = 1.0, seed: int = 0,
                    size: int = 32, n_val: int = 0, n_test: int = 500, seal: bool | None = None) -> RegressionTask:
    """Images of the target classes at ``similarity`` with real-valued targets: what the world drew per image.

    The analogue of the LogME paper's dSprites task: the targets are the latent factors that made each image
    (its object's rotation, size, position, colour; see :data:`REGRESSION_TARGETS` for the columns), known
    exactly. Each image's class is drawn at random among the target classes at ``similarity``; with
    ``"rotation"`` among the targets the classes of round shapes (disc, ring: no visible rotation) are left out.
    Counts are images, not images per class. A validation split (``n_val > 0``) seals the test split, as in
    :func:`target_task`.

    Examples
    --------
    >>> t = regression_task(10, ["rotation", "colour"], n_test=5, size=16); t.y_train.shape, t.columns
    (torch.Size([10, 4]), ('rotation_cos', 'rotation_sin', 'hue_cos', 'hue_sin'))
    """
    from .world import SHAPES, render, sealed_default, target_classes

    names = _target_names(targets)
    n_train = as_int("n_train", n_train, min=2)
    n_test = as_int("n_test", n_test, min=2)
    n_val = as_int("n_val", n_val, min=0)
    if n_val == 1:
        raise ValueError("n_val must be 0 (no validation split) or at least 2")
    seed = as_seed(seed)
    size = as_int("size", size, min=8, max=256)
    similarity = as_probability("similarity", similarity)
    factors = torch.tensor(target_classes(similarity))
    if "rotation" in names:
        visible = torch.tensor([ROTATION_ORDER[SHAPES[s]] > 0 for s in factors[:, 0].tolist()])
        factors = factors[visible]
    parts = {}
    for part, n in (("train", n_train), ("test", n_test), ("val", n_val)):
        if n == 0:
            continue
        gen = torch.Generator().manual_seed(split_seed(seed, part, "regression"))
        f = factors[torch.randint(len(factors), (n,), generator=gen)]
        x, nuis = render(f[:, 0], f[:, 1], f[:, 2], size=size, return_nuisances=True,
                         seed=split_seed(seed, part, f"regression-pixels{similarity:.4f}"))
        parts[part] = (x, regression_columns(nuis, f[:, 0], names)[0])
    columns = tuple(c for t in names for c in REGRESSION_TARGETS[t])
    x_val, y_val = parts.get("val", (None, None))
    return RegressionTask(f"regression[{','.join(names)}; sim={similarity:g}]", *parts["train"], *parts["test"],
                          classes=columns, info=dict(kind="regression", targets=names, similarity=float(similarity),
                                                     shapes=tuple(sorted({SHAPES[s] for s in factors[:, 0].tolist()})),
                                                     seed=seed, n_train=n_train), x_val=x_val, y_val=y_val,
                          sealed=sealed_default(seal, n_val), targets=names)
