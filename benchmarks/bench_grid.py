#!/usr/bin/env python
"""How much faster is a lesson-01 grid in parallel, and what does a parallel run cost?

The same grid three ways: one run after the other in this process, on ``--workers`` local worker processes
(``transferlab.parallel.process_pool``) and on a Dask local cluster of as many workers on loopback
(``transferlab.parallel.local_cluster``; skipped without ``pip install "transferlab[cluster]"``). For each:
the start-up (workers started and the kit imported in them), the grid's wall time, the speed-up over the
sequential run, and the overhead per run (a no-op sent through the executor, and the grid's wall time not spent
inside runs). It checks that the three tables are identical (all columns but ``seconds``), and times the result
cache: rows written as one file each (now) against one file rewritten under a lock per row (before).

Other work on the machine changes these figures: the load average before and after each phase is recorded.

    python benchmarks/bench_grid.py [--workers 2] [--sizes 20] [--seeds 0 1] [--no-cluster] [--sequential-threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from transferlab import experiments as X  # noqa: E402
from transferlab import parallel as P  # noqa: E402
from transferlab._paths import atomic_write, file_lock  # noqa: E402

PLAN = [("probe", None), ("freeze", 2), ("freeze", 0), ("scratch", None)]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def noop(x):
    return x


def warm(_):
    """What every run needs in a worker: the kit imported (a first run pays this once per worker)."""
    import transferlab.experiments  # noqa: F401

    return P.worker_info()


def cpu_seconds(executor) -> float | None:
    """CPU seconds used so far by whoever runs the grid: this process, the pool's workers or the Dask workers.

    Other work on the machine slows wall time but hardly changes CPU time, so this is the figure to compare on a
    busy machine."""
    if executor is None:
        return time.process_time()
    client = getattr(executor, "_client", None)
    if client is not None:  # a Dask executor: ask each worker
        return float(sum(client.run(time.process_time).values()))
    try:
        import psutil
    except ImportError:
        return None
    return float(sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in executor._processes.values()))


def run_phase(name: str, grid: dict, config, executor, workers: int, n_noop: int) -> tuple[dict, object]:
    t0 = time.perf_counter()
    info = P.map_runs(warm, range(workers), executor=executor, progress=False) if executor else None
    started = time.perf_counter() - t0
    before = load()
    cpu0 = cpu_seconds(executor)
    t1 = time.perf_counter()
    df = X.run_grid(**grid, config=config, executor=executor, device="cpu", desc=name)
    wall = time.perf_counter() - t1
    cpu1 = cpu_seconds(executor)
    after = load()
    t2 = time.perf_counter()
    P.map_runs(noop, range(n_noop), executor=executor, progress=False)
    per_noop = (time.perf_counter() - t2) / n_noop
    n = len(df)
    inside = float(df["seconds"].sum())
    out = dict(startup_s=round(started, 2), wall_s=round(wall, 2), runs=n, run_seconds_sum=round(inside, 2),
               noop_overhead_ms=round(1000 * per_noop, 2),
               unaccounted_per_run_s=round((wall * (workers if executor else 1) - inside) / n, 3),
               cpu_s=None if cpu0 is None else round(cpu1 - cpu0, 2),
               cpu_per_run_s=None if cpu0 is None else round((cpu1 - cpu0) / n, 3),
               load_before=before, load_after=after,
               workers=[dict(rank=i["rank"], device=i["device"], threads=i["threads"]) for i in info] if info else None)
    return out, df


def report(name: str, p: dict) -> None:
    print(f"{name:<22} start-up {p['startup_s']:6.1f} s  grid {p['wall_s']:6.1f} s  ({p['runs']} runs, "
          f"{p['run_seconds_sum']:.1f} s inside runs, {p['cpu_per_run_s']} CPU s/run)  "
          f"no-op {p['noop_overhead_ms']:6.1f} ms/run  load {p['load_before']} -> {p['load_after']}")


def cache_costs(n_rows: int) -> dict:
    """Writing n rows and reopening the cache: one file per row (now) vs one locked, merged file (before)."""
    rows = [dict(config="bench", n_per_class=n, similarity=0.5, strategy="probe", k=4, seed=0, acc=0.5, seconds=1.0,
                 train_acc=0.9, epochs=5, lr_base=0.0, lr_head=4e-3, model="kitnet_m-src", n_stages=4)
            for n in range(1, n_rows + 1)]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = X.ResultCache(Path(tmp) / "per-run")
        t = time.perf_counter()
        for r in rows:
            cache.put(r)
        out["per_run_files_put_ms"] = round(1000 * (time.perf_counter() - t) / n_rows, 3)
        t = time.perf_counter()
        assert len(X.ResultCache(Path(tmp) / "per-run")) == n_rows
        out["per_run_files_open_s"] = round(time.perf_counter() - t, 3)
        single, lock = Path(tmp) / "single.json", Path(tmp) / ".single.json.lock"  # the former design, restated
        t = time.perf_counter()
        for r in rows:
            with file_lock(lock):
                merged = json.loads(single.read_text())["rows"] if single.exists() else []
                merged.append(r)
                atomic_write(single, json.dumps(dict(format="transferlab-results/1", rows=merged), indent=1))
        out["single_file_put_ms"] = round(1000 * (time.perf_counter() - t) / n_rows, 3)
        t = time.perf_counter()
        with file_lock(lock):
            assert len(json.loads(single.read_text())["rows"]) == n_rows
        out["single_file_open_s"] = round(time.perf_counter() - t, 3)
    out["rows"] = n_rows
    print(f"result cache, {n_rows} rows: put {out['per_run_files_put_ms']} ms/row (per-run files) vs "
          f"{out['single_file_put_ms']} ms/row (single file under a lock); open {out['per_run_files_open_s']} s vs "
          f"{out['single_file_open_s']} s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20])
    ap.add_argument("--sims", type=float, nargs="+", default=[1.0, 0.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--model", default="kitnet_s-src")
    ap.add_argument("--train-images", type=int, default=1000)
    ap.add_argument("--noop-runs", type=int, default=50)
    ap.add_argument("--cache-rows", type=int, default=500)
    ap.add_argument("--no-cluster", action="store_true")
    ap.add_argument("--sequential-threads", type=int, nargs="+", default=[1],
                    help="torch threads of the sequential runs (1: the bitwise reference; add 2 to compare)")
    args = ap.parse_args()
    config = X.RunConfig(model=args.model, train_images=args.train_images, min_epochs=1, max_epochs=5,
                         n_test_per_class=20, probe_epochs=50)
    grid = dict(sizes=args.sizes, similarities=args.sims, plan=PLAN, seeds=args.seeds)
    print(f"{os.cpu_count()} CPU cores, load {load()}; grid: {grid}, model {args.model}")
    phases, tables = {}, {}
    for threads in sorted({1, *args.sequential_threads}):
        torch.set_num_threads(threads)
        X.clear_caches()  # the sequential run reads weights and builds tasks inside its time, as workers do
        name = f"sequential {threads} thread{'s' if threads > 1 else ''}"
        phases[name], tables[name] = run_phase(name, grid, config, None, 1, args.noop_runs)
    torch.set_num_threads(1)
    with P.process_pool(args.workers, devices=["cpu"]) as pool:  # workers start on the first submit (timed)
        name = f"{args.workers} processes"
        phases[name], tables[name] = run_phase(name, grid, config, pool, args.workers, args.noop_runs)
    cluster_note = None
    if args.no_cluster:
        cluster_note = "skipped (--no-cluster)"
    else:
        try:
            t = time.perf_counter()
            with P.local_cluster(args.workers, devices=["cpu"]) as ex:
                cluster_start = time.perf_counter() - t
                name = f"dask {args.workers} workers"
                phases[name], tables[name] = run_phase(name, grid, config, ex, args.workers, args.noop_runs)
                phases[name]["cluster_start_s"] = round(cluster_start, 2)
                phases[name]["startup_s"] = round(cluster_start + phases[name]["startup_s"], 2)
        except ImportError as err:
            cluster_note = f"skipped: {err}"
    if cluster_note:
        print("dask local cluster:", cluster_note)
    base = phases["sequential 1 thread"]
    for name, p in phases.items():
        report(name, p)
        p["speedup_vs_sequential_1_thread"] = round(base["wall_s"] / p["wall_s"], 2)
        p["speedup_with_startup"] = round(base["wall_s"] / (p["wall_s"] + p["startup_s"]), 2)
        if p["cpu_per_run_s"] and base["cpu_per_run_s"] and not name.startswith("sequential"):
            # what an otherwise idle machine would give if the runs are CPU-bound: an estimate, not a measurement
            p["cpu_bound_speedup_estimate"] = round(min(args.workers, os.cpu_count() or 1)
                                                    * base["cpu_per_run_s"] / p["cpu_per_run_s"], 2)
    ref = tables["sequential 1 thread"].drop(columns=["seconds", "cached"])
    identical = {name: bool(df.drop(columns=["seconds", "cached"]).equals(ref)) for name, df in tables.items()}
    print("identical to the sequential run at 1 thread:", identical)
    for name, p in phases.items():
        print(f"  {name:<22} speed-up {p['speedup_vs_sequential_1_thread']:.2f}x "
              f"({p['speedup_with_startup']:.2f}x counting start-up; CPU-bound estimate on an idle machine: "
              f"{p.get('cpu_bound_speedup_estimate', '-')}x)")
    write_results("bench_grid", dict(
        cpu_cores=os.cpu_count(), workers=args.workers, model=args.model, grid={k: list(v) if isinstance(
            v, list) else v for k, v in grid.items()}, runs=len(ref), config_fingerprint=config.fingerprint(),
        phases=phases, identical_tables=identical, cluster=cluster_note or "dask local cluster on loopback",
        result_cache=cache_costs(args.cache_rows), load_at_end=load(),
        median_run_s=round(statistics.median(tables["sequential 1 thread"]["seconds"]), 3)))
    return 0 if all(same for name, same in identical.items() if not name.startswith("sequential")) else 1


if __name__ == "__main__":
    sys.exit(main())
