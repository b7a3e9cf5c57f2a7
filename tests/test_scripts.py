"""The data scripts: clear errors for bad arguments, files kept whole and as the user made them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "data_scripts" / name), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["--threads", "-1"], "expected a whole number >= 1, got '-1'"),
    (["--threads", "two"], "expected a whole number >= 1, got 'two'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--only", "kitnet_m-scr"], "Did you mean 'kitnet_m-src'"),
])
def test_build_zoo_rejects_bad_arguments_with_exit_2(args, message, tmp_path):
    out = _script("build_zoo.py", *args, env={"TRANSFERLAB_HOME": str(tmp_path)})
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "zoo").exists()  # nothing built, nothing written


@pytest.mark.parametrize("content", ["[]", "null", "{garbage", '{"kitnet_s-src": 3}'])
def test_build_zoo_list_survives_a_broken_manifest(content, tmp_path):
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "manifest.json").write_text(content)
    out = _script("build_zoo.py", "--list", env={"TRANSFERLAB_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "kitnet_m-src" in out.stdout and "Traceback" not in out.stderr


def _notebook_with_output(path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    nbformat.write(nb, path)


def test_strip_keeps_mode_and_symlinks(tmp_path):
    real = tmp_path / "real.ipynb"
    _notebook_with_output(real)
    os.chmod(real, 0o664)
    link = tmp_path / "link.ipynb"
    link.symlink_to(real)
    out = _script("strip_notebooks.py", str(link))
    assert out.returncode == 0, out.stderr
    assert link.is_symlink(), "the symlinked notebook was replaced by a regular file"
    assert stat.S_IMODE(real.stat().st_mode) == 0o664
    nb = json.loads(real.read_text())
    assert nb["cells"][0]["outputs"] == [] and nb["cells"][0]["execution_count"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.ipynb", "real.ipynb"]
