"""Lesson 02's four ways to freeze a layer, as reference implementations, and the probes that measure their cost.

PyTorch code freezes layers in four ways, and lesson 02 writes each out and measures it:

1. ``requires_grad = False`` on the frozen parameters, optimizer over the trainable ones;
2. the frozen parameters left out of the optimizer (autograd still computes their gradients);
3. an optimizer over everything, the frozen weights copied back after every step;
4. the frozen modules run under ``torch.no_grad()`` in ``forward`` (only right for a prefix of the network).

:func:`setup_freeze_method` sets a model up with one of them (or the kit's helper,
:func:`transferlab.freeze.freeze_by_names`) for the tests and the benchmark; :func:`saved_activation_bytes`,
:func:`grad_bytes` and :func:`optimizer_state_bytes` count the memory each one costs. For real work use
:mod:`transferlab.freeze`, which also keeps BatchNorm statistics fixed and can unfreeze.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validate import as_choice
from .freeze import freeze_by_names, select_modules

__all__ = ["FREEZE_METHODS", "FrozenRun", "setup_freeze_method", "saved_activation_bytes", "grad_bytes",
           "optimizer_state_bytes"]


FREEZE_METHODS = ("requires_grad", "exclude", "restore", "no_grad", "helper")
"""The four ways lesson 02 freezes a layer, and the kit's helper:

- ``"requires_grad"``: ``p.requires_grad = False``; optimizer over ``filter(lambda p: p.requires_grad, ...)``;
- ``"exclude"``: frozen parameters left out of the optimizer (they still get gradients);
- ``"restore"``: optimizer over everything; frozen weights cached and copied back after every step;
- ``"no_grad"``: the frozen modules run under ``torch.no_grad()`` in forward (only right for a prefix of
  the network: nothing before a no-grad module receives gradients);
- ``"helper"``: :func:`transferlab.freeze.freeze_by_names` (``requires_grad`` plus BatchNorm statistics
  frozen by the policy ``"frozen"``).
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
    For real work use :func:`transferlab.freeze.freeze_by_names` / ``unfreeze_by_names``.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)); w = m[0].weight.clone()
    >>> run = setup_freeze_method(m, "0", "restore", lambda ps: torch.optim.SGD(ps, lr=0.1))
    >>> run.step(m(torch.ones(4, 2)).sum()); torch.equal(m[0].weight, w)
    True
    """
    method = as_choice("freeze method", method, FREEZE_METHODS)
    mods, pnames, params = select_modules(model, names)
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
    >>> _ = freeze_by_names(m, ["0", "1"]); saved_activation_bytes(m, torch.ones(3, 4))   # only fc2's input: 3x8 floats
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
