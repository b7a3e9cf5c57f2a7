"""What the zoo needs from a recipe, whatever the model's domain: :class:`ZooEntry`.

The image recipes (:class:`transferlab.zoo.ZooSpec`), the text recipes (:mod:`transferlab.text_zoo`) and the
self-supervised ones subclass it; :mod:`transferlab.zoo` builds, verifies and loads them all the same way.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ZooEntry"]


class ZooEntry:
    """What the zoo needs from a recipe, whatever the model's domain.

    Subclasses define ``kind`` (``"image"``, ``"text"``), ``description``, and the methods below. The
    fingerprint must change whenever a change of recipe or of the data it is trained on would change the
    weights, so that cached files of an old recipe are rebuilt.
    """

    kind: str = "?"
    description: str = ""

    def fingerprint(self) -> str:
        raise NotImplementedError

    def make_model(self) -> nn.Module:
        """The architecture with its pretraining head, randomly initialised (seeded by the recipe)."""
        raise NotImplementedError

    def pretrain(self, *, progress: bool, device) -> tuple[nn.Module, dict]:
        """Train a fresh model; returns it (on the CPU) and what it reached (e.g. ``{"source_test_acc": ...}``)."""
        raise NotImplementedError

    def summary(self) -> dict:
        """The recipe's columns for :func:`status` (architecture, data, budget)."""
        return {}

    def loaded_info(self) -> dict:
        """What :func:`load` adds to the model's ``pretrained_cfg`` (where its pretraining came from)."""
        return {}
