"""Finished result rows: their columns, their table, and :class:`ResultCache`, the JSON file that keeps them.

A grid of lesson 01 is hundreds of runs; the cache keeps every finished row under
``$TRANSFERLAB_HOME/experiments`` so that a notebook reuses them and a widget recomputes one cell on demand.
Several processes may fill one cache at once: each write happens under a lock on a lock file next to the
cache (``.<name>.lock``), merges what the others wrote, and replaces the file atomically, so no finished row is
ever lost and a reader never sees half a file. A file that is not a result cache is never overwritten: it is
kept aside (renamed ``<name>.not-a-cache-<time>-<pid>``) with a warning that names it.

Examples
--------
>>> results_frame([dict(n_per_class=2, similarity=1.0, strategy="probe", k=4, seed=0, acc=0.5, seconds=0.1,
...                     model="kitnet_m-src")]).columns.tolist()
['n_per_class', 'similarity', 'strategy', 'k', 'seed', 'acc', 'seconds', 'model']
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

from .._paths import atomic_write, file_lock, home, keep_aside

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
        A plain name (``"01_freezing_strategies"``) stores ``$TRANSFERLAB_HOME/experiments/<name>.json``; a
        path stores there; ``None`` keeps rows in memory only. Every ``put`` takes the lock
        ``.<name>.lock`` next to the file, re-reads the file, merges and writes it atomically (a temporary
        file renamed over it), so processes writing at once lose no finished row. A file there that is not a
        transferlab result cache (not JSON, or JSON of another shape) is never overwritten: it is kept aside
        under a new name and a warning names both paths.

    Examples
    --------
    >>> c = ResultCache(None)
    >>> c.put(dict(config="abc", n_per_class=20, similarity=1.0, strategy="probe", k=4, seed=0, acc=0.9))
    >>> c.get("abc", 20, 1.0, "probe", 4, 0)["acc"], len(c)
    (0.9, 1)
    """

    FORMAT = "transferlab-results/1"

    def __init__(self, where: str | Path | None = "01_freezing_strategies"):
        if where is None:
            self.path = None
        elif isinstance(where, Path) or (isinstance(where, str) and any(sep in where for sep in "/\\")):
            self.path = Path(where).expanduser()
        elif isinstance(where, str) and where:
            self.path = home() / "experiments" / f"{where}.json"
        else:
            raise ValueError(f"where must be a name, a path or None, got {where!r}")
        self._rows: dict[str, dict] = {}
        if self.path is not None and self.path.exists():
            with file_lock(self.lock_path, required=False):  # a read-only shared home can still be read
                self._rows.update(self._read())

    @property
    def lock_path(self) -> Path | None:
        """The lock file next to the cache (``None`` in memory)."""
        return None if self.path is None else self.path.with_name(f".{self.path.name}.lock")

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

    def _parse(self, text: str) -> dict[str, dict] | None:
        """The rows of a cache file's text, or None if it is not a result cache of this format."""
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("format") != self.FORMAT:
            return None
        rows = payload.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return None
        try:
            return {self._row_key(r): r for r in rows}
        except (KeyError, TypeError, ValueError):
            return None

    def _read(self) -> dict[str, dict]:
        """The rows on disk (the caller holds the lock); a file that is not a cache is kept aside, not read."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            rows = self._parse(data.decode("utf-8"))
        except UnicodeDecodeError:
            rows = None
        if rows is not None:
            return rows
        try:
            aside = keep_aside(self.path, "not-a-cache")
        except OSError as err:
            warnings.warn(f"{self.path} is not a transferlab result cache (format {self.FORMAT!r}) and could not "
                          f"be moved aside ({err}); it is left as it is", stacklevel=3)
            return {}
        warnings.warn(f"{self.path} is not a transferlab result cache (format {self.FORMAT!r}); it was kept "
                      f"aside as {aside} and a new cache starts at {self.path}", stacklevel=3)
        return {}

    def get(self, config: str, n_per_class: int, similarity: float | str, strategy: str, k: int,
            seed: int) -> dict | None:
        """A copy of the cached row, or ``None``."""
        row = self._rows.get(self.key(config, n_per_class, similarity, strategy, k, seed))
        return None if row is None else dict(row)

    def put(self, row: Mapping) -> None:
        """Store a finished row (and write the file, merged with what other processes wrote meanwhile).

        A ``history`` entry (per-epoch training rows) is not stored.
        """
        row = {key: value for key, value in row.items() if key != "history"}
        self._rows[self._row_key(row)] = row
        if self.path is None:
            return
        with file_lock(self.lock_path):
            merged = {**self._read(), **self._rows}
            text = json.dumps(dict(format=self.FORMAT, rows=list(merged.values())), indent=1)
            atomic_write(self.path, text)
        self._rows = merged

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self):
        """All cached rows as a DataFrame (:func:`results_frame`)."""
        return results_frame(list(self._rows.values()))

    def __repr__(self):
        return f"ResultCache({str(self.path) if self.path else 'in memory'}, rows={len(self)})"
