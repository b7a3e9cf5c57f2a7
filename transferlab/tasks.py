"""Tasks: labelled data split into train, validation and test, and the loaders that feed it to a model.

A :class:`Task` is what every lesson trains and evaluates on, whatever the data is: its ``classes``, its
``splits`` and a ``loader(split, batch_size)`` that yields ``(inputs, labels)`` batches. :class:`ImageTask`
holds uint8 images in memory (the offline world, scikit-learn's digits, real datasets resized by
:mod:`transferlab.datasets`); a text task holds token sequences and follows the same interface, so the training
loop, the ledger and the widgets need not know which domain they are looking at.

:func:`stratified_indices` is the kit's one way of drawing ``n`` examples per class (seeded, nested: a smaller
``n`` with the same seed is a subset of a larger one).

**The protocol a reviewer expects.** Every choice (a learning rate, ``k``, the number of epochs, "the best
strategy") is made on the *validation* split; the *test* split is read once per final model. A task with a
validation split is *sealed*: ``task.loader("test")`` raises :class:`SealedSplitError` until the caller says
this is the final evaluation, ``task.loader("test", final=True)``. So a lesson cannot peek at the test set by
accident, and a test of the lessons can check that they never do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ._validate import as_float, as_int, as_seed

__all__ = ["Task", "ImageTask", "TensorLoader", "TooFewImagesError", "SealedSplitError", "stratified_indices",
           "split_seed", "epoch_order", "map_images", "split_images", "WORLD_MEAN", "WORLD_STD"]

# Per-channel statistics of the world's source task (measured on 50k images, seed 0); the zoo's models expect
# inputs normalised with them, just as ImageNet models expect ImageNet's.
WORLD_MEAN = (0.171, 0.171, 0.171)
WORLD_STD = (0.146, 0.146, 0.146)


class TooFewImagesError(ValueError):
    """A class has fewer examples than asked for; ``split`` ("train", "test" or None), ``available``, ``requested``."""

    def __init__(self, message: str, *, split: str | None, label: int, available: int, requested: int):
        super().__init__(message)
        self.split, self.label, self.available, self.requested = split, label, available, requested


class SealedSplitError(RuntimeError):
    """The test split was asked for before the final evaluation (``final=True`` not given)."""


def stratified_indices(y: torch.Tensor, n_per_class: int | None, *, seed: int = 0,
                       num_classes: int | None = None, split: str | None = None) -> torch.Tensor:
    """Sorted indices of ``n_per_class`` members of every class, drawn with ``seed`` (``None``: all of them).

    A smaller ``n_per_class`` with the same seed gives a subset of a larger one (nested data sizes). Labels must
    be integers in ``0..num_classes-1``; anything else (a float label, a -1 "unlabelled" marker) is an error,
    never silently dropped.

    Examples
    --------
    >>> stratified_indices(torch.tensor([0, 1, 0, 1, 0, 1]), 2, seed=0).tolist()
    [0, 3, 4, 5]
    """
    if n_per_class is not None:
        n_per_class = as_int("n_per_class", n_per_class, min=1)
    seed = as_seed(seed)
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-d integer tensor, got {y.dtype} with shape {tuple(y.shape)}")
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(y.min())} (are some examples unlabelled?)")
    top = int(y.max()) + 1 if len(y) else 0
    num_classes = top if num_classes is None else as_int("num_classes", num_classes, min=1)
    if top > num_classes:
        raise ValueError(f"label {top - 1} is out of range for num_classes={num_classes}")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        members = (y == c).nonzero(as_tuple=True)[0]
        order = members[torch.randperm(len(members), generator=gen)]
        if n_per_class is not None:
            if len(members) < n_per_class:
                where = f" in the {split} split" if split else ""
                raise TooFewImagesError(f"class {c} has only {len(members)} examples{where}, fewer than "
                                        f"n_per_class={n_per_class}", split=split, label=c,
                                        available=len(members), requested=n_per_class)
            order = order[:n_per_class]
        picks.append(order)
    return torch.cat(picks).sort().values if picks else torch.zeros(0, dtype=torch.long)


def split_seed(seed: int, part: str, what: str) -> int:
    """A stable 63-bit seed for (seed, part, what), independent of Python's hash randomisation.

    Examples
    --------
    >>> split_seed(0, "train", "target") == split_seed(0, "train", "target") != split_seed(1, "train", "target")
    True
    """
    h = 1469598103934665603
    for ch in f"{seed}|{part}|{what}":
        h = ((h ^ ord(ch)) * 1099511628211) % (1 << 63)
    return h


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> torch.Tensor:
    """The order in which a loader visits ``n`` examples in ``epoch``: seeded, different every epoch, reproducible.

    Examples
    --------
    >>> epoch_order(4, shuffle=False, seed=0, epoch=3).tolist()
    [0, 1, 2, 3]
    >>> torch.equal(epoch_order(5, shuffle=True, seed=1, epoch=0), epoch_order(5, shuffle=True, seed=1, epoch=0))
    True
    """
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


class TensorLoader:
    """Mini-batches of normalised float images from uint8 tensors held in memory.

    Much faster than a ``DataLoader`` over a ``TensorDataset`` for small images (one indexing op per batch,
    no per-item Python). Shuffling is seeded and changes every epoch in a reproducible way; it never touches
    the global random state.

    Examples
    --------
    >>> x = torch.zeros(5, 3, 4, 4, dtype=torch.uint8); y = torch.arange(5)
    >>> [len(b) for b, _ in TensorLoader(x, y, 2)]
    [2, 2, 1]
    """

    def __init__(self, x, y, batch_size=128, *, shuffle=False, seed=0, mean=WORLD_MEAN, std=WORLD_STD,
                 drop_last=False):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"x must be a uint8 tensor [N, C, H, W], got "
                             f"{getattr(x, 'dtype', type(x).__name__)} with shape {tuple(getattr(x, 'shape', ()))}")
        if len(x) != len(y):
            raise ValueError(f"x and y disagree on N: {len(x)} images but {len(y)} labels")
        self.batch_size = as_int("batch_size", batch_size, min=1)
        self.seed = as_seed(seed)
        self.mean = _per_channel("mean", mean, x.shape[1], positive=False) * 255
        self.std = _per_channel("std", std, x.shape[1], positive=True) * 255
        self.x, self.y = x, y
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self._epoch = 0

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(len(self.x), shuffle=self.shuffle, seed=self.seed, epoch=self._epoch)
        self._epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield (self.x[idx].float() - self.mean) / self.std, self.y[idx]


def _per_channel(name: str, values, channels: int, *, positive: bool) -> torch.Tensor:
    if hasattr(values, "tolist"):  # a tensor or an array
        values = values.tolist()
    vals = list(values) if isinstance(values, (tuple, list)) else [values]
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ValueError(f"{name} has {len(vals)} values for images with {channels} channels")
    lo = 0.0 if positive else None
    out = [as_float(f"{name}[{i}]", v, min=lo, min_open=positive) for i, v in enumerate(vals)]
    return torch.tensor(out, dtype=torch.float32).view(1, -1, 1, 1)


class Task:
    """What every task offers, whatever its domain: ``name``, ``classes``, ``splits`` and ``loader``.

    Subclasses hold the data; :class:`ImageTask` is the image one. ``info`` carries how the task was made
    (seed, similarity, data size) for tables and the ledger.
    """

    name: str
    classes: tuple
    info: dict
    sealed: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "val", "test") if self.has_val else ("train", "test")

    @property
    def has_val(self) -> bool:
        return False

    def labels(self, split: str, *, final: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def loader(self, split: str = "train", batch_size: int = 128, *, shuffle: bool | None = None, seed: int = 0,
               final: bool = False, **kwargs):
        raise NotImplementedError

    def _check_split(self, split: str, final: bool = False) -> str:
        if split not in self.splits:
            hint = " (this task has no validation split: build it with n_val_per_class=...)" if split == "val" else ""
            raise ValueError(f"split must be one of {self.splits}, got {split!r}{hint}")
        if split == "test" and self.sealed and not final:
            raise SealedSplitError(
                f"the test split of {self.name} is sealed: make every choice (learning rate, epochs, strategy) on "
                f"'val', then evaluate each final model once with loader('test', final=True)")
        return split


@dataclass(frozen=True)
class ImageTask(Task):
    """A classification task held in memory: uint8 images and integer labels, split train/test.

    Examples
    --------
    >>> x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8); y = torch.tensor([0, 1, 0, 1])
    >>> t = ImageTask("demo", x, y, x, y, classes=("a", "b")); t.num_classes, t.image_size
    (2, 8)
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...] = WORLD_MEAN
    std: tuple[float, ...] = WORLD_STD
    info: dict = field(default_factory=dict)
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    sealed: bool = False

    def __post_init__(self):
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("give both x_val and y_val, or neither")
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is not None and len(x) != len(y):
                raise ValueError(f"the {split} split has {len(x)} images but {len(y)} labels")

    @property
    def has_val(self) -> bool:
        return self.x_val is not None

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    def _split(self, split: str, final: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_split(split, final)
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def labels(self, split: str, *, final: bool = False) -> torch.Tensor:
        """The labels of ``split`` (the test split of a sealed task needs ``final=True``)."""
        return self._split(split, final)[1]

    def loader(self, split="train", batch_size=128, *, shuffle=None, seed=0, mean=None, std=None,
               drop_last=False, final: bool = False) -> TensorLoader:
        """Batches of ``split`` ("train", "val" or "test"), normalised with the task's mean/std unless given.

        ``shuffle`` defaults to True for "train" and False otherwise. On a sealed task (one with a validation
        split) ``"test"`` needs ``final=True``: the final evaluation of a model whose every choice was made on
        ``"val"``.
        """
        x, y = self._split(split, final)
        return TensorLoader(
            x, y, batch_size, shuffle=(split == "train") if shuffle is None else shuffle, seed=seed,
            mean=self.mean if mean is None else mean, std=self.std if std is None else std, drop_last=drop_last,
        )

    def subset(self, n_per_class: int, *, seed: int = 0) -> ImageTask:
        """A stratified, seeded subset of the training split (validation and test splits are kept whole)."""
        idx = stratified_indices(self.y_train, n_per_class, seed=seed, num_classes=self.num_classes, split="train")
        info = dict(self.info, n_per_class=int(n_per_class))
        return dataclasses.replace(self, x_train=self.x_train[idx], y_train=self.y_train[idx], info=info)

    def with_stats(self, mean, std) -> ImageTask:
        """The same images, normalised with other statistics (a model's ``pretrained_cfg`` ones)."""
        return dataclasses.replace(self, mean=tuple(mean), std=tuple(std))

    def __repr__(self):
        val = f", val={len(self.y_val)}" if self.has_val else ""
        sealed = ", test sealed" if self.sealed else ""
        return (f"ImageTask({self.name!r}, classes={self.num_classes}, train={len(self.y_train)}{val}, "
                f"test={len(self.y_test)}, size={self.image_size}{sealed})")


def map_images(task: ImageTask, fn: Callable[[torch.Tensor], torch.Tensor], label: str) -> ImageTask:
    """``task`` with ``fn`` applied to the uint8 images of every split (train, validation, test); labels kept.

    A "new camera" for lesson 05: the same objects under another exposure. The result keeps the task's classes,
    normalisation statistics and seal, and is named ``f"{task.name}[{label}]"``. ``fn`` must return uint8 images
    of the same shape.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> t = target_task(2, n_test_per_class=1, n_val_per_class=1, size=16)
    >>> dark = map_images(t, lambda x: x // 2, "dark"); dark.name, dark.sealed, int(dark.x_train.max()) <= 127
    ('target[sim=1][dark]', True, True)
    """
    def apply(x, split):
        out = fn(x)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or out.shape != x.shape:
            raise ValueError(f"{label!r}: fn must return uint8 images of shape {tuple(x.shape)} for the {split} split, "
                             f"got {type(out).__name__} {getattr(out, 'dtype', '')} {tuple(getattr(out, 'shape', ()))}")
        return out

    changes = {f"x_{split}": apply(getattr(task, f"x_{split}"), split) for split in task.splits}
    return dataclasses.replace(task, name=f"{task.name}[{label}]", info=dict(task.info, shift=label), **changes)


def split_images(task: ImageTask, split: str, *, final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw uint8 images and the labels of ``split``, for code that normalises images itself.

    The same rule as ``task.loader``: the test split of a sealed task (one with a validation split) needs
    ``final=True``, the final evaluation of a model whose choices were made on validation.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> t = target_task(2, n_test_per_class=1, n_val_per_class=1, size=16)
    >>> x, y = split_images(t, "val"); x.dtype, len(y)
    (torch.uint8, 10)
    >>> split_images(t, "test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    transferlab.tasks.SealedSplitError: the test split of ... is sealed: ...
    """
    y = task.labels(split, final=final)  # checks the split and the seal
    return getattr(task, f"x_{split}"), y
