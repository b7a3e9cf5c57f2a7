"""Execute a lesson notebook the way the tests and the docs do: papermill-style parameter injection + nbclient.

The cell tagged ``parameters`` holds a notebook's defaults; we insert a cell right after it that overrides
some of them (``SMOKE = True`` for tests), exactly as papermill would, so the notebook itself never changes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def parameters_index(nb) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return i
    raise ValueError("the notebook has no code cell tagged 'parameters'")


def inject(nb, params: dict):
    """A copy of ``nb`` with an ``injected-parameters`` cell after the ``parameters`` cell."""
    nb = copy.deepcopy(nb)
    src = "# Parameters injected by the test harness\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(parameters_index(nb) + 1, cell)
    return nb


def execute(path: Path, params: dict | None = None, *, timeout: int = 600, cwd: Path | None = None):
    """Run every cell; raises ``nbclient.exceptions.CellExecutionError`` on the first error."""
    nb = nbformat.read(path, as_version=4)
    nb = inject(nb, params or {})
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute()
    return nb


def has_outputs(nb) -> bool:
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)
