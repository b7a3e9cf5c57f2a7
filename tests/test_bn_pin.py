"""transferlab.bn_pin: the one BatchNorm pin. Every report must say what the next forward actually does.

The combination test composes freezing (by name, by index, and unfreezing again), each regime of
``set_bn_regime`` (entered before or after the freeze, still active or restored), ``model.train()`` /
``model.eval()`` and ``copy.deepcopy``; for each combination it checks, per BatchNorm layer, that

1. the reported policy and mode equal an independent expectation written out below, and
2. one observed forward agrees: did the running statistics move, and did the output equal batch-statistic
   or running-statistic normalisation (recomputed by hand with ``F.batch_norm``)?
"""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab import batchnorm as bnm
from transferlab import bn_pin
from transferlab import freeze as fz

BN = ("1", "4")  # the two BatchNorm layers of tiny(); the freeze operations below touch only "1" (child index 1)


def tiny() -> nn.Sequential:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 6), nn.BatchNorm1d(6))
    with torch.no_grad():  # running statistics far from any batch's, so batch and running normalisation differ
        for name in BN:
            m.get_submodule(name).running_mean.fill_(-3.0)
            m.get_submodule(name).running_var.fill_(9.0)
    return m


def x_batch() -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(1)) * 2 + 1


def observe(model: nn.Module) -> dict[str, tuple[bool, bool]]:
    """One forward; per BN layer: (normalised with batch statistics?, running statistics moved?)."""
    seen = {}

    def hook(name):
        def fn(mod, inputs, output):
            seen[name] = (inputs[0].detach().clone(), output.detach().clone())
        return fn

    layers = dict(bn_pin.bn_layers(model))
    before = {n: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
              for n, m in layers.items()}
    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    with torch.no_grad():
        model(x_batch())
    for h in handles:
        h.remove()
    out = {}
    for n, m in layers.items():
        inp, got = seen[n]
        rm, rv, nb = before[n]
        batch = F.batch_norm(inp, None, None, m.weight, m.bias, training=True, eps=m.eps)
        running = F.batch_norm(inp, rm, rv, m.weight, m.bias, training=False, eps=m.eps)
        used_batch = torch.allclose(got, batch, atol=1e-5)
        assert used_batch != torch.allclose(got, running, atol=1e-5), f"{n}: neither or both normalisations match"
        moved = not (torch.equal(m.running_mean, rm) and torch.equal(m.running_var, rv)
                     and torch.equal(m.num_batches_tracked, nb))
        out[n] = (used_batch, moved)
    return out


# ------------------------------------------------------------------------------------------------ the expectation
REGIME_POLICY = {"train": None, "frozen": "frozen", "old_keras": "old_keras"}
EXPECTED_MODE = {  # (policy, model.train()?) -> (batch statistics?, running statistics updated?, bn_mode)
    (None, True): (True, True, "batch stats, updates running stats"),
    (None, False): (False, False, "running stats (eval)"),
    ("frozen", True): (False, False, "running stats (frozen)"),
    ("frozen", False): (False, False, "running stats (frozen)"),
    ("old_keras", True): (True, False, "batch stats, running stats frozen (old Keras)"),
    ("old_keras", False): (False, False, "running stats (eval)"),
}
FREEZE_OPS = ("none", "freeze_name", "freeze_idx", "freeze_unfreeze_name", "freeze_unfreeze_idx")


def apply_freeze_op(model: nn.Module, op: str) -> None:
    if op.startswith("freeze"):
        (fz.freeze_by_idxs(model, 1) if op.endswith("idx") else fz.freeze_by_names(model, "1"))
    if "unfreeze" in op:
        (fz.unfreeze_by_idxs(model, -4) if op.endswith("idx") else fz.unfreeze_by_names(model, ["1"]))


def expected_state(op: str, regime: str | None, order: str, restored: bool) -> dict[str, tuple]:
    """Per BN layer: (policy, affine requires_grad), from the documented semantics alone."""
    frozen_by_op = op in ("freeze_name", "freeze_idx")
    unfrozen_by_op = "unfreeze" in op
    state = {}
    for name in BN:
        touched = name == "1"
        if regime is None:
            frozen = touched and frozen_by_op
            state[name] = ("frozen" if frozen else None, not frozen)
            continue
        pol = REGIME_POLICY[regime]
        if order == "freeze_first":
            before = ("frozen" if touched and frozen_by_op else None, not (touched and frozen_by_op))
            state[name] = before if restored else (pol, pol is None and before[1])
        else:  # the regime first, then the freeze operation inside it
            if restored:
                state[name] = (None, True)  # what every layer had before the regime
            elif touched and frozen_by_op:
                state[name] = ("frozen", False)
            elif touched and unfrozen_by_op:
                state[name] = (None, True)
            else:
                state[name] = (pol, pol is None)
    return state


COMBOS = [(op, None, "-", False) for op in FREEZE_OPS] + [
    (op, regime, order, restored)
    for op, regime, order, restored in itertools.product(FREEZE_OPS, REGIME_POLICY, ("freeze_first", "regime_first"),
                                                         (False, True))]
COMBO_IDS = [f"{op}-{regime}-{order}-{'restored' if r else 'active'}" for op, regime, order, r in COMBOS]


@pytest.mark.parametrize("deep", [False, True], ids=["same", "deepcopy"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("op,regime,order,restored", COMBOS, ids=COMBO_IDS)
def test_reports_equal_the_next_forward(op, regime, order, restored, train, deep):
    model = tiny()
    if regime is None:
        apply_freeze_op(model, op)
    elif order == "freeze_first":
        apply_freeze_op(model, op)
        handle = bnm.set_bn_regime(model, regime)
    else:
        handle = bnm.set_bn_regime(model, regime)
        apply_freeze_op(model, op)
    if regime is not None and restored:
        handle.restore()
    model.train(train)
    if deep:
        model = copy.deepcopy(model)
    want = expected_state(op, regime, order, restored)
    report = {r["name"]: r for r in bnm.mode_report(model)}
    for name in BN:
        layer = model.get_submodule(name)
        policy, grad = want[name]
        batch, updates, mode = EXPECTED_MODE[(policy, train)]
        # 1. what is reported equals the independent expectation
        assert fz.bn_policy(layer) == policy and fz.bn_mode(layer) == mode, name
        assert (report[name]["uses"] == "batch stats") == batch and report[name]["updates_stats"] == updates
        assert report[name]["mode"] == mode and report[name]["policy"] == policy
        assert (name in bnm.bn_in_train_mode(model)) == batch
        assert fz.is_frozen_bn(layer) == (policy == "frozen") == (name in fz.frozen_bn_names(model))
        assert all(p.requires_grad == grad for p in layer.parameters()), name
        assert len([h for h in layer._forward_pre_hooks.values()]) == (policy is not None)
    # 2. and equals what one forward does
    seen = observe(model)
    for name in BN:
        policy = want[name][0]
        batch, updates, mode = EXPECTED_MODE[(policy, train)]
        assert seen[name] == (batch, updates), (name, mode)
        assert fz.bn_mode(model.get_submodule(name)) == mode  # the forward changed nothing the reports read


# ------------------------------------------------------------------------------------------------ the four old bugs
def test_pinned_layer_after_model_train_reports_running_stats():
    m = tiny()
    fz.freeze_by_names(m, "1")
    m.train()
    assert m[1].training  # the flag model.train() set ...
    assert bnm.bn_in_train_mode(m) == ["4"]  # ... is not what the next forward uses
    row = next(r for r in bnm.mode_report(m) if r["name"] == "1")
    assert row["uses"] == "running stats" and not row["updates_stats"] and not row["training"]
    assert observe(m)["1"] == (False, False)


def test_frozen_regime_is_seen_by_is_frozen_bn_and_check_frozen():
    m = tiny()
    with bnm.set_bn_regime(m, "frozen"):
        assert fz.frozen_bn_names(m) == ["1", "4"] and fz.is_frozen_bn(m[1])
        assert fz.trainable_summary(m).set_index("child").loc["total", "bn_mode"] == "stats frozen"
        assert fz.check_frozen(m, ["1", "4"])  # affine frozen and statistics frozen: exactly these two
    assert fz.frozen_bn_names(m) == []


def test_unfreeze_inside_a_frozen_regime_is_reported_as_updating():
    m = tiny()
    with bnm.set_bn_regime(m, "frozen"):
        fz.unfreeze_by_names(m, "1")
        m.train()
        assert fz.bn_mode(m[1]) == "batch stats, updates running stats" and bnm.bn_in_train_mode(m) == ["1"]
        assert observe(m) == {"1": (True, True), "4": (False, False)}
    assert fz.bn_policy(m[1]) is None  # given back what it had before the regime


def test_pinned_layer_under_old_keras_uses_batch_statistics_and_gets_its_pin_back():
    m = tiny()
    fz.freeze_by_names(m, "1")
    with bnm.set_bn_regime(m, "old_keras"):
        m.train()
        assert observe(m) == {"1": (True, False), "4": (True, False)}
        assert not bnm.check_bn_frozen(m, x_batch())
    m.train()
    assert fz.is_frozen_bn(m[1]) and observe(m)["1"] == (False, False)
    assert m[1].track_running_stats and m[4].track_running_stats


# ------------------------------------------------------------------------------------------------ the mechanism
@pytest.mark.parametrize("policy", ["frozen", "old_keras"])
def test_policy_survives_deepcopy_and_pickle(policy):
    m = tiny()
    fz.set_bn_policy(m, policy)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        clone.train()
        assert [fz.bn_policy(layer) for _, layer in bn_pin.bn_layers(clone)] == [policy, policy]
        assert observe(clone) == {n: (policy == "old_keras", False) for n in BN}
        fz.set_bn_policy(clone, None)  # the copy's hook is removable: it is the same module-level function
        assert not clone[1]._forward_pre_hooks and clone[1].track_running_stats


def test_set_bn_policy_is_idempotent_and_clearing_gives_the_layer_back():
    bn = nn.BatchNorm1d(3)
    for _ in range(3):
        assert fz.set_bn_policy(bn, "old_keras") == [""]
    assert len(bn._forward_pre_hooks) == 1 and not bn.track_running_stats
    fz.set_bn_policy(bn, "frozen")
    assert len(bn._forward_pre_hooks) == 1 and bn.track_running_stats and not bn.training
    fz.set_bn_policy(bn, None, training=True)
    assert not bn._forward_pre_hooks and bn.training and "_transferlab_bn_policy" not in vars(bn)
    assert fz.set_bn_policy(nn.Linear(2, 2), "frozen") == []  # no BatchNorm inside: nothing to do
    with pytest.raises(ValueError, match="'frozn'.*Did you mean 'frozen'"):
        fz.set_bn_policy(bn, "frozn")
    with pytest.raises(TypeError, match="BatchNorm layer, got Linear"):
        fz.bn_mode(nn.Linear(2, 2))


def test_layers_without_running_statistics_are_reported_honestly():
    bn = nn.BatchNorm1d(3, track_running_stats=False)
    fz.set_bn_policy(bn, "frozen")
    assert fz.bn_mode(bn) == "batch stats (no running stats)"  # nothing to freeze: it can only use the batch
    bn2 = nn.BatchNorm1d(3)
    bn2.track_running_stats = False  # switched off by hand, no policy
    assert fz.bn_behaviour(bn2.train())[1:3] == (True, False)


def test_is_batchnorm_is_the_one_definition():
    kinds = [nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.BatchNorm3d(2), nn.SyncBatchNorm(2), nn.LazyBatchNorm1d()]
    assert all(map(fz.is_batchnorm, kinds))
    assert not any(map(fz.is_batchnorm, [nn.InstanceNorm2d(2), nn.LayerNorm(2), nn.GroupNorm(1, 2)]))
    m = nn.Sequential(*kinds[:4], nn.InstanceNorm2d(2))
    assert [n for n, _ in bnm.bn_layers(m)] == ["0", "1", "2", "3"] and fz.trainable_summary(m).bn_layers.iloc[-1] == 4


@pytest.mark.parametrize("regime", ["train", "frozen", "old_keras"])
def test_the_freeze_explorer_shows_what_the_mechanism_does(regime):
    """The widget reads the one mechanism: under a regime and after a freeze, its label and the forward agree."""
    import torch

    from transferlab.batchnorm import set_bn_regime
    from transferlab.freeze import bn_behaviour, freeze_by_names
    from transferlab.models import KitNet
    from transferlab.widgets import FreezeExplorer

    m = KitNet(10, widths=(8,))
    explorer = FreezeExplorer(m)
    with set_bn_regime(m, regime):
        m.train()
        bn = m.stem[1]
        before = bn.running_mean.clone()
        m(torch.randn(4, 3, 16, 16))
        moved = not torch.equal(before, bn.running_mean)
        assert moved == bn_behaviour(bn).updates_stats
        from transferlab.widgets.freeze_explorer import _bn_label

        label = _bn_label(bn)
        assert ("updates" in label) == moved, (regime, label)
        assert explorer.bn_modes()["stem.1"] == label
    freeze_by_names(m, "stem")
    assert _bn_label(m.stem[1]).startswith("stats frozen")
