"""Choosing a pretrained model without fine-tuning it: LogME, and the LEEP, NCE and H-score baselines.

Every score here takes what a candidate model makes of the target data (frozen features ``[N, D]``, or its
source classifier's outputs) and the target labels, and returns one number per candidate; higher is better,
and scores compare candidates on the same target data only. Nothing depends on what the samples are: image,
text or tabular features are all just ``[N, D]`` arrays.

- :mod:`~transferlab.selection.logme`: LogME, fast (one decomposition, all classes at once);
- :mod:`~transferlab.selection.reference`: LogME the textbook way (for the speed lesson) and the exercise check;
- :mod:`~transferlab.selection.baselines`: LEEP, NCE, H-score;
- :mod:`~transferlab.selection.ranking`: weighted Kendall tau of a method's scores against fine-tuned accuracy;
- :mod:`~transferlab.selection.inputs`: the input checks they share.

``transferlab.selection.logme`` is the function, as it always was; the module of the same name is
``importlib.import_module("transferlab.selection.logme")`` (``from transferlab.selection.logme import ...``
works too, but ``import transferlab.selection.logme as m`` binds the function).
"""

from __future__ import annotations

from .baselines import hscore, leep, nce
from .logme import BOUND, MAX_ITER, RTOL, LogMEResult, logme, logme_fit  # noqa: F401 - the constants stay reachable
from .ranking import rank_models
from .reference import check_evidence, logme_naive

__all__ = [
    "LogMEResult",
    "logme",
    "logme_fit",
    "logme_naive",
    "leep",
    "nce",
    "hscore",
    "rank_models",
    "check_evidence",
]
