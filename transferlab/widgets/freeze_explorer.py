"""``FreezeExplorer``: tick modules to freeze them, and watch parameter counts and BatchNorm modes change.

The explorer shows a model's module tree to ``max_depth`` levels with one checkbox per module; ticking one calls
:func:`transferlab.freeze.freeze_by_names`, unticking :func:`transferlab.freeze.unfreeze_by_names`. Beside the
tree it shows the trainable and frozen parameter counts of the whole model and the mode of every BatchNorm
layer (training, evaluation, or running statistics pinned by ``transferlab.freeze``), which lessons 00, 02 and
05 use to make freezing visible.
"""

from __future__ import annotations

import html

import ipywidgets as W
import pandas as pd
import torch
from torch import nn

from .. import freeze
from ..freeze import bn_behaviour, is_batchnorm
from ._panel import Panel

__all__ = ["FreezeExplorer"]


# lead: replace with transferlab.freeze public API at merge
def _bn_label(module: nn.Module) -> str | None:
    """How a BatchNorm layer will normalise in its next forward, as the explorer shows it; ``None`` when
    ``module`` is not BatchNorm. Read from the one BatchNorm mechanism (:func:`transferlab.freeze.bn_behaviour`),
    so the label always agrees with what the layer does, under a freeze pin or a lesson-05 regime alike.
    """
    if not is_batchnorm(module):
        return None
    b = bn_behaviour(module)
    if b.policy == "frozen":
        return "stats frozen (eval, pinned by freeze)"
    if b.policy is None and b.batch_stats and b.updates_stats:
        return "train (updates running stats)"
    if b.policy is None and not b.batch_stats:
        return "eval (uses running stats)"
    return b.mode  # old Keras, or a layer without running statistics: the mechanism's own words


class FreezeExplorer(Panel):
    """The model's module tree, a checkbox per module to freeze it, live parameter counts and BatchNorm modes.

    Ticking a box calls ``transferlab.freeze.freeze_by_names(model, [name], freeze_bn_stats=...)``, unticking
    calls ``unfreeze_by_names(model, [name], optimizer=optimizer)`` (which hands newly trainable parameters to
    the optimizer). A box is ticked when every parameter below it is frozen.

    In a notebook::

        FreezeExplorer(model)          # or FreezeExplorer(model, optimizer=opt, max_depth=3)

    Examples
    --------
    >>> from transferlab.models import create_model
    >>> ex = FreezeExplorer(create_model("kitnet_s", 10))
    >>> ex.set_frozen("stem", True); ex.counts()["frozen"] > 0
    True
    """

    title = "Freeze explorer"

    def __init__(self, model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None, max_depth: int = 2,
                 freeze_bn_stats: bool = True):

        if not isinstance(model, nn.Module):
            raise TypeError(f"FreezeExplorer expects a torch.nn.Module, got {type(model).__name__}")
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"max_depth must be an integer >= 1, got {max_depth!r}")
        self.model, self.optimizer, self.freeze_bn_stats = model, optimizer, freeze_bn_stats
        self.names = [n for n, m in model.named_modules()
                      if n and n.count(".") < max_depth and any(True for _ in m.parameters())]
        if not self.names:
            raise ValueError(f"{type(model).__name__} has no submodules with parameters to freeze")
        self.boxes: dict[str, W.Checkbox] = {}
        for name in self.names:
            box = W.Checkbox(value=False, description=self._label(name), indent=False,
                             layout=W.Layout(margin=f"0 0 0 {1.5 * name.count('.')}em", width="auto"))
            box.observe(self._on_toggle(name), names="value")
            self.boxes[name] = box
        self.summary = W.HTML()
        self.bn_view = W.HTML()
        self._syncing = False
        self.log: list[tuple[str, str, int]] = []
        self.widget = W.HBox([W.VBox([W.HTML("<b>frozen?</b>"), *self.boxes.values()]),
                              W.VBox([self.summary, self.bn_view], layout=W.Layout(margin="0 0 0 2em"))])
        self.sync()

    def _label(self, name: str) -> str:
        mod = self.model.get_submodule(name)
        n = sum(p.numel() for p in mod.parameters())
        return f"{name.rsplit('.', 1)[-1] if '.' in name else name} ({type(mod).__name__}, {n:,})"

    def _on_toggle(self, name: str):
        def handler(change):
            if self._syncing:
                return
            self._apply(name, bool(change["new"]))

        return handler

    def _apply(self, name: str, frozen: bool):

        if frozen:
            changed = freeze.freeze_by_names(self.model, [name], freeze_bn_stats=self.freeze_bn_stats)
        else:
            changed = freeze.unfreeze_by_names(self.model, [name], optimizer=self.optimizer)
        self.log.append(("freeze" if frozen else "unfreeze", name, len(changed)))
        self.sync()

    def set_frozen(self, name: str, frozen: bool = True) -> None:
        """Tick (``True``) or untick a module's box, exactly as a click does."""
        if name not in self.boxes:
            from difflib import get_close_matches

            close = get_close_matches(str(name), self.names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"no checkbox for module {name!r}{hint}; modules shown: {self.names}")
        box = self.boxes[name]
        if box.value == bool(frozen):  # already in that state: still apply, so a half-frozen parent resolves
            self._apply(name, bool(frozen))
        else:
            box.value = bool(frozen)

    def counts(self) -> dict:
        """``{"total", "trainable", "frozen"}`` parameter counts of the whole model."""
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return dict(total=total, trainable=trainable, frozen=total - trainable)

    def bn_modes(self) -> dict[str, str]:
        """Each BatchNorm layer's mode, by module name."""
        return {n: label for n, m in self.model.named_modules() if (label := _bn_label(m)) is not None}

    def sync(self) -> None:
        """Re-read the model (after changes made in code) and update boxes, counts and BN modes."""
        self._syncing = True
        try:
            for name, box in self.boxes.items():
                params = list(self.model.get_submodule(name).parameters())
                frozen = all(not p.requires_grad for p in params)
                partly = not frozen and any(not p.requires_grad for p in params)
                box.value = frozen
                box.description = self._label(name) + (" · partly frozen" if partly else "")
        finally:
            self._syncing = False
        c = self.counts()
        pct = 100 * c["frozen"] / max(c["total"], 1)
        self.summary.value = (f"<p><b>trainable</b> {c['trainable']:,} · <b>frozen</b> {c['frozen']:,} "
                              f"({pct:.1f}% of {c['total']:,} parameters)</p>")
        modes = self.bn_modes()
        if modes:
            rows = "".join(f"<tr><td><code>{html.escape(n)}</code></td><td>{html.escape(m)}</td></tr>"
                           for n, m in modes.items())
            self.bn_view.value = f"<table><tr><th>BatchNorm layer</th><th>mode</th></tr>{rows}</table>"
        else:
            self.bn_view.value = "<p>No BatchNorm layers.</p>"

    def table(self) -> pd.DataFrame:
        """Per module shown: parameters, trainable, frozen, and the BN modes below it."""
        rows = []
        for name in self.names:
            mod = self.model.get_submodule(name)
            n = sum(p.numel() for p in mod.parameters())
            t = sum(p.numel() for p in mod.parameters() if p.requires_grad)
            bns = sorted({label for m in mod.modules() if (label := _bn_label(m)) is not None})
            rows.append(dict(module=name, params=n, trainable=t, frozen=n - t, bn="; ".join(bns) or "-"))
        return pd.DataFrame(rows)

    def static_html(self) -> str:
        return self.summary.value + self.table().to_html(index=False, border=0)
