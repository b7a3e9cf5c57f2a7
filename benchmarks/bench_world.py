#!/usr/bin/env python
"""How fast is the transfer world? Target: 50,000 images in under 10 s on 2 CPU cores.

    python benchmarks/bench_world.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from transferlab import world  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    cases = {
        "source 50k (2500/class x 20) @32px": lambda: world.source_task(2500, n_test_per_class=1),
        "target 10k sim=0.0 @32px": lambda: world.target_task(1000, 0.0, n_test_per_class=1),
        "target 10k sim=0.5 @64px": lambda: world.target_task(1000, 0.5, n_test_per_class=1, size=64),
    }
    for name, make in cases.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            task = make()
            times.append(time.perf_counter() - t0)
        n = len(task.y_train) + len(task.y_test)
        rows[name] = dict(images=n, median_s=round(statistics.median(times), 3), min_s=round(min(times), 3),
                          images_per_s=round(n / statistics.median(times)))
        med = statistics.median(times)
        print(f"{name:<40} {n:>6} images  median {med:6.2f} s  ({rows[name]['images_per_s']} img/s)")
    ok = rows["source 50k (2500/class x 20) @32px"]["median_s"] < 10
    print("target (50k images < 10 s):", "met" if ok else "NOT met")
    write_results("world", dict(threads=args.threads, repeats=args.repeats, cases=rows, target_met=ok))
    return 0


if __name__ == "__main__":
    sys.exit(main())
