"""The zoo, in a temporary TRANSFERLAB_HOME with tiny recipes (the real zoo is built by `make zoo`)."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

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
    record = json.loads((tiny_zoo / "tiny-test.json").read_text())
    record["fingerprint"] = "old-recipe"
    (tiny_zoo / "tiny-test.json").write_text(json.dumps(record))
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


def test_a_file_the_zoo_did_not_write_is_kept_aside_not_overwritten(tiny_zoo):
    tiny_zoo.mkdir(parents=True)
    mine = tiny_zoo / "tiny-test.safetensors"
    mine.write_bytes(b"my own experiment")
    with pytest.warns(UserWarning, match="kept it as"):
        zoo.build("tiny-test", progress=False)
    kept = list(tiny_zoo.glob("tiny-test.safetensors.replaced-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"my own experiment"


def test_a_garbage_manifest_does_not_cost_a_rebuild(tiny_zoo):
    path = zoo.build("tiny-test", progress=False)
    mtime = path.stat().st_mtime_ns
    (tiny_zoo / "manifest.json").write_text("{ this is not json")
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert zoo.is_built("tiny-test")  # re-verified from its own record and hash
    with pytest.warns(UserWarning):
        zoo.load("tiny-test", progress=False)
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("content", ["[]", "null", "3", '{"tiny-test": 5}', '{"tiny-test": {"sha256": 1}}'])
def test_a_manifest_of_the_wrong_shape_is_ignored_with_a_warning(tiny_zoo, content):
    zoo.build("tiny-test", progress=False)
    (tiny_zoo / "manifest.json").write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = {r["name"]: r for r in zoo.status()}
        assert rows["tiny-test"]["built"]
        zoo.load("tiny-test", progress=False)


def test_an_invalid_index_is_kept_aside_when_rewritten(tiny_zoo):
    zoo.build("tiny-test", progress=False)
    (tiny_zoo / "manifest.json").write_text("[1, 2]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zoo.build("tiny-test", force=True, progress=False)
    assert [p.read_text() for p in tiny_zoo.glob("manifest.json.invalid-*")] == ["[1, 2]"]
    assert "tiny-test" in json.loads((tiny_zoo / "manifest.json").read_text())


def test_build_all_takes_one_name_and_rejects_a_bad_device(tiny_zoo):
    assert [p.name for p in zoo.build_all("tiny-test", progress=False)] == ["tiny-test.safetensors"]
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        zoo.build_all("tiny-test", device="gpu", progress=False)


LOAD_AS_OTHER_USER = """
import sys
from transferlab import zoo
zoo.ZOO["tiny-test"] = zoo.ZooSpec("kitnet_s", n_per_class=8, epochs=1, description="test-only")
m = zoo.load("tiny-test", device="cpu", build_missing=False)
print("loaded", m.pretrained_cfg["zoo_name"])
"""


def test_a_zoo_built_by_one_user_loads_read_only_for_another(tmp_path, monkeypatch):
    """The class-lab case: an instructor builds the zoo, students read it (no write access, no lock files)."""
    home = Path(tempfile.mkdtemp(prefix="tl-shared-"))
    try:
        os.chmod(home, 0o755)
        monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
        monkeypatch.setitem(zoo.ZOO, "tiny-test", TINY)
        old = os.umask(0o022)
        try:
            zoo.build("tiny-test", progress=False)
        finally:
            os.umask(old)
        env = dict(os.environ, TRANSFERLAB_HOME=str(home), HOME=str(tmp_path))
        cmd = [sys.executable, "-c", LOAD_AS_OTHER_USER]
        if os.geteuid() == 0:
            # root ignores permission bits: hand the home to another user and load as a root without the
            # capabilities that override file permissions, i.e. as someone who may read but not write it
            if shutil.which("setpriv") is None:
                pytest.skip("needs util-linux setpriv to drop root's file-permission override")
            for p in [home, *home.rglob("*")]:
                os.chown(p, 65534, 65534)
            cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
        else:
            for p in [home, *home.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
        before = sorted(p.name for p in (home / "zoo").iterdir())
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(Path(__file__).parents[1]), timeout=120,
                             env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "loaded tiny-test" in out.stdout
        assert sorted(p.name for p in (home / "zoo").iterdir()) == before  # nothing written, no lock file
    finally:
        for p in [home, *home.rglob("*")]:
            with contextlib.suppress(OSError):
                p.chmod(p.stat().st_mode | 0o200)
        shutil.rmtree(home, ignore_errors=True)


def test_loading_a_missing_model_from_a_read_only_zoo_says_what_to_do(tiny_zoo, monkeypatch):
    from transferlab import _paths

    @contextlib.contextmanager
    def read_only_lock(path, required=True):
        if required:
            raise PermissionError(13, f"cannot create the lock file {path}: the folder is not writable")
        yield False

    monkeypatch.setattr(zoo, "file_lock", read_only_lock)
    assert _paths.file_lock is not read_only_lock
    with pytest.raises(FileNotFoundError, match="build_zoo.py --only tiny-test"):
        zoo.load("tiny-test", build_missing=False)
    with pytest.raises(PermissionError, match="not writable"):
        zoo.load("tiny-test")
