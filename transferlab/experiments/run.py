"""One run of lesson 01: one strategy on one target task and seed, returned as one tidy result row.

:func:`run_key` checks and completes a run's coordinates (the key of the result cache); :func:`run_one` builds the
model, adapts it as the strategy says (linear probe, freeze ``k`` stages, head first, discriminative learning
rates...) and measures it: validation accuracy (``acc``, what every choice is made on) and, once, the final model's
test accuracy (``test_acc``); with an out-of-distribution shift in the config also its accuracy on shifted test
images and how far its features moved from the pretrained ones. Every random number of a run is drawn inside
:func:`transferlab.device.seeded`: the same seed gives the same row, and the caller's random state (torch, NumPy,
Python) is left exactly as it was.

Features of the frozen pretrained base are computed once per task and split and reused by every probe, every
head-first run and every feature-distortion measurement (:func:`base_features`).

Examples
--------
>>> run_key(20, 0.5, "probe", config=RunConfig(model="kitnet_m-random"))
(20, 0.5, 'probe', 4, 0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import torch
from torch import nn

from .._validate import as_int, as_seed
from ..bn_pin import set_bn_policy
from ..device import resolve_device, seeded
from ..freeze import freeze_stages
from ..tasks import ImageTask
from ..train import Callback, evaluate, extract_features, fit, fit_linear_probe, make_optimizer
from .config import RunConfig
from .drift import snapshot, stage_weight_change
from .memo import memoize
from .model import build_model, fold_probe_into_head, param_groups, stages_of
from .strategies import get_strategy
from .targets import as_target, ood_task, target_task

__all__ = ["run_key", "run_one", "base_features", "feature_change", "fit_probe"]

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


def _split_loader(task: ImageTask, split: str):
    """Batches of a split for evaluation; the test split is read as the final evaluation (``final=True``)."""
    return task.loader(split, _EVAL_BATCH, shuffle=False, final=split == "test")


@memoize("base features", maxsize=96)
def _base_features(config: RunConfig, n_per_class: int, similarity: float | str, seed: int, split: str,
                   ood: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    task = ood_task(n_per_class, similarity, seed, config=config) if ood else \
        target_task(n_per_class, similarity, seed, config=config)
    base = build_model(config, seed=0, num_classes=task.num_classes, device=device)  # the head plays no part
    return extract_features(base, _split_loader(task, split))


def base_features(n_per_class: int, similarity: float | str, seed: int, split: str, *, config: RunConfig,
                  ood: bool = False, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-logit features of the frozen pretrained base (eval mode) and labels of one split of a target task.

    Computed once per (config, task, split) and kept in memory (``clear_caches`` drops them): the base's weights do
    not depend on the run's seed, so every probe, head-first run and feature-distortion measurement on the task
    reuses them. ``split`` is ``"train"``, ``"val"`` or ``"test"`` (``ood=True``: those of the OOD twin,
    :func:`transferlab.experiments.ood_task`, whose training images are the task's own).
    Returns CPU tensors ``(features [N, D], labels [N])``; treat them as read-only.

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", n_test_per_class=1, n_val_per_class=1, image_size=16)
    >>> f, y = base_features(2, 0.5, 0, "val", config=cfg)
    >>> tuple(f.shape), base_features(2, 0.5, 0, "val", config=cfg)[0] is f
    ((10, 96), True)
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    n_per_class, seed = as_int("n_per_class", n_per_class, min=1), as_seed(seed)
    return _base_features(config, n_per_class, as_target(similarity), seed, split, bool(ood), resolve_device(device))


def feature_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """How far features moved: ``||F_after - F_before|| / ||F_before||`` over a set of images (Frobenius norms).

    0 means the features of those images did not change; 1 means they moved as far as they are long.

    Examples
    --------
    >>> feature_change(torch.ones(4, 3), torch.ones(4, 3)), feature_change(torch.ones(4, 3), 2 * torch.ones(4, 3))
    (0.0, 1.0)
    """
    if before.shape != after.shape:
        raise ValueError(f"features of the same images are needed: shapes {tuple(before.shape)} and "
                         f"{tuple(after.shape)}")
    norm = float(before.float().norm())
    return float((after.float() - before.float()).norm()) / norm if norm > 0 else math.nan


class _Scale(nn.Module):
    """``(x - mean) / std``: the standardisation in front of a probe (what ``fold_probe_into_head`` reads)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


def fit_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, epochs: int = 100,
              seed: int = 0) -> nn.Sequential:
    """A linear probe on standardised features (:func:`transferlab.train.fit_linear_probe`), safe to fold into a head.

    A feature that (nearly) never fires on the training images (a ReLU channel that is zero on all of them: common
    when the target is far from the pretraining data) has a standard deviation of about 0; dividing by it would turn
    the probe's untrained weight for that feature into a huge one (up to ~1e5 here), harmless while the feature
    stays 0 but explosive as soon as fine-tuning (head-first) or a shifted input wakes it. So each feature's scale is
    at least 1% of the mean standard deviation of all features; every other feature is standardised as usual.

    Examples
    --------
    >>> f = torch.cat([torch.randn(30, 3), torch.zeros(30, 1)], dim=1); y = torch.arange(30) % 3
    >>> probe = fit_probe(f, y, 3, epochs=5)
    >>> float(probe[0].std[3]) > 0.01 * float(f[:, :3].std(0).mean()) / 2
    True
    """
    x = features.float()
    mean = x.mean(0)
    std = x.std(0) if len(x) > 1 else torch.ones(x.shape[1])
    scale = std.clamp(min=max(0.01 * float(std.mean()), 1e-6))
    linear = fit_linear_probe((x - mean) / scale, labels, num_classes, epochs=epochs, seed=seed, standardize=False)[1]
    return nn.Sequential(_Scale(mean, scale), linear)


def _probe_acc(probe: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (probe(features).argmax(1) == labels).float().mean().item()


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
    callbacks, val : passed to ``fit`` (``val=True`` evaluates on the validation split after every epoch).

    The budget: every strategy that trains updates its weights for ``config.epochs(n_train)`` epochs. Head-first
    fits its head beforehand, as a probe on the frozen base's features (computed once per task, without
    gradients), then fine-tunes for the same number of epochs as fine-tuning with a random head.

    Returns
    -------
    dict with ``RESULT_COLUMNS`` (``acc`` is the *validation* accuracy in [0, 1], the number every choice is made
    on; ``seconds`` the wall time of the run), ``val_acc`` (the same), ``test_acc`` (the final model's accuracy on
    the sealed test split, read once), ``train_acc, epochs, lr_base, lr_head, model, n_stages, config`` (the
    config's fingerprint); with ``config.ood`` also ``ood_acc`` (test accuracy on the shifted test images),
    ``feature_change_id`` / ``feature_change_ood`` (:func:`feature_change` of the pretrained base's features of
    the in-distribution / shifted test images; 0 for a probe, NaN from scratch) and ``drift_<stage>`` (each stage's
    relative weight change from the pretrained weights); with ``val=True`` also ``history`` (the per-epoch rows of
    ``fit``).

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=40, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, n_val_per_class=2, image_size=16, probe_epochs=2)
    >>> row = run_one(2, 1.0, "freeze", k=3, seed=0, config=cfg)
    >>> row["strategy"], row["k"], row["acc"] == row["val_acc"], 0 <= row["test_acc"] <= 1
    ('freeze', 3, True, True)
    """
    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    n_per_class, similarity, strategy, k, seed = run_key(n_per_class, similarity, strategy, k, seed, config=config)
    device = resolve_device(device)
    with seeded(seed, device):
        task = target_task(n_per_class, similarity, seed, config=config)
        row = _adapt_and_measure(task, (n_per_class, similarity, seed), strategy, k, config, device,
                                 list(callbacks), val)
    return dict(n_per_class=n_per_class, similarity=similarity, strategy=strategy, k=k, seed=seed, **row)


def _adapt_and_measure(task: ImageTask, where: tuple, strategy: str, k: int, config: RunConfig, device,
                       callbacks: list[Callback], val: bool) -> dict:
    """The body of :func:`run_one` (its caller holds the private random streams): every column but the key's."""
    strat = get_strategy(strategy)
    seed = where[2]
    feats = lambda split, ood=False: base_features(*where, split, config=config, ood=ood, device=device)  # noqa: E731
    model = build_model(config, pretrained=strat.pretrained, seed=seed, num_classes=task.num_classes, device=device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()  # the run's cost: training and evaluation (not the one-off zoo read)
    epochs = config.epochs(len(task.y_train))
    base_lr = config.lr_finetune if strat.base_lr == "finetune" else config.lr_scratch
    head_lr = config.lr_scratch
    history = None
    start = snapshot(model) if config.ood and strat.pretrained else None
    if strat.probe or strat.head_first:
        f_train, y_train = feats("train")
        probe = fit_probe(f_train, y_train, task.num_classes, epochs=config.probe_epochs, seed=seed)
        fold_probe_into_head(probe, model.get_classifier())  # the model now computes the probe's logits
    if strat.probe:
        val_acc, test_acc = _probe_acc(probe, *feats("val")), _probe_acc(probe, *feats("test"))
        train_acc = _probe_acc(probe, f_train, y_train)
        epochs, base_lr = 0, 0.0
    else:
        if strat.head_first:
            head_lr = base_lr  # the head is trained already: the joint phase runs at the fine-tuning LR
        freeze_stages(model, k)
        if strat.keep_bn_stats:
            set_bn_policy(model, "frozen")  # every BatchNorm layer keeps the pretrained statistics
        groups = param_groups(model, base_lr=base_lr, head_lr=head_lr,
                              layer_decay=config.layer_decay if strat.discriminative else None)
        opt = make_optimizer(groups, "adamw", lr=head_lr, weight_decay=config.weight_decay)
        hist = fit(model, task.loader("train", config.batch_size, seed=seed), epochs=epochs,
                   lr=max(g["lr"] for g in groups), optimizer=opt, device=device, progress=False, seed=seed,
                   callbacks=callbacks, val=_split_loader(task, "val") if val else None, desc=strategy)
        val_acc = evaluate(model, _split_loader(task, "val"), device=device)["acc"]
        test_acc = evaluate(model, _split_loader(task, "test"), device=device)["acc"]
        train_acc = hist.last("train_acc")
        history = hist.rows
        if strat.discriminative:
            base_lr = min(g["lr"] for g in groups)
    row = dict(acc=float(val_acc), seconds=0.0, val_acc=float(val_acc), test_acc=float(test_acc),
               train_acc=float(train_acc), epochs=epochs, lr_base=float(base_lr), lr_head=float(head_lr),
               model=config.model, n_stages=len(stages_of(config)), config=config.fingerprint())
    if config.ood:
        row.update(_ood_measures(model, where, strat, config, device, feats, start))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    if val and history is not None:
        row["history"] = history
    return row


def _ood_measures(model: nn.Module, where: tuple, strat, config: RunConfig, device, feats, start) -> dict:
    """OOD test accuracy, feature change on ID and OOD test images, and each stage's weight change."""
    ood = ood_task(*where, config=config)
    f0_id, _ = feats("test")
    f0_ood, _ = feats("test", ood=True)
    if strat.probe:  # the base is the pretrained one: its features did not move
        f_id, f_ood = f0_id, f0_ood
    else:
        f_id, _ = extract_features(model, _split_loader(target_task(*where, config=config), "test"), device=device)
        f_ood, _ = extract_features(model, _split_loader(ood, "test"), device=device)
    head = model.get_classifier()
    with torch.no_grad():
        logits = head(f_ood.to(next(head.parameters()).device)).cpu()
    y_ood = ood.labels("test", final=True)
    out = dict(ood_acc=float((logits.argmax(1) == y_ood).float().mean()))
    if strat.pretrained:
        out.update(feature_change_id=feature_change(f0_id, f_id), feature_change_ood=feature_change(f0_ood, f_ood))
        per_stage = stage_weight_change(start, model, _stage_prefixes(model))
        out.update({f"drift_{stage}": value for stage, value in per_stage.items()})
    else:  # from scratch: there are no pretrained features or weights to move away from
        out.update(feature_change_id=math.nan, feature_change_ood=math.nan)
    return out


def _stage_prefixes(model: nn.Module) -> dict[str, list[str]]:
    from ..models import stage_parameters

    return {stage: [name for name, _ in params] for stage, params in stage_parameters(model).items()}

