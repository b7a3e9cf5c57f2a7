"""Getting real datasets onto disk: verified, resumable, atomic downloads, safe extraction, and fetch by name.

- :func:`download`: one file into ``$TRANSFERLAB_HOME/data`` (never outside it), checked against its published
  MD5 (torchvision publishes those) or SHA-256. Bytes go to ``<file>.part``, resumed with an HTTP ``Range``
  request after a break, renamed only once the checksum matches; a file that fails it is kept aside under a
  ``.bad-<time>`` name (:func:`transferlab._paths.keep_aside`), never used. The server is asked *before* anything
  is created, so offline a call fails within ``timeout`` and leaves no folder, lock file or part behind.
- :func:`extract`: an archive unpacked once, through a temporary folder, refusing members that would land outside.
- :func:`fetch` / :func:`is_fetched`: every file of a dataset of :data:`transferlab._catalogue.DATASETS`,
  downloaded and extracted into ``data_dir()/<name>``.
- :func:`reachable`: whether a TCP connection to a URL's host opens within a time limit, name lookup included.

Concurrent processes are kept apart by one lock file per download (:func:`transferlab._paths.file_lock`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ._catalogue import dataset_spec
from ._paths import file_lock, home, keep_aside
from ._paths import sha256 as file_sha256
from ._validate import as_float

__all__ = ["ChecksumError", "DownloadError", "data_dir", "inside", "file_md5", "download", "extract", "fetch",
           "is_fetched", "reachable", "manual_route"]


class ChecksumError(ValueError):
    """A file does not match its published checksum (it has been moved aside, never used)."""


class DownloadError(OSError):
    """A download could not be completed (offline, refused, truncated); the message says what to do."""


def data_dir() -> Path:
    """The folder every download goes to: ``$TRANSFERLAB_HOME/data`` (default ``~/.cache/transferlab/data``).

    Examples
    --------
    >>> data_dir().name
    'data'
    """
    return home() / "data"


def inside(path: str | Path, folder: str | Path) -> Path:
    """``path`` resolved, or ``ValueError`` when it is not ``folder`` or inside it.

    Examples
    --------
    >>> inside("/tmp/kit/data/../elsewhere", "/tmp/kit/data")
    Traceback (most recent call last):
    ...
    ValueError: refusing to write '/tmp/kit/data/../elsewhere': it is outside the kit's data folder '/tmp/kit/data'
    """
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"refusing to write {str(path)!r}: it is outside the kit's data folder {str(root)!r}")
    return resolved


def file_md5(path: str | Path) -> str:
    """The MD5 hex digest of a file: the checksum torchvision publishes (SHA-256 comes from ``_paths.sha256``)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksum_ok(path: Path, md5_hex: str | None, sha256_hex: str | None) -> tuple[bool, str]:
    """(matches, description of the check) against the published checksum (SHA-256 when given, else MD5)."""
    if sha256_hex:
        algorithm, expected, got = "sha256", sha256_hex, file_sha256(path)
    else:
        algorithm, expected, got = "md5", md5_hex, file_md5(path)
    return got == expected.lower(), f"{algorithm} {got} (published: {expected})"


def manual_route(url: str, path: Path, check: str) -> str:
    """The sentence every download error ends with: how to get the file by hand."""
    return (f"Manual route: on a machine with a network, download {url} (a browser, or `curl -L -C - -o "
            f"{path.name} {url}`), copy it to {path}, and run again: it is checked against the published {check} "
            f"before use.")


def download(url: str, filename: str, *, md5: str | None = None, sha256: str | None = None,
             folder: str | Path | None = None, timeout: float = 15.0, progress: bool = True) -> Path:
    """Download ``url`` to ``folder/filename`` (inside :func:`data_dir`), verified, resumable and atomic.

    Bytes go to ``filename.part``; an interrupted or truncated download keeps the part and the next call resumes
    it with an HTTP ``Range`` request. The part is renamed to ``filename`` only once it matches the published
    checksum. A file that does not match is moved aside to ``filename.bad-<time>`` (never deleted, never used):
    an existing one with a warning before downloading afresh, a fresh download with :class:`ChecksumError`.
    Nothing (folder, lock file, part) is created before the server has answered.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` address.
    filename : str
        A bare file name (no folders).
    md5, sha256 : str
        The published checksum; one of them is required.
    folder : path, optional
        Where to put it; must be :func:`data_dir` or inside it (default: :func:`data_dir`).
    timeout : float
        Seconds to wait for the server to answer; offline, the call fails within this time.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path of the verified file.

    Raises
    ------
    DownloadError
        The server cannot be reached or the transfer broke off (the message names the URL and the manual route).
    ChecksumError
        The downloaded bytes do not match the checksum (the file is kept aside).

    Examples
    --------
    >>> download("ftp://example.org/x.bin", "x.bin", md5="0" * 32)
    Traceback (most recent call last):
    ...
    ValueError: url must start with http:// or https://, got 'ftp://example.org/x.bin'
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if not isinstance(filename, str) or not filename or Path(filename).name != filename or filename in (".", ".."):
        raise ValueError(f"filename must be a bare file name without folders, got {filename!r}")
    if not md5 and not sha256:
        raise ValueError(f"download({url!r}) needs the published md5= or sha256= to verify the file against")
    timeout = as_float("timeout", timeout, min=0, min_open=True)
    folder = inside(Path(folder) if folder is not None else data_dir(), data_dir())
    path, part = folder / filename, folder / f"{filename}.part"
    check = "SHA-256" if sha256 else "MD5"
    # Ask the server first: offline, this raises before any folder or lock file exists.
    answer = None if path.exists() else _request(url, _size(part), timeout, path, check)
    try:
        with file_lock(folder / f".{filename}.lock"):
            if path.exists():  # placed by hand, or finished by another process while we waited for the lock
                ok, got = _checksum_ok(path, md5, sha256)
                if ok:
                    return path
                aside = keep_aside(path, "bad")
                warnings.warn(f"{path} does not match its published checksum ({got}); moved it to {aside} and "
                              f"downloading it again", stacklevel=2)
            start = _size(part)
            if answer is None or answer.start != start:  # another process moved the part on while we waited
                if answer is not None:
                    answer.close()
                answer = _request(url, start, timeout, path, check)
            _receive(answer, part, path, check, progress)
            ok, got = _checksum_ok(part, md5, sha256)
            if not ok:
                aside = keep_aside(part, "bad", name=filename)
                raise ChecksumError(f"the download of {url} does not match its published checksum: {got}. The bad "
                                    f"file is kept at {aside} (not used). Run again to download afresh; if it "
                                    f"keeps failing, the server's copy differs from the published one. "
                                    + manual_route(url, path, check))
            os.replace(part, path)
    finally:
        if answer is not None:
            answer.close()
    return path


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class _Answer:
    """The server's answer to a request for ``url`` from byte ``start``; ``response`` None: HTTP 416 (the part
    already holds every byte, the checksum decides)."""

    url: str
    start: int
    response: http.client.HTTPResponse | None

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


def _request(url: str, start: int, timeout: float, path: Path, check: str) -> _Answer:
    """Ask for ``url`` from byte ``start`` (a ``Range`` request when above 0); DownloadError when it fails."""
    request = urllib.request.Request(url, headers={"User-Agent": "transferlab"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked by download
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            err.close()
            return _Answer(url, start, None)
        raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}). "
                            + manual_route(url, path, check)) from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot reach {url} ({reason}); are you offline? The kit's world data and zoo need "
                            f"no network (DATA='world', MODELS='zoo'). " + manual_route(url, path, check)) from err
    return _Answer(url, start, response)


def _receive(answer: _Answer, part: Path, path: Path, check: str, progress: bool) -> None:
    """Write the answer's bytes to ``part``: appended when the server resumed (206), from scratch otherwise."""
    response, url = answer.response, answer.url
    if response is None:
        return
    resumed = answer.start > 0 and response.status == 206
    start = answer.start if resumed else 0  # a server that ignores Range sends everything: start over
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None else None
    got = start
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=path.name, disable=not progress)
    try:
        with open(part, "ab" if resumed else "wb") as f:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    except (http.client.IncompleteRead, OSError) as err:  # OSError: reset, timeout
        raise DownloadError(f"the download of {url} broke off after {got} bytes ({err!r}); the part is kept "
                            f"at {part}: run again to resume it. " + manual_route(url, path, check)) from err
    finally:
        bar.close()
    if total is not None and got < total:
        raise DownloadError(f"the download of {url} is truncated: {got} of {total} bytes; the part is kept at "
                            f"{part}: run again to resume it. " + manual_route(url, path, check))


def extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` (zip or tar) into ``dest``, once: a marker file records a finished extraction.

    Members go to a temporary folder inside ``dest`` first and are renamed into place; a member that would land
    outside (an absolute path, ``..``, a link out) is refused with ``ValueError`` and nothing is kept.
    """
    marker = dest / f".extracted-{archive.name}"
    if marker.exists():
        return
    dest = inside(dest, data_dir())
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    inside(tmp / member, tmp)  # zip-slip: no absolute paths, no "..", ever
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # rejects absolute paths, "..", links out, devices
        for entry in tmp.iterdir():
            target = dest / entry.name
            if target.exists():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()  # an earlier extraction: keep it
            else:
                os.replace(entry, target)
        marker.write_text(f"extracted from {archive.name}\n")
    except tarfile.TarError as err:
        raise ValueError(f"{archive} is not a readable archive ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_fetched(name: str) -> bool:
    """True when every file of dataset ``name`` is downloaded, verified and extracted.

    Examples
    --------
    >>> is_fetched("cifar10") in (True, False)
    True
    """
    spec = dataset_spec(name)
    folder = data_dir() / name
    return all((folder / f".extracted-{r.filename}").exists() for r in spec.resources())


def fetch(name: str, *, progress: bool = True, timeout: float = 15.0) -> Path:
    """Download (verified, resumable) and extract dataset ``name`` into ``data_dir()/name``; returns that folder.

    Cheap when already done: the archives are kept, so a re-run only re-checks their checksums. Offline it fails
    within ``timeout`` seconds with :class:`DownloadError` and creates nothing.
    """
    spec = dataset_spec(name)
    folder = data_dir() / name
    for res in spec.resources():
        if (folder / f".extracted-{res.filename}").exists():
            continue
        archive = download(res.url, res.filename, md5=res.md5, sha256=res.sha256, folder=folder, timeout=timeout,
                           progress=progress)
        extract(archive, folder)
    return folder


def reachable(url: str, timeout: float) -> str | None:
    """None when a TCP connection to ``url``'s host and port opens within ``timeout`` seconds, else why not.

    The port is the URL's, or 443 for ``https`` and 80 for ``http``. The name lookup counts against the time
    limit too (it runs in a helper thread, since the system resolver has no timeout of its own).

    Examples
    --------
    >>> reachable("not a url", 1.0)
    "'not a url' is not an http(s) URL"
    """
    timeout = as_float("timeout", timeout, min=0, min_open=True)
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:  # a port that is not a number
        return f"{url!r} has a bad port ({err})"
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                outcome.append(None)
        except OSError as err:
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=connect, name="transferlab-reachable", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no connection to {parts.hostname}:{port} within {timeout:g} s"
