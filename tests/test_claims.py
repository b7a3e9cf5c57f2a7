import json

import pytest

from transferlab import claims


def test_record_writes_atomically_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    led = claims.Ledger("00_demo", smoke=True)
    led.record("a", claim="A holds", measured="A = 1.0", verdict="reproduced", value=1.0, display=False)
    led.record("b", claim="B holds", measured="B = 0", verdict="contradicted", display=False)
    led.record("a", claim="A holds", measured="A = 2.0", verdict="partly", value=2.0, display=False)
    data = json.loads((tmp_path / "00_demo.json").read_text())
    assert data["smoke"] is True and [c["id"] for c in data["claims"]] == ["a", "b"]
    assert data["claims"][0]["value"] == 2.0
    assert [c["id"] for c in claims.load_records(tmp_path)] == ["a", "b"]
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    led = claims.Ledger("x")
    with pytest.raises(ValueError, match="verdict must be one of"):
        led.record("a", claim="c", measured="m", verdict="true-ish")
    with pytest.raises(TypeError):
        led.record("a", claim="c", measured="m", verdict="partly", value=object(), display=False)
    with pytest.raises(ValueError, match="plain name"):
        claims.Ledger("../escape")


def test_a_run_in_another_setting_keeps_the_worlds_results(tmp_path, monkeypatch):
    from transferlab.claims import Ledger, load_records

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    world = Ledger("01_x")
    world.record("c", claim="x", measured="world", verdict="reproduced", display=False)
    real = Ledger("01_x", setting=dict(DATA="folder:/data/my images", MODELS="resnet18.a1_in1k"))
    real.record("c", claim="x", measured="real", verdict="partly", display=False)
    assert world.path.name == "01_x.json" and real.path.name.startswith("01_x@") and real.path != world.path
    assert "/" not in real.path.name and " " not in real.path.name
    got = {r["measured"]: r["setting"] for r in load_records(tmp_path)}
    assert got == {"world": {"DATA": "world", "MODELS": "zoo"},
                   "real": {"DATA": "folder:/data/my images", "MODELS": "resnet18.a1_in1k"}}
    assert Ledger("01_x", setting=dict(DATA="world")).path == world.path  # a partial default setting is the default


def test_a_new_ledger_for_the_same_notebook_keeps_the_other_claims(tmp_path, monkeypatch):
    """Re-running one cell after a kernel restart must not drop the verdicts recorded before the restart."""
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    first = claims.Ledger("02_x")
    first.record("a", claim="A", measured="1", verdict="reproduced", display=False)
    first.record("b", claim="B", measured="2", verdict="partly", display=False)
    again = claims.Ledger("02_x")  # a restarted kernel
    again.record("b", claim="B", measured="3", verdict="contradicted", display=False)
    got = {r["id"]: r["measured"] for r in claims.load_records(tmp_path)}
    assert got == {"a": "1", "b": "3"}


def test_a_smoke_run_does_not_mix_with_a_lesson_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    claims.Ledger("02_x").record("a", claim="A", measured="lesson", verdict="reproduced", display=False)
    claims.Ledger("02_x", smoke=True).record("b", claim="B", measured="smoke", verdict="partly", display=False)
    assert [r["id"] for r in claims.load_records(tmp_path)] == ["b"]


def test_non_finite_values_are_written_as_valid_json(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    led = claims.Ledger("03_x")
    led.record("w", claim="W", measured="m", verdict="partly", display=False,
               value=dict(width=float("inf"), gap=float("nan"), ratio=np.float32(1.5), steps=[np.int64(3)]))
    text = (tmp_path / "03_x.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the ledger file"))
    assert json.loads(text)["claims"][0]["value"] == {"width": "Infinity", "gap": "NaN", "ratio": 1.5, "steps": [3]}


def test_a_file_that_is_not_a_ledger_is_kept_aside_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    mine = tmp_path / "04_x.json"
    mine.write_text('{"my": "notes"}')
    with pytest.warns(UserWarning, match="not a claims ledger"):
        claims.Ledger("04_x").record("a", claim="A", measured="m", verdict="partly", display=False)
    kept = list(tmp_path.glob("04_x.json.not-a-ledger-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"my": "notes"}'


def test_reading_a_corrupt_ledger_names_the_file(tmp_path):
    (tmp_path / "05_x.json").write_text("{truncated")
    with pytest.raises(ValueError, match="05_x.json is not a claims ledger file"):
        claims.load_records(tmp_path)
