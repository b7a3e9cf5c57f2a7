"""Grids of runs and their summaries: every (size, similarity, seed, strategy) of a lesson, one row per run.

:func:`run_grid` runs a grid (reusing rows from a :class:`~transferlab.experiments.ResultCache`) and returns a
tidy DataFrame; :func:`make_recompute` gives the widgets a callable that computes one cell on demand;
:func:`summarize` averages over seeds and :func:`best_by_cell` picks the best strategy of each cell.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame(dict(n_per_class=[2, 2], similarity=[1.0, 1.0], strategy=["freeze"] * 2, k=[1, 1],
...                        seed=[0, 1], acc=[0.5, 0.7], seconds=[1.0, 3.0]))
>>> best_by_cell(summarize(df))[["strategy", "k", "mean"]].values.tolist()
[['freeze', 1, 0.6]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .._validate import as_int, as_list, as_seed
from ..parallel import _map, get_executor
from .cache import ResultCache, results_frame
from .config import RunConfig
from .model import stages_of
from .run import run_key, run_one
from .strategies import as_plan, default_plan
from .targets import as_target, sim_label

__all__ = ["run_grid", "make_recompute", "summarize", "best_by_cell"]


def _cached_run(n_per_class: int, similarity: float | str, strategy: str, k: int | None, seed: int, *,
                config: RunConfig, fingerprint: str, cache: ResultCache | None, device) -> dict:
    """The cached row of a run (``cached=True``), or a new one from :func:`run_one`, stored (``cached=False``)."""
    key = run_key(n_per_class, similarity, strategy, k, seed, config=config)
    row = cache.get(fingerprint, *key) if cache is not None else None
    if row is not None:
        return dict(row, cached=True)
    row = run_one(*key, config=config, device=device)
    if cache is not None:
        cache.put(row)
    return dict(row, cached=False)


def _grid_run(key: tuple, config: RunConfig, device) -> dict:
    """One run of a grid, as a worker runs it: :func:`run_one` at ``key`` (importable, so it pickles by name)."""
    return run_one(*key, config=config, device=device)


def _run_label(key: tuple) -> str:
    n, sim, strategy, k, seed = key
    return f"n={n} sim={sim_label(sim)} {strategy} k={k} seed={seed}"


def run_grid(sizes: int | Sequence[int], similarities: float | str | Sequence[float | str],
             plan: str | Iterable | None = None, seeds: int | Sequence[int] = (0, 1, 2), *,
             config: RunConfig | None = None, cache: ResultCache | None = None, device=None, progress: bool = True,
             desc: str = "grid", executor=None):
    """Run every (size, similarity, seed, strategy) combination; returns a tidy DataFrame, one row per run.

    Parameters
    ----------
    sizes, similarities, seeds : the axes of the grid, each a list or a single value (similarities: world
        similarities or real datasets, see :func:`transferlab.experiments.target_task`). NumPy integers are
        accepted as sizes and seeds.
    plan : strategies, each a name or a ``(name, k)`` pair (a single name or pair is a plan of one; default:
        :func:`transferlab.experiments.default_plan`).
    cache : rows found there are reused (their ``cached`` column is True) and never sent to the executor; new
        rows are stored there as they finish (by this process, so workers need no access to it).
    device : where each run trains. ``None`` (the kit's default) or a plain ``"cuda"`` means each worker's own
        device when an executor is given (see :mod:`transferlab.parallel`).
    executor : ``None``: one run after the other in this process (or ``$TRANSFERLAB_EXECUTOR``); a string
        (``"processes:4"``, ``"dask:8"``, ``"dask:tcp://host:8786"``) or any ``concurrent.futures.Executor``
        (:func:`transferlab.parallel.process_pool`, :func:`transferlab.parallel.local_cluster`): the runs go
        there in parallel. Each run seeds itself, so the table is the same (on the CPU at one torch thread,
        bitwise, but for ``seconds``).

    Every run draws its random numbers from its own seed: the caller's random state is left as it was. A run that
    fails raises :class:`transferlab.parallel.RunFailed` naming its coordinates (rows finished before are cached).

    Returns
    -------
    pandas.DataFrame with ``RESULT_COLUMNS`` first, then the other keys of :func:`run_one`'s rows and
    ``cached``, in the order of the grid (sizes, similarities, seeds, plan) whatever order the runs finished in.

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=20, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, image_size=16, probe_epochs=2)
    >>> df = run_grid(2, [1.0, 0.0], "probe", seeds=0, config=cfg, progress=False)
    >>> df[["similarity", "strategy", "k"]].values.tolist()
    [[1.0, 'probe', 4], [0.0, 'probe', 4]]
    """
    from tqdm.auto import tqdm

    config = RunConfig() if config is None else config
    n_stages = len(stages_of(config))
    plan = as_plan(default_plan(n_stages) if plan is None else plan, n_stages)
    sizes = [as_int("n_per_class", n, min=1) for n in as_list("sizes", sizes)]
    similarities = [as_target(s) for s in as_list("similarities", similarities)]
    seeds = [as_seed(s) for s in as_list("seeds", seeds)]
    executor = get_executor(executor)  # a bad executor fails before any run
    fingerprint = config.fingerprint()
    keys = [run_key(n, sim, name, k, seed, config=config)
            for n in sizes for sim in similarities for seed in seeds for name, k in plan]
    rows: dict[tuple, dict] = {}
    for key in dict.fromkeys(keys):
        row = cache.get(fingerprint, *key) if cache is not None else None
        if row is not None:
            rows[key] = dict(row, cached=True)
    todo = [key for key in dict.fromkeys(keys) if key not in rows]

    def store(_, item, row):
        if cache is not None:
            cache.put(row)
        rows[item[0]] = dict(row, cached=False)

    with tqdm(total=len(rows) + len(todo), initial=len(rows), desc=desc, disable=not progress) as bar:
        _map(_grid_run, [(key, config, device) for key in todo], executor, star=True,
             label=lambda item: _run_label(item[0]), on_result=store, bar=bar)
    return results_frame([rows[key] for key in keys])


def make_recompute(config: RunConfig | None = None, cache: ResultCache | None = None,
                   device=None) -> Callable[..., dict]:
    """A ``recompute(n_per_class, similarity, strategy, k, seed) -> row`` callable for the widgets.

    Cached rows are returned at once (``cached=True``); new ones are computed with :func:`run_one` and stored in
    ``cache`` (``cached=False``). The caller's random state is left as it was.

    Examples
    --------
    >>> cfg = RunConfig(model="kitnet_m-random", train_images=20, min_epochs=1, max_epochs=1,
    ...                 n_test_per_class=2, image_size=16, probe_epochs=2)
    >>> recompute = make_recompute(cfg, ResultCache(None))
    >>> recompute(2, 0.5, "probe", 4, 0)["strategy"]
    'probe'
    """
    config = RunConfig() if config is None else config
    fingerprint = config.fingerprint()

    def recompute(n_per_class: int, similarity: float | str, strategy: str, k: int | None, seed: int) -> dict:
        return _cached_run(n_per_class, similarity, strategy, k, seed, config=config, fingerprint=fingerprint,
                           cache=cache, device=device)

    return recompute


def summarize(results, by: Sequence[str] = ("n_per_class", "similarity", "strategy", "k")):
    """Mean, standard deviation (ddof=1) and count of ``acc`` over seeds, plus the mean run time.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(dict(n_per_class=[2, 2], similarity=[1.0, 1.0], strategy=["probe"] * 2, k=[4, 4],
    ...                        seed=[0, 1], acc=[0.5, 0.7], seconds=[1.0, 3.0]))
    >>> summarize(df)[["mean", "std", "n_seeds"]].round(3).values.tolist()
    [[0.6, 0.141, 2.0]]
    """
    missing = [c for c in (*by, "acc", "seconds") if c not in results.columns]
    if missing:
        raise KeyError(f"results lack the columns {missing}; expected a frame from run_grid")
    g = results.groupby(list(by), sort=False)
    out = g["acc"].agg(mean="mean", std="std", n_seeds="count")
    out["seconds"] = g["seconds"].mean()
    return out.reset_index()


def best_by_cell(summary, family: Sequence[str] | None = ("probe", "freeze"),
                 cell: Sequence[str] = ("n_per_class", "similarity")):
    """The best (highest mean accuracy) row of ``summary`` per cell, among strategies in ``family``.

    The default family is the "how many stages to freeze" ladder: freeze k = 0..n-1 and the probe (k = n).
    ``family=None`` considers every strategy.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame(dict(n_per_class=[2, 2], similarity=[1.0, 1.0], strategy=["probe", "freeze"],
    ...                       k=[4, 1], mean=[0.5, 0.7], std=[0.0, 0.1]))
    >>> best_by_cell(s)[["strategy", "k"]].values.tolist()
    [['freeze', 1]]
    """
    sub = summary if family is None else summary[summary["strategy"].isin(list(family))]
    if sub.empty:
        raise ValueError(f"no rows of the strategies {list(family)} in the summary")
    idx = sub.groupby(list(cell), sort=False)["mean"].idxmax()
    return sub.loc[idx.values].reset_index(drop=True)
