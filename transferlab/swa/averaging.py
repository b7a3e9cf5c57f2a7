"""The averaging side of SWA: the callback that folds weights into an ``AveragedModel``, BatchNorm recomputation,
and the exercise check of the running average."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from .._validate import as_int, as_list
from ..bn_pin import is_batchnorm
from ..checks import CheckResult, exercise_solution
from ..device import model_device, seeded
from ..train import Callback

__all__ = ["SWACallback", "bn_update", "averaged_module", "check_running_average"]


class SWACallback(Callback):
    """SWA as a ``fit`` callback (the fast.ai contributor's design, averaging done by ``AveragedModel``).

    At the end of every epoch from epoch ``swa_start`` on (epochs counted from 1 over the whole run, as fast.ai
    counts them: ``swa_start=12`` averages the weights after 12, 13, 14... epochs), and then every ``every``
    epochs (a cycle length, for averaging at the end of each cycle), the live weights are folded into
    ``swa_model`` with ``update_parameters``. When ``fit`` ends, the BatchNorm statistics of ``swa_model`` are
    recomputed with one pass over ``bn_data`` (if given).

    ``keep``: epochs after which a copy of the average is kept in ``self.kept`` (its BN statistics recomputed on
    ``bn_data`` too); the copy for the last epoch of the fit is ``swa_model`` itself. ``epoch_offset``: epochs of
    the run done before this ``fit`` call (resuming a :class:`Checkpoint`); when the run is resumed at an
    averaging epoch, the weights it resumes from are averaged first.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> from transferlab.train import fit
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> model = create_model("kitnet_s", 10); cb = SWACallback(AveragedModel(model), swa_start=2)
    >>> _ = fit(model, task.loader("train", 20), epochs=4, optimizer="sgd", lr=0.05, schedule=None,
    ...         callbacks=[cb], progress=False)
    >>> int(cb.swa_model.n_averaged)  # the weights after epochs 2, 3 and 4
    3
    """

    def __init__(self, swa_model: AveragedModel, swa_start: int, *, every: int = 1, keep: Iterable[int] = (),
                 bn_data: Iterable | None = None, epoch_offset: int = 0, device=None):
        if not isinstance(swa_model, AveragedModel):
            raise TypeError(f"swa_model must be a torch.optim.swa_utils.AveragedModel, got {type(swa_model).__name__}")
        self.swa_model = swa_model
        self.swa_start = as_int("swa_start (epochs, counted from 1)", swa_start, min=1)
        self.every = as_int("every (epochs)", every, min=1)
        self.keep = {as_int("keep (epochs)", k, min=1) for k in as_list("keep", keep, allow_empty=True)}
        self.epoch_offset = as_int("epoch_offset", epoch_offset, min=0)
        self.bn_data, self.device = bn_data, device
        self.kept: dict[int, AveragedModel] = {}
        self.averaged_at: list[int] = []  # the epochs whose weights are in the average

    def due(self, done: int) -> bool:
        """Whether the weights after ``done`` epochs of the run are averaged."""
        return done >= self.swa_start and (done - self.swa_start) % self.every == 0

    def _fold(self, state, done: int, last: bool):
        if self.due(done):
            self.swa_model.update_parameters(state.model)  # w_swa <- (w_swa * n + w) / (n + 1)
            self.averaged_at.append(done)
        if done in self.keep and not last:
            snap = copy.deepcopy(self.swa_model)
            if self.bn_data is not None and self.averaged_at:
                bn_update(snap, self.bn_data, device=self.device)
            self.kept[done] = snap

    def on_fit_start(self, state):
        if self.epoch_offset:
            self._fold(state, self.epoch_offset, last=False)

    def on_epoch_end(self, state):
        done = state.epoch + 1 + self.epoch_offset
        self._fold(state, done, last=done == state.epochs + self.epoch_offset)

    def on_fit_end(self, state):
        if self.bn_data is not None and self.averaged_at:
            bn_update(self.swa_model, self.bn_data, device=self.device)  # fast.ai's "fix batchnorm": one pass
        done = state.epoch + 1 + self.epoch_offset
        if done in self.keep and done not in self.kept:
            self.kept[done] = self.swa_model


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
    if fn is None:
        return CheckResult.general(False, f"{question}: no answer yet — replace None with a function (w_swa, w, "
                                          f"n_models) returning the new average")
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
                out = w.clone() if avg is None else fn(avg, w, n)
                if out is None:
                    return CheckResult.general(False, f"{question}: your function returned None; return the new "
                                                      f"average")
                avg = torch.as_tensor(out).float()
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
