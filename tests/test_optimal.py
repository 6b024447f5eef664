import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel
from threadpoolctl import threadpool_limits

from kerneldistill.estimator import KernelDistiller
from kerneldistill.filters import filter_diagonals
from kerneldistill.optimal import (
    ExpectedTrainingRisk,
    OneShotRisk,
    ReferenceRisk,
    StepQuadratic,
    greedy_schedule,
    gt_weight_from_teacher_weight,
    optimal_gt_weight,
    ridge_from_dpr,
)
from kerneldistill.verification import ONE_SHOT_SIZES, one_shot_gaps

GAMMA, RIDGE = 10.0, 0.3


def _data(n=25, seed=0, k=1, noise=0.5):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1))
    Y_star = np.stack([np.sin(2 * np.pi * X[:, 0]), np.cos(2 * np.pi * X[:, 0])][:k], axis=1)
    return X, Y_star + noise * rng.normal(size=Y_star.shape), Y_star


def _spectrum(X):
    d, V = np.linalg.eigh(rbf_kernel(X, gamma=GAMMA))
    return np.clip(d, 0, None), V


def _reference_setup(k=1, seed=0):
    X, Y, _ = _data(seed=seed, k=k)
    d, V = _spectrum(X)
    X_ref = np.linspace(0, 1, 151)[:, None]
    R = np.stack([np.sin(2 * np.pi * X_ref[:, 0]), np.cos(2 * np.pi * X_ref[:, 0])][:k], axis=1)
    K_ref = rbf_kernel(X_ref, X, gamma=GAMMA)
    return d, V, Y, K_ref, R


def _grid_risks(d, V, Y, K_ref, R, previous, step, grid):
    """Brute force: filters of each grid weight from the spectral core, predictions, MSE."""
    z = V.T @ Y
    out = []
    for g in grid:
        q = filter_diagonals(d, RIDGE, list(previous) + [g], [step])[1][0]
        out.append(np.mean((K_ref @ V @ (q[:, None] * z) - R) ** 2))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2])
def test_reference_optimum_matches_fine_grid(k):
    d, V, Y, K_ref, R = _reference_setup(k=k)
    crit = ReferenceRisk(d, V, Y, RIDGE, K_ref, R)
    sched = greedy_schedule(crit, 4, constrained=False)
    for t in range(2, 5):
        prev, best = sched.gt_weight[: t - 2], sched.gt_weight[t - 2]
        coarse = np.linspace(-4.0, 4.0, 161)
        c_best = coarse[np.argmin(_grid_risks(d, V, Y, K_ref, R, prev, t, coarse))]
        fine = np.linspace(c_best - 0.05, c_best + 0.05, 201)
        risks = _grid_risks(d, V, Y, K_ref, R, prev, t, fine)
        assert abs(fine[np.argmin(risks)] - best) <= 0.5e-3 + 1e-12  # one grid spacing
        assert sched.risk[t - 1] <= risks.min() * (1 + 1e-12)
        # the closed-form quadratic equals the brute-force risk at every grid weight
        np.testing.assert_allclose(crit.quadratic(t, prev)(fine), risks, rtol=1e-10, atol=0)


def test_optimal_gt_weight_is_the_greedy_step():
    d, V, Y, K_ref, R = _reference_setup()
    crit = ReferenceRisk(d, V, Y, RIDGE, K_ref, R)
    sched = greedy_schedule(crit, 5, constrained=False)
    for t in range(2, 6):
        assert optimal_gt_weight(crit, t, sched.gt_weight[: t - 2], constrained=False) == pytest.approx(sched.gt_weight[t - 2], abs=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_constrained_is_clipped_and_grid_optimal_on_unit_interval(seed):
    d, V, Y, K_ref, R = _reference_setup(seed=seed)
    crit = ReferenceRisk(d, V, Y, RIDGE, K_ref, R)
    sched = greedy_schedule(crit, 5, constrained=True)
    assert np.all((sched.gt_weight >= 0) & (sched.gt_weight <= 1))
    np.testing.assert_array_equal(sched.gt_weight, np.clip(sched.unconstrained, 0, 1))
    grid = np.linspace(0, 1, 2001)
    for t in range(2, 6):
        risks = _grid_risks(d, V, Y, K_ref, R, sched.gt_weight[: t - 2], t, grid)
        assert abs(grid[np.argmin(risks)] - sched.gt_weight[t - 2]) <= 0.5e-3 + 1e-12


def test_clipping_happens_in_this_setting():
    # Guards the previous test against passing vacuously: here some step's optimum leaves [0, 1].
    d, V, Y, K_ref, R = _reference_setup(seed=0)
    sched = greedy_schedule(ReferenceRisk(d, V, Y, RIDGE, K_ref, R), 5, constrained=False)
    assert np.any((sched.gt_weight < 0) | (sched.gt_weight > 1))


@pytest.mark.parametrize("constrained", [False, True])
def test_schedule_fed_back_as_gt_weight_reproduces_greedy_losses(constrained):
    X, Y, _ = _data(k=2, seed=3)
    model = KernelDistiller("rbf", ridge=RIDGE, gamma=GAMMA).fit(X, Y)
    X_ref = np.linspace(0, 1, 151)[:, None]
    R = np.stack([np.sin(2 * np.pi * X_ref[:, 0]), np.cos(2 * np.pi * X_ref[:, 0])], axis=1)
    sched = greedy_schedule(ReferenceRisk.from_distiller(model, X_ref, R), 6, constrained=constrained)
    fed = KernelDistiller("rbf", ridge=RIDGE, gamma=GAMMA, gt_weight=sched.gt_weight, steps=6,
                          allow_any_weight=not constrained).fit(X, Y)
    losses = [np.mean((fed.predict(X_ref, step=t) - R) ** 2) for t in range(1, 7)]
    np.testing.assert_allclose(losses, sched.risk, rtol=1e-10, atol=0)
    # greedy: no step's loss can beat the fit with that step's weight replaced by 0 or 1
    crit = ReferenceRisk.from_distiller(model, X_ref, R)
    for t in range(2, 7):
        quad = crit.quadratic(t, sched.gt_weight[: t - 2])
        assert sched.risk[t - 1] <= min(quad(0.0), quad(1.0)) + 1e-15


@pytest.mark.parametrize("truncate", [False, True])
def test_expected_risk_closed_form_matches_monte_carlo(truncate):
    n, k, s, draws = 15, 2, 0.4, 20000
    X, _, Y_star = _data(n=n, k=k, seed=5)
    d, V = _spectrum(X)
    if truncate:  # a top-m spectrum: part of y* lies outside span(V), which the bias must include
        d, V = d[-8:], V[:, -8:]
    crit = ExpectedTrainingRisk(d, V, Y_star, s**2, RIDGE)
    rng = np.random.default_rng(7)
    Y = Y_star[None] + s * rng.normal(size=(draws, n, k))
    Z = np.einsum("nm,dnk->dmk", V, Y)
    for prev, w in [((), 0.3), ((0.5,), -0.5), ((0.5,), 1.5), ((0.2, 0.9), 0.0)]:
        step = len(prev) + 2
        b = filter_diagonals(d, RIDGE, list(prev) + [w], [step])[0][0]
        fits = np.einsum("nm,dmk->dnk", V, b[None, :, None] * Z)
        loss = np.mean((fits - Y_star[None]) ** 2, axis=(1, 2))
        se = loss.std(ddof=1) / np.sqrt(draws)
        assert abs(loss.mean() - crit.quadratic(step, prev)(w)) < 4 * se


def test_expected_risk_optimum_shifts_towards_labels_without_noise():
    # Without noise the labels are the truth: fitting them alone (alpha = 1) beats distilling (alpha = 0)
    # at every step, and the closed-form optimum is >= 1 (the teacher only adds shrinkage bias).
    X, _, Y_star = _data(seed=2)
    d, V = _spectrum(X)
    sched = greedy_schedule(ExpectedTrainingRisk(d, V, Y_star, 0.0, RIDGE), 4, constrained=False)
    assert np.all(sched.gt_weight >= 1.0)
    noisy = greedy_schedule(ExpectedTrainingRisk(d, V, Y_star, 1.0, RIDGE), 4, constrained=False)
    assert np.all(noisy.gt_weight < sched.gt_weight)


def test_one_shot_equals_dpr_formula_with_explicit_matrices():
    X, Y, _ = _data(n=30, seed=4)
    y = Y[:, 0]
    n = len(y)
    K = rbf_kernel(X, gamma=GAMMA)
    S = K @ np.linalg.inv(K + RIDGE * np.eye(n))  # teacher smoother, [DPR26]'s S
    S2 = S @ S
    r = (y - S @ y) / (1 - np.trace(S) / n)
    r_pd = (y - S2 @ y) / (1 - np.trace(S2) / n)
    R_hat, R_pd, C_hat = r @ r / n, r_pd @ r_pd / n, r @ r_pd / n
    xi_hat = (R_hat - C_hat) / (R_hat + R_pd - 2 * C_hat)  # teacher weight
    d, V = _spectrum(X)
    quad = OneShotRisk(d, V, y, RIDGE).quadratic()
    assert quad.risk_labels == pytest.approx(R_hat, rel=1e-9)
    assert quad.risk_pd == pytest.approx(R_pd, rel=1e-9)
    assert quad.cross == pytest.approx(C_hat, rel=1e-9)
    assert quad.argmin() == pytest.approx(gt_weight_from_teacher_weight(xi_hat), rel=1e-8)


def test_one_shot_approaches_oracle_as_n_grows():
    sizes, seeds = ONE_SHOT_SIZES[True]
    # 60 small eigendecompositions: one BLAS thread (threads spinning on a shared 2-core machine made
    # this test 15x slower, 9 s vs 0.6 s measured).
    with threadpool_limits(limits=1):
        gaps, oracle, one_shot = one_shot_gaps(sizes, seeds)
    slope = np.polyfit(np.log(sizes), np.log(gaps), 1)[0]
    assert slope <= -0.25  # theory: about -1/2
    assert gaps[-1] <= 0.5 * gaps[0]
    assert np.all(oracle > 1)  # over-regularised setting: [DPR26]'s negative teacher weight


def test_dpr_ridge_conversion_matches_normalised_objective():
    # (1/n)||y - X beta||^2 + lam ||beta||^2  is solved by (X^T X + n lam I)^-1 X^T y.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    lam_dpr = 0.05
    beta = np.linalg.solve(X.T @ X + 40 * lam_dpr * np.eye(3), X.T @ y)
    model = KernelDistiller("linear", ridge=ridge_from_dpr(lam_dpr, 40)).fit(X, y)
    np.testing.assert_allclose(model.predict(X, step=1), X @ beta, rtol=1e-10, atol=1e-12)
    assert gt_weight_from_teacher_weight(0.3) == pytest.approx(0.7)
    np.testing.assert_allclose(gt_weight_from_teacher_weight(np.array([-1.5, 0.0])), [2.5, 1.0])


def test_degenerate_step_returns_weight_one():
    # y = 0: every fit is 0, so every weight is optimal; the documented choice is 1.
    X, _, _ = _data()
    d, V = _spectrum(X)
    crit = ReferenceRisk(d, V, np.zeros(len(X)), RIDGE, rbf_kernel(X, gamma=GAMMA), np.ones(len(X)))
    assert crit.quadratic().argmin() == 1.0
    assert StepQuadratic(1.0, 2.0, 1.5).argmin() == 1.0  # D = 0


def test_bad_inputs_name_the_argument():
    d, V, Y, K_ref, R = _reference_setup()
    with pytest.raises(ValueError, match="evecs"):
        ReferenceRisk(d, V[:, :-1], Y, RIDGE, K_ref, R)
    with pytest.raises(ValueError, match="K_ref_train"):
        ReferenceRisk(d, V, Y, RIDGE, K_ref[:, :-1], R)
    with pytest.raises(ValueError, match="reference"):
        ReferenceRisk(d, V, Y, RIDGE, K_ref, R[:-1])
    with pytest.raises(ValueError, match="ridge"):
        ReferenceRisk(d, V, Y, 0.0, K_ref, R)
    with pytest.raises(ValueError, match="noise_var"):
        ExpectedTrainingRisk(d, V, Y, -1.0, RIDGE)
    with pytest.raises(ValueError, match="evals"):
        OneShotRisk(-np.abs(d) - 1, V, Y, RIDGE)
    crit = OneShotRisk(d, V, Y, RIDGE)
    with pytest.raises(ValueError, match="previous"):
        crit.quadratic(3, [])
    with pytest.raises(ValueError, match="step"):
        crit.quadratic(1)
    with pytest.raises(ValueError, match="steps"):
        greedy_schedule(crit, 1)
    with pytest.raises(ValueError, match="ridge_dpr"):
        ridge_from_dpr(-1.0, 10)


@pytest.mark.parametrize("ridge", [1e-5, 1e-7])
def test_optimum_stays_exact_at_tiny_ridges(ridge):
    """At a tiny ridge the two endpoint fits nearly coincide (f1 - f0 = O(ridge)); the optimum must
    come from their difference, not from subtracting nearly equal risks (which returned 1.0 here)."""
    from kerneldistill import KernelDistiller
    from kerneldistill.optimal import ReferenceRisk
    from kerneldistill.toy import TOY_X, TOY_Y

    X = np.asarray(TOY_X, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(TOY_Y, dtype=np.float64)
    x_ref = np.linspace(0.0, 1.0, 101).reshape(-1, 1)
    reference = np.sin(2 * np.pi * x_ref[:, 0])
    model = KernelDistiller(kernel="rbf", gamma=80, ridge=ridge, gt_weight=0.5, steps=2).fit(X, y)
    crit = ReferenceRisk.from_distiller(model, x_ref, reference)
    alpha = crit.quadratic(2).argmin()
    # Independent check: alpha* = <f1 - f0, r - f0> / ||f1 - f0||^2 with f1 - f0 from the filter
    # difference q1 - q0 = (1 - a) / (d + ridge), a = d / (d + ridge), written without cancellation.
    d = model.evals_
    q_diff = (ridge / (d + ridge)) / (d + ridge)
    P = model.kernel_matrix(x_ref) @ model.evecs_
    z = model.z_[:, 0]
    f0 = P @ ((d / (d + ridge)) / (d + ridge) * z)
    diff = P @ (q_diff * z)
    expected = np.dot(diff, reference - f0) / np.dot(diff, diff)
    np.testing.assert_allclose(alpha, expected, rtol=1e-6, atol=0)
    assert alpha != 1.0
