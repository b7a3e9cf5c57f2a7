#!/usr/bin/env python
"""Remove outputs and execution counts from notebooks, in place and atomically (only if something changes)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from transferlab._paths import atomic_write


def strip(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    if changed:  # through a symlink to its target, keeping the file's mode
        text = nbformat.writes(nb)
        atomic_write(path, text if text.endswith("\n") else text + "\n")
    return changed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if strip(Path(arg)):
            print(f"stripped {arg}")
