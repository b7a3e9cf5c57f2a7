"""transferlab.backends: the same Keras model on the torch and JAX backends, each in its own process, offline."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from transferlab import backends

HAS_KERAS = importlib.util.find_spec("keras") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def test_status_lists_each_backend_and_how_to_install_a_missing_one(monkeypatch):
    rows = {r["backend"]: r for r in backends.backend_status()}
    assert set(rows) == set(backends.BACKENDS)
    assert rows["torch"]["installed"] == HAS_KERAS
    monkeypatch.setitem(backends._MODULE, "tensorflow", "transferlab_no_such_module")
    tf = backends.backend_status(("tensorflow",))[0]
    if HAS_KERAS:
        assert not tf["installed"] and "pip install tensorflow-cpu" in tf["note"] and "MB" in tf["note"]


def test_unknown_backends_and_bad_numbers_are_refused():
    with pytest.raises(ValueError, match="unknown backend 'jaxx'.*Did you mean 'jax'"):
        backends.compare(backends=("torch", "jaxx"))
    with pytest.raises(ValueError, match="dropout must be"):
        backends.compare(backends=(), dropout=1.0)
    bad = backends.head_data(0, n_train=6, n_val=4)
    with pytest.raises(ValueError, match=r"x_val must be \[N, features\] and y_val \[N\]"):
        backends.compare(dict(bad, y_val=bad["y_val"][:3]), backends=())
    with pytest.raises(ValueError, match="integer class indices"):
        backends.compare(dict(bad, y_train=bad["y_train"].astype(float)), backends=())


def test_a_missing_backend_is_skipped_with_a_note_never_an_error(monkeypatch):
    monkeypatch.setitem(backends._MODULE, "tensorflow", "transferlab_no_such_module")
    r = backends.compare(backends=("tensorflow",))
    assert r.ran == [] and r.reference is None and r.acc_gaps() == []
    row = r.status.iloc[0]
    assert row["status"] == "skipped" and "not installed" in row["note"]
    assert r.diffs.empty and r.seeds.empty


def test_worker_env_keeps_keras_out_of_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "kit"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    env = backends.worker_env("torch", threads=2)
    assert env["MPLCONFIGDIR"] == str(tmp_path / "kit" / "matplotlib")
    assert env["KERAS_HOME"] == str(tmp_path / "kit" / "keras") and Path(env["KERAS_HOME"]).is_dir()
    assert env["HOME"] == os.environ["HOME"] and env["KERAS_BACKEND"] == "torch"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    root = str(Path(backends.__file__).resolve().parents[1])
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "mine"))
    assert backends.worker_env("jax")["KERAS_HOME"] == str(tmp_path / "mine")  # the user's choice is kept


def test_shared_weights_and_head_data_are_seeded():
    a, b = backends.shared_weights(5, 4, 3, seed=1), backends.shared_weights(5, 4, 3, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [w.shape for w in a] == [(5, 4), (4,), (4,), (4,), (4,), (4,), (4, 3), (3,)]
    d = backends.head_data(2, n_features=6, n_classes=3, n_train=9, n_val=4)
    assert np.array_equal(d["x_val"], backends.head_data(2, n_features=6, n_classes=3, n_train=9, n_val=4)["x_val"])
    assert set(np.unique(d["y_train"])) <= {0, 1, 2}


@pytest.mark.skipif(not HAS_KERAS, reason="Keras is not installed (pip install -e .[keras])")
def test_a_worker_past_its_time_is_reported_not_raised(tmp_path):
    r = backends.compare(backends=("torch",), timeout=0.05, workdir=tmp_path)
    assert r.status.iloc[0]["status"] == "timed out" and "stopped after" in r.status.iloc[0]["note"]
    assert r.ran == [] and list(tmp_path.iterdir()) == []  # the exchange folder is gone


@pytest.mark.skipif(not HAS_KERAS, reason="Keras is not installed (pip install -e .[keras])")
def test_a_failing_worker_is_reported_with_its_exit_code(monkeypatch):
    monkeypatch.setattr(backends.sys, "executable", "false")
    r = backends.compare(backends=("torch",), timeout=30)
    assert r.status.iloc[0]["status"] == "failed" and "exit code 1" in r.status.iloc[0]["note"]


@pytest.mark.slow
@pytest.mark.skipif(not (HAS_KERAS and HAS_JAX), reason='needs Keras and JAX (pip install -e ".[backends]")')
def test_torch_and_jax_agree_on_arithmetic_and_differ_in_random_numbers(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "kit"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    data = backends.head_data(0, n_features=8, n_classes=3, n_train=48, n_val=30)
    r = backends.compare(data, backends=("torch", "jax"), seeds=(0, 1), hidden=8, batch=16, epochs=1, timeout=600)
    assert r.status["status"].tolist() == ["ran", "ran"], r.status.to_dict("records")
    assert r.ran == ["torch", "jax"] and r.reference == "torch"
    d = r.diffs.iloc[0]
    # the same weights: the same function, to float32 round-off
    assert d["infer_max_abs_diff"] < 1e-4 and d["argmax_agreement"] == 1.0
    # one step without dropout: the same update, to round-off; the BatchNorm statistics moved, identically
    assert d["update_nodrop_rel_diff"] < 1e-3
    assert d["bn_moving_mean_moved"] > 0 and d["bn_moving_mean_max_abs_diff"] < 1e-5
    assert d["bn_moving_variance_max_abs_diff"] < 1e-5
    # with dropout the masks differ, so the step does too: far beyond round-off
    assert d["update_drop_rel_diff"] > 1e-2
    seeds = r.seeds
    within = seeds[seeds["compared_with"] == "itself (same seed again)"]
    assert len(within) == 4 and within["init_weights_equal"].all() and within["dropout_mask_equal"].all()
    again = seeds[seeds["compared_with"] == "itself: whole training run again"]
    assert again["final_weights_equal"].astype(bool).all()
    across = seeds[seeds["compared_with"] == "torch"]
    assert len(across) == 2 and not across["init_weights_equal"].astype(bool).any()
    assert not across["dropout_mask_equal"].astype(bool).any()
    assert set(r.accuracy["variant"]) == {"shared init, no dropout", "own seeded init, dropout"}
    assert len(r.accuracy) == 2 * 2 * 2 and r.accuracy["val_acc"].between(0, 1).all()
    assert len(r.acc_gaps()) == 2 and all(g >= 0 for g in r.acc_gaps())
    t = r.timing.set_index("backend")
    assert (t["step_ms"] > 0).all() and (t["import_s"] > 0).all()
    # Keras wrote its config in the kit home (matplotlib, which it imports, its font cache), nothing in HOME
    assert (tmp_path / "kit" / "keras" / "keras.json").exists()
    assert list(home.iterdir()) == []
    assert backends.check_seed_across(r, False) and not backends.check_seed_across(r, True)
    assert "no answer yet" in repr(backends.check_seed_across(r, None))
