"""Every lesson notebook runs start to finish in smoke mode, and is committed without outputs."""

from __future__ import annotations

import os
import time

import nbformat
import pytest
from nbrun import NOTEBOOKS, execute, has_outputs, parameters_index

PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# Smoke mode targets 90 s on 2 CPU cores; the timeout leaves room for a loaded CI machine.
SMOKE_TIMEOUT_S = int(os.environ.get("TRANSFERLAB_SMOKE_TIMEOUT", "300"))


def test_there_are_lessons():
    assert len(PATHS) >= 1, f"no notebooks found in {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert not has_outputs(nb), f"{path.name} carries outputs; strip them (make strip) before committing"
    parameters_index(nb)  # raises if there is no 'parameters' cell
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for knob in ("SMOKE", "DEVICE", "DATA", "MODELS"):
        assert knob in nb.cells[parameters_index(nb)].source, f"{path.name}: parameters cell lacks {knob}"
    assert "Ledger(" in src, f"{path.name} records no claims for the ledger"


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # kernels run side by side: one thread each, or two kernels x two threads oversubscribe a 2-core machine
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    execute(path, {"SMOKE": True}, timeout=SMOKE_TIMEOUT_S, cwd=NOTEBOOKS)
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: smoke run {elapsed:.1f} s")
    assert elapsed < SMOKE_TIMEOUT_S
    assert list((tmp_path / "results").glob("*.json")), f"{path.name} wrote no ledger results"


@pytest.fixture(scope="module")
def offline_real_home(tmp_path_factory):
    """A kit home with an ImageFolder (6 classes, PNG files) and a timm model's weights on disk: see realpath.py."""
    from realpath import make_offline_home

    home = tmp_path_factory.mktemp("real-home")
    return home, make_offline_home(home, classes=6, per_class=120)  # 24 test images per class


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_runs_on_the_real_path_offline(path, offline_real_home, tmp_path, monkeypatch):
    """``DATA = "folder:..."`` and ``MODELS = <timm name>``: the code a learner with a network runs for CIFAR and
    resnet18, fed from files the test made (6 classes, so nothing may assume the world's 10). Lesson 06 gets a
    local CSV and a tiny Hugging Face model folder instead (the code that runs for SST-2 and bert-base-uncased)."""
    from realpath import params_for

    home, params = offline_real_home
    params = params_for(path.stem, params)
    if params is None:
        pytest.skip("the nlp extra (transformers) is not installed")
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    execute(path, {"SMOKE": True, **params}, timeout=SMOKE_TIMEOUT_S, cwd=NOTEBOOKS)
    print(f"{path.name}: real-path smoke run {time.perf_counter() - t0:.1f} s")
    assert list((tmp_path / "results").glob("*.json")), f"{path.name} wrote no ledger results"
