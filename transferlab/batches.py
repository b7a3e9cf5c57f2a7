"""How a batch reaches a model and how its output is scored, for every domain the kit teaches.

A batch is ``(x, y)``: ``x`` a tensor (images) or a mapping of tensors (a tokenizer's ``input_ids`` and
``attention_mask``; the model is then called as ``model(**x)``); ``y`` class indices, one per example or one per
token, with :data:`IGNORE_INDEX` marking labels that are not scored (padding, sub-word continuations). A model may
return logits or an object with ``.logits`` (Hugging Face models). :func:`transferlab.train.fit` and
:func:`transferlab.train.evaluate` use these by default.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IGNORE_INDEX", "to_device", "forward", "check_labels", "cross_entropy", "accuracy_counts"]

IGNORE_INDEX = -100
"""A label that is not scored (padding tokens, sub-word continuations): as in PyTorch and Hugging Face."""


def to_device(x, device):
    """``x`` (a tensor, or a mapping of tensors such as a tokenizer's output) on ``device``.

    Examples
    --------
    >>> to_device({"input_ids": torch.ones(1, 2)}, torch.device("cpu"))["input_ids"].shape
    torch.Size([1, 2])
    """
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    raise TypeError(f"a batch's inputs must be a tensor or a mapping of tensors, got {type(x).__name__}")


def forward(model: nn.Module, x):
    """``model(x)`` for a tensor, ``model(**x)`` for a mapping; a Hugging Face output gives its ``.logits``."""
    out = model(**x) if isinstance(x, Mapping) else model(x)
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out


def check_labels(y: torch.Tensor, num_classes: int) -> None:
    """ValueError unless ``y`` holds class indices in ``0..num_classes-1`` (or :data:`IGNORE_INDEX`)."""
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be a tensor of class indices, got {getattr(y, 'dtype', type(y).__name__)}")
    valid = y[y != IGNORE_INDEX]
    if len(valid) and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        bad = int(valid.min()) if int(valid.min()) < 0 else int(valid.max())
        raise ValueError(f"label {bad} is out of range for a model with {num_classes} outputs (expected "
                         f"0..{num_classes - 1}); does the head match the task's number of classes?")


def cross_entropy(out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the last dimension of ``out`` (``[N, C]`` or ``[N, T, C]``), label -100 ignored.

    Examples
    --------
    >>> out = torch.zeros(1, 3, 2); y = torch.tensor([[0, 1, -100]])
    >>> round(float(cross_entropy(out, y)), 4)
    0.6931
    """
    check_labels(y, out.shape[-1])
    return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


def accuracy_counts(out: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """``(correct, scored)``: arg-max predictions equal to the labels, over labels that are not -100.

    Examples
    --------
    >>> accuracy_counts(torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]]), torch.tensor([[0, 0, -100]]))
    (1, 2)
    """
    keep = y != IGNORE_INDEX
    return int((out.argmax(-1)[keep] == y[keep]).sum()), int(keep.sum())
