"""What the machine offers, and how large a batch fits: the numbers behind ``DevicePanel``.

``device_inventory`` lists the CUDA GPUs (name, compute capability, memory used by all processes and by this
one), Apple MPS and the CPU threads; ``batch_size_hint`` turns a model's weight and activation sizes and the
free memory of a device into a power-of-two batch size (a rule of thumb, not a measurement). Both are public
as ``transferlab.widgets.device_inventory`` and ``transferlab.widgets.batch_size_hint``; ``GIB`` and
``mps_available`` are shared with the widget modules of this package.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..device import get_default_device, resolve_device

__all__ = ["GIB", "device_inventory", "batch_size_hint", "mps_available"]

GIB = 2**30
"""Bytes in a gibibyte: memory is shown in GiB."""


def device_inventory() -> dict:
    """What this machine offers: CUDA devices (name, capability, memory), Apple MPS, CPU threads.

    Memory "used" is the whole GPU's (``total - free`` from the driver, all processes); "allocated" is what
    this Python process's PyTorch tensors hold.

    Examples
    --------
    >>> inv = device_inventory(); sorted(inv)
    ['cpu_count', 'cpu_threads', 'cuda', 'default', 'mps']
    """
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(dict(index=i, device=f"cuda:{i}", name=props.name, capability=f"{props.major}.{props.minor}",
                             total_gib=total / GIB, used_gib=(total - free) / GIB, free_gib=free / GIB,
                             allocated_gib=torch.cuda.memory_allocated(i) / GIB))
    return dict(cuda=gpus, mps=mps_available(), cpu_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                default=str(get_default_device()))


def mps_available() -> bool:
    """Whether this PyTorch has Apple's MPS backend and the machine can use it."""
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def _available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes (``None`` on a CPU where the OS gives no portable answer)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device.index or 0)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not Linux: no portable answer without psutil
        return None


def _activation_numel(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Elements produced by the leaf modules for ONE sample (eval mode, no grad: the model is not changed)."""
    total = 0

    def hook(_mod, _inp, out):
        nonlocal total
        outs = out if isinstance(out, (tuple, list)) else (out,)
        total += sum(o[:1].numel() for o in outs if torch.is_tensor(o))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=dev))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total


def batch_size_hint(model: nn.Module, input_size: tuple[int, ...] = (3, 32, 32), *, device=None,
                    fraction: float = 0.5, max_batch: int = 1024, optimizer_slots: int = 2,
                    available_bytes: int | None = None) -> dict:
    """A power-of-two batch size whose training step fits in ``fraction`` of the free memory of ``device``.

    A rule of thumb, not a measurement: float32 weights + gradients + ``optimizer_slots`` state tensors per
    parameter (AdamW: 2), plus every leaf module's output twice per sample (kept for backward, and its
    gradient). Free memory: the GPU driver's (CUDA), MPS's recommended budget, or available RAM (CPU).

    Parameters
    ----------
    model : nn.Module
        Run once on one zero input (eval mode, no grad; its state is unchanged).
    input_size : tuple
        One sample's shape, e.g. ``(3, 32, 32)``.
    available_bytes : int, optional
        Override the free memory (for planning another machine, and for tests).

    Returns
    -------
    dict with ``batch_size`` (0 when even the weights do not fit), ``per_sample_bytes``, ``fixed_bytes``,
    ``available_bytes``, ``device``.

    Examples
    --------
    >>> m = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    >>> batch_size_hint(m, (3, 2, 2), available_bytes=10_000)["batch_size"]
    16
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    if not isinstance(input_size, (tuple, list)) or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size must be a tuple of positive ints (one sample's shape), got {input_size!r}")
    device = resolve_device(device)
    n_params = sum(p.numel() for p in model.parameters())
    fixed = n_params * 4 * (2 + optimizer_slots)
    per_sample = _activation_numel(model, tuple(input_size)) * 4 * 2
    avail = _available_bytes(device) if available_bytes is None else int(available_bytes)
    out = dict(device=str(device), per_sample_bytes=per_sample, fixed_bytes=fixed, available_bytes=avail)
    if avail is None:
        return dict(out, batch_size=None)
    room = fraction * avail - fixed
    if room < per_sample:
        return dict(out, batch_size=0)
    fit = int(room // max(per_sample, 1))
    return dict(out, batch_size=min(2 ** int(math.log2(fit)), 2 ** int(math.log2(max_batch))))
