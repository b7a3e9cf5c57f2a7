"""Random directions, evaluation along rays (weights restored, t=0 is the model itself), width read-off."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from transferlab.landscape import (
    RAY_COLUMNS,
    evaluate_line,
    evaluate_rays,
    flat_weights,
    l2_term,
    materialize,
    random_directions,
    ray_width,
    width_summary,
)
from transferlab.models import KitNet
from transferlab.train import evaluate
from transferlab.world import target_task


@pytest.fixture(scope="module")
def task():
    return target_task(4, n_test_per_class=3, size=16, seed=0)


@pytest.fixture
def model(task):
    torch.manual_seed(0)
    m = KitNet(10, widths=(8, 16), stem_width=8)
    update_bn(task.loader("train", 20), m)  # non-trivial BN statistics
    return m


def test_sphere_directions_have_unit_norm_and_are_seeded(model):
    d = random_directions(model, 5, seed=3)
    assert d.shape == (5, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(d.norm(dim=1), torch.ones(5))
    assert torch.equal(d, random_directions(model, 5, seed=3))
    assert not torch.allclose(d, random_directions(model, 5, seed=4))


def test_sphere_directions_are_isotropic():
    d = random_directions(nn.Linear(3, 2), 4000, seed=0).double()  # P = 8
    assert d.mean(0).abs().max() < 0.03  # no preferred direction
    torch.testing.assert_close((d**2).mean(0), torch.full((8,), 1 / 8, dtype=torch.float64), atol=0.01, rtol=0)


def test_filter_normalised_directions_match_filter_norms(model):
    d = random_directions(model, 2, seed=0, normalization="filter")
    offset = 0
    for p in model.parameters():
        k = p.numel()
        part = d[:, offset:offset + k].reshape(2, p.shape[0], -1)
        if p.dim() > 1:
            expect = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(part.norm(dim=2), expect.expand(2, -1), rtol=1e-4, atol=1e-6)
        else:  # BN weights/biases and linear biases are not perturbed
            assert torch.count_nonzero(part) == 0
        offset += k
    with pytest.raises(ValueError, match="normalization"):
        random_directions(model, 2, seed=0, normalization="layer")
    with pytest.raises(ValueError, match="n must be"):
        random_directions(model, 0, seed=0)


def test_weights_buffers_and_mode_restored_exactly(model, task):
    model.train()
    w = [p.detach().clone() for p in model.parameters()]
    b = {k: v.clone() for k, v in model.named_buffers()}
    d = random_directions(model, 3, seed=1)
    df = evaluate_rays(model, d, [0.0, 1.5, 7.0], train=task.loader("train"), test=task.loader("test"),
                       bn=task.loader("train", 10), progress=False)
    assert list(df.columns) == list(RAY_COLUMNS) and len(df) == 9
    assert model.training
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), w, strict=True))
    assert all(torch.equal(v, b[k]) for k, v in model.named_buffers())
    np.testing.assert_allclose(df["distance"], np.abs(df["t"]), rtol=1e-5)


def test_ray_of_length_zero_reproduces_the_models_own_loss(model, task):
    d = random_directions(model, 2, seed=0)
    own = evaluate(model, task.loader("test"), device="cpu")
    df = evaluate_rays(model, d, [0.0], train=task.loader("train"), test=task.loader("test"), bn=False,
                       progress=False)
    np.testing.assert_allclose(df["test_loss"], own["loss"], rtol=1e-5)
    np.testing.assert_allclose(df["test_error"], 1 - own["acc"])
    # with BN recomputation, t = 0 is the model with its statistics recomputed on the same batches
    bn = materialize(task.loader("train", 10, shuffle=False))
    ref = copy.deepcopy(model)
    update_bn(bn, ref)
    own_bn = evaluate(ref, task.loader("test"), device="cpu")
    df = evaluate_rays(model, d, [0.0], train=task.loader("train"), test=task.loader("test"), bn=bn, progress=False)
    np.testing.assert_allclose(df["test_loss"], own_bn["loss"], rtol=1e-5)


def test_train_loss_carries_the_l2_term(model, task):
    d = random_directions(model, 1, seed=2)
    wd, t = 1e-2, 3.0
    df = evaluate_rays(model, d, [t], train=task.loader("train"), test=task.loader("test"), bn=False,
                       weight_decay=wd, progress=False)
    w = flat_weights(model).double() + t * d[0].double()
    np.testing.assert_allclose(df["train_loss"] - df["train_ce"], 0.5 * wd * float(w @ w), rtol=1e-5)
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
        lin.bias.fill_(1.0)
    assert l2_term(lin, 0.1) == pytest.approx(0.5 * 0.1 * 26.0)


def test_far_along_a_ray_the_error_grows(model, task):
    d = random_directions(model, 2, seed=0)
    df = evaluate_rays(model, d, [0.0, 200.0], train=task.loader("train"), test=task.loader("test"),
                       bn=task.loader("train"), progress=False)
    far = df[df.t == 200.0]
    assert (far["train_loss"].to_numpy() > df[df.t == 0.0]["train_loss"].to_numpy()).all()


def test_line_between_two_models(model, task):
    torch.manual_seed(1)
    other = KitNet(10, widths=(8, 16), stem_width=8)
    w_other = flat_weights(other)
    kw = dict(train=task.loader("train"), test=task.loader("test"), bn=False, progress=False)
    df = evaluate_line(model, other, [0.0, 1.0], **kw)
    assert (df["ray"] == -1).all()
    np.testing.assert_allclose(df["distance"].iloc[1], float((w_other - flat_weights(model)).norm()), rtol=1e-5)
    # t = 1 is the other model's weights (with model's BN buffers, since bn=False): compare with a copy
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p, q in zip(ref.parameters(), other.parameters(), strict=True):
            p.copy_(q)
    np.testing.assert_allclose(df["test_loss"].iloc[1], evaluate(ref, task.loader("test"), device="cpu")["loss"],
                               rtol=1e-5)
    assert torch.equal(flat_weights(other), w_other)


def test_bad_input_is_rejected(model, task):
    kw = dict(train=task.loader("train"), test=task.loader("test"), progress=False)
    with pytest.raises(ValueError, match="directions must be a tensor"):
        evaluate_rays(model, torch.zeros(2, 5), [0.0], bn=False, **kw)
    with pytest.raises(ValueError, match="BatchNorm"):
        evaluate_rays(model, random_directions(model, 1, seed=0), [0.0], **kw)
    with pytest.raises(ValueError, match="distances is empty"):
        evaluate_rays(model, random_directions(model, 1, seed=0), [], bn=False, **kw)


def test_ray_width_interpolates_and_flags_unreached():
    f = pd.DataFrame(dict(solution=["a"] * 3 + ["b"] * 3, ray=0, distance=[0.0, 1.0, 2.0] * 2,
                          test_error=[0.1, 0.15, 0.35, 0.1, 0.12, 0.15]))
    w = ray_width(f, rise=0.1)
    assert w.loc[w.solution == "a", "width"].item() == pytest.approx(1.25)
    assert np.isnan(w.loc[w.solution == "b", "width"].item()) and not w.loc[w.solution == "b", "reached"].item()
    assert ray_width(f, rise=None, threshold=0.14).loc[1, "width"] == pytest.approx(1 + 0.02 / 0.03)
    s = width_summary(w)
    assert s["a"]["mean"] == pytest.approx(1.25) and s["b"]["unreached"] == 1
    with pytest.raises(ValueError, match="exactly one"):
        ray_width(f, rise=0.1, threshold=0.2)
    with pytest.raises(KeyError, match="train_los"):
        ray_width(f, metric="train_los")
    with pytest.raises(ValueError, match="distance 0"):
        ray_width(f.assign(distance=f.distance + 1))


def test_sphere_direction_exercise_check():
    from transferlab.landscape import check_sphere_direction

    def gaussian(n, seed):
        g = torch.randn(n, generator=torch.Generator().manual_seed(seed))
        return g / g.norm()

    def cube(n, seed):
        g = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        return g / g.norm()

    assert check_sphere_direction(gaussian)
    not_uniform = check_sphere_direction(cube)
    assert not not_uniform and "not uniform" in not_uniform.message
    unnormed = check_sphere_direction(lambda n, seed: torch.randn(n, generator=torch.Generator().manual_seed(seed)))
    assert not unnormed and "norm" in unnormed.message
    unseeded = check_sphere_direction(lambda n, seed: (lambda g: g / g.norm())(torch.randn(n)))
    assert not unseeded and "same seed" in unseeded.message


def test_landscape_rejects_nan_and_meaningless_widths():
    import pandas as pd

    from transferlab.landscape import evaluate_rays, random_directions, ray_width

    m = KitNet(10, widths=(8,))
    task = target_task(2, n_test_per_class=1, size=16)
    d = random_directions(m, 1, seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate_rays(m, d * float("nan"), [0.0], train=task.loader("train"), test=task.loader("test"), bn=False,
                      progress=False)
    with pytest.raises(ValueError, match="finite"):
        evaluate_rays(m, d, [0.0, float("nan")], train=task.loader("train"), test=task.loader("test"), bn=False,
                      progress=False)
    with pytest.raises(ValueError, match="eval_batch must be an integer >= 1"):
        evaluate_rays(m, d, [0.0], train=task.loader("train"), test=task.loader("test"), bn=False, eval_batch=0,
                      progress=False)
    f = pd.DataFrame(dict(solution="a", ray=0, distance=[0.0, 1.0], test_error=[0.1, 0.3]))
    with pytest.raises(ValueError, match="rise"):
        ray_width(f, rise=-0.1)
