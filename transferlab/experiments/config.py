"""The budget and hyper-parameters shared by every run of a grid: :class:`RunConfig`.

Its :meth:`~RunConfig.fingerprint` keys the result cache, so rows computed under another budget, another
protocol version (``_PROTOCOL``) or from another zoo recipe are never reused.

Examples
--------
>>> RunConfig().epochs(200), RunConfig().epochs(2000)
(15, 3)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from .. import zoo
from .._validate import as_float, as_int

__all__ = ["RunConfig"]

_INT_FIELDS = ("batch_size", "train_images", "min_epochs", "max_epochs", "n_test_per_class", "image_size",
               "probe_epochs")
# The protocol a row was measured under, part of every fingerprint. v1: test accuracy only, choices on test.
# v2: every task has a validation split (``acc`` is validation accuracy, ``test_acc`` the final test accuracy),
# optional out-of-distribution measurements; rows of v1 are never reused.
_PROTOCOL = "v2"


@dataclass(frozen=True)
class RunConfig:
    """The budget and hyper-parameters shared by every run of a grid (its fingerprint keys the cache).

    Attributes
    ----------
    model : str
        A zoo model (``"kitnet_m-src"``) or a timm model name (pretrained through timm: needs a network).
    lr_scratch, lr_finetune : float
        Peak one-cycle learning rates (AdamW) for random weights / new heads, and for pretrained stages.
    layer_decay : float
        Discriminative LRs: each stage gets this fraction of the LR of the stage above it.
    train_images : int
        How many images the optimizer sees per run; ``epochs(n_train)`` divides it by the training-set
        size and clips to ``[min_epochs, max_epochs]``.
    n_val_per_class : int
        Validation images per class of every target task, at least 1 (every choice is made on them; the test
        split is sealed and read once per final model).
    ood : tuple of (knob, strength) pairs
        Nuisance shifts of an out-of-distribution test split (:func:`transferlab.world.ood_split`; a dict is
        accepted). Empty (the default): no OOD measurement. Otherwise every run also reports ``ood_acc`` and how far
        its features moved from the pretrained ones on in-distribution and OOD test images.
    channels_last : bool
        Train and evaluate in the channels-last memory layout (about 1.3x faster for the kit's CNNs on a CPU; the
        same computation, rounded differently in the last bits).
    n_test_per_class, image_size, batch_size, probe_epochs, weight_decay : as named.

    Numbers may be NumPy scalars; they are stored as Python numbers (the fingerprint does not see the
    difference).

    Examples
    --------
    >>> RunConfig(train_images=1000, min_epochs=1, max_epochs=3).epochs(100)
    3
    >>> RunConfig(lr_finetune=0)
    Traceback (most recent call last):
    ...
    ValueError: lr_finetune must be a number > 0, got 0
    >>> RunConfig(ood={"noise": 0.5, "pose": 1}).ood
    (('pose', 1.0), ('noise', 0.5))
    """

    model: str = "kitnet_m-src"
    lr_scratch: float = 4e-3
    lr_finetune: float = 4e-4
    layer_decay: float = 0.3
    batch_size: int = 32
    train_images: int = 6_000
    min_epochs: int = 3
    max_epochs: int = 15
    n_test_per_class: int = 50
    image_size: int = 32
    probe_epochs: int = 100
    weight_decay: float = 5e-4
    n_val_per_class: int = 50
    ood: tuple = ()
    channels_last: bool = True

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a zoo or timm model name, got {self.model!r}")
        for name in ("lr_scratch", "lr_finetune", "layer_decay"):
            self._set(name, as_float(name, getattr(self, name), min=0, min_open=True))
        if self.layer_decay > 1:
            raise ValueError(f"layer_decay must be in (0, 1] (lower stages learn slower), got {self.layer_decay!r}")
        for name in _INT_FIELDS:
            self._set(name, as_int(name, getattr(self, name), min=1))
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs={self.min_epochs} is larger than max_epochs={self.max_epochs}")
        self._set("weight_decay", as_float("weight_decay", self.weight_decay, min=0))
        self._set("n_val_per_class", as_int("n_val_per_class", self.n_val_per_class, min=1))
        object.__setattr__(self, "ood", _as_shift(self.ood))
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be True or False, got {self.channels_last!r}")

    def _set(self, name: str, checked) -> None:
        # NumPy scalars become Python numbers; Python numbers stay as given, so fingerprints do not change
        if type(getattr(self, name)) not in (int, float):
            object.__setattr__(self, name, checked)  # a frozen dataclass normalising its own field

    def epochs(self, n_train: int) -> int:
        """Epochs for a training set of ``n_train`` images: ``train_images / n_train``, clipped."""
        n_train = as_int("n_train", n_train, min=1)
        return int(min(self.max_epochs, max(self.min_epochs, round(self.train_images / n_train))))

    def fingerprint(self) -> str:
        """A short hash of the config (and of the zoo recipe of ``model``): rows from another config differ.

        Examples
        --------
        >>> RunConfig().fingerprint() == RunConfig().fingerprint() != RunConfig(lr_finetune=1e-4).fingerprint()
        True
        """
        recipe = zoo.ZOO[self.model].fingerprint() if self.model in zoo.ZOO else "external"
        blob = json.dumps(asdict(self), sort_keys=True) + f"|{recipe}|{_PROTOCOL}"
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def shift(self) -> dict[str, float]:
        """The OOD nuisance shift as ``{knob: strength}`` (empty: no OOD measurement)."""
        return dict(self.ood)


def _as_shift(ood) -> tuple[tuple[str, float], ...]:
    """An OOD shift as ``((knob, strength), ...)`` in the order of ``transferlab.world.OOD_KNOBS``, checked."""
    from ..world import OOD_KNOBS, check_shift

    if isinstance(ood, (tuple, list)):
        try:
            ood = dict(ood)
        except (TypeError, ValueError):
            raise ValueError(f"ood must be a dict {{knob: strength}} or (knob, strength) pairs, got {ood!r}") from None
    shift = check_shift(ood)
    return tuple((k, shift[k]) for k in OOD_KNOBS if k in shift)
