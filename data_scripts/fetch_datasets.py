#!/usr/bin/env python
"""Download real datasets (and timm weights) for the online path into $TRANSFERLAB_HOME (default ~/.cache/transferlab).

Every file is checked against its published checksum (torchvision's own for its datasets); downloads resume
where they broke off; a file that fails its checksum is kept aside under a .bad-<time> name, never used.
Nothing is written outside $TRANSFERLAB_HOME/data (datasets) and $TRANSFERLAB_HOME/weights (model weights).

    python data_scripts/fetch_datasets.py --list
    python data_scripts/fetch_datasets.py cifar10 eurosat
    python data_scripts/fetch_datasets.py --model resnet18.a1_in1k     # weights to carry to an offline machine
    python data_scripts/fetch_datasets.py --recommended cpu            # the recommended CPU backbones

Offline, each download (datasets and weights alike) fails within --timeout seconds and prints the URL and where
to put a file downloaded by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def save_timm_weights(name: str, timeout: float = 15.0) -> Path:
    """Download ``name``'s pretrained weights through timm and store them at ``timm_weights_path(name)``.

    Offline (the hub unreachable within ``timeout`` seconds, or ``HF_HUB_OFFLINE`` set, and the weights not in
    the local Hugging Face cache) this raises ``OSError`` at once instead of waiting for the hub client's retries.
    """
    import timm
    from safetensors.torch import save_file

    from transferlab._hub import require_hub
    from transferlab._paths import atomic_write
    from transferlab.models import timm_weights_path

    path = timm_weights_path(name)
    if path.exists():
        return path
    require_hub(name, timeout)
    model = timm.create_model(name, pretrained=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"timm_name": name, "source": "timm pretrained"}
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def main(argv=None) -> int:
    from transferlab import datasets

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="DATASET", help=f"datasets to fetch: {', '.join(datasets.DATASETS)}")
    ap.add_argument("--list", action="store_true", help="show the datasets, their sizes and what is fetched")
    ap.add_argument("--model", nargs="+", default=[], metavar="TIMM_NAME", help="timm weights to download")
    ap.add_argument("--recommended", choices=sorted(datasets.RECOMMENDED_BACKBONES),
                    help="download the weights of every recommended backbone for this device kind")
    ap.add_argument("--timeout", type=float, default=15.0,
                    help="seconds to wait for a server or the Hugging Face hub (default 15)")
    args = ap.parse_args(argv)
    if args.list or not (args.names or args.model or args.recommended):
        for name, spec in datasets.DATASETS.items():
            mark = "fetched" if datasets.is_fetched(name) else "-------"
            print(f"{mark}  {name:<9} {spec.title:<17} ~{spec.size_mb:>4} MB  similarity prior {spec.similarity:g}: "
                  f"{spec.note}")
        print(f"data folder: {datasets.data_dir()}")
        return 0
    unknown = [n for n in args.names if n not in datasets.DATASETS]
    if unknown:
        print(f"error: unknown dataset(s) {unknown}; known: {', '.join(datasets.DATASETS)}", file=sys.stderr)
        return 2
    failed = 0
    for name in args.names:
        t0 = time.perf_counter()
        try:
            folder = datasets.fetch(name, timeout=args.timeout)
        except (datasets.DownloadError, datasets.ChecksumError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: ready in {folder} ({time.perf_counter() - t0:.0f} s)")
    models = list(args.model) + list(datasets.RECOMMENDED_BACKBONES.get(args.recommended, ()))
    for name in models:
        try:
            print(f"{name}: weights at {save_timm_weights(name, args.timeout)}")
        except Exception as err:  # noqa: BLE001 - report every model, then fail
            print(f"error: {name}: {type(err).__name__}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
