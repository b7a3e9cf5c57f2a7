#!/usr/bin/env python
"""Build the kit's pretrained model zoo into $TRANSFERLAB_HOME/zoo (default ~/.cache/transferlab/zoo).

Models already built with the current recipe and an intact file are skipped, so this is cheap to re-run.

    python data_scripts/build_zoo.py                 # everything missing
    python data_scripts/build_zoo.py --only kitnet_m-src
    python data_scripts/build_zoo.py --force         # rebuild all
    python data_scripts/build_zoo.py --list
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def main(argv=None) -> int:
    from transferlab import zoo

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    ap.add_argument("--force", action="store_true", help="rebuild even when a valid copy is cached")
    ap.add_argument("--list", action="store_true", help="show the zoo and what is built, then exit")
    ap.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.list:
        for row in zoo.status():
            mark = "built" if row["built"] else "-----"
            acc = "" if row["source_test_acc"] is None else f"  source acc {row['source_test_acc']:.3f}"
            print(f"{mark}  {row['name']:<18} {row['description']}{acc}")
        print(f"cache: {zoo.zoo_dir()}")
        return 0
    try:
        names = args.only or list(zoo.ZOO)
        for n in names:
            if n not in zoo.ZOO:
                raise KeyError(n)
    except KeyError as err:
        print(f"error: unknown zoo model {err}; known: {', '.join(zoo.ZOO)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    zoo.build_all(names, force=args.force, device=args.device)
    print(f"zoo ready in {zoo.zoo_dir()} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
