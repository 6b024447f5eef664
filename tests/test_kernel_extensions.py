"""select_steps, the ridge path and its tuning, Proposition 2.3's quantities, and the smaller items:
pipelines accepted wherever a distiller is, missing targets refused, defaults that agree with the
estimator, the exact eigensolver."""

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kerneldistill import KernelDistiller
from kerneldistill.optimal import (
    ExpectedTrainingRisk, OneShotRisk, ReferenceRisk, greedy_schedule, optimal_gt_weight,
)
from kerneldistill.ridge_path import proposition_2_3, ridge_weight_grid, tune_ridge_and_weight
from kerneldistill.spectrum import EXACT_EIGH_SOLVERS, eigh_gram
from kerneldistill.step_selection import select_steps
from kerneldistill.studies import sine_data

GAMMA = 10.0


def _explicit_smoothers(X, ridge, gt_weight, T):
    """``S_t`` for t = 1..T as explicit matrices: S_1 = S, S_t = S (alpha I + (1 - alpha) S_(t-1))."""
    K = rbf_kernel(X, gamma=GAMMA)
    n = len(X)
    S = K @ np.linalg.inv(K + ridge * np.eye(n))
    out = [S]
    for _ in range(T - 1):
        out.append(S @ (gt_weight * np.eye(n) + (1 - gt_weight) * out[-1]))
    return out


@pytest.mark.parametrize("gt_weight", [0.0, 0.4])
def test_select_steps_gcv_equals_its_definition_and_its_argmin(gt_weight):
    X, y = sine_data(30, 0.5, seed=0)
    model = KernelDistiller("rbf", ridge=0.05, gamma=GAMMA, gt_weight=gt_weight).fit(X, y)
    sel = select_steps(model, 8)
    n = len(y)
    gcv = [(np.sum((y - S @ y) ** 2) / n) / (1 - np.trace(S) / n) ** 2
           for S in _explicit_smoothers(X, 0.05, gt_weight, 8)]
    np.testing.assert_allclose(sel.scores, gcv, rtol=1e-9, atol=0)
    assert sel.step == int(np.argmin(gcv)) + 1 and sel.gt_weight == gt_weight and sel.criterion == "gcv"


def test_select_steps_picks_the_joint_pair_of_a_grid_and_refuses_bad_input():
    X, y = sine_data(30, 0.5, seed=1)
    model = KernelDistiller("rbf", ridge=0.05, gamma=GAMMA).fit(X, y)
    grid = [0.0, 0.3, 1.0]
    sel = select_steps(model, 6, gt_weights=grid)
    assert sel.scores.shape == (3, 6)
    for i, w in enumerate(grid):
        np.testing.assert_allclose(sel.scores[i], select_steps(model, 6, gt_weight=w).scores, rtol=1e-14)
    i, j = np.unravel_index(np.argmin(sel.scores), sel.scores.shape)
    assert (sel.step, sel.gt_weight) == (j + 1, grid[i])
    # gt_weight 0 and 1 are single smoother powers: the one-shot rule is then GCV itself
    np.testing.assert_allclose(select_steps(model, 5, gt_weight=0.0, criterion="one_shot").scores,
                               select_steps(model, 5, gt_weight=0.0).scores, rtol=1e-10)
    with pytest.raises(ValueError, match="criterion"):
        select_steps(model, 5, criterion="aic")
    with pytest.raises(ValueError, match="gt_weights"):
        select_steps(model, 5, gt_weight=0.2, gt_weights=[0.1])
    with pytest.raises(ValueError, match="max_steps"):
        select_steps(KernelDistiller("rbf", gamma=GAMMA, gt_weight=[0.5, 0.5], steps=3).fit(X, y), 6)


def test_ridge_path_equals_separate_fits_at_every_step():
    X, y = sine_data(40, 0.3, seed=2)
    X_test = np.linspace(0, 1, 25)[:, None]
    ridges = [1e-3, 0.2, 5.0]
    model = KernelDistiller("rbf", ridge=1.0, gamma=GAMMA).fit(X, y)
    path = model.path(X_test, [1, 2, 3], gt_weights=[0.0, 0.6], ridges=ridges)
    assert path.shape == (3, 2, 3, 25)
    for i, lam in enumerate(ridges):
        for j, w in enumerate([0.0, 0.6]):
            target = y  # explicit iterated refits, the definition
            for t in range(3):
                krr = KernelRidge(alpha=lam, kernel="rbf", gamma=GAMMA).fit(X, target)
                np.testing.assert_allclose(path[i, j, t], krr.predict(X_test), rtol=1e-8, atol=1e-10)
                target = w * y + (1 - w) * krr.predict(X)
    with pytest.raises(ValueError, match="ridges"):
        model.path(X_test, [1], ridges=[0.1, -1.0])


@pytest.mark.parametrize("kind", ["reference", "expected", "one_shot"])
def test_criteria_at_another_ridge_equal_criteria_built_there(kind):
    X, y = sine_data(30, 0.5, seed=3)
    X_ref = np.linspace(0, 1, 41)[:, None]

    def build(lam):
        m = KernelDistiller("rbf", ridge=lam, gamma=GAMMA).fit(X, y)
        if kind == "reference":
            return ReferenceRisk.from_distiller(m, X_ref, np.sin(2 * np.pi * X_ref[:, 0]))
        if kind == "expected":
            return ExpectedTrainingRisk.from_distiller(m, np.sin(2 * np.pi * X[:, 0]), 0.25)
        return OneShotRisk.from_distiller(m)

    moved, built = build(1.0).at_ridge(0.03), build(0.03)
    for schedule in ([], [0.5], [0.2, -0.3]):
        assert moved.risk(schedule) == pytest.approx(built.risk(schedule), rel=1e-10)
    grid = ridge_weight_grid(build(1.0), [0.01, 0.03, 0.3], constrained=False)
    assert grid.ridge_risk[1] == pytest.approx(built.risk(), rel=1e-10)
    assert grid.gt_weight[1] == pytest.approx(built.quadratic(2).argmin(constrained=False), rel=1e-9)
    assert np.all(grid.sd_risk <= grid.ridge_risk * (1 + 1e-12))


def test_tuning_beats_its_grid_and_the_pair_never_loses_to_the_ridge():
    X, y = sine_data(50, 0.5, seed=4)
    model = KernelDistiller("rbf", ridge=1.0, gamma=GAMMA).fit(X, y)
    X_ref = np.linspace(0, 1, 101)[:, None]
    crit = ReferenceRisk.from_distiller(model, X_ref, np.sin(2 * np.pi * X_ref[:, 0]))
    ridges = np.logspace(-5, 1, 25)
    choice = tune_ridge_and_weight(crit, ridges, constrained=False)
    grid = ridge_weight_grid(crit, ridges, constrained=False)
    assert choice.ridge_risk <= grid.ridge_risk.min() * (1 + 1e-12)
    assert choice.pair_risk <= min(grid.sd_risk.min(), choice.ridge_risk) * (1 + 1e-12)
    fine = np.exp(np.linspace(np.log(choice.ridge) - 0.05, np.log(choice.ridge) + 0.05, 101))
    assert choice.ridge_risk <= min(crit.at_ridge(r).risk() for r in fine) * (1 + 1e-9)  # a true minimum


@pytest.mark.parametrize("kind", ["reference", "expected"])
def test_ridge_derivatives_match_finite_differences_and_distance_is_the_step2_curvature(kind):
    X, y = sine_data(30, 0.5, seed=5)
    m = KernelDistiller("rbf", ridge=0.1, gamma=GAMMA).fit(X, y)
    X_ref = np.linspace(0, 1, 41)[:, None]
    crit = (ReferenceRisk.from_distiller(m, X_ref, np.sin(2 * np.pi * X_ref[:, 0])) if kind == "reference"
            else ExpectedTrainingRisk.from_distiller(m, np.sin(2 * np.pi * X[:, 0]), 0.25))
    R, dR, d2R, D = crit.ridge_derivatives()
    h = 1e-4 * 0.1
    r = [crit.at_ridge(0.1 + k * h).risk() for k in (-1, 0, 1)]
    assert R == pytest.approx(r[1], rel=1e-12)
    assert dR == pytest.approx((r[2] - r[0]) / (2 * h), rel=1e-6)
    assert d2R == pytest.approx((r[2] - 2 * r[1] + r[0]) / h**2, rel=1e-4)
    assert D == pytest.approx(crit.quadratic(2).curvature, rel=1e-10)  # f_PD - f_T = lam df_T/dlam


def test_proposition_2_3_condition_means_a_gain():
    # Proposition 2.3 is local: where D(lam*) < lam*^2 R''(lam*) / 2 a nearby ridge with its optimal
    # weight beats the best ridge. Measured on the RBF sine setting, where the condition holds.
    X, y = sine_data(80, 0.5, seed=0)
    model = KernelDistiller("rbf", ridge=1.0, gamma=80.0).fit(X, y)
    X_ref = np.linspace(0, 1, 201)[:, None]
    crit = ReferenceRisk.from_distiller(model, X_ref, np.sin(2 * np.pi * X_ref[:, 0]))
    prop = proposition_2_3(crit, float(model.evals_.max()) * np.logspace(-7, 2, 60))
    assert abs(prop.slope) * prop.ridge <= 1e-5 * prop.risk  # lam* is a stationary point
    assert prop.holds and prop.gain > 0
    # the local expansion: just off lam*, the optimally weighted student is below R(lam*)
    lam = prop.ridge * 1.05
    quad = crit.at_ridge(lam).quadratic(2)
    assert quad(quad.argmin(constrained=False)) < prop.risk
    with pytest.raises(TypeError, match="criterion"):
        proposition_2_3(OneShotRisk.from_distiller(model), [0.1, 1.0])


# --------------------------------------------------------------------------------------------------
# Section 5: the smaller items


def test_criteria_and_select_steps_accept_a_fitted_pipeline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * [1.0, 10.0, 100.0]
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)
    X_val = rng.normal(size=(15, 3)) * [1.0, 10.0, 100.0]
    pipe = make_pipeline(StandardScaler(), KernelDistiller("rbf", ridge=0.1, gamma=0.5)).fit(X, y)
    scaler, model = pipe[0], pipe[-1]
    by_pipe = ReferenceRisk.from_distiller(pipe, X_val, np.sin(X_val[:, 0]))
    by_hand = ReferenceRisk.from_distiller(model, scaler.transform(X_val), np.sin(X_val[:, 0]))
    assert by_pipe.quadratic(2).argmin() == pytest.approx(by_hand.quadratic(2).argmin(), rel=1e-12)
    # the reference predictions are those of the pipeline itself (step 2, gt_weight 0.5 by default)
    np.testing.assert_allclose(by_pipe.risk([0.5]), np.mean((pipe.predict(X_val) - np.sin(X_val[:, 0])) ** 2),
                               rtol=1e-10)
    assert OneShotRisk.from_distiller(pipe).risk() == OneShotRisk.from_distiller(model).risk()
    y_star = np.sin(X[:, 0])
    assert ExpectedTrainingRisk.from_distiller(pipe, y_star, 0.01).risk() == \
        ExpectedTrainingRisk.from_distiller(model, y_star, 0.01).risk()
    np.testing.assert_array_equal(select_steps(pipe, 5).scores, select_steps(model, 5).scores)
    with pytest.raises(TypeError, match="Pipeline ending in a KernelDistiller"):
        OneShotRisk.from_distiller(make_pipeline(StandardScaler(), KernelRidge()).fit(X, y))
    with pytest.raises(TypeError, match="KernelDistiller"):
        OneShotRisk.from_distiller(KernelRidge().fit(X, y))


def test_missing_targets_are_refused():
    # An object array holding None passed scikit-learn's finiteness check and became NaN afterwards,
    # so every prediction was NaN; float NaN and inf are refused by scikit-learn's own check.
    X = np.arange(4.0)[:, None]
    with pytest.raises(ValueError, match="`y` must hold finite numbers"):
        KernelDistiller().fit(X, np.array([1.0, None, 2.0, 3.0], dtype=object))
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="y"):
            KernelDistiller().fit(X, np.array([1.0, bad, 2.0, 3.0]))
    KernelDistiller().fit(X, np.array([1.0, 2, 2.5, 3], dtype=object))  # numbers in an object array are fine


def test_default_weights_are_ones_the_estimator_accepts():
    # optimal_gt_weight(crit, step=2) returned 3.10 here under the old unconstrained default
    X, y = sine_data(25, 0.5, seed=0)
    model = KernelDistiller("rbf", ridge=0.3, gamma=GAMMA).fit(X, y)
    X_ref = np.linspace(0, 1, 51)[:, None]
    crit = ReferenceRisk.from_distiller(model, X_ref, np.sin(2 * np.pi * X_ref[:, 0]))
    free = optimal_gt_weight(crit, 2, constrained=False)
    assert not 0 <= free <= 1  # the setting exercises the clip
    w = optimal_gt_weight(crit, 2)
    assert w == float(np.clip(free, 0, 1))
    KernelDistiller("rbf", ridge=0.3, gamma=GAMMA, gt_weight=w).fit(X, y)  # accepted by default
    sched = greedy_schedule(crit, 4)
    assert sched.constrained and np.all((sched.gt_weight >= 0) & (sched.gt_weight <= 1))
    KernelDistiller("rbf", ridge=0.3, gamma=GAMMA, **sched.estimator_params()).fit(X, y)
    free_sched = greedy_schedule(crit, 4, constrained=False)
    assert free_sched.estimator_params()["allow_any_weight"]


@pytest.mark.parametrize("solver", EXACT_EIGH_SOLVERS)
def test_every_exact_solver_gives_descending_orthonormal_eigenpairs_without_touching_K(solver):
    X, _ = sine_data(60, 0.1, seed=1)
    K = rbf_kernel(X, gamma=GAMMA)
    K_copy = K.copy()
    spec = eigh_gram(K, solver=solver)
    np.testing.assert_array_equal(K, K_copy)
    assert np.all(np.diff(spec.evals) <= 0)
    np.testing.assert_allclose(spec.evecs.T @ spec.evecs, np.eye(60), atol=1e-12)
    np.testing.assert_allclose((spec.evecs * spec.evals) @ spec.evecs.T, K, atol=1e-12)
    np.testing.assert_allclose(spec.evals, np.linalg.eigvalsh(K)[::-1], atol=1e-13)
    # overwrite=True may use K's memory: the result is the same
    own = K.copy()
    np.testing.assert_allclose(eigh_gram(own, overwrite=True, solver=solver).evals, spec.evals, atol=1e-13)


def test_solver_override_by_environment(monkeypatch):
    X, y = sine_data(30, 0.1, seed=2)
    ref = KernelDistiller("rbf", gamma=GAMMA).fit(X, y).predict(X)
    monkeypatch.setenv("KERNELDISTILL_EIGH", "numpy")
    np.testing.assert_allclose(KernelDistiller("rbf", gamma=GAMMA).fit(X, y).predict(X), ref, atol=1e-10)
    monkeypatch.setenv("KERNELDISTILL_EIGH", "lapack")
    with pytest.raises(ValueError, match="KERNELDISTILL_EIGH"):
        KernelDistiller("rbf", gamma=GAMMA).fit(X, y)
