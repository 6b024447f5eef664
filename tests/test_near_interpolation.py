"""Near interpolation (ridge tiny next to the spectrum, p > n): the one-shot estimate against a 50-digit
evaluation, and the residual filters and projections that it rests on."""
import numpy as np
import pytest
from mpmath import fdot, mp, mpf
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill import KernelDistiller, OneShotRisk
from kerneldistill.filters import filter_complements, filter_diagonals
from kerneldistill.optimal import _project


def one_shot_step2_mp(K, y, ridge, dps=50):
    """[DPR26]'s step-2 one-shot quantities for the Gram matrix ``K`` (its float64 entries taken as
    exact), in ``dps``-digit arithmetic, without any eigendecomposition: with ``G = (K + lam I)^-1``,
    ``(I - S) y = lam G y``, ``(I - S^2) y = 2 lam G y - lam^2 G^2 y``, ``tr(I - S) = lam tr G`` and
    ``tr(I - S^2) = 2 lam tr G - lam^2 tr G^2``. ``G`` comes from a Cholesky factor and its inverse."""
    with mp.workdps(dps):
        n = len(y)
        lam = mpf(float(ridge))
        L = [[mpf(0)] * n for _ in range(n)]
        for j in range(n):
            L[j][j] = mp.sqrt(mpf(float(K[j, j])) + lam - fdot(L[j][:j], L[j][:j]))
            for i in range(j + 1, n):
                L[i][j] = (mpf(float(K[i, j])) - fdot(L[i][:j], L[j][:j])) / L[j][j]
        inv = [[mpf(0)] * n for _ in range(n)]  # L^-1, lower triangular
        for j in range(n):
            inv[j][j] = 1 / L[j][j]
            for i in range(j + 1, n):
                inv[i][j] = -fdot(L[i][j:i], [inv[k][j] for k in range(j, i)]) / L[i][i]
        cols = [[inv[k][j] for k in range(n)] for j in range(n)]
        G = [[None] * n for _ in range(n)]  # G = L^-T L^-1
        for i in range(n):
            for j in range(i, n):
                G[i][j] = G[j][i] = fdot(cols[i][j:], cols[j][j:])
        trG = mp.fsum(G[i][i] for i in range(n))
        trG2 = mp.fsum(g**2 for row in G for g in row)
        u = [fdot(row, [mpf(float(v)) for v in y]) for row in G]
        w = [fdot(row, u) for row in G]
        r1 = [n * ui / trG for ui in u]
        den2 = (2 * lam * trG - lam**2 * trG2) / n
        r2 = [(2 * lam * ui - lam**2 * wi) / den2 for ui, wi in zip(u, w)]
        R1, R2, C = fdot(r1, r1) / n, fdot(r2, r2) / n, fdot(r1, r2) / n
        return {"risk_labels": float(R1), "risk_pd": float(R2), "cross": float(C),
                "gain": float(R2 - C), "dist2": float(R1 + R2 - 2 * C),
                "gt_weight": float(1 - (R1 - C) / (R1 + R2 - 2 * C))}


def _toolkit(K, y, ridge):
    q = OneShotRisk.from_distiller(KernelDistiller("precomputed", ridge=ridge).fit(K, y)).quadratic(2)
    return {"risk_labels": q.risk_labels, "risk_pd": q.risk_pd, "cross": q.cross, "gain": q.gain,
            "dist2": q.curvature, "gt_weight": q.argmin(constrained=False)}


@pytest.mark.parametrize("ratio", [2, 10])
@pytest.mark.parametrize("ridge_dpr", [1e-3, 1e6])
def test_one_shot_matches_50_digits_in_dpr_heatmap_setting(ratio, ridge_dpr):
    # [DPR26]'s heatmap setting: identity covariance, n = 100, p/n = 2 and 10, their 1/n ridge
    # (ours is n times it). The Gram matrix is fed as precomputed so that both sides see the same K.
    n, p = 100, ratio * 100
    rng = np.random.default_rng(ratio)
    X = rng.standard_normal((n, p))
    y = X @ (rng.standard_normal(p) / np.sqrt(p)) + 0.5 * rng.standard_normal(n)
    K = X @ X.T
    ref, got = one_shot_step2_mp(K, y, n * ridge_dpr), _toolkit(K, y, n * ridge_dpr)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-6, abs=0), key
    if ridge_dpr < 1:
        assert abs(ref["gt_weight"]) > 100  # near interpolation: the optimum is far outside [0, 1]
    # The quadratic at its optimum (a weight in the hundreds to thousands) is R - gain^2 / D, not
    # round-off of the endpoint form's alpha^2-sized terms: it matches the power-basis evaluation.
    crit = OneShotRisk.from_distiller(KernelDistiller("precomputed", ridge=n * ridge_dpr).fit(K, y))
    quad = crit.quadratic(2)
    w = quad.argmin(constrained=False)
    assert quad(w) == pytest.approx(crit.risk([w]), rel=1e-9)
    assert quad(w) == pytest.approx(ref["risk_pd"] - ref["gain"] ** 2 / ref["dist2"], rel=1e-8)


def test_one_shot_matches_50_digits_for_a_narrow_rbf_kernel():
    # The issue's RBF case: gamma 2000, ridge 1e-5 (the kernel is nearly the identity).
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(100, 1))
    y = np.sin(2 * np.pi * X[:, 0]) + 0.3 * rng.standard_normal(100)
    K = rbf_kernel(X, gamma=2000.0)
    K = (K + K.T) / 2  # sklearn's rbf_kernel is symmetric only to ~1e-13 at this gamma
    ref, got = one_shot_step2_mp(K, y, 1e-5), _toolkit(K, y, 1e-5)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-6, abs=0), key


def test_issue_reproduction_gives_the_60_digit_value():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 250))
    y = X @ (rng.standard_normal(250) / np.sqrt(250)) + 0.5 * rng.standard_normal(100)
    m = KernelDistiller(kernel="linear", ridge=100 * 1e-4, allow_any_weight=True).fit(X, y)
    teacher_weight = 1 - OneShotRisk.from_distiller(m).quadratic().argmin(constrained=False)
    assert teacher_weight == pytest.approx(2692.80, rel=1e-5)


def test_part_outside_the_basis_is_zero_for_a_complete_basis_and_direct_otherwise():
    rng = np.random.default_rng(0)
    V = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    Y = rng.standard_normal((40, 2)) * 1e3
    assert _project(V, Y)[1] == 0.0  # ||Y||^2 - ||V^T Y||^2 is ~1e-9 of round-off here, of either sign
    part = Y - V[:, :10] @ (V[:, :10].T @ Y)
    assert _project(V[:, :10], Y)[1] == pytest.approx(np.sum(part**2), rel=1e-12)


@pytest.mark.parametrize("gt_weight", [0.0, 0.3, [0.3, 0.9, 0.0, 0.5, 1.0]])
def test_residual_filters_keep_relative_precision_at_tiny_ridge(gt_weight):
    d = np.array([3.0, 1.0, 0.25])
    ridge = 1e-12
    steps = [1, 2, 3, 6]
    c = filter_complements(d, ridge, gt_weight, steps)
    b, _ = filter_diagonals(d, 0.5, gt_weight, steps)  # a moderate ridge: 1 - b is exact enough there
    np.testing.assert_allclose(filter_complements(d, 0.5, gt_weight, steps), 1 - b, rtol=1e-13, atol=1e-15)
    weights = np.full(5, gt_weight) if np.ndim(gt_weight) == 0 else np.asarray(gt_weight)
    with mp.workdps(40):  # the recursion 1 - b^(t) = 1 - a (alpha + (1 - alpha) b^(t-1)) at 40 digits
        for i, di in enumerate(d):
            a = mpf(di) / (mpf(di) + mpf(ridge))
            bt, ref = a, {1: 1 - a}
            for t in range(2, 7):
                bt = a * (mpf(weights[t - 2]) + (1 - mpf(weights[t - 2])) * bt)
                ref[t] = 1 - bt
            for j, s in enumerate(steps):
                assert c[j, i] == pytest.approx(float(ref[s]), rel=1e-12)
