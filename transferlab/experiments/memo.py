"""What the experiments keep in memory between runs, and :func:`clear_caches`, the one way to drop it.

A grid runs every strategy on the same target tasks and the same pretrained weights, so those are computed once
per process and kept: zoo weights (a few MB per model), stage names, the pretrained data configs of models, and
target tasks (world tasks a few MB each, twelve at a time; real datasets at 224 px hundreds of MB, two at a
time). :func:`memoize` is ``functools.lru_cache`` that also registers the cache under a name, so that
:func:`clear_caches` can empty every one of them: after changing files under ``$TRANSFERLAB_HOME`` by hand, or to
give the memory back in a long notebook session.

Examples
--------
>>> from transferlab.experiments import RunConfig, stages_of
>>> stages_of(RunConfig(model="kitnet_m-random"))
('stem', 'layer1', 'layer2', 'layer3')
>>> clear_caches()["stage names"] >= 1, clear_caches()["stage names"]
(True, 0)
"""

from __future__ import annotations

import functools
from collections.abc import Callable

__all__ = ["memoize", "clear_caches"]

_CACHES: dict[str, Callable] = {}


def memoize(name: str, maxsize: int) -> Callable[[Callable], Callable]:
    """``functools.lru_cache(maxsize)``, registered under ``name`` for :func:`clear_caches`.

    Examples
    --------
    >>> @memoize("doctest: doubles", maxsize=2)
    ... def double(x):
    ...     return 2 * x
    >>> double(2), double.cache_info().currsize, clear_caches()["doctest: doubles"]
    (4, 1, 1)
    """

    def wrap(fn: Callable) -> Callable:
        if name in _CACHES and _CACHES[name].__wrapped__.__qualname__ != fn.__qualname__:
            raise ValueError(f"a cache named {name!r} is registered already (by {_CACHES[name].__wrapped__!r})")
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        _CACHES[name] = cached
        return cached

    return wrap


def clear_caches() -> dict[str, int]:
    """Empty every in-memory cache of ``transferlab.experiments``; returns how many entries each one held.

    The next run reads zoo weights and builds target tasks again. Results on disk
    (:class:`transferlab.experiments.ResultCache`) are not touched.

    Examples
    --------
    >>> _ = clear_caches()
    >>> set(clear_caches().values())
    {0}
    """
    dropped = {}
    for name, cached in _CACHES.items():
        dropped[name] = cached.cache_info().currsize
        cached.cache_clear()
    return dropped
