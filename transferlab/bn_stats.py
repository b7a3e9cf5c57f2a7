"""BatchNorm running statistics: snapshot, restore, compare, and whether one forward pass moves them.

A BatchNorm layer's ``running_mean``, ``running_var`` and ``num_batches_tracked`` are *buffers*, not parameters:
no optimizer, ``requires_grad`` flag or ``torch.no_grad()`` protects them, and any forward pass in train mode
updates them (``running = (1 - momentum) * running + momentum * batch``). :func:`bn_state` takes a copy,
:func:`restore_bn_state` puts one back, :func:`stats_drift` compares two, and :func:`forward_changes_stats` runs
one forward in the model's current mode (its BatchNorm policies included, :mod:`transferlab.bn_pin`) and reports
per layer what moved, restoring the statistics afterwards by default.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .bn_pin import bn_layers
from .device import model_device

__all__ = ["bn_state", "restore_bn_state", "stats_drift", "forward_changes_stats", "preserved"]


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every BN buffer (``running_mean``, ``running_var``, ``num_batches_tracked``), by full name.

    Examples
    --------
    >>> m = nn.Sequential(nn.BatchNorm1d(3))
    >>> sorted(bn_state(m))
    ['0.num_batches_tracked', '0.running_mean', '0.running_var']
    """
    out = {}
    for name, mod in bn_layers(model):
        for key, buf in mod.named_buffers(recurse=False):
            if buf is not None:
                out[f"{name}.{key}" if name else key] = buf.detach().clone()
    return out


def restore_bn_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`bn_state` snapshot back into ``model`` (in place); unknown names raise ``KeyError``."""
    buffers = dict(model.named_buffers())
    unknown = sorted(set(state) - set(buffers))
    if unknown:
        raise KeyError(f"the snapshot names buffers this model does not have: {unknown[:5]}; "
                       f"was it taken from another model?")
    with torch.no_grad():
        for key, value in state.items():
            buffers[key].copy_(value)


def stats_drift(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[dict]:
    """Per BN layer, how far the running statistics moved between two :func:`bn_state` snapshots.

    Columns: ``name``, ``mean_shift`` and ``var_shift`` (largest absolute change over channels),
    ``batches`` (change of ``num_batches_tracked``), ``changed`` (any of them non-zero).

    Examples
    --------
    >>> bn = nn.BatchNorm1d(2); s0 = bn_state(bn)
    >>> with torch.no_grad(): _ = bn(torch.randn(8, 2))
    >>> stats_drift(s0, bn_state(bn))[0]["changed"]
    True
    """
    if set(before) != set(after):
        raise KeyError(f"the snapshots name different buffers: {sorted(set(before) ^ set(after))[:5]}")
    rows = []
    for layer in _layer_order(before):
        def get(snap, key, layer=layer):
            return snap.get(f"{layer}.{key}" if layer else key)

        row = dict(name=layer)
        for key, col in (("running_mean", "mean_shift"), ("running_var", "var_shift")):
            b, a = get(before, key), get(after, key)
            row[col] = float((a.float() - b.float()).abs().max()) if b is not None else 0.0
        b, a = get(before, "num_batches_tracked"), get(after, "num_batches_tracked")
        row["batches"] = int(a - b) if b is not None else 0
        row["changed"] = bool(row["mean_shift"] or row["var_shift"] or row["batches"])
        rows.append(row)
    return rows


def _layer_order(state: dict) -> list[str]:
    seen = {}
    for key in state:
        seen.setdefault(key.rsplit(".", 1)[0] if "." in key else "", None)
    return list(seen)


def forward_changes_stats(model: nn.Module, x: torch.Tensor, *, device=None, grad: bool = False,
                          inference_mode: bool = False, restore: bool = True) -> list[dict]:
    """Run one forward pass *in the model's current mode* and report how the running statistics moved.

    Parameters
    ----------
    x : Tensor
        One input batch.
    grad : bool
        ``False`` runs the pass under ``torch.no_grad()`` (the "it is only inference" case).
    inference_mode : bool
        Run under ``torch.inference_mode()`` instead.
    restore : bool
        Put the statistics back afterwards (default), so probing never changes the model.
    device : optional
        ``None`` keeps the model where it is (the input follows it); anything else moves the model.

    Returns
    -------
    list of dict, one per BN layer (see :func:`stats_drift`).

    Examples
    --------
    >>> m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> any(r["changed"] for r in forward_changes_stats(m.train(), torch.randn(8, 4)))
    True
    >>> any(r["changed"] for r in forward_changes_stats(m.eval(), torch.randn(8, 4)))
    False
    """
    device = model_device(model, device)
    before = bn_state(model)
    if inference_mode:
        ctx = torch.inference_mode()
    else:
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
    with ctx:
        model(x.to(device))
    after = bn_state(model)
    if restore:
        restore_bn_state(model, before)
    return stats_drift(before, after)


@contextlib.contextmanager
def preserved(model: nn.Module):
    """A ``with`` block after which every module's ``training`` flag and every BN buffer are as before it.

    Examples
    --------
    >>> m = nn.Sequential(nn.BatchNorm1d(2)).eval()
    >>> with preserved(m):
    ...     _ = m.train()(torch.randn(4, 2))
    >>> m.training, int(m[0].num_batches_tracked)
    (False, 0)
    """
    flags = [(m, m.training) for m in model.modules()]
    state = bn_state(model)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        restore_bn_state(model, state)
