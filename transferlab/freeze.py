"""Freeze and unfreeze parts of a model by name, by index or by stage, with BatchNorm handled on purpose.

"Freezing" a layer means two separate things in PyTorch, and the helpers here do both:

1. its **parameters** stop changing: ``requires_grad = False`` (no gradient is computed for them, no
   optimizer state is kept for them, and autograd saves fewer activations);
2. its **BatchNorm running statistics** stop changing: no ``requires_grad`` flag, ``torch.no_grad()`` or
   optimizer choice does that; only eval mode does, and ``model.train()`` undoes a one-off ``.eval()``.
   With ``freeze_bn_stats=True`` (the default) every BatchNorm layer inside a frozen module gets the policy
   ``"frozen"`` of :mod:`transferlab.bn_pin` (the kit's one BatchNorm pin, re-exported here): a forward
   pre-hook puts the layer in eval mode right before each of its forwards, so it normalises with its stored
   statistics and leaves ``running_mean``, ``running_var`` and ``num_batches_tracked`` bitwise unchanged,
   whatever ``model.train()`` calls happen later, until the module is unfrozen (which clears the policy and
   gives the layer the mode of the model again). :func:`bn_mode`, :func:`trainable_summary` and
   :func:`check_frozen` read that policy, so they report what the next forward does.

Lesson 02's four freeze methods and the memory probes are in :mod:`transferlab.freeze_methods` (their names
stay importable from here).

Examples
--------
>>> import torch
>>> from transferlab.models import KitNet
>>> m = KitNet(10, widths=(8, 16))
>>> names = freeze_by_names(m, ["stem", "layer1"])
>>> names[:2]
['stem.0.weight', 'stem.1.weight']
>>> _ = m.train(); m.stem[1].training, bn_mode(m.stem[1])   # the flag says train, the policy decides
(True, 'running stats (frozen)')
>>> _ = m(torch.zeros(2, 3, 16, 16)); m.stem[1].training     # the pre-hook set eval before the forward
False
>>> unfreeze_by_names(m, "stem")[:1], bn_mode(m.stem[1])
(['stem.0.weight'], 'batch stats, updates running stats')
"""

from __future__ import annotations

import contextlib
import difflib
import numbers
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from ._validate import as_float
from .bn_pin import (
    BN_POLICIES,
    BNBehaviour,
    bn_behaviour,
    bn_mode,
    bn_policy,
    frozen_bn_names,
    is_batchnorm,
    is_frozen_bn,
    set_bn_policy,
)
from .checks import CheckResult
from .models import stage_groups, stage_parameters

if TYPE_CHECKING:  # pandas is imported when a summary is made, not with the module
    import pandas as pd

__all__ = [
    # the BatchNorm pin, from transferlab.bn_pin
    "BN_POLICIES", "is_batchnorm", "bn_policy", "set_bn_policy", "BNBehaviour", "bn_behaviour", "bn_mode",
    "is_frozen_bn", "frozen_bn_names",
    # selecting, freezing, reporting
    "Selection", "select_modules", "child_names",
    "freeze_by_names", "unfreeze_by_names", "freeze_by_idxs", "unfreeze_by_idxs", "freeze_stages", "unfreeze_all",
    "trainable_summary", "FreezeCheck", "check_frozen",
    # lesson 02's reference methods, from transferlab.freeze_methods (loaded on first use, see __getattr__ below)
    "FREEZE_METHODS", "FrozenRun", "setup_freeze_method", "saved_activation_bytes", "grad_bytes",  # noqa: F822
    "optimizer_state_bytes",  # noqa: F822  (PEP 562: resolved by the module's __getattr__ on first use)
]


# ---------------------------------------------------------------------------------------------- names
def child_names(model: nn.Module) -> list[str]:
    """The names of ``model.children()``, in order (what ``freeze_by_idxs`` indexes).

    Examples
    --------
    >>> child_names(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    ['0', '1']
    """
    return [name for name, _ in model.named_children()]


def _as_names(names: str | Iterable[str]) -> list[str]:
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Iterable):
        raise TypeError(f"names must be a str or an iterable of str, got {type(names).__name__} {names!r}")
    out = list(names)
    for n in out:
        if not isinstance(n, str):
            hint = " (to select children by position use freeze_by_idxs)" if isinstance(n, numbers.Integral) else ""
            raise TypeError(f"names must be strings, got {type(n).__name__} {n!r}{hint}")
    return out


def _resolve(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)`` with a KeyError that lists the valid names and the closest match."""
    if name:
        with contextlib.suppress(AttributeError):  # not there: fall through to the error that lists what is
            return model.get_submodule(name)
    modules = [n for n, _ in model.named_modules() if n]
    msg = f"no module named {name!r} in {type(model).__name__}"
    if name in {n for n, _ in model.named_parameters()}:
        msg += (f": {name!r} is a parameter; freeze its module {name.rpartition('.')[0]!r} so that weight and bias "
                f"are frozen together")
    close = difflib.get_close_matches(name, modules, n=1, cutoff=0.5)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    msg += f" Valid names: the children {child_names(model)}, or a dotted path to any submodule"
    if len(modules) <= 40:
        msg += f" {modules}"
    else:
        msg += f" (e.g. {modules[:10]}; {len(modules)} in all, see model.named_modules())"
    raise KeyError(msg)


class Selection(NamedTuple):
    """What :func:`select_modules` found: the modules, and the parameters below them (each once, in model order)."""

    modules: list[nn.Module]
    param_names: list[str]
    params: list[nn.Parameter]


def select_modules(model: nn.Module, names: str | Iterable[str]) -> Selection:
    """The submodules ``names`` of ``model`` and the parameters below them; every name is checked first.

    Examples
    --------
    >>> select_modules(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), "0").param_names
    ['0.weight', '0.bias']
    """
    mods = [_resolve(model, n) for n in _as_names(names)]
    ids = {id(p) for m in mods for p in m.parameters()}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in ids]
    return Selection(mods, [n for n, _ in named], [p for _, p in named])


def _as_index(i: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):  # NumPy integers are integers too
        raise TypeError(f"{what} must be an integer, got {type(i).__name__} {i!r}")
    return int(i)


def _names_from_idxs(model: nn.Module, idxs: int | Iterable[int]) -> list[str]:
    children = child_names(model)
    single = isinstance(idxs, numbers.Integral) and not isinstance(idxs, bool)
    if not single and (not isinstance(idxs, Iterable) or isinstance(idxs, str)):
        raise TypeError(f"idxs must be an int or an iterable of int, got {type(idxs).__name__} {idxs!r}")
    n, out = len(children), []
    for i in [_as_index(v, "each index") for v in ([idxs] if single else idxs)]:
        if not -n <= i < n:
            raise IndexError(f"child index {i} is out of range: {type(model).__name__} has {n} children "
                             f"{children}, valid indices are {-n}..{n - 1}")
        out.append(children[i % n])
    return out


# ---------------------------------------------------------------------------------------------- freeze, unfreeze
def freeze_by_names(model: nn.Module, names: str | Iterable[str], *, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze every parameter below the named submodules; returns the frozen parameter names.

    Parameters
    ----------
    model : nn.Module
    names : str or iterable of str
        Child names (``"stem"``) or dotted paths (``"layer1.0"``). An unknown name raises ``KeyError``
        whose message lists the valid names and the closest match; nothing is frozen then.
    freeze_bn_stats : bool
        Also give the BatchNorm layers inside the frozen modules the policy ``"frozen"``: they normalise with
        their running statistics and never update them, across later ``model.train()`` calls, until unfrozen.

    Returns
    -------
    list of str
        The names (as in ``model.named_parameters()``, in that order) of the parameters below ``names``.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    >>> freeze_by_names(m, ["0", "1"])
    ['0.weight', '0.bias', '1.weight', '1.bias']
    >>> [p.requires_grad for p in m.parameters()]
    [False, False, False, False, True, True]
    """
    sel = select_modules(model, names)  # validates every name before changing anything
    for p in sel.params:
        p.requires_grad_(False)
    if freeze_bn_stats:
        for mod in sel.modules:
            set_bn_policy(mod, "frozen")
    return sel.param_names


def unfreeze_by_names(model: nn.Module, names: str | Iterable[str], *, optimizer: torch.optim.Optimizer | None = None,
                      lr: float | None = None) -> list[str]:
    """Make every parameter below the named submodules trainable again; returns their names.

    BatchNorm layers below them lose their policy and take the model's current mode (``model.training``).

    Parameters
    ----------
    names : str or iterable of str
        As for :func:`freeze_by_names`.
    optimizer : torch.optim.Optimizer, optional
        If given, the parameters it does not already hold (compared by identity, not by value) are added
        as one new param group, with fresh (empty) optimizer state. Parameters it already holds are left
        in their groups, with whatever state they have (method 1 of lesson 02).
    lr : float, optional
        Learning rate of the new param group (default: the optimizer's default ``lr``). Note that an LR
        scheduler created before the call does not know the new group.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    >>> _ = freeze_by_names(m, "0"); opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    >>> unfreeze_by_names(m, "0", optimizer=opt), len(opt.param_groups)
    (['0.weight', '0.bias'], 2)
    """
    lr = None if lr is None else as_float("lr", lr, min=0, min_open=True)
    sel = select_modules(model, names)
    for p in sel.params:
        p.requires_grad_(True)
    for mod in sel.modules:
        set_bn_policy(mod, None, training=model.training)
    if optimizer is not None:
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        new = [p for p in sel.params if id(p) not in held]
        if new:
            for p in new:
                optimizer.state.pop(p, None)
            optimizer.add_param_group({"params": new} if lr is None else {"params": new, "lr": lr})
    return sel.param_names


def freeze_by_idxs(model: nn.Module, idxs: int | Iterable[int], *, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze children of ``model`` by position (negative counts from the end); see :func:`freeze_by_names`.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> freeze_by_idxs(m, [0, -1])
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    return freeze_by_names(model, _names_from_idxs(model, idxs), freeze_bn_stats=freeze_bn_stats)


def unfreeze_by_idxs(model: nn.Module, idxs: int | Iterable[int], *, optimizer: torch.optim.Optimizer | None = None,
                     lr: float | None = None) -> list[str]:
    """Unfreeze children of ``model`` by position; see :func:`unfreeze_by_names`.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)); _ = freeze_by_idxs(m, 0)
    >>> unfreeze_by_idxs(m, -2)
    ['0.weight', '0.bias']
    """
    return unfreeze_by_names(model, _names_from_idxs(model, idxs), optimizer=optimizer, lr=lr)


def freeze_stages(model: nn.Module, k: int, *, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze the first ``k`` stages of ``transferlab.models.stage_names(model)``; the head never.

    ``k=0`` freezes nothing, ``k=len(stages)`` the whole body. Each stage brings the modules before it
    (:func:`transferlab.models.stage_groups`), so a stem made of several modules (timm's ResNets: ``conv1``,
    ``bn1`` before ``act1``; ConvNeXt's ``stem`` before ``stages.0``) goes with the first stage. Stages
    after the first ``k`` are left as they are; to *set* the number of frozen stages (a slider), call
    ``unfreeze_all(model)`` first.

    Examples
    --------
    >>> from transferlab.models import KitNet
    >>> m = KitNet(10, widths=(8, 16)); names = freeze_stages(m, 2)
    >>> sorted({n.split(".")[0] for n in names})
    ['layer1', 'stem']
    """
    groups = stage_groups(model)
    stages = list(groups)
    k = _as_index(k, "k")
    if not 0 <= k <= len(stages):
        raise IndexError(f"k={k} is out of range: {type(model).__name__} has {len(stages)} stages {stages}, "
                         f"so k must be in 0..{len(stages)}")
    if k == 0:
        return []
    frozen = freeze_by_names(model, [m for st in stages[:k] for m in groups[st]], freeze_bn_stats=freeze_bn_stats)
    per_stage, done = stage_parameters(model), set(frozen)
    loose = [(n, p) for st in stages[:k] for n, p in per_stage[st] if n not in done]
    for _, p in loose:  # parameters the model holds itself (a ViT's cls_token, pos_embed): the first stage's
        p.requires_grad_(False)
    return frozen + [n for n, _ in loose]


def unfreeze_all(model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None,
                 lr: float | None = None) -> list[str]:
    """Unfreeze every parameter and clear every BatchNorm policy of ``model``; returns all parameter names.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(3, 3)); _ = freeze_by_idxs(m, 0); unfreeze_all(m)
    ['0.weight', '0.bias']
    """
    return unfreeze_by_names(model, child_names(model), optimizer=optimizer, lr=lr) if child_names(model) else []


# ---------------------------------------------------------------------------------------------- summary, check
_SHORT = {"running stats (frozen)": "stats frozen", "batch stats, updates running stats": "train (updates stats)",
          "running stats (eval)": "eval", "batch stats, running stats frozen (old Keras)": "old Keras"}


def _bn_summary(module: nn.Module) -> str:
    modes = [_SHORT.get(bn_mode(m), bn_mode(m)) for m in module.modules() if is_batchnorm(m)]
    if not modes:
        return "-"
    if len(set(modes)) == 1:
        return modes[0]
    return "mixed (" + ", ".join(f"{modes.count(s)} {s}" for s in dict.fromkeys(modes)) + ")"


def trainable_summary(model: nn.Module) -> pd.DataFrame:
    """A table, one row per child of ``model`` plus a total: parameters, trainable, frozen, BatchNorm mode.

    Returns a ``pandas.DataFrame`` with columns ``child, type, params, trainable, frozen, bn_layers, bn_mode``.
    ``bn_mode`` says what the child's BatchNorm layers do in the next forward (:func:`bn_mode`), shortened:
    ``"stats frozen"``, ``"train (updates stats)"``, ``"eval"``, ``"old Keras"``, a count of each when they
    differ, or ``"-"`` when the child has no BatchNorm layer.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)); _ = freeze_by_idxs(m, 1)
    >>> trainable_summary(m)[["child", "trainable", "frozen", "bn_mode"]].values.tolist()
    [['0', 9, 0, '-'], ['1', 0, 6, 'stats frozen'], ['total', 9, 6, 'stats frozen']]
    """
    import pandas as pd

    def row(name, mod, params):
        n_train, n_all = sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
        return dict(child=name, type=type(mod).__name__, params=n_all, trainable=n_train, frozen=n_all - n_train,
                    bn_layers=sum(map(is_batchnorm, mod.modules())), bn_mode=_bn_summary(mod))

    rows = [row(name, child, list(child.parameters())) for name, child in model.named_children()]
    rows.append(row("total", model, list(model.parameters())))  # deduplicated: shared weights count once
    return pd.DataFrame(rows)


class FreezeCheck(CheckResult):
    """A :class:`transferlab.checks.CheckResult` that also lists every problem found (``.problems``, empty if right)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        more = f"; ... ({len(self.problems)} in all)" if len(self.problems) > 5 else ""
        shown = "correct" if not self.problems else "not yet: " + "; ".join(self.problems[:5]) + more
        super().__init__(not self.problems, shown, graded_message=shown)  # the learner's model vs the names given


def check_frozen(model: nn.Module, names: str | Iterable[str], *, optimizer: torch.optim.Optimizer | None = None,
                 bn_stats: bool = True, verbose: bool = False) -> FreezeCheck:
    """Exercise check: exactly the modules ``names`` are frozen in ``model``.

    Checks that every parameter below ``names`` has ``requires_grad=False`` and every other one ``True``;
    with ``bn_stats=True`` that exactly the BatchNorm layers below ``names`` have the policy ``"frozen"``; with
    an ``optimizer`` that it holds every trainable parameter exactly once.

    Returns
    -------
    FreezeCheck
        Truthy when right; shows itself as one line in a notebook; ``.problems`` lists what is wrong.
        ``verbose=True`` also prints that line (for scripts).

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)); _ = freeze_by_idxs(m, 0)
    >>> check_frozen(m, "0")
    ✅ correct
    >>> check_frozen(m, "1").problems[0]
    "'0.weight' is frozen but should be trainable"
    """
    frozen_ids = {id(p) for p in select_modules(model, names).params}
    problems = []
    for n, p in model.named_parameters():
        if id(p) in frozen_ids and p.requires_grad:
            problems.append(f"{n!r} is trainable but should be frozen")
        elif id(p) not in frozen_ids and not p.requires_grad:
            problems.append(f"{n!r} is frozen but should be trainable")
    if bn_stats:
        below = {id(m) for name in _as_names(names) for m in _resolve(model, name).modules()}
        for n, m in model.named_modules():
            if is_batchnorm(m) and (id(m) in below) != is_frozen_bn(m):
                problems.append(f"BatchNorm {n!r} should {'' if id(m) in below else 'not '}have frozen statistics")
    if optimizer is not None:
        held = [id(p) for g in optimizer.param_groups for p in g["params"]]
        for n, p in model.named_parameters():
            if p.requires_grad and held.count(id(p)) != 1:
                problems.append(f"the optimizer holds trainable {n!r} {held.count(id(p))} times, expected once")
    result = FreezeCheck(problems)
    if verbose:
        print(repr(result))
    return result


# ---------------------------------------------------------------------------------------------- moved names
_MOVED = ("FREEZE_METHODS", "FrozenRun", "setup_freeze_method", "saved_activation_bytes", "grad_bytes",
          "optimizer_state_bytes")


def __getattr__(name: str):
    """``transferlab.freeze.FREEZE_METHODS`` and the other names that moved to :mod:`transferlab.freeze_methods`."""
    if name in _MOVED:
        from . import freeze_methods  # imported on first use: freeze_methods itself builds on this module

        return getattr(freeze_methods, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
