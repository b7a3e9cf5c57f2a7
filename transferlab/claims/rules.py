"""Verdict rules: how a claim's verdict is computed from per-seed measurements, declared before the data.

A lesson states its rule first ("fine-tuning beats training from scratch by at least 5 points of accuracy,
paired over seeds, 95% interval"), then hands the rule its measurements. The rule returns a :class:`Verdict`
with the evidence (the estimate, its interval, the number of seeds, one sentence of reasoning), and the ledger
stores the rule, its inputs and the verdict, so a reader of the claims page sees how each verdict was reached.

Every rule can reach every verdict (the unit tests drive each to each):

- **reproduced**: the measurements support the claim, at the size it claims;
- **partly**: they support its direction, but the effect is smaller than claimed (or it holds in only some
  settings);
- **not at this scale**: the measurements cannot tell (the interval covers no effect); this does not refute the
  claim, it says the kit's small models, data and seeds do not show it;
- **contradicted**: the measurements show the opposite of the claim.

Intervals are Student-t intervals of the mean over seeds (paired differences when the arms share seeds), from
``scipy.stats.t``. With one measurement the interval is that value alone: a rule then judges the point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .._validate import as_float

__all__ = ["VERDICTS", "Verdict", "Rule", "Compare", "Band", "Across", "mean_interval"]

VERDICTS = ("reproduced", "partly", "not at this scale", "contradicted")


@dataclass(frozen=True)
class Verdict:
    """What a rule concluded, with its evidence (all JSON-able through :meth:`as_dict`)."""

    verdict: str
    estimate: float
    interval: tuple[float, float]
    n: int
    reason: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def _values(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1) if not isinstance(values, (int, float)) else np.array([values])
    if arr.size == 0:
        raise ValueError(f"no measurements for {name!r}; expected one value per seed")
    if not np.isfinite(arr).all():
        raise ValueError(f"the measurements for {name!r} contain NaN or infinite values: {arr.tolist()}")
    return arr


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its Student-t interval (the value itself when there is one).

    Examples
    --------
    >>> m, lo, hi = mean_interval([1.0, 2.0, 3.0]); round(m, 3), round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    >>> mean_interval([5.0])
    (5.0, 5.0, 5.0)
    """
    from scipy import stats

    arr = _values("values", values)
    m = float(arr.mean())
    if arr.size == 1:
        return m, m, m
    sem = float(arr.std(ddof=1) / math.sqrt(arr.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, arr.size - 1)) * sem
    return m, m - half, m + half


class Rule:
    """A declared way of turning measurements into a verdict. Subclasses implement :meth:`judge`."""

    kind = "rule"

    def judge(self, data: Mapping[str, Sequence[float]]) -> Verdict:
        raise NotImplementedError

    def describe(self) -> str:
        """The rule in one sentence, for the ledger page."""
        raise NotImplementedError

    def spec(self) -> dict:
        """The rule as JSON: its kind and parameters (stored with every verdict)."""
        return {"kind": self.kind, **{k: v for k, v in asdict(self).items()}}

    def _arm(self, data: Mapping, name: str) -> np.ndarray:
        if not isinstance(data, Mapping):
            raise TypeError(f"data must map arm names to per-seed values, got {type(data).__name__}")
        if name not in data:
            raise KeyError(f"the rule compares {name!r}, but the data has only {sorted(data)}")
        return _values(name, data[name])


@dataclass(frozen=True)
class Compare(Rule):
    """Claim: arm ``better`` beats arm ``worse`` by at least ``min_effect``.

    The effect is ``better - worse`` (``worse - better`` when ``higher_is_better=False``, e.g. for errors or
    failure rates), or with ``log=True`` the base-10 log of their ratio (for "10x faster": ``min_effect=10``).
    ``paired=True`` pairs the arms seed by seed (same seeds, same data: the usual case in the kit).

    Verdict: interval above 0 and mean >= ``min_effect`` -> reproduced; above 0 but smaller -> partly; interval
    covering 0 -> not at this scale; interval below 0 -> contradicted. With ``log=True`` the verdict's estimate
    and interval are reported as ratios (the geometric mean ratio, and its interval), not as logs.

    Examples
    --------
    >>> r = Compare("finetune", "scratch", min_effect=0.05)
    >>> r.judge({"finetune": [0.80, 0.82, 0.85], "scratch": [0.50, 0.55, 0.52]}).verdict
    'reproduced'
    >>> r.judge({"finetune": [0.50, 0.52, 0.49], "scratch": [0.80, 0.82, 0.85]}).verdict
    'contradicted'
    """

    better: str
    worse: str
    min_effect: float = 0.0
    higher_is_better: bool = True
    paired: bool = True
    log: bool = False
    confidence: float = 0.95
    kind = "compare"

    def __post_init__(self):
        as_float("min_effect", self.min_effect, min=1.0 if self.log else 0.0)
        as_float("confidence", self.confidence, min=0.5, max=1.0, max_open=True)

    def judge(self, data: Mapping[str, Sequence[float]]) -> Verdict:
        a, b = self._arm(data, self.better), self._arm(data, self.worse)
        if self.log:
            if (a <= 0).any() or (b <= 0).any():
                raise ValueError(f"log=True compares ratios: every value must be > 0, got {a.tolist()}, {b.tolist()}")
            a, b = np.log10(a), np.log10(b)
        sign = 1.0 if self.higher_is_better else -1.0
        if self.paired:
            if a.size != b.size:
                raise ValueError(f"paired arms need one value per seed each: {self.better!r} has {a.size}, "
                                 f"{self.worse!r} has {b.size}")
            effect, lo, hi = mean_interval(sign * (a - b), self.confidence)
            n = int(a.size)
        else:
            effect, lo, hi = _welch(sign * a, sign * b, self.confidence)
            n = int(min(a.size, b.size))
        target = math.log10(self.min_effect) if self.log else self.min_effect
        unit = "log10 ratio" if self.log else "difference"
        if lo > 0 and effect >= target:
            verdict, why = "reproduced", f"the {unit} is above 0 and at least the claimed {target:.3g}"
        elif lo > 0:
            verdict, why = "partly", f"the {unit} is above 0 but smaller than the claimed {target:.3g}"
        elif hi < 0:
            verdict, why = "contradicted", f"the {unit} is below 0: the other arm is better"
        else:
            verdict, why = "not at this scale", f"the interval of the {unit} covers 0: no detectable difference"
        if self.log:  # report ratios, as Band does: 10x rather than 1.0 on a log10 scale
            effect, lo, hi = 10**effect, 10**lo, 10**hi
            arms = {self.better: float(10 ** a.mean()), self.worse: float(10 ** b.mean())}  # geometric means
        else:
            arms = {self.better: float(a.mean()), self.worse: float(b.mean())}
        return Verdict(verdict, effect, (lo, hi), n, why, dict(arms=arms, scale="ratio" if self.log else "difference"))

    def describe(self) -> str:
        what = "ratio" if self.log else "difference"
        size = f"{self.min_effect:g}x" if self.log else f"{self.min_effect:g}"
        direction = "higher" if self.higher_is_better else "lower"
        pairing = "paired over seeds" if self.paired else "unpaired"
        return (f"{self.better} vs {self.worse} ({direction} is better), {pairing}, {self.confidence:.0%} t-interval "
                f"of the {what}: reproduced when above no effect and at least {size}, partly when above but smaller, "
                f"not at this scale when it covers no effect, contradicted when below")


def _welch(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float, float]:
    from scipy import stats

    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return d, d, d
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    return d, d - half, d + half


@dataclass(frozen=True)
class Band(Rule):
    """Claim: the value of ``arm`` is about a stated size ("about 10x smaller"): within ``[low, high]``.

    ``partly_low``/``partly_high`` widen the band for "partly" (default: the band itself widened by its own
    width on each side, or by a factor of ``high / low`` with ``log=True``). With ``log=True`` the band and the
    interval are on a log scale (for ratios).

    Verdict: the whole interval inside the band -> reproduced; the mean inside the wider band -> partly; the
    whole interval outside the wider band -> contradicted; otherwise (the mean outside, the interval reaching
    the band) -> not at this scale.

    Examples
    --------
    >>> r = Band("lr_ratio", 5, 20, log=True)
    >>> r.judge({"lr_ratio": [10, 10, 10]}).verdict, r.judge({"lr_ratio": [1, 1, 1]}).verdict
    ('reproduced', 'contradicted')
    """

    arm: str
    low: float
    high: float
    partly_low: float | None = None
    partly_high: float | None = None
    log: bool = False
    confidence: float = 0.95
    kind = "band"

    def __post_init__(self):
        low = as_float("low", self.low, min=0.0, min_open=self.log)
        high = as_float("high", self.high, finite=False)
        if not high > low:
            raise ValueError(f"the band needs low < high, got [{self.low}, {self.high}]")

    def _edges(self) -> tuple[float, float, float, float]:
        f = (lambda v: math.log10(v) if v > 0 else -math.inf) if self.log else (lambda v: v)
        lo, hi = f(self.low), f(self.high)
        width = hi - lo if math.isfinite(hi) else 0.0
        plo = f(self.partly_low) if self.partly_low is not None else lo - width
        phi = f(self.partly_high) if self.partly_high is not None else hi + width
        if not (plo <= lo and phi >= hi):
            raise ValueError("the 'partly' band must contain the claimed band")
        return lo, hi, plo, phi

    def judge(self, data: Mapping[str, Sequence[float]]) -> Verdict:
        v = self._arm(data, self.arm)
        if self.log:
            if (v <= 0).any():
                raise ValueError(f"log=True needs values > 0, got {v.tolist()}")
            v = np.log10(v)
        m, ilo, ihi = mean_interval(v, self.confidence)
        lo, hi, plo, phi = self._edges()
        if lo <= ilo and ihi <= hi:
            verdict, why = "reproduced", "the whole interval lies inside the claimed band"
        elif plo <= m <= phi:
            verdict, why = "partly", "the mean lies near the claimed band, but the interval is not inside it"
        elif ihi < plo or ilo > phi:
            verdict, why = "contradicted", "the whole interval lies far outside the claimed band"
        else:
            verdict, why = "not at this scale", "the mean lies outside the band, but the interval reaches it"
        scale = (lambda x: 10**x) if self.log else (lambda x: x)
        return Verdict(verdict, float(scale(m)), (float(scale(ilo)), float(scale(ihi))), int(v.size), why,
                       dict(band=[self.low, self.high], partly_band=[float(scale(plo)), float(scale(phi))]))

    def describe(self) -> str:
        lo, hi, plo, phi = self._edges()
        scale = (lambda x: 10**x) if self.log else (lambda x: x)
        return (f"{self.arm}: reproduced when the {self.confidence:.0%} interval lies inside [{self.low:g}, "
                f"{self.high:g}], partly when the mean lies inside [{scale(plo):.3g}, {scale(phi):.3g}], contradicted "
                f"when the whole interval lies outside that, otherwise not at this scale"
                + (" (log scale)" if self.log else ""))


@dataclass(frozen=True)
class Across(Rule):
    """Claim: ``rule`` holds in every setting (data size, similarity, dataset...).

    ``data`` maps each setting to that setting's data for ``rule``. Verdict: reproduced in every setting ->
    reproduced; supported (reproduced or partly) in some settings -> partly; supported nowhere and contradicted
    somewhere -> contradicted; not at this scale everywhere -> not at this scale.

    Examples
    --------
    >>> r = Across(Compare("a", "b", min_effect=0.1))
    >>> r.judge({"small": {"a": [1, 1.1], "b": [0, 0.1]}, "large": {"a": [0, 0.1], "b": [1, 1.1]}}).verdict
    'partly'
    """

    rule: Rule
    kind = "across"

    def judge(self, data: Mapping[str, Mapping]) -> Verdict:
        if not isinstance(data, Mapping) or not data:
            raise ValueError("Across needs {setting: data} for at least one setting")
        per = {str(k): self.rule.judge(v) for k, v in data.items()}
        counts = {k: sum(v.verdict == k for v in per.values()) for k in VERDICTS}
        support = counts["reproduced"] + counts["partly"]
        if counts["reproduced"] == len(per):
            verdict = "reproduced"
        elif support:
            verdict = "partly"
        elif counts["contradicted"]:
            verdict = "contradicted"
        else:
            verdict = "not at this scale"
        why = ", ".join(f"{c} {k}" for k, c in counts.items() if c) + f" of {len(per)} settings"
        ests = [v.estimate for v in per.values()]
        return Verdict(verdict, float(np.mean(ests)), (float(min(ests)), float(max(ests))), len(per), why,
                       dict(settings={k: v.as_dict() for k, v in per.items()}))

    def describe(self) -> str:
        return ("in every setting: " + self.rule.describe() + "; then reproduced when every setting is, partly when "
                "some support the claim, contradicted when none supports it and some contradict it, otherwise not at "
                "this scale")

    def spec(self) -> dict:
        return {"kind": self.kind, "rule": self.rule.spec()}
