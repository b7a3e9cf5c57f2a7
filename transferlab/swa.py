"""Stochastic Weight Averaging (Izmailov et al., 2018) over ``torch.optim.swa_utils``.

The recipe, as the paper gives it:

1. Train with SGD and the usual decaying learning rate for most of the budget (here: until ``swa_start``,
   75% of the SGD budget ``B``; up to that point the SWA run *is* the SGD run).
2. Switch to a constant (or cyclic) learning rate with :class:`~torch.optim.swa_utils.SWALR`, and at the end
   of each epoch fold the current weights into the running average
   ``w_swa <- (w_swa * n_models + w) / (n_models + 1)``
   (:class:`~torch.optim.swa_utils.AveragedModel` keeps it).
3. Before using the average, recompute its BatchNorm statistics with one pass over the training data
   (:func:`~torch.optim.swa_utils.update_bn`): the averaged weights never produced activations during
   training, so the running statistics of any SGD iterate do not belong to them.

``train_sgd`` is the baseline (the paper's schedule: constant for half the budget, linear decay to 1% by 90%,
then constant); ``train_swa`` runs the SWA recipe once and returns the averaged model at several budgets
(1, 1.25 and 1.5 ``B`` by default). One run serves all budgets because after ``swa_start`` the learning rate
no longer depends on where the run ends.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from ._validate import as_float, as_int, as_list
from .bn_pin import is_batchnorm
from .checks import CheckResult, exercise_solution
from .device import model_device, resolve_device, seeded
from .train import Callback, History, TrainState, fit

__all__ = ["sgd_lr_factor", "swa_epochs", "train_sgd", "train_swa", "bn_update", "averaged_module",
           "check_running_average"]


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
    """Epoch counts of the SWA experiment: ``{"start": epoch SWA takes over, "ends": {factor: epochs}}``.

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


def _sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameters to optimise: is everything frozen?")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class _PaperSchedule(Callback):
    """Sets the SGD learning rate every step from :func:`sgd_lr_factor` over ``epochs`` (until ``stop_epoch``)."""

    def __init__(self, lr: float, epochs: int, final_ratio: float, stop_epoch: int | None = None):
        self.lr, self.epochs, self.final_ratio = lr, epochs, final_ratio
        self.stop_epoch = epochs if stop_epoch is None else stop_epoch

    def _set(self, state: TrainState, step: int):
        progress = step / (self.epochs * state.batches_per_epoch)
        for g in state.optimizer.param_groups:
            g["lr"] = self.lr * sgd_lr_factor(progress, self.final_ratio)

    def on_fit_start(self, state):
        self._set(state, 0)

    def on_batch_end(self, state):
        if state.epoch < self.stop_epoch:
            self._set(state, state.step)


def train_sgd(model: nn.Module, train: Iterable, *, epochs: int, lr: float = 0.05, momentum: float = 0.9,
              weight_decay: float = 5e-4, final_ratio: float = 0.01, device=None, seed: int | None = None,
              callbacks: Sequence[Callback] = (), progress: bool = True, desc: str = "SGD") -> History:
    """The SGD baseline: momentum SGD with the paper's schedule over ``epochs`` (trains ``model`` in place).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> h = train_sgd(create_model("kitnet_s", 10), task.loader("train", 20), epochs=2, progress=False)
    >>> len(h)
    2
    """
    opt = _sgd(model.to(resolve_device(device)), lr, momentum, weight_decay)
    return fit(model, train, epochs=epochs, lr=lr, optimizer=opt, schedule=None, device=device, seed=seed,
               callbacks=[_PaperSchedule(lr, epochs, final_ratio), *callbacks], progress=progress, desc=desc)


def bn_update(swa_model: nn.Module, data: Iterable, *, device=None) -> nn.Module:
    """Recompute BatchNorm statistics of ``swa_model`` with one pass over ``data`` (``update_bn``); returns it.

    ``data`` yields ``(x, y)`` batches (the kit's loaders); ``update_bn`` forwards ``batch[0]``.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import KitNet
    >>> avg = AveragedModel(KitNet(10, widths=(8,)))
    >>> _ = bn_update(avg, target_task(2, n_test_per_class=1, size=16).loader("train", 10))
    >>> int(avg.module.stem[1].num_batches_tracked)
    2
    """
    device = model_device(swa_model, device)
    bns = [m for m in swa_model.modules() if is_batchnorm(m)]
    saved = [{k: v.detach().clone() for k, v in m.named_buffers()} for m in bns]
    seen = [0]

    def counted():
        for batch in data:
            seen[0] += 1
            yield batch

    update_bn(counted(), swa_model, device=device)
    if bns and seen[0] == 0:  # update_bn reset the statistics and saw nothing: mean 0, var 1 would be a lie
        for m, state in zip(bns, saved, strict=True):
            for k, v in state.items():
                getattr(m, k).copy_(v)
        raise ValueError("bn_update() got no batches: the BatchNorm statistics cannot be recomputed from nothing "
                         "(they were left as they were); pass the training loader")
    return swa_model


def averaged_module(swa_model: AveragedModel) -> nn.Module:
    """The plain network inside an ``AveragedModel`` (for code that expects the kit's model interface).

    Examples
    --------
    >>> type(averaged_module(AveragedModel(nn.Linear(2, 2)))).__name__
    'Linear'
    """
    if not isinstance(swa_model, AveragedModel):
        raise TypeError(f"expected a torch.optim.swa_utils.AveragedModel, got {type(swa_model).__name__}")
    return swa_model.module


class _SWA(Callback):
    """Switches to SWALR at ``start`` and averages at the end of every later epoch; keeps copies at ``ends``."""

    def __init__(self, swa_model: AveragedModel, swa_lr: float, start: int, ends: dict, anneal_epochs: int,
                 bn_data, device):
        self.swa_model, self.swa_lr, self.start, self.anneal_epochs = swa_model, swa_lr, start, anneal_epochs
        self.ends = {e: f for f, e in ends.items()}
        self.bn_data, self.device = bn_data, device
        self.scheduler: SWALR | None = None
        self.results: dict[float, AveragedModel] = {}

    def on_epoch_start(self, state):
        if state.epoch == self.start and self.scheduler is None:
            self.scheduler = SWALR(state.optimizer, swa_lr=self.swa_lr, anneal_epochs=self.anneal_epochs,
                                   anneal_strategy="linear")

    def on_epoch_end(self, state):
        if state.epoch < self.start:
            return
        self.swa_model.update_parameters(state.model)  # w_swa <- (w_swa * n + w) / (n + 1)
        self.scheduler.step()
        done = state.epoch + 1
        if done in self.ends:
            snap = copy.deepcopy(self.swa_model)
            if self.bn_data is not None:
                bn_update(snap, self.bn_data, device=self.device)
            self.results[self.ends[done]] = snap


def train_swa(model: nn.Module, train: Iterable, *, budget: int, lr: float = 0.05, swa_lr: float = 0.01,
              budgets: Sequence[float] = (1.0, 1.25, 1.5), swa_start: float = 0.75, anneal_epochs: int = 1,
              momentum: float = 0.9, weight_decay: float = 5e-4, final_ratio: float = 0.01,
              bn_data: Iterable | None = None, recompute_bn: bool = True, device=None, seed: int | None = None,
              callbacks: Sequence[Callback] = (), progress: bool = True,
              desc: str = "SWA") -> tuple[dict[float, AveragedModel], History]:
    """Run the SWA recipe once; return ``({budget factor: AveragedModel with BN recomputed}, history)``.

    Up to ``swa_start * budget`` epochs this is :func:`train_sgd` with ``epochs=budget`` (the same schedule
    and, for the same seed and loader, the same iterates). Then :class:`SWALR` anneals linearly over
    ``anneal_epochs`` epochs to ``swa_lr`` and holds it, and the weights are averaged at the end of every
    epoch. At ``factor * budget`` epochs for each factor in ``budgets`` a copy of the average gets its
    BatchNorm statistics recomputed on ``bn_data`` (default: ``train``) and is returned; with
    ``recompute_bn=False`` the copies keep the BN statistics of the SGD iterate they were taken at (what you get
    if you forget ``update_bn``; call :func:`bn_update` yourself). ``model`` is left as the last SGD iterate.
    Extra ``callbacks`` run after the averaging step of each epoch.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> out, h = train_swa(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, progress=False)
    >>> sorted(out), [int(m.n_averaged) for m in out.values()]
    ([1.0, 1.25, 1.5], [1, 2, 3])
    """
    plan = swa_epochs(budget, budgets, swa_start)
    swa_lr = as_float("swa_lr", swa_lr, min=0.0, min_open=True)
    anneal_epochs = as_int("anneal_epochs", anneal_epochs, min=1)
    device = resolve_device(device)
    model.to(device)
    opt = _sgd(model, lr, momentum, weight_decay)
    swa_model = AveragedModel(model)  # use_buffers=False: BN buffers follow the live model until update_bn
    # a shallow copy of the kit's TensorLoader has its own epoch counter, so the BN pass does not shift the
    # shuffling of later training epochs (for other loaders pass bn_data to be sure)
    bn = None if not recompute_bn else (copy.copy(train) if bn_data is None else bn_data)
    cb = _SWA(swa_model, swa_lr, plan["start"], plan["ends"], anneal_epochs, bn, device)
    hist = fit(model, train, epochs=max(plan["ends"].values()), lr=lr, optimizer=opt, schedule=None, device=device,
               seed=seed, callbacks=[_PaperSchedule(lr, budget, final_ratio, stop_epoch=plan["start"]), cb, *callbacks],
               progress=progress, desc=desc)
    return dict(sorted(cb.results.items())), hist


@exercise_solution("def $fn(w_swa, w, n_models):\n    return (w_swa * n_models + w) / (n_models + 1)", answer="fn")
def check_running_average(fn) -> CheckResult:
    """Exercise check: does ``fn(w_swa, w, n_models)`` compute the SWA running average?

    ``fn`` gets the current average, the new weights and the number of models averaged so far, and returns
    the new average. It is compared with :class:`~torch.optim.swa_utils.AveragedModel` over 5 random
    snapshots. Returns a :class:`~transferlab.checks.CheckResult` that says where it went wrong, if it did.

    Examples
    --------
    >>> bool(check_running_average(lambda w_swa, w, n: (w_swa * n + w) / (n + 1)))
    True
    """
    question = "SWA running average"
    gen = torch.Generator().manual_seed(0)
    with seeded(0):  # nn.Linear's init and the learner's fn draw from a private stream
        net = nn.Linear(4, 3)
        ref = AveragedModel(net)
        avg = None
        for n in range(5):
            with torch.no_grad():
                for p in net.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen))
            ref.update_parameters(net)
            w = torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone()
            try:
                avg = w.clone() if avg is None else torch.as_tensor(fn(avg, w, n)).float()
            except Exception as err:  # noqa: BLE001 - the learner's code: report, do not crash the check
                return CheckResult.general(False, f"{question}: your function raised {type(err).__name__}: {err}")
            expect = torch.nn.utils.parameters_to_vector(ref.module.parameters()).detach()
            if avg.shape != expect.shape:
                return CheckResult.general(False, f"{question}: after {n + 1} snapshots your average has shape "
                                                  f"{tuple(avg.shape)}, expected {tuple(expect.shape)}")
            if not torch.allclose(avg, expect, atol=1e-5):
                return CheckResult.general(False, f"{question}: after {n + 1} snapshots your average differs from "
                                                  f"AveragedModel's by {(avg - expect).abs().max().item():.3g}; "
                                                  f"remember that n_models counts the models already in the average")
    return CheckResult(True, f"{question}: right, it matches AveragedModel over 5 snapshots")
