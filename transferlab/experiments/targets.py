"""The similarity axis of lesson 01: a run's target is a world similarity in [0, 1] or a real dataset.

On the offline path the target is the transfer world's ``target_task`` at a similarity knob (a number); on the
online path it is a real dataset's name or an ImageFolder (``"folder:/path"``), whose similarity to the
pretraining data is fixed, so the axis becomes a list of datasets. :func:`as_target` checks one point of the
axis, :func:`target_task` gives the task a run trains, validates and tests on, :func:`ood_task` its
out-of-distribution twin (same classes, shifted nuisances), and :func:`sim_label` / :func:`at_similarity` print and
select points of the axis in tables.

Examples
--------
>>> as_target(0.123456), as_target("pets")
(0.1235, 'pets')
>>> target_task(2, 0.5, seed=0, config=RunConfig(n_test_per_class=1, image_size=16)).num_classes
10
"""

from __future__ import annotations

from .. import datasets, world
from .._validate import as_int, as_probability, as_seed
from ..tasks import ImageTask, split_seed
from .config import RunConfig
from .memo import memoize
from .model import data_config

__all__ = ["as_target", "target_task", "ood_task", "sim_label", "at_similarity"]


def as_target(similarity: float | str) -> float | str:
    """A checked point of the similarity axis: a world similarity in [0, 1] (rounded to 4 digits), or a real
    dataset's name / ``"folder:/path"``.

    Real data has a fixed similarity to the pretraining data (ImageNet for timm models), so on the online path
    the similarity axis is a list of datasets, e.g. ``("pets", "eurosat")`` (priors in
    ``transferlab.datasets.DATASETS``; :func:`transferlab.datasets.similarity_ladder` lists them).

    Examples
    --------
    >>> import numpy as np
    >>> as_target(np.float32(0.5)), as_target("folder:/data/flowers")
    (0.5, 'folder:/data/flowers')
    >>> as_target(1.5)
    Traceback (most recent call last):
    ...
    ValueError: similarity must be a number in [0, 1] (or a real dataset's name), got 1.5
    """
    if isinstance(similarity, str):
        if similarity in datasets.DATASETS or similarity.startswith("folder:"):
            return similarity
        if similarity in datasets.WORLD_NAMES:
            raise ValueError(f"similarity {similarity!r}: for the world give the similarity as a number in [0, 1]")
        raise ValueError(f"similarity must be a number in [0, 1] (the world) or a real dataset "
                         f"({sorted(datasets.DATASETS)} or 'folder:/path'), got {similarity!r}")
    try:
        return round(as_probability("similarity", similarity), 4)
    except ValueError:
        raise ValueError(f"similarity must be a number in [0, 1] (or a real dataset's name), "
                         f"got {similarity!r}") from None


def target_task(n_per_class: int, similarity: float | str, seed: int = 0, *,
                config: RunConfig | None = None) -> ImageTask:
    """The task a run of ``config`` trains and tests on: ``n_per_class`` training images per class at a target.

    A number is the world's :func:`transferlab.world.target_task` at that similarity (``config.image_size``
    pixels); a name is a real dataset or ImageFolder read with :func:`transferlab.datasets.load_task` at the
    model's :func:`transferlab.experiments.data_config`. Either way the validation split has
    ``config.n_val_per_class`` images per class (every choice is made on it) and the test split
    ``config.n_test_per_class``, sealed: ``task.loader("test", final=True)`` reads it, once per final model. ``seed``
    picks the images, so every strategy run with the same seed sees the same data. Tasks are kept in memory (world
    tasks, a few MB, twenty-four at a time; real tasks, hundreds of MB at 224 px, two): every strategy and ``k`` of
    a grid, and of a similarity sweep after it, trains on the same tensors.

    Examples
    --------
    >>> cfg = RunConfig(n_test_per_class=1, n_val_per_class=1, image_size=16)
    >>> task = target_task(2, 1.0, seed=0, config=cfg)
    >>> len(task.y_train), task.splits, task.sealed, target_task(2, 1.0, seed=0, config=cfg) is task
    (20, ('train', 'val', 'test'), True, True)
    """
    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    n_per_class, seed = as_int("n_per_class", n_per_class, min=1), as_seed(seed)
    similarity = as_target(similarity)
    if isinstance(similarity, str):
        model_cfg = tuple(data_config(config.model).items())  # items: hashable for the task cache
        return _real_task(n_per_class, similarity, seed, config.n_test_per_class, config.n_val_per_class, model_cfg)
    return _world_task(n_per_class, similarity, seed, config.n_test_per_class, config.n_val_per_class,
                       config.image_size)


@memoize("world tasks", maxsize=24)
def _world_task(n_per_class: int, similarity: float, seed: int, n_test_per_class: int, n_val_per_class: int,
                size: int) -> ImageTask:
    return world.target_task(n_per_class, similarity, seed=seed, n_test_per_class=n_test_per_class,
                             n_val_per_class=n_val_per_class, size=size)


@memoize("real tasks", maxsize=2)
def _real_task(n_per_class: int, name: str, seed: int, n_test_per_class: int, n_val_per_class: int,
               model_cfg: tuple) -> ImageTask:
    return datasets.load_task(name, n_per_class, seed=seed, n_test_per_class=n_test_per_class,
                              n_val_per_class=n_val_per_class, model=dict(model_cfg) if model_cfg else None,
                              progress=False)


def ood_task(n_per_class: int, similarity: float | str, seed: int = 0, *, config: RunConfig) -> ImageTask:
    """The out-of-distribution twin of :func:`target_task`: same classes and training images, shifted validation and
    test images (``config.n_val_per_class`` and ``config.n_test_per_class`` per class).

    On the world it is :func:`transferlab.world.ood_split` with the nuisance shift ``config.ood`` (the same classes,
    the same factor combinations; only pose, colours, background and noise move). Real data has no generative
    factors to hold fixed: its OOD test split is the test images corrupted the way ImageNet-C does it, as strong as
    the ``colour`` knob (lower contrast, a colour cast) and the ``noise`` knob (pixel noise) say, and its validation
    images the same way; ``pose`` and ``background`` have no pixel-level counterpart and are not applied there. The
    test split is sealed like the in-distribution one. Kept in memory like the tasks.

    Examples
    --------
    >>> cfg = RunConfig(n_test_per_class=1, n_val_per_class=1, image_size=16, ood={"noise": 1.0})
    >>> ood = ood_task(2, 0.5, seed=0, config=cfg)
    >>> ood.classes == target_task(2, 0.5, seed=0, config=cfg).classes, ood.splits, ood.info["shift"]["noise"]
    (True, ('train', 'val', 'test'), 1.0)
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    if not config.ood:
        raise ValueError("config.ood is empty: give the nuisance shift of the OOD split, e.g. "
                         "RunConfig(ood={'pose': 0.5, 'noise': 0.5})")
    n_per_class, seed = as_int("n_per_class", n_per_class, min=1), as_seed(seed)
    return _ood_task(n_per_class, as_target(similarity), seed, config)


@memoize("ood tasks", maxsize=8)
def _ood_task(n_per_class: int, similarity: float | str, seed: int, config: RunConfig) -> ImageTask:
    task = target_task(n_per_class, similarity, seed, config=config)
    if task.info.get("kind") == "target":
        return world.ood_split(task, n_test_per_class=config.n_test_per_class, n_val_per_class=config.n_val_per_class,
                               **dict(config.ood))
    return _corrupted(task, dict(config.ood))


def _corrupted(task: ImageTask, shift: dict) -> ImageTask:
    """A real task's OOD twin: its validation and test images with noise, lower contrast and a colour cast (seeded;
    the test split sealed)."""
    import dataclasses

    colour, noise = shift.get("colour", 0.0), shift.get("noise", 0.0)
    if not colour and not noise:
        raise ValueError(f"on real images only the 'colour' and 'noise' knobs have a pixel-level form; the shift "
                         f"{shift} sets neither")
    seed = int(task.info.get("seed", 0))
    x_val = None if task.x_val is None else _corrupt(task.x_val, colour, noise, split_seed(seed, "ood-val", "corrupt"))
    x_test = _corrupt(task.x_test, colour, noise, split_seed(seed, "ood-test", "corrupt"))
    return dataclasses.replace(task, name=f"{task.name}+corrupted", x_test=x_test, x_val=x_val, sealed=True,
                               info=dict(task.info, kind="ood-corrupted", shift=dict(shift)))


def _corrupt(images, colour: float, noise: float, seed: int):
    import torch

    x = images.float() / 255
    gen = torch.Generator().manual_seed(seed)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 - 0.5 * colour)  # lower contrast
    cast = 1 + 0.3 * colour * (torch.rand(len(x), 3, 1, 1, generator=gen) - 0.5)  # a colour cast per image
    x = x * cast + 0.2 * noise * torch.randn(x.shape, generator=gen)  # pixel noise
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def sim_label(similarity: float | str) -> str:
    """A point of the similarity axis as text: ``"0.5"`` for the world, the dataset's name for real data.

    Examples
    --------
    >>> sim_label(0.5), sim_label("pets")
    ('0.5', 'pets')
    """
    return similarity if isinstance(similarity, str) else f"{similarity:g}"


def at_similarity(column, value: float | str):
    """Boolean mask of the rows of ``column`` at one point of the similarity axis (a float or a dataset name).

    Examples
    --------
    >>> import pandas as pd
    >>> at_similarity(pd.Series([1.0, 0.5]), 0.5).tolist()
    [False, True]
    >>> at_similarity(pd.Series(["pets", "eurosat"]), "pets").tolist()
    [True, False]
    """
    import numpy as np
    import pandas as pd

    if isinstance(value, str):
        return (column == value).to_numpy()
    return np.isclose(pd.to_numeric(column, errors="coerce"), value)
