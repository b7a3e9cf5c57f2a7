"""Independent runs in parallel: in this process, in local worker processes, or on a Dask cluster.

A lesson at full size is many independent runs (lesson 01: datasets x strategies x seeds; lesson 04: fine-tuning
every candidate model on every task; lesson 03: seeds). :func:`map_runs` runs ``fn`` on every item through any
:class:`concurrent.futures.Executor` and returns the results in the items' order, whatever order they finish in:

- ``executor=None``: in this process, one after the other (the default; ``$TRANSFERLAB_EXECUTOR`` can change it);
- :func:`process_pool` (or ``"processes:4"``): local worker processes, each with one torch thread and its own
  device (one GPU per worker on a multi-GPU machine: worker ``rank`` gets ``devices[rank % len(devices)]``);
- :func:`local_cluster` (or ``"dask:4"``) and :func:`cluster_executor` (or ``"dask:tcp://host:8786"``): Dask's
  ``distributed`` (``pip install "transferlab[cluster]"``), on this machine or on a cluster's scheduler.

Every worker reads ``$TRANSFERLAB_HOME`` and ``$TRANSFERLAB_RESULTS`` as the caller has them (every
``TRANSFERLAB_*`` variable is sent with each run), and runs one run at a time, so a run that seeds itself gives the
same numbers in a worker as in this process: on the CPU, bitwise, when this process also runs torch at one thread
(at two threads torch may sum in another order, and the last digits differ). ``fn`` and the items travel
to the workers by pickle (``cloudpickle`` where installed, so a function defined in a notebook works too): pass
names and seeds, not tensors, and load the data inside ``fn``. A run that fails raises :class:`RunFailed` naming
its item; the runs not yet started are cancelled.

Why Dask and not Ray: measured on 2 cores, ``distributed`` adds 28 MB next to the kit (9 small packages; Ray 2.60:
about 260 MB), a local cluster of 2 workers starts in about 1.3 s (Ray: about 4.8 s), and
``Client.get_executor()`` is a ``concurrent.futures.Executor`` (Ray has none: it would need an adapter of our own).

Examples
--------
>>> map_runs(pow, [(2, 3), (3, 2)], star=True, progress=False)
[8, 9]
>>> device_for_rank(5, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"])
device(type='cuda', index=1)
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pickle
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence

from ._worker import EXECUTOR_ENV, _call, _forwarded_env, _init_pool_worker, device_for_rank, worker_info

__all__ = ["map_runs", "get_executor", "process_pool", "local_cluster", "cluster_executor", "device_for_rank",
           "worker_info", "shutdown", "RunFailed", "EXECUTOR_ENV"]

_CLUSTER_HINT = 'Dask\'s distributed is not installed: pip install "transferlab[cluster]" (or "distributed")'
_SHARED: dict[str, cf.Executor] = {}  # executors made from spec strings, kept for the session
_CLOSERS: dict[int, Callable[[], None]] = {}


class RunFailed(RuntimeError):
    """A run of :func:`map_runs` raised; ``item`` is its item, ``label`` its label, ``__cause__`` the error."""

    def __init__(self, label: str, item, error: BaseException):
        super().__init__(f"run {label} failed: {type(error).__name__}: {error}")
        self.label, self.item = label, item


# ------------------------------------------------------------------------------------------ executors
def process_pool(workers: int | None = None, *, devices: Sequence | None = None,
                 threads: int = 1) -> cf.ProcessPoolExecutor:
    """Local worker processes (started with ``spawn``), each with ``threads`` torch threads and its own device.

    Parameters
    ----------
    workers : how many processes (default: one per CUDA GPU, else one per CPU core).
    devices : the devices the workers take turns on, worker ``rank`` getting ``devices[rank % len(devices)]``
        (default: every CUDA GPU of this machine, else MPS, else the CPU).
    threads : torch threads per worker (1: as many workers as cores, no oversubscription).

    Use it in a ``with`` block (or call ``shutdown()``); workers keep zoo weights and tasks in memory between runs.

    Examples
    --------
    >>> with process_pool(1, devices=["cpu"]) as pool:  # doctest: +SKIP
    ...     map_runs(worker_info, [()], star=True, executor=pool, progress=False)[0]["device"]
    'cpu'
    """
    from ._validate import as_int

    threads = as_int("threads", threads, min=1)
    workers = as_int("workers", _default_workers() if workers is None else workers, min=1)
    if devices is not None:
        device_for_rank(0, devices)  # checks the list here, not in every worker
        devices = [str(d) for d in devices]
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads is unsafe
    return cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker,
                                  initargs=(ctx.Value("i", 0), devices, threads))


def _default_workers() -> int:
    """One worker per CUDA GPU where there are GPUs, else one per CPU core."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else (os.cpu_count() or 1)


def _distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError(_CLUSTER_HINT) from err
    return distributed


def _dask_executor(client, devices, threads) -> cf.Executor:
    """A ``concurrent.futures`` executor on ``client`` whose runs set their worker up as :func:`process_pool`'s."""
    if devices is not None:
        device_for_rank(0, devices)
        devices = [str(d) for d in devices]
    executor = client.get_executor(pure=False)
    executor._transferlab_setup = dict(devices=devices, threads=threads)
    return executor


@contextlib.contextmanager
def local_cluster(workers: int | None = None, *, devices: Sequence | None = None, threads: int = 1,
                  **cluster_kwargs) -> Iterator[cf.Executor]:
    """A Dask ``LocalCluster`` on loopback with ``workers`` single-threaded worker processes, as an executor.

    Each worker takes ``devices[rank % len(devices)]`` (rank = the worker's name, 0..workers-1; default: every
    CUDA GPU, else MPS, else the CPU) and ``threads`` torch threads. ``cluster_kwargs`` go to ``LocalCluster``
    (``memory_limit=...``, ``dashboard_address=":8787"`` for the dashboard, which needs ``bokeh``). Needs Dask's
    ``distributed``: ``pip install "transferlab[cluster]"``. The cluster stops when the block ends.

    Examples
    --------
    >>> with local_cluster(2, devices=["cpu"]) as ex:  # doctest: +SKIP
    ...     infos = map_runs(worker_info, [()] * 2, star=True, executor=ex)
    """
    distributed = _distributed()
    from ._validate import as_int

    workers = as_int("workers", _default_workers() if workers is None else workers, min=1)
    threads = as_int("threads", threads, min=1)
    kwargs = dict(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                  dashboard_address=None, scheduler_kwargs=dict(dashboard=False))
    kwargs.update(cluster_kwargs)
    with distributed.LocalCluster(**kwargs) as cluster, distributed.Client(cluster) as client:
        yield _dask_executor(client, devices, threads)


def cluster_executor(client_or_address, *, devices: Sequence | None = None, threads: int = 1) -> cf.Executor:
    """An executor on a running Dask cluster: a ``distributed.Client`` or its scheduler's address.

    Start the cluster with Dask's own tools, e.g. on the scheduler node ``dask scheduler`` and on each GPU node
    ``dask worker tcp://<scheduler>:8786 --nworkers <GPUs> --nthreads 1 --name $(hostname)`` (the workers are
    named ``<host>-0``, ``<host>-1``...: the number is the worker's rank on its node, and picks its GPU). Every
    node must see the same ``$TRANSFERLAB_HOME`` path (a shared file system), with the zoo built and the data
    fetched. ``executor.shutdown()`` closes a client made from an address.

    Examples
    --------
    >>> ex = cluster_executor("tcp://10.0.0.1:8786")  # doctest: +SKIP
    """
    distributed = _distributed()
    from ._validate import as_int

    threads = as_int("threads", threads, min=1)
    if isinstance(client_or_address, distributed.Client):
        return _dask_executor(client_or_address, devices, threads)
    if not isinstance(client_or_address, str) or not client_or_address:
        raise TypeError(f"cluster_executor takes a distributed.Client or a scheduler address such as "
                        f"'tcp://10.0.0.1:8786', got {client_or_address!r}")
    client = distributed.Client(client_or_address)
    executor = _dask_executor(client, devices, threads)
    _CLOSERS[id(executor)] = client.close
    return executor


def get_executor(spec: str | cf.Executor | None = None) -> cf.Executor | None:
    """The executor that ``spec`` names; ``None`` means "in this process, one run after the other".

    ``spec`` is an executor (returned as it is), ``None`` (the value of ``$TRANSFERLAB_EXECUTOR`` if set, else
    in this process), or a string: ``"inline"`` (in this process), ``"processes"`` / ``"processes:N"``
    (:func:`process_pool`), ``"dask"`` / ``"dask:N"`` (:func:`local_cluster`) or ``"dask:ADDRESS"``
    (:func:`cluster_executor`, e.g. ``"dask:tcp://10.0.0.1:8786"``). Executors made from a string are kept for
    the session (workers keep what they loaded) and shut down at exit or by :func:`shutdown`. A string fits a
    notebook's parameters cell, so a lesson can be sent to a cluster without editing it.

    Examples
    --------
    >>> get_executor("inline") is None
    True
    >>> get_executor("threads")
    Traceback (most recent call last):
    ...
    ValueError: unknown executor 'threads': expected None, 'inline', 'processes[:N]', 'dask[:N]', ...
    """
    if spec is None:
        spec = os.environ.get(EXECUTOR_ENV, "").strip() or None
        if spec is None:
            return None
    if not isinstance(spec, str):
        return _check_executor(spec)
    text = spec.strip()
    if text in ("inline", ""):
        return None
    if text in _SHARED:
        return _SHARED[text]
    kind, colon, arg = text.partition(":")
    count = arg.isdigit() and int(arg) > 0 or not colon
    if kind == "processes" and count:
        executor = process_pool(int(arg) if arg else None)
    elif kind == "dask" and count:
        stack = contextlib.ExitStack()
        executor = stack.enter_context(local_cluster(int(arg) if arg else None))
        _CLOSERS[id(executor)] = stack.close
    elif kind == "dask" and arg and not arg.isdigit():
        executor = cluster_executor(arg)
    else:
        raise ValueError(f"unknown executor {spec!r}: expected None, 'inline', 'processes[:N]', 'dask[:N]', "
                         f"'dask:ADDRESS' or a concurrent.futures.Executor")
    _SHARED[text] = executor
    return executor


def shutdown() -> None:
    """Shut down the executors that :func:`get_executor` made from strings (their workers and clusters)."""
    while _SHARED:
        _, executor = _SHARED.popitem()
        with contextlib.suppress(Exception):
            executor.shutdown(wait=True)
        closer = _CLOSERS.pop(id(executor), None)
        if closer is not None:
            with contextlib.suppress(Exception):
                closer()
    for key in list(_CLOSERS):  # clients of cluster_executor(address) made directly
        with contextlib.suppress(Exception):
            _CLOSERS.pop(key)()


atexit.register(shutdown)


def _check_executor(executor) -> cf.Executor:
    if isinstance(executor, cf.Executor):
        return executor
    if hasattr(executor, "get_executor") and callable(executor.get_executor):  # a distributed.Client
        return _dask_executor(executor, None, 1)
    raise TypeError(f"executor must be a concurrent.futures.Executor (ProcessPoolExecutor, process_pool(), "
                    f"local_cluster(), a distributed.Client...), a string such as 'processes:4', or None; got "
                    f"{type(executor).__name__}" + ("" if callable(getattr(executor, "submit", None)) else
                                                     " (it has no submit method)"))


# ------------------------------------------------------------------------------------------ map_runs
def _dumps(obj, what: str) -> bytes:
    try:
        import cloudpickle

        return cloudpickle.dumps(obj)
    except ImportError:
        pass
    except Exception as err:
        raise TypeError(f"{what} cannot be sent to a worker process: {type(err).__name__}: {err}") from err
    try:
        return pickle.dumps(obj)
    except Exception as err:
        raise TypeError(f"{what} cannot be sent to a worker process ({type(err).__name__}: {err}); define the "
                        f"function in a module, or install cloudpickle") from err


def _label_of(item, label: Callable | None) -> str:
    if label is not None:
        return str(label(item))
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def map_runs(fn: Callable, items: Iterable, *, executor: str | cf.Executor | None = None, star: bool = False,
             label: Callable[[object], str] | None = None, on_result: Callable[[int, object, object], None] | None =
             None, progress: bool = True, desc: str = "runs") -> list:
    """``[fn(item) for item in items]``, the runs spread over ``executor``; results in the items' order.

    Parameters
    ----------
    fn : one independent run. It should seed itself from its item (a ``seed`` in it), so that it gives the same
        result in any process; in a worker it runs with the worker's device as the kit's default device
        (``device=None``, or a plain ``"cuda"``, means that worker's GPU) and one torch thread.
    items : what each run gets: ``fn(item)``, or ``fn(*item)`` with ``star=True``.
    executor : ``None`` (in this process, or ``$TRANSFERLAB_EXECUTOR``), a string for :func:`get_executor`, or
        any ``concurrent.futures.Executor``: :func:`process_pool`, :func:`local_cluster`,
        :func:`cluster_executor`. A ``ThreadPoolExecutor`` works but gains nothing: runs in one process take
        turns, because they draw from the process's random generators.
    label : ``label(item)`` names a run in the progress bar and in errors (default: its ``repr``).
    on_result : ``on_result(index, item, result)`` is called in this process as each run finishes (to store it,
        for instance), in the order they finish.
    progress, desc : a tqdm bar that advances as runs finish.

    Returns
    -------
    list of ``fn``'s results, one per item, in the order of ``items``.

    Raises
    ------
    RunFailed
        A run raised; the message names its item (``label``), the error is its ``__cause__``; runs not started
        yet are cancelled. Results already finished were passed to ``on_result``.

    Examples
    --------
    >>> map_runs(divmod, [(7, 2), (9, 4)], star=True, progress=False)
    [(3, 1), (2, 1)]
    >>> map_runs(lambda x: 1 // x, [1, 0], label=lambda x: f"x={x}", progress=False)
    Traceback (most recent call last):
    ...
    transferlab.parallel.RunFailed: run x=0 failed: ZeroDivisionError: integer division or modulo by zero
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    from tqdm.auto import tqdm

    items = list(items)
    executor = get_executor(executor)
    with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
        return _map(fn, items, executor, star=star, label=label, on_result=on_result, bar=bar)


def _map(fn: Callable, items: list, executor: cf.Executor | None, *, star: bool, label, on_result, bar) -> list:
    """The engine of :func:`map_runs` and ``run_grid``: ``bar`` (tqdm-like) advances by one per finished run."""
    results: list = [None] * len(items)

    def finish(i: int, result) -> None:
        results[i] = result
        if on_result is not None:
            on_result(i, items[i], result)
        bar.set_postfix_str(_label_of(items[i], label), refresh=False)
        bar.update(1)

    if executor is None:  # in this process: no pickling, the caller's objects as they are
        for i, item in enumerate(items):
            bar.set_postfix_str(_label_of(item, label), refresh=False)
            try:
                result = fn(*item) if star else fn(item)
            except Exception as err:
                raise RunFailed(_label_of(item, label), item, err) from err
            finish(i, result)
        return results
    fn_blob = _dumps(fn, f"fn {getattr(fn, '__qualname__', fn)!r}")
    origin = (socket.gethostname(), os.getpid())
    setup = getattr(executor, "_transferlab_setup", {})
    env = _forwarded_env()
    blobs = [_dumps((item, star), f"item {_label_of(item, label)}") for item in items]
    futures = {}
    try:
        for i, blob in enumerate(blobs):
            futures[executor.submit(_call, origin, setup, env, fn_blob, blob)] = i
        for future in cf.as_completed(futures):
            i = futures[future]
            try:
                result = future.result()
            except Exception as err:
                raise RunFailed(_label_of(items[i], label), items[i], err) from err
            finish(i, result)
    except BaseException:  # a failed run or an interrupt (a notebook's stop button): cancel what has not started
        for future in futures:
            future.cancel()
        raise
    return results
