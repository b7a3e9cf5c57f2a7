"""Training and evaluation: the plumbing every lesson shares, so that the notebooks show only the lesson.

``fit`` trains with tqdm progress, records a per-epoch :class:`History`, calls callbacks (the widgets'
TrainingMonitor is one), handles the device, and uses bf16 autocast on CUDA. Anything that is the lesson
(what to freeze, which learning rate) is an argument, not hidden inside.

Batches are ``(x, y)`` pairs for every domain: ``x`` is a tensor (images) or a mapping of tensors (a tokenizer's
``input_ids``/``attention_mask``; the model is then called as ``model(**x)``), and a model may return logits or
an object with ``.logits`` (Hugging Face models). The default loss is cross-entropy over the last dimension with
label ``-100`` ignored, so sentence classification and token tagging need nothing more; other heads (span
extraction) pass ``loss_fn`` and ``metric``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import as_float, as_int, as_seed
from .batches import IGNORE_INDEX, accuracy_counts, check_labels, cross_entropy, forward, to_device
from .device import autocast, model_device, resolve_device, seeded
from .features import extract_features, fit_linear_probe

__all__ = [
    "History",
    "Callback",
    "TrainState",
    "fit",
    "evaluate",
    "extract_features",
    "make_optimizer",
    "fit_linear_probe",
    "IGNORE_INDEX",
    "cross_entropy",
    "accuracy_counts",
    "to_device",
    "forward",
    "check_labels",
]

@dataclass
class History:
    """Per-epoch metrics of one ``fit`` call (``rows`` is a list of dicts; ``.frame()`` gives pandas)."""

    rows: list = field(default_factory=list)
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list:
        if not self.rows or key not in self.rows[0]:
            raise KeyError(f"{key!r} is not recorded; recorded: {sorted(self.rows[0]) if self.rows else []}")
        return [r[key] for r in self.rows]

    def __len__(self):
        return len(self.rows)

    def last(self, key: str):
        return self[key][-1]

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


@dataclass
class TrainState:
    """What callbacks see: the live model/optimizer and counters. Set ``stop = True`` to end after this batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epochs: int
    batches_per_epoch: int
    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss: float = float("nan")
    samples_seen: int = 0
    epoch_start: float = 0.0
    history: History = field(default_factory=History)
    stop: bool = False


class Callback:
    """Override any of these; each receives the :class:`TrainState`."""

    def on_fit_start(self, state: TrainState): ...

    def on_epoch_start(self, state: TrainState): ...

    def on_batch_end(self, state: TrainState): ...

    def on_epoch_end(self, state: TrainState): ...

    def on_fit_end(self, state: TrainState): ...


def make_optimizer(params, name: str = "adamw", lr: float = 1e-3, weight_decay: float = 5e-4,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """``"adamw"`` or ``"sgd"`` (with momentum) over ``params`` (tensors or param-group dicts)."""
    params = list(params)
    if not params:
        raise ValueError("no parameters to optimise: is everything frozen?")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adamw' or 'sgd' (or pass an Optimizer)")


def fit(
    model: nn.Module,
    train: Iterable,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str | torch.optim.Optimizer = "adamw",
    weight_decay: float = 5e-4,
    schedule: str | None = "onecycle",
    val: Iterable | None = None,
    device=None,
    amp: bool | None = None,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    seed: int | None = None,
    desc: str = "fit",
    loss_fn: Callable | None = None,
    metric: Callable | None = None,
) -> History:
    """Train ``model`` on ``train`` (an iterable of ``(x, y)`` batches) for ``epochs``; returns a History.

    Parameters
    ----------
    optimizer : "adamw", "sgd" or a ``torch.optim.Optimizer``
        A name builds one over the parameters with ``requires_grad`` (frozen ones are left out). Pass your
        own optimizer to control param groups (e.g. discriminative learning rates); ``lr`` then only sets the
        schedule's peak when ``schedule="onecycle"`` (as each group's own ``lr`` times ``lr / max group lr``).
    schedule : "onecycle", "cosine" or None
        Per-step learning-rate schedule ("onecycle" with fewer than 10 steps in all keeps ``lr`` constant).
    val : optional iterable of batches, evaluated after every epoch.
    amp : bf16 autocast; ``None`` means "on for CUDA".
    loss_fn : ``loss_fn(out, y) -> scalar tensor`` (default :func:`cross_entropy`, -100 ignored).
    metric : ``metric(out, y) -> (correct, scored)`` for the accuracy columns (default :func:`accuracy_counts`).
    seed : seeds the random numbers drawn during training (dropout); data order is the loader's. Training draws
        from a private stream: the caller's random state is the same after ``fit`` as before it. With
        ``seed=None`` the stream starts from a copy of the caller's current torch state.

    Raises
    ------
    ValueError
        ``train`` yields no batches, or a label is outside the model's classes.
    FloatingPointError
        The loss became NaN or infinite (the message says when, and whether the inputs held NaN/inf).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(4, n_test_per_class=2, size=16)
    >>> h = fit(create_model("kitnet_s", 10), task.loader("train", 20), epochs=1, progress=False)
    >>> len(h), "train_loss" in h.rows[0]
    (1, True)
    """
    epochs = as_int("epochs", epochs, min=1)
    lr = as_float("lr", lr, min=0.0, min_open=True)
    weight_decay = as_float("weight_decay", weight_decay, min=0.0)
    seed = None if seed is None else as_seed(seed)
    device = resolve_device(device)
    if len(train) == 0:
        raise ValueError("fit() got a training set with no batches: the loader is empty")
    model.to(device)
    with seeded(seed, device):
        return _fit(model, train, epochs, lr, optimizer, weight_decay, schedule, val, device, amp, list(callbacks),
                    progress, desc, loss_fn or cross_entropy, metric or accuracy_counts)


def _fit(model, train, epochs, lr, optimizer, weight_decay, schedule, val, device, amp, callbacks, progress, desc,
         loss_fn, metric):
    if isinstance(optimizer, str):
        optimizer = make_optimizer((p for p in model.parameters() if p.requires_grad), optimizer, lr, weight_decay)
    steps = epochs * len(train)
    scheduler = _make_schedule(optimizer, schedule, lr, steps)
    state = TrainState(model, optimizer, device, epochs, len(train))
    for cb in callbacks:
        cb.on_fit_start(state)
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            state.epoch, state.epoch_start = epoch, time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_start(state)
            model.train()
            tot_loss, tot_correct, tot_n = 0.0, 0, 0
            for b, (x, y) in enumerate(train):
                x, y = to_device(x, device), to_device(y, device)
                with autocast(device, amp):
                    out = forward(model, x)
                    loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    bad_input = isinstance(x, torch.Tensor) and x.is_floating_point() and not torch.isfinite(x).all()
                    raise FloatingPointError(
                        f"the training loss became {loss.item()} at epoch {epoch + 1}, batch {b + 1} (step "
                        f"{state.step + 1}); " + ("the inputs of that batch contain NaN or inf values" if bad_input
                                                  else "the learning rate may be too high for this model"))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                correct, n = metric(out, y)
                tot_loss += loss.item() * n
                tot_correct += correct
                tot_n += n
                state.batch, state.step, state.loss = b, state.step + 1, loss.item()
                state.samples_seen += len(y)
                bar.update(1)
                for cb in callbacks:
                    cb.on_batch_end(state)
                if state.stop:
                    break
            if tot_n == 0:
                raise ValueError(f"fit() got no batches in epoch {epoch + 1}: the loader is empty")
            elapsed = time.perf_counter() - state.epoch_start
            row = dict(epoch=epoch + 1, train_loss=tot_loss / tot_n, train_acc=tot_correct / tot_n,
                       lr=optimizer.param_groups[0]["lr"], seconds=elapsed, samples_per_s=tot_n / max(elapsed, 1e-9))
            if val is not None:
                ev = evaluate(model, val, device=device, amp=amp, loss_fn=loss_fn, metric=metric)
                row.update(val_loss=ev["loss"], val_acc=ev["acc"])
            state.history.rows.append(row)
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k in ("train_loss", "val_acc")})
            for cb in callbacks:
                cb.on_epoch_end(state)
            if state.stop:
                state.history.stopped_early = True
                break
    finally:
        bar.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    return state.history


def _make_schedule(optimizer, schedule, lr, steps):
    if schedule is None:
        return None
    if schedule == "onecycle":
        if steps < 10:  # too few steps for warm-up and annealing phases: keep the learning rate constant
            return None
        top = max(g["lr"] for g in optimizer.param_groups)
        max_lr = [lr * g["lr"] / top for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(steps, 1),
                                                   pct_start=0.25)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    raise ValueError(f"unknown schedule {schedule!r}; expected 'onecycle', 'cosine' or None")


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, *, device=None, amp: bool | None = None, mode: str = "eval",
             loss_fn: Callable | None = None, metric: Callable | None = None) -> dict:
    """Mean cross-entropy and accuracy over ``data``; the kit's one evaluation loop.

    ``mode="eval"`` (the default) evaluates as at inference: running BatchNorm statistics, dropout off.
    ``mode="train"`` measures what the network computes while it trains (mini-batch statistics, dropout on),
    the accuracy an old Keras progress bar showed; BatchNorm running statistics are left exactly as they were.
    The model's modes are restored afterwards either way.

    Returns ``{"loss": float, "acc": float, "n": int}``. ``device=None`` runs where the model is; a ``device``
    moves the model there first (see :func:`transferlab.device.model_device`). Outputs that are not finite
    (NaN or infinite logits) raise ``FloatingPointError`` instead of being counted as predictions.
    ``loss_fn``/``metric`` as for :func:`fit`; ``n`` counts the scored labels.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    device = model_device(model, device)
    flags = [(m, m.training) for m in model.modules()]
    saved = {k: b.detach().clone() for k, b in model.named_buffers()} if mode == "train" else {}
    with seeded(None, device):  # train mode may draw dropout masks: from a copy of the caller's stream
        return _evaluate(model, data, device, amp, mode, loss_fn, metric, flags, saved)


def _evaluate(model, data, device, amp, mode, loss_fn, metric, flags, saved) -> dict:
    model.train(mode == "train")
    tot_loss, tot_correct, tot_n = 0.0, 0, 0
    try:
        for x, y in data:
            x, y = to_device(x, device), to_device(y, device)
            with autocast(device, amp):
                out = forward(model, x)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            if not all(torch.isfinite(o.float()).all() for o in outs):
                raise FloatingPointError(f"the model's outputs are not finite (NaN or inf) on a batch of {len(y)}; "
                                         f"its weights or inputs have diverged, so no accuracy can be computed")
            if loss_fn is None:  # the default: summed exactly as before (reduction="sum")
                tot_loss += cross_entropy(out, y, reduction="sum").item()
                correct, n = accuracy_counts(out, y)
            else:
                correct, n = (metric or accuracy_counts)(out, y)
                tot_loss += loss_fn(out, y).item() * n
            tot_correct += correct
            tot_n += n
    finally:
        for m, flag in flags:
            m.training = flag
        if saved:
            buffers = dict(model.named_buffers())
            for k, v in saved.items():
                buffers[k].copy_(v)
    if tot_n == 0:
        raise ValueError("evaluate() got no batches: the data is empty")
    return {"loss": tot_loss / tot_n, "acc": tot_correct / tot_n, "n": tot_n}

