"""SGD's side of the SWA recipe: the paper's learning-rate schedule, the switch to ``SWALR``, the SGD optimizer."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import SWALR

from .._validate import as_float, as_int, as_list
from ..train import Callback

__all__ = ["sgd_lr_factor", "swa_epochs", "PaperSchedule", "SWALRCallback"]


def sgd_lr_factor(progress: float, final_ratio: float = 0.01) -> float:
    """The paper's learning-rate factor at ``progress`` (fraction of the SGD budget, 0 to 1 and beyond).

    Constant 1 for the first half, linear down to ``final_ratio`` at 90%, then constant.

    Examples
    --------
    >>> [round(sgd_lr_factor(p), 3) for p in (0.0, 0.5, 0.7, 0.9, 1.2)]
    [1.0, 1.0, 0.505, 0.01, 0.01]
    """
    final_ratio = as_float("final_ratio", final_ratio, min=0.0, max=1.0, min_open=True)
    progress = as_float("progress", progress)
    if progress <= 0.5:
        return 1.0
    if progress <= 0.9:
        return 1.0 - (1.0 - final_ratio) * (progress - 0.5) / 0.4
    return final_ratio


def swa_epochs(budget: int, budgets: Sequence[float] = (1.0, 1.25, 1.5), swa_start: float = 0.75) -> dict:
    """Epoch counts of the SWA experiment: ``{"start": swa_start in epochs, "ends": {factor: epochs}}``.

    ``start`` is the number of SGD epochs before SWA takes over (fast.ai's ``swa_start``): the weights after
    ``start`` epochs are the first ones averaged, one more set at the end of every later epoch.

    Parameters
    ----------
    budget : int
        ``B``, the SGD budget in epochs.
    budgets : factors of ``B`` at which the SWA solution is read (each ``factor * B`` must be a whole number).
    swa_start : fraction of ``B`` after which SWA takes over.

    Examples
    --------
    >>> swa_epochs(8)
    {'start': 6, 'ends': {1.0: 8, 1.25: 10, 1.5: 12}}
    """
    budget = as_int("budget (epochs)", budget, min=2)
    swa_start = as_float("swa_start (a fraction of the budget)", swa_start, min=0.0, max=1.0, min_open=True,
                         max_open=True)
    budgets = [as_float("budget factor", f) for f in as_list("budgets", budgets)]  # empty: a clear error
    start = round(swa_start * budget)
    if not 1 <= start < budget:
        raise ValueError(f"swa_start={swa_start} of budget={budget} gives SWA start epoch {start}; "
                         f"expected 1 <= start < budget (use a larger budget)")
    ends = {}
    for f in budgets:
        e = f * budget
        if not math.isclose(e, round(e)) or round(e) <= start:
            raise ValueError(f"budget factor {f!r} x budget {budget} = {e:g} epochs: expected a whole number of "
                             f"epochs larger than the SWA start epoch {start}")
        ends[float(f)] = int(round(e))
    return {"start": start, "ends": ends}


class _ChannelsLast:
    """The batches of ``loader`` with 4-d image inputs in channels-last memory order.

    On a CPU, convolutions read such inputs 15-25% faster (measured on the kit's CNNs with one thread); the
    numbers differ from the contiguous layout's only by float rounding. A copy copies the loader underneath (the
    kit's TensorLoader then keeps its own position in the shuffling).
    """

    def __init__(self, loader: Iterable):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            if isinstance(x, torch.Tensor) and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def __copy__(self):
        return _ChannelsLast(copy.copy(self.loader))


def _train_loader(train: Iterable, device: torch.device) -> Iterable:
    return _ChannelsLast(train) if device.type == "cpu" and not isinstance(train, _ChannelsLast) else train


def _sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameters to optimise: is everything frozen?")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class PaperSchedule(Callback):
    """SGD's learning rate ``lr * sgd_lr_factor(progress over budget epochs)``, set before every step.

    ``stop_epoch`` (default: never): from that epoch on (counted from 0) the rate is left to others (``SWALR``).
    ``epoch_offset``: epochs of the same run done before this ``fit`` call (when resuming a :class:`Checkpoint`);
    every epoch number here counts the whole run.
    """

    def __init__(self, lr: float, budget: int, *, final_ratio: float = 0.01, stop_epoch: int | None = None,
                 epoch_offset: int = 0):
        self.lr = as_float("lr", lr, min=0.0, min_open=True)
        self.budget = as_int("budget (epochs)", budget, min=1)
        self.final_ratio = as_float("final_ratio", final_ratio, min=0.0, max=1.0, min_open=True)
        self.stop_epoch = math.inf if stop_epoch is None else as_int("stop_epoch", stop_epoch, min=0)
        self.epoch_offset = as_int("epoch_offset", epoch_offset, min=0)

    def _set(self, state, step: int):
        progress = step / (self.budget * state.batches_per_epoch)
        for g in state.optimizer.param_groups:
            g["lr"] = self.lr * sgd_lr_factor(progress, self.final_ratio)

    def on_fit_start(self, state):
        if self.epoch_offset < self.stop_epoch:
            self._set(state, self.epoch_offset * state.batches_per_epoch)

    def on_batch_end(self, state):  # the rate of the next step
        if state.epoch + self.epoch_offset < self.stop_epoch:
            self._set(state, self.epoch_offset * state.batches_per_epoch + state.step)


class SWALRCallback(Callback):
    """From epoch ``start`` on (counted from 0 over the whole run), ``SWALR`` takes the learning rate to ``swa_lr``.

    It anneals linearly from the current rate over ``anneal_epochs`` epochs, stepped after every batch, then
    holds ``swa_lr`` (``anneal_epochs=0``: at once). ``epoch_offset`` as for :class:`PaperSchedule`.
    """

    def __init__(self, swa_lr: float, start: int, *, anneal_epochs: int = 1, epoch_offset: int = 0):
        self.swa_lr = as_float("swa_lr", swa_lr, min=0.0, min_open=True)
        self.start = as_int("start", start, min=0)
        self.anneal_epochs = as_int("anneal_epochs", anneal_epochs, min=0)
        self.epoch_offset = as_int("epoch_offset", epoch_offset, min=0)
        self.scheduler: SWALR | None = None

    def on_epoch_start(self, state):
        if self.scheduler is None and state.epoch + self.epoch_offset >= self.start:
            self.scheduler = SWALR(state.optimizer, swa_lr=self.swa_lr, anneal_strategy="linear",
                                   anneal_epochs=self.anneal_epochs * state.batches_per_epoch)

    def on_batch_end(self, state):
        if self.scheduler is not None:
            self.scheduler.step()
