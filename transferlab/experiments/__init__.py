"""The experiments of lesson 01 (which layers to freeze): strategies as data, one run -> one tidy row.

A *strategy* says how a pretrained model is adapted to a target task: train only a new head on the frozen
base's features (``"probe"``), freeze the first ``k`` stages and fine-tune the rest (``"freeze"``), fine-tune
everything at the from-scratch learning rate (``"finetune-scratch-lr"``), start from random weights
(``"scratch"``), fit the head first and then fine-tune (``"head-first"``), or give lower stages lower learning
rates (``"discriminative-lr"``). Every target task has train / validation / test splits: a run reports its
validation accuracy (``acc``, what choices are made on) and its final test accuracy (``test_acc``); with an
out-of-distribution shift in the :class:`RunConfig` also its accuracy on shifted test images (``ood_acc``) and how
far its features moved (:func:`feature_change`). :func:`run_one` runs one (task, strategy, k, seed) and returns a
dict; :func:`run_grid` runs many (in this process, or in parallel on any ``concurrent.futures`` executor: see
:mod:`transferlab.parallel`) and returns a pandas DataFrame with one row per run; :class:`ResultCache` keeps
finished rows, one JSON file each, under ``$TRANSFERLAB_HOME/experiments/<name>/`` so a notebook can reuse them
and a widget can recompute one cell on demand (:func:`make_recompute`).

:func:`stage_weight_change` and :class:`WeightDrift` measure how far each stage's weights move from their
pretrained values (``||w - w0|| / ||w0||``), which is how the lesson shows that a random head's gradients
disturb the features it was meant to reuse.

Runs leave the caller's random state (torch, NumPy, Python) as it was: each draws from its own seed. Zoo weights,
stage names and target tasks are kept in memory between runs; :func:`clear_caches` drops them.

The modules, one concept each:

- :mod:`~transferlab.experiments.strategies`: :class:`Strategy`, :data:`STRATEGIES`, plans of them
- :mod:`~transferlab.experiments.config`: :class:`RunConfig`, the budget shared by a grid
- :mod:`~transferlab.experiments.model`: the model of a run, its stages and learning rates
- :mod:`~transferlab.experiments.targets`: the similarity axis and the target tasks
- :mod:`~transferlab.experiments.run`: :func:`run_one`
- :mod:`~transferlab.experiments.cache`: result rows and :class:`ResultCache`
- :mod:`~transferlab.experiments.grid`: :func:`run_grid`, :func:`make_recompute`, summaries
- :mod:`~transferlab.experiments.drift`: weight movement per stage
- :mod:`~transferlab.experiments.memo`: the in-memory caches and :func:`clear_caches`

Examples
--------
>>> STRATEGIES["freeze"].k_rule, STRATEGIES["probe"].k_rule
('any', 'all')
>>> RunConfig().epochs(200), RunConfig().epochs(2000)
(15, 3)
"""

from __future__ import annotations

from .cache import RESULT_COLUMNS, ResultCache, results_frame
from .config import RunConfig
from .drift import WeightDrift, snapshot, stage_weight_change
from .grid import best_by_cell, make_recompute, run_grid, summarize
from .memo import clear_caches
from .model import build_model, data_config, fold_probe_into_head, param_groups, stages_of
from .run import base_features, feature_change, fit_probe, run_key, run_one
from .strategies import STRATEGIES, Strategy, as_plan, default_plan, get_strategy, strategy_label
from .targets import as_target, at_similarity, ood_task, sim_label, target_task

__all__ = [
    "Strategy",
    "STRATEGIES",
    "RunConfig",
    "RESULT_COLUMNS",
    "default_plan",
    "strategy_label",
    "stages_of",
    "build_model",
    "param_groups",
    "fold_probe_into_head",
    "run_one",
    "run_grid",
    "make_recompute",
    "ResultCache",
    "summarize",
    "best_by_cell",
    "sim_label",
    "at_similarity",
    "snapshot",
    "stage_weight_change",
    "WeightDrift",
    # public since the split into a package (they were private helpers before)
    "get_strategy",
    "as_plan",
    "as_target",
    "target_task",
    "data_config",
    "run_key",
    "results_frame",
    "clear_caches",
    # protocol v2: validation splits, out-of-distribution splits, features of the frozen base
    "ood_task",
    "base_features",
    "feature_change",
    "fit_probe",
]
