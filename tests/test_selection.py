"""transferlab.selection: LogME against independent formulations of the evidence, and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, weightedtau

from transferlab.selection import hscore, leep, logme, logme_fit, logme_naive, nce, rank_models

# (N, D): N > D, N = D, N < D, N << D
REGIMES = [(120, 12), (40, 40), (30, 60), (12, 100)]


def _data(n, d, c=3, signal=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    y = y[torch.randperm(n, generator=g)]
    f = torch.randn(n, d, generator=g, dtype=torch.float64)
    f[:, :c] += signal * torch.nn.functional.one_hot(y, c)
    return f, y


def _evidence_direct(f, y, alpha, beta):
    """The evidence formula with the D x D matrix A = alpha I + beta F^T F (NumPy, no decomposition)."""
    f, y = f.numpy(), y.numpy()
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    sign, logdet = np.linalg.slogdet(a)
    assert sign > 0
    ev = (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
          - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - logdet / 2)
    return ev / n


def _evidence_marginal(f, y, alpha, beta):
    """The same evidence as a Gaussian density: y ~ N(0, I / beta + F F^T / alpha) (SciPy)."""
    f, y = f.numpy(), y.numpy()
    cov = np.eye(len(y)) / beta + f @ f.T / alpha
    return multivariate_normal(np.zeros(len(y)), cov).logpdf(y) / len(y)


def _onehot(y):
    return torch.nn.functional.one_hot(y).double()


@pytest.mark.parametrize("n,d", REGIMES)
def test_evidence_matches_direct_formula_in_both_regimes(n, d):
    f, y = _data(n, d)
    r = logme_fit(f, y)
    oh = _onehot(y)
    for c in range(oh.shape[1]):
        a, b = r.alpha[c].item(), r.beta[c].item()
        assert r.evidence[c].item() == pytest.approx(_evidence_direct(f, oh[:, c], a, b), abs=1e-9)
        assert r.evidence[c].item() == pytest.approx(_evidence_marginal(f, oh[:, c], a, b), abs=1e-9)
    assert logme(f, y) == pytest.approx(r.evidence.mean().item(), abs=1e-12)


@pytest.mark.parametrize("n,d", REGIMES)
def test_fixed_point_is_a_maximum_of_the_evidence(n, d):
    f, y = _data(n, d)
    r = logme_fit(f, y)
    oh = _onehot(y)
    for c in range(oh.shape[1]):
        a, b = r.alpha[c].item(), r.beta[c].item()
        best = _evidence_direct(f, oh[:, c], a, b)
        for fa, fb in ((1.01, 1), (0.99, 1), (1, 1.01), (1, 0.99), (1.3, 1), (1, 0.7)):
            assert _evidence_direct(f, oh[:, c], a * fa, b * fb) <= best + 1e-12, (c, fa, fb)


@pytest.mark.parametrize("n,d", REGIMES)
def test_fixed_point_equations_hold_at_the_solution(n, d):
    # MacKay's update applied once more leaves alpha and beta where they are (at an interior optimum)
    f, y = _data(n, d, c=4)
    r = logme_fit(f, y)
    interior = (~r.at_bound).nonzero(as_tuple=True)[0].tolist()
    assert len(interior) >= 1, r.at_bound
    oh = _onehot(y).numpy()
    fn = f.numpy()
    for c in interior:
        a, b = r.alpha[c].item(), r.beta[c].item()
        big_a = a * np.eye(d) + b * fn.T @ fn
        m = b * np.linalg.solve(big_a, fn.T @ oh[:, c])
        gamma = np.trace(np.linalg.solve(big_a, b * fn.T @ fn))  # sum of b s / (a + b s), no cancellation
        assert gamma / (m @ m) == pytest.approx(a, rel=1e-6)
        assert (n - gamma) / np.sum((fn @ m - oh[:, c]) ** 2) == pytest.approx(b, rel=1e-6)


def test_n_less_than_d_is_not_the_reference_codes_overstated_score():
    # the reference's default path drops (D - N) log(alpha) / 2 from log|A|: its score exceeds the true one
    n, d = 20, 80
    f, y = _data(n, d)
    r = logme_fit(f, y)
    a, b = r.alpha[0].item(), r.beta[0].item()
    sv = np.linalg.svd(f.numpy(), compute_uv=False) ** 2
    overstated = r.evidence[0].item() + (d - n) * math.log(a) / 2 / n  # adds back what the reference omits
    assert r.evidence[0].item() == pytest.approx(_evidence_marginal(f, _onehot(y)[:, 0], a, b), abs=1e-9)
    assert len(sv) == n and abs(overstated - r.evidence[0].item()) > 1e-3


def test_naive_agrees_with_fast_in_both_regimes():
    for n, d in [(150, 10), (20, 35)]:
        f, y = _data(n, d, signal=2.0)
        assert logme_naive(f, y) == pytest.approx(logme(f, y), abs=1e-8)


def test_regression_targets_1d_and_2d():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(80, 6, generator=g, dtype=torch.float64)
    t = torch.stack([f[:, 0] + 0.3 * torch.randn(80, generator=g, dtype=torch.float64),
                     f[:, 1] - f[:, 2] + 0.1 * torch.randn(80, generator=g, dtype=torch.float64)], 1)
    r = logme_fit(f, t, regression=True)
    for c in range(2):
        a, b = r.alpha[c].item(), r.beta[c].item()
        assert r.evidence[c].item() == pytest.approx(_evidence_marginal(f, t[:, c], a, b), abs=1e-9)
    assert logme(f, t[:, 0], regression=True) == pytest.approx(r.evidence[0].item(), abs=1e-12)
    assert logme_naive(f, t, regression=True) == pytest.approx(r.score, abs=1e-8)


def test_better_features_score_higher_and_degradation_is_monotone():
    f, y = _data(400, 16, c=4, signal=3.0)
    g = torch.Generator().manual_seed(5)
    scores = [logme(f + s * torch.randn(f.shape, generator=g, dtype=f.dtype), y) for s in (0.0, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(scores[:-1], scores[1:], strict=True)), scores


def test_invariant_to_feature_scale_and_class_relabelling():
    f, y = _data(90, 10)
    base = logme(f, y)
    assert logme(1e3 * f, y) == pytest.approx(base, abs=1e-10)
    assert logme(f.float(), y) == pytest.approx(base, abs=1e-5)  # float32 input is computed in float64
    relabelled = torch.tensor([7, 3, 42])[y]  # non-contiguous labels, classes {3, 7, 42}
    assert logme(f, relabelled) == pytest.approx(base, abs=1e-12)
    assert logme(f.numpy(), relabelled.numpy()) == pytest.approx(base, abs=1e-12)


def test_missing_classes_are_not_scored():
    # labels {0, 2}: class 1 has no sample; the score averages over the two classes present only
    f, y = _data(60, 5, c=2)
    assert logme(f, y * 2) == pytest.approx(logme(f, y), abs=1e-12)
    assert len(logme_fit(f, y * 2).evidence) == 2


def test_boundary_optimum_is_finite_and_close_to_its_limit():
    # pure-noise features: for most classes the evidence is largest as alpha -> inf (all noise)
    g = torch.Generator().manual_seed(3)
    f = torch.randn(200, 30, generator=g, dtype=torch.float64)
    y = torch.randint(0, 6, (200,), generator=g)
    r = logme_fit(f, y)
    assert torch.isfinite(r.evidence).all()
    oh = _onehot(y)
    for c in range(6):
        yc = oh[:, c].numpy()
        noise_only = multivariate_normal(np.zeros(200), np.eye(200) * (yc @ yc) / 200).logpdf(yc) / 200
        assert r.evidence[c].item() >= noise_only - 1e-9  # never worse than the alpha -> inf limit


@pytest.mark.parametrize("bad,match", [
    (lambda f, y: (f[:, :, None], y), "2-D"),
    (lambda f, y: (f, y[:-1]), "disagree on N"),
    (lambda f, y: (f, y.double()), "integer class labels"),
    (lambda f, y: (f, torch.zeros_like(y)), "at least 2 distinct classes"),
    (lambda f, y: (f[:1], y[:1]), "N = 2"),
    (lambda f, y: (torch.where(f > 2, float("nan"), f), y), "NaN or inf"),
    (lambda f, y: (torch.where(f > 2, float("inf"), f), y), "NaN or inf"),
    (lambda f, y: (f, y[:, None]), "1-D"),
    (lambda f, y: ("features", y), "torch.Tensor or a NumPy array"),
])
def test_bad_input_raises_value_error(bad, match):
    f, y = _data(30, 4)
    args = bad(f, y)
    with pytest.raises(ValueError, match=match):
        logme(*args)


def test_bad_regression_targets():
    f, _ = _data(30, 4)
    with pytest.raises(ValueError, match=r"\[N\] or \[N, T\]"):
        logme(f, torch.zeros(30, 2, 2), regression=True)
    with pytest.raises(ValueError, match="NaN or inf"):
        logme(f, torch.full((30,), float("nan")), regression=True)
    with pytest.raises(ValueError, match="identically zero"):
        logme(f, torch.zeros(30), regression=True)


def test_leep_matches_a_loop_formulation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g, dtype=torch.float64)
    p = logits.softmax(1)
    y = torch.randint(0, 3, (50,), generator=g)
    joint = np.zeros((3, 4))
    for i in range(50):
        joint[y[i]] += p[i].numpy() / 50
    cond = joint / joint.sum(0)
    expect = np.mean([math.log(sum(cond[y[i], z] * p[i, z].item() for z in range(4))) for i in range(50)])
    assert leep(p, y) == pytest.approx(expect, abs=1e-12)
    assert leep(p, y + 10) == pytest.approx(expect, abs=1e-12)  # labels need not start at 0
    with pytest.raises(ValueError, match="sum to 1"):
        leep(logits, y)


def test_nce_is_minus_conditional_entropy():
    z = torch.tensor([0, 0, 0, 1, 1, 1])
    y = torch.tensor([0, 0, 1, 1, 1, 1])
    # H(Y|Z) = 1/2 * H(2/3, 1/3) + 1/2 * 0
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / 2
    assert nce(z, y) == pytest.approx(-h, abs=1e-12)
    assert nce(z, z) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="disagree on N"):
        nce(z, y[:-1])


def test_hscore_matches_definition_and_separation():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    f = torch.randn(300, 5, generator=g, dtype=torch.float64)
    f[:, 0] += 4 * y
    fc = (f - f.mean(0)).numpy()
    cov = fc.T @ fc / 300
    means = np.stack([fc[y.numpy() == c].mean(0) for c in range(3)])
    gmat = np.stack([means[c] for c in y.numpy()])
    expect = np.trace(np.linalg.pinv(cov) @ (gmat.T @ gmat / 300))
    assert hscore(f, y) == pytest.approx(expect, rel=1e-9)
    assert hscore(f, y) > hscore(torch.randn(300, 5, generator=g, dtype=torch.float64), y)


def test_rank_models_is_scipy_weighted_tau():
    scores = {"a": 0.1, "b": 0.5, "c": 0.3, "d": -1.0}
    truth = {"a": 0.7, "b": 0.9, "c": 0.6, "d": 0.5}
    names = sorted(scores)
    expect = weightedtau([scores[k] for k in names], [truth[k] for k in names]).statistic
    assert rank_models(scores, truth) == pytest.approx(expect)
    assert rank_models([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(KeyError, match="only in ground_truth"):
        rank_models({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})
    with pytest.raises(ValueError, match="equal length"):
        rank_models([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        rank_models([1, float("nan")], [1, 2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    for n, d in [(200, 30), (30, 200)]:
        f, y = _data(n, d)
        assert logme(f.cuda(), y.cuda()) == pytest.approx(logme(f, y), abs=1e-9)
        assert logme(f, y, device="cuda") == pytest.approx(logme(f, y), abs=1e-9)
        assert hscore(f.cuda(), y.cuda()) == pytest.approx(hscore(f, y), rel=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extreme_scales_regression_and_devices_match_cpu():
    f, y = _data(60, 8, signal=2.0)
    t = f[:, 0] - f[:, 1]
    for scale in (1e200, 1e-200):
        assert logme(scale * f, y, device="cuda") == pytest.approx(logme(f, y), abs=1e-9)
        assert hscore((scale * f).cuda(), y.cuda()) == pytest.approx(hscore(f, y), rel=1e-7)
        assert logme(f.cuda(), scale * t.cuda(), regression=True) == pytest.approx(
            logme(f, scale * t, regression=True), abs=1e-9)
    r = logme_fit(1e100 * f.cuda(), y.cuda())
    assert r.alpha.is_cuda and torch.allclose(r.alpha.cpu(), logme_fit(1e100 * f, y).alpha, rtol=1e-7)
    assert logme(f, y, device=torch.device("cuda:0")) == pytest.approx(logme(f, y), abs=1e-9)
    with pytest.raises(ValueError, match="does not exist"):
        logme(f, y, device=f"cuda:{torch.cuda.device_count()}")


def test_check_evidence_accepts_right_and_rejects_wrong_answers():
    from transferlab.selection import check_evidence

    def right(f, y, a, b):
        return _evidence_direct(f, y, a, b)

    def forgets_zero_eigenvalues(f, y, a, b):  # the reference code's N < D slip
        n, d = f.shape
        sv = np.linalg.svd(f.numpy(), compute_uv=False) ** 2
        return right(f, y, a, b) + (np.sum(np.log(a + b * np.concatenate([sv, np.zeros(d - len(sv))])))
                                    - np.sum(np.log(a + b * sv))) / 2 / n

    assert check_evidence(right)
    # check_evidence reports through a CheckResult now (it used to raise ValueError): same place named
    wrong = check_evidence(forgets_zero_eigenvalues)
    assert not wrong and "N=8, D=20" in wrong.message


# ----------------------------------------------------------------------------------------------------------
# Degenerate inputs: a clear ValueError or a correct finite number, never NaN
def _zeros(n, d):
    return torch.zeros(n, d, dtype=torch.float64)


@pytest.mark.parametrize("n,d", [(40, 5), (10, 50)])
@pytest.mark.parametrize("fn", [logme, logme_naive, lambda f, y, **kw: logme_fit(f, y, **kw).score])
def test_all_zero_features_raise_instead_of_nan(fn, n, d):
    y = torch.arange(n) % 3
    with pytest.raises(ValueError, match="zero in every entry.*expected"):
        fn(_zeros(n, d), y)
    with pytest.raises(ValueError, match="zero in every entry"):
        fn(_zeros(n, d), torch.randn(n, dtype=torch.float64), regression=True)


def test_constant_nonzero_features_are_a_bias_column():
    # LogME has no centring: constant features are one bias direction, a legitimate (if poor) model
    y = torch.arange(40) % 3
    const = torch.full((40, 5), 3.0, dtype=torch.float64)
    assert logme(const, y) == pytest.approx(logme(torch.ones(40, 1, dtype=torch.float64), y), abs=1e-12)
    assert math.isfinite(logme_naive(const, y))


def test_hscore_of_constant_features_raises():
    y = torch.arange(40) % 3
    for f in (_zeros(40, 5), torch.full((40, 5), 2.0, dtype=torch.float64)):
        with pytest.raises(ValueError, match="zero variance in every dimension.*expected"):
            hscore(f, y)


@pytest.mark.parametrize("scores,truth,which", [([1.0, 1.0, 1.0], [0.1, 0.2, 0.3], "scores"),
                                                ({"a": 0.5, "b": 0.7}, {"a": 0.9, "b": 0.9}, "ground_truth")])
def test_rank_models_with_a_constant_input_raises(scores, truth, which):
    with pytest.raises(ValueError, match=f"{which} are all equal.*expected"):
        rank_models(scores, truth)


def test_rank_models_rejects_what_is_not_numbers():
    with pytest.raises(ValueError, match="numbers"):
        rank_models({"a": "x", "b": "y"}, {"a": 0.1, "b": 0.2})
    with pytest.raises(ValueError, match="numbers"):
        rank_models([True, False], [0.1, 0.2])


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e-170, 2.0**-1000])
def test_scores_that_ignore_feature_scale_do_so_at_any_scale(scale):
    # LogME and H-score are invariant to rescaling the features; F^T F must not overflow or underflow
    f, y = _data(60, 8, signal=2.0)
    assert logme(scale * f, y) == pytest.approx(logme(f, y), abs=1e-10)
    assert logme(scale * f[:10], y[:10]) == pytest.approx(logme(f[:10], y[:10]), abs=1e-10)  # N < D
    assert logme_naive(scale * f, y) == pytest.approx(logme_naive(f, y), abs=1e-10)
    assert hscore(scale * f, y) == pytest.approx(hscore(f, y), rel=1e-9)


@pytest.mark.parametrize("scale", [1e100, 1e-100, 3.0])
def test_regression_targets_at_any_scale(scale):
    # y -> c y: the evidence per sample drops by log c (a density of y), alpha and beta scale by 1 / c^2
    g = torch.Generator().manual_seed(2)
    f = torch.randn(50, 4, generator=g, dtype=torch.float64)
    t = f[:, 0] - f[:, 1] + 0.5 * torch.randn(50, generator=g, dtype=torch.float64)
    base, scaled = logme_fit(f, t, regression=True), logme_fit(f, scale * t, regression=True)
    assert scaled.score == pytest.approx(base.score - math.log(scale), abs=1e-9)
    for got, want in ((scaled.beta, base.beta), (scaled.alpha, base.alpha)):  # in logs: scale^2 may overflow
        assert torch.log(got).item() == pytest.approx(torch.log(want).item() - 2 * math.log(scale), abs=1e-9)
    assert logme_naive(f, scale * t, regression=True) == pytest.approx(base.score - math.log(scale), abs=1e-8)
    # beyond float64's range for alpha and beta (1e200^2): the score is still right
    assert logme(f, 1e200 * t, regression=True) == pytest.approx(base.score - math.log(1e200), abs=1e-9)
    assert logme(f, 1e-200 * t, regression=True) == pytest.approx(base.score + math.log(1e200), abs=1e-9)


@pytest.mark.parametrize("scale", [1e100, 1e-100, 2.0**-300])
def test_alpha_follows_the_features_scale(scale):
    # F -> c F: the weights shrink by c, so alpha grows by c^2; beta, gamma and the evidence do not move
    f, y = _data(60, 8, signal=2.0)
    base, scaled = logme_fit(f, y), logme_fit(scale * f, y)
    assert torch.allclose(torch.log(scaled.alpha), torch.log(base.alpha) + 2 * math.log(scale), atol=1e-9)
    assert torch.allclose(scaled.beta, base.beta, rtol=1e-9) and torch.allclose(scaled.gamma, base.gamma, rtol=1e-9)


def test_features_that_fit_the_labels_exactly_give_a_finite_boundary_score():
    y = torch.arange(30) % 3
    r = logme_fit(_onehot(y), y)
    assert torch.isfinite(r.evidence).all() and bool(r.at_bound.all())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_score_rejects_non_finite_inputs(bad):
    f, y = _data(30, 4)
    f_bad = f.clone()
    f_bad[3, 2] = bad
    for fn in (logme, logme_naive, hscore, lambda a, b: logme_fit(a, b).score):
        with pytest.raises(ValueError, match="NaN or inf.*expected finite"):
            fn(f_bad, y)
    t_bad = f[:, 0].clone()
    t_bad[5] = bad
    for fn in (logme, logme_naive):
        with pytest.raises(ValueError, match="NaN or inf.*expected finite"):
            fn(f, t_bad, regression=True)
    p = f.softmax(1)
    p[0, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        leep(p, y)
    with pytest.raises(ValueError, match="finite"):
        rank_models([1.0, bad, 2.0], [1.0, 2.0, 3.0])


def test_degenerate_inputs_never_give_nan():
    # every public score on small and awkward inputs: either a clear ValueError or a finite number
    g = torch.Generator().manual_seed(4)
    two = torch.tensor([0, 1])
    y6 = torch.tensor([0, 0, 1, 1, 2, 2])
    cases = {
        "N=2, D=1": lambda: logme(torch.tensor([[1.0], [2.0]]), two),
        "N=2, D=10": lambda: logme(torch.randn(2, 10, generator=g), two),
        "one sample per class": lambda: logme(torch.randn(3, 4, generator=g), torch.tensor([0, 1, 2])),
        "duplicated rows": lambda: logme(torch.ones(6, 3) * torch.randn(1, 3, generator=g), y6),
        "a single non-zero entry": lambda: logme(torch.zeros(6, 3).index_fill_(0, torch.tensor([0]), 1.0), y6),
        "constant regression target": lambda: logme(torch.randn(6, 3, generator=g), torch.ones(6), regression=True),
        "hscore N=2": lambda: hscore(torch.randn(2, 3, generator=g), two),
        "hscore collinear": lambda: hscore(torch.randn(6, 1, generator=g).repeat(1, 4), y6),
        "hscore N < D": lambda: hscore(torch.randn(6, 50, generator=g), y6),
        "leep source class never predicted": lambda: leep(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), two),
        "leep one source class": lambda: leep(torch.ones(6, 1), y6),
        "nce one source class": lambda: nce(torch.zeros(6, dtype=torch.long), y6),
        "rank with ties": lambda: rank_models([1.0, 1.0, 2.0], [0.5, 0.6, 0.7]),
    }
    for name, fn in cases.items():
        try:
            value = fn()
        except ValueError:
            continue
        assert math.isfinite(value), (name, value)


def test_hscore_stays_within_its_bound_on_ill_conditioned_features():
    g = torch.Generator().manual_seed(6)
    y = torch.arange(60) % 3
    base = torch.randn(60, 4, generator=g, dtype=torch.float64)
    for f in (torch.cat([base, base[:, :1] * (1 + 1e-13)], 1), torch.cat([base, 1e-9 * base[:, :2]], 1),
              torch.randn(20, 40, generator=g, dtype=torch.float64)):
        yy = y[:len(f)]
        assert -1e-9 <= hscore(f, yy) <= min(3 - 1, f.shape[1]) + 1e-9


def test_nce_and_leep_name_their_own_inputs_in_errors():
    with pytest.raises(ValueError, match="source_labels must be 1-D"):
        nce(torch.tensor(3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="source_labels and targets disagree on N"):
        nce(torch.tensor([0, 1, 0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="source_probs and targets disagree on N"):
        leep(torch.full((4, 2), 0.5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="source_labels must be integer class labels") as err:
        nce(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))
    assert "regression" not in str(err.value)  # NCE has no regression mode to suggest


# ----------------------------------------------------------------------------------------------------------
# Devices and numbers
@pytest.mark.parametrize("fn", [logme, logme_naive, hscore, lambda f, y, **kw: logme_fit(f, y, **kw).score])
def test_unknown_device_is_a_clear_value_error(fn):
    f, y = _data(30, 4)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        fn(f, y, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            fn(f, y, device="cuda")


def test_numpy_scalars_are_accepted_like_python_numbers():
    f, y = _data(60, 6)
    assert logme_fit(f, y, max_iter=np.int64(30), rtol=np.float32(1e-6)).score == pytest.approx(
        logme_fit(f, y, max_iter=30, rtol=float(np.float32(1e-6))).score, abs=0)
    assert logme_naive(f, y, max_iter=np.int32(500), rtol=np.float64(1e-9)) == pytest.approx(logme(f, y), abs=1e-8)
    assert logme(f, f[:, 0], regression=np.bool_(True)) == logme(f, f[:, 0], regression=True)
    assert rank_models({"a": np.float32(1), "b": np.int64(2)}, {"a": np.float64(0.1), "b": 0.2}) == 1.0
    from transferlab.selection import check_evidence

    assert not check_evidence(lambda *a: 0.0, seed=np.int64(3))


@pytest.mark.parametrize("kw,match", [(dict(max_iter=0), "max_iter"), (dict(max_iter=2.5), "max_iter"),
                                      (dict(rtol=0.0), "rtol"), (dict(rtol=float("nan")), "rtol"),
                                      (dict(regression="no"), "regression")])
def test_bad_options_raise(kw, match):
    f, y = _data(30, 4)
    for fn in (logme_fit, logme_naive):
        if "regression" not in kw or fn is logme_fit:
            with pytest.raises(ValueError, match=match):
                fn(f, y, **kw)


# ----------------------------------------------------------------------------------------------------------
# Domain-agnostic: features in, a score out
def test_regression_logme_prefers_features_that_explain_the_target():
    g = torch.Generator().manual_seed(7)
    n = 200
    good = torch.randn(n, 10, generator=g, dtype=torch.float64)
    target = good @ torch.randn(10, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, generator=g,
                                                                                       dtype=torch.float64)
    bad = torch.randn(n, 10, generator=g, dtype=torch.float64)
    assert logme(good, target, regression=True) > logme(bad, target, regression=True) + 1.0
    both = torch.stack([target, -2 * target + 1], 1)  # [N, T]: several targets at once
    assert logme(good, both, regression=True) > logme(bad, both, regression=True) + 1.0
    assert logme(good[:8], target[:8], regression=True) > logme(bad[:8], target[:8], regression=True)  # N < D


def test_text_like_features_and_labels():
    # a sentence encoder's output: N < D, low precision, string class labels
    g = torch.Generator().manual_seed(8)
    labels = ["neg", "pos", "neutral"] * 10
    ids = torch.tensor(np.unique(labels, return_inverse=True)[1])
    emb = torch.randn(30, 768, generator=g) + 2 * torch.nn.functional.one_hot(ids, 768)
    expect = logme(emb, ids)
    assert logme(emb, labels) == pytest.approx(expect, abs=1e-12)
    assert logme(emb, np.array(labels)) == pytest.approx(expect, abs=1e-12)
    assert hscore(emb, labels) == pytest.approx(hscore(emb, ids), abs=1e-12)
    assert nce(np.array(["x", "y", "x"] * 10), labels) == pytest.approx(nce(torch.tensor([0, 1, 0] * 10), ids))
    assert math.isfinite(logme(emb.bfloat16(), ids))
    assert math.isfinite(logme(emb.numpy().astype(np.float16), ids.numpy()))
    probs = torch.randn(30, 50, generator=g).softmax(1)
    assert leep(probs.bfloat16(), labels) == pytest.approx(leep(probs, labels), abs=0.02)  # rows off by ~1e-3
    with pytest.raises(ValueError, match="pool"):
        logme(emb.reshape(30, 12, 64), ids)  # token-level features [N, T, D]: pool them first


# ----------------------------------------------------------------------------------------------------------
# The exercise check
def test_check_evidence_returns_a_check_result():
    from transferlab.checks import CheckResult
    from transferlab.selection import check_evidence

    ok = check_evidence(lambda f, y, a, b: _evidence_marginal(f, y, a, b))
    assert isinstance(ok, CheckResult) and ok and "N=8, D=20" in ok.message
    for fn, match in [(lambda *a: None, "returned None"), (lambda *a: float("nan"), "nan"),
                      (lambda *a: "x", "number"), (lambda *a: 1.0, "expected")]:
        r = check_evidence(fn)
        assert isinstance(r, CheckResult) and not r and match in r.message, r.message
    with pytest.raises(TypeError, match="callable"):
        check_evidence(1.0)


def test_no_public_function_moves_the_callers_random_state():
    import random

    from transferlab.selection import check_evidence

    f, y = _data(40, 6)
    calls = [lambda: logme(f, y), lambda: logme_fit(f, y), lambda: logme_naive(f, y), lambda: hscore(f, y),
             lambda: leep(f.softmax(1), y), lambda: nce(f.argmax(1), y), lambda: rank_models([1, 2, 3], [1, 3, 2]),
             lambda: check_evidence(lambda f_, y_, a, b: _evidence_marginal(f_, y_, a, b)),
             lambda: check_evidence(lambda *a: 0.0, seed=5)]
    torch.manual_seed(11), np.random.seed(11), random.seed(11)
    for call in calls:
        states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
        call()
        assert torch.equal(torch.get_rng_state(), states[0])
        assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


# ----------------------------------------------------------------------------------------------------------
# The regression path as lesson 04 uses it (standardised targets of several columns, scored per target)
def test_several_regression_columns_score_the_mean_of_each_column_in_any_order():
    g = torch.Generator().manual_seed(11)
    f = torch.randn(150, 8, generator=g, dtype=torch.float64)
    t = torch.stack([f[:, 0] + 0.5 * torch.randn(150, generator=g, dtype=torch.float64),
                     torch.cos(f[:, 1]), torch.randn(150, generator=g, dtype=torch.float64)], 1)
    each = [logme(f, t[:, c], regression=True) for c in range(3)]
    assert logme(f, t, regression=True) == pytest.approx(sum(each) / 3, abs=1e-12)
    assert logme(f, t[:, [2, 0, 1]], regression=True) == pytest.approx(sum(each) / 3, abs=1e-12)
    assert each[0] > each[1] > each[2] - 0.05  # the linear target is explained best, the random one not at all


@pytest.mark.parametrize("n, d", REGIMES)
def test_regression_logme_is_never_below_the_noise_only_fit(n, d):
    # alpha -> infinity (no weights) is always available: the evidence of y ~ N(0, mean(y^2) I), per sample
    # -1/2 (log(2 pi mean(y^2)) + 1), i.e. -1.419 for a standardised target. Features that explain nothing of
    # the target reach it (the floor the lesson's tables show); any that explain something are above it.
    g = torch.Generator().manual_seed(n + d)
    f = torch.randn(n, d, generator=g, dtype=torch.float64)
    for y in (torch.randn(n, generator=g, dtype=torch.float64), f[:, 0] + 0.1 * torch.randn(n, generator=g,
                                                                                            dtype=torch.float64)):
        y = (y - y.mean()) / y.std()
        floor = -0.5 * (math.log(2 * math.pi * float((y * y).mean())) + 1)
        r = logme_fit(f, y, regression=True)
        assert r.score >= floor - 1e-9
        assert r.evidence[0].item() == pytest.approx(_evidence_marginal(f, y, r.alpha[0].item(), r.beta[0].item()),
                                                     abs=1e-7) or bool(r.at_bound[0])
    unrelated = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    y = torch.randn(2000, generator=g, dtype=torch.float64)
    y = (y - y.mean()) / y.std()
    assert logme(unrelated, y, regression=True) == pytest.approx(-0.5 * (math.log(2 * math.pi) + 1), abs=3e-3)


@pytest.mark.parametrize("score", ["leep", "nce", "hscore"])
def test_only_logme_takes_real_valued_targets(score):
    g = torch.Generator().manual_seed(3)
    f = torch.randn(40, 5, generator=g, dtype=torch.float64)
    size = 0.22 + 0.12 * torch.rand(40, generator=g, dtype=torch.float64)  # a regression target, e.g. a size
    inputs = {"leep": (torch.softmax(f, 1), size), "nce": (f.argmax(1), size), "hscore": (f, size)}[score]
    fn = {"leep": leep, "nce": nce, "hscore": hscore}[score]
    with pytest.raises(ValueError, match="integer class labels"):
        fn(*inputs)
    assert math.isfinite(logme(f, size, regression=True))
