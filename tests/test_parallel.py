"""transferlab.parallel and run_grid's executors: the same table in this process, in worker processes and on a local
Dask cluster; workers that import this package, see the caller's environment, run one thread on their own device;
cached rows never submitted; errors named; a result cache that many processes write at once without a lock."""

from __future__ import annotations

import concurrent.futures as cf
import errno
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import transferlab
from transferlab import _worker as W
from transferlab import experiments as X
from transferlab import parallel as P

# one pytest-xdist worker runs this module (--dist loadgroup), so its worker pool and Dask cluster start once
pytestmark = pytest.mark.xdist_group("parallel")

# 2 images per class, 1 epoch, 16 px, a zoo model: each run well under a second
TINY = X.RunConfig(model="kitnet_s-src", train_images=20, min_epochs=1, max_epochs=1, n_test_per_class=2,
                   image_size=16, probe_epochs=5, batch_size=8)
GRID = dict(sizes=[2], similarities=[1.0, 0.0], plan=["probe", ("freeze", 2), ("head-first", 1), "scratch"],
            seeds=[0, 1])
N_RUNS = 2 * 4 * 2


@pytest.fixture(scope="module")
def pool():
    with P.process_pool(2, devices=["cpu"]) as executor:
        yield executor


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    with P.local_cluster(2, devices=["cpu"]) as executor:
        yield executor


@pytest.fixture(scope="module")
def sequential():
    return X.run_grid(**GRID, config=TINY, device="cpu", progress=False)


def _table(df):
    """The result table without what may differ between identical runs: wall time and the cache flag."""
    return df.drop(columns=["seconds", "cached"])


def _whereabouts(tag):
    """What a worker sees: this package's file, the kit's environment, its threads and its worker record."""
    import torch as t

    return dict(tag=tag, file=transferlab.__file__, home=os.environ.get("TRANSFERLAB_HOME"),
                results=os.environ.get("TRANSFERLAB_RESULTS"), threads=t.get_num_threads(), info=P.worker_info(),
                pid=os.getpid())


def _fail_on_three(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    time.sleep(0.2)
    return x


# ----------------------------------------------------------------------------------------------- the done criterion
def test_sequential_processes_and_cluster_give_identical_tables(sequential, pool, cluster):
    assert len(sequential) == N_RUNS and not sequential["cached"].any()
    assert torch.get_num_threads() == 1  # (conftest) the sequential table was made at one thread, as workers run
    in_pool = X.run_grid(**GRID, config=TINY, executor=pool, progress=False)
    on_cluster = X.run_grid(**GRID, config=TINY, executor=cluster, progress=False)
    for other in (in_pool, on_cluster):
        assert list(other.columns) == list(sequential.columns)
        assert _table(other).equals(_table(sequential))  # bitwise: acc, train_acc, lr, epochs, config, order
    # not a vacuous equality: the runs differ from each other
    assert sequential["acc"].nunique() > 1 and sequential.groupby("seed")["train_acc"].sum().nunique() == 2


def test_workers_import_this_package_see_the_callers_environment_and_run_one_thread(pool, cluster, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRANSFERLAB_RESULTS", raising=False)
    for executor in (pool, cluster):
        seen = P.map_runs(_whereabouts, range(4), executor=executor, progress=False)
        assert [s["tag"] for s in seen] == [0, 1, 2, 3]
        for s in seen:
            assert s["file"] == transferlab.__file__  # this worktree's package, not another install
            assert s["home"] == str(tmp_path / "home") and s["results"] is None
            assert s["threads"] == 1 and s["info"]["device"] == "cpu" and s["info"]["threads"] == 1
            assert s["pid"] != os.getpid() and s["info"]["rank"] in (0, 1)
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ (1.8x the CPU time for torch): its workers get glibc's back
        trimmed = executor is cluster or "MALLOC_TRIM_THRESHOLD_" in os.environ
        assert s["info"]["malloc_restored"] is (trimmed and sys.platform.startswith("linux"))
    client_made = P.map_runs(_whereabouts, [9], executor=cluster._client, progress=False)[0]  # a Client as it is
    assert client_made["info"]["rank"] in (0, 1) and client_made["file"] == transferlab.__file__
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path / "results"))  # a later change reaches the workers too
    assert P.map_runs(_whereabouts, [0], executor=pool, progress=False)[0]["results"] == str(tmp_path / "results")


def test_an_interrupt_of_the_process_group_leaves_the_pool_working(pool):
    import signal

    pids = {s["pid"] for s in P.map_runs(_whereabouts, range(4), executor=pool, progress=False)}
    for pid in pids:  # what a notebook's stop button does to the kernel's process group
        os.kill(pid, signal.SIGINT)
    time.sleep(1.0)
    for pid in pids:
        os.kill(pid, 0)  # still alive (it raises ProcessLookupError for a worker the signal killed)
    assert {s["pid"] for s in P.map_runs(_whereabouts, range(4), executor=pool, progress=False)} <= pids


def test_a_function_defined_in_a_notebook_travels_by_value(pool):
    offset = 10  # a closure over a local, as a notebook cell's function over its globals

    def shifted(a, b):
        return a * b + offset

    assert P.map_runs(shifted, [(1, 2), (3, 4)], star=True, executor=pool, progress=False) == [12, 22]
    assert P.map_runs(lambda x: x**2, [3], executor=pool, progress=False) == [9]


# ----------------------------------------------------------------------------------------------- devices
def test_device_for_rank_cycles_through_the_devices():
    fake = ["cuda:0", "cuda:1", "cuda:2"]
    assert [str(P.device_for_rank(r, fake)) for r in range(7)] == ["cuda:0", "cuda:1", "cuda:2"] * 2 + ["cuda:0"]
    assert str(P.device_for_rank(3, [torch.device("cpu")])) == "cpu"
    with pytest.raises(ValueError, match="non-empty list"):
        P.device_for_rank(0, [])
    with pytest.raises(ValueError, match="non-empty list"):
        P.device_for_rank(0, "cuda:0")
    with pytest.raises(ValueError, match="rank must be an integer >= 0, got -1"):
        P.device_for_rank(-1, fake)
    assert [W._rank_from_name(n) for n in (0, "5", "node2-3", "tcp://10.0.0.1:4567")] == [0, 5, 3, None]


def test_a_worker_pins_its_gpu_by_rank_on_a_fake_four_gpu_machine(monkeypatch):
    from transferlab import device as D

    pinned = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: pinned.append(str(dev)))
    monkeypatch.setattr(D, "_available", lambda kind: kind in ("cuda", "cpu"))
    assert W._local_devices() == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert str(W._pin_device(5, None)) == "cuda:1"  # rank 5 of a machine with 4 GPUs
    assert pinned == ["cuda:1"] and str(D.get_default_device()) == "cuda:1"  # so device=None means cuda:1 here
    assert str(W._pin_device(2, ["cuda:3", "cpu"])) == "cuda:3" and pinned[-1] == "cuda:3"
    assert str(W._pin_device(1, ["cuda:3", "cpu"])) == "cpu" and len(pinned) == 2  # the CPU pins no GPU
    with pytest.raises(ValueError, match="does not exist: this machine has 4 GPU"):
        W._pin_device(0, ["cuda:7"])


# ----------------------------------------------------------------------------------------------- cache and progress
class ReverseExecutor(cf.Executor):
    """Runs the submitted calls on a thread of this process in reverse order, once `expected` were submitted."""

    def __init__(self, expected):
        self.expected, self.calls = expected, []

    def submit(self, fn, *args, **kwargs):
        future = cf.Future()
        self.calls.append((future, fn, args, kwargs))
        if len(self.calls) == self.expected:
            threading.Thread(target=self._run, daemon=True).start()
        return future

    def _run(self):
        for future, fn, args, kwargs in reversed(self.calls):
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as err:
                future.set_exception(err)
            time.sleep(0.02)


class RecordingBar:
    """Stands in for tqdm: records the total, the starting count and each label as the bar advances."""

    made: list = []

    def __init__(self, total=None, initial=0, desc=None, disable=False):
        self.total, self.n, self.labels, self.postfix = total, initial, [], None
        self.initial = initial
        RecordingBar.made.append(self)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def update(self, n=1):
        self.n += n
        self.labels.append(self.postfix)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cached_rows_are_not_submitted_and_the_bar_advances_as_runs_finish(sequential, tmp_path, monkeypatch):
    import tqdm.auto

    cache = X.ResultCache(tmp_path / "cache")
    for row in sequential.to_dict("records")[::2]:  # half the grid is cached already
        cache.put(row)
    executor = ReverseExecutor(expected=N_RUNS // 2)
    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    df = X.run_grid(**GRID, config=TINY, cache=cache, executor=executor, device="cpu")
    assert len(executor.calls) == N_RUNS // 2  # only the runs not in the cache were sent
    assert df["cached"].tolist() == [True, False] * (N_RUNS // 2)
    assert _table(df).equals(_table(sequential))  # in the grid's order, though they finished in reverse
    (bar,) = RecordingBar.made
    assert (bar.total, bar.initial, bar.n) == (N_RUNS, N_RUNS // 2, N_RUNS)
    keys = [X.run_key(*r, config=TINY) for r in df.loc[~df["cached"], ["n_per_class", "similarity", "strategy", "k",
                                                                          "seed"]].itertuples(index=False)]
    assert bar.labels == [f"n={n} sim={X.sim_label(s)} {st} k={k} seed={seed}" for n, s, st, k, seed in keys][::-1]
    assert len(X.ResultCache(tmp_path / "cache")) == N_RUNS  # the new rows were stored as they came in
    again = X.run_grid(**GRID, config=TINY, cache=cache, executor=ReverseExecutor(expected=1), device="cpu")
    assert again["cached"].all()  # nothing left to submit: the executor is never used


# ----------------------------------------------------------------------------------------------- bad input, errors
def test_an_executor_that_is_not_one_is_a_type_error(tmp_path):
    class HasSubmit:
        def submit(self, fn, *args):
            return fn(*args)

    cache = X.ResultCache(tmp_path / "c")
    for bad, extra in ((object(), "has no submit method"), (HasSubmit(), "got HasSubmit"), (4, "got int")):
        with pytest.raises(TypeError, match=f"executor must be a concurrent.futures.Executor.*{extra}"):
            X.run_grid(**GRID, config=TINY, cache=cache, executor=bad, progress=False)
        with pytest.raises(TypeError, match="executor must be"):
            P.map_runs(abs, [1], executor=bad, progress=False)
    assert len(X.ResultCache(tmp_path / "c")) == 0  # refused before any run
    with pytest.raises(ValueError, match="unknown executor 'threads:2'"):
        X.run_grid(**GRID, config=TINY, executor="threads:2", progress=False)
    with pytest.raises(TypeError, match="fn must be callable"):
        P.map_runs(3, [1], progress=False)


def test_a_failing_run_names_its_coordinates_in_every_executor(pool, cluster):
    bad = "folder:/nonexistent/transferlab-images"
    for executor in (None, pool, cluster):
        with pytest.raises(P.RunFailed, match=f"run n=2 sim={bad} probe k=4 seed=0 failed: .*nonexistent") as err:
            X.run_grid(2, bad, "probe", seeds=0, config=TINY, executor=executor, progress=False)
        assert err.value.item[0] == (2, bad, "probe", 4, 0) and err.value.__cause__ is not None
        with pytest.raises(P.RunFailed, match="run item 3 failed: ValueError: bad item 3") as err:
            P.map_runs(_fail_on_three, [1, 2, 3, 4], executor=executor, label=lambda x: f"item {x}", progress=False)
        assert isinstance(err.value.__cause__, ValueError) and err.value.item == 3


def test_executors_named_by_strings_and_the_environment(monkeypatch):
    monkeypatch.delenv(P.EXECUTOR_ENV, raising=False)
    assert P.get_executor(None) is None and P.get_executor("inline") is None
    monkeypatch.setenv(P.EXECUTOR_ENV, "processes:2")
    try:
        made = P.get_executor(None)
        assert isinstance(made, cf.ProcessPoolExecutor) and made._max_workers == 2
        assert P.get_executor("processes:2") is made  # kept for the session
        assert P.map_runs(abs, [-3], progress=False) == [3]  # executor=None reads the environment
    finally:
        P.shutdown()
    assert P._SHARED == {}
    monkeypatch.setenv(P.EXECUTOR_ENV, "inline")
    assert P.get_executor(None) is None
    for spec in ("processes:two", "processes:0", "dask:", "processes:", "threads"):
        with pytest.raises(ValueError, match="unknown executor"):
            P.get_executor(spec)


def test_a_thread_pool_is_accepted_and_gives_the_same_table(sequential):
    with cf.ThreadPoolExecutor(2) as threads:  # runs take turns in one process: same numbers, no speed-up
        df = X.run_grid(**GRID, config=TINY, executor=threads, device="cpu", progress=False)
    assert _table(df).equals(_table(sequential))
    assert torch.get_num_threads() == 1 and P.worker_info() is None  # the caller's process was not set up as a worker


# ----------------------------------------------------------------------------------------------- the optional extra
def test_without_dask_the_kit_works_and_says_how_to_get_the_cluster(monkeypatch, sequential):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    with pytest.raises(ImportError, match=r"transferlab\[cluster\]"):
        with P.local_cluster(2):
            pass
    with pytest.raises(ImportError, match=r"transferlab\[cluster\]"):
        P.cluster_executor("tcp://127.0.0.1:8786")
    with pytest.raises(ImportError, match=r"transferlab\[cluster\]"):
        P.get_executor("dask:2")
    df = X.run_grid(**GRID, config=TINY, device="cpu", progress=False)
    assert _table(df).equals(_table(sequential))


def test_a_fresh_interpreter_without_dask_imports_the_kit():
    code = ("import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
            "import transferlab.parallel as P, transferlab.experiments as X\n"
            "print(P.map_runs(abs, [-1, -2], progress=False), 'distributed' in sys.modules and "
            "sys.modules['distributed'] is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(Path(transferlab.__file__).parents[1])))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1, 2] False"


# ----------------------------------------------------------------------------------------------- the result cache
def _write_rows(path, worker, n_own, n_shared, start):
    cache = X.ResultCache(path)
    start.wait()
    for i in range(max(n_own, n_shared)):
        if i < n_own:
            cache.put(dict(config="c", n_per_class=1 + i, similarity=0.5, strategy="probe", k=4, seed=worker,
                           acc=i / n_own, seconds=0.0, writer=worker))
        if i < n_shared:  # every writer writes these same runs, each with its own numbers
            cache.put(dict(config="c", n_per_class=1 + i, similarity="pets", strategy="scratch", k=0, seed=0,
                           acc=worker / 10, seconds=0.0, writer=worker))


def test_many_processes_writing_the_same_and_different_rows_at_once_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    path, n_own, n_shared, n_proc = tmp_path / "shared", 30, 10, 4
    start = ctx.Event()
    workers = [ctx.Process(target=_write_rows, args=(path, w, n_own, n_shared, start)) for w in range(n_proc)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0] * n_proc
    cache = X.ResultCache(path)
    assert len(cache) == n_proc * n_own + n_shared
    assert all(cache.get("c", 1 + i, 0.5, "probe", 4, w)["writer"] == w for w in range(n_proc) for i in range(n_own))
    for i in range(n_shared):  # one whole row of one of the writers, never a mixture
        row = cache.get("c", 1 + i, "pets", "scratch", 0, 0)
        assert row["acc"] == row["writer"] / 10 and row["writer"] in range(n_proc)
    names = [f.name for f in path.iterdir()]
    assert len(names) == n_proc * n_own + n_shared and all(n.endswith(".json") and n[0] != "." for n in names)


def test_the_cache_needs_no_lock(tmp_path, monkeypatch):
    import fcntl

    def no_locks(*args):  # what flock gives on an NFS mount without a lock daemon
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(fcntl, "lockf", no_locks)
    cache = X.ResultCache(tmp_path / "nfs")
    cache.put(dict(config="c", n_per_class=1, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.5))
    assert X.ResultCache(tmp_path / "nfs").get("c", 1, 0.5, "probe", 4, 0)["acc"] == 0.5


def test_rows_written_by_another_process_after_opening_are_found(tmp_path):
    mine, theirs = X.ResultCache(tmp_path / "c"), X.ResultCache(tmp_path / "c")
    theirs.put(dict(config="c", n_per_class=1, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.25))
    theirs.put(dict(config="c", n_per_class=2, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.5))
    assert len(mine) == 0
    assert mine.get("c", 1, 0.5, "probe", 4, 0)["acc"] == 0.25  # a miss looks at the row's file
    assert mine.refresh() == 2 and len(mine.frame()) == 2


def test_an_older_single_file_cache_is_carried_over(tmp_path, monkeypatch):
    rows = [dict(config="c", n_per_class=n, similarity=0.5, strategy="probe", k=4, seed=0, acc=n / 10)
            for n in (1, 2)]
    text = json.dumps(dict(format=X.ResultCache.LEGACY_FORMAT, rows=rows))
    path = tmp_path / "old.json"
    path.write_text(text)
    with pytest.warns(UserWarning, match="older single-file result cache; it was kept aside as .* with its rows"):
        cache = X.ResultCache(path)  # the folder goes where the file was: the file is kept aside, rows carried
    (aside,) = tmp_path.glob("old.json.single-file-cache-*")
    assert aside.read_text() == text and path.is_dir() and len(cache) == 2
    assert X.ResultCache(path).get("c", 2, 0.5, "probe", 4, 0)["acc"] == 0.2  # now as row files
    # a named cache also reads the <name>.json an older version wrote next to its folder (and leaves it there)
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    legacy = tmp_path / "home" / "experiments" / "lesson.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(text)
    named = X.ResultCache("lesson")
    assert named.path == tmp_path / "home" / "experiments" / "lesson" and len(named) == 2
    assert legacy.read_text() == text
