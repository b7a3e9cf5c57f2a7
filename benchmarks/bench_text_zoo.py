#!/usr/bin/env python
"""How long do the zoo's text models take to build? Target: at most ~2 minutes added to `make zoo` on 2 cores.

Builds every text entry of the zoo (``zoo.names("text")``) from nothing, in a temporary kit home, and reports
each model's build time and what its pretraining reached. Checkpoint entries share their run with the final
model, so building them all in one process costs one pretraining run per architecture.

    python benchmarks/bench_text_zoo.py [--threads 2] [--home EMPTY_DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--home", default=None, help="an empty kit home to build into (default: a new temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="bench-text-zoo-"))
    if (home / "zoo").exists() and any((home / "zoo").glob("text*.safetensors")):
        ap.error(f"{home} already holds text models: the benchmark builds from nothing (use an empty --home)")
    os.environ["TRANSFERLAB_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transferlab import zoo

    # CPU seconds (all threads) as well as wall-clock: on a shared machine the wall clock measures the neighbours
    rows, t_all, c_all = {}, time.perf_counter(), time.process_time()
    for name in zoo.names("text"):
        t0, c0 = time.perf_counter(), time.process_time()
        zoo.build(name, progress=False)
        rec = zoo.manifest()[name]
        rows[name] = dict(seconds=round(time.perf_counter() - t0, 1), cpu_seconds=round(time.process_time() - c0, 1),
                          pretrain_steps=rec.get("pretrain_steps"), source_test_acc=rec.get("source_test_acc"),
                          bytes=rec["bytes"])
        print(f"{name:<22} {rows[name]['seconds']:6.1f} s wall, {rows[name]['cpu_seconds']:6.1f} s CPU  steps "
              f"{rec.get('pretrain_steps')}  held-out acc {rec.get('source_test_acc')}")
    total, cpu = round(time.perf_counter() - t_all, 1), round(time.process_time() - c_all, 1)
    ok = total <= 150
    print(f"all text models: {total} s wall, {cpu} s CPU (target: about 2 minutes on 2 cores: "
          f"{'met' if ok else 'NOT met'}; on a machine shared with other jobs the CPU seconds are the better guide)")
    write_results("text_zoo", dict(threads=args.threads, models=rows, total_seconds=total, cpu_seconds=cpu,
                                   target_met=ok, load_average=os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
