"""The experiments of lesson 01 (which layers to freeze): strategies as data, one run -> one tidy row.

A *strategy* says how a pretrained model is adapted to a target task: train only a new head on the frozen
base's features (``"probe"``), freeze the first ``k`` stages and fine-tune the rest (``"freeze"``), fine-tune
everything at the from-scratch learning rate (``"finetune-scratch-lr"``), start from random weights
(``"scratch"``), fit the head first and then fine-tune (``"head-first"``), or give lower stages lower learning
rates (``"discriminative-lr"``). :func:`run_one` runs one (task, strategy, k, seed) and returns a dict;
:func:`run_grid` runs many and returns a pandas DataFrame with one row per run; :class:`ResultCache` keeps
finished rows in a JSON file under ``$TRANSFERLAB_HOME/experiments`` so a notebook can reuse them and a widget
can recompute one cell on demand (:func:`make_recompute`).

:func:`stage_weight_change` and :class:`WeightDrift` measure how far each stage's weights move from their
pretrained values (``||w - w0|| / ||w0||``), which is how the lesson shows that a random head's gradients
disturb the features it was meant to reuse.

Examples
--------
>>> STRATEGIES["freeze"].k_rule, STRATEGIES["probe"].k_rule
('any', 'all')
>>> RunConfig().epochs(200), RunConfig().epochs(2000)
(25, 5)
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .train import Callback, TrainState, evaluate, extract_features, fit, fit_linear_probe, make_optimizer

__all__ = [
    "Strategy",
    "STRATEGIES",
    "RunConfig",
    "RESULT_COLUMNS",
    "default_plan",
    "strategy_label",
    "stages_of",
    "build_model",
    "param_groups",
    "fold_probe_into_head",
    "run_one",
    "run_grid",
    "make_recompute",
    "ResultCache",
    "summarize",
    "best_by_cell",
    "sim_label",
    "at_similarity",
    "snapshot",
    "stage_weight_change",
    "WeightDrift",
]

RESULT_COLUMNS = ("n_per_class", "similarity", "strategy", "k", "seed", "acc", "seconds")
"""The columns every result row has first (the format ``transferlab.widgets.QuadrantExplorer`` reads)."""


# ----------------------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Strategy:
    """How to adapt a model to the target task, as data (no code: :func:`run_one` reads the fields).

    Attributes
    ----------
    name, description : str
    pretrained : bool
        Start from the zoo model's weights (False: random weights of the same architecture).
    probe : bool
        Train only a new linear head on the frozen base's cached features (no gradient through the base).
    head_first : bool
        First fit the new head with the base frozen (as a probe on cached features), then train jointly.
    base_lr : {"finetune", "scratch"}
        The learning rate of the trainable pretrained stages. A new head always gets the from-scratch LR,
        except in the joint phase of ``head_first``, where the head is no longer new.
    discriminative : bool
        Per-stage learning rates: stage ``i`` of ``n`` gets ``lr_scratch * layer_decay ** (n - i)``.
    k_rule : {"zero", "all", "any"}
        What ``k`` (the number of frozen stages, counted from the input) may be: always 0, always all
        stages, or any of 0..n_stages (for ``head_first``: the stages that stay frozen in the joint phase).
    """

    name: str
    description: str
    pretrained: bool = True
    probe: bool = False
    head_first: bool = False
    base_lr: str = "finetune"
    discriminative: bool = False
    k_rule: str = "zero"

    def __post_init__(self):
        if self.base_lr not in ("finetune", "scratch"):
            raise ValueError(f"base_lr must be 'finetune' or 'scratch', got {self.base_lr!r}")
        if self.k_rule not in ("zero", "all", "any"):
            raise ValueError(f"k_rule must be 'zero', 'all' or 'any', got {self.k_rule!r}")

    def check_k(self, k: int | None, n_stages: int) -> int:
        """The number of frozen stages this strategy runs with (``None``: its default); raises on a bad k.

        Examples
        --------
        >>> STRATEGIES["probe"].check_k(None, 4), STRATEGIES["freeze"].check_k(2, 4)
        (4, 2)
        """
        default = n_stages if self.k_rule == "all" else 0
        if k is None:
            return default
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an integer (the number of frozen stages), got {type(k).__name__} {k!r}")
        if self.k_rule == "any":
            if not 0 <= k <= n_stages:
                raise IndexError(f"k={k} is out of range for {self.name!r}: the model has {n_stages} stages, "
                                 f"so k must be in 0..{n_stages}")
            return k
        if k != default:
            raise ValueError(f"strategy {self.name!r} always runs with k={default} ({self.k_rule} of the "
                             f"{n_stages} stages frozen), got k={k}; use 'freeze' or 'head-first' to choose k")
        return k


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("probe", "a new linear head on the frozen base's features (the base never changes)",
                 probe=True, k_rule="all"),
        Strategy("freeze", "freeze the first k stages (and their BatchNorm statistics), fine-tune the rest at "
                 "the small LR; k=0 fine-tunes the whole model", k_rule="any"),
        Strategy("finetune-scratch-lr", "fine-tune the whole model at the from-scratch LR", base_lr="scratch"),
        Strategy("scratch", "random weights, the whole model trained at the from-scratch LR", pretrained=False,
                 base_lr="scratch"),
        Strategy("head-first", "fit the new head with the base frozen, then fine-tune jointly at the small LR "
                 "(k stages stay frozen)", head_first=True, k_rule="any"),
        Strategy("discriminative-lr", "fine-tune everything; each stage's LR is layer_decay times the LR of the "
                 "stage above it (the head gets the from-scratch LR)", discriminative=True),
    )
}


def _strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        import difflib

        close = difflib.get_close_matches(str(name), STRATEGIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown strategy {name!r}.{hint} Strategies: {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def strategy_label(strategy: str, k: int, stages: Sequence[str]) -> str:
    """A short human label for a (strategy, k) pair, for tables and legends.

    Examples
    --------
    >>> strategy_label("freeze", 2, ["stem", "layer1", "layer2", "layer3"])
    'freeze stem..layer1 (k=2)'
    >>> strategy_label("freeze", 0, ["stem", "layer1"])
    'fine-tune all, small LR (k=0)'
    """
    _strategy(strategy)
    if strategy == "freeze":
        if k == 0:
            return "fine-tune all, small LR (k=0)"
        frozen = stages[0] if k == 1 else f"{stages[0]}..{stages[k - 1]}"
        return f"freeze {frozen} (k={k})"
    if strategy == "head-first" and k:
        return f"head-first, k={k} kept frozen"
    return {"probe": "linear probe (head only)", "finetune-scratch-lr": "fine-tune all, scratch LR",
            "scratch": "from scratch", "head-first": "head-first, then all",
            "discriminative-lr": "discriminative LRs"}[strategy]


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunConfig:
    """The budget and hyper-parameters shared by every run of a grid (its fingerprint keys the cache).

    Attributes
    ----------
    model : str
        A zoo model (``"kitnet_m-src"``) or a timm model name (pretrained through timm: needs a network).
    lr_scratch, lr_finetune : float
        Peak one-cycle learning rates (AdamW) for random weights / new heads, and for pretrained stages.
    layer_decay : float
        Discriminative LRs: each stage gets this fraction of the LR of the stage above it.
    train_images : int
        How many images the optimizer sees per run; ``epochs(n_train)`` divides it by the training-set
        size and clips to ``[min_epochs, max_epochs]``.
    n_test_per_class, image_size, batch_size, probe_epochs, weight_decay : as named.

    Examples
    --------
    >>> RunConfig(train_images=1000, min_epochs=1, max_epochs=3).epochs(100)
    3
    """

    model: str = "kitnet_m-src"
    lr_scratch: float = 4e-3
    lr_finetune: float = 4e-4
    layer_decay: float = 0.3
    batch_size: int = 64
    train_images: int = 10_000
    min_epochs: int = 5
    max_epochs: int = 25
    n_test_per_class: int = 50
    image_size: int = 32
    probe_epochs: int = 100
    weight_decay: float = 5e-4

    def __post_init__(self):
        for name in ("lr_scratch", "lr_finetune", "layer_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if self.layer_decay > 1:
            raise ValueError(f"layer_decay must be in (0, 1] (lower stages learn slower), got {self.layer_decay!r}")
        for name in ("batch_size", "train_images", "min_epochs", "max_epochs", "n_test_per_class", "image_size",
                     "probe_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs={self.min_epochs} is larger than max_epochs={self.max_epochs}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")

    def epochs(self, n_train: int) -> int:
        """Epochs for a training set of ``n_train`` images: ``train_images / n_train``, clipped."""
        if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train must be an integer >= 1, got {n_train!r}")
        return int(min(self.max_epochs, max(self.min_epochs, round(self.train_images / n_train))))

    def fingerprint(self) -> str:
        """A short hash of the config (and of the zoo recipe of ``model``): rows from another config differ."""
        from . import zoo

        recipe = zoo.ZOO[self.model].fingerprint() if self.model in zoo.ZOO else "external"
        blob = json.dumps(asdict(self), sort_keys=True) + f"|{recipe}|v1"
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- models
@functools.lru_cache(maxsize=4)
def _zoo_state(name: str, zoo_dir: str, recipe: str) -> dict:
    """A zoo model's weights, read (checked, built if missing) once per process; the key includes the zoo
    folder and recipe so that a changed ``$TRANSFERLAB_HOME`` or recipe is not served from memory."""
    from . import zoo

    return {k: v.detach().clone() for k, v in zoo.load(name, device="cpu").state_dict().items()}


def build_model(config: RunConfig, *, pretrained: bool = True, seed: int = 0, num_classes: int = 10,
                device=None) -> nn.Module:
    """The config's model with a fresh ``num_classes`` head seeded by ``seed`` (random weights if not pretrained).

    Zoo weights are read from disk once per process and copied for each run.

    Examples
    --------
    >>> m = build_model(RunConfig(model="kitnet_m-random"), seed=0)
    >>> m.head.out_features
    10
    """
    from . import zoo
    from .device import resolve_device
    from .models import create_model, replace_head

    if config.model in zoo.ZOO:
        spec = zoo.ZOO[config.model]
        if pretrained:
            model = spec.make_model()
            model.load_state_dict(_zoo_state(config.model, str(zoo.zoo_dir()), spec.fingerprint()))
            model.pretrained_cfg.update(zoo_name=config.model, pretrained=True)
            replace_head(model, num_classes, seed=seed)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = create_model(spec.arch, num_classes)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_model(config.model, num_classes, pretrained=pretrained)
    return model.to(resolve_device(device))


@functools.lru_cache(maxsize=8)
def _stages_cached(model: str) -> tuple[str, ...]:
    from .models import stage_names

    return stage_names(build_model(RunConfig(model=model), pretrained=False, device="cpu"))


def stages_of(config: RunConfig) -> tuple[str, ...]:
    """The stage names of the config's model, input to output (``k`` counts them from the input).

    Examples
    --------
    >>> stages_of(RunConfig(model="kitnet_m-random"))
    ('stem', 'layer1', 'layer2', 'layer3')
    """
    return _stages_cached(config.model)


def param_groups(model: nn.Module, *, base_lr: float, head_lr: float, layer_decay: float | None = None) -> list:
    """Optimizer param groups: one per stage (trainable parameters only) plus the head.

    Without ``layer_decay`` every stage gets ``base_lr``; with it, stage ``i`` of ``n`` (0 = the input stage)
    gets ``head_lr * layer_decay ** (n - i)`` (discriminative learning rates) and ``base_lr`` is unused.
    Stages are :func:`transferlab.models.stage_parameters`: modules before a stage (a ResNet's ``conv1``) and
    parameters the model holds itself (a ViT's ``pos_embed``) count with it. Each group carries a ``"name"``
    key; frozen parameters and empty groups are left out.

    Examples
    --------
    >>> from transferlab.models import KitNet
    >>> groups = param_groups(KitNet(10, widths=(8, 16)), base_lr=1e-3, head_lr=1e-2, layer_decay=0.5)
    >>> [(g["name"], g["lr"]) for g in groups]
    [('stem', 0.00125), ('layer1', 0.0025), ('layer2', 0.005), ('head', 0.01)]
    """
    from .models import stage_parameters

    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}")
    per_stage = stage_parameters(model)  # every body parameter in exactly one stage, the stem's with the first
    groups = []
    n = len(per_stage)
    for i, (name, named) in enumerate(per_stage.items()):
        lr = base_lr if layer_decay is None else head_lr * layer_decay ** (n - i)
        groups.append(dict(name=name, lr=lr, params=[p for _, p in named if p.requires_grad]))
    groups.append(dict(name="head", lr=head_lr, params=[p for p in model.get_classifier().parameters()
                                                         if p.requires_grad]))
    return [g for g in groups if g["params"]]


def fold_probe_into_head(probe: nn.Sequential, head: nn.Linear) -> nn.Linear:
    """Copy a probe from :func:`transferlab.train.fit_linear_probe` (standardise, then linear) into ``head``.

    ``W (x - m) / s + b = (W / s) x + (b - (W / s) m)``, so the model's own head computes the probe's logits.

    Examples
    --------
    >>> f, y = torch.randn(20, 4), torch.arange(20) % 3
    >>> probe = fit_linear_probe(f, y, 3, epochs=5); head = nn.Linear(4, 3)
    >>> torch.allclose(fold_probe_into_head(probe, head)(f), probe(f), atol=1e-5)
    True
    """
    scale, linear = probe[0], probe[1]
    if linear.weight.shape != head.weight.shape:
        raise ValueError(f"the probe maps {linear.in_features} features to {linear.out_features} classes but the "
                         f"head is {head.in_features} -> {head.out_features}")
    with torch.no_grad():
        w = linear.weight / scale.std
        head.weight.copy_(w.to(head.weight))
        head.bias.copy_((linear.bias - w @ scale.mean).to(head.bias))
    return head


# ----------------------------------------------------------------------------------------------- one run
def _task(n_per_class: int, similarity, seed: int, n_test_per_class: int, size: int, model_cfg=None):
    """The target task: the world's at a similarity (float), or a real dataset / ImageFolder (str).

    ``model_cfg``: the model's ``pretrained_cfg`` as ``(key, value)`` items (real data is read at its size and
    statistics). Cached: every strategy and k of one (size, target, seed) trains on the same tensors; real
    tasks (hundreds of MB at 224 px) are kept two at a time, world tasks (a few MB) twelve.
    """
    if isinstance(similarity, str):
        return _real_task(n_per_class, similarity, seed, n_test_per_class, model_cfg)
    return _world_task(n_per_class, similarity, seed, n_test_per_class, size)


@functools.lru_cache(maxsize=12)
def _world_task(n_per_class, similarity, seed, n_test_per_class, size):
    from .world import target_task

    return target_task(n_per_class, similarity, seed=seed, n_test_per_class=n_test_per_class, size=size)


@functools.lru_cache(maxsize=2)
def _real_task(n_per_class, name, seed, n_test_per_class, model_cfg):
    from .datasets import load_task

    return load_task(name, n_per_class, seed=seed, n_test_per_class=n_test_per_class,
                     model=dict(model_cfg) if model_cfg else None, progress=False)


def _check_similarity(similarity):
    """A target: a world similarity in [0, 1] (rounded to 4 digits), or a real dataset's name / ``folder:`` path.

    Real data has a fixed similarity to the pretraining data (ImageNet for timm models), so on the online path
    the similarity axis is a list of datasets, e.g. ``("pets", "eurosat")`` (priors in
    ``transferlab.datasets.DATASETS``; :func:`transferlab.datasets.similarity_ladder` lists them).
    """
    if isinstance(similarity, str):
        from .datasets import DATASETS, WORLD_NAMES

        if similarity in DATASETS or similarity.startswith("folder:"):
            return similarity
        if similarity in WORLD_NAMES:
            raise ValueError(f"similarity {similarity!r}: for the world give the similarity as a number in [0, 1]")
        raise ValueError(f"similarity must be a number in [0, 1] (the world) or a real dataset "
                         f"({sorted(DATASETS)} or 'folder:/path'), got {similarity!r}")
    if isinstance(similarity, bool) or not isinstance(similarity, (int, float)) or not 0 <= similarity <= 1:
        raise ValueError(f"similarity must be a number in [0, 1] (or a real dataset's name), got {similarity!r}")
    return round(float(similarity), 4)


def _sim_text(similarity) -> str:
    return similarity if isinstance(similarity, str) else f"{float(similarity):.4f}"


def sim_label(similarity) -> str:
    """A point of the similarity axis as text: ``"0.5"`` for the world, the dataset's name for real data.

    Examples
    --------
    >>> sim_label(0.5), sim_label("pets")
    ('0.5', 'pets')
    """
    return similarity if isinstance(similarity, str) else f"{similarity:g}"


def at_similarity(column, value):
    """Boolean mask of the rows of ``column`` at one point of the similarity axis (a float or a dataset name).

    Examples
    --------
    >>> import pandas as pd
    >>> at_similarity(pd.Series([1.0, 0.5]), 0.5).tolist()
    [False, True]
    >>> at_similarity(pd.Series(["pets", "eurosat"]), "pets").tolist()
    [True, False]
    """
    import numpy as np
    import pandas as pd

    if isinstance(value, str):
        return (column == value).to_numpy()
    return np.isclose(pd.to_numeric(column, errors="coerce"), value)


@functools.lru_cache(maxsize=8)
def _model_cfg(model: str) -> tuple:
    """The pretrained config (image size, mean, std, interpolation) real data is prepared with, as items."""
    cfg = build_model(RunConfig(model=model), pretrained=True, device="cpu").pretrained_cfg
    return tuple((k, v) for k, v in cfg.items() if k in ("input_size", "mean", "std", "interpolation"))


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _probe(model, task, config, seed, device):
    bs = 500
    f_train, y_train = extract_features(model, task.loader("train", bs, shuffle=False), device=device)
    f_test, y_test = extract_features(model, task.loader("test", bs, shuffle=False), device=device)
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
    n_per_class, similarity : the target task: the world's ``target_task`` at ``similarity`` in [0, 1], or a
        real dataset's name / ``"folder:/path"`` (read with ``transferlab.datasets.load_task`` at the model's
        ``pretrained_cfg`` size and statistics); ``seed`` also picks its images, so every strategy run with
        the same seed sees the same data.
    strategy : a key of :data:`STRATEGIES`.
    k : number of frozen stages, counted from the input (``None``: the strategy's default).
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
    from .device import resolve_device
    from .freeze import freeze_stages

    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    strat = _strategy(strategy)
    n_per_class = _check_int("n_per_class", n_per_class, 1)
    seed = _check_int("seed", seed, 0)
    similarity = _check_similarity(similarity)
    stages = stages_of(config)
    k = strat.check_k(k, len(stages))
    device = resolve_device(device)

    cfg = _model_cfg(config.model) if isinstance(similarity, str) else None  # items: hashable for the task cache
    task = _task(n_per_class, similarity, seed, config.n_test_per_class, config.image_size, cfg)
    model = build_model(config, pretrained=strat.pretrained, seed=seed, num_classes=task.num_classes, device=device)
    t0 = time.perf_counter()  # the run's cost: training and evaluation (not the one-off zoo read)
    epochs = config.epochs(len(task.y_train))
    base_lr = config.lr_finetune if strat.base_lr == "finetune" else config.lr_scratch
    head_lr = config.lr_scratch
    row = dict(n_per_class=n_per_class, similarity=similarity, strategy=strategy, k=k, seed=seed)
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
                   callbacks=callbacks, val=task.loader("test", 500) if val else None, desc=strategy)
        acc = evaluate(model, task.loader("test", 500), device=device)["acc"]
        train_acc = hist.last("train_acc")
        history = hist.rows
        if strat.discriminative:
            base_lr = min(g["lr"] for g in groups)
    row.update(acc=float(acc), seconds=round(time.perf_counter() - t0, 3), train_acc=float(train_acc),
               epochs=epochs, lr_base=float(base_lr), lr_head=float(head_lr), model=config.model,
               n_stages=len(stages), config=config.fingerprint())
    if val and history is not None:
        row["history"] = history
    return row


# ----------------------------------------------------------------------------------------------- cache
class ResultCache:
    """Finished result rows, keyed by (config fingerprint, n_per_class, similarity, strategy, k, seed).

    Parameters
    ----------
    where : str, Path or None
        A plain name (``"01_freezing_strategies"``) stores ``$TRANSFERLAB_HOME/experiments/<name>.json``; a
        path stores there; ``None`` keeps rows in memory only. Every ``put`` re-reads the file, merges and
        writes it atomically (a temporary file renamed over it), so parallel runs lose no finished row.
        A file that is not a transferlab result cache is never overwritten (``ValueError``).

    Examples
    --------
    >>> c = ResultCache(None)
    >>> c.put(dict(config="abc", n_per_class=20, similarity=1.0, strategy="probe", k=4, seed=0, acc=0.9))
    >>> c.get("abc", 20, 1.0, "probe", 4, 0)["acc"], len(c)
    (0.9, 1)
    """

    FORMAT = "transferlab-results/1"

    def __init__(self, where: str | Path | None = "01_freezing_strategies"):
        if where is None:
            self.path = None
        elif isinstance(where, Path) or any(sep in str(where) for sep in "/\\"):
            self.path = Path(where).expanduser()
        elif isinstance(where, str) and where:
            from .zoo import home

            self.path = home() / "experiments" / f"{where}.json"
        else:
            raise ValueError(f"where must be a name, a path or None, got {where!r}")
        self._rows: dict[str, dict] = {}
        if self.path is not None:
            self._rows.update(self._read())

    @staticmethod
    def key(config: str, n_per_class: int, similarity: float, strategy: str, k: int, seed: int) -> str:
        return f"{config}|{int(n_per_class)}|{_sim_text(similarity)}|{strategy}|{int(k)}|{int(seed)}"

    def _row_key(self, row: Mapping) -> str:
        try:
            return self.key(row["config"], row["n_per_class"], row["similarity"], row["strategy"], row["k"],
                            row["seed"])
        except KeyError as err:
            raise KeyError(f"a result row needs config, n_per_class, similarity, strategy, k and seed; this one "
                           f"lacks {err.args[0]!r}") from None

    def _read(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            payload = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict) or payload.get("format") != self.FORMAT:
            raise ValueError(f"{self.path} exists but is not a transferlab result cache (format {self.FORMAT!r}); "
                             f"it is left untouched: pass another name or path")
        return {self._row_key(r): r for r in payload["rows"]}

    def get(self, config: str, n_per_class: int, similarity: float, strategy: str, k: int, seed: int):
        """The cached row, or ``None``."""
        row = self._rows.get(self.key(config, n_per_class, similarity, strategy, k, seed))
        return None if row is None else dict(row)

    def put(self, row: Mapping) -> None:
        """Store a finished row (and write the file, merged with what other processes wrote meanwhile)."""
        row = {key: value for key, value in row.items() if key != "history"}
        self._rows[self._row_key(row)] = row
        if self.path is None:
            return
        from .zoo import _atomic_write

        merged = {**self._read(), **self._rows}
        self._rows = merged
        text = json.dumps(dict(format=self.FORMAT, rows=list(merged.values())), indent=1)
        _atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self):
        """All cached rows as a DataFrame."""
        return _frame(list(self._rows.values()))

    def __repr__(self):
        return f"ResultCache({str(self.path) if self.path else 'in memory'}, rows={len(self)})"


def _frame(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    first = [c for c in RESULT_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


# ----------------------------------------------------------------------------------------------- grids
def default_plan(n_stages: int) -> list[tuple[str, int]]:
    """Every strategy of the lesson: probe (k = all), freeze k = 0..n-1, and the other four at their k.

    Examples
    --------
    >>> default_plan(2)
    [('probe', 2), ('freeze', 0), ('freeze', 1), ('finetune-scratch-lr', 0), ('scratch', 0), \
('head-first', 0), ('discriminative-lr', 0)]
    """
    n_stages = _check_int("n_stages", n_stages, 1)
    return ([("probe", n_stages)] + [("freeze", k) for k in range(n_stages)]
            + [("finetune-scratch-lr", 0), ("scratch", 0), ("head-first", 0), ("discriminative-lr", 0)])


def _normalise_plan(plan, n_stages: int) -> list[tuple[str, int]]:
    out = []
    for item in plan:
        name, k = (item, None) if isinstance(item, str) else tuple(item)
        out.append((name, _strategy(name).check_k(k, n_stages)))
    if not out:
        raise ValueError("the plan is empty: give at least one strategy (e.g. default_plan(n_stages))")
    return out


def run_grid(sizes: Sequence[int], similarities: Sequence[float], plan: Iterable | None = None,
             seeds: Sequence[int] = (0, 1, 2), *, config: RunConfig | None = None,
             cache: ResultCache | None = None, device=None, progress: bool = True, desc: str = "grid"):
    """Run every (size, similarity, seed, strategy) combination; returns a tidy DataFrame, one row per run.

    Parameters
    ----------
    sizes, similarities, seeds : the axes of the grid (similarities: world similarities or real datasets, see
        :func:`run_one`).
    plan : strategies, each a name or a ``(name, k)`` pair (default: :func:`default_plan`).
    cache : rows found there are reused (their ``cached`` column is True), new rows are stored there.

    Returns
    -------
    pandas.DataFrame with ``RESULT_COLUMNS`` first, then the other keys of :func:`run_one`'s rows and
    ``cached``.

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=20, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, image_size=16, probe_epochs=2)
    >>> df = run_grid([2], [1.0, 0.0], ["probe"], seeds=[0], config=cfg, progress=False)
    >>> df[["similarity", "strategy", "k"]].values.tolist()
    [[1.0, 'probe', 4], [0.0, 'probe', 4]]
    """
    from tqdm.auto import tqdm

    config = RunConfig() if config is None else config
    stages = stages_of(config)
    plan = _normalise_plan(default_plan(len(stages)) if plan is None else plan, len(stages))
    sizes = [_check_int("n_per_class", n, 1) for n in sizes]
    similarities = [_check_similarity(s) for s in similarities]
    seeds = [_check_int("seed", s, 0) for s in seeds]
    if not sizes or not similarities or not seeds:
        raise ValueError(f"sizes, similarities and seeds must be non-empty, got {sizes}, {similarities}, {seeds}")
    fp = config.fingerprint()
    rows = []
    total = len(sizes) * len(similarities) * len(seeds) * len(plan)
    with tqdm(total=total, desc=desc, disable=not progress) as bar:
        for n in sizes:
            for sim in similarities:
                for seed in seeds:
                    for name, k in plan:
                        bar.set_postfix_str(f"n={n} sim={sim_label(sim)} {name} k={k} seed={seed}")
                        row = cache.get(fp, n, sim, name, k, seed) if cache is not None else None
                        if row is None:
                            row = run_one(n, sim, name, k, seed, config=config, device=device)
                            if cache is not None:
                                cache.put(row)
                            row["cached"] = False
                        else:
                            row["cached"] = True
                        rows.append(row)
                        bar.update(1)
    return _frame(rows)


def make_recompute(config: RunConfig | None = None, cache: ResultCache | None = None,
                   device=None) -> Callable[..., dict]:
    """A ``recompute(n_per_class, similarity, strategy, k, seed) -> row`` callable for the widgets.

    Cached rows are returned at once; new ones are computed with :func:`run_one` and stored in ``cache``.

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=20, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, image_size=16, probe_epochs=2)
    >>> recompute = make_recompute(cfg, ResultCache(None))
    >>> recompute(2, 0.5, "probe", 4, 0)["strategy"]
    'probe'
    """
    config = RunConfig() if config is None else config
    fp = config.fingerprint()

    def recompute(n_per_class: int, similarity: float, strategy: str, k: int | None, seed: int) -> dict:
        k = _strategy(strategy).check_k(k, len(stages_of(config)))
        row = cache.get(fp, n_per_class, _check_similarity(similarity), strategy, k, seed) if cache else None
        if row is not None:
            return dict(row, cached=True)
        row = run_one(n_per_class, similarity, strategy, k, seed, config=config, device=device)
        if cache is not None:
            cache.put(row)
        return dict(row, cached=False)

    return recompute


def summarize(results, by: Sequence[str] = ("n_per_class", "similarity", "strategy", "k")):
    """Mean, standard deviation (ddof=1) and count of ``acc`` over seeds, plus the mean run time.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(n_per_class=[2, 2], similarity=[1.0, 1.0], strategy=["probe"] * 2, k=[4, 4],
    ...                        seed=[0, 1], acc=[0.5, 0.7], seconds=[1.0, 3.0]))
    >>> summarize(df)[["mean", "std", "n_seeds"]].round(3).values.tolist()
    [[0.6, 0.141, 2.0]]
    """
    missing = [c for c in (*by, "acc", "seconds") if c not in results.columns]
    if missing:
        raise KeyError(f"results lack the columns {missing}; expected a frame from run_grid")
    g = results.groupby(list(by), sort=False)
    out = g["acc"].agg(mean="mean", std="std", n_seeds="count")
    out["seconds"] = g["seconds"].mean()
    return out.reset_index()


def best_by_cell(summary, family: Sequence[str] | None = ("probe", "freeze"),
                 cell: Sequence[str] = ("n_per_class", "similarity")):
    """The best (highest mean accuracy) row of ``summary`` per cell, among strategies in ``family``.

    The default family is the "how many stages to freeze" ladder: freeze k = 0..n-1 and the probe (k = n).
    ``family=None`` considers every strategy.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame(dict(n_per_class=[2, 2], similarity=[1.0, 1.0], strategy=["probe", "freeze"],
    ...                       k=[4, 1], mean=[0.5, 0.7], std=[0.0, 0.1]))
    >>> best_by_cell(s)[["strategy", "k"]].values.tolist()
    [['freeze', 1]]
    """
    sub = summary if family is None else summary[summary["strategy"].isin(list(family))]
    if sub.empty:
        raise ValueError(f"no rows of the strategies {list(family)} in the summary")
    idx = sub.groupby(list(cell), sort=False)["mean"].idxmax()
    return sub.loc[idx.values].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- weights
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

    ``rows`` holds dicts ``step, epoch, phase, <stage>...`` plus ``val_acc`` when ``fit`` was given ``val``;
    ``frame()`` returns them as a DataFrame.

    Examples
    --------
    >>> from transferlab.models import KitNet
    >>> from transferlab.world import target_task
    >>> task = target_task(2, n_test_per_class=1, size=16); drift = WeightDrift()
    >>> _ = fit(KitNet(10, widths=(8,)), task.loader("train", 10), epochs=2, progress=False, callbacks=[drift])
    >>> [r["step"] for r in drift.rows], drift.rows[-1]["stem"] > 0
    ([0, 2, 4], True)
    """

    def __init__(self, stages: Sequence[str] | None = None, every: int = 0, reference: dict | None = None,
                 phase: str = ""):
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every must be an integer >= 0, got {every!r}")
        self.stages, self.every, self.reference, self.phase = stages, every, reference, phase
        self.rows: list[dict] = []
        self._offset = 0

    def _record(self, state: TrainState, epoch: float):
        row = dict(step=self._offset + state.step, epoch=epoch, phase=self.phase)
        row.update(stage_weight_change(self.reference, state.model, self.stages))
        if state.history.rows and "val_acc" in state.history.rows[-1] and epoch == int(epoch):
            row["val_acc"] = state.history.rows[-1]["val_acc"]
        self.rows.append(row)

    def on_fit_start(self, state: TrainState):
        if self.stages is None:
            from .models import stage_parameters

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
        import pandas as pd

        return pd.DataFrame(self.rows)
