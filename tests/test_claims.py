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
    assert [c["id"] for c in claims.load_all(tmp_path)] == ["a", "b"]
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
    from transferlab.claims import Ledger, load_all

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    world = Ledger("01_x")
    world.record("c", claim="x", measured="world", verdict="reproduced", display=False)
    real = Ledger("01_x", setting=dict(DATA="folder:/data/my images", MODELS="resnet18.a1_in1k"))
    real.record("c", claim="x", measured="real", verdict="partly", display=False)
    assert world.path.name == "01_x.json" and real.path.name.startswith("01_x@") and real.path != world.path
    assert "/" not in real.path.name and " " not in real.path.name
    got = {r["measured"]: r["setting"] for r in load_all(tmp_path)}
    assert got == {"world": {"DATA": "world", "MODELS": "zoo"},
                   "real": {"DATA": "folder:/data/my images", "MODELS": "resnet18.a1_in1k"}}
    assert Ledger("01_x", setting=dict(DATA="world")).path == world.path  # a partial default setting is the default
