"""Issue 18, "Kernel inputs": each bad input of the report gets one clear error (or warning) naming the
argument, what was expected and what came; each test reproduces the reported case first."""
import math
import re
import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kerneldistill import _validation
from kerneldistill._validation import RIDGE_FLOOR_RTOL, PrecisionWarning, available_memory_bytes
from kerneldistill.estimator import KernelDistiller, fit_memory_bytes
from kerneldistill.joint import MAX_JOINT_STEPS, joint_power_coefficients, joint_schedule
from kerneldistill.optimal import (ExpectedTrainingRisk, OneShotRisk, ReferenceRisk, greedy_schedule,
                                   optimal_gt_weight)
from kerneldistill.ridge_path import minimise_over_ridge, proposition_2_3, ridge_weight_grid, tune_ridge_and_weight
from kerneldistill.step_selection import select_steps


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 1))
    y = np.sin(2 * np.pi * X[:, 0]) + 0.1 * rng.standard_normal(40)
    model = KernelDistiller("rbf", ridge=0.1, gamma=10.0).fit(X, y)
    X_val = rng.uniform(size=(30, 1))
    y_val = np.sin(2 * np.pi * X_val[:, 0])
    return X, y, model, X_val, y_val, ReferenceRisk.from_distiller(model, X_val, y_val)


@pytest.fixture(scope="module")
def wide():
    """The report's B5 setting: a linear kernel with p > n, so every Gram eigenvalue is far from 0."""
    rng = np.random.default_rng(0)
    n, p = 50, 200
    X = rng.standard_normal((n, p))
    y = X @ (rng.standard_normal(p) / np.sqrt(p)) + 0.5 * rng.standard_normal(n)
    return X, y, KernelDistiller("linear", ridge=1.0).fit(X, y)


# --------------------------------------------------------------------------------------------------
def test_b1_string_targets_name_y_and_numeric(toy):
    X, y, model, X_val, y_val, _ = toy
    labels = np.array(["a", "b"] * 20)
    with pytest.raises(ValueError, match=r"^`y` must be numeric \(int or float\); got an array of dtype <U1 "
                                         r"\(e\.g\. 'a'\)\. For class labels"):
        KernelDistiller("rbf", gamma=10.0).fit(X, labels)
    # The same for text in an object array, in a list, and for X (fit and predict).
    with pytest.raises(ValueError, match=r"^`y` must be numeric .* dtype object \(e\.g\. 'b'\)"):
        KernelDistiller("rbf", gamma=10.0).fit(X, np.array([0.5, "b"] * 20, dtype=object))
    with pytest.raises(ValueError, match=r"^`y` must be numeric"):
        KernelDistiller("rbf", gamma=10.0).fit(X, list(labels))
    with pytest.raises(ValueError, match=r"^`X` must be numeric .* dtype <U1 \(e\.g\. 'x'\)\.$"):
        KernelDistiller("rbf", gamma=10.0).fit(np.full((40, 1), "x"), y)
    with pytest.raises(ValueError, match=r"^`X` must be numeric"):
        model.predict(np.full((3, 1), "x"))
    # The criteria take targets too: the same check names their argument.
    with pytest.raises(ValueError, match=r"^`y` must be numeric"):
        OneShotRisk(model.evals_, model.evecs_, labels, 0.1)
    with pytest.raises(ValueError, match=r"^`reference` must be numeric"):
        ReferenceRisk.from_distiller(model, X_val, np.array(["a", "b"] * 15))
    with pytest.raises(ValueError, match=r"^`y_star` must be numeric"):
        ExpectedTrainingRisk(model.evals_, model.evecs_, labels, 0.01, 0.1)
    # Numbers stored as objects are numbers: accepted, and the fit is the float fit's.
    as_objects = KernelDistiller("rbf", ridge=0.1, gamma=10.0).fit(X, y.astype(object))
    np.testing.assert_array_equal(as_objects.predict(X_val), model.predict(X_val))


# --------------------------------------------------------------------------------------------------
def test_b2_joint_schedule_refuses_steps_beyond_its_measured_bound(toy, monkeypatch):
    crit = toy[5]
    # Refused before any work (the polish would otherwise run for minutes at 1000 steps).
    import kerneldistill.joint as joint

    monkeypatch.setattr(joint, "_joint_weights", lambda *a: pytest.fail("the bound must be checked first"))
    for steps in (1000, MAX_JOINT_STEPS + 1):
        with pytest.raises(ValueError) as err:
            joint_schedule(crit, steps)
        msg = str(err.value)
        assert msg.startswith(f"`steps`={steps} is more than joint_schedule accepts ({MAX_JOINT_STEPS})")
        assert f"greedy_schedule(criterion, {steps})" in msg and "over 5 minutes reported at 1000" in msg
    # The alternative named in the message runs at that length.
    greedy = greedy_schedule(crit, MAX_JOINT_STEPS + 1)
    assert greedy.gt_weight.shape == (MAX_JOINT_STEPS,) and np.all(np.isfinite(greedy.risk))
    assert "steps^2" in joint_schedule.__doc__ and "greedy_schedule" in joint_schedule.__doc__


# --------------------------------------------------------------------------------------------------
def test_b3_a_non_criterion_is_named_and_a_distiller_gets_the_recipe(toy):
    X, y, model, X_val, y_val, crit = toy
    calls = {
        "joint_schedule": lambda c: joint_schedule(c, 3),
        "joint_power_coefficients": lambda c: joint_power_coefficients(c, 3),
        "greedy_schedule": lambda c: greedy_schedule(c, 3),
        "optimal_gt_weight": lambda c: optimal_gt_weight(c),
        "ridge_weight_grid": lambda c: ridge_weight_grid(c, [0.1, 1.0]),
        "tune_ridge_and_weight": lambda c: tune_ridge_and_weight(c, [0.1, 1.0]),
        "proposition_2_3": lambda c: proposition_2_3(c, [0.1, 1.0]),
    }
    pipe = make_pipeline(StandardScaler(), KernelDistiller("rbf", ridge=0.1, gamma=10.0)).fit(X, y)
    for name, call in calls.items():
        with pytest.raises(TypeError, match=r"^`criterion` must be a criterion, ReferenceRisk, ExpectedTrainingRisk "
                                            r"or OneShotRisk \(kerneldistill\.optimal\); got None \(NoneType\)\.$"):
            call(None)
        for fitted in (model, pipe):
            with pytest.raises(TypeError) as err:
                call(fitted)
            assert f"not a {type(fitted).__name__}" in str(err.value), name
            assert "ReferenceRisk.from_distiller(model, X_val, y_val)" in str(err.value), name
    # The recipe in the message works.
    recipe = ReferenceRisk.from_distiller(model, X_val, y_val)
    assert joint_schedule(recipe, 3).risk[-1] == pytest.approx(joint_schedule(crit, 3).risk[-1], rel=1e-12)


# --------------------------------------------------------------------------------------------------
def test_b4_constrained_takes_only_a_bool(toy):
    X, y, model, _, _, crit = toy
    # The report: constrained='no' ran constrained, silently. Every function taking it refuses non-bools.
    calls = [
        lambda c: joint_schedule(crit, 3, constrained=c),
        lambda c: joint_power_coefficients(crit, 3, constrained=c),
        lambda c: greedy_schedule(crit, 3, constrained=c),
        lambda c: optimal_gt_weight(crit, constrained=c),
        lambda c: ridge_weight_grid(crit, [0.1, 1.0], constrained=c),
        lambda c: tune_ridge_and_weight(crit, [0.1, 1.0], constrained=c),
        lambda c: crit.quadratic(2).argmin(constrained=c),
    ]
    for call in calls:
        for bad in ("no", "False", 0, 1, None, 0.0):
            with pytest.raises(TypeError, match=rf"^`constrained` must be a bool \(True or False\); got {re.escape(repr(bad))} "):
                call(bad)
        # numpy's bools are bools, and mean what Python's do.
        got, want = call(np.bool_(False)), call(False)
        np.testing.assert_array_equal(getattr(got, "gt_weight", got), getattr(want, "gt_weight", want))
    # This toy's unconstrained joint optimum leaves [0, 1], so 'no' (truthy) would have clipped it.
    free = joint_schedule(crit, 3, constrained=False).gt_weight
    assert np.any((free < 0) | (free > 1))
    # The same flaw in the other bool switch of the kernel API, allow_any_weight.
    with pytest.raises(TypeError, match=r"^`allow_any_weight` must be a bool .* got 'no' \(str\)"):
        KernelDistiller("rbf", gamma=10.0, gt_weight=2.0, allow_any_weight="no").fit(X, y)
    with pytest.raises(TypeError, match=r"^`allow_any_weight` must be a bool"):
        select_steps(model, 3, gt_weight=0.5, allow_any_weight="yes")


# --------------------------------------------------------------------------------------------------
def test_b5_a_numerically_zero_ridge_is_refused_and_huge_weights_warn(wide):
    X, y, model = wide
    top = float(model.evals_.max())
    floor = RIDGE_FLOOR_RTOL * top
    # The report: ridge 1e-15 or 1e-300 gave NaN risks, a weight of -2e16 and a LAPACK error.
    for ridge in (1e-15, 1e-300):
        with pytest.raises(ValueError) as err:
            OneShotRisk(model.evals_, model.evecs_, y, ridge)
        msg = str(err.value)
        assert msg.startswith(f"`ridge`={ridge:.3g} is numerically zero against the spectrum")
        smallest = float(re.search(r"Use `ridge` >= ([0-9.e+-]+) \(the smallest accepted\)", msg).group(1))
        assert floor <= smallest <= floor * 1.01  # the floor, rounded up to 3 digits
    # Every criterion and every way of moving to another ridge refuses it the same way.
    crit = OneShotRisk.from_distiller(model)
    with pytest.raises(ValueError, match=r"^`ridge`=1e-15 is numerically zero"):
        crit.at_ridge(1e-15)
    with pytest.raises(ValueError, match=r"^`ridge`=1e-15 is numerically zero"):
        ReferenceRisk(model.evals_, model.evecs_, y, 1e-15, X[:5] @ X.T, y[:5])
    with pytest.raises(ValueError, match=r"^`ridge`=1e-15 is numerically zero"):
        ExpectedTrainingRisk(model.evals_, model.evecs_, y, 0.25, 1e-15)
    ref = ReferenceRisk.from_distiller(model, X[:5], y[:5])
    with pytest.raises(ValueError, match=r"^`ridges`=1e-15 is numerically zero"):
        ridge_weight_grid(ref, [1e-15, 1.0])
    # The smallest ridge the message names is accepted, with finite risks everywhere (no LAPACK error),
    # and a PrecisionWarning because its optimal weight is huge.
    at_floor = crit.at_ridge(smallest)  # the value printed is accepted
    with pytest.raises(ValueError, match=r"numerically zero"):
        crit.at_ridge(floor * (1 - 1e-9))  # and just below the floor is not
    with pytest.warns(PrecisionWarning, match=r"^`gt_weight` reaches .* relative precision"):
        sched = joint_schedule(at_floor, 3, constrained=False)
    assert np.all(np.isfinite(sched.risk)) and np.all(np.isfinite(sched.gt_weight))
    # Ridges 1e-8 .. 1e-12: finite weights of 1e10 .. 1e14 in absolute value, with a warning from each
    # producer and from the estimator that would fit with them.
    for ridge in (1e-8, 1e-10, 1e-12):
        c = crit.at_ridge(ridge)
        with pytest.warns(PrecisionWarning) as caught:
            w = optimal_gt_weight(c, constrained=False)
        assert 1e9 < abs(w) < 1e15 and len(caught) == 1
        digits = float(re.search(r"about eps \* \|gt_weight\| = ([0-9.e+-]+)", str(caught[0].message)).group(1))
        assert digits == pytest.approx(np.finfo(np.float64).eps * abs(w), rel=0.05)  # printed to 2 digits
        with pytest.warns(PrecisionWarning):
            greedy_schedule(c, 3, constrained=False)
        with pytest.warns(PrecisionWarning):
            ridge_weight_grid(c, [ridge, 1.0], constrained=False)
        with pytest.warns(PrecisionWarning):
            KernelDistiller("linear", ridge=ridge, gt_weight=w, allow_any_weight=True).fit(X, y)
    # The warning's premise: with |w| = 2e12 (ridge 1e-10) the prediction filters lose about eps |w| against
    # a 60-digit evaluation of the recursion q_t = (w + (1 - w) d q_(t-1)) / (d + ridge); at a moderate
    # ridge (|w| ~ 200) they keep full precision.
    from mpmath import mp, mpf

    from kerneldistill.filters import filter_diagonals

    def q_error(ridge, w):
        _, q = filter_diagonals(model.evals_, ridge, np.array([w, 0.5]), [3])
        with mp.workdps(60):
            ref = []
            for d in model.evals_:
                d, lam, qt = mpf(float(d)), mpf(ridge), 1 / (mpf(float(d)) + mpf(ridge))
                for alpha in (mpf(w), mpf(0.5)):
                    qt = (alpha + (1 - alpha) * d * qt) / (d + lam)
                ref.append(float(qt))
        return float(np.max(np.abs(q[0] - ref)) / np.max(np.abs(ref)))

    eps = np.finfo(np.float64).eps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        w_tiny = optimal_gt_weight(crit.at_ridge(1e-10), constrained=False)
    w_moderate = optimal_gt_weight(crit.at_ridge(1.0), constrained=False)
    assert 0.01 * eps * abs(w_tiny) < q_error(1e-10, w_tiny) < eps * abs(w_tiny)
    assert q_error(1.0, w_moderate) < 1e-13
    # Moderate ridges give moderate weights (hundreds here) and no warning; [0, 1] weights never warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = optimal_gt_weight(crit.at_ridge(1.0), constrained=False)
        assert 10 < abs(w) < 1e4
        joint_schedule(crit.at_ridge(1e-12), 3)  # constrained: weights in [0, 1]


# --------------------------------------------------------------------------------------------------
def test_b17_select_steps_and_the_estimator_agree_on_the_weight_range(toy):
    X, y, model, _, _, _ = toy
    # The report: select_steps accepted 2.0 while KernelDistiller refused 1.5. Now one check owns the
    # range, so both refuse with the same words.
    with pytest.raises(ValueError) as by_select:
        select_steps(model, 5, gt_weight=2.0)
    with pytest.raises(ValueError) as by_estimator:
        KernelDistiller("rbf", ridge=0.1, gamma=10.0, gt_weight=2.0).fit(X, y)
    assert str(by_select.value) == str(by_estimator.value)
    assert "Pass allow_any_weight=True" in str(by_select.value)
    with pytest.raises(ValueError, match=r"^`gt_weights` must lie in \[0, 1\]"):
        select_steps(model, 5, gt_weights=[0.5, 1.5])
    # The same opt-in opens both: explicitly, or through the distiller's own allow_any_weight.
    explicit = select_steps(model, 5, gt_weight=2.0, allow_any_weight=True)
    free_model = KernelDistiller("rbf", ridge=0.1, gamma=10.0, allow_any_weight=True).fit(X, y)
    inherited = select_steps(free_model, 5, gt_weight=2.0)
    np.testing.assert_allclose(explicit.scores, inherited.scores, rtol=1e-12)
    assert np.all(np.isfinite(explicit.scores))


# --------------------------------------------------------------------------------------------------
def test_b18_minimise_over_ridge_skips_nan_and_says_so():
    grid = [0.01, 0.1, 1.0, 10.0, 100.0]
    # The report: a function returning NaN gave (0.1, nan). NaN everywhere is refused.
    with pytest.raises(ValueError, match=r"^`fn` returned NaN at every one of the 5 ridges \(0\.01 \.\. 100\)"):
        minimise_over_ridge(lambda r: float("nan"), grid)

    def fn(r):  # NaN at the two smallest ridges, then (log r - log 3)^2: the minimum is at 3
        return float("nan") if r < 0.05 else (math.log(r) - math.log(3.0)) ** 2

    with pytest.warns(UserWarning, match=r"`fn` returned NaN at 1 of 5 ridges \(0\.01\); they are skipped\."):
        lam, value = minimise_over_ridge(fn, grid)
    assert lam == pytest.approx(3.0, rel=1e-5) and value == pytest.approx(0.0, abs=1e-9)
    # The NaN at the grid's first point no longer wins, whatever order it comes in.
    with pytest.warns(UserWarning, match=r"at 2 of 6 ridges \(0\.001, 0\.01\)"):
        lam, _ = minimise_over_ridge(fn, grid, extra=[1e-3])
    assert lam == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(ValueError, match=r"^`extra` must be a non-empty 1-D sequence of finite ridges > 0"):
        minimise_over_ridge(fn, grid, extra=[float("nan")])


# --------------------------------------------------------------------------------------------------
def test_b9_a_fit_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    # The report: n = 60000 under a 6 GB cap died in scikit-learn's pairwise code (13.4 GiB for a float32
    # Gram matrix). With 6 GiB "available", the fit is refused in one line before any kernel is evaluated.
    available = 6 * 2**30
    fitted = KernelDistiller("rbf", ridge=0.1, gamma=10.0).fit(np.zeros((5, 1), np.float32), np.zeros(5, np.float32))
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: available)
    monkeypatch.setattr(KernelDistiller, "_kernel", lambda *a, **k: pytest.fail("allocated before the check"))
    n = 60000
    X = np.zeros((n, 1), dtype=np.float32)  # 240 kB: the test allocates nothing large
    y = np.zeros(n, dtype=np.float32)
    with pytest.raises(MemoryError) as err:
        KernelDistiller("rbf", gamma=1.0).fit(X, y)
    msg = str(err.value)
    assert "\n" not in msg
    need = 2 * n * n * 4
    largest = available // (5 * n * 4)
    assert msg.startswith(f"KernelDistiller.fit: spectrum='exact' at n_samples=60000 needs about {need / 2**30:.1f} GiB")
    assert "26.8 GiB" in msg and "about 6.0 GiB is available" in msg
    assert f"use spectrum='nystroem' with n_components <= {largest}" in msg
    # The size suggested fits by the same estimate, one more does not: the advice is consistent.
    assert fit_memory_bytes(n, 4, "nystroem", largest) <= available < fit_memory_bytes(n, 4, "nystroem", largest + 1)
    # The same flaw at prediction time: the cross kernel against 60000 training points is checked too.
    fitted.X_fit_ = X  # as if fitted on the 60000 points (the cross kernel is all this test needs)
    rows = available // (2 * n * 4)
    with pytest.raises(MemoryError, match=rf"^KernelDistiller: the cross kernel of 20000 points against the 60000 "
                                          rf"training points needs about 8\.9 GiB .* predict in batches of at most "
                                          rf"{rows} rows\.$"):
        fitted.kernel_matrix(np.zeros((20000, 1), dtype=np.float32))
    # topk on a computed kernel needs the n x n Gram matrix too; Nystroem too large is refused the same way.
    with pytest.raises(MemoryError, match=r"spectrum='topk' at n_samples=60000"):
        KernelDistiller("rbf", gamma=1.0, spectrum="topk", n_components=100).fit(X, y)
    with pytest.raises(MemoryError, match=rf"spectrum='nystroem' with n_components={largest + 1} .*"
                                          rf"n_components <= {largest} "):
        KernelDistiller("rbf", gamma=1.0, spectrum="nystroem", n_components=largest + 1).fit(X, y)


def test_b9_memory_check_passes_small_fits_and_reads_this_machine(monkeypatch, toy):
    X, y, model, X_val, _, _ = toy
    # Where no limit can be read (None), the check is skipped; a fit that fits is unchanged. (Checked even
    # at this size; by default allocations under 64 MiB are not, since reading the limit costs ~0.25 ms.)
    import kerneldistill.estimator as estimator

    monkeypatch.setattr(estimator, "_MEMORY_CHECK_MIN_BYTES", 0)
    calls, want = [], model.predict(X_val)
    for value in (None, 2**40):
        monkeypatch.setattr(_validation, "available_memory_bytes", lambda v=value: calls.append(v) or v)
        got = KernelDistiller("rbf", ridge=0.1, gamma=10.0).fit(X, y)
        np.testing.assert_array_equal(got.predict(X_val), want)
    assert calls == [None, None, 2**40, 2**40]  # fit and predict each asked once
    # A precomputed Gram matrix (already in memory) that cannot be copied once more is told about topk
    # too, which works on it in place, and that advice fits by the same estimate.
    n = 1000
    monkeypatch.setattr(_validation, "available_memory_bytes", lambda: int(1.5 * n * n * 8))
    with pytest.raises(MemoryError, match=r"or spectrum='topk' with n_components=100 \(ARPACK"):
        KernelDistiller("precomputed").fit(np.eye(n), np.zeros(n))
    assert fit_memory_bytes(n, 8, "topk", 100, precomputed=True) <= 1.5 * n * n * 8
    monkeypatch.undo()
    # On Linux the real reading is a positive byte count no larger than MemAvailable.
    real = available_memory_bytes()
    try:
        with open("/proc/meminfo") as fh:
            mem_available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except OSError:
        pytest.skip("no /proc/meminfo here")
    assert isinstance(real, int) and 0 < real <= mem_available
