"""Record what a notebook measured about each claim of the source material, for the docs' claims ledger.

A lesson ends its experiments with lines such as::

    ledger = Ledger("03_swa_optima_width", smoke=SMOKE)
    ledger.record("swa-wider-optima", claim="SWA finds wider optima than SGD",
                  measured=f"width ratio SWA/SGD = {ratio:.2f} (3 seeds)", verdict="reproduced",
                  value=ratio)

Each call writes ``<results dir>/<notebook>.json`` atomically (``$TRANSFERLAB_RESULTS``, default
``$TRANSFERLAB_HOME/results``) and shows one line in the notebook. The file is merged, not replaced: re-running one
cell after a kernel restart updates that claim and keeps the others. The docs build turns the files into the
ledger page (through :func:`load_records`, the one reader), so no verdict there is typed by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from pathlib import Path

from .._paths import atomic_write, home, keep_aside
from .manifest import MANIFEST
from .rules import VERDICTS, Rule

__all__ = ["VERDICTS", "DEFAULT_SETTING", "RECORD_KEYS", "Ledger", "results_dir", "read_ledger", "load_records"]
DEFAULT_SETTING = {"DATA": "world", "MODELS": "zoo"}  # the offline lessons, whose results the docs ledger shows


def results_dir() -> Path:
    env = os.environ.get("TRANSFERLAB_RESULTS")
    if env:
        return Path(env).expanduser()
    return home() / "results"


class Ledger:
    """The claims one notebook measured. ``smoke=True`` marks every record as from a smoke run.

    ``setting`` is the lesson's ``DATA``/``MODELS`` (default: the offline world and zoo). A run in another
    setting writes its own file, ``<notebook>@<setting>.json``, so a run on CIFAR-10 never replaces the
    world's results (or the other way round).

    Examples
    --------
    >>> Ledger("01_x").path.name, Ledger("01_x", setting=dict(DATA="cifar10", MODELS="timm")).path.name
    ('01_x.json', '01_x@cifar10_timm.json')
    """

    def __init__(self, notebook: str, *, smoke: bool = False, setting: dict | None = None):
        if not notebook or any(c in notebook for c in "/\\"):
            raise ValueError(f"notebook must be a plain name such as '01_freezing_strategies', got {notebook!r}")
        self.notebook, self.smoke = notebook, bool(smoke)
        self.setting = {**DEFAULT_SETTING, **{k: str(v) for k, v in (setting or {}).items()}}
        self.records: dict[str, dict] = {}

    @property
    def path(self) -> Path:
        """The file this ledger writes (in :func:`results_dir`)."""
        if self.setting == DEFAULT_SETTING:
            return results_dir() / f"{self.notebook}.json"
        return results_dir() / f"{self.notebook}@{_slug(self.setting)}.json"

    def record(self, claim_id: str, *, claim: str, measured: str, verdict: str, value=None,
               source: str = "", display: bool = True) -> dict:
        """Record (or replace) one claim's measured result and write the notebook's file.

        Parameters
        ----------
        claim_id : short stable id, e.g. ``"lr-10x-smaller"``.
        claim : the claim as the source material states it.
        measured : what this run measured, in words and numbers.
        verdict : one of ``VERDICTS``.
        value : an optional number (or small JSON-able structure) behind ``measured``.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        if not claim_id or not isinstance(claim_id, str):
            raise ValueError(f"claim_id must be a non-empty string, got {claim_id!r}")
        rec = dict(id=claim_id, notebook=self.notebook, claim=claim, measured=measured, verdict=verdict,
                   value=_finite_json(value), source=source, smoke=self.smoke, setting=dict(self.setting),
                   recorded=time.strftime("%Y-%m-%dT%H:%M:%S"))
        json.dumps(rec, allow_nan=False)  # fail here, not in the docs build, if value is not JSON-able
        self.records[claim_id] = rec
        self._write()
        if display:
            _show(rec)
        return rec

    def judge(self, claim_id: str, rule: Rule, data, *, claim: str | None = None, measured: str | None = None,
              source: str = "", display: bool = True) -> dict:
        """Judge one claim by a declared rule on this run's measurements, and record it with its evidence.

        Parameters
        ----------
        claim_id : the claim's id in the manifest (:data:`transferlab.claims.MANIFEST`).
        rule : a :class:`~transferlab.claims.rules.Rule` (``Compare``, ``Band``, ``Across``), declared before
            the measurements are looked at.
        data : what the rule reads: ``{arm: per-seed values}`` (``{setting: {arm: values}}`` for ``Across``).
        claim : the claim in words (default: the manifest's wording).
        measured : what this run measured, in words (default: generated from the rule's evidence).

        The record stores the verdict, the rule (as JSON and as a sentence), its inputs and its evidence, so the
        ledger page shows how the verdict was reached.

        Examples
        --------
        >>> import tempfile, os; os.environ["TRANSFERLAB_RESULTS"] = tempfile.mkdtemp()
        >>> from transferlab.claims import Compare
        >>> rec = Ledger("00_demo").judge("pretrained-ends-more-accurate", Compare("fine-tuning", "scratch", 0.05),
        ...                               {"fine-tuning": [0.9, 0.88, 0.91], "scratch": [0.5, 0.6, 0.55]},
        ...                               display=False)
        >>> rec["verdict"], rec["rule"]["kind"]
        ('reproduced', 'compare')
        >>> del os.environ["TRANSFERLAB_RESULTS"]
        """
        if not isinstance(rule, Rule):
            raise TypeError(f"rule must be a transferlab.claims rule (Compare, Band, Across), got "
                            f"{type(rule).__name__}")
        entry = MANIFEST.get(claim_id)
        if claim is None:
            if entry is None:
                raise KeyError(f"claim {claim_id!r} is not in the manifest; add it to transferlab/claims/manifest.py "
                               f"or pass claim=...")
            claim = entry.says
        verdict = rule.judge(data)
        lo, hi = verdict.interval
        if measured is None:
            measured = (f"estimate {verdict.estimate:.3g} (95% interval {lo:.3g} to {hi:.3g}, n={verdict.n}): "
                        f"{verdict.reason}")
        inputs = _jsonable(data)
        rec = self.record(claim_id, claim=claim, measured=measured, verdict=verdict.verdict,
                          value=dict(estimate=verdict.estimate, interval=[lo, hi], n=verdict.n),
                          source=source or (entry.source if entry else ""), display=False)
        rec.update(rule=_finite_json(rule.spec()), rule_text=rule.describe(), inputs=inputs,
                   evidence=_finite_json(verdict.as_dict()))
        json.dumps(rec, allow_nan=False)
        self.records[claim_id] = rec
        self._write()
        if display:
            _show(rec)
        return rec

    def _write(self):
        """Merge this ledger's records into the file: claims recorded by an earlier run of the same notebook (in the
        same setting and mode) are kept; a file there that is not such a ledger is kept aside, never overwritten."""
        path = self.path
        merged: dict[str, dict] = {}
        if path.exists():
            try:
                old = read_ledger(path)
            except ValueError as err:
                aside = keep_aside(path, "not-a-ledger")
                warnings.warn(f"{err}; kept it as {aside} and started a new ledger there", stacklevel=3)
            else:
                if old.get("notebook") == self.notebook and bool(old.get("smoke")) == self.smoke:
                    merged = {rec["id"]: rec for rec in old["claims"]}
        merged.update(self.records)
        payload = json.dumps(dict(notebook=self.notebook, smoke=self.smoke, setting=self.setting,
                                  claims=list(merged.values())), indent=2, allow_nan=False)
        atomic_write(path, payload)


RECORD_KEYS = ("id", "notebook", "claim", "measured", "verdict")
"""The keys every claim record has (the docs' ledger page needs them)."""


def _jsonable(data):
    """Per-seed arrays (numpy, torch, tuples) as plain JSON lists."""
    if isinstance(data, dict):
        return {str(k): _jsonable(v) for k, v in data.items()}
    if hasattr(data, "tolist"):
        return _finite_json(data.tolist())
    if isinstance(data, (list, tuple)):
        return [_jsonable(v) for v in data]
    return _finite_json(data)


def _finite_json(value):
    """``value`` with NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (valid JSON).

    Examples
    --------
    >>> _finite_json({"a": float("nan"), "b": [1.0, float("-inf")]})
    {'a': 'NaN', 'b': [1.0, '-Infinity']}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return _finite_json(value.item())
    return value


def _slug(setting: dict) -> str:
    """A file-name-safe name for a setting; long or path-like values are shortened and made unique by a hash."""
    parts = []
    for value in setting.values():
        text = re.sub(r"[^A-Za-z0-9._+-]+", "-", value.removeprefix("folder:")).strip("-.") or "x"
        if len(text) > 24 or text != value:
            text = f"{text[-16:].strip('-.')}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"
        parts.append(text)
    return "_".join(parts)


def _show(rec: dict):
    text = f"**Claim** — {rec['claim']}  \n**Measured** — {rec['measured']}  \n**Verdict** — *{rec['verdict']}*"
    if rec["smoke"]:
        text += " (smoke run: tiny budgets, not the lesson's numbers)"
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover - IPython ships with the kit
        print(text)


def read_ledger(path: str | os.PathLike) -> dict:
    """One ledger file, checked: ``ValueError`` naming the file when it is not valid JSON or not a ledger.

    Examples
    --------
    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "x.json"; _ = p.write_text("{oops")
    >>> read_ledger(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../x.json is not a claims ledger file (JSONDecodeError: ...)
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        claims = payload["claims"]
        if not isinstance(claims, list):
            raise TypeError(f"'claims' is a {type(claims).__name__}, not a list")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a claims ledger file ({type(err).__name__}: {err})") from err
    for rec in claims:
        missing = set(RECORD_KEYS) - set(rec) if isinstance(rec, dict) else set(RECORD_KEYS)
        if missing:
            ident = rec.get("id") if isinstance(rec, dict) else rec
            raise ValueError(f"{path}: claim {ident!r} lacks {sorted(missing)}")
    return payload


def load_records(directory: str | os.PathLike | None = None) -> list[dict]:
    """Every claim record in ``directory/*.json`` (default :func:`results_dir`), file by file in name order.

    A file that is not a ledger raises ``ValueError`` naming it, rather than giving a partial ledger.

    Examples
    --------
    >>> import tempfile; load_records(tempfile.mkdtemp())
    []
    """
    directory = Path(directory) if directory is not None else results_dir()
    out = []
    for path in sorted(directory.glob("*.json")):
        out.extend(read_ledger(path)["claims"])
    return out
