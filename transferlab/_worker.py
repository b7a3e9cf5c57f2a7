"""What runs inside a worker of :mod:`transferlab.parallel`: its setup (threads, device, environment) and one run.

A worker process is set up once, by :func:`transferlab.parallel.process_pool`'s initialiser or by its first run
(a Dask worker): ``threads`` torch threads, the device ``devices[rank % len(devices)]`` as the kit's default device
(and, on CUDA, as the current device), and a record that :func:`worker_info` returns. Every run then takes the
caller's ``TRANSFERLAB_*`` environment and runs under a per-process lock: runs draw from the process's global
random generators, so two runs in one process (a Dask worker with several threads, a thread pool) take turns.

Examples
--------
>>> device_for_rank(5, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"])
device(type='cuda', index=1)
>>> worker_info() is None  # the caller's process is not a worker
True
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import re
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Sequence

__all__ = ["device_for_rank", "worker_info", "EXECUTOR_ENV"]

EXECUTOR_ENV = "TRANSFERLAB_EXECUTOR"
"""The environment variable that ``executor=None`` reads (see :func:`transferlab.parallel.get_executor`)."""

_WORKER: dict | None = None  # set in a worker process by _setup_worker: rank, device, threads, pid, host
_RUN_LOCK = threading.Lock()  # one run at a time per process: runs draw from the process's global generators
_FN_CACHE: dict[bytes, Callable] = {}  # the functions of recent runs, unpickled once per worker


def device_for_rank(rank: int, devices: Sequence) -> object:
    """The device of worker ``rank``: ``devices[rank % len(devices)]`` (a :class:`torch.device`).

    Examples
    --------
    >>> [str(device_for_rank(r, ["cuda:0", "cuda:1"])) for r in range(3)]
    ['cuda:0', 'cuda:1', 'cuda:0']
    """
    import torch

    from ._validate import as_int

    rank = as_int("rank", rank, min=0)
    if isinstance(devices, (str, torch.device)) or not len(devices):
        raise ValueError(f"devices must be a non-empty list such as ['cuda:0', 'cuda:1'], got {devices!r}")
    return torch.device(devices[rank % len(devices)])


def _local_devices() -> list[str]:
    """Every device of this machine a worker may take: each CUDA GPU, else Apple's MPS, else the CPU."""
    import torch

    from .device import _available

    if torch.cuda.is_available() and torch.cuda.device_count():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["mps"] if _available("mps") else ["cpu"]


def _pin_device(rank: int, devices: Sequence | None):
    """Make ``device_for_rank(rank, devices)`` this process's device: the kit's default device and, on CUDA, the
    current device (so that a plain ``"cuda"`` captured from the caller means this worker's GPU too)."""
    import torch

    from .device import set_default_device

    dev = device_for_rank(rank, _local_devices() if devices is None else devices)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    set_default_device(dev)
    return dev


def _undo_eager_trim() -> bool:
    """Give torch back glibc's large allocation thresholds where ``MALLOC_TRIM_THRESHOLD_`` took them away.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back to the OS). Any
    value there also freezes glibc's mmap threshold at 128 KiB, so every tensor above it is mapped and zeroed
    anew: a training run then takes about 1.8x the CPU time (measured here). ``mallopt`` restores a 32 MiB mmap
    threshold and a 64 MiB trim threshold; the numbers a run computes do not change. True if it did so.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): the variable means nothing there
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 64 << 20))


def _setup_worker(rank: int | None, devices: Sequence | None, threads: int) -> None:
    """Once per worker process: ``threads`` torch threads, the worker's own device, and a record of both."""
    global _WORKER
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    if rank is None:
        rank = 0
        if len(_local_devices() if devices is None else devices) > 1:
            warnings.warn("this worker's rank is unknown, so it takes the first device; name Dask workers "
                          "'<node>-<i>' (dask worker --name <node> --nworkers <GPUs>) to spread them over the GPUs",
                          stacklevel=2)
    dev = _pin_device(rank, devices)
    _WORKER = dict(rank=rank, device=str(dev), threads=threads, pid=os.getpid(), host=socket.gethostname(),
                   malloc_restored=_undo_eager_trim())


def _init_pool_worker(counter, devices, threads) -> None:
    """The initialiser of :func:`process_pool`'s workers: the next rank from a shared counter, then the setup.

    A worker ignores SIGINT: a notebook's stop button signals the kernel's whole process group, and a worker
    killed while idle would break the pool for the rest of the session. The caller handles the interrupt: it
    cancels the runs not yet started; those running finish.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        rank = counter.value
        counter.value += 1
    _setup_worker(rank, devices, threads)


def _rank_from_name(name) -> int | None:
    """A Dask worker's rank from its name: ``3``, ``"3"`` or ``"node1-3"`` (``dask worker --name node1
    --nworkers N``) give 3; a name without such a number (a worker named by its address) gives None.

    Examples
    --------
    >>> [_rank_from_name(n) for n in (2, "2", "gpu-node-7", "tcp://10.0.0.1:4567", "node")]
    [2, 2, 7, None, None]
    """
    match = re.search(r"(?:^|-)(\d+)$", str(name))
    return int(match.group(1)) if match else None


def _rank_here() -> int | None:
    """This worker's rank where no initialiser gave one: from a Dask worker's name, or the position of this
    process among its parent's children (a process pool made elsewhere); None when unknown."""
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        return _rank_from_name(get_worker().name)
    ident = getattr(multiprocessing.current_process(), "_identity", ())
    return ident[-1] - 1 if ident else None


def worker_info() -> dict | None:
    """This worker's ``rank``, ``device``, ``threads``, ``pid``, ``host`` and ``malloc_restored`` (see
    ``_undo_eager_trim``); ``None`` outside a worker.

    Examples
    --------
    >>> worker_info() is None  # the caller's process is not a worker
    True
    """
    return None if _WORKER is None else dict(_WORKER)


def _forwarded_env() -> dict[str, str | None]:
    """The caller's ``TRANSFERLAB_*`` variables (the executor choice excepted), sent with every run."""
    return {k: v for k, v in os.environ.items() if k.startswith("TRANSFERLAB_") and k != EXECUTOR_ENV}


def _apply_env(env: dict[str, str | None]) -> None:
    for key in [k for k in os.environ if k.startswith("TRANSFERLAB_") and k != EXECUTOR_ENV and k not in env]:
        del os.environ[key]  # unset in the caller: unset here (the defaults must agree)
    os.environ.update(env)


def _call(origin: tuple[str, int], setup: dict, env: dict, fn_blob: bytes, item_blob: bytes):
    """What a worker runs for one item: set the worker up once, take the caller's environment, run ``fn``."""
    if (socket.gethostname(), os.getpid()) != origin:  # a worker process, not a thread of the caller
        _apply_env(env)
        if _WORKER is None:
            _setup_worker(_rank_here(), setup.get("devices"), setup.get("threads", 1))
    fn = _FN_CACHE.get(fn_blob)
    if fn is None:
        fn = _FN_CACHE[fn_blob] = pickle.loads(fn_blob)
        while len(_FN_CACHE) > 8:
            _FN_CACHE.pop(next(iter(_FN_CACHE)))
    item, star = pickle.loads(item_blob)
    with _RUN_LOCK:
        return fn(*item) if star else fn(item)
