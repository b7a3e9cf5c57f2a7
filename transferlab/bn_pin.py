"""The one BatchNorm pin: a policy per BatchNorm layer, applied by one forward pre-hook right before each forward.

BatchNorm behaves differently in training and in inference: in train mode it normalises with the statistics of
the current mini-batch *and* updates its running estimates; in eval mode it normalises with the running
estimates and changes nothing. ``requires_grad=False`` and ``torch.no_grad()`` touch neither behaviour, and
``model.train()`` (which every training loop calls) undoes a one-off ``.eval()``. To keep a layer's behaviour
whatever mode the model is put in, each BatchNorm layer may carry one *policy*:

=================  ===========================================================  ===================
policy             in train mode                                                in eval mode
=================  ===========================================================  ===================
``None``           batch statistics, running statistics updated (PyTorch's own)  running statistics
``"frozen"``       running statistics, never updated                             running statistics
``"old_keras"``    batch statistics, running statistics never updated            running statistics
=================  ===========================================================  ===================

How it works: :func:`set_bn_policy` stores the policy in the layer's ``__dict__`` and registers one forward
pre-hook, a module-level function, so ``copy.deepcopy`` and pickling carry both. Right before each forward the
hook applies the policy: ``"frozen"`` sets ``training = False``; ``"old_keras"`` sets ``track_running_stats =
False``, with which PyTorch normalises a training batch with its own statistics and passes no running buffers
to update (in eval mode it still uses them). ``model.train()`` and ``.eval()`` may flip the flags in between:
the hook has the last word. Clearing the policy (``None``) removes the hook and gives the layer its own
``track_running_stats`` back.

Who sets it: ``transferlab.freeze.freeze_by_names`` (``"frozen"``; the ``unfreeze_*`` functions clear it) and
``transferlab.batchnorm.set_bn_regime`` (every layer at once, undone by its handle). Who reads it: everything
that reports on BatchNorm goes through :func:`bn_behaviour`, which reads the policy and the flags the way the
hook and ``BatchNorm.forward`` will, so a report always says what the next forward does.

Examples
--------
>>> import torch
>>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
>>> set_bn_policy(m, "frozen")
['1']
>>> _ = m.train(); m[1].training, bn_mode(m[1])   # model.train() flips the flag; the policy decides
(True, 'running stats (frozen)')
>>> _ = m(torch.randn(8, 4)); m[1].training, int(m[1].num_batches_tracked)   # the hook set eval: nothing moved
(False, 0)
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._validate import as_choice

__all__ = ["BN_POLICIES", "is_batchnorm", "bn_layers", "bn_policy", "set_bn_policy", "BNBehaviour", "bn_behaviour",
           "bn_mode", "is_frozen_bn", "frozen_bn_names"]

BN_POLICIES = (None, "frozen", "old_keras")
_POLICY = "_transferlab_bn_policy"  # the policy, in the layer's __dict__: deepcopy and pickle carry it
_OWN_TRACK = "_transferlab_bn_track"  # track_running_stats as it was before "old_keras" replaced it


def is_batchnorm(module: nn.Module) -> bool:
    """True for BatchNorm layers (1d/2d/3d, lazy, SyncBatchNorm), the kit's one test for "is this BatchNorm".

    Examples
    --------
    >>> is_batchnorm(nn.BatchNorm2d(3)), is_batchnorm(nn.SyncBatchNorm(3)), is_batchnorm(nn.InstanceNorm2d(3))
    (True, True, False)
    """
    return isinstance(module, _BatchNorm)


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every BatchNorm layer of ``model`` (itself included), in ``named_modules`` order.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU())
    >>> [n for n, _ in bn_layers(m)]
    ['1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if is_batchnorm(m)]


def _require_bn(module: nn.Module) -> None:
    if not is_batchnorm(module):
        raise TypeError(f"expected a BatchNorm layer, got {type(module).__name__}")


def bn_policy(module: nn.Module) -> str | None:
    """The policy of BatchNorm layer ``module``: ``None``, ``"frozen"`` or ``"old_keras"``.

    Examples
    --------
    >>> bn = nn.BatchNorm1d(3); bn_policy(bn) is None
    True
    """
    _require_bn(module)
    return module.__dict__.get(_POLICY)


def _apply_bn_policy(module: nn.Module, args) -> None:
    """The forward pre-hook: make the next forward do what the layer's policy says (returns None: inputs unchanged)."""
    policy = module.__dict__.get(_POLICY)
    if policy == "frozen":
        module.training = False
    elif policy == "old_keras":
        module.track_running_stats = False


def _set_policy(bn: nn.Module, policy: str | None, training: bool) -> None:
    old = bn.__dict__.get(_POLICY)
    if old == policy:
        return
    if old == "old_keras":
        bn.track_running_stats = bn.__dict__.pop(_OWN_TRACK, bn.running_mean is not None)
    if old == "frozen":
        bn.training = training
    for key in [k for k, hook in bn._forward_pre_hooks.items() if hook is _apply_bn_policy]:
        del bn._forward_pre_hooks[key]
    bn.__dict__.pop(_POLICY, None)
    if policy is None:
        return
    bn.__dict__[_POLICY] = policy
    bn.register_forward_pre_hook(_apply_bn_policy)
    if policy == "old_keras":
        bn.__dict__[_OWN_TRACK] = bn.track_running_stats
    _apply_bn_policy(bn, ())  # the flags say it at once, not only from the next forward on


def set_bn_policy(module_or_model: nn.Module, policy: str | None, *, training: bool | None = None) -> list[str]:
    """Give every BatchNorm layer in ``module_or_model`` (itself included) the policy ``policy``.

    Parameters
    ----------
    module_or_model : nn.Module
        A BatchNorm layer or any module containing some; modules without BatchNorm are left alone.
    policy : None, "frozen" or "old_keras"
        See the table in this module's docstring. ``None`` is PyTorch's own behaviour.
    training : bool, optional
        The mode a layer takes when it leaves ``"frozen"`` (its own flag was held at ``False``). Default:
        ``module_or_model.training``, the mode of the model it belongs to.

    Returns
    -------
    list of str
        The names (relative to ``module_or_model``) of the BatchNorm layers set.

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    >>> set_bn_policy(m, "old_keras"), bn_mode(m.train()[1])
    (['1'], 'batch stats, running stats frozen (old Keras)')
    >>> set_bn_policy(m, "frozn")
    Traceback (most recent call last):
    ...
    ValueError: unknown BatchNorm policy 'frozn'; expected one of (None, 'frozen', 'old_keras'). Did you mean 'frozen'?
    """
    policy = as_choice("BatchNorm policy", policy, BN_POLICIES)
    training = module_or_model.training if training is None else bool(training)
    names = []
    for name, mod in module_or_model.named_modules():
        if is_batchnorm(mod):
            _set_policy(mod, policy, training)
            names.append(name)
    return names


class BNBehaviour(NamedTuple):
    """What a BatchNorm layer's next forward does (see :func:`bn_behaviour`)."""

    policy: str | None
    batch_stats: bool  # normalises with the statistics of the batch (else with the running statistics)
    updates_stats: bool  # changes running_mean, running_var and num_batches_tracked
    mode: str  # the same in words


def bn_behaviour(module: nn.Module) -> BNBehaviour:
    """What BatchNorm layer ``module`` will do in its next forward: its policy and flags, read as the hook applies them.

    ``mode`` is one of ``"batch stats, updates running stats"``, ``"running stats (frozen)"``,
    ``"batch stats, running stats frozen (old Keras)"``, ``"running stats (eval)"``, and for layers built
    without running statistics or with ``track_running_stats`` switched off by hand, ``"batch stats (no running
    stats)"`` or ``"batch stats, running stats not updated"``.

    Examples
    --------
    >>> bn = nn.BatchNorm1d(3); bn_behaviour(bn)
    BNBehaviour(policy=None, batch_stats=True, updates_stats=True, mode='batch stats, updates running stats')
    """
    policy = bn_policy(module)
    training = module.training and policy != "frozen"
    track = module.track_running_stats and policy != "old_keras"
    has_running = module.running_mean is not None
    batch, updates = training or not has_running, training and track and has_running  # as BatchNorm.forward
    if not batch:
        mode = "running stats (frozen)" if policy == "frozen" else "running stats (eval)"
    elif updates:
        mode = "batch stats, updates running stats"
    elif not has_running:
        mode = "batch stats (no running stats)"
    else:
        mode = "batch stats, running stats frozen (old Keras)" if policy == "old_keras" else \
            "batch stats, running stats not updated"
    return BNBehaviour(policy, batch, updates, mode)


def bn_mode(module: nn.Module) -> str:
    """What BatchNorm layer ``module`` will do in its next forward, in words: ``bn_behaviour(module).mode``.

    Examples
    --------
    >>> bn = nn.BatchNorm1d(3); bn_mode(bn.eval())
    'running stats (eval)'
    """
    return bn_behaviour(module).mode


def is_frozen_bn(module: nn.Module) -> bool:
    """True if ``module`` is a BatchNorm layer with policy ``"frozen"`` (as ``freeze.freeze_by_names`` sets it).

    Examples
    --------
    >>> bn = nn.BatchNorm1d(3); is_frozen_bn(bn)
    False
    >>> _ = set_bn_policy(bn, "frozen"); is_frozen_bn(bn)
    True
    """
    return is_batchnorm(module) and bn_policy(module) == "frozen"


def frozen_bn_names(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers in ``model`` whose policy is ``"frozen"``."""
    return [name for name, mod in model.named_modules() if is_frozen_bn(mod)]
