"""Record what a notebook measured about each claim of the source material, for the docs' claims ledger.

A lesson ends its experiments with lines such as::

    ledger = Ledger("03_swa_optima_width", smoke=SMOKE)
    ledger.record("swa-wider-optima", claim="SWA finds wider optima than SGD",
                  measured=f"width ratio SWA/SGD = {ratio:.2f} (3 seeds)", verdict="reproduced",
                  value=ratio)

Each call writes ``<results dir>/<notebook>.json`` atomically (``$TRANSFERLAB_RESULTS``, default
``$TRANSFERLAB_HOME/results``) and shows one line in the notebook. The docs build turns the files into the
ledger page, so no verdict there is typed by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

__all__ = ["VERDICTS", "DEFAULT_SETTING", "Ledger", "results_dir", "load_all"]

VERDICTS = ("reproduced", "partly", "not at this scale", "contradicted")
DEFAULT_SETTING = {"DATA": "world", "MODELS": "zoo"}  # the offline lessons, whose results the docs ledger shows


def results_dir() -> Path:
    env = os.environ.get("TRANSFERLAB_RESULTS")
    if env:
        return Path(env).expanduser()
    from .zoo import home

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
                   value=value, source=source, smoke=self.smoke, setting=dict(self.setting),
                   recorded=time.strftime("%Y-%m-%dT%H:%M:%S"))
        json.dumps(rec)  # fail here, not in the docs build, if value is not JSON-able
        self.records[claim_id] = rec
        self._write()
        if display:
            _show(rec)
        return rec

    def _write(self):
        from .zoo import _atomic_write

        payload = json.dumps(dict(notebook=self.notebook, smoke=self.smoke, setting=self.setting,
                                  claims=list(self.records.values())), indent=2)
        _atomic_write(self.path, lambda tmp: Path(tmp).write_text(payload))


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


def load_all(directory: Path | None = None) -> list[dict]:
    """Every recorded claim under ``directory`` (default: ``results_dir()``), sorted by notebook."""
    directory = Path(directory) if directory is not None else results_dir()
    out = []
    for path in sorted(directory.glob("*.json")):
        out.extend(json.loads(path.read_text())["claims"])
    return out
