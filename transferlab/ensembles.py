"""Ensembles of snapshots from one training run, next to SWA: averaging predictions vs averaging weights.

A cyclic learning rate and a snapshot at the end of each cycle, where the rate is smallest, give several good
models for the training cost of one: *snapshot ensembles* (Huang et al., 2017: long cosine cycles from the
start of training) and *fast geometric ensembles*, FGE (Garipov et al., 2018: short cycles after a
pretraining phase, the snapshots staying in one basin). Their predictions are averaged, so every prediction
costs one forward pass per snapshot. SWA (Izmailov et al., 2018) averages the same snapshots' *weights*
instead: one model, one forward pass; the paper's claim is that it approximates FGE.

- :func:`cyclic_lr` is the paper's cyclic schedule; :class:`CyclicLR` sets it during ``fit``;
  :class:`Snapshots` keeps the model at the end of each cycle;
- :func:`resume_cyclic` continues an SGD :class:`~transferlab.swa.Checkpoint` with cycles, keeping the snapshots
  (for the ensemble) and averaging their weights at the end of each cycle (cyclic SWA) in the same run;
- :func:`model_probs`, :func:`ensemble_metrics`, :func:`evaluate_ensemble` average predictions;
  :func:`time_per_image` measures what an ensemble costs at inference.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ._validate import as_float, as_int, as_list
from .checks import CheckResult, exercise_solution
from .device import model_device
from .swa import Checkpoint, SWACallback
from .train import Callback, forward, to_device

__all__ = ["cyclic_lr", "CyclicLR", "Snapshots", "CyclicRun", "resume_cyclic", "model_probs", "ensemble_metrics",
           "evaluate_ensemble", "time_per_image", "check_cyclic_lr", "check_ensemble"]


def cyclic_lr(i: int, cycle_steps: int, lr_max: float, lr_min: float) -> float:
    """The SWA paper's cyclic learning rate at step ``i`` (counted from 1): within each cycle of ``cycle_steps``
    steps it falls linearly from ``lr_max`` to ``lr_min``, ``(1 - t) * lr_max + t * lr_min`` with
    ``t = ((i - 1) mod cycle_steps + 1) / cycle_steps``; the last step of a cycle runs at ``lr_min``.

    Examples
    --------
    >>> [round(cyclic_lr(i, 4, 0.1, 0.02), 3) for i in range(1, 7)]
    [0.08, 0.06, 0.04, 0.02, 0.08, 0.06]
    """
    i = as_int("i (steps, counted from 1)", i, min=1)
    cycle_steps = as_int("cycle_steps", cycle_steps, min=1)
    t = ((i - 1) % cycle_steps + 1) / cycle_steps
    return (1 - t) * lr_max + t * lr_min


class CyclicLR(Callback):
    """Sets :func:`cyclic_lr` before every step from epoch ``start`` on (epochs counted from 0 over the run).

    Cycles last ``cycle_epochs`` epochs; ``lrs`` records the rate of every step taken under the schedule.
    ``epoch_offset``: epochs of the run done before this ``fit`` call (see :class:`~transferlab.swa.PaperSchedule`).
    """

    def __init__(self, lr_max: float, lr_min: float, cycle_epochs: int, start: int = 0, *, epoch_offset: int = 0):
        self.lr_max = as_float("lr_max", lr_max, min=0.0, min_open=True)
        self.lr_min = as_float("lr_min", lr_min, min=0.0, max=self.lr_max)
        self.cycle_epochs = as_int("cycle_epochs", cycle_epochs, min=1)
        self.start = as_int("start", start, min=0)
        self.epoch_offset = as_int("epoch_offset", epoch_offset, min=0)
        self.lrs: list[float] = []

    def _set(self, state, i: int):
        lr = cyclic_lr(i, self.cycle_epochs * state.batches_per_epoch, self.lr_max, self.lr_min)
        for g in state.optimizer.param_groups:
            g["lr"] = lr

    def _step(self, state, batch: int) -> int:  # the step number (from 1) under the schedule of epoch/batch
        return (state.epoch + self.epoch_offset - self.start) * state.batches_per_epoch + batch + 1

    def on_epoch_start(self, state):
        if state.epoch + self.epoch_offset >= self.start:
            self._set(state, self._step(state, 0))

    def on_batch_end(self, state):
        if state.epoch + self.epoch_offset >= self.start:
            self.lrs.append(state.optimizer.param_groups[0]["lr"])  # the rate the step just taken used
            self._set(state, self._step(state, state.batch + 1))


class Snapshots(Callback):
    """Copies of the model at the end of epoch ``start`` and every ``every`` epochs after (counted from 1).

    ``models`` maps the epoch to the copy (weights and BN buffers as they were: an iterate SGD visited).
    """

    def __init__(self, start: int, every: int = 1, *, epoch_offset: int = 0):
        self.start = as_int("start (epochs, counted from 1)", start, min=1)
        self.every = as_int("every (epochs)", every, min=1)
        self.epoch_offset = as_int("epoch_offset", epoch_offset, min=0)
        self.models: dict[int, nn.Module] = {}

    def on_epoch_end(self, state):
        done = state.epoch + 1 + self.epoch_offset
        if done >= self.start and (done - self.start) % self.every == 0:
            self.models[done] = copy.deepcopy(state.model)


@dataclass
class CyclicRun:
    """What :func:`resume_cyclic` returns: the cycle-end snapshots, their weight averages, the rates used."""

    snapshots: dict[int, nn.Module]
    swa: dict[int, AveragedModel]
    lrs: list[float] = field(default_factory=list)

    def members(self, end: int) -> list[nn.Module]:
        """The snapshots taken up to epoch ``end``: the FGE ensemble at that budget."""
        return [m for e, m in sorted(self.snapshots.items()) if e <= end]


def resume_cyclic(ckpt: Checkpoint, *, lr_max: float, lr_min: float, cycle_epochs: int, ends: Iterable[int],
                  bn_data: Iterable | None = None, recompute_bn: bool = True, progress: bool = True,
                  desc: str = "cyclic") -> CyclicRun:
    """Continue ``ckpt`` with cycles of ``cycle_epochs`` epochs (:func:`cyclic_lr`), from one run three things.

    - a snapshot of the model at the end of each cycle (for an FGE / snapshot ensemble);
    - the running average of those snapshots' weights, updated at the end of each cycle (cyclic SWA) by
      :class:`~transferlab.swa.SWACallback`, read at each of ``ends`` (epochs in all), its BN statistics
      recomputed on ``bn_data`` (default: a copy of the training loader) unless ``recompute_bn=False``;
    - the learning rate of every step.

    Each end must close a cycle: ``(end - ckpt.epoch)`` a multiple of ``cycle_epochs``.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> from transferlab.swa import sgd_checkpoints
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> ck = sgd_checkpoints(create_model("kitnet_s", 10), task.loader("train", 20), budget=4, at=[2],
    ...                      progress=False)
    >>> run = resume_cyclic(ck[2], lr_max=0.02, lr_min=0.001, cycle_epochs=2, ends=[4, 6], progress=False)
    >>> sorted(run.snapshots), {e: int(m.n_averaged) for e, m in run.swa.items()}
    ([4, 6], {4: 1, 6: 2})
    """
    cycle_epochs = as_int("cycle_epochs", cycle_epochs, min=1)
    ends = sorted({as_int("ends (epochs)", e, min=ckpt.epoch + 1) for e in as_list("ends", ends)})
    bad = [e for e in ends if (e - ckpt.epoch) % cycle_epochs]
    if bad:
        raise ValueError(f"ends {bad} do not close a cycle: the run resumes after {ckpt.epoch} epochs with cycles of "
                         f"{cycle_epochs}, so ends must be {ckpt.epoch} + a multiple of {cycle_epochs}")
    model, opt, loader = ckpt.resume()
    first = ckpt.epoch + cycle_epochs
    schedule = CyclicLR(lr_max, lr_min, cycle_epochs, ckpt.epoch, epoch_offset=ckpt.epoch)
    snaps = Snapshots(first, cycle_epochs, epoch_offset=ckpt.epoch)
    bn = None if not recompute_bn else (copy.copy(loader) if bn_data is None else bn_data)
    averager = SWACallback(AveragedModel(model), first, every=cycle_epochs, keep=ends, bn_data=bn,
                           epoch_offset=ckpt.epoch, device=ckpt.device)
    ckpt._fit(model, opt, loader, ends[-1], [schedule, snaps, averager], progress, desc)
    return CyclicRun(snaps.models, {e: averager.kept[e] for e in ends}, schedule.lrs)


@torch.no_grad()
def model_probs(model: nn.Module, data: Iterable, *, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probabilities [N, C], labels [N])``: the softmax of ``model`` (eval mode) over every batch of ``data``.

    The model's train/eval mode is restored afterwards; results are on the CPU.

    Examples
    --------
    >>> p, y = model_probs(nn.Linear(2, 3), [(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))])
    >>> p.shape, torch.allclose(p.sum(1), torch.ones(4))
    (torch.Size([4, 3]), True)
    """
    device = model_device(model, device)
    was = model.training
    model.eval()
    probs, labels = [], []
    try:
        for x, y in data:
            out = forward(model, to_device(x, device))
            probs.append(F.softmax(out.float(), dim=-1).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was)
    if not probs:
        raise ValueError("model_probs() got no batches: the data is empty")
    return torch.cat(probs), torch.cat(labels)


def ensemble_metrics(probs: Sequence[torch.Tensor], labels: torch.Tensor) -> dict:
    """Accuracy and loss of the ensemble that averages its members' predicted probabilities.

    ``probs``: one ``[N, C]`` tensor of probabilities per member; ``labels``: ``[N]``. The ensemble predicts
    ``p = mean over members``; ``acc`` is the fraction where ``argmax p`` is the label, ``loss`` the mean of
    ``-log p[label]``. Returns ``{"acc", "loss", "n", "members"}``.

    Examples
    --------
    >>> p1, p2 = torch.tensor([[0.6, 0.4]]), torch.tensor([[0.2, 0.8]])  # mean [0.4, 0.6]: class 1
    >>> m = ensemble_metrics([p1, p2], torch.tensor([0])); m["acc"], round(m["loss"], 4)
    (0.0, 0.9163)
    """
    probs = as_list("probs", probs)
    shapes = {tuple(p.shape) for p in probs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"every member's probabilities must be one [N, C] tensor of the same shape, got {shapes}")
    p = torch.stack([torch.as_tensor(q, dtype=torch.float64) for q in probs]).mean(0)
    labels = torch.as_tensor(labels)
    if labels.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},), got {tuple(labels.shape)}")
    picked = p[torch.arange(len(labels)), labels]
    return {"acc": float((p.argmax(1) == labels).double().mean()), "loss": float(-picked.clamp_min(1e-12).log().mean()),
            "n": int(len(labels)), "members": len(probs)}


def evaluate_ensemble(models: Sequence[nn.Module], data: Iterable, *, device=None) -> dict:
    """:func:`ensemble_metrics` of ``models`` on ``data`` (one forward pass per member and image).

    Examples
    --------
    >>> batch = [(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))]
    >>> evaluate_ensemble([nn.Linear(2, 2), nn.Linear(2, 2)], batch)["members"]
    2
    """
    models = as_list("models", models)
    outs = [model_probs(m, data, device=device) for m in models]
    return ensemble_metrics([p for p, _ in outs], outs[0][1])


def time_per_image(models: Sequence[nn.Module], data: Iterable, *, device=None, repeats: int = 3) -> float:
    """Seconds per image for the ensemble of ``models`` to predict ``data`` (every member's forward pass).

    The best of ``repeats`` passes (the least disturbed by other work on the machine); wall-clock time, with
    CUDA synchronised.

    Examples
    --------
    >>> batch = [(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))]
    >>> time_per_image([nn.Linear(2, 2)], batch) > 0
    True
    """
    models = as_list("models", models)
    repeats = as_int("repeats", repeats, min=1)
    best = math.inf
    for _ in range(repeats):
        n = 0
        t0 = time.perf_counter()
        for m in models:
            p, _ = model_probs(m, data, device=device)
            n = len(p)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best / max(n, 1)


@exercise_solution("def $fn(i, cycle_steps, lr_max, lr_min):\n"
                   "    t = ((i - 1) % cycle_steps + 1) / cycle_steps  # 1 at the cycle's last step\n"
                   "    return (1 - t) * lr_max + t * lr_min", answer="fn")
def check_cyclic_lr(fn: Callable | None) -> CheckResult:
    """Exercise check: does ``fn(i, cycle_steps, lr_max, lr_min)`` give the SWA paper's cyclic learning rate?

    Compared with :func:`cyclic_lr` over three cycles; the message says where it first differs and how.

    Examples
    --------
    >>> bool(check_cyclic_lr(cyclic_lr))
    True
    """
    q = "cyclic learning rate"
    if fn is None:
        return CheckResult.general(False, f"{q}: no answer yet — replace None with a function (i, cycle_steps, "
                                          f"lr_max, lr_min)")
    for i in range(1, 3 * 5 + 1):
        want = cyclic_lr(i, 5, 0.1, 0.01)
        try:
            got = float(fn(i, 5, 0.1, 0.01))
        except Exception as err:  # noqa: BLE001 - the learner's code: report it
            return CheckResult.general(False, f"{q}: your function raised {type(err).__name__}: {err}")
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            hint = ("the last step of a cycle must run at lr_min (t = 1 there)" if i % 5 == 0 else
                    "t counts steps within the cycle: ((i - 1) mod cycle_steps + 1) / cycle_steps")
            said = f"{q}: at step {i} (cycle of 5 steps, lr 0.1 to 0.01) you give {got:.4g}"
            return CheckResult(False, f"{said}, expected {want:.4g}; {hint}", graded_message=f"{said}, which is not "
                               f"the cyclic rate; {hint}")
    return CheckResult(True, f"{q}: right over three cycles (the rate falls from lr_max to lr_min, then restarts)")


@exercise_solution("def $fn(probs):\n    import torch\n\n    return torch.stack(probs).mean(0).argmax(1)  # average "
                   "the probabilities, then the most probable class", answer="fn")
def check_ensemble(fn: Callable | None) -> CheckResult:
    """Exercise check: does ``fn(list of [N, C] probability tensors)`` return the ensemble's class predictions?

    The ensemble averages probabilities; checked on a case where a majority vote of the members would differ.

    Examples
    --------
    >>> bool(check_ensemble(lambda probs: torch.stack(probs).mean(0).argmax(1)))
    True
    """
    q = "ensemble prediction"
    if fn is None:
        return CheckResult.general(False, f"{q}: no answer yet — replace None with a function (list of "
                                          f"probabilities) -> predicted classes")
    # three members, one image: two weakly for class 0, one strongly for class 1. Majority vote says 0, the mean
    # probability says 1.
    probs = [torch.tensor([[0.55, 0.45]]), torch.tensor([[0.55, 0.45]]), torch.tensor([[0.05, 0.95]])]
    try:
        got = torch.as_tensor(fn([p.clone() for p in probs])).reshape(-1)
    except Exception as err:  # noqa: BLE001 - the learner's code: report it
        return CheckResult.general(False, f"{q}: your function raised {type(err).__name__}: {err}")
    if got.numel() != 1 or got.is_floating_point() and not torch.equal(got, got.round()):
        return CheckResult.general(False, f"{q}: expected one class index per image, got {got.tolist()}")
    if int(got[0]) != int(torch.stack(probs).mean(0).argmax(1)):
        said = f"{q}: you predict class {int(got[0])}"
        return CheckResult(False, f"{said}; the mean probability of class 1 is {(0.45 + 0.45 + 0.95) / 3:.2f}, so "
                                  f"the ensemble predicts 1 (a majority vote of the members would say 0: average the "
                                  f"probabilities, not the votes)",
                           graded_message=f"{said} for an image where the members disagree, which is not the "
                                          f"ensemble's prediction (an ensemble combines its members' probabilities)")
    return CheckResult(True, f"{q}: right: the mean of the members' probabilities, then the most probable class")
