"""Strategies as data: how a pretrained model is adapted to a target task, and which plans of them a grid runs.

A :class:`Strategy` has no code; :func:`transferlab.experiments.run_one` reads its fields. :data:`STRATEGIES`
holds the seven of lesson 01, :func:`get_strategy` looks one up by name (with a "did you mean" for a typo),
:func:`default_plan` lists every (strategy, k) pair of the lesson and :func:`as_plan` checks a plan someone wrote.

Examples
--------
>>> STRATEGIES["freeze"].k_rule, STRATEGIES["probe"].k_rule
('any', 'all')
>>> as_plan(["probe", ("freeze", 1)], n_stages=4)
[('probe', 4), ('freeze', 1)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._validate import as_choice, as_int, as_key, as_list

__all__ = ["Strategy", "STRATEGIES", "get_strategy", "strategy_label", "default_plan", "as_plan"]


@dataclass(frozen=True)
class Strategy:
    """How to adapt a model to the target task, as data (no code: :func:`run_one` reads the fields).

    Attributes
    ----------
    name, description : str
    pretrained : bool
        Start from the zoo model's weights (False: random weights of the same architecture).
    probe : bool
        Train only a new linear head on the frozen base's cached features (no gradient through the base).
    head_first : bool
        First fit the new head with the base frozen (as a probe on cached features), then train jointly.
    base_lr : {"finetune", "scratch"}
        The learning rate of the trainable pretrained stages. A new head always gets the from-scratch LR,
        except in the joint phase of ``head_first``, where the head is no longer new.
    discriminative : bool
        Per-stage learning rates: stage ``i`` of ``n`` gets ``lr_scratch * layer_decay ** (n - i)``.
    keep_bn_stats : bool
        Every BatchNorm layer keeps the pretrained running statistics while the weights are fine-tuned (Keras's
        ``base_model(x, training=False)`` idiom): the features a probe was fit on are the features the joint
        phase starts from, whatever the target's own statistics.
    k_rule : {"zero", "all", "any"}
        What ``k`` (the number of frozen stages, counted from the input) may be: always 0, always all
        stages, or any of 0..n_stages (for ``head_first``: the stages that stay frozen in the joint phase).

    Examples
    --------
    >>> Strategy("mine", "a test", k_rule="some")
    Traceback (most recent call last):
    ...
    ValueError: unknown k_rule 'some'; expected one of ('zero', 'all', 'any')
    """

    name: str
    description: str
    pretrained: bool = True
    probe: bool = False
    head_first: bool = False
    base_lr: str = "finetune"
    discriminative: bool = False
    k_rule: str = "zero"
    keep_bn_stats: bool = False

    def __post_init__(self):
        as_choice("base_lr", self.base_lr, ("finetune", "scratch"))
        as_choice("k_rule", self.k_rule, ("zero", "all", "any"))

    def check_k(self, k: int | None, n_stages: int) -> int:
        """The number of frozen stages this strategy runs with (``None``: its default); raises on a bad k.

        ``k`` may be any integer, NumPy integers included; ``TypeError`` for anything else (``True`` too).

        Examples
        --------
        >>> import numpy as np
        >>> STRATEGIES["probe"].check_k(None, 4), STRATEGIES["freeze"].check_k(np.int64(2), 4)
        (4, 2)
        >>> STRATEGIES["freeze"].check_k(5, 4)
        Traceback (most recent call last):
        ...
        IndexError: k=5 is out of range for 'freeze': the model has 4 stages, so k must be in 0..4
        """
        default = n_stages if self.k_rule == "all" else 0
        if k is None:
            return default
        try:
            k = as_int("k", k)
        except ValueError:
            raise TypeError(f"k must be an integer (the number of frozen stages), "
                            f"got {type(k).__name__} {k!r}") from None
        if self.k_rule == "any":
            if not 0 <= k <= n_stages:
                raise IndexError(f"k={k} is out of range for {self.name!r}: the model has {n_stages} stages, "
                                 f"so k must be in 0..{n_stages}")
            return k
        if k != default:
            raise ValueError(f"strategy {self.name!r} always runs with k={default} ({self.k_rule} of the "
                             f"{n_stages} stages frozen), got k={k}; use 'freeze' or 'head-first' to choose k")
        return k


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("probe", "a new linear head on the frozen base's features (the base never changes)",
                 probe=True, k_rule="all"),
        Strategy("freeze", "freeze the first k stages (and their BatchNorm statistics), fine-tune the rest at "
                 "the small LR; k=0 fine-tunes the whole model", k_rule="any"),
        Strategy("finetune-scratch-lr", "fine-tune the whole model at the from-scratch LR", base_lr="scratch"),
        Strategy("scratch", "random weights, the whole model trained at the from-scratch LR", pretrained=False,
                 base_lr="scratch"),
        Strategy("head-first", "fit the new head with the base frozen (a probe: LP), then fine-tune jointly at the "
                 "small LR with BatchNorm statistics kept (FT); k stages stay frozen", head_first=True, k_rule="any",
                 keep_bn_stats=True),
        Strategy("all-at-once", "head-first's counterpart with a random head: fine-tune jointly from the start "
                 "(the head at the from-scratch LR, the base at the small LR), BatchNorm statistics kept; k stages "
                 "stay frozen", k_rule="any", keep_bn_stats=True),
        Strategy("discriminative-lr", "fine-tune everything; each stage's LR is layer_decay times the LR of the "
                 "stage above it (the head gets the from-scratch LR)", discriminative=True),
    )
}
"""The strategies of lesson 01, by name."""


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; ``KeyError`` with the known names and the closest one otherwise.

    Examples
    --------
    >>> get_strategy("scratch").pretrained
    False
    >>> get_strategy("freez")
    Traceback (most recent call last):
    ...
    KeyError: "no strategy named 'freez'. Did you mean 'freeze'? Known: ['all-at-once', 'discriminative-lr', \
'finetune-scratch-lr', 'freeze', 'head-first', 'probe', 'scratch']"
    """
    return as_key("strategy", name, STRATEGIES)


def strategy_label(strategy: str, k: int, stages: Sequence[str]) -> str:
    """A short human label for a (strategy, k) pair, for tables and legends.

    Examples
    --------
    >>> strategy_label("freeze", 2, ["stem", "layer1", "layer2", "layer3"])
    'freeze stem..layer1 (k=2)'
    >>> strategy_label("freeze", 0, ["stem", "layer1"])
    'fine-tune all, small LR (k=0)'
    """
    get_strategy(strategy)
    if strategy == "freeze":
        if k == 0:
            return "fine-tune all, small LR (k=0)"
        frozen = stages[0] if k == 1 else f"{stages[0]}..{stages[k - 1]}"
        return f"freeze {frozen} (k={k})"
    if strategy in ("head-first", "all-at-once") and k:
        return f"{strategy}, k={k} kept frozen"
    return {"probe": "linear probe (head only)", "finetune-scratch-lr": "fine-tune all, scratch LR",
            "scratch": "from scratch", "head-first": "head first, then all (LP-FT)",
            "all-at-once": "all at once, random head (FT)", "discriminative-lr": "discriminative LRs"}[strategy]


def default_plan(n_stages: int) -> list[tuple[str, int]]:
    """Every strategy of the lesson: probe (k = all), freeze k = 0..n-1, and the other five at their k.

    Examples
    --------
    >>> default_plan(2)
    [('probe', 2), ('freeze', 0), ('freeze', 1), ('finetune-scratch-lr', 0), ('scratch', 0), \
('head-first', 0), ('all-at-once', 0), ('discriminative-lr', 0)]
    """
    n_stages = as_int("n_stages", n_stages, min=1)
    return ([("probe", n_stages)] + [("freeze", k) for k in range(n_stages)]
            + [("finetune-scratch-lr", 0), ("scratch", 0), ("head-first", 0), ("all-at-once", 0),
               ("discriminative-lr", 0)])


def as_plan(plan: str | tuple | Iterable, n_stages: int) -> list[tuple[str, int]]:
    """A checked plan: a list of ``(strategy, k)`` pairs, each ``k`` resolved and valid for ``n_stages``.

    ``plan`` is a list whose items are strategy names (their default ``k``) or ``(name, k)`` pairs. A single
    name (``"scratch"``) or a single pair (``("freeze", 2)``) is a plan of one.

    Examples
    --------
    >>> as_plan("scratch", 4), as_plan(("freeze", 2), 4)
    ([('scratch', 0)], [('freeze', 2)])
    >>> as_plan([("freeze", 1), "probe"], 4)
    [('freeze', 1), ('probe', 4)]
    """
    if isinstance(plan, tuple) and len(plan) == 2 and isinstance(plan[0], str) and not isinstance(plan[1], str):
        plan = [plan]  # one (name, k) pair, not two names
    out = []
    for item in as_list("plan", plan):
        if isinstance(item, str):
            name, k = item, None
        elif isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str):
            name, k = item
        else:
            raise TypeError(f"each item of a plan must be a strategy name or a (name, k) pair, got {item!r}")
        out.append((name, get_strategy(name).check_k(k, n_stages)))
    return out
