"""Evaluation along ``w + t * d``: every point's test error and train loss, BatchNorm statistics recomputed at
each point, the model restored exactly afterwards."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import vector_to_parameters
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from .._validate import as_float, as_int, as_list
from ..bn_pin import is_batchnorm
from ..device import model_device, resolve_device
from ..train import evaluate
from .directions import flat_weights

__all__ = ["RAY_COLUMNS", "materialize", "l2_term", "evaluate_point", "evaluate_rays", "evaluate_line"]

RAY_COLUMNS = ("solution", "ray", "t", "distance", "test_error", "test_loss", "train_loss", "train_ce",
               "train_error")
"""Columns of the frames returned by :func:`evaluate_rays` / :func:`evaluate_line`:

solution : label of the starting point (e.g. ``"SGD"``, ``"SWA"``); ray : direction index (-1 for a line);
t : step along the direction; distance : ``|t| * ||d||`` (signed ``t * ||d||`` for a line), Euclidean in
weight space; test_error, test_loss : on the test batches, eval mode; train_ce, train_error : on the train
batches, eval mode; train_loss : ``train_ce + weight_decay / 2 * ||w||^2`` (the objective SGD with that weight
decay minimises, over every parameter).
"""


def materialize(data: Iterable, *, device=None, max_samples: int | None = None,
                batch_size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Hold ``(x, y)`` batches of ``data`` in a list on ``device`` (the first ``max_samples`` samples).

    ``batch_size`` re-batches them (larger batches make evaluation faster; BN recomputation uses the
    batches as given). The same list is reused at every point along a ray, so every point sees the same data.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> b = materialize(target_task(3, n_test_per_class=1, size=16).loader("train", 4), max_samples=10)
    >>> [len(y) for _, y in b]
    [4, 4, 2]
    """
    device = resolve_device(device)
    max_samples = None if max_samples is None else as_int("max_samples", max_samples, min=1)
    batch_size = None if batch_size is None else as_int("batch_size", batch_size, min=1)
    xs, ys, seen = [], [], 0
    for x, y in data:
        if max_samples is not None and seen >= max_samples:
            break
        take = len(y) if max_samples is None else min(len(y), max_samples - seen)
        xs.append(x[:take].to(device))
        ys.append(y[:take].to(device))
        seen += take
    if not xs:
        raise ValueError("materialize() got no batches")
    if batch_size is None:
        return list(zip(xs, ys, strict=True))
    x, y = torch.cat(xs), torch.cat(ys)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def l2_term(model: nn.Module, weight_decay: float) -> float:
    """``weight_decay / 2 * ||w||^2`` over every parameter (what SGD's ``weight_decay`` adds to the loss).

    Examples
    --------
    >>> lin = nn.Linear(1, 1)
    >>> _ = lin.weight.data.fill_(3.0), lin.bias.data.fill_(4.0)
    >>> l2_term(lin, 0.1)
    1.25
    """
    with torch.no_grad():
        return 0.5 * weight_decay * float(sum((p.double() ** 2).sum() for p in model.parameters()))


def _ce_error(model, batches, device, amp):
    ev = evaluate(model, batches, device=device, amp=amp)  # the kit's one evaluation loop (eval mode)
    return ev["loss"], 1.0 - ev["acc"]


def evaluate_point(model: nn.Module, *, train, test, bn=None, weight_decay: float = 5e-4, device=None,
                   amp: bool | None = False) -> dict:
    """Recompute BN statistics on ``bn`` (unless None), then measure the model as it is (eval mode).

    ``train``/``test``/``bn`` are lists of ``(x, y)`` batches on the model's device (see :func:`materialize`).
    The model's BN buffers are changed (that is the point); :func:`evaluate_rays` restores them.

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import KitNet
    >>> task = target_task(2, n_test_per_class=2, size=16)
    >>> b = materialize(task.loader("train", 10))
    >>> sorted(evaluate_point(KitNet(10, widths=(8,)), train=b, test=b, bn=b))[:3]
    ['test_error', 'test_loss', 'train_ce']
    """
    device = model_device(model, device)
    if bn is not None:
        update_bn(bn, model)
    model.eval()
    test_loss, test_err = _ce_error(model, test, device, amp)
    train_ce, train_err = _ce_error(model, train, device, amp)
    return dict(test_error=test_err, test_loss=test_loss, train_ce=train_ce, train_error=train_err,
                train_loss=train_ce + l2_term(model, weight_decay))


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")


def _walk(model, w0, directions, ts, *, solution, ray_ids, train, test, bn, weight_decay, device, amp, progress,
          signed):
    """Evaluate at ``w0 + t * d`` for each direction row and t; restores weights, buffers and mode exactly."""
    params = list(model.parameters())
    saved_w = [p.detach().clone() for p in params]
    saved_b = {k: v.detach().clone() for k, v in model.named_buffers()}
    was_training = model.training
    rows = []
    bar = tqdm(total=len(directions) * len(ts), desc=f"rays {solution}", disable=not progress, leave=False)
    try:
        for ray, d in zip(ray_ids, directions, strict=True):
            norm = float(f"{float(d.double().norm()):.6g}")  # 1.0 exactly for unit directions, not 1 +- 1e-7
            for t in ts:
                with torch.no_grad():
                    vector_to_parameters(w0 + float(t) * d, params)
                m = evaluate_point(model, train=train, test=test, bn=bn, weight_decay=weight_decay, device=device,
                                   amp=amp)
                dist = float(t) * norm if signed else abs(float(t)) * norm
                rows.append(dict(solution=solution, ray=int(ray), t=float(t), distance=dist, **m))
                bar.update(1)
    finally:
        bar.close()
        with torch.no_grad():
            for p, s in zip(params, saved_w, strict=True):
                p.copy_(s)
            buffers = dict(model.named_buffers())
            for k, v in saved_b.items():
                buffers[k].copy_(v)
        model.train(was_training)
    import pandas as pd

    return pd.DataFrame(rows, columns=list(RAY_COLUMNS))


def _prepare(model, train, test, bn, device, eval_batch):
    device = model_device(model, device)
    eval_batch = as_int("eval_batch", eval_batch, min=1)
    train_b = materialize(train, device=device, batch_size=eval_batch)
    test_b = materialize(test, device=device, batch_size=eval_batch)
    bn_b = None if bn is None else materialize(bn, device=device)
    return device, train_b, test_b, bn_b


def _has_bn(model):
    return any(is_batchnorm(m) for m in model.modules())


def evaluate_rays(model: nn.Module, directions: torch.Tensor, distances: Sequence[float], *, train: Iterable,
                  test: Iterable, bn: Iterable | None = None, weight_decay: float = 5e-4, solution: str = "model",
                  device=None, amp: bool | None = False, eval_batch: int = 1000, progress: bool = True):
    """Test error and train loss at ``w + t * d`` for every direction ``d`` (rows) and ``t`` in ``distances``.

    Parameters
    ----------
    model : the solution ``w``; its weights, buffers and train/eval mode are restored exactly afterwards.
    directions : ``[n_rays, P]`` tensor from :func:`random_directions`.
    distances : the values of ``t`` (for unit directions, the Euclidean distance from ``w``).
    train, test : iterables of ``(x, y)`` batches, held in memory once (keep them small: a fixed subset).
    bn : batches on which BN statistics are recomputed at every point (``update_bn``); ``None`` keeps the
        model's own statistics at every point. Required when the model has BatchNorm, unless you pass
        ``bn=False`` to skip recomputation deliberately.
    weight_decay : coefficient of the L2 term in ``train_loss`` (``weight_decay / 2 * ||w||^2``).
    amp : bf16 autocast (``None``: on for CUDA). Off by default so that rays are exact in float32.

    Returns
    -------
    pandas.DataFrame with :data:`RAY_COLUMNS`, one row per (ray, t).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import create_model
    >>> task = target_task(2, n_test_per_class=2, size=16); m = create_model("kitnet_s", 10)
    >>> from transferlab.landscape import random_directions; d = random_directions(m, 2, seed=0)
    >>> df = evaluate_rays(m, d, [0.0, 5.0], train=task.loader("train"), test=task.loader("test"),
    ...                    bn=task.loader("train"), progress=False)
    >>> df.shape
    (4, 9)
    """
    _check_model(model)
    w0 = flat_weights(model)
    if not isinstance(directions, torch.Tensor) or directions.ndim != 2 or directions.shape[1] != len(w0):
        shape = tuple(directions.shape) if isinstance(directions, torch.Tensor) else type(directions).__name__
        raise ValueError(f"directions must be a tensor [n_rays, {len(w0)}] (one row per ray over all "
                         f"{len(w0)} parameters), got {shape}")
    if not torch.isfinite(directions).all():
        raise ValueError("directions contain NaN or infinite entries; draw them with random_directions()")
    ts = _distances("distances", distances)
    if not ts:
        raise ValueError("distances is empty; expected a sequence of t values such as numpy.linspace(0, 40, 25)")
    if bn is None and _has_bn(model):
        raise ValueError("the model has BatchNorm layers: pass bn=<training batches> to recompute their statistics "
                         "at every point (as the SWA paper does), or bn=False to keep the solution's statistics")
    bn = None if bn is False else bn
    device, train_b, test_b, bn_b = _prepare(model, train, test, bn, device, eval_batch)
    return _walk(model, w0.to(device), directions.to(device), ts, solution=solution,
                 ray_ids=range(len(directions)), train=train_b, test=test_b, bn=bn_b, weight_decay=weight_decay,
                 device=device, amp=amp, progress=progress, signed=False)


def evaluate_line(model_a: nn.Module, model_b: nn.Module, ts: Sequence[float], *, train: Iterable, test: Iterable,
                  bn: Iterable | None = None, weight_decay: float = 5e-4, solution: str = "line", device=None,
                  amp: bool | None = False, eval_batch: int = 1000, progress: bool = True):
    """The segment ``w_a + t (w_b - w_a)`` (t=0: model a, t=1: model b), e.g. SGD to SWA (the paper's Fig. 5).

    Unlike :func:`evaluate_rays` the direction is not random and not unit: ``distance`` is the signed
    Euclidean distance from ``w_a`` (``t * ||w_b - w_a||``). ``model_a`` is used as the workspace and restored
    exactly; both models need the same architecture. Returns a frame with :data:`RAY_COLUMNS` (``ray = -1``).

    Examples
    --------
    >>> from transferlab.world import target_task
    >>> from transferlab.models import KitNet
    >>> task = target_task(2, n_test_per_class=2, size=16)
    >>> a, b = KitNet(10, widths=(8,)), KitNet(10, widths=(8,))
    >>> df = evaluate_line(a, b, [0.0, 0.5, 1.0], train=task.loader("train"), test=task.loader("test"),
    ...                    bn=task.loader("train"), progress=False)
    >>> df["t"].tolist()
    [0.0, 0.5, 1.0]
    """
    _check_model(model_a)
    _check_model(model_b)
    wa, wb = flat_weights(model_a), flat_weights(model_b).to(flat_weights(model_a).device)
    if wa.shape != wb.shape:
        raise ValueError(f"the two models have different parameter counts: {len(wa)} and {len(wb)}")
    ts = _distances("ts", ts)
    if bn is None and _has_bn(model_a):
        raise ValueError("the models have BatchNorm layers: pass bn=<training batches> (or bn=False)")
    bn = None if bn is False else bn
    device, train_b, test_b, bn_b = _prepare(model_a, train, test, bn, device, eval_batch)
    wa, wb = wa.to(device), wb.to(device)
    return _walk(model_a, wa, (wb - wa)[None], ts, solution=solution, ray_ids=[-1], train=train_b, test=test_b,
                 bn=bn_b, weight_decay=weight_decay, device=device, amp=amp, progress=progress, signed=True)


def _distances(name: str, values) -> list[float]:
    """Finite step sizes ``t``, or a ValueError saying what a good value looks like."""
    try:
        out = [as_float(f"{name}[{i}]", t) for i, t in enumerate(as_list(name, values))]
    except ValueError as err:
        raise ValueError(f"{err}; expected finite steps such as numpy.linspace(0, 40, 25)") from None
    return out


