#!/usr/bin/env python
"""Benchmark: 10 rays x 25 points with BatchNorm recomputed at every point, on the kit's models.

The issue's target: under 90 s on 2 CPU cores. Each point = set the weights (one vector copy), recompute BN
statistics on a fixed set of training batches (``update_bn``), evaluate test error and train loss in eval mode
on fixed subsets. Writes ``benchmarks/results/bench_landscape.json``.

    python benchmarks/bench_landscape.py [--threads 2] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from transferlab.device import resolve_device  # noqa: E402
from transferlab.landscape import evaluate_rays, materialize, random_directions  # noqa: E402
from transferlab.models import count_params, create_model  # noqa: E402
from transferlab.world import target_task  # noqa: E402

# (model, image size): the lesson's from-scratch model, and the zoo's default architecture at its native size
CONFIGS = [("kitnet_s", 24), ("kitnet_s", 32), ("kitnet_m", 32)]


def bench(arch: str, size: int, *, rays: int, points: int, n_bn: int, n_test: int, n_train: int, device) -> dict:
    task = target_task(100, similarity=0.5, size=size, n_test_per_class=n_test // 10, seed=0)
    torch.manual_seed(0)
    model = create_model(arch, 10, device=device)
    bn = materialize(task.loader("train", 128, seed=1), device=device, max_samples=n_bn)
    train = task.subset(n_train // 10, seed=1).loader("train", 500, shuffle=False)
    d = random_directions(model, rays, seed=0, device=device)
    t0 = time.perf_counter()
    df = evaluate_rays(model, d, np.linspace(0, 40, points), train=train, test=task.loader("test", 500), bn=bn,
                       device=device, progress=False)
    seconds = time.perf_counter() - t0
    return dict(model=arch, image_size=size, params=count_params(model), rays=rays, points_per_ray=points,
                bn_images=n_bn, test_images=n_test, train_images=n_train, seconds=round(seconds, 2),
                ms_per_point=round(1000 * seconds / len(df), 1),
                projected_10x25_s=round(250 * seconds / len(df), 1), under_90_s=250 * seconds / len(df) < 90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--quick", action="store_true", help="2 rays x 5 points (checks that the script runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rays, points = (2, 5) if args.quick else (10, 25)
    results = []
    for arch, size in CONFIGS:
        r = bench(arch, size, rays=rays, points=points, n_bn=256, n_test=500, n_train=500, device=device)
        print(json.dumps(r))
        results.append(r)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    write_results("bench_landscape_quick" if args.quick else "bench_landscape",
                  dict(target="10 rays x 25 points with BN recompute < 90 s on 2 CPU cores", threads=args.threads,
                       load_average=load, results=results,
                       note="measured under the load_average shown; on a shared machine timings are pessimistic"))

if __name__ == "__main__":
    main()
