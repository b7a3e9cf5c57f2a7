"""One run of lesson 01: one strategy on one target task and seed, returned as one tidy result row.

:func:`run_key` checks and completes a run's coordinates (the key of the result cache); :func:`run_one` builds the
model, adapts it as the strategy says (linear probe, freeze ``k`` stages, head first, discriminative learning
rates...) and measures test accuracy. Every random number of a run is drawn inside
:func:`transferlab.device.seeded`: the same seed gives the same row, and the caller's random state (torch, NumPy,
Python) is left exactly as it was.

Examples
--------
>>> run_key(20, 0.5, "probe", config=RunConfig(model="kitnet_m-random"))
(20, 0.5, 'probe', 4, 0)
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
from torch import nn

from .._validate import as_int, as_seed
from ..device import resolve_device, seeded
from ..freeze import freeze_stages
from ..tasks import ImageTask
from ..train import Callback, evaluate, extract_features, fit, fit_linear_probe, make_optimizer
from .config import RunConfig
from .model import build_model, fold_probe_into_head, param_groups, stages_of
from .strategies import get_strategy
from .targets import as_target, target_task

__all__ = ["run_key", "run_one"]

_EVAL_BATCH = 500  # images per batch when only evaluating (no gradients): as large as memory comfortably allows


def run_key(n_per_class: int, similarity: float | str, strategy: str, k: int | None = None, seed: int = 0, *,
            config: RunConfig) -> tuple[int, float | str, str, int, int]:
    """The checked ``(n_per_class, similarity, strategy, k, seed)`` of a run, ``k`` resolved for the strategy.

    What :func:`run_one` runs and what :class:`transferlab.experiments.ResultCache` keys rows on. NumPy integers
    are accepted; errors quote the bad value.

    Examples
    --------
    >>> import numpy as np
    >>> run_key(np.int64(5), 1, "freeze", np.int64(2), np.int64(1), config=RunConfig(model="kitnet_m-random"))
    (5, 1.0, 'freeze', 2, 1)
    """
    strat = get_strategy(strategy)
    n_per_class = as_int("n_per_class", n_per_class, min=1)
    seed = as_seed(seed)
    similarity = as_target(similarity)
    k = strat.check_k(k, len(stages_of(config)))
    return n_per_class, similarity, strategy, k, seed


def _probe(model: nn.Module, task: ImageTask, config: RunConfig, seed: int, device) -> tuple[nn.Module, float, float]:
    """A linear probe on the frozen base's features: (the probe, test accuracy, training accuracy).

    Not ``transferlab.datasets.measure_similarity``: a run also needs the fitted probe (head-first folds it
    into the model's head) and its training accuracy, and reads features in batches of 500 as it always has.
    """
    f_train, y_train = extract_features(model, task.loader("train", _EVAL_BATCH, shuffle=False), device=device)
    f_test, y_test = extract_features(model, task.loader("test", _EVAL_BATCH, shuffle=False), device=device)
    probe = fit_linear_probe(f_train, y_train, task.num_classes, epochs=config.probe_epochs, seed=seed)
    with torch.no_grad():
        acc = (probe(f_test).argmax(1) == y_test).float().mean().item()
        train_acc = (probe(f_train).argmax(1) == y_train).float().mean().item()
    return probe, acc, train_acc


def run_one(n_per_class: int, similarity: float | str, strategy: str, k: int | None = None, seed: int = 0, *,
            config: RunConfig | None = None, device=None, callbacks: Iterable[Callback] = (),
            val: bool = False) -> dict:
    """Run one strategy on one target task and seed; returns one result row (a dict).

    Parameters
    ----------
    n_per_class, similarity : the target task (:func:`transferlab.experiments.target_task`): the world's
        ``target_task`` at ``similarity`` in [0, 1], or a real dataset's name / ``"folder:/path"`` (read at the
        model's ``pretrained_cfg`` size and statistics); ``seed`` also picks its images, so every strategy run
        with the same seed sees the same data.
    strategy : a key of :data:`transferlab.experiments.STRATEGIES`.
    k : number of frozen stages, counted from the input (``None``: the strategy's default).
    seed : seeds everything random in the run (head, data order, probe); the caller's random state is untouched.
    config : budgets and learning rates (default ``RunConfig()``).
    callbacks, val : passed to ``fit`` (``val=True`` evaluates on the test split after every epoch).

    Returns
    -------
    dict with ``RESULT_COLUMNS`` (``acc`` is test accuracy in [0, 1], ``seconds`` the wall time of the run)
    and ``train_acc, epochs, lr_base, lr_head, model, n_stages, config`` (the config's fingerprint); with
    ``val=True`` also ``history`` (the per-epoch rows of ``fit``).

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=40, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, image_size=16, probe_epochs=2)
    >>> row = run_one(2, 1.0, "freeze", k=3, seed=0, config=cfg)
    >>> row["strategy"], row["k"], 0 <= row["acc"] <= 1
    ('freeze', 3, True)
    """
    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    n_per_class, similarity, strategy, k, seed = run_key(n_per_class, similarity, strategy, k, seed, config=config)
    device = resolve_device(device)
    with seeded(seed, device):
        task = target_task(n_per_class, similarity, seed, config=config)
        row = _adapt_and_test(task, strategy, k, seed, config, device, list(callbacks), val)
    return dict(n_per_class=n_per_class, similarity=similarity, strategy=strategy, k=k, seed=seed, **row)


def _adapt_and_test(task: ImageTask, strategy: str, k: int, seed: int, config: RunConfig, device,
                    callbacks: list[Callback], val: bool) -> dict:
    """The body of :func:`run_one` (its caller holds the private random streams): every column but the key's."""
    strat = get_strategy(strategy)
    model = build_model(config, pretrained=strat.pretrained, seed=seed, num_classes=task.num_classes, device=device)
    t0 = time.perf_counter()  # the run's cost: training and evaluation (not the one-off zoo read)
    epochs = config.epochs(len(task.y_train))
    base_lr = config.lr_finetune if strat.base_lr == "finetune" else config.lr_scratch
    head_lr = config.lr_scratch
    history = None
    if strat.probe:
        _, acc, train_acc = _probe(model, task, config, seed, device)
        epochs, base_lr = 0, 0.0
    else:
        if strat.head_first:
            probe, _, _ = _probe(model, task, config, seed, device)
            fold_probe_into_head(probe, model.get_classifier())
            head_lr = base_lr  # the head is trained already: the joint phase runs at the fine-tuning LR
        freeze_stages(model, k)
        groups = param_groups(model, base_lr=base_lr, head_lr=head_lr,
                              layer_decay=config.layer_decay if strat.discriminative else None)
        opt = make_optimizer(groups, "adamw", lr=head_lr, weight_decay=config.weight_decay)
        hist = fit(model, task.loader("train", config.batch_size, seed=seed), epochs=epochs,
                   lr=max(g["lr"] for g in groups), optimizer=opt, device=device, progress=False, seed=seed,
                   callbacks=callbacks, val=task.loader("test", _EVAL_BATCH) if val else None, desc=strategy)
        acc = evaluate(model, task.loader("test", _EVAL_BATCH), device=device)["acc"]
        train_acc = hist.last("train_acc")
        history = hist.rows
        if strat.discriminative:
            base_lr = min(g["lr"] for g in groups)
    row = dict(acc=float(acc), seconds=round(time.perf_counter() - t0, 3), train_acc=float(train_acc),
               epochs=epochs, lr_base=float(base_lr), lr_head=float(head_lr), model=config.model,
               n_stages=len(stages_of(config)), config=config.fingerprint())
    if val and history is not None:
        row["history"] = history
    return row
