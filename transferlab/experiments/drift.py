"""How far training moves each stage's weights from where they started: ``||w - w0|| / ||w0||`` per stage.

:func:`snapshot` copies a model's weights, :func:`stage_weight_change` compares two sets of weights stage by
stage, and :class:`WeightDrift` records the change during ``fit``. This is how lesson 01 shows that a random
head's large gradients disturb the pretrained features it was meant to reuse (and that training the head first
does not).

Examples
--------
>>> from torch import nn
>>> layer = nn.Linear(2, 1); before = snapshot(layer)
>>> _ = layer.weight.data.mul_(2)
>>> round(stage_weight_change(before, layer, {"layer": ["weight"]})["layer"], 6)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .._validate import as_int
from ..models import stage_parameters
from ..train import Callback, TrainState

__all__ = ["snapshot", "stage_weight_change", "WeightDrift"]

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's parameters (not buffers), to compare against later.

    Examples
    --------
    >>> sorted(snapshot(nn.Linear(2, 1)))
    ['bias', 'weight']
    """
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}


def stage_weight_change(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor] | nn.Module,
                        stages: Sequence[str] | Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """Relative weight change ``||w_after - w_before|| / ||w_before||`` per stage (all its weights together).

    Parameters
    ----------
    before : a state dict or :func:`snapshot` (BatchNorm running statistics are ignored: they are not
        weights).
    after : the same for later weights, or the model itself.
    stages : names of submodules to report, each a prefix of parameter names (``"layer1"`` covers
        ``"layer1.0.0.weight"``...), or a mapping ``{stage: prefixes}`` for stages made of several modules
        (:class:`WeightDrift` passes the model's :func:`transferlab.models.stage_parameters`). Default: every
        top-level child that has weights, in order.

    Returns
    -------
    dict stage -> float (0 = unchanged; ``inf`` if a stage whose weights were all zero moved).

    Examples
    --------
    >>> a = {"stem.w": torch.ones(4), "head.w": torch.ones(2)}
    >>> b = {"stem.w": torch.tensor([1.0, 1.0, 1.0, 3.0]), "head.w": torch.ones(2)}
    >>> stage_weight_change(a, b)
    {'stem': 1.0, 'head': 0.0}
    """
    if isinstance(after, nn.Module):
        after = {n: p.detach() for n, p in after.named_parameters()}
    keys = [key for key in before if not key.endswith(_BUFFER_SUFFIXES)]
    missing = [key for key in keys if key not in after]
    if missing:
        raise KeyError(f"{len(missing)} weights of `before` are missing from `after`, e.g. {missing[:3]}; "
                       f"compare snapshots of the same architecture")
    if stages is None:
        stages = list(dict.fromkeys(key.split(".")[0] for key in keys))
    prefixes_of = dict(stages) if isinstance(stages, Mapping) else {st: [st] for st in stages}
    out = {}
    for stage, prefixes in prefixes_of.items():
        members = [key for key in keys if any(key == p or key.startswith(p + ".") for p in prefixes)]
        if not members:
            prefixes = sorted(dict.fromkeys(key.split(".")[0] for key in keys))
            raise KeyError(f"no weights under {stage!r}; the weights live under {prefixes}")
        diff2, base2 = 0.0, 0.0
        for key in members:
            b, a = before[key].detach().float().cpu(), after[key].detach().float().cpu()
            if a.shape != b.shape:
                raise ValueError(f"{key!r} has shape {tuple(b.shape)} before and {tuple(a.shape)} after")
            diff2 += float(((a - b) ** 2).sum())
            base2 += float((b**2).sum())
        out[stage] = math.sqrt(diff2 / base2) if base2 > 0 else (0.0 if diff2 == 0 else math.inf)
    return out


class WeightDrift(Callback):
    """A ``fit`` callback that records each stage's relative weight change from a reference, over training.

    One instance can follow several ``fit`` calls (e.g. head first, then jointly): steps keep counting and the
    reference stays the weights at its first ``on_fit_start`` (or the ``reference`` given).

    Parameters
    ----------
    stages : stage names (default: the model's stages, input to output).
    every : also record every ``every`` optimizer steps (0: only at the end of each epoch).
    reference : a :func:`snapshot` to measure from.
    phase : a label stored in every row (``"head"``, ``"joint"``...); set ``drift.phase`` between ``fit`` calls.

    ``rows`` holds dicts ``step, epoch, phase, <stage>...`` plus ``val_acc`` when ``fit`` was given ``val``;
    ``frame()`` returns them as a DataFrame.

    Examples
    --------
    >>> from transferlab.models import KitNet
    >>> from transferlab.train import fit
    >>> from transferlab.world import target_task
    >>> task = target_task(2, n_test_per_class=1, size=16); drift = WeightDrift()
    >>> _ = fit(KitNet(10, widths=(8,)), task.loader("train", 10), epochs=2, progress=False, callbacks=[drift])
    >>> [r["step"] for r in drift.rows], drift.rows[-1]["stem"] > 0
    ([0, 2, 4], True)
    """

    def __init__(self, stages: Sequence[str] | None = None, every: int = 0, reference: dict | None = None,
                 phase: str = ""):
        every = as_int("every", every, min=0)
        self.stages, self.every, self.reference, self.phase = stages, every, reference, phase
        self.rows: list[dict] = []
        self._offset, self._epoch0 = 0, 0.0

    def _record(self, state: TrainState, epoch: float):
        row = dict(step=self._offset + state.step, epoch=epoch, phase=self.phase)
        row.update(stage_weight_change(self.reference, state.model, self.stages))
        if state.history.rows and "val_acc" in state.history.rows[-1] and epoch == int(epoch):
            row["val_acc"] = state.history.rows[-1]["val_acc"]
        self.rows.append(row)

    def on_fit_start(self, state: TrainState):
        if self.stages is None:
            self.stages = {st: [n for n, _ in ps] for st, ps in stage_parameters(state.model).items()}
        if self.reference is None:
            self.reference = snapshot(state.model)
        if not self.rows:
            self._record(state, 0)
        self._epoch0 = self.rows[-1]["epoch"] if self.rows else 0

    def on_batch_end(self, state: TrainState):
        if self.every and state.step % self.every == 0 and state.batch + 1 < state.batches_per_epoch:
            self._record(state, self._epoch0 + state.epoch + (state.batch + 1) / state.batches_per_epoch)

    def on_epoch_end(self, state: TrainState):
        self._record(state, self._epoch0 + state.epoch + 1)

    def on_fit_end(self, state: TrainState):
        self._offset += state.step

    def frame(self):
        """The recorded rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows)
