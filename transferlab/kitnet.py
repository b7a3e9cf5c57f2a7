"""The kit's CNN family: a stem, named stages that each halve the resolution, global pooling and a linear head.

A kit model reads like the diagrams in the lessons::

    stem -> layer1 -> layer2 -> layer3 -> pool -> head
    (low-level edges)        (high-level parts)    (task)

so ``freeze_by_names(model, ["stem", "layer1"])`` says what it does. The models follow timm's interface
(``forward_features``, ``forward_head``, ``num_features``, ``get_classifier``, ``reset_classifier``,
``pretrained_cfg``) so that code written for one works for the other.
"""

from __future__ import annotations

import torch  # noqa: F401  (the docstring examples use it)
from torch import nn

from ._validate import as_choice, as_int, as_list
from .tasks import WORLD_MEAN, WORLD_STD

__all__ = ["KitNet", "BasicBlock", "ARCHITECTURES"]


def _conv_bn(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN with an identity (or 1x1 projection) shortcut, as in ResNet-18."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + self.shortcut(x))


class KitNet(nn.Module):
    """A small CNN: ``stem`` then one stage per width (each halves the resolution), ``pool``, ``head``.

    Parameters
    ----------
    num_classes : int
    widths : tuple of int
        Channels of ``layer1``, ``layer2``, ...; one stage each.
    stem_width : int
    block : {"plain", "residual"}
        "plain": two conv+BN+ReLU per stage (VGG-like); "residual": one BasicBlock per stage.

    Examples
    --------
    >>> m = KitNet(10, widths=(8, 16)); [n for n, _ in m.named_children()]
    ['stem', 'layer1', 'layer2', 'pool', 'head']
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, widths=(24, 48, 96), stem_width: int = 16, block: str = "plain",
                 in_chans: int = 3):
        super().__init__()
        block = as_choice("block", block, ("plain", "residual"))
        num_classes = as_int("num_classes", num_classes, min=1)
        stem_width, in_chans = as_int("stem_width", stem_width, min=1), as_int("in_chans", in_chans, min=1)
        widths = tuple(as_int(f"widths[{i}]", w, min=1) for i, w in enumerate(as_list("widths", widths)))
        self.stem = _conv_bn(in_chans, stem_width)
        cin = stem_width
        names = ["stem"]
        for i, w in enumerate(widths, start=1):
            if block == "plain":
                stage = nn.Sequential(_conv_bn(cin, w, stride=2), _conv_bn(w, w))
            else:
                stage = nn.Sequential(BasicBlock(cin, w, stride=2))
            self.add_module(f"layer{i}", stage)
            names.append(f"layer{i}")
            cin = w
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(cin, num_classes)
        self.num_features = cin
        self.num_classes = int(num_classes)
        self.stage_names = tuple(names)
        self.pretrained_cfg = dict(mean=WORLD_MEAN, std=WORLD_STD, input_size=(in_chans, 32, 32),
                                   interpolation="bilinear", crop_pct=1.0, num_classes=int(num_classes))

    def forward_features(self, x):
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x, pre_logits: bool = False):
        x = self.pool(x)
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int):
        num_classes = as_int("num_classes", num_classes, min=1)
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = int(num_classes)
        self.pretrained_cfg = dict(self.pretrained_cfg, num_classes=int(num_classes))


# name -> constructor keyword arguments
ARCHITECTURES = {
    "kitnet_s": dict(widths=(16, 32, 64), stem_width=16),
    "kitnet_m": dict(widths=(24, 48, 96), stem_width=16),
    "kitnet_l": dict(widths=(32, 64, 128), stem_width=24),
    "kitnet_deep": dict(widths=(24, 48, 96, 128), stem_width=16),
    "kitres_m": dict(widths=(32, 64, 128), stem_width=24, block="residual"),
}
