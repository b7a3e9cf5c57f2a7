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
        taken = snaps.weights[plan["start"]:end]  # epochs start+1 .. end, one snapshot per epoch
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
