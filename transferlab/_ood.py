"""Out-of-distribution splits of the world's target tasks: the same classes, drawn with shifted nuisances.

:func:`ood_split` is re-exported by :mod:`transferlab.world` (``world.ood_split``, ``world.OOD_KNOBS``).
"""

from __future__ import annotations

import torch

from ._render import PALETTES, SHAPES, SHIFT_KNOBS, TEXTURES
from ._validate import as_float, as_int, as_seed, did_you_mean
from .tasks import ImageTask, split_seed

__all__ = ["OOD_KNOBS", "check_shift", "ood_split"]


OOD_KNOBS: dict[str, str] = {
    "pose": "smaller objects further off-centre: at 1, radius x0.65 (below every training image's) and offsets "
            "x1.6 (up to 24% of the width instead of 15%)",
    "colour": "washed-out objects on colourful backgrounds with less contrast: at 1, object saturation x0.3, "
              "background saturation +0.5, bright tones -0.2 and dark tones +0.2 (the brighter side stays brighter: "
              "the palette is a class factor)",
    "background": "a low-frequency wave (0.03-0.06 cycles/px) of a second colour of the background's brightness "
                  "across the background: at 1, the crests are that colour",
    "noise": "stronger pixel noise: standard deviation 0.06 + 0.2 x strength (0.26 at 1)",
}
"""What each nuisance knob of :func:`ood_split` does; every knob is a strength in [0, 1], 0 = as in training."""
assert tuple(OOD_KNOBS) == SHIFT_KNOBS


def check_shift(shift) -> dict[str, float]:
    """``{knob: strength}`` checked: known knobs (``KeyError`` with the closest name), strengths in [0, 1]."""
    if not isinstance(shift, dict):
        raise TypeError(f"shift must be a dict {{knob: strength}} with knobs {list(OOD_KNOBS)}, got "
                        f"{type(shift).__name__} {shift!r}")
    out = {}
    for knob, value in shift.items():
        if knob not in OOD_KNOBS:
            raise KeyError(f"no nuisance knob named {knob!r}.{did_you_mean(knob, OOD_KNOBS)} Known: {list(OOD_KNOBS)} "
                           f"(class factors -- shape, texture, palette -- cannot be shifted: the classes would change)")
        out[knob] = as_float(knob, value, min=0.0, max=1.0)
    return out


def ood_split(task: ImageTask, *, n_test_per_class: int | None = None, n_val_per_class: int = 0,
              seed: int | None = None, **shift: float) -> ImageTask:
    """An out-of-distribution twin of a world target task: the same classes, images with shifted nuisances.

    The classes keep their factors (shape, texture, palette: the same combinations as ``task``); only how the
    images are drawn moves, by the knobs of :data:`OOD_KNOBS` (``pose``, ``colour``, ``background``, ``noise``),
    each a strength in [0, 1]. ``task`` itself is not changed: its training, validation and test images stay
    exactly as they were.

    Parameters
    ----------
    task : ImageTask
        A task from :func:`target_task` (its ``info`` says the similarity and seed it was drawn with).
    n_test_per_class : int, optional
        Shifted test images per class (default: as many as ``task``'s test split has).
    n_val_per_class : int
        Shifted validation images per class (default 0: none; every choice of a lesson is made on the
        in-distribution validation split, the shifted test split is for final models only).
    seed : int, optional
        Seeds the shifted images (default: ``task``'s seed); they are never ``task``'s own images.
    **shift : float
        The nuisance strengths, at least one named. Every strength 0 gives fresh *in-distribution* images: a
        control for the shift.

    Returns
    -------
    ImageTask named ``"<task name>+ood(<knobs>)"``: its training split is ``task``'s (the same tensors: a model
    is trained in distribution), its test split (and validation split, if asked for) the shifted images; the
    test split is sealed (``loader("test", final=True)``). ``info["shift"]`` holds every knob's strength.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> task = target_task(3, 0.5, n_test_per_class=2, size=16)
    >>> ood = ood_split(task, pose=0.5, noise=1.0)
    >>> ood.classes == task.classes, ood.x_train is task.x_train, len(ood.labels("test", final=True))
    (True, True, 20)
    >>> ood_split(task, nosie=1.0)
    Traceback (most recent call last):
    ...
    KeyError: "no nuisance knob named 'nosie'. Did you mean 'noise'? Known: ['pose', 'colour', 'background', \
'noise'] (class factors -- shape, texture, palette -- cannot be shifted: the classes would change)"
    """
    from .world import balanced_labels, render, target_classes  # world re-exports this module: import on call

    if not isinstance(task, ImageTask):
        raise TypeError(f"task must be an ImageTask from transferlab.world.target_task, got {type(task).__name__}")
    kind = task.info.get("kind")
    if kind != "target" or "similarity" not in task.info:
        raise ValueError(f"ood_split shifts the nuisances of a world target task (transferlab.world.target_task); "
                         f"{task.name!r} is of kind {kind!r}, whose images have no generative factors to hold fixed")
    if not shift:
        raise ValueError(f"name at least one nuisance shift, e.g. ood_split(task, pose=0.5); knobs: {list(OOD_KNOBS)} "
                         f"(every strength 0 gives fresh in-distribution images, a control)")
    shift = check_shift(shift)
    similarity = float(task.info["similarity"])
    factors = torch.tensor(target_classes(similarity))
    classes = tuple(f"{SHAPES[s]}/{TEXTURES[t]}/{PALETTES[p]}" for s, t, p in factors.tolist())
    if tuple(task.classes) != classes:
        raise ValueError(f"{task.name!r} says similarity {similarity:g} but its classes are not that target's; "
                         f"ood_split needs a task made by transferlab.world.target_task")
    n_test_default = len(task.y_test) // task.num_classes
    n_test_per_class = as_int("n_test_per_class", n_test_default if n_test_per_class is None else n_test_per_class,
                              min=1)
    n_val_per_class = as_int("n_val_per_class", n_val_per_class, min=0)
    seed = as_seed(task.info.get("seed", 0) if seed is None else seed)
    knobs = ",".join(f"{k}={v:g}" for k, v in shift.items())
    full = {k: shift.get(k, 0.0) for k in OOD_KNOBS}
    parts = {}
    for part, n in (("ood-test", n_test_per_class), ("ood-val", n_val_per_class)):
        if n == 0:
            continue
        gen = torch.Generator().manual_seed(split_seed(seed, part, "target"))
        y = balanced_labels(10, n, gen)
        f = factors[y]
        x = render(f[:, 0], f[:, 1], f[:, 2], size=task.image_size,
                   seed=split_seed(seed, part, f"pixels{similarity:.4f}|{knobs}"), shift=full)
        parts[part] = (x, y)
    x_val, y_val = parts.get("ood-val", (None, None))
    return ImageTask(f"{task.name}+ood({knobs})", task.x_train, task.y_train, *parts["ood-test"],
                     classes=task.classes, mean=task.mean, std=task.std,
                     info=dict(task.info, kind="target-ood", shift=full, ood_seed=seed, of=task.name),
                     x_val=x_val, y_val=y_val, sealed=True)


