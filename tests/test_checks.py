"""Exercise checks: self-study messages say what the run measured; graded mode never shows the expected answer;
every solution a check declares passes that check."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pandas as pd
import pytest
import torch
from torch import nn

import transferlab
import transferlab.backends
import transferlab.ensembles
import transferlab.repro
from transferlab import checks
from transferlab.checks import CheckResult, check_choice, check_number, render_solution


@pytest.fixture(autouse=True)
def _mode_left_to_the_environment(monkeypatch):
    monkeypatch.delenv(checks.GRADED_ENV, raising=False)
    checks.set_graded(None)
    yield
    checks.set_graded(None)


def exercise_checks() -> dict[str, object]:
    """Every public ``check_*`` of the package that returns a CheckResult (an exercise check), by qualified name."""
    found = {}
    for info in pkgutil.walk_packages(transferlab.__path__, "transferlab."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", ()):
            fn = getattr(mod, name, None)
            if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == info.name:
                ret = str(inspect.signature(fn).return_annotation)
                if "CheckResult" in ret or "FreezeCheck" in ret:
                    found[f"{fn.__module__}.{name}"] = fn
    return found


def _kit_model():
    from transferlab.models import KitNet

    return KitNet(10, widths=(8, 16))


def _wrong_lr_unfreeze(model, opt):
    from transferlab.freeze import unfreeze_by_names

    unfreeze_by_names(model, "layer1", optimizer=opt, lr=opt.defaults["lr"] / 3)


def _bn_net():
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))


def _backend_report():

    from transferlab.backends import BackendReport

    seeds = pd.DataFrame([dict(backend="jax", seed=s, compared_with="torch", init_weights_equal=False) for s in (0, 1)])
    return BackendReport("torch", None, None, seeds, None, None)


PUBLISHED, OTHER = {"seed": 0, "torch threads": 1, "numpy": "1.0"}, {"seed": 0, "torch threads": 2, "numpy": "2.0"}


# check, a call with a wrong answer, and the texts of the expected answer that a graded message must not contain
# (in self-study the first one IS shown where the check reveals it: that shows the test would see a leak)
WRONG = {
    "transferlab.checks.check_choice": (
        lambda: check_choice("best strategy", "from scratch", "fine-tuning", explain="fine-tuning kept 73.4%"),
        ["fine-tuning", "73.4"], True),
    "transferlab.checks.check_number": (
        lambda: check_number("ratio", 3.3, 7.25, rel_tol=0.05, explain="7.25 = 14.5 / 2"), ["7.25", "14.5"], True),
    "transferlab.freeze_methods.check_names": (
        lambda: transferlab.freeze_methods.check_names("frozen", {"embed"}, ["embed", "fc1"], explain="fc1 too"),
        ["fc1"], True),
    "transferlab.freeze_methods.check_freeze_idxs": (
        lambda: transferlab.freeze_methods.check_freeze_idxs(
            nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), [-1], ["0"]), ["['0']", "-3"], True),
    "transferlab.freeze_methods.check_unfreeze": (
        lambda: transferlab.freeze_methods.check_unfreeze(_wrong_lr_unfreeze, _kit_model(), stages=2, name="layer1"),
        ["0.0001"], True),
    "transferlab.freeze_methods.check_restore": (
        lambda: transferlab.freeze_methods.check_restore(lambda layer, old: None), [], False),
    "transferlab.freeze.check_frozen": (
        lambda: transferlab.freeze.check_frozen(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "0"), [], False),
    "transferlab.keras_bridge.check_keras_momentum": (
        lambda: transferlab.keras_bridge.check_keras_momentum(0.99), ["0.01"], False),
    "transferlab.bn_checks.check_bn_frozen": (
        lambda: transferlab.bn_checks.check_bn_frozen(_bn_net(), torch.randn(8, 4)), [], False),
    "transferlab.bn_checks.check_bn_freezer": (
        lambda: transferlab.bn_checks.check_bn_freezer(lambda m: m.eval(), _bn_net(), torch.randn(8, 4)), [], False),
    "transferlab.bn_checks.check_preprocess_mode": (
        lambda: transferlab.bn_checks.check_preprocess_mode("torch", "inception_v3.tf_in1k"), ["'tf'"], False),
    "transferlab.swa.averaging.check_running_average": (
        lambda: transferlab.swa.check_running_average(lambda w_swa, w, n: (w_swa + w) / 2), [], False),
    "transferlab.ensembles.check_cyclic_lr": (
        lambda: transferlab.ensembles.check_cyclic_lr(lambda i, c, hi, lo: hi), ["0.082"], True),
    "transferlab.backends.check_seed_across": (
        lambda: transferlab.backends.check_seed_across(_backend_report(), True), [], False),
    "transferlab.repro.check_pins": (
        lambda: transferlab.repro.check_pins(["torch threads"], PUBLISHED, OTHER), ["1 differing pin", "numpy"], True),
    "transferlab.ensembles.check_ensemble": (
        lambda: transferlab.ensembles.check_ensemble(lambda probs: torch.stack(probs).argmax(2).mode(0).values),
        ["predicts 1", "0.62"], True),
    "transferlab.landscape.directions.check_sphere_direction": (
        lambda: transferlab.landscape.directions.check_sphere_direction(lambda n, seed: torch.ones(n) / n ** 0.5),
        [], False),
    "transferlab.selection.reference.check_evidence": (
        lambda: transferlab.selection.reference.check_evidence(lambda f, y, a, b: -1.0), ["<want>"], True),
}


def test_every_exercise_check_has_a_wrong_answer_case():
    found = set(exercise_checks())
    assert found == set(WRONG), (f"exercise checks without a graded-mode case here: {sorted(found - set(WRONG))}; "
                                 f"cases for checks that are gone: {sorted(set(WRONG) - found)}")


def _evidence_expected(message: str) -> str:
    return re.search(r"expected (-?[0-9.]+)", message).group(1)


@pytest.mark.parametrize("name", sorted(WRONG))
def test_graded_mode_never_shows_the_expected_answer(name):
    call, secrets, revealed_in_self_study = WRONG[name]
    study = call()
    assert isinstance(study, CheckResult) and not study, f"{name}: the case must be a wrong answer"
    if "<want>" in secrets:  # the evidence check's expected value is computed inside it: read it off self-study
        secrets = [_evidence_expected(study.message)]
    if revealed_in_self_study:
        assert secrets[0] in study.message, f"{name}: self-study no longer shows the measured value"
    checks.set_graded(True)
    result = call()
    assert not result and repr(result).startswith("❌ ")
    for secret in secrets:
        assert secret not in result.message, f"{name}: graded message reveals {secret!r}: {result.message}"
    assert len(result.message) > 20, f"{name}: graded message says nothing: {result.message!r}"
    if not revealed_in_self_study:  # a message that names no expected value stays as helpful as in self-study
        assert result.message == study.message


def test_graded_messages_say_why_in_general_terms():
    checks.set_graded(True)
    msg = check_number("ratio", 3.3, 7.25, rel_tol=0.1, hint="divide the two best learning rates").message
    assert "3.3 is not within 10% of what this run measured" in msg and "divide the two best" in msg
    msg = check_choice("best", "a", "b", explain="b was 0.7", hint="the faster one").message
    assert "'a' is not what this run measured" in msg and "the faster one" in msg and "0.7" not in msg
    assert "no answer yet" in check_choice("best", None, "b").message  # general messages unchanged
    assert check_number("ratio", 7.3, 7.25).ok and "7.3 is right" in check_number("ratio", 7.3, 7.25).message


def test_a_result_made_without_a_graded_message_is_generic_in_graded_mode():
    """A lesson's own check that builds a CheckResult from its measurement cannot leak it by accident."""
    assert "measured: 3" in CheckResult(False, "Catch-up epoch: 2 is wrong (measured: 3)").message
    checks.set_graded(True)
    msg = CheckResult(False, "Catch-up epoch: 2 is wrong (measured: 3)").message
    assert "3" not in msg and "not right" in msg
    assert CheckResult(True, "right: 3").message == "right: 3"


def test_self_study_messages_are_unchanged():
    assert repr(check_number("ratio", 3.3, 10.0)) == "❌ ratio: 3.3 is off (measured: 10, tolerance 5%)"
    assert repr(check_choice("best?", "b", "a", explain="why")) == \
        "❌ best?: 'b' is not what this run measured (measured: 'a'). why"


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)])
def test_the_environment_switches_graded_mode(monkeypatch, value, on):
    monkeypatch.setenv(checks.GRADED_ENV, value)
    assert checks.graded() is on
    checks.set_graded(not on)  # an explicit choice wins
    assert checks.graded() is (not on)
    with pytest.raises(TypeError):
        checks.set_graded("yes")


# one representative exercise call per check that declares a solution, with what its arguments need
SOLVED = {
    "transferlab.checks.check_choice": ("check_choice('q', answer, 'fine-tuning')", {}),
    "transferlab.checks.check_number": ("check_number('q', answer, 2.5 * 4, rel_tol=0.01)", {}),
    "transferlab.freeze_methods.check_names": ("check_names('q', answer, ['a', 'b'])", {}),
    "transferlab.freeze_methods.check_freeze_idxs": ("check_freeze_idxs(net, idxs, ['stem', 'layer1'])",
                                                     {"net": _kit_model}),
    "transferlab.freeze_methods.check_restore": ("check_restore(restore)", {}),
    "transferlab.freeze_methods.check_unfreeze": ("check_unfreeze(unfreeze, net, stages=3, name='layer2')",
                                                  {"net": _kit_model}),
    "transferlab.keras_bridge.check_keras_momentum": ("check_keras_momentum(momentum)", {}),
    "transferlab.bn_checks.check_bn_freezer": ("check_bn_freezer(freeze_bn, net, x)",
                                               {"net": _bn_net, "x": lambda: torch.randn(8, 4)}),
    "transferlab.bn_checks.check_preprocess_mode": ("check_preprocess_mode(mode, 'vit_base_patch16_clip_224.openai')",
                                                    {}),
    "transferlab.swa.averaging.check_running_average": ("check_running_average(my_average)", {}),
    "transferlab.ensembles.check_cyclic_lr": ("check_cyclic_lr(my_cyclic_lr)", {}),
    "transferlab.backends.check_seed_across": ("check_seed_across(report, answer)", {"report": _backend_report}),
    "transferlab.repro.check_pins": ("check_pins(answer, pub, other)", {"pub": lambda: PUBLISHED,
                                                                        "other": lambda: OTHER}),
    "transferlab.ensembles.check_ensemble": ("check_ensemble(my_ensemble)", {}),
    "transferlab.landscape.directions.check_sphere_direction": ("check_sphere_direction(my_direction)", {}),
    "transferlab.selection.reference.check_evidence": ("check_evidence(my_evidence)", {}),
}


def test_every_declared_solution_has_a_case():
    declared = {n for n, fn in exercise_checks().items() if hasattr(fn, "__solution__")}
    assert declared == set(SOLVED)


@pytest.mark.parametrize("name", sorted(SOLVED))
def test_every_declared_solution_passes_its_check(name):
    fn = exercise_checks()[name]
    call, needs = SOLVED[name]
    answer, code = render_solution(fn, call)
    namespace = {k: make() for k, make in needs.items()}
    exec(code, namespace)  # noqa: S102 - the kit's own solution text
    result = eval(call, {**namespace, fn.__name__: fn})  # noqa: S307
    assert result, f"{name}: its solution fails: {result!r}\n{code}"
    assert answer in namespace


def test_render_solution_explains_what_it_cannot_fill():
    with pytest.raises(LookupError, match="declares no solution"):
        render_solution(transferlab.freeze.check_frozen, "check_frozen(m, 'a')")
    with pytest.raises(ValueError, match="no \\*args"):
        render_solution(check_choice, "check_choice(*args)")
    with pytest.raises(ValueError, match="missing a required argument"):
        render_solution(check_choice, "check_choice('q', a)")
    assert render_solution(check_choice, "check_choice('q', a, x[0])", answer_as="b") == ("a", "b = x[0]")
