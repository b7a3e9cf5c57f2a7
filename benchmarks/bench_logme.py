#!/usr/bin/env python
"""How close is ``transferlab.selection.logme`` to the cost of the linear algebra it cannot avoid?

For each shape (N, D, C) we time, in the same run and on the same float64 features:

- ``logme``: the whole score (input checks, one decomposition, the fixed point for all C classes, evidence);
- the **floor**: forming the Gram matrix of the smaller side (``F^T F`` when N >= D, ``F F^T`` when N < D)
  plus one symmetric eigendecomposition of it, which is what any exact LogME has to do at least;
- for reference, ``F^T F`` + ``eigh`` (D x D) even when N < D, and the thin SVD of F (what the reference
  implementation computes).

Each figure is the minimum over ``--repeats`` interleaved runs (minimums are the least noisy estimate on a
shared machine). The claim checked: ``logme`` takes at most 2x the floor on every shape. Results go to
``benchmarks/results/bench_logme.json`` (written atomically, with the machine's env_report).

Usage: ``python benchmarks/bench_logme.py [--device cuda] [--threads 1] [--repeats 3] [--check]``
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from _common import write_results

from transferlab.selection import logme, logme_fit

SHAPES = [(2000, 512, 10), (10000, 1024, 100), (1000, 2048, 10)]
LIMIT = 2.0


def make_features(n: int, d: int, c: int, seed: int = 0, device="cpu"):
    """Class-informative features (a random class direction plus unit noise) and labels, float64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    means = torch.randn(c, d, generator=g, dtype=torch.float64) * 0.5
    f = means[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    return f.to(device), y.to(device)


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def bench_shape(n, d, c, device, repeats):
    f, y = make_features(n, d, c, device=device)
    small_gram = (lambda: f.T @ f) if n >= d else (lambda: f @ f.T)
    jobs = {
        "logme": lambda: logme(f, y),
        "floor": lambda: torch.linalg.eigh(small_gram()),
        "gram_dxd_eigh": lambda: torch.linalg.eigh(f.T @ f),
        "thin_svd": lambda: torch.linalg.svd(f, full_matrices=False),
    }
    for fn in jobs.values():  # warm-up (allocations, CUDA kernels, lazy init)
        fn()
    times = {k: float("inf") for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k] = min(times[k], _timed(fn, device))
    r = logme_fit(f, y)
    return dict(N=n, D=d, C=c, seconds={k: round(v, 5) for k, v in times.items()},
                ratio_to_floor=round(times["logme"] / times["floor"], 3),
                fixed_point_steps=r.iterations, classes_at_bound=int(r.at_bound.sum()),
                passes=times["logme"] <= LIMIT * times["floor"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="exit with status 1 if a shape exceeds 2x the floor")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for n, d, c in SHAPES:
        row = bench_shape(n, d, c, device, args.repeats)
        rows.append(row)
        s = row["seconds"]
        print(f"N={n:>5} D={d:>4} C={c:>3}: logme {s['logme']:.3f} s, floor {s['floor']:.3f} s "
              f"(ratio {row['ratio_to_floor']:.2f}, {'ok' if row['passes'] else 'OVER 2x'}); D x D gram+eigh "
              f"{s['gram_dxd_eigh']:.3f} s, thin SVD {s['thin_svd']:.3f} s; fixed-point steps "
              f"{row['fixed_point_steps']}")
    name = "bench_logme" if device.type == "cpu" else f"bench_logme_{device.type}"  # keep the CPU figures
    write_results(name, dict(limit_ratio=LIMIT, device=str(device), threads=torch.get_num_threads(),
                                      cpu_count=os.cpu_count(), repeats=args.repeats, shapes=rows))
    if args.check and not all(r["passes"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
