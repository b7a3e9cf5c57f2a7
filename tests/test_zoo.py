"""The zoo, in a temporary TRANSFERLAB_HOME with tiny recipes (the real zoo is built by `make zoo`)."""

import json

import pytest
import torch

from transferlab import zoo
from transferlab.models import create_model

TINY = zoo.ZooSpec("kitnet_s", n_per_class=8, epochs=1, description="test-only")


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(zoo.ZOO, "tiny-test", TINY)
    return tmp_path / "home" / "zoo"


def test_every_real_spec_is_buildable_and_distinct():
    assert len(zoo.ZOO) >= 8
    fps = {s.fingerprint() for s in zoo.ZOO.values()}
    assert len(fps) == len(zoo.ZOO)
    assert len({s.arch for s in zoo.ZOO.values()}) >= 4


def test_build_writes_safetensors_and_manifest(tiny_zoo):
    path = zoo.build("tiny-test", progress=False)
    assert path == tiny_zoo / "tiny-test.safetensors" and path.exists()
    entry = zoo.manifest()["tiny-test"]
    assert entry["sha256"] == zoo.sha256(path) and entry["arch"] == "kitnet_s"
    assert 0 <= entry["source_test_acc"] <= 1 and entry["seed"] == 0
    assert not list(tiny_zoo.glob("*.tmp"))
    mtime = path.stat().st_mtime_ns
    zoo.build("tiny-test", progress=False)  # valid copy: skipped
    assert path.stat().st_mtime_ns == mtime


def test_load_roundtrip_and_create_model(tiny_zoo):
    zoo.build("tiny-test", progress=False)
    a, b = zoo.load("tiny-test"), zoo.load("tiny-test")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a.pretrained_cfg["zoo_name"] == "tiny-test"
    m = create_model("tiny-test", 4, pretrained=True)
    assert m.head.out_features == 4
    assert torch.equal(m.stem[0].weight, a.stem[0].weight)


def test_corrupted_file_is_detected_moved_aside_and_rebuilt(tiny_zoo):
    path = zoo.build("tiny-test", progress=False)
    good = zoo.load("tiny-test").state_dict()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(UserWarning, match="failed its SHA-256 check"):
        m = zoo.load("tiny-test", progress=False)
    aside = list(tiny_zoo.glob("tiny-test.safetensors.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == data[: len(data) // 2]  # kept, not deleted
    assert zoo.sha256(path) == zoo.manifest()["tiny-test"]["sha256"]
    assert all(torch.equal(good[k], v) for k, v in m.state_dict().items())  # deterministic rebuild


def test_flipped_byte_is_detected(tiny_zoo):
    path = zoo.build("tiny-test", progress=False)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FileNotFoundError, match="build_zoo.py --only tiny-test"):
        with pytest.warns(UserWarning, match="SHA-256"):
            zoo.load("tiny-test", build_missing=False)


def test_missing_model_without_build_names_the_command(tiny_zoo):
    with pytest.raises(FileNotFoundError, match="python data_scripts/build_zoo.py --only tiny-test"):
        zoo.load("tiny-test", build_missing=False)


def test_outdated_recipe_is_rebuilt(tiny_zoo, monkeypatch):
    zoo.build("tiny-test", progress=False)
    man = zoo.manifest()
    man["tiny-test"]["fingerprint"] = "old-recipe"
    (tiny_zoo / "manifest.json").write_text(json.dumps(man))
    assert not [r for r in zoo.status() if r["name"] == "tiny-test"][0]["built"]
    zoo.load("tiny-test", progress=False)
    assert zoo.manifest()["tiny-test"]["fingerprint"] == TINY.fingerprint()


def test_unknown_name_suggests_closest(tiny_zoo):
    with pytest.raises(KeyError, match="Did you mean 'kitnet_m-src'"):
        zoo.load("kitnet_m-scr")


def test_nothing_written_outside_home(tiny_zoo, tmp_path):
    zoo.build("tiny-test", progress=False)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and tiny_zoo.parent not in p.parents]
    assert outside == []
