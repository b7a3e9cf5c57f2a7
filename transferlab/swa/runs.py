"""SGD and SWA runs: the recipe in one call (``train_sgd``, ``train_swa``) and runs that share their beginning
(``Checkpoint``, ``sgd_checkpoints``, ``resume_sgd``, ``resume_swa``)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from .._validate import as_float, as_int, as_list
from ..device import resolve_device
from ..train import Callback, History, fit
from .averaging import SWACallback
from .schedule import PaperSchedule, SWALRCallback, _sgd, _train_loader, swa_epochs

__all__ = ["train_sgd", "train_swa", "Checkpoint", "sgd_checkpoints", "resume_sgd", "resume_swa"]


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
    device = resolve_device(device)
    opt = _sgd(model.to(device), lr, momentum, weight_decay)
    return fit(model, _train_loader(train, device), epochs=epochs, lr=lr, optimizer=opt, schedule=None, device=device,
               seed=seed, callbacks=[PaperSchedule(lr, epochs, final_ratio=final_ratio), *callbacks],
               progress=progress, desc=desc)


def _bn_source(train, bn_data, recompute_bn):
    # a shallow copy of the kit's TensorLoader has its own epoch counter, so the BN pass does not shift the
    # shuffling of later training epochs (for other loaders pass bn_data to be sure)
    return None if not recompute_bn else (copy.copy(train) if bn_data is None else bn_data)


def train_swa(model: nn.Module, train: Iterable, *, budget: int, lr: float = 0.05, swa_lr: float = 0.01,
              budgets: Sequence[float] = (1.0, 1.25, 1.5), swa_start: float = 0.75, anneal_epochs: int = 1,
              momentum: float = 0.9, weight_decay: float = 5e-4, final_ratio: float = 0.01,
              bn_data: Iterable | None = None, recompute_bn: bool = True, device=None, seed: int | None = None,
              callbacks: Sequence[Callback] = (), progress: bool = True,
              desc: str = "SWA") -> tuple[dict[float, AveragedModel], History]:
    """Run the SWA recipe once; return ``({budget factor: AveragedModel with BN recomputed}, history)``.

    For its first ``swa_start * budget`` epochs this is :func:`train_sgd` with ``epochs=budget`` (the same
    schedule and, for the same seed and loader, the same iterates); the weights after them are the first ones
    averaged. Then :class:`SWALR` anneals linearly over ``anneal_epochs`` epochs to ``swa_lr`` and holds it, and
    the weights are averaged at the end of every epoch. At ``factor * budget`` epochs for each factor in
    ``budgets`` a copy of the average gets its BatchNorm statistics recomputed on ``bn_data`` (default:
    ``train``) and is returned; with ``recompute_bn=False`` the copies keep the BN statistics of the SGD iterate
    they were taken at (what you get if you forget ``update_bn``; call :func:`bn_update` yourself). ``model`` is
    left as the last SGD iterate. Extra ``callbacks`` run after the averaging step of each epoch.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> out, h = train_swa(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, progress=False)
    >>> sorted(out), [int(m.n_averaged) for m in out.values()]
    ([1.0, 1.25, 1.5], [2, 3, 4])
    """
    plan = swa_epochs(budget, budgets, swa_start)
    swa_lr = as_float("swa_lr", swa_lr, min=0.0, min_open=True)
    anneal_epochs = as_int("anneal_epochs", anneal_epochs, min=1)
    device = resolve_device(device)
    model.to(device)
    opt = _sgd(model, lr, momentum, weight_decay)
    swa_model = AveragedModel(model)  # use_buffers=False: BN buffers follow the live model until update_bn
    cb = SWACallback(swa_model, plan["start"], keep=plan["ends"].values(),
                     bn_data=_bn_source(train, bn_data, recompute_bn), device=device)
    schedule = [PaperSchedule(lr, budget, final_ratio=final_ratio, stop_epoch=plan["start"]),
                SWALRCallback(swa_lr, plan["start"], anneal_epochs=anneal_epochs)]
    hist = fit(model, _train_loader(train, device), epochs=max(plan["ends"].values()), lr=lr, optimizer=opt,
               schedule=None, device=device, seed=seed, callbacks=[*schedule, cb, *callbacks], progress=progress,
               desc=desc)
    return {f: cb.kept[e] for f, e in plan["ends"].items()}, hist


@dataclass(frozen=True)
class Checkpoint:
    """An SGD run with the paper's schedule over ``budget`` epochs, stopped after ``epoch`` epochs.

    Holds private copies of the weights (and BN buffers), the optimizer's state (momentum buffers, learning rate)
    and the training loader at its position. :meth:`resume` hands out fresh copies, so one checkpoint can be
    continued in several ways (:func:`resume_sgd`, :func:`resume_swa`, :func:`transferlab.ensembles.resume_cyclic`).
    """

    model: nn.Module
    optimizer_state: dict
    loader: Iterable
    epoch: int
    budget: int
    lr: float
    momentum: float
    weight_decay: float
    final_ratio: float
    seed: int | None
    device: torch.device

    def resume(self) -> tuple[nn.Module, torch.optim.SGD, Iterable]:
        """``(model, optimizer, loader)``: copies to continue the run with (the checkpoint is left as it is)."""
        model = copy.deepcopy(self.model)
        opt = _sgd(model, self.lr, self.momentum, self.weight_decay)
        opt.load_state_dict(copy.deepcopy(self.optimizer_state))  # deep: branches must not share momentum buffers
        return model, opt, copy.copy(self.loader)

    def _fit(self, model, opt, loader, epochs: int, callbacks, progress: bool, desc: str) -> History:
        if epochs <= self.epoch:
            raise ValueError(f"the run is resumed after {self.epoch} epochs; expected more epochs in all, got {epochs}")
        return fit(model, loader, epochs=epochs - self.epoch, lr=self.lr, optimizer=opt, schedule=None,
                   device=self.device, seed=self.seed, callbacks=callbacks, progress=progress, desc=desc)


def sgd_checkpoints(model: nn.Module, train: Iterable, *, budget: int, at: Iterable[int], lr: float = 0.05,
                    momentum: float = 0.9, weight_decay: float = 5e-4, final_ratio: float = 0.01, device=None,
                    seed: int | None = None, progress: bool = True, desc: str = "SGD") -> dict[int, Checkpoint]:
    """Train SGD with the paper's schedule over ``budget`` epochs up to ``max(at)`` epochs; a checkpoint at each.

    Returns ``{epochs done: Checkpoint}``. ``model`` is trained in place (to ``max(at)`` epochs). Resume a
    checkpoint with :func:`resume_sgd` or :func:`resume_swa`; ``train`` should be the kit's ``TensorLoader``
    (a copy of it resumes its shuffling where it stopped; other loaders restart theirs).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> ck = sgd_checkpoints(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, at=[2, 3],
    ...                      progress=False)
    >>> sorted(ck), ck[3].epoch
    ([2, 3], 3)
    """
    budget = as_int("budget (epochs)", budget, min=1)
    at = sorted({as_int("at (epochs)", a, min=1) for a in as_list("at", at)})
    device = resolve_device(device)
    model.to(device)
    opt = _sgd(model, lr, momentum, weight_decay)
    train = _train_loader(train, device)
    out: dict[int, Checkpoint] = {}

    class _Keep(Callback):
        def on_epoch_end(self, state):
            done = state.epoch + 1
            if done in at:
                out[done] = Checkpoint(copy.deepcopy(model), copy.deepcopy(opt.state_dict()), copy.copy(train), done,
                                       budget, lr, momentum, weight_decay, final_ratio, seed, device)

    fit(model, train, epochs=at[-1], lr=lr, optimizer=opt, schedule=None, device=device, seed=seed,
        callbacks=[PaperSchedule(lr, budget, final_ratio=final_ratio), _Keep()], progress=progress, desc=desc)
    return out


def resume_sgd(ckpt: Checkpoint, *, epochs: int, budget: int | None = None, callbacks: Sequence[Callback] = (),
               progress: bool = True, desc: str = "SGD") -> nn.Module:
    """Continue ``ckpt``'s SGD run to ``epochs`` epochs in all; returns the model (the checkpoint is unchanged).

    ``budget`` (default: the checkpoint's) is the length of the schedule from here on. Another budget is allowed
    while the checkpoint lies in the constant first half of both schedules: then the result is the run that had
    that budget from the start (SGD at 1.25 ``B`` branched off the 1 ``B`` run at ``B / 2``).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> ck = sgd_checkpoints(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, at=[2],
    ...                      progress=False)
    >>> _ = resume_sgd(ck[2], epochs=5, budget=5, progress=False)
    """
    budget = ckpt.budget if budget is None else as_int("budget (epochs)", budget, min=1)
    if budget != ckpt.budget and ckpt.epoch > min(budget, ckpt.budget) / 2:
        raise ValueError(f"a checkpoint after {ckpt.epoch} epochs of a {ckpt.budget}-epoch schedule cannot be resumed "
                         f"with a {budget}-epoch schedule: the two differ before epoch {ckpt.epoch} (they agree only "
                         f"in their constant first half, up to {min(budget, ckpt.budget) / 2:g} epochs)")
    model, opt, loader = ckpt.resume()
    ckpt._fit(model, opt, loader, as_int("epochs", epochs, min=1),
              [PaperSchedule(ckpt.lr, budget, final_ratio=ckpt.final_ratio, epoch_offset=ckpt.epoch), *callbacks],
              progress, desc)
    return model


def resume_swa(ckpt: Checkpoint, *, swa_lr: float, ends: Iterable[int], anneal_epochs: int = 1,
               bn_data: Iterable | None = None, recompute_bn: bool = True, callbacks: Sequence[Callback] = (),
               progress: bool = True, desc: str = "SWA") -> dict[int, AveragedModel]:
    """SWA from a checkpoint: ``{epochs in all: AveragedModel}`` for each of ``ends``.

    The checkpoint's weights are the first ones averaged (SWA starts after ``ckpt.epoch`` epochs), then the
    rate goes to ``swa_lr`` as in :func:`train_swa`, whose result this equals for ``swa_start * budget ==
    ckpt.epoch``. BN statistics as in :func:`train_swa` (``recompute_bn=False``: left as the iterate's).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> ck = sgd_checkpoints(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, at=[3],
    ...                      progress=False)
    >>> out = resume_swa(ck[3], swa_lr=0.01, ends=[4, 6], progress=False)
    >>> {e: int(m.n_averaged) for e, m in out.items()}
    {4: 2, 6: 4}
    """
    ends = sorted({as_int("ends (epochs)", e, min=ckpt.epoch + 1) for e in as_list("ends", ends)})
    model, opt, loader = ckpt.resume()
    swa_model = AveragedModel(model)
    cb = SWACallback(swa_model, ckpt.epoch, keep=ends, bn_data=_bn_source(loader, bn_data, recompute_bn),
                     epoch_offset=ckpt.epoch, device=ckpt.device)
    ckpt._fit(model, opt, loader, ends[-1],
              [SWALRCallback(swa_lr, ckpt.epoch, anneal_epochs=anneal_epochs, epoch_offset=ckpt.epoch), cb,
               *callbacks], progress, desc)
    return {e: cb.kept[e] for e in ends}
