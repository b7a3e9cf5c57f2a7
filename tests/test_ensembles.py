"""Snapshot ensembles / FGE next to SWA: the cyclic schedule, the ensemble predictor (against a hand computation),
and one cyclic run giving both the snapshots and their weight average."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from transferlab.ensembles import (
    CyclicLR,
    Snapshots,
    check_cyclic_lr,
    check_ensemble,
    cyclic_lr,
    ensemble_metrics,
    evaluate_ensemble,
    model_probs,
    resume_cyclic,
    time_per_image,
)
from transferlab.models import KitNet
from transferlab.swa import averaged_module, sgd_checkpoints
from transferlab.train import evaluate, fit
from transferlab.world import target_task


@pytest.fixture(scope="module")
def task():
    return target_task(6, n_test_per_class=2, size=16, seed=0)


def tiny(seed=0):
    torch.manual_seed(seed)
    return KitNet(10, widths=(8, 16), stem_width=8)


def test_cyclic_lr_is_the_papers_sawtooth():
    # alpha(i) = (1 - t(i)) a1 + t(i) a2, t(i) = (mod(i - 1, c) + 1) / c
    c, a1, a2 = 3, 0.3, 0.0
    assert [cyclic_lr(i, c, a1, a2) for i in range(1, 8)] == pytest.approx([0.2, 0.1, 0.0, 0.2, 0.1, 0.0, 0.2])
    assert cyclic_lr(1, 1, 0.5, 0.1) == pytest.approx(0.1)  # a cycle of one step always runs at lr_min
    with pytest.raises(ValueError, match="counted from 1"):
        cyclic_lr(0, 3, 0.1, 0.0)


def test_cyclic_schedule_and_snapshots_in_fit(task):
    loader = task.loader("train", 20, seed=0)  # 3 steps per epoch
    sched, snaps = CyclicLR(0.1, 0.01, cycle_epochs=2, start=1), Snapshots(start=3, every=2)
    fit(tiny(), loader, epochs=5, optimizer="sgd", lr=0.05, schedule=None, callbacks=[sched, snaps], progress=False)
    steps = len(loader)
    assert sched.lrs == pytest.approx([cyclic_lr(i, 2 * steps, 0.1, 0.01) for i in range(1, 4 * steps + 1)])
    assert sorted(snaps.models) == [3, 5]  # the ends of the two cycles (epochs 2-3 and 4-5, counted from 1)


def test_ensemble_metrics_against_a_hand_computation():
    a, b = nn.Linear(2, 3), nn.Linear(2, 3)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        a.bias.zero_()
        b.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]]))
        b.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    x = [[2.0, 0.0], [0.0, 1.0]]
    y = [2, 1]

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    hand = []
    for xi in x:  # logits by hand: W x + b for each model, then the mean of the two softmaxes
        za = [xi[0], xi[1], 0.0]
        zb = [0.0, 1.0, 2 * xi[0] + 2 * xi[1]]
        hand.append([(p + q) / 2 for p, q in zip(softmax(za), softmax(zb), strict=True)])
    pred = [max(range(3), key=lambda c: row[c]) for row in hand]
    acc = sum(p == t for p, t in zip(pred, y, strict=True)) / 2
    nll = -sum(math.log(row[t]) for row, t in zip(hand, y, strict=True)) / 2

    data = [(torch.tensor(x), torch.tensor(y))]
    got = evaluate_ensemble([a, b], data)
    assert got["members"] == 2 and got["n"] == 2
    assert got["acc"] == pytest.approx(acc)
    assert got["loss"] == pytest.approx(nll, rel=1e-6)
    pa, _ = model_probs(a, data)
    torch.testing.assert_close(pa, torch.tensor([softmax([2.0, 0.0, 0.0]), softmax([0.0, 1.0, 0.0])]))


def test_a_one_member_ensemble_is_the_model(task):
    model = tiny()
    test = task.loader("test", 7)
    ev, ens = evaluate(model, test), evaluate_ensemble([model], test)
    assert ens["acc"] == pytest.approx(ev["acc"]) and ens["loss"] == pytest.approx(ev["loss"], rel=1e-5)
    model.train()
    model_probs(model, test)
    assert model.training  # mode restored


def test_ensemble_metrics_rejects_mismatched_input():
    with pytest.raises(ValueError, match="same shape"):
        ensemble_metrics([torch.ones(2, 3), torch.ones(3, 3)], torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        ensemble_metrics([torch.ones(2, 3)], torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="no batches"):
        model_probs(nn.Linear(2, 2), [])


def test_one_cyclic_run_gives_snapshots_and_their_weight_average(task):
    ck = sgd_checkpoints(tiny(), task.loader("train", 20, seed=0), budget=4, at=[2], progress=False, seed=0)
    run = resume_cyclic(ck[2], lr_max=0.05, lr_min=0.001, cycle_epochs=2, ends=[4, 6], recompute_bn=False,
                        progress=False)
    assert sorted(run.snapshots) == [4, 6] and len(run.lrs) == 4 * len(ck[2].loader)
    assert [len(run.members(e)) for e in (4, 6)] == [1, 2]
    for end, avg in run.swa.items():
        members = run.members(end)
        assert int(avg.n_averaged) == len(members)
        for k, p in enumerate(averaged_module(avg).parameters()):
            mean = torch.stack([list(m.parameters())[k].detach() for m in members]).mean(0)
            torch.testing.assert_close(p, mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="close a cycle"):
        resume_cyclic(ck[2], lr_max=0.05, lr_min=0.001, cycle_epochs=2, ends=[5], progress=False)


def test_time_per_image_is_a_positive_number(task):
    t = time_per_image([tiny(), tiny(1)], task.loader("test", 10), repeats=1)
    assert isinstance(t, float) and t > 0


def test_exercise_checks_explain_wrong_answers():
    assert check_cyclic_lr(cyclic_lr)
    assert not check_cyclic_lr(None)
    off = check_cyclic_lr(lambda i, c, a1, a2: (1 - (i % c) / c) * a1 + (i % c) / c * a2)  # t = 0 at a cycle's end
    assert not off and "lr_min" in off.message
    assert not check_cyclic_lr(lambda *a: 1 / 0)
    assert check_ensemble(lambda probs: torch.stack(probs).mean(0).argmax(1))
    vote = check_ensemble(lambda probs: torch.stack([p.argmax(1) for p in probs]).mode(0).values)
    assert not vote and "vote" in vote.message
    assert not check_ensemble(None)
