"""Freeze and unfreeze parts of a model by name, by index or by stage, with BatchNorm handled on purpose.

"Freezing" a layer means two separate things in PyTorch, and the helpers here do both:

1. its **parameters** stop changing: ``requires_grad = False`` (no gradient is computed for them, no
   optimizer state is kept for them, and autograd saves fewer activations);
2. its **BatchNorm running statistics** stop changing: no ``requires_grad`` flag, ``torch.no_grad()`` or
   optimizer choice does that; only eval mode does, and ``model.train()`` undoes a one-off ``.eval()``.
   With ``freeze_bn_stats=True`` (the default) every BatchNorm layer inside a frozen module gets a forward
   pre-hook that puts it in eval mode right before each of its forwards, so it normalises with its stored
   statistics and leaves ``running_mean``, ``running_var`` and ``num_batches_tracked`` bitwise unchanged,
   whatever ``model.train()`` calls happen later, until the module is unfrozen (which removes the hook and
   gives the layer the mode of the model again).

Lesson 02 writes out the four ways PyTorch code freezes a layer and measures them; :data:`FREEZE_METHODS`
and :func:`setup_freeze_method` hold the same four as reference implementations for the tests and the
benchmark.

Examples
--------
>>> import torch
>>> from transferlab.models import KitNet
>>> m = KitNet(10, widths=(8, 16))
>>> names = freeze_by_names(m, ["stem", "layer1"])
>>> names[:2]
['stem.0.weight', 'stem.1.weight']
>>> _ = m.train(); m.stem[1].training   # model.train() flips it, the pre-hook flips it back at each forward
True
>>> _ = m(torch.zeros(2, 3, 16, 16)); m.stem[1].training
False
>>> unfreeze_by_names(m, "stem")[:1]
['stem.0.weight']
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "freeze_by_names",
    "unfreeze_by_names",
    "freeze_by_idxs",
    "unfreeze_by_idxs",
    "freeze_stages",
    "unfreeze_all",
    "trainable_summary",
    "check_frozen",
    "is_frozen_bn",
    "frozen_bn_names",
    "child_names",
    "FREEZE_METHODS",
    "FrozenRun",
    "setup_freeze_method",
    "saved_activation_bytes",
    "grad_bytes",
    "optimizer_state_bytes",
]

_MARK = "_transferlab_bn_frozen"


# ---------------------------------------------------------------------------------------------- BN pinning
def _pin_eval(module: nn.Module, args):
    """Forward pre-hook: a frozen BN layer normalises with its stored statistics and does not update them."""
    if getattr(module, _MARK, False):
        module.training = False


def _pin_bn(bn: _BatchNorm) -> None:
    setattr(bn, _MARK, True)
    if not any(h is _pin_eval for h in bn._forward_pre_hooks.values()):
        bn.register_forward_pre_hook(_pin_eval)
    bn.training = False


def _unpin_bn(bn: _BatchNorm, training: bool) -> None:
    if hasattr(bn, _MARK):
        delattr(bn, _MARK)
    for key in [k for k, h in bn._forward_pre_hooks.items() if h is _pin_eval]:
        del bn._forward_pre_hooks[key]
    bn.training = training


def is_frozen_bn(module: nn.Module) -> bool:
    """True if ``module`` is a BatchNorm layer whose running statistics are pinned by :func:`freeze_by_names`.

    Examples
    --------
    >>> bn = nn.BatchNorm1d(3); is_frozen_bn(bn)
    False
    >>> _ = freeze_by_names(nn.Sequential(bn), "0"); is_frozen_bn(bn)
    True
    """
    return isinstance(module, _BatchNorm) and bool(getattr(module, _MARK, False))


def frozen_bn_names(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers in ``model`` whose running statistics are pinned."""
    return [name for name, mod in model.named_modules() if is_frozen_bn(mod)]


# ---------------------------------------------------------------------------------------------- names
def child_names(model: nn.Module) -> list[str]:
    """The names of ``model.children()``, in order (what ``freeze_by_idxs`` indexes).

    Examples
    --------
    >>> child_names(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    ['0', '1']
    """
    return [name for name, _ in model.named_children()]


def _as_names(names) -> list[str]:
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Iterable):
        raise TypeError(f"names must be a str or an iterable of str, got {type(names).__name__} {names!r}")
    out = list(names)
    for n in out:
        if not isinstance(n, str):
            hint = " (to select children by position use freeze_by_idxs)" if isinstance(n, int) else ""
            raise TypeError(f"names must be strings, got {type(n).__name__} {n!r}{hint}")
    return out


def _resolve(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)`` with a KeyError that lists the valid names and the closest match."""
    if name:
        with contextlib.suppress(AttributeError):  # not there: fall through to the error that lists what is
            return model.get_submodule(name)
    modules = [n for n, _ in model.named_modules() if n]
    params = {n for n, _ in model.named_parameters()}
    msg = f"no module named {name!r} in {type(model).__name__}"
    if name in params:
        owner = name.rpartition(".")[0]
        msg += (f": {name!r} is a parameter; freeze its module {owner!r} so that weight and bias are frozen "
                f"together")
    close = difflib.get_close_matches(name, modules, n=1, cutoff=0.5)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    msg += f" Valid names: the children {child_names(model)}, or a dotted path to any submodule"
    if len(modules) <= 40:
        msg += f" {modules}"
    else:
        msg += f" (e.g. {modules[:10]}; {len(modules)} in all, see model.named_modules())"
    raise KeyError(msg)


def _collect(model: nn.Module, names: Iterable[str]) -> tuple[list[nn.Module], list[str], list[nn.Parameter]]:
    mods = [_resolve(model, n) for n in _as_names(names)]
    ids = {id(p) for m in mods for p in m.parameters()}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in ids]
    return mods, [n for n, _ in named], [p for _, p in named]


# ---------------------------------------------------------------------------------------------- by name
def freeze_by_names(model: nn.Module, names, *, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze every parameter below the named submodules; returns the frozen parameter names.

    Parameters
    ----------
    model : nn.Module
    names : str or iterable of str
        Child names (``"stem"``) or dotted paths (``"layer1.0"``). An unknown name raises ``KeyError``
        whose message lists the valid names and the closest match; nothing is frozen then.
    freeze_bn_stats : bool
        Also pin the BatchNorm layers inside the frozen modules: they normalise with their running
        statistics and never update them, across later ``model.train()`` calls, until unfrozen.

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
    mods, pnames, params = _collect(model, names)  # validates every name before changing anything
    for p in params:
        p.requires_grad_(False)
    if freeze_bn_stats:
        for mod in mods:
            for sub in mod.modules():
                if isinstance(sub, _BatchNorm):
                    _pin_bn(sub)
    return pnames


def unfreeze_by_names(model: nn.Module, names, *, optimizer: torch.optim.Optimizer | None = None,
                      lr: float | None = None) -> list[str]:
    """Make every parameter below the named submodules trainable again; returns their names.

    BatchNorm layers below them are unpinned and take the model's current mode (``model.training``).

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
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    mods, pnames, params = _collect(model, names)
    for p in params:
        p.requires_grad_(True)
    for mod in mods:
        for sub in mod.modules():
            if isinstance(sub, _BatchNorm):
                _unpin_bn(sub, model.training)
    if optimizer is not None:
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        new = [p for p in params if id(p) not in held]
        if new:
            for p in new:
                optimizer.state.pop(p, None)
            group = {"params": new}
            if lr is not None:
                group["lr"] = lr
            optimizer.add_param_group(group)
    return pnames


# ---------------------------------------------------------------------------------------------- by index
def _names_from_idxs(model: nn.Module, idxs) -> list[str]:
    children = child_names(model)
    idx_list = [idxs] if isinstance(idxs, int) and not isinstance(idxs, bool) else idxs
    if not isinstance(idx_list, Iterable) or isinstance(idx_list, str):
        raise TypeError(f"idxs must be an int or an iterable of int, got {type(idxs).__name__} {idxs!r}")
    out = []
    n = len(children)
    for i in idx_list:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"indices must be integers, got {type(i).__name__} {i!r}")
        if not -n <= i < n:
            raise IndexError(f"child index {i} is out of range: {type(model).__name__} has {n} children "
                             f"{children}, valid indices are {-n}..{n - 1}")
        out.append(children[i % n])
    return out


def freeze_by_idxs(model: nn.Module, idxs, *, freeze_bn_stats: bool = True) -> list[str]:
    """Freeze children of ``model`` by position (negative counts from the end); see :func:`freeze_by_names`.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> freeze_by_idxs(m, [0, -1])
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    return freeze_by_names(model, _names_from_idxs(model, idxs), freeze_bn_stats=freeze_bn_stats)


def unfreeze_by_idxs(model: nn.Module, idxs, *, optimizer: torch.optim.Optimizer | None = None,
                     lr: float | None = None) -> list[str]:
    """Unfreeze children of ``model`` by position; see :func:`unfreeze_by_names`.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)); _ = freeze_by_idxs(m, 0)
    >>> unfreeze_by_idxs(m, -2)
    ['0.weight', '0.bias']
    """
    return unfreeze_by_names(model, _names_from_idxs(model, idxs), optimizer=optimizer, lr=lr)


# ---------------------------------------------------------------------------------------------- by stage
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
    from .models import stage_groups, stage_parameters

    groups = stage_groups(model)
    stages = list(groups)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}")
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
    """Unfreeze every parameter and unpin every BatchNorm layer of ``model``; returns all parameter names.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3)); _ = freeze_by_idxs(m, 0); unfreeze_all(m)
    ['0.weight', '0.bias']
    """
    return unfreeze_by_names(model, child_names(model), optimizer=optimizer, lr=lr) if child_names(model) else []


# ---------------------------------------------------------------------------------------------- summary
def _bn_mode(module: nn.Module) -> str:
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        return "-"
    pinned = sum(is_frozen_bn(m) for m in bns)
    if pinned == len(bns):
        return "stats frozen"
    if pinned:
        return f"mixed ({pinned}/{len(bns)} frozen)"
    training = {m.training for m in bns}
    return "train (updates stats)" if training == {True} else "eval" if training == {False} else "mixed train/eval"


def trainable_summary(model: nn.Module):
    """A table, one row per child of ``model`` plus a total: parameters, trainable, frozen, BatchNorm mode.

    Returns a ``pandas.DataFrame`` with columns ``child, type, params, trainable, frozen, bn_layers, bn_mode``.
    ``bn_mode`` is ``"stats frozen"`` (pinned by :func:`freeze_by_names`), ``"train (updates stats)"``,
    ``"eval"``, a mix, or ``"-"`` when the child has no BatchNorm layer.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)); _ = freeze_by_idxs(m, 1)
    >>> trainable_summary(m)[["child", "trainable", "frozen", "bn_mode"]].values.tolist()
    [['0', 9, 0, '-'], ['1', 0, 6, 'stats frozen'], ['total', 9, 6, 'stats frozen']]
    """
    import pandas as pd

    rows = []
    for name, child in model.named_children():
        params = list(child.parameters())
        n_train = sum(p.numel() for p in params if p.requires_grad)
        n_all = sum(p.numel() for p in params)
        rows.append(dict(child=name, type=type(child).__name__, params=n_all, trainable=n_train,
                         frozen=n_all - n_train, bn_layers=sum(isinstance(m, _BatchNorm) for m in child.modules()),
                         bn_mode=_bn_mode(child)))
    params = list(model.parameters())  # deduplicated: shared weights count once
    n_train = sum(p.numel() for p in params if p.requires_grad)
    n_all = sum(p.numel() for p in params)
    rows.append(dict(child="total", type=type(model).__name__, params=n_all, trainable=n_train,
                     frozen=n_all - n_train, bn_layers=sum(isinstance(m, _BatchNorm) for m in model.modules()),
                     bn_mode=_bn_mode(model)))
    return pd.DataFrame(rows)


def check_frozen(model: nn.Module, names, *, optimizer: torch.optim.Optimizer | None = None,
                 bn_stats: bool = True, verbose: bool = True) -> list[str]:
    """Exercise check: exactly the modules ``names`` are frozen in ``model``; returns the problems found.

    Checks that every parameter below ``names`` has ``requires_grad=False`` and every other one ``True``;
    with ``bn_stats=True`` that exactly the BatchNorm layers below ``names`` are pinned; with an
    ``optimizer`` that it holds every trainable parameter exactly once. An empty list means correct.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)); _ = freeze_by_idxs(m, 0)
    >>> check_frozen(m, "0", verbose=False)
    []
    >>> check_frozen(m, "1", verbose=False)[0]
    "'0.weight' is frozen but should be trainable"
    """
    _, _, frozen = _collect(model, names)
    frozen_ids = {id(p) for p in frozen}
    problems = []
    for n, p in model.named_parameters():
        if id(p) in frozen_ids and p.requires_grad:
            problems.append(f"{n!r} is trainable but should be frozen")
        elif id(p) not in frozen_ids and not p.requires_grad:
            problems.append(f"{n!r} is frozen but should be trainable")
    if bn_stats:
        below = {id(m) for name in _as_names(names) for m in _resolve(model, name).modules()}
        for n, m in model.named_modules():
            if isinstance(m, _BatchNorm) and (id(m) in below) != is_frozen_bn(m):
                problems.append(f"BatchNorm {n!r} should {'' if id(m) in below else 'not '}have frozen statistics")
    if optimizer is not None:
        held = [id(p) for g in optimizer.param_groups for p in g["params"]]
        for n, p in model.named_parameters():
            if p.requires_grad and held.count(id(p)) != 1:
                problems.append(f"the optimizer holds trainable {n!r} {held.count(id(p))} times, expected once")
    if verbose:
        print("correct" if not problems else "not yet:\n  " + "\n  ".join(problems))
    return problems


# ---------------------------------------------------------------------------------------------- the four methods
FREEZE_METHODS = ("requires_grad", "exclude", "restore", "no_grad", "helper")
"""The four ways lesson 02 freezes a layer, and the kit's helper:

- ``"requires_grad"``: ``p.requires_grad = False``; optimizer over ``filter(lambda p: p.requires_grad, ...)``;
- ``"exclude"``: frozen parameters left out of the optimizer (they still get gradients);
- ``"restore"``: optimizer over everything; frozen weights cached and copied back after every step;
- ``"no_grad"``: the frozen modules run under ``torch.no_grad()`` in forward (only right for a prefix of
  the network: nothing before a no-grad module receives gradients);
- ``"helper"``: :func:`freeze_by_names` (``requires_grad`` plus pinned BatchNorm statistics).
"""


@dataclass
class FrozenRun:
    """A model set up with one freeze method: call :meth:`step` with a loss to take one training step."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    method: str
    frozen: list[str]
    cache: dict = field(default_factory=dict)

    def step(self, loss: torch.Tensor, *, set_to_none: bool = True) -> None:
        """``zero_grad`` (of the optimizer's parameters only, as in plain PyTorch code), backward, step."""
        self.optimizer.zero_grad(set_to_none=set_to_none)
        loss.backward()
        self.optimizer.step()
        if self.method == "restore":
            with torch.no_grad():
                for p, saved in self.cache.items():
                    p.copy_(saved)


def _wrap_no_grad(module: nn.Module) -> None:
    original = module.forward

    def forward(*args, **kwargs):
        with torch.no_grad():
            return original(*args, **kwargs)

    module.forward = forward


def setup_freeze_method(model: nn.Module, names, method: str,
                        make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]) -> FrozenRun:
    """Freeze ``names`` in ``model`` with one of :data:`FREEZE_METHODS`; returns a :class:`FrozenRun`.

    Parameters
    ----------
    make_optimizer : callable
        Builds the optimizer from an iterable of parameters, e.g. ``lambda ps: torch.optim.SGD(ps, lr=0.1)``.

    Notes
    -----
    These are reference implementations for tests and benchmarks, not a way to train: ``"no_grad"``
    replaces the frozen modules' ``forward`` in place (not undone), and none of them has an unfreeze.
    For real work use :func:`freeze_by_names` / :func:`unfreeze_by_names`.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)); w = m[0].weight.clone()
    >>> run = setup_freeze_method(m, "0", "restore", lambda ps: torch.optim.SGD(ps, lr=0.1))
    >>> run.step(m(torch.ones(4, 2)).sum()); torch.equal(m[0].weight, w)
    True
    """
    if method not in FREEZE_METHODS:
        raise ValueError(f"unknown freeze method {method!r}; expected one of {FREEZE_METHODS}")
    mods, pnames, params = _collect(model, names)
    frozen_ids = {id(p) for p in params}
    cache = {}
    if method == "helper":
        freeze_by_names(model, names)
        opt = make_optimizer(p for p in model.parameters() if p.requires_grad)
    elif method == "requires_grad":
        for p in params:
            p.requires_grad = False
        opt = make_optimizer(filter(lambda p: p.requires_grad, model.parameters()))
    elif method == "exclude":
        opt = make_optimizer(p for p in model.parameters() if id(p) not in frozen_ids)
    elif method == "restore":
        opt = make_optimizer(model.parameters())
        cache = {p: p.detach().clone() for p in params}
    else:  # no_grad
        for mod in mods:
            _wrap_no_grad(mod)
        opt = make_optimizer(model.parameters())
    return FrozenRun(model, opt, method, pnames, cache)


# ---------------------------------------------------------------------------------------------- memory probes
def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def saved_activation_bytes(model: nn.Module, *inputs, loss_fn: Callable | None = None) -> int:
    """Bytes of the tensors autograd saves for backward during ``model(*inputs)``, parameters excluded.

    Measured with ``torch.autograd.graph.saved_tensors_hooks`` (each storage counted once), so it works the
    same on CPU, CUDA and MPS; the model runs in its current mode, on the device it is on (the inputs are
    moved there), and the graph is discarded. ``loss_fn(output)`` is included when given.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> saved_activation_bytes(m, torch.ones(3, 4)) > 0
    True
    >>> _ = freeze_by_idxs(m, [0, 1]); saved_activation_bytes(m, torch.ones(3, 4))   # only fc2's input: 3x8 floats
    96
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*inputs)
        if loss_fn is not None:
            out = loss_fn(out)
    del out
    return int(sum(seen.values()))


def grad_bytes(model: nn.Module) -> int:
    """Bytes held in ``.grad`` of the model's parameters (``None`` grads hold nothing).

    Examples
    --------
    >>> m = nn.Linear(3, 2); m(torch.ones(1, 3)).sum().backward(); grad_bytes(m)
    32
    """
    return int(sum(_nbytes(p.grad) for p in model.parameters() if p.grad is not None))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the tensors in ``optimizer.state`` (momentum buffers, Adam moments, step counters).

    Examples
    --------
    >>> m = nn.Linear(3, 2); opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    >>> m(torch.ones(1, 3)).sum().backward(); opt.step(); optimizer_state_bytes(opt)
    32
    """
    return int(sum(_nbytes(v) for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)))
