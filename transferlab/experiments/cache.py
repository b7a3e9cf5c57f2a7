"""Finished result rows: their columns, their table, and :class:`ResultCache`, the folder that keeps them.

A grid of lesson 01 is hundreds of runs; the cache keeps every finished row under
``$TRANSFERLAB_HOME/experiments/<name>/`` so that a notebook reuses them and a widget recomputes one cell on
demand. Each row is its own small JSON file, named by a hash of the row's key and written atomically (a
temporary file renamed into place). So any number of processes, on one machine or on many machines sharing the
folder over NFS, may write at once with no lock: writers of different runs touch different files, writers of the
same run each leave a whole file, and a reader never sees half a file. (A lock-and-merge single file needs
``flock``, which NFS, Lustre or BeeGFS may not honour across machines, silently; a lost update then drops rows.)
A file that is not a result cache is never overwritten: it is kept aside (renamed
``<name>.not-a-cache-<time>-<pid>``) with a warning that names it.

Examples
--------
>>> results_frame([dict(n_per_class=2, similarity=1.0, strategy="probe", k=4, seed=0, acc=0.5, seconds=0.1,
...                     model="kitnet_m-src")]).columns.tolist()
['n_per_class', 'similarity', 'strategy', 'k', 'seed', 'acc', 'seconds', 'model']
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

from .._paths import atomic_write, home, keep_aside

__all__ = ["RESULT_COLUMNS", "results_frame", "ResultCache"]

RESULT_COLUMNS = ("n_per_class", "similarity", "strategy", "k", "seed", "acc", "seconds")
"""The columns every result row has first (the format ``transferlab.widgets.QuadrantExplorer`` reads)."""

_KEY_FIELDS = ("config", "n_per_class", "similarity", "strategy", "k", "seed")


def results_frame(rows: list[dict]):
    """Result rows as a pandas DataFrame, :data:`RESULT_COLUMNS` first (an empty frame still has them).

    Examples
    --------
    >>> results_frame([]).columns.tolist() == list(RESULT_COLUMNS)
    True
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    first = [c for c in RESULT_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


class ResultCache:
    """Finished result rows, keyed by (config fingerprint, n_per_class, similarity, strategy, k, seed).

    Parameters
    ----------
    where : str, Path or None
        A plain name (``"01_freezing_strategies"``) stores rows in the folder
        ``$TRANSFERLAB_HOME/experiments/<name>/``; a path stores them in that folder; ``None`` keeps rows in
        memory only. Each row is one file ``<hash of its key>.json``, written atomically and without a lock, so
        processes and machines sharing the folder may write at once and lose no row. Rows of an older
        single-file cache (``<name>.json``, format ``transferlab-results/1``) are read too. A file where the
        folder should be is kept aside under a new name with a warning naming both paths (an older single-file
        cache there has its rows carried over first).

    Examples
    --------
    >>> c = ResultCache(None)
    >>> c.put(dict(config="abc", n_per_class=20, similarity=1.0, strategy="probe", k=4, seed=0, acc=0.9))
    >>> c.get("abc", 20, 1.0, "probe", 4, 0)["acc"], len(c)
    (0.9, 1)
    """

    FORMAT = "transferlab-results/2"
    """The format of a row file (``{"format": FORMAT, "key": ..., "row": {...}}``)."""
    LEGACY_FORMAT = "transferlab-results/1"
    """The single-file cache of earlier versions (``{"format": ..., "rows": [...]}``), read but never written."""

    def __init__(self, where: str | Path | None = "01_freezing_strategies"):
        legacy = None
        if where is None:
            self.path = None
        elif isinstance(where, Path) or (isinstance(where, str) and any(sep in where for sep in "/\\")):
            self.path = Path(where).expanduser()
        elif isinstance(where, str) and where:
            self.path = home() / "experiments" / where
            legacy = self.path.with_name(f"{where}.json")
        else:
            raise ValueError(f"where must be a name, a path or None, got {where!r}")
        self._rows: dict[str, dict] = {}
        if legacy is not None and legacy.is_file():
            self._rows.update(self._parse_legacy(legacy) or {})
        if self.path is not None:
            self._clear_the_way()
            self.refresh()

    @staticmethod
    def key(config: str, n_per_class: int, similarity: float | str, strategy: str, k: int, seed: int) -> str:
        """The text a row is stored under (similarities to 4 digits, so ``0.5`` and ``0.50001`` are one).

        Examples
        --------
        >>> ResultCache.key("abc", 20, 0.5, "freeze", 2, 0)
        'abc|20|0.5000|freeze|2|0'
        """
        sim = similarity if isinstance(similarity, str) else f"{float(similarity):.4f}"
        return f"{config}|{int(n_per_class)}|{sim}|{strategy}|{int(k)}|{int(seed)}"

    def _row_key(self, row: Mapping) -> str:
        missing = [name for name in _KEY_FIELDS if name not in row]
        if missing:
            raise KeyError(f"a result row needs {', '.join(_KEY_FIELDS)}; this one lacks {missing[0]!r}")
        return self.key(*(row[name] for name in _KEY_FIELDS))

    def file_of(self, key: str) -> Path | None:
        """The file that holds the row stored under ``key`` (``None`` in memory).

        Examples
        --------
        >>> ResultCache("/tmp/tl-doc-cache").file_of("abc|20|0.5000|freeze|2|0").name
        '951c1f6acfbf54e8cd3771b3.json'
        """
        if self.path is None:
            return None
        return self.path / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def _parse_legacy(self, path: Path) -> dict[str, dict] | None:
        """The rows of an older single-file cache, or None if ``path`` is not one."""
        try:
            payload = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        if not isinstance(payload, dict) or payload.get("format") != self.LEGACY_FORMAT:
            return None
        rows = payload.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return None
        try:
            return {self._row_key(r): r for r in rows}
        except (KeyError, TypeError, ValueError):
            return None

    def _clear_the_way(self) -> None:
        """Where the folder should be there may be a file: keep it aside (never overwrite it), with a warning.

        An older single-file cache there has its rows carried over into row files; anything else is a foreign
        file, kept as it is under its new name.
        """
        if self.path.is_dir() or not (self.path.is_file() or self.path.is_symlink()):
            return
        rows = self._parse_legacy(self.path)
        what = "an older single-file result cache" if rows is not None else (
            f"not a transferlab result cache (a folder of row files, format {self.FORMAT!r})")
        try:
            aside = keep_aside(self.path, "single-file-cache" if rows is not None else "not-a-cache")
        except FileNotFoundError:  # another process moved it meanwhile
            return
        except OSError as err:
            raise OSError(f"{self.path} is {what} and could not be moved aside ({err}); the result cache needs "
                          f"a folder there") from err
        self._rows.update(rows or {})
        for row in (rows or {}).values():
            self._write(row)
        warnings.warn(f"{self.path} is {what}; it was kept aside as {aside} and a new cache starts at "
                      f"{self.path}" + (" with its rows" if rows else ""), stacklevel=3)

    def _read_row(self, file: Path) -> tuple[str, dict] | None:
        """The (key, row) of a row file, or None if it is missing or not one."""
        try:
            payload = json.loads(file.read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(payload, dict) or payload.get("format") != self.FORMAT:
            return None
        row, key = payload.get("row"), payload.get("key")
        if not isinstance(row, dict):
            return None
        try:
            if self._row_key(row) != key or self.file_of(key).name != file.name:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        return key, row

    def refresh(self) -> int:
        """Read the rows other processes wrote since this cache was opened; returns how many rows it holds.

        Files in the folder that are not row files are left alone (and not read).
        """
        if self.path is None or not self.path.is_dir():
            return len(self)
        for file in sorted(self.path.glob("*.json")):
            found = self._read_row(file)
            if found is not None:
                self._rows[found[0]] = found[1]
        return len(self)

    def get(self, config: str, n_per_class: int, similarity: float | str, strategy: str, k: int,
            seed: int) -> dict | None:
        """A copy of the cached row (also one another process wrote since this cache was opened), or ``None``."""
        key = self.key(config, n_per_class, similarity, strategy, k, seed)
        row = self._rows.get(key)
        if row is None and self.path is not None:
            found = self._read_row(self.file_of(key))
            if found is not None:
                row = self._rows[key] = found[1]
        return None if row is None else dict(row)

    def put(self, row: Mapping) -> None:
        """Store a finished row: in memory, and as its own file (atomically, no lock needed).

        A ``history`` entry (per-epoch training rows) is not stored.
        """
        row = {key: value for key, value in row.items() if key != "history"}
        key = self._row_key(row)
        self._rows[key] = row
        if self.path is None:
            return
        self._clear_the_way()  # a file written where the folder should be since the cache was opened
        self._write(row)

    def _write(self, row: Mapping) -> None:
        key = self._row_key(row)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.file_of(key), json.dumps(dict(format=self.FORMAT, key=key, row=dict(row)), indent=1))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self):
        """All cached rows as a DataFrame (:func:`results_frame`)."""
        return results_frame(list(self._rows.values()))

    def __repr__(self):
        return f"ResultCache({str(self.path) if self.path else 'in memory'}, rows={len(self)})"
