"""Where the kit keeps its files, and the only copies of how it writes, locks and checks them.

- :func:`home`: ``$TRANSFERLAB_HOME`` (default ``~/.cache/transferlab``); ``zoo/``, ``data/``, ``weights/``,
  ``results/``, ``experiments/`` and ``keras/`` live below it. Nothing is ever written inside the package.
- :func:`atomic_write`: write through a temporary file in the same folder and rename it into place, so a reader
  never sees half a file. New files get the user's umask (not ``mkstemp``'s 0600), a replaced file keeps its
  mode, and a symbolic link is written through (its target is replaced, the link stays a link).
- :func:`file_lock`: an exclusive advisory lock on a lock file that is never truncated and never followed
  through a symbolic link; on a read-only folder it is skipped (a reader of a built zoo needs no lock).
- :func:`keep_aside`: move a file out of the way under a new name, never deleting it.
- :func:`sha256`: the hex digest of a file, read in chunks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["home", "atomic_write", "file_lock", "keep_aside", "sha256", "current_umask", "STALE_TMP_SECONDS"]

STALE_TMP_SECONDS = 3600.0
"""A temporary file of an interrupted write (``kill -9``) older than this is removed by the next write."""


def home() -> Path:
    """The kit's cache: ``$TRANSFERLAB_HOME`` or ``~/.cache/transferlab``.

    Examples
    --------
    >>> import os; os.environ["TRANSFERLAB_HOME"] = "/tmp/tl-doc"; str(home())
    '/tmp/tl-doc'
    >>> del os.environ["TRANSFERLAB_HOME"]
    """
    env = os.environ.get("TRANSFERLAB_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferlab"


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``).

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_tmp(path: Path) -> None:
    """Remove temporary files of earlier, interrupted writes of ``path`` (older than STALE_TMP_SECONDS)."""
    cutoff = time.time() - STALE_TMP_SECONDS
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f"{_tmp_prefix(path)}*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.is_file() and not tmp.is_symlink() and tmp.stat().st_mtime < cutoff:
                    tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[str], object]) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path written (a link's target when ``path`` is a link).

    Parameters
    ----------
    path : the file to create or replace. A symbolic link is followed: its target is replaced and the link kept.
    data : bytes, str (written as UTF-8), or a callable ``write(tmp_path)`` that writes the temporary file
        (for libraries that write by file name, such as ``safetensors.torch.save_file``).

    The temporary file lives in the same folder (``.<name>.<random>.tmp``) and is removed if writing fails.
    A new file gets ``0o666 & ~umask``; an existing one keeps its permission bits.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> atomic_write(d / "a.txt", "hello").read_text()
    'hello'
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    try:
        if callable(data):
            os.close(fd)
            fd = -1
            data(tmp)
        else:
            blob = data.encode() if isinstance(data, str) else bytes(data)
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _remove_stale_tmp(path)
    return path


_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, required: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (a lock file, created if missing) for the ``with`` block.

    Yields True when the lock is held. The lock file is opened without truncation and never through a symbolic
    link (a link there raises ``OSError`` naming it, and the file it points to is left untouched). Where the
    folder cannot be written (a shared, read-only kit home) the block runs without a lock and yields False,
    unless ``required`` is True, in which case ``PermissionError`` says which folder is read-only. On systems
    without ``fcntl`` (Windows) the block runs unlocked: atomic renames still keep every file whole.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> with file_lock(d / ".x.lock") as held:
    ...     held
    True
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o666 & ~current_umask())
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"the lock file {path} is a symbolic link; the kit never follows links for "
                                       f"locks (remove it and run again)") from None
        if err.errno in _READ_ONLY_ERRNOS:
            if required:
                raise PermissionError(err.errno, f"cannot create the lock file {path}: the folder {path.parent} is "
                                                 f"not writable (a shared, read-only kit home?). Building needs a "
                                                 f"writable $TRANSFERLAB_HOME; loading what is built does not") from err
            yield False
            return
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def keep_aside(path: str | os.PathLike, tag: str = "bad", *, name: str | None = None) -> Path:
    """Rename ``path`` to ``<name>.<tag>-<time>-<pid>`` in the same folder (kept, never used); returns it.

    Examples
    --------
    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "m.bin").write_text("x") and None
    >>> keep_aside(d / "m.bin", "corrupt").name.startswith("m.bin.corrupt-")
    True
    """
    path = Path(path)
    aside = path.with_name(f"{name or path.name}.{tag}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a file.

    Examples
    --------
    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "e"; _ = p.write_bytes(b"")
    >>> sha256(p)[:12]
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
