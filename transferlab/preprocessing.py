"""Input normalisation: the conventions pretrained models expect, the kit's own and Keras's ``preprocess_input``.

A pretrained model is trained on inputs normalised one way; feed it another and it still runs, but computes
other numbers (lesson 05, section 4). :func:`preprocess` turns uint8 RGB images into network input the way each
convention does: the kit's world statistics (or any mean/std, e.g. a timm model's ``pretrained_cfg``), and the
three modes of Keras's ``preprocess_input`` (``"torch"``, ``"tf"``, ``"caffe"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._validate import as_choice, as_float
from .tasks import WORLD_MEAN, WORLD_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "CAFFE_BGR_MEAN", "PREPROCESS_MODES", "preprocess"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras "caffe" mode: per-channel means in BGR order, 0-255 scale
PREPROCESS_MODES = ("world", "torch", "tf", "caffe", "unit")


def _channel_values(name: str, value, *, positive: bool = False) -> list[float]:
    """One number, or one per RGB channel, as floats (Python or NumPy numbers, a sequence, an array, a tensor)."""
    if isinstance(value, torch.Tensor) or hasattr(value, "tolist"):
        value = value.tolist()
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(items) not in (1, 3):
        raise ValueError(f"{name} must be one number or one per RGB channel (3), got {len(items)}: {value!r}")
    bound = dict(min=0.0, min_open=True) if positive else {}
    return [as_float(name, v, **bound) for v in items]


def preprocess(x: torch.Tensor, mode: str, *, mean=None, std=None) -> torch.Tensor:
    """Turn uint8 (or 0-255 float) images ``[N, 3, H, W]`` (RGB) into network input, the way ``mode`` does.

    - ``"world"``: ``(x/255 - WORLD_MEAN) / WORLD_STD``, what the kit's zoo models were trained with
      (``mean``/``std`` override the statistics: pass a timm model's ``pretrained_cfg`` ones; each is one
      number or one per channel, and ``std`` must be > 0);
    - ``"torch"``: Keras ``preprocess_input(mode="torch")``: ``x/255``, then ImageNet mean/std;
    - ``"tf"``: Keras ``mode="tf"``: ``x/127.5 - 1``, i.e. [-1, 1];
    - ``"caffe"``: Keras ``mode="caffe"``: RGB -> BGR, subtract the ImageNet BGR means, no scaling;
    - ``"unit"``: ``x/255`` only.

    Examples
    --------
    >>> x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    >>> preprocess(x, "tf").unique().tolist()
    [1.0]
    >>> preprocess(x, "world", mean=0.0, std=1.0).unique().tolist()   # 0.0 is a mean like any other
    [1.0]
    """
    mode = as_choice("preprocessing mode", mode, PREPROCESS_MODES)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W] (RGB, channels first), got shape {tuple(x.shape)}")
    if (mean is not None or std is not None) and mode != "world":
        raise ValueError(f"mean/std only apply to mode 'world', not {mode!r}")
    mean = WORLD_MEAN if mean is None else _channel_values("mean", mean)
    std = WORLD_STD if std is None else _channel_values("std", std, positive=True)
    x = x.float()

    def per_channel(v):
        return torch.as_tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)

    if mode == "world":
        return (x / 255 - per_channel(mean)) / per_channel(std)
    if mode == "torch":
        return (x / 255 - per_channel(IMAGENET_MEAN)) / per_channel(IMAGENET_STD)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":
        return x.flip(1) - per_channel(CAFFE_BGR_MEAN)
    return x / 255
