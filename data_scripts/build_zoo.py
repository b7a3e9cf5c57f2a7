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
import importlib.util
import sys
import time

import torch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main(argv=None) -> int:
    from transferlab import zoo
    from transferlab._validate import did_you_mean
    from transferlab.device import resolve_device

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    ap.add_argument("--force", action="store_true", help="rebuild even when a valid copy is cached")
    ap.add_argument("--list", action="store_true", help="show the zoo and what is built, then exit")
    ap.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    ap.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    try:
        resolve_device(args.device)
    except ValueError as err:
        print(f"error: --device: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.list:
        for row in zoo.status():
            mark = "built" if row["built"] else "-----"
            acc = "" if row["source_test_acc"] is None else f"  source acc {row['source_test_acc']:.3f}"
            print(f"{mark}  {row['name']:<18} {row['description']}{acc}")
        print(f"cache: {zoo.zoo_dir()}")
        return 0
    names = args.only or list(zoo.ZOO)
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        hints = "".join(did_you_mean(n, zoo.ZOO) for n in unknown)
        print(f"error: unknown zoo model(s) {unknown}.{hints} Known: {', '.join(zoo.ZOO)}", file=sys.stderr)
        return 2
    text = [n for n in names if zoo.ZOO[n].kind == "text"]
    if text and importlib.util.find_spec("transformers") is None:
        print(f"note: skipping the text models {text} (lesson 06): they need the nlp extra, "
              f"pip install 'transferlab[nlp]'", file=sys.stderr)
        names = [n for n in names if n not in text]
    t0 = time.perf_counter()
    zoo.build_all(names, force=args.force, device=args.device)
    print(f"zoo ready in {zoo.zoo_dir()} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
