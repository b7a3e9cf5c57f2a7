"""Shared bits of the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transferlab._paths import atomic_write
from transferlab.device import env_report

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically, with the machine it was measured on."""
    payload = dict(payload, benchmark=name, measured=time.strftime("%Y-%m-%dT%H:%M:%S"), env=env_report())
    path = RESULTS / f"{name}.json"
    atomic_write(path, json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return path
