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

:func:`frozen_children` reads which children a helper froze; :func:`check_names`, :func:`check_restore`,
:func:`check_freeze_idxs` and :func:`check_unfreeze` are the lesson's exercise checks (each returns a
:class:`transferlab.checks.CheckResult` that says why when the answer is wrong).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validate import as_choice, as_int
from .checks import CheckResult, exercise_solution
from .device import seeded
from .freeze import check_frozen, child_names, freeze_by_names, select_modules

__all__ = ["FREEZE_METHODS", "FrozenRun", "setup_freeze_method", "saved_activation_bytes", "grad_bytes",
           "optimizer_state_bytes", "frozen_children", "check_names", "check_restore", "check_freeze_idxs",
           "check_unfreeze"]


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


# ---------------------------------------------------------------------------------------------- reading, checks
def frozen_children(model: nn.Module) -> list[str]:
    """The children of ``model`` that have parameters and none of them trainable, in order.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)); _ = m[2].requires_grad_(False)
    >>> frozen_children(m)
    ['2']
    """
    out = []
    for name, child in model.named_children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(name)
    return out


@exercise_solution("$answer = set($expected)", answer="answer")
def check_names(question: str, answer, expected: Iterable[str], *, explain: str = "", hint: str = "") -> CheckResult:
    """Compare a set of names (children, parameters) with the one this run measured; order does not matter.

    ``answer`` may be a string (one name) or any iterable of strings; ``None`` means "no answer yet". When
    wrong, the result says which names are missing and which are extra, then ``hint`` and ``explain``; in graded
    mode only that the set is not the measured one, then ``hint`` (see :mod:`transferlab.checks`).

    Examples
    --------
    >>> check_names("frozen children", ["fc1", "embed"], {"embed", "fc1"})
    ✅ frozen children: right ({'embed', 'fc1'})
    >>> check_names("frozen children", "fc1", ["embed", "fc1"]).message
    "frozen children: not yet: missing {'embed'}"
    """
    if answer is None:
        return CheckResult.general(False, f"{question}: no answer yet: replace the None with a set of names")
    got = {answer} if isinstance(answer, str) else answer
    try:
        got = {str(n) for n in got}
    except TypeError:
        return CheckResult.general(False, f"{question}: expected a set of names (strings), got "
                                          f"{type(answer).__name__}")
    want = {str(n) for n in expected}
    if got == want:
        return CheckResult(True, f"{question}: right ({_set(want)})")
    parts = [f"missing {_set(want - got)}" if want - got else "", f"extra {_set(got - want)}" if got - want else ""]
    msg = f"{question}: not yet: " + ", ".join(p for p in parts if p)
    tail = "".join(f". {t}" for t in (hint, explain) if t)
    return CheckResult(False, msg + tail, graded_message=f"{question}: not yet: {_set(got)} is not the set this run "
                       f"measured" + (f". {hint}" if hint else "") + " (graded: the expected answer is not shown)")


def _set(names) -> str:
    return "{" + ", ".join(repr(n) for n in sorted(names)) + "}" if names else "{}"


@exercise_solution("def $restore(layer, old_weights):\n    import torch\n\n    with torch.no_grad():\n"
                   "        layer.weight.copy_(old_weights)  # the values, into the tensor the optimizer holds",
                   answer="restore")
def check_restore(restore: Callable[[nn.Module, torch.Tensor], None] | None, *, steps: int = 5,
                  seed: int = 0) -> CheckResult:
    """Exercise: does ``restore(layer, old_weights)``, called after every step, keep ``layer.weight`` fixed?

    The set-up is the source's method 3: ``old_weights = layer.weight.clone()`` is cached once, the optimizer
    (SGD with momentum) holds every parameter, and ``restore`` runs after each ``optimizer.step()``. Right
    when, after every one of ``steps`` steps, the weight equals the cached one bitwise, the cache itself has
    not moved, and ``layer.weight`` is still the tensor the optimizer updates. When wrong, the result says
    after which step it failed and why (e.g. the weight and the cache share storage).

    Examples
    --------
    >>> def source_restore(layer, old_weights):
    ...     layer.weight.data = old_weights.data          # the source's line
    >>> bool(check_restore(source_restore))
    False
    >>> def copy_restore(layer, old_weights):
    ...     with torch.no_grad():
    ...         layer.weight.copy_(old_weights)
    >>> bool(check_restore(copy_restore))
    True
    """
    if restore is None:
        return CheckResult.general(False, "no answer yet: replace the None with a function restore(layer, "
                                          "old_weights)")
    if not callable(restore):
        return CheckResult.general(False, f"expected a function restore(layer, old_weights), got "
                                          f"{type(restore).__name__}")
    steps = as_int("steps", steps, min=1)
    with seeded(seed):
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        data = [(torch.randn(16, 6), torch.randint(0, 3, (16,))) for _ in range(steps)]
    layer = model[0]
    held = layer.weight
    old_weights = layer.weight.clone()  # the source's cache, taken once before training
    w0 = layer.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step, (x, y) in enumerate(data, start=1):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        try:
            restore(layer, old_weights)
        except Exception as err:  # the learner's code: report any error as the answer's problem
            return CheckResult.general(False, f"Not yet: your restore raised {type(err).__name__}: {err}")
        if layer.weight is not held:
            return CheckResult.general(False, "Not yet: layer.weight is no longer the parameter the optimizer updates "
                                              "(a new tensor was assigned): restore the values, keep the tensor")
        if not torch.equal(old_weights.detach(), w0):
            return CheckResult.general(False, f"Not yet: after step {step} the cache old_weights itself has moved: "
                                              f"it shares storage with the weight, so optimizer.step() updates both")
        if not torch.equal(layer.weight.detach(), w0):
            drift = float((layer.weight.detach() - w0).norm())
            shared = layer.weight.untyped_storage().data_ptr() == old_weights.untyped_storage().data_ptr()
            why = (": the weight and the cache are one storage (`weight.data = old_weights.data` made them so), so "
                   "the step moved the cache too" if shared else "")
            return CheckResult.general(False, f"Not yet: after step {step} the weight is {drift:.3g} away from the "
                                              f"cached weights{why}")
    return CheckResult(True, f"Correct: the weight stayed bitwise equal to the cache through {steps} steps, and the "
                             f"cache kept its own storage.")


@exercise_solution("$idxs = [i - len(list($model.children())) for i, (name, _) in enumerate($model.named_children())\n"
                   "        if name in set($expected)]  # each child's index counted from the end", answer="idxs")
def check_freeze_idxs(model: nn.Module, idxs, expected: Iterable[str], *, negative: bool = True) -> CheckResult:
    """Exercise: does ``transferlab.freeze.freeze_by_idxs(model, idxs)`` freeze exactly the children ``expected``?

    Runs on a deep copy (``model`` is not changed). With ``negative=True`` every index must be negative
    (counted from the end). ``idxs=None`` means "no answer yet".

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    >>> check_freeze_idxs(m, [-3], ["0"])
    ✅ Correct: freeze_by_idxs(model, [-3]) froze exactly ['0']
    >>> bool(check_freeze_idxs(m, [0], ["0"]))
    False
    """
    import copy

    from .freeze import freeze_by_idxs

    if idxs is None:
        return CheckResult.general(False, "no answer yet: replace the None with a list of child indices")
    values = [idxs] if isinstance(idxs, int) else idxs
    try:
        values = list(values)
    except TypeError:
        return CheckResult.general(False, f"expected a list of integers, got {type(idxs).__name__}")
    if negative and any(not isinstance(i, int) or i >= 0 for i in values):
        return CheckResult.general(False, f"Not yet: {values} has indices that are not negative; count from the end: "
                                          f"-1 is the last of the {len(child_names(model))} children")
    m = copy.deepcopy(model)
    try:
        freeze_by_idxs(m, values)
    except (IndexError, TypeError) as err:
        return CheckResult.general(False, f"Not yet: freeze_by_idxs refused {values}: {err}")
    result = check_frozen(m, list(expected))
    if result:
        return CheckResult(True, f"Correct: freeze_by_idxs(model, {values}) froze exactly {list(expected)}")
    said = f"Not yet: freeze_by_idxs(model, {values}) froze {frozen_children(m)}"
    return CheckResult(False, f"{said}, expected {list(expected)} ({result.message})",
                       graded_message=f"{said}: not exactly the children the exercise names (graded: the expected "
                                      f"answer is not shown)")


@exercise_solution("def $unfreeze(model, optimizer):\n    from transferlab.freeze import unfreeze_by_names\n\n"
                   "    # its own param group, fresh optimizer state, BatchNorm statistics free again\n"
                   "    unfreeze_by_names(model, $name, optimizer=optimizer, lr=$lr_ratio * optimizer.defaults['lr'])",
                   answer="unfreeze")
def check_unfreeze(unfreeze: Callable[[nn.Module, torch.optim.Optimizer], None] | None, model: nn.Module, *,
                   stages: int, name: str, lr_ratio: float = 0.1) -> CheckResult:
    """Exercise: unfreeze ``name`` after ``freeze_stages(model, stages)``, at ``lr_ratio`` x the head's learning rate.

    The check freezes a deep copy of ``model`` with :func:`transferlab.freeze.freeze_stages`, builds ``AdamW``
    over the trainable parameters, then calls ``unfreeze(model, optimizer)``. Right when exactly the stages'
    modules other than ``name`` stay frozen (parameters and BatchNorm statistics), the optimizer holds every
    trainable parameter once (no ``ValueError``, nothing twice), and the parameters of ``name`` have a param group
    of their own at ``lr_ratio`` x the optimizer's learning rate.

    Examples
    --------
    >>> from transferlab.freeze import unfreeze_by_names
    >>> from transferlab.models import KitNet
    >>> def unfreeze(model, opt):
    ...     unfreeze_by_names(model, "layer1", optimizer=opt, lr=opt.defaults["lr"] / 10)
    >>> check_unfreeze(unfreeze, KitNet(10, widths=(8, 16)), stages=2, name="layer1")
    ✅ Correct: 'layer1' trains in its own param group at 0.1x the head's learning rate; the rest as it was
    """
    import copy

    from .freeze import freeze_stages
    from .models import stage_groups

    if unfreeze is None:
        return CheckResult.general(False, "no answer yet: replace the None with a function unfreeze(model, "
                                          "optimizer)")
    if not callable(unfreeze):
        return CheckResult.general(False, f"expected a function unfreeze(model, optimizer), got "
                                          f"{type(unfreeze).__name__}")
    m = copy.deepcopy(model)
    freeze_stages(m, stages)
    target = {id(p) for p in select_modules(m, name).params}
    groups = stage_groups(m)
    keep = [mod for st in list(groups)[:stages] for mod in groups[st]
            if not any(id(p) in target for p in m.get_submodule(mod).parameters())]
    optimizer = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    try:
        unfreeze(m, optimizer)
    except Exception as err:  # the learner's code: report any error as the answer's problem
        return CheckResult.general(False, f"Not yet: your unfreeze raised {type(err).__name__}: {err}")
    result = check_frozen(m, keep, optimizer=optimizer)
    if not result:  # what the learner's function left wrong, parameter by parameter (the question names the stages)
        return CheckResult.general(False, f"Not yet: {result.message}")
    base = optimizer.defaults["lr"]
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        if ids & target and not ids <= target:
            return CheckResult.general(False, f"Not yet: {name!r} shares a param group with other parameters, so it "
                                              f"cannot have a learning rate of its own")
        if ids & target and not math.isclose(group["lr"], lr_ratio * base, rel_tol=1e-6):
            said = f"Not yet: {name!r} trains at lr {group['lr']:g}; want {lr_ratio:g} x the head's"
            return CheckResult(False, f"{said} {base:g} = {lr_ratio * base:g}",
                               graded_message=f"{said} learning rate (optimizer.defaults['lr'])")
    return CheckResult(True, f"Correct: {name!r} trains in its own param group at {lr_ratio:g}x the head's learning "
                             f"rate; the rest as it was")
