"""Verdict rules: every rule reaches every verdict, on inputs made for it; intervals against an independent formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlab.claims import VERDICTS, Across, Band, Compare, mean_interval

# For each rule, one input that must give each verdict (the reason is in the name).
CASES = {
    "compare": (Compare("a", "b", min_effect=0.05), {
        "reproduced": {"a": [0.90, 0.91, 0.92], "b": [0.50, 0.52, 0.51]},       # clearly better, big effect
        "partly": {"a": [0.52, 0.53, 0.54], "b": [0.50, 0.51, 0.52]},           # better, but by only 0.02
        "not at this scale": {"a": [0.5, 0.7, 0.4], "b": [0.6, 0.4, 0.6]},      # the interval covers 0
        "contradicted": {"a": [0.50, 0.52, 0.51], "b": [0.90, 0.91, 0.92]},     # clearly worse
    }),
    "compare-lower-log": (Compare("fast", "slow", min_effect=10, higher_is_better=False, log=True), {
        "reproduced": {"fast": [1, 1.1, 0.9], "slow": [100, 110, 90]},        # 100x less time
        "partly": {"fast": [1, 1.1, 0.9], "slow": [3, 3.3, 2.8]},              # 3x: real but short of 10x
        "not at this scale": {"fast": [1, 5, 1], "slow": [5, 1, 1.2]},
        "contradicted": {"fast": [100, 110, 90], "slow": [1, 1.1, 0.9]},
    }),
    "compare-unpaired": (Compare("a", "b", min_effect=0.1, paired=False), {
        "reproduced": {"a": [1.0, 1.1, 0.9, 1.05], "b": [0.0, 0.1]},
        "partly": {"a": [0.15, 0.16, 0.14], "b": [0.10, 0.11, 0.09]},
        "not at this scale": {"a": [0.1, 0.9], "b": [0.5, 0.4, 0.6]},
        "contradicted": {"a": [0.0, 0.1], "b": [1.0, 1.1, 0.9]},
    }),
    "band-log": (Band("ratio", 5, 20, log=True), {
        "reproduced": {"ratio": [9, 10, 11]},            # inside [5, 20]
        "partly": {"ratio": [3, 3.3, 3.1]},              # near: inside the wider band [1.25, 80]
        "not at this scale": {"ratio": [0.3, 0.9, 2]},   # mean outside, interval reaches the wider band
        "contradicted": {"ratio": [0.1, 0.11, 0.12]},    # far outside
    }),
    "band-linear": (Band("acc", 0.9, 1.0, partly_low=0.8, partly_high=1.0), {
        "reproduced": {"acc": [0.95, 0.951, 0.952, 0.95]},
        "partly": {"acc": [0.85, 0.86, 0.84]},
        "not at this scale": {"acc": [0.5, 0.9, 0.6]},
        "contradicted": {"acc": [0.5, 0.51, 0.52]},
    }),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("verdict", VERDICTS)
def test_every_rule_reaches_every_verdict(name, verdict):
    rule, cases = CASES[name]
    got = rule.judge(cases[verdict])
    assert got.verdict == verdict, (name, verdict, got)
    assert rule.describe() and rule.spec()["kind"] == rule.kind


@pytest.mark.parametrize("verdict", VERDICTS)
def test_across_reaches_every_verdict(verdict):
    inner, cases = CASES["compare"]
    rule = Across(inner)
    data = {
        "reproduced": {"s1": cases["reproduced"], "s2": cases["reproduced"]},
        "partly": {"s1": cases["reproduced"], "s2": cases["contradicted"]},       # holds in some settings
        "not at this scale": {"s1": cases["not at this scale"], "s2": cases["not at this scale"]},
        "contradicted": {"s1": cases["contradicted"], "s2": cases["not at this scale"]},
    }[verdict]
    got = rule.judge(data)
    assert got.verdict == verdict
    assert set(got.details["settings"]) == {"s1", "s2"}


def test_interval_matches_an_independent_formula():
    from scipy import stats

    x = [0.61, 0.72, 0.58, 0.66, 0.70]
    m, lo, hi = mean_interval(x, 0.95)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert math.isclose(m, np.mean(x)) and math.isclose(lo, ref[0]) and math.isclose(hi, ref[1])


def test_paired_differences_are_what_is_judged():
    # each seed: a beats b by exactly 0.1, while the seeds themselves vary a lot: paired is decisive
    a, b = [0.3, 0.6, 0.9], [0.2, 0.5, 0.8]
    assert Compare("a", "b", min_effect=0.05).judge({"a": a, "b": b}).verdict == "reproduced"
    assert Compare("a", "b", min_effect=0.05, paired=False).judge({"a": a, "b": b}).verdict == "not at this scale"


@pytest.mark.parametrize("data, error, match", [
    ({"a": [1.0]}, KeyError, "has only"),
    ({"a": [1.0, float("nan")], "b": [1.0, 2.0]}, ValueError, "NaN"),
    ({"a": [], "b": [1.0]}, ValueError, "no measurements"),
    ({"a": [1.0, 2.0], "b": [1.0]}, ValueError, "one value per seed"),
])
def test_bad_measurements_are_clear_errors(data, error, match):
    with pytest.raises(error, match=match):
        Compare("a", "b").judge(data)


def test_rule_parameters_are_checked():
    with pytest.raises(ValueError, match="low < high"):
        Band("x", 5, 2)
    with pytest.raises(ValueError, match="min_effect"):
        Compare("a", "b", min_effect=-1)


def test_judge_records_rule_inputs_and_evidence(tmp_path, monkeypatch):
    import json

    from transferlab.claims import Ledger

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    led = Ledger("00_transfer_learning_basics")
    rec = led.judge("lr-10x-smaller", Band("ratio", 5, 20, log=True), {"ratio": np.array([10.0, 3.0, 10.0])},
                    display=False)
    stored = json.loads((tmp_path / "00_transfer_learning_basics.json").read_text())["claims"][0]
    assert stored["verdict"] == rec["verdict"] and stored["inputs"] == {"ratio": [10.0, 3.0, 10.0]}
    assert stored["rule"]["kind"] == "band" and "interval" in stored["rule_text"]
    assert stored["claim"].startswith("Fine-tune with a learning rate about ten times smaller")
    with pytest.raises(KeyError, match="not in the manifest"):
        led.judge("no-such-claim", Compare("a", "b"), {"a": [1], "b": [0]})


def test_judge_stores_an_open_band(tmp_path, monkeypatch):
    """A one-sided band ("at least 95%": high=inf, which Band accepts) is stored as valid JSON, not rejected."""
    import json

    from transferlab.claims import Ledger

    monkeypatch.setenv("TRANSFERLAB_RESULTS", str(tmp_path))
    rec = Ledger("00_transfer_learning_basics").judge("few-epochs", Band("share", 0.95, float("inf"), partly_low=0.85),
                                                      {"share": [0.99, 1.0, 0.98]}, display=False)
    stored = json.loads((tmp_path / "00_transfer_learning_basics.json").read_text())["claims"][0]
    assert rec["verdict"] == stored["verdict"] == "reproduced"
    assert stored["rule"]["high"] == "Infinity" and stored["rule"]["partly_low"] == 0.85
