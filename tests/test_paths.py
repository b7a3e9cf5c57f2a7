"""_paths: atomic writes with the user's umask, locks that never truncate or follow links, keep-aside."""

import os
import stat
import time

import pytest

from transferlab import _paths


def test_atomic_write_uses_the_umask_and_keeps_an_existing_mode(tmp_path):
    old = os.umask(0o022)
    try:
        p = _paths.atomic_write(tmp_path / "new.json", "{}")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's 0600
        os.umask(0o077)
        q = _paths.atomic_write(tmp_path / "private.json", "{}")
        assert stat.S_IMODE(q.stat().st_mode) == 0o600
        os.chmod(p, 0o664)
        _paths.atomic_write(p, "[]")
        assert stat.S_IMODE(p.stat().st_mode) == 0o664 and p.read_text() == "[]"
    finally:
        os.umask(old)


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    _paths.atomic_write(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("kept")

    def boom(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _paths.atomic_write(p, boom)
    assert p.read_text() == "kept" and sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]


def test_stale_temporaries_of_a_killed_write_are_cleaned(tmp_path):
    stale = tmp_path / ".f.txt.abc123.tmp"
    stale.write_text("from a kill -9")
    old = time.time() - _paths.STALE_TMP_SECONDS - 10
    os.utime(stale, (old, old))
    fresh = tmp_path / ".f.txt.def456.tmp"  # a concurrent writer's: left alone
    fresh.write_text("in progress")
    _paths.atomic_write(tmp_path / "f.txt", "x")
    assert not stale.exists() and fresh.exists()


def test_a_symlink_at_a_lock_path_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not empty me")
    lock = tmp_path / ".x.lock"
    lock.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        with _paths.file_lock(lock):
            pass
    assert victim.read_text() == "do not empty me"


def test_an_existing_lock_file_is_not_truncated(tmp_path):
    lock = tmp_path / ".x.lock"
    lock.write_text("someone's notes")
    with _paths.file_lock(lock) as held:
        assert held
    assert lock.read_text() == "someone's notes"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; tests/test_zoo.py covers it as nobody")
def test_a_read_only_folder_skips_the_lock_unless_required(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with _paths.file_lock(ro / ".x.lock", required=False) as held:
            assert held is False
        with pytest.raises(PermissionError, match="not writable"):
            with _paths.file_lock(ro / ".x.lock"):
                pass
    finally:
        ro.chmod(0o755)


def test_keep_aside_renames_and_never_deletes(tmp_path):
    p = tmp_path / "m.bin"
    p.write_bytes(b"abc")
    aside = _paths.keep_aside(p, "replaced")
    assert not p.exists() and aside.read_bytes() == b"abc" and aside.name.startswith("m.bin.replaced-")
