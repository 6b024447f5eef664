"""Jointly optimal schedules: never worse than greedy or than a brute-force grid (T = 3, every criterion),
and the power-basis algebra they rest on."""
import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill import KernelDistiller
from kerneldistill.joint import joint_power_coefficients, joint_schedule
from kerneldistill.optimal import ExpectedTrainingRisk, OneShotRisk, ReferenceRisk, greedy_schedule
from kerneldistill.polynomial import (
    power_coefficients, power_endpoint_coefficients, schedule_from_power_coefficients,
)
from kerneldistill.toy import toy_distiller, toy_eval_points, toy_truth

GAMMA, RIDGE, NOISE = 10.0, 0.3, 0.5


def _setup(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1))
    y_star = np.sin(2 * np.pi * X[:, 0])
    y = y_star + NOISE * rng.normal(size=n)
    d, V = np.linalg.eigh(rbf_kernel(X, gamma=GAMMA))
    return X, y, y_star, np.clip(d, 0, None), V


def _criteria(seed=0):
    X, y, y_star, d, V = _setup(seed=seed)
    X_ref = np.linspace(0, 1, 101)[:, None]
    return {
        "reference": ReferenceRisk(d, V, y, RIDGE, rbf_kernel(X_ref, X, gamma=GAMMA), np.sin(2 * np.pi * X_ref[:, 0])),
        "expected": ExpectedTrainingRisk(d, V, y_star, NOISE**2, RIDGE),
        "one_shot": OneShotRisk(d, V, y, RIDGE),
    }


@pytest.mark.parametrize("name", ["reference", "expected", "one_shot"])
@pytest.mark.parametrize("constrained", [True, False])
def test_joint_never_worse_than_greedy_or_a_brute_force_grid_at_three_steps(name, constrained):
    crit = _criteria()[name]
    joint = joint_schedule(crit, 3, constrained=constrained)
    greedy = greedy_schedule(crit, 3, constrained=constrained)
    assert joint.method == "joint" and joint.constrained is constrained
    assert joint.risk[-1] <= greedy.risk[-1] * (1 + 1e-12)
    # a grid over (alpha_2, alpha_3) that holds the optimum but is not centred on it
    lo, hi = (0.0, 1.0) if constrained else (min(-4.0, joint.gt_weight.min() - 1), max(6.0, joint.gt_weight.max() + 1))
    grid = np.linspace(lo, hi, 81)
    risks = np.array([[crit.risk([a2, a3]) for a3 in grid] for a2 in grid])
    assert joint.risk[-1] <= risks.min() * (1 + 1e-12)
    if constrained:
        assert np.all((joint.gt_weight >= 0) & (joint.gt_weight <= 1))
    # the reported risk is the criterion at the reported weights
    assert joint.risk[-1] == pytest.approx(crit.risk(joint.gt_weight), rel=1e-12)


def test_joint_beats_greedy_on_the_toy_problem():
    # [BA21]'s toy against sin(2 pi x): greedy 3-step 0.14889, a brute-force search about 0.14766.
    model = toy_distiller()
    X_eval = toy_eval_points()
    crit = ReferenceRisk.from_distiller(model, X_eval, toy_truth(X_eval))
    greedy = greedy_schedule(crit, 3, constrained=False)
    joint = joint_schedule(crit, 3, constrained=False)
    assert greedy.risk[-1] == pytest.approx(0.14889, abs=5e-6)
    assert joint.risk[-1] < 0.14766 < greedy.risk[-1]
    # fed back to the estimator, the schedule reproduces the risk
    fed = KernelDistiller("rbf", ridge=0.2, gamma=80.0).set_params(**joint.estimator_params()).fit(
        model.X_fit_, model.y_fit_[:, 0])
    assert np.mean((fed.predict(X_eval) - toy_truth(X_eval)) ** 2) == pytest.approx(joint.risk[-1], rel=1e-10)


@pytest.mark.parametrize("name", ["reference", "expected", "one_shot"])
def test_joint_at_more_steps_is_no_worse_than_coordinate_descent_from_random_starts(name):
    crit = _criteria(seed=1)[name]
    T = 5
    joint = joint_schedule(crit, T, constrained=False)
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = rng.uniform(-2, 3, size=T - 1)
        for _ in range(50):
            for t in range(2, T + 1):
                w[t - 2] = crit.coordinate_quadratic(w, t).argmin(constrained=False)
        assert joint.risk[-1] <= crit.risk(w) * (1 + 1e-9)
    # the joint optimum over schedules reaches the least-squares optimum over beta
    beta = joint_power_coefficients(crit, T, constrained=False)
    assert joint.risk[-1] == pytest.approx(crit.power_risk(beta), rel=1e-8)


@pytest.mark.parametrize("name", ["reference", "expected", "one_shot"])
def test_risk_in_the_power_basis_equals_risk_from_the_filters(name):
    crit = _criteria(seed=2)[name]
    for schedule in ([0.4], [0.3, -0.5, 1.4], [0.0, 0.0, 0.0, 0.5], [1.0, 0.2]):
        assert crit.power_risk(power_coefficients(schedule)) == pytest.approx(crit.risk(schedule), rel=1e-11)
        # every weight's quadratic is the risk along that weight
        for step in range(2, len(schedule) + 2):
            quad = crit.coordinate_quadratic(schedule, step)
            for w in (-1.0, 0.3, 2.0):
                moved = list(schedule)
                moved[step - 2] = w
                assert quad(w) == pytest.approx(crit.risk(moved), rel=1e-9)


def test_one_shot_power_terms_equal_explicit_smoother_powers():
    X, y, _, d, V = _setup(n=25, seed=3)
    n = len(y)
    K = rbf_kernel(X, gamma=GAMMA)
    S = K @ np.linalg.inv(K + RIDGE * np.eye(n))

    def r(j):
        Sj = np.linalg.matrix_power(S, j)
        return (y - Sj @ y) / (1 - np.trace(Sj) / n)

    for m in (n, 12):  # complete basis, and a truncated one (part of y outside the span)
        Vm, dm = V[:, -m:], d[-m:]
        crit = OneShotRisk(dm, Vm, y, RIDGE)
        Sm = Vm @ np.diag(dm / (dm + RIDGE)) @ Vm.T
        S_used = S if m == n else Sm
        for schedule in ([0.3], [0.3, -0.5], [0.2, 0.9, 1.3]):
            beta = power_coefficients(schedule)
            rho = sum(b * (y - np.linalg.matrix_power(S_used, j + 1) @ y)
                      / (1 - np.trace(np.linalg.matrix_power(S_used, j + 1)) / n) for j, b in enumerate(beta))
            assert crit.risk(schedule) == pytest.approx(rho @ rho / n, rel=1e-10)
    assert r(1) @ r(1) / n == pytest.approx(OneShotRisk(d, V, y, RIDGE).risk(), rel=1e-10)


def test_power_coefficients_round_trip_and_endpoints():
    schedule = np.array([0.3, -0.5, 1.4, 0.2])
    beta = power_coefficients(schedule)
    assert beta.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(schedule_from_power_coefficients(beta), schedule, rtol=1e-12)
    d = np.array([2.0, 0.5, 0.1])
    a = d / (d + RIDGE)
    from kerneldistill.filters import filter_diagonals
    b = filter_diagonals(d, RIDGE, schedule, [5])[0][0]
    np.testing.assert_allclose(b, sum(c * a ** (j + 1) for j, c in enumerate(beta)), rtol=1e-13)
    beta0, dbeta = power_endpoint_coefficients(schedule, 3)
    moved = schedule.copy()
    moved[1] = 0.7
    np.testing.assert_allclose(beta0 + 0.7 * dbeta, power_coefficients(moved), atol=1e-15)
    # weights in [0, 1] <=> beta in the simplex
    assert np.all(power_coefficients([0.2, 1.0, 0.0, 0.6]) >= 0)
    with pytest.raises(ValueError, match="beta"):
        schedule_from_power_coefficients(np.array([1.0, -1.0]))


def test_joint_schedule_rejects_one_step():
    with pytest.raises(ValueError, match="steps"):
        joint_schedule(_criteria()["one_shot"], 1)
