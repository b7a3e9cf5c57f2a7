"""Features of a frozen model and the linear probe on them: the fast form of "train the head only".

Keras's transfer-learning guide teaches it: when the base is frozen, run it once over the data, keep its
features, and train the new head on them; no gradient ever flows through the base. :func:`extract_features`
does the first half, :func:`fit_linear_probe` the second (full-batch AdamW on standardised features).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import as_float, as_int, as_seed
from .batches import check_labels, to_device
from .device import autocast, model_device, seeded

__all__ = ["extract_features", "fit_linear_probe"]


@torch.no_grad()
def extract_features(model: nn.Module, data: Iterable, *, device=None, amp: bool | None = None):
    """Pre-logit features (``forward_head(..., pre_logits=True)``) and labels for every batch, in eval mode.

    Returns ``(features float32 [N, D] on CPU, labels [N])``. ``device=None`` runs where the model is; a
    ``device`` moves the model there first.
    """
    device = model_device(model, device)
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for x, y in data:
            with autocast(device, amp):
                f = model.forward_head(model.forward_features(to_device(x, device)), pre_logits=True)
            feats.append(f.float().cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features() got no batches: the data is empty")
    return torch.cat(feats), torch.cat(labels)


def fit_linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, num_classes: int, *,
                     epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0,
                     standardize: bool = True) -> nn.Module:
    """Train a linear classifier on cached features (full-batch AdamW): the fast form of "train the head only".

    Returns an ``nn.Sequential(standardise, linear)`` that maps features to logits.
    """
    if not isinstance(train_features, torch.Tensor) or train_features.ndim != 2 or \
            len(train_features) != len(train_labels) or len(train_features) == 0:
        shapes = [tuple(getattr(t, "shape", ())) for t in (train_features, train_labels)]
        raise ValueError(f"expected features [N, D] with N >= 1 and labels [N], got {shapes[0]} and {shapes[1]}")
    num_classes = as_int("num_classes", num_classes, min=1)
    epochs = as_int("epochs", epochs, min=1)
    lr = as_float("lr", lr, min=0.0, min_open=True)
    weight_decay = as_float("weight_decay", weight_decay, min=0.0)
    seed = as_seed(seed)
    x = train_features.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"the features contain {int((~torch.isfinite(x)).sum())} NaN or infinite values; a probe "
                         f"on them would be NaN (did the model that made them diverge?)")
    check_labels(train_labels, num_classes)
    mean = x.mean(0) if standardize else torch.zeros(x.shape[1])
    std = x.std(0).clamp(min=1e-6) if standardize and len(x) > 1 else torch.ones(x.shape[1])
    with seeded(seed):  # nn.Linear's default init draws numbers: never from the caller's stream
        linear = nn.Linear(x.shape[1], num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bound = 1 / math.sqrt(x.shape[1])
        linear.weight.uniform_(-bound, bound, generator=gen)
        linear.bias.zero_()
    opt = torch.optim.AdamW(linear.parameters(), lr=lr, weight_decay=weight_decay)
    xs = (x - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(linear(xs), train_labels).backward()
        opt.step()
    scale = _Standardize(mean, std)
    return nn.Sequential(scale, linear)


class _Standardize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std
