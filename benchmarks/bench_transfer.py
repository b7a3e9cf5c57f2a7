#!/usr/bin/env python
"""Does the transfer world show the phenomena the lessons teach? (issue 2's acceptance table)

Pretrained vs from scratch, linear probe vs fine-tuning, at two similarities and two data sizes, three seeds,
with lesson 01's runner and budgets (``transferlab.experiments``), so the figures are the lessons' own:

- pretrained features help most when data is small and similarity is high;
- linear-probe accuracy falls as similarity falls;
- with large data and low similarity, training from scratch catches up.

    python benchmarks/bench_transfer.py [--seeds 0 1 2] [--sizes 20 200] [--sims 1.0 0.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from transferlab import experiments as X  # noqa: E402

PLAN = [("probe", None), ("freeze", 0), ("scratch", None)]  # freeze k=0 = fine-tune everything, small LR
LABEL = {"probe": "linear probe", "freeze": "fine-tune", "scratch": "from scratch"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--sims", type=float, nargs="+", default=[1.0, 0.0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df = X.run_grid(args.sizes, args.sims, PLAN, args.seeds, progress=True, desc="transfer phenomena")
    summary = X.summarize(df)
    rows = []
    for (n, sim), g in summary.groupby(["n_per_class", "similarity"]):
        cell = {LABEL[r.strategy]: f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}" for _, r in g.iterrows()}
        rows.append(dict(n_per_class=int(n), similarity=float(sim), **cell))
    print(f"\n{'n/class':>7} {'sim':>4}  " + "  ".join(f"{v:>14}" for v in LABEL.values()))
    for r in rows:
        print(f"{r['n_per_class']:>7} {r['similarity']:>4}  " + "  ".join(f"{r[v]:>14}" for v in LABEL.values()))
    mean = {(int(r.n_per_class), float(r.similarity), r.strategy): float(r["mean"]) for _, r in summary.iterrows()}
    small, large = min(args.sizes), max(args.sizes)
    hi, lo = max(args.sims), min(args.sims)
    gain = {(n, s): mean[(n, s, "freeze")] - mean[(n, s, "scratch")] for n in args.sizes for s in args.sims}
    checks = {
        "pretraining helps most at small data and high similarity": max(gain, key=gain.get) == (small, hi),
        "linear-probe accuracy falls with similarity": all(mean[(n, hi, "probe")] > mean[(n, lo, "probe")]
                                                           for n in args.sizes),
        "from scratch catches up with large data at low similarity": gain[(large, lo)] < gain[(small, lo)],
    }
    for k, v in checks.items():
        print(f"{'yes' if v else 'NO '}  {k}")
    elapsed = time.perf_counter() - t0
    print(f"{len(df)} runs in {elapsed:.0f} s")
    gains = {f"n={n},sim={s}": round(v, 4) for (n, s), v in gain.items()}
    write_results("transfer", dict(threads=args.threads, seeds=args.seeds, table=rows, checks=checks,
                                   gain_finetune_minus_scratch=gains, runs=len(df), seconds=round(elapsed, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
