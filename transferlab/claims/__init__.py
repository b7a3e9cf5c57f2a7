"""Claims: what the source material says, how a lesson judges it, and what each run measured.

- :mod:`~transferlab.claims.manifest`: every claim of the sources (:data:`MANIFEST`), with the lesson measuring
  it or why none does yet;
- :mod:`~transferlab.claims.rules`: verdict rules declared before the data (:class:`Compare`, :class:`Band`,
  :class:`Across`), each able to reach every verdict;
- :mod:`~transferlab.claims.ledger`: the :class:`Ledger` a notebook records into (``ledger.judge(id, rule,
  data)``), merged per notebook and read back by :func:`load_records` for the docs' claims page.
"""

from .ledger import DEFAULT_SETTING, RECORD_KEYS, Ledger, load_records, read_ledger, results_dir
from .manifest import MANIFEST, SOURCES, ClaimEntry, Source, coverage, entries_for
from .rules import VERDICTS, Across, Band, Compare, Rule, Verdict, mean_interval

__all__ = ["VERDICTS", "DEFAULT_SETTING", "RECORD_KEYS", "Ledger", "results_dir", "read_ledger", "load_records",
           "Rule", "Verdict", "Compare", "Band", "Across", "mean_interval", "MANIFEST", "SOURCES", "ClaimEntry",
           "Source", "coverage", "entries_for"]
