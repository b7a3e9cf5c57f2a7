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
    with pytest.raises(ValueError, match="N=8, D=20"):
        check_evidence(forgets_zero_eigenvalues)
