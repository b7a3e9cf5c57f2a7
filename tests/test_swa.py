"""SWA recipe over torch.optim.swa_utils: schedule, running average vs a hand mean, BN recomputation."""

from __future__ import annotations

import math

import pytest
import torch

from transferlab.models import KitNet
from transferlab.swa import averaged_module, bn_update, sgd_lr_factor, swa_epochs, train_sgd, train_swa
from transferlab.train import Callback
from transferlab.world import target_task


@pytest.fixture(scope="module")
def task():
    return target_task(6, n_test_per_class=2, size=16, seed=0)


def tiny(seed=0):
    torch.manual_seed(seed)
    return KitNet(10, widths=(8, 16), stem_width=8)


class Snapshots(Callback):
    """Copies of the live weights at the end of every epoch (an independent record of the SGD iterates)."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, state):
        self.weights.append([p.detach().clone() for p in state.model.parameters()])


def test_lr_factor_follows_the_paper():
    assert sgd_lr_factor(0.0) == sgd_lr_factor(0.5) == 1.0
    assert math.isclose(sgd_lr_factor(0.7), 1 - 0.99 * 0.5)
    assert sgd_lr_factor(0.9) == pytest.approx(0.01) and sgd_lr_factor(2.0) == 0.01
    with pytest.raises(ValueError, match="final_ratio"):
        sgd_lr_factor(0.3, final_ratio=0.0)


def test_swa_epochs_plan_and_bad_input():
    assert swa_epochs(16) == {"start": 12, "ends": {1.0: 16, 1.25: 20, 1.5: 24}}
    with pytest.raises(ValueError, match="1.25"):
        swa_epochs(6)  # 1.25 * 6 = 7.5 epochs is not whole
    with pytest.raises(ValueError, match="budget"):
        swa_epochs(1)
    with pytest.raises(ValueError, match="swa_start"):
        swa_epochs(8, swa_start=1.5)
    with pytest.raises(ValueError, match="larger than the SWA start"):
        swa_epochs(8, budgets=(0.5,))


def test_averaged_weights_equal_hand_mean_of_snapshots(task):
    snaps = Snapshots()
    out, hist = train_swa(tiny(), task.loader("train", 20, seed=0), budget=4, lr=0.05, swa_lr=0.02,
                          callbacks=[snaps], progress=False, seed=0)
    plan = swa_epochs(4)
    assert sorted(out) == [1.0, 1.25, 1.5] and len(hist) == 6
    for factor, end in plan["ends"].items():
        swa = out[factor]
        taken = snaps.weights[plan["start"] - 1:end]  # after epochs start .. end (counted from 1), one per epoch
        assert int(swa.n_averaged) == len(taken)
        for k, p in enumerate(averaged_module(swa).parameters()):
            hand = torch.stack([w[k] for w in taken]).mean(0)
            torch.testing.assert_close(p, hand, rtol=1e-5, atol=1e-6)


def test_swa_run_is_the_sgd_run_until_swa_start(task):
    a, b = Snapshots(), Snapshots()
    train_sgd(tiny(), task.loader("train", 20, seed=0), epochs=4, lr=0.05, callbacks=[a], progress=False, seed=0)
    _, hist = train_swa(tiny(), task.loader("train", 20, seed=0), budget=4, lr=0.05, swa_lr=0.02, callbacks=[b],
                        progress=False, seed=0)
    start = swa_epochs(4)["start"]
    for e in range(start):
        for wa, wb in zip(a.weights[e], b.weights[e], strict=True):
            assert torch.equal(wa, wb)
    # after the switch the weights differ (constant SWA learning rate instead of the decay) and lr = swa_lr
    assert not all(torch.equal(x, y) for x, y in zip(a.weights[start], b.weights[start], strict=True))
    assert hist["lr"][-1] == pytest.approx(0.02)


def test_bn_statistics_are_recomputed_for_the_average(task):
    loader = task.loader("train", 12, shuffle=False)  # 60 images = 5 equal batches
    out, _ = train_swa(tiny(), task.loader("train", 20, seed=0), budget=4, bn_data=loader, progress=False, seed=0)
    net = averaged_module(out[1.5])
    # independent: update_bn with momentum=None averages batch means; with equal batches that is the mean of the
    # first conv's output over every training image and position
    x = torch.cat([xb for xb, _ in loader])
    with torch.no_grad():
        conv_out = net.stem[0](x)
    torch.testing.assert_close(net.stem[1].running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_bn_update_changes_statistics_of_an_average(task):
    from torch.optim.swa_utils import AveragedModel

    m = tiny()
    swa = AveragedModel(m)
    before = averaged_module(swa).stem[1].running_mean.clone()
    bn_update(swa, task.loader("train", 20, shuffle=False))
    assert not torch.equal(before, averaged_module(swa).stem[1].running_mean)
    with pytest.raises(TypeError, match="AveragedModel"):
        averaged_module(m)


def test_train_swa_rejects_bad_swa_lr(task):
    with pytest.raises(ValueError, match="swa_lr"):
        train_swa(tiny(), task.loader("train", 20), budget=4, swa_lr=0.0, progress=False)


def test_running_average_exercise_check():
    from transferlab.swa import check_running_average

    assert check_running_average(lambda w_swa, w, n: (w_swa * n + w) / (n + 1))
    wrong = check_running_average(lambda w_swa, w, n: (w_swa + w) / 2)  # an exponential average, not the mean
    assert not wrong and "n_models" in wrong.message
    broken = check_running_average(lambda w_swa, w, n: w_swa.reshape(2, -1))
    assert not broken and "shape" in broken.message
    assert not check_running_average(lambda w_swa, w, n: 1 / 0)  # the learner's exception is reported


def test_bn_update_on_no_batches_is_an_error_and_keeps_the_statistics():
    import torch
    from torch.optim.swa_utils import AveragedModel

    from transferlab.swa import bn_update

    avg = AveragedModel(KitNet(10, widths=(8,)))
    bn = avg.module.stem[1]
    with torch.no_grad():
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(2.0)
    with pytest.raises(ValueError, match="no batches"):
        bn_update(avg, [])
    assert torch.allclose(bn.running_mean, torch.full_like(bn.running_mean, 0.3))
    assert torch.allclose(bn.running_var, torch.full_like(bn.running_var, 2.0))


@pytest.mark.parametrize("kwargs, match", [(dict(budgets=()), "budgets is empty"),
                                           (dict(budgets=(1.0,), anneal_epochs=0), "anneal_epochs"),
                                           (dict(swa_start=float("nan")), "swa_start")])
def test_train_swa_rejects_empty_or_bad_budgets(task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_swa(tiny(), task.loader("train", 20), budget=4, progress=False, **kwargs)


def test_without_recompute_the_average_keeps_the_iterates_bn_statistics(task):
    snaps = []

    class Buffers(Callback):
        def on_epoch_end(self, state):
            snaps.append(state.model.stem[1].running_mean.clone())

    out, _ = train_swa(tiny(), task.loader("train", 20, seed=0), budget=4, recompute_bn=False, callbacks=[Buffers()],
                       progress=False, seed=0)
    for factor, end in swa_epochs(4)["ends"].items():
        assert torch.equal(averaged_module(out[factor]).stem[1].running_mean, snaps[end - 1])


# ---------------------------------------------------------------- the callback (fast.ai's design) and branching


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def _equal(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("every", [1, 2])
def test_swa_callback_functional_test_average_equals_mean_of_snapshots(task, every):
    """The source's functional test: the averaged model equals the plain mean of the weights it averaged."""
    from torch.optim.swa_utils import AveragedModel

    from transferlab.swa import SWACallback
    from transferlab.train import fit

    model, snaps = tiny(), Snapshots()
    cb = SWACallback(AveragedModel(model), swa_start=2, every=every, keep=[3, 6])
    fit(model, task.loader("train", 20, seed=0), epochs=6, optimizer="sgd", lr=0.05, schedule=None,
        callbacks=[snaps, cb], progress=False, seed=0)
    due = [e for e in range(1, 7) if e >= 2 and (e - 2) % every == 0]  # epochs counted from 1
    assert cb.averaged_at == due and int(cb.swa_model.n_averaged) == len(due)
    for end, avg in cb.kept.items():
        taken = [snaps.weights[e - 1] for e in due if e <= end]
        assert int(avg.n_averaged) == len(taken)
        for k, p in enumerate(averaged_module(avg).parameters()):
            torch.testing.assert_close(p, torch.stack([w[k] for w in taken]).mean(0), rtol=1e-5, atol=1e-6)
    assert cb.kept[6] is cb.swa_model  # the last epoch's copy is the average itself
    # a hand running average of the same snapshots (the fast.ai contributor's update) agrees
    hand = None
    for n, e in enumerate(due):
        w = snaps.weights[e - 1]
        hand = [x.clone() for x in w] if hand is None else [(h * n + x) / (n + 1) for h, x in zip(hand, w, strict=True)]
    for h, p in zip(hand, averaged_module(cb.swa_model).parameters(), strict=True):
        torch.testing.assert_close(p, h, rtol=1e-5, atol=1e-6)


def test_swa_callback_fixes_batchnorm_at_the_end_and_rejects_bad_input(task):
    from torch.optim.swa_utils import AveragedModel

    from transferlab.swa import SWACallback
    from transferlab.train import fit

    model = tiny()
    bn_loader = task.loader("train", 12, shuffle=False)
    cb = SWACallback(AveragedModel(model), swa_start=1, bn_data=bn_loader)
    fit(model, task.loader("train", 20, seed=0), epochs=2, optimizer="sgd", lr=0.05, schedule=None, callbacks=[cb],
        progress=False)
    net = averaged_module(cb.swa_model)
    x = torch.cat([xb for xb, _ in bn_loader])
    with torch.no_grad():
        expect = net.stem[0](x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(net.stem[1].running_mean, expect, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="AveragedModel"):
        SWACallback(model, swa_start=1)
    with pytest.raises(ValueError, match="swa_start"):
        SWACallback(AveragedModel(model), swa_start=0)
    with pytest.raises(ValueError, match="every"):
        SWACallback(AveragedModel(model), swa_start=1, every=0)


def test_swalr_callback_anneals_linearly_over_one_epoch_then_holds(task):
    from transferlab.swa import SWALRCallback
    from transferlab.train import fit

    class Rates(Callback):
        def __init__(self):
            self.lrs = []

        def on_batch_end(self, state):  # SWALRCallback runs first, so this is the rate of the next step
            self.lrs.append(state.optimizer.param_groups[0]["lr"])

    rates = Rates()
    loader = task.loader("train", 20, seed=0)  # 60 images: 3 steps per epoch
    fit(tiny(), loader, epochs=3, optimizer="sgd", lr=0.1, schedule=None, progress=False,
        callbacks=[SWALRCallback(0.01, start=1), rates])
    steps = len(loader)
    expect = [0.1] * steps + [0.1 + (0.01 - 0.1) * k / steps for k in range(1, steps + 1)] + [0.01] * steps
    assert rates.lrs == pytest.approx(expect)


def test_sgd_runs_branched_at_half_the_budget_equal_unbranched_runs(task):
    """SGD at 1 and 1.25 B from one shared first half: the same numbers as two separate runs."""
    from transferlab.swa import resume_sgd, sgd_checkpoints

    full_b, full_125 = tiny(), tiny()
    train_sgd(full_b, task.loader("train", 20, seed=0), epochs=4, progress=False, seed=0)
    train_sgd(full_125, task.loader("train", 20, seed=0), epochs=5, progress=False, seed=0)
    ck = sgd_checkpoints(tiny(), task.loader("train", 20, seed=0), budget=4, at=[2, 3], progress=False, seed=0)
    assert sorted(ck) == [2, 3]
    assert _equal(_weights(resume_sgd(ck[3], epochs=4, progress=False)), _weights(full_b))
    assert _equal(_weights(resume_sgd(ck[2], epochs=4, progress=False)), _weights(full_b))
    assert _equal(_weights(resume_sgd(ck[2], epochs=5, budget=5, progress=False)), _weights(full_125))
    # resuming twice from one checkpoint gives the same run (no momentum buffer or loader position is shared)
    assert _equal(_weights(resume_sgd(ck[2], epochs=5, budget=5, progress=False)), _weights(full_125))
    with pytest.raises(ValueError, match="constant first half"):
        resume_sgd(ck[3], epochs=5, budget=5, progress=False)  # 3 > 4 / 2: the schedules already differ
    with pytest.raises(ValueError, match="more epochs"):
        resume_sgd(ck[3], epochs=3, progress=False)


def test_swa_resumed_from_a_checkpoint_equals_train_swa(task):
    from transferlab.swa import resume_swa, sgd_checkpoints

    bn = task.loader("train", 30, shuffle=False)
    out, _ = train_swa(tiny(), task.loader("train", 20, seed=0), budget=4, swa_lr=0.02, bn_data=bn, progress=False,
                       seed=0)
    plan = swa_epochs(4)
    ck = sgd_checkpoints(tiny(), task.loader("train", 20, seed=0), budget=4, at=[plan["start"]], progress=False,
                         seed=0)
    res = resume_swa(ck[plan["start"]], swa_lr=0.02, ends=plan["ends"].values(), bn_data=bn, progress=False)
    assert sorted(res) == sorted(plan["ends"].values())
    for factor, end in plan["ends"].items():
        a, b = out[factor], res[end]
        assert int(a.n_averaged) == int(b.n_averaged) == end - plan["start"] + 1
        assert _equal(_weights(a), _weights(b))
        assert _equal(list(a.module.buffers()), list(b.module.buffers()))
