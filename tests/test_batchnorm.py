"""transferlab.batchnorm: probes, regimes, preprocessing and the Keras port, each against an independent formulation."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab import batchnorm as bnm
from transferlab.world import TensorLoader


def tiny(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(8, 3))
    return nn.Sequential(*layers)


def shifted(n=32, seed=1, shift=2.0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g) * scale + shift


def warm(model, steps=5):
    """Give the BN layers non-trivial running statistics (standard-normal inputs)."""
    model.train()
    with torch.no_grad():
        for i in range(steps):
            model(torch.randn(64, 6, generator=torch.Generator().manual_seed(100 + i)))
    return model


# ---------------------------------------------------------------------------------------------------------- modes
def test_bn_layers_and_train_mode_probe():
    m = tiny()
    assert [n for n, _ in bnm.bn_layers(m)] == ["1", "4"]
    assert bnm.bn_in_train_mode(m.train()) == ["1", "4"]
    assert bnm.bn_in_train_mode(m.eval()) == []
    m.train()
    m[4].eval()  # a one-off eval on one layer
    assert bnm.bn_in_train_mode(m) == ["1"]
    with pytest.raises(TypeError, match="nn.Module"):
        bnm.bn_layers("resnet")


def test_mode_report_covers_dropout_and_trainability():
    m = tiny(dropout=0.3).train()
    for p in m[1].parameters():
        p.requires_grad_(False)
    rows = {r["name"]: r for r in bnm.mode_report(m)}
    assert rows["6"]["kind"] == "Dropout" and rows["6"]["uses"] == "random mask"
    assert rows["1"]["updates_stats"] and not rows["1"]["trainable"] and rows["4"]["trainable"]
    rows = {r["name"]: r for r in bnm.mode_report(m.eval())}
    assert rows["6"]["uses"] == "identity" and rows["1"]["uses"] == "running stats"
    assert not rows["1"]["updates_stats"]


# ---------------------------------------------------------------------------------------------------------- stats
def test_forward_changes_stats_matches_the_update_rule():
    m = tiny()
    x = shifted()
    before = bnm.bn_state(m)
    rows = bnm.forward_changes_stats(m.train(), x, restore=False)  # under no_grad, in train mode
    assert all(r["changed"] and r["batches"] == 1 for r in rows)
    # independent: running_mean = (1 - momentum) * old + momentum * batch mean of the layer's input
    h = m[0](x).detach()
    expected = 0.9 * before["1.running_mean"] + 0.1 * h.mean(0)
    torch.testing.assert_close(m[1].running_mean, expected)
    expected_var = 0.9 * before["1.running_var"] + 0.1 * h.var(0, unbiased=True)
    torch.testing.assert_close(m[1].running_var, expected_var)
    assert rows[0]["mean_shift"] == pytest.approx(float((expected - before["1.running_mean"]).abs().max()), rel=1e-5)


@pytest.mark.parametrize("how", ["no_grad", "inference_mode", "grad"])
def test_inference_contexts_do_not_protect_stats_but_eval_does(how):
    m = tiny()
    x = shifted()
    kw = dict(grad=how == "grad", inference_mode=how == "inference_mode")
    snap = bnm.bn_state(m)
    assert any(r["changed"] for r in bnm.forward_changes_stats(m.train(), x, **kw))
    for k, v in bnm.bn_state(m).items():  # restore=True: the probe itself leaves no trace
        assert torch.equal(v, snap[k]), k
    assert not any(r["changed"] for r in bnm.forward_changes_stats(m.eval(), x, **kw))


def test_snapshot_errors_name_the_problem():
    m = tiny()
    with pytest.raises(KeyError, match="other"):
        bnm.restore_bn_state(m, {"9.running_mean": torch.zeros(8)})
    s = bnm.bn_state(m)
    t = dict(s)
    del t["1.running_var"]
    with pytest.raises(KeyError, match="different"):
        bnm.stats_drift(s, t)


# ---------------------------------------------------------------------------------------------------------- gap
def test_train_eval_gap_against_hand_formula_and_leaves_model_untouched():
    bn = nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.running_mean.copy_(torch.linspace(-1, 1, 5))
        bn.running_var.copy_(torch.linspace(0.5, 2, 5))
        bn.weight.copy_(torch.linspace(0.5, 1.5, 5))
        bn.bias.copy_(torch.linspace(-0.2, 0.2, 5))
    m = nn.Sequential(bn).eval()
    x = shifted(40, shift=1.0, scale=2.0)[:, :5]
    snap = bnm.bn_state(m)
    row = bnm.train_eval_gap(m, x)[0]
    bm, bv = x.mean(0), x.var(0, unbiased=False)
    train_out = (x - bm) / torch.sqrt(bv + bn.eps) * bn.weight + bn.bias
    eval_out = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    want = float((train_out - eval_out).detach().norm() / eval_out.detach().norm())
    assert row["gap_isolated"] == pytest.approx(want, rel=1e-4)
    assert row["gap_cumulative"] == pytest.approx(want, rel=1e-4)  # one layer: both views agree
    assert row["mean_mismatch"] == pytest.approx(
        float(((bm - bn.running_mean).abs() / torch.sqrt(bn.running_var + bn.eps)).mean()), rel=1e-4)
    assert not m.training and all(torch.equal(v, snap[k]) for k, v in bnm.bn_state(m).items())


def test_train_eval_gap_is_zero_when_running_stats_match_the_batch():
    bn = nn.BatchNorm1d(4)
    x = shifted(50)[:, :4]
    with torch.no_grad():
        bn.running_mean.copy_(x.mean(0))
        bn.running_var.copy_(x.var(0, unbiased=False))
    row = bnm.train_eval_gap(nn.Sequential(bn), x)[0]
    assert row["gap_isolated"] < 1e-5 and row["var_ratio"] == pytest.approx(1.0, abs=1e-4)


def test_train_eval_gap_is_not_fooled_by_an_inplace_relu():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(inplace=True), nn.Linear(5, 2))
    x = shifted(50)
    with torch.no_grad():
        h = m[0](x)
        m[1].running_mean.copy_(h.mean(0))
        m[1].running_var.copy_(h.var(0, unbiased=False))
    row = bnm.train_eval_gap(m, x)[0]
    assert row["gap_isolated"] < 1e-5 and row["gap_cumulative"] < 1e-5


def test_train_eval_gap_grows_through_depth_and_rejects_bn_free_models():
    m = warm(tiny())
    rows = bnm.train_eval_gap(m.train(), shifted(64, shift=3.0))
    assert [r["name"] for r in rows] == ["1", "4"]
    assert all(r["gap_isolated"] > 0.1 for r in rows)
    assert m.training  # mode restored
    with pytest.raises(ValueError, match="no BatchNorm"):
        bnm.train_eval_gap(nn.Linear(3, 3), torch.zeros(2, 3))


# ---------------------------------------------------------------------------------------------------------- regimes
def test_old_keras_regime_uses_batch_stats_and_never_updates():
    m = warm(tiny())
    x = shifted()
    snap = bnm.bn_state(m)
    with bnm.set_bn_regime(m, "old_keras") as handle:
        assert "old_keras" in repr(handle)
        m.train()
        out = m[1](m[0](x))
        h = m[0](x)
        hand = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5) * m[1].weight + m[1].bias
        torch.testing.assert_close(out, hand)
        m(x)
        assert all(torch.equal(v, snap[k]) for k, v in bnm.bn_state(m).items())
        assert not any(p.requires_grad for _, layer in bnm.bn_layers(m) for p in layer.parameters())
        m.eval()  # at inference: the stale running statistics
        torch.testing.assert_close(m[1](h), F.batch_norm(h, snap["1.running_mean"], snap["1.running_var"],
                                                         m[1].weight, m[1].bias, training=False))
    assert all(layer.track_running_stats for _, layer in bnm.bn_layers(m))
    assert all(p.requires_grad for p in m.parameters())


def test_frozen_regime_survives_model_train_and_fit():
    from transferlab.train import fit

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(4, 2))
    g = torch.Generator().manual_seed(0)
    data = TensorLoader(torch.randint(0, 255, (16, 3, 8, 8), dtype=torch.uint8, generator=g),
                        torch.randint(0, 2, (16,), generator=g), 8, shuffle=True)
    snap = bnm.bn_state(m)
    handle = bnm.set_bn_regime(m, "frozen")
    m.train()
    assert bnm.bn_in_train_mode(m) == [] and m[0].training
    fit(m, data, epochs=1, progress=False, seed=0, device="cpu")  # fit calls model.train() every epoch
    assert all(torch.equal(v, snap[k]) for k, v in bnm.bn_state(m).items())
    assert not m[1].weight.requires_grad
    copied = copy.deepcopy(m)
    assert bnm.bn_in_train_mode(copied.train()) == []
    handle.restore()
    assert bnm.bn_in_train_mode(m.train()) == ["1"] and m[1].weight.requires_grad
    assert "train" not in vars(m[1])


def test_train_regime_and_bad_regime():
    m = tiny()
    with bnm.set_bn_regime(m, "train"):
        assert any(r["changed"] for r in bnm.forward_changes_stats(m.train(), shifted()))
    with pytest.raises(ValueError, match="old_keras"):
        bnm.set_bn_regime(m, "keras2")


def test_check_bn_frozen():
    m = warm(tiny())
    assert not bnm.check_bn_frozen(m, shifted())
    with bnm.set_bn_regime(m, "frozen"):
        assert bnm.check_bn_frozen(m, shifted())
    with bnm.set_bn_regime(m, "old_keras"):
        assert not bnm.check_bn_frozen(m, shifted())  # stats fixed, but batch statistics are used
    # an independent solution (a forward pre-hook that puts each BN layer in eval mode) passes too
    def to_eval(mod, inputs):
        mod.eval()  # returns None: the inputs pass through unchanged

    hooks = [layer.register_forward_pre_hook(to_eval) for _, layer in bnm.bn_layers(m)]
    assert bnm.check_bn_frozen(m, shifted())
    for h in hooks:
        h.remove()
    with pytest.raises(ValueError, match="no BatchNorm"):
        bnm.check_bn_frozen(nn.Linear(2, 2), torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------ eval helpers
def test_evaluate_in_mode_restores_state_and_sees_the_mismatch():
    m = warm(tiny())
    x = shifted(64, shift=3.0)
    y = m.eval()(x).argmax(1)  # labels = eval-mode predictions: eval accuracy is 1 by construction
    snap = bnm.bn_state(m)
    ev = bnm.evaluate_in_mode(m, [(x, y)], mode="eval")
    tr = bnm.evaluate_in_mode(m, [(x, y)], mode="train")
    assert ev["acc"] == 1.0 and tr["acc"] < 1.0 and ev["n"] == 64
    assert not m.training and all(torch.equal(v, snap[k]) for k, v in bnm.bn_state(m).items())
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        bnm.evaluate_in_mode(m, [(x, y)], mode="inference")
    with pytest.raises(ValueError, match="no batches"):
        bnm.evaluate_in_mode(m, [], mode="eval")


def test_output_spread_dropout_variance_and_seeding():
    m = warm(tiny(dropout=0.5)).eval()
    x = shifted(10)
    assert bnm.output_spread(m, x, passes=4).std(0).max() == 0
    rng = torch.random.get_rng_state()
    with bnm.set_bn_regime(m, "frozen"):  # dropout on, BN frozen: only dropout adds variance
        m.train()
        a = bnm.output_spread(m, x, passes=6, seed=3)
        b = bnm.output_spread(m, x, passes=6, seed=3)
        c = bnm.output_spread(m, x, passes=6, seed=4)
    assert torch.equal(rng, torch.random.get_rng_state())
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std(0).mean() > 0.01
    # independent: the mean over many passes approaches the eval output (inverted dropout is unbiased)
    many = bnm.output_spread(m.train(), x, passes=1, seed=0)
    assert many.shape == (1, 10, 3)
    with pytest.raises(ValueError, match="passes"):
        bnm.output_spread(m, x, passes=0)


# ---------------------------------------------------------------------------------------------------------- preprocess
def test_preprocess_world_matches_the_kit_loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=g)
    xb, _ = next(iter(TensorLoader(x, torch.zeros(4, dtype=torch.long), 4)))
    torch.testing.assert_close(bnm.preprocess(x, "world"), xb)
    torch.testing.assert_close(bnm.preprocess(x, "unit"), x.float() / 255)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_matches_keras_preprocess_input(mode):
    keras = bnm.import_keras(required=True)
    from keras.applications import imagenet_utils

    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8, generator=g)
    ours = bnm.preprocess(x, mode).permute(0, 2, 3, 1).numpy()
    theirs = imagenet_utils.preprocess_input(x.permute(0, 2, 3, 1).numpy().astype("float32"),
                                             data_format="channels_last", mode=mode)
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=1e-5, atol=1e-4)


def test_preprocess_rejects_bad_input():
    x = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="'imagenet'"):
        bnm.preprocess(x, "imagenet")
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        bnm.preprocess(torch.zeros(1, 2, 2, 3), "tf")
    with pytest.raises(ValueError, match="only apply"):
        bnm.preprocess(x, "tf", mean=(0.5, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------------------- keras
def test_keras_bn_trainable_false_runs_in_inference_mode():
    keras = bnm.import_keras(required=True)
    layer = keras.layers.BatchNormalization()
    x = shifted(16).numpy().astype("float32")
    layer.build(x.shape)
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, training=True)), inference, atol=1e-3)
    layer.trainable = False
    moving = keras.ops.convert_to_numpy(layer.moving_mean).copy()
    inference = keras.ops.convert_to_numpy(layer(x, training=False))
    frozen = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(frozen, inference, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.moving_mean), moving)  # nothing moved
    layer.trainable = True
    layer(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0.99 * moving + 0.01 * x.mean(0),
                               rtol=1e-5, atol=1e-6)  # trainable again: Keras's update rule


def test_torch_bn_ported_to_keras_agrees_number_by_number():
    keras = bnm.import_keras(required=True)
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        for _ in range(3):
            bn(torch.randn(8, 4, 5, 5) * 2 + 1)
    bn.eval()
    layer = bnm.torch_bn_to_keras(bn, keras=keras)
    assert layer.momentum == pytest.approx(0.9) and layer.epsilon == pytest.approx(1e-5)
    x = torch.randn(6, 4, 5, 5) * 2 + 1
    theirs = keras.ops.convert_to_numpy(layer(x.permute(0, 2, 3, 1).numpy(), training=False))
    ours = bn(x).detach().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    # training mode: both normalise with the biased batch variance; the running variance update differs
    bn.train()
    before_var = bn.running_var.clone()
    ours_train = bn(x).detach().permute(0, 2, 3, 1).numpy()
    theirs_train = keras.ops.convert_to_numpy(layer(x.permute(0, 2, 3, 1).numpy(), training=True))
    np.testing.assert_allclose(theirs_train, ours_train, atol=1e-4)
    n = x.numel() // 4
    biased = x.permute(1, 0, 2, 3).reshape(4, -1).var(1, unbiased=False)
    torch.testing.assert_close(bn.running_var, 0.9 * before_var + 0.1 * biased * n / (n - 1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                               (0.9 * before_var + 0.1 * biased).numpy(), rtol=1e-4)


def test_torch_bn_to_keras_rejects_bad_layers():
    keras = bnm.import_keras(required=True)
    with pytest.raises(TypeError, match="BatchNorm"):
        bnm.torch_bn_to_keras(nn.Linear(2, 2), keras=keras)
    with pytest.raises(ValueError, match="cumulative"):
        bnm.torch_bn_to_keras(nn.BatchNorm1d(2, momentum=None), keras=keras)


def test_bn_defaults_and_momentum_check(capsys):
    rows = {r["setting"]: r for r in bnm.bn_defaults()}
    assert rows["momentum"]["pytorch"] == 0.1 and rows["momentum"]["keras"] == 0.99
    assert rows["epsilon"]["pytorch"] == 1e-5 and rows["epsilon"]["keras"] == 1e-3
    assert bnm.check_keras_momentum(0.01) and not bnm.check_keras_momentum(0.99)
    assert "Not yet" in bnm.check_keras_momentum(0.99).message  # a CheckResult says it; nothing is printed
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="number"):
        bnm.check_keras_momentum("0.01")


def test_import_keras_never_writes_the_users_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}
    env.update(HOME=str(tmp_path / "home"), TRANSFERLAB_HOME=str(tmp_path / "kit"))
    code = ("from transferlab.batchnorm import keras_status; k, why = keras_status(); "
            "print(why, k.backend.backend())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["ok", "torch"]
    assert not (tmp_path / "home" / ".keras").exists()
    assert (tmp_path / "kit" / "keras").is_dir()


def test_import_keras_explains_a_wrong_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", KERAS_HOME=str(tmp_path), TRANSFERLAB_HOME=str(tmp_path))
    code = ("from transferlab.batchnorm import keras_status, import_keras; k, why = keras_status(); print(why)\n"
            "try:\n    import_keras(required=True)\nexcept ImportError as e:\n    print('raised', e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch" in out.stdout and "raised" in out.stdout


# ---------------------------------------------------------------------------------------------------------- reliability
def test_preprocess_takes_zero_means_numpy_numbers_and_rejects_bad_std():
    x = torch.full((1, 3, 2, 2), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    out = bnm.preprocess(x, "world", mean=0.0, std=1.0)  # 0.0 is a mean like any other, not "use the default"
    torch.testing.assert_close(out, torch.full_like(out, 0.2))
    out = bnm.preprocess(x, "world", mean=np.float32(0.1), std=np.array([0.5, 0.5, 0.25]))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.2, 0.2, 0.4]))
    assert bnm.preprocess(x, "world", mean=(np.float64(0.2),) * 3).abs().max() < 1e-6  # the world's std, mean 0.2
    for bad in (0, -1.0, (0.2, 0.0, 0.2)):
        with pytest.raises(ValueError, match=r"std must be a number > 0, got (0|-1\.0|0\.0)"):
            bnm.preprocess(x, "world", std=bad)
    with pytest.raises(ValueError, match=r"one per RGB channel \(3\), got 2"):
        bnm.preprocess(x, "world", mean=(0.1, 0.2))
    with pytest.raises(ValueError, match="mean must be a number"):
        bnm.preprocess(x, "world", mean="0.1")


def test_evaluate_in_mode_is_train_evaluate_with_the_old_numbers():
    from transferlab.train import evaluate

    m = warm(tiny(dropout=0.0))
    data = [(shifted(32, seed=s, shift=3.0), torch.arange(32) % 3) for s in (1, 2)]
    for mode in ("train", "eval"):
        ours = bnm.evaluate_in_mode(m, data, mode=mode)
        assert ours == evaluate(m, data, amp=False, mode=mode)
        # independent: the loop evaluate_in_mode used to be, on a copy
        ref = copy.deepcopy(m).train(mode == "train")
        loss = correct = 0.0
        with torch.no_grad():
            for x, y in data:
                out = ref(x)
                loss += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()
        assert ours["loss"] == pytest.approx(loss / 64, rel=1e-6) and ours["acc"] == correct / 64


def test_checks_return_check_results():
    from transferlab.checks import CheckResult

    m = warm(tiny())
    wrong = bnm.check_bn_frozen(m, shifted())
    assert isinstance(wrong, CheckResult) and not wrong and "2 BN layer(s) normalised with batch" in repr(wrong)
    assert "\n" not in repr(wrong)
    none = bnm.check_keras_momentum(None)
    assert isinstance(none, CheckResult) and not none and "no answer yet" in none.message
    assert bnm.check_keras_momentum(np.float64(0.01)) and bnm.check_keras_momentum(0.1, keras_momentum=np.float32(0.9))
    with pytest.raises(ValueError, match=r"keras_momentum must be a number >= 0 and <= 1, got 1\.5"):
        bnm.check_keras_momentum(0.01, keras_momentum=1.5)


def test_numpy_numbers_are_numbers():
    m = warm(tiny(dropout=0.5))
    a = bnm.output_spread(m.train(), shifted(4), passes=np.int64(3), seed=np.int32(1))
    assert a.shape == (3, 4, 3) and torch.equal(a, bnm.output_spread(m, shifted(4), passes=3, seed=1))
    with pytest.raises(ValueError, match=r"passes must be an integer >= 1, got 2\.5"):
        bnm.output_spread(m, shifted(4), passes=2.5)


def test_train_eval_gap_sets_policies_aside_and_gives_them_back():
    m = warm(tiny())
    plain = bnm.train_eval_gap(m, shifted(64, shift=3.0))
    with bnm.set_bn_regime(m, "frozen"):
        m.train()
        assert bnm.train_eval_gap(m, shifted(64, shift=3.0)) == plain  # the statistics' mismatch, not the policy's
        assert bnm.bn_in_train_mode(m) == [] and all(r["policy"] == "frozen" for r in bnm.mode_report(m)
                                                     if r["kind"].startswith("BatchNorm"))


def test_keras_home_comes_from_the_kit_paths_and_old_names_still_import():
    from transferlab import _paths, keras_bridge, preprocessing
    from transferlab.bn_stats import bn_state

    assert keras_bridge.home is _paths.home
    for name in keras_bridge.__all__:
        assert getattr(bnm, name) is getattr(keras_bridge, name)
    assert bnm.preprocess is preprocessing.preprocess and bnm.bn_state is bn_state
    assert bnm.IMAGENET_MEAN == preprocessing.IMAGENET_MEAN


# ---------------------------------------------------------------------------------------------- lesson 05's helpers
def test_map_images_applies_to_every_split_and_keeps_labels_stats_and_seal():
    from transferlab.tasks import SealedSplitError
    from transferlab.world import target_task

    t = target_task(2, n_test_per_class=1, n_val_per_class=1, size=16)
    shot = bnm.map_images(t, lambda x: (x.float() * 0.5 + 100).round().clamp(0, 255).to(torch.uint8), "new camera")
    for split in ("train", "val"):
        x0, y0 = bnm.split_images(t, split)
        x1, y1 = bnm.split_images(shot, split)
        assert torch.equal(y0, y1) and torch.equal(x1, (x0.float() * 0.5 + 100).round().clamp(0, 255).to(torch.uint8))
    assert shot.sealed and (shot.mean, shot.std, shot.classes) == (t.mean, t.std, t.classes)
    assert shot.name.endswith("[new camera]") and shot.info["shift"] == "new camera"
    with pytest.raises(SealedSplitError):
        bnm.split_images(shot, "test")
    x_te, y_te = bnm.split_images(shot, "test", final=True)
    assert len(x_te) == len(y_te) == 10 and torch.equal(y_te, t.labels("test", final=True))
    with pytest.raises(ValueError, match="uint8"):
        bnm.map_images(t, lambda x: x.float(), "float")
    unsealed = target_task(2, n_test_per_class=1, size=16)   # no validation split: the test split is open
    assert bnm.map_images(unsealed, lambda x: x, "same").splits == ("train", "test")


def test_check_bn_freezer_judges_the_learners_function_on_a_copy():
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    x = torch.randn(8, 4)

    def pin(mod, args):
        mod.eval()

    def pre_hook(model):
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.register_forward_pre_hook(pin)

    def hook_returning_the_module(model):   # a pre-hook's return value replaces the inputs
        model[1].register_forward_pre_hook(lambda mod, args: mod.eval())

    assert bnm.check_bn_freezer(pre_hook, m, x)
    wrong = bnm.check_bn_freezer(hook_returning_the_module, m, x)
    assert not wrong and "must return None" in wrong.message
    assert not bnm.check_bn_freezer(lambda model: model.eval(), m, x)   # model.train() undoes it
    assert not bnm.check_bn_freezer(lambda model: model.requires_grad_(False), m, x)
    assert "raised ZeroDivisionError" in bnm.check_bn_freezer(lambda model: 1 / 0, m, x).message
    assert "no answer yet" in bnm.check_bn_freezer(None, m, x).message
    assert not m[1]._forward_pre_hooks  # the model itself was not touched


@pytest.mark.parametrize("name, expected", [("inception_v3.tf_in1k", "tf"), ("resnet50.a1_in1k", "torch"),
                                            ("vit_base_patch16_clip_224.openai", "none")])
def test_check_preprocess_mode_reads_the_checkpoint_config(name, expected):
    assert bnm.check_preprocess_mode(expected, name)
    for other in {"caffe", "tf", "torch", "none"} - {expected}:
        wrong = bnm.check_preprocess_mode(other, name)
        assert not wrong and "pretrained_cfg" in wrong.message
    assert bnm.check_preprocess_mode(f" {expected.upper()} ", name)
    assert "no answer yet" in bnm.check_preprocess_mode(None, name).message
    assert "is not one of" in bnm.check_preprocess_mode("imagenet", name).message
