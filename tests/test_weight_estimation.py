"""Estimators of the optimal ground-truth weight against brute force where the answer is exact.

Exact setting: a student that is linear in its parameters and solved to convergence on the mixed
target ``alpha y + (1 - alpha) teacher(X)`` has outputs exactly affine in alpha (docs/theory.md 2.3), so the
two-run closed form must equal the argmin of explicit refits over a fine grid, and the kernel
surrogate must equal a brute-force grid over ``KernelDistiller`` refits. Sizes are tiny (the file
runs in well under a minute on 2 CPU cores).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge

from deepdistill.studies.weight_estimation import estimate_gt_weight, estimate_gt_weight_for_model, summary_rows
from deepdistill.studies.weight_estimators import (
    affine_optimal_weight,
    affine_residuals,
    empirical_ntk_gram,
    kernel_surrogate_weights,
    label_endpoint_is_generation_zero,
)
from kerneldistill.estimator import KernelDistiller

FINE = np.linspace(-1.0, 3.0, 4001)     # spacing 1e-3


def _brute_argmin(criterion, lo=-4.0, hi=5.0):
    """Argmin of ``criterion`` over weights by brute force: a 0.02 grid, then a 1e-4 grid around its best."""
    coarse = np.linspace(lo, hi, int(round((hi - lo) / 0.02)) + 1)
    best = coarse[np.argmin([criterion(w) for w in coarse])]
    fine = np.linspace(best - 0.02, best + 0.02, 401)
    values = np.array([criterion(w) for w in fine])
    return fine[np.argmin(values)], values.min()


def _problem(seed=0, n=60, n_val=40, p=30, k=3, noise=2.0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, k))
    X, Xv = rng.standard_normal((n, p)), rng.standard_normal((n_val, p))
    y = X @ W + noise * rng.standard_normal((n, k))
    yv = Xv @ W + noise * rng.standard_normal((n_val, k))
    return X, y, Xv, yv


def _ridge_student(X, y, teacher_fit, w, lam):
    """A ridge student solved exactly on the mixed target (an explicit refit)."""
    return Ridge(alpha=lam, fit_intercept=False).fit(X, w * y + (1 - w) * teacher_fit)


# ------------------------------------------------------------------------------------------------
# Two-run affine estimate
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lam", [3.0, 30.0])   # optima 0.85 (teacher over-fits) and 2.49 (over-regularised)
def test_two_run_estimate_equals_fine_grid_of_ridge_refits(lam):
    X, y, Xv, yv = _problem()
    teacher_fit = Ridge(alpha=lam, fit_intercept=False).fit(X, y).predict(X)
    pred = {w: _ridge_student(X, y, teacher_fit, w, lam).predict(Xv) for w in (0.0, 1.0)}
    est = affine_optimal_weight(pred[0.0], pred[1.0], yv, criterion="mse", bounds=None)
    grid_mse = np.array([np.mean((_ridge_student(X, y, teacher_fit, w, lam).predict(Xv) - yv) ** 2) for w in FINE])
    assert FINE[0] < est.unconstrained < FINE[-1]
    assert abs(est.unconstrained - FINE[np.argmin(grid_mse)]) <= 1e-3
    refit_mse = np.mean((_ridge_student(X, y, teacher_fit, est.unconstrained, lam).predict(Xv) - yv) ** 2)
    assert refit_mse <= grid_mse.min() + 1e-12                   # the closed form beats every grid point
    assert est.criterion_at_estimate == pytest.approx(refit_mse, rel=1e-9)
    # the predicted curve is the refit curve (exactly affine outputs)
    curve = affine_optimal_weight(pred[0.0], pred[1.0], yv, criterion="mse", bounds=None, curve_weights=FINE[::100])
    np.testing.assert_allclose(curve.criterion_values, grid_mse[::100], rtol=1e-9, atol=0)


def test_brier_of_a_linear_probability_model_and_clipping_to_bounds():
    # Least squares on one-hot mixed targets: the "probabilities" are exactly affine in the weight.
    rng = np.random.default_rng(1)
    n, p, K, lam = 80, 20, 4, 10.0
    W = rng.standard_normal((p, K))
    X, Xv = rng.standard_normal((n, p)), rng.standard_normal((50, p))
    labels = np.argmax(X @ W + 1.5 * rng.standard_normal((n, K)), axis=1)
    yv = np.argmax(Xv @ W + 1.5 * rng.standard_normal((50, K)), axis=1)
    onehot = np.eye(K)[labels]
    teacher_fit = Ridge(alpha=lam, fit_intercept=False).fit(X, onehot).predict(X)

    def brier(w):
        out = _ridge_student(X, onehot, teacher_fit, w, lam).predict(Xv)
        return np.sum((out - np.eye(K)[yv]) ** 2) / len(yv)

    p0, p1 = (_ridge_student(X, onehot, teacher_fit, w, lam).predict(Xv) for w in (0.0, 1.0))
    free = affine_optimal_weight(p0, p1, yv, criterion="brier", bounds=None)
    best, best_value = _brute_argmin(brier)
    assert abs(free.unconstrained - best) <= 1e-4
    assert free.unconstrained < 0.0                                  # a case where the optimum is outside [0, 1]
    assert brier(free.unconstrained) <= best_value + 1e-12
    # Default bounds (0, 1): the estimate is the nearer bound, the argmin over the bounded grid.
    clipped = affine_optimal_weight(p0, p1, yv, criterion="brier")
    inside = FINE[(FINE >= 0) & (FINE <= 1)]
    assert clipped.gt_weight == 0.0
    assert clipped.unconstrained == pytest.approx(free.unconstrained, rel=1e-12)
    assert inside[np.argmin([brier(w) for w in inside[::50]]) * 50] == clipped.gt_weight
    assert clipped.criterion_at_estimate == pytest.approx(brier(0.0), rel=1e-9)


def test_end_points_at_other_weights_give_the_same_optimum():
    X, y, Xv, yv = _problem(seed=3)
    lam = 1.0
    teacher_fit = Ridge(alpha=lam, fit_intercept=False).fit(X, y).predict(X)
    pa, pb = (_ridge_student(X, y, teacher_fit, w, lam).predict(Xv) for w in (0.2, 0.7))
    q0, q1 = (_ridge_student(X, y, teacher_fit, w, lam).predict(Xv) for w in (0.0, 1.0))
    a = affine_optimal_weight(pa, pb, yv, criterion="mse", weight_0=0.2, weight_1=0.7, bounds=None)
    b = affine_optimal_weight(q0, q1, yv, criterion="mse", bounds=None)
    assert a.unconstrained == pytest.approx(b.unconstrained, rel=1e-9)


def test_affine_residuals_are_zero_on_the_path_and_measure_the_gap_off_it():
    rng = np.random.default_rng(0)
    p0, p1 = rng.random((20, 3)), rng.random((20, 3))
    on = [p0 + w * (p1 - p0) for w in (0.25, 0.5)]
    np.testing.assert_allclose(affine_residuals([0.25, 0.5], on, p0, p1), 0.0, atol=1e-28)
    bump = rng.standard_normal((20, 3))
    off = affine_residuals([0.5], [on[1] + bump], p0, p1)[0]
    assert off == pytest.approx(np.sum(bump**2) / np.sum((p1 - p0) ** 2), rel=1e-12)


def test_bad_inputs_name_the_argument():
    p = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="criterion"):
        affine_optimal_weight(p, p, [0, 1, 0, 1], criterion="nll")
    with pytest.raises(ValueError, match="weight_0"):
        affine_optimal_weight(p, p, [0, 1, 0, 1], weight_0=1.0)
    with pytest.raises(ValueError, match="pred_0.*pred_1"):
        affine_optimal_weight(p, np.full((3, 2), 0.5), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="targets"):
        affine_optimal_weight(p, p, [0, 1, 2, 1])               # class 2 of a 2-class problem
    with pytest.raises(ValueError, match="bounds"):
        affine_optimal_weight(p, p, [0, 1, 0, 1], bounds=(1, 0))
    # identical end points: every weight is optimal, flagged, the labels end point returned
    same = affine_optimal_weight(p, p, [0, 1, 0, 1])
    assert same.degenerate and same.gt_weight == 1.0


# ------------------------------------------------------------------------------------------------
# Kernel surrogate
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step, previous", [(2, ()), (3, (0.4,))])
def test_kernel_validation_optimum_matches_brute_force_refits(step, previous):
    X, y, Xv, yv = _problem(seed=2, n=50, n_val=30, p=3, noise=2.0)
    lam = 0.5
    est = kernel_surrogate_weights(X, y, Xv, yv, kernel="rbf", gamma=0.2, ridge=lam, step=step,
                                   previous=previous, bounds=None)
    offset = y.mean(axis=0)

    def val_mse(w):
        sched = list(previous) + [w]
        m = KernelDistiller("rbf", ridge=lam, gt_weight=sched if len(sched) > 1 else w, steps=step,
                            allow_any_weight=True, gamma=0.2).fit(X, y - offset)
        return np.mean((m.predict(Xv) + offset - yv) ** 2)

    best, best_value = _brute_argmin(val_mse)
    assert abs(est.validation_unconstrained - best) <= 1e-4
    assert val_mse(est.validation_unconstrained) <= best_value + 1e-12
    clipped = kernel_surrogate_weights(X, y, Xv, yv, kernel="rbf", gamma=0.2, ridge=lam, step=step,
                                       previous=previous, bounds=(0.0, 1.0))
    assert clipped.validation == pytest.approx(min(max(best, 0.0), 1.0), abs=1e-4)


def test_kernel_one_shot_matches_explicit_hat_matrices():
    X, y, _, _ = _problem(seed=2, n=50, p=3, noise=2.0)
    lam, n = 5.0, 50
    est = kernel_surrogate_weights(X, y, kernel="linear", ridge=lam, bounds=None)
    yc = y - y.mean(axis=0)

    def hat(w):  # the smoother of step 2 at weight w, by refitting on the identity's columns
        return KernelDistiller("linear", ridge=lam, gt_weight=w, steps=2).fit(X, np.eye(n)).fitted_values()

    r = {}
    for w in (0.0, 1.0):
        L = hat(w)
        r[w] = (yc - L @ yc) / (1 - np.trace(L) / n)
    best, _ = _brute_argmin(lambda a: np.sum(((1 - a) * r[0.0] + a * r[1.0]) ** 2))
    assert abs(est.one_shot_unconstrained - best) <= 1e-4
    assert est.validation is None


def test_linear_kernel_shortcut_equals_the_full_eigendecomposition():
    # p < n: the linear kernel goes through the feature SVD; the precomputed Gram through eigh.
    X, y, Xv, yv = _problem(seed=7, n=50, n_val=30, p=8, noise=2.0)
    for ridge in (0.7, "gcv"):
        fast = kernel_surrogate_weights(X, y, Xv, yv, kernel="linear", ridge=ridge, bounds=None)
        full = kernel_surrogate_weights(X @ X.T, y, Xv @ X.T, yv, kernel="precomputed", ridge=ridge, bounds=None)
        assert fast.ridge == pytest.approx(full.ridge, rel=1e-12)
        assert fast.validation_unconstrained == pytest.approx(full.validation_unconstrained, rel=1e-8)
        assert fast.one_shot_unconstrained == pytest.approx(full.one_shot_unconstrained, rel=1e-8)


def test_matched_ridge_reproduces_the_teacher_training_residual():
    X, y, _, _ = _problem(seed=5, n=50)
    target = 0.6 * np.mean(np.sum((y - y.mean(0)) ** 2, axis=1))
    est = kernel_surrogate_weights(X, y, kernel="rbf", gamma=0.3, ridge="match", match_residual=target)
    fit = KernelRidge(alpha=est.ridge, kernel="rbf", gamma=0.3).fit(X, y - y.mean(0)).predict(X)
    assert np.mean(np.sum((fit - (y - y.mean(0))) ** 2, axis=1)) == pytest.approx(target, rel=1e-6)
    with pytest.raises(ValueError, match="match_residual"):
        kernel_surrogate_weights(X, y, ridge="match")
    # A linear kernel on 3 features cannot fit 50 noisy targets closely: flagged, not silently used.
    with pytest.warns(UserWarning, match="cannot reach"):
        low = kernel_surrogate_weights(X[:, :3], y, kernel="linear", ridge="match", match_residual=1e-3)
    assert "UNREACHABLE" in low.ridge_rule


def test_empirical_ntk_of_a_linear_model_is_k_times_the_augmented_linear_kernel():
    from deepdistill.core.models import LinearClassifier

    torch.manual_seed(0)
    model = LinearClassifier((5,), 3).double()
    xa, xb = torch.randn(7, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    # f_k = w_k . x + b_k: each output's gradient is (x, 1) on its own row, so the trace NTK is K (x.x' + 1).
    np.testing.assert_allclose(empirical_ntk_gram(model, xa, xb, batch_size=3), 3 * (xa @ xb.T + 1).numpy(),
                               rtol=1e-12, atol=1e-12)
    gram = empirical_ntk_gram(model, xa)
    np.testing.assert_allclose(gram, 3 * (xa @ xa.T + 1).numpy(), rtol=1e-12, atol=1e-12)


def test_label_end_point_check_per_method():
    assert all(label_endpoint_is_generation_zero(m) for m in ("sd_kd", "sd_mse", "sd_zs"))
    assert not label_endpoint_is_generation_zero("ls_kd")   # no ground-truth weight: not estimable
    assert not label_endpoint_is_generation_zero("ce")


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------

def test_user_model_path_with_exact_linear_students_matches_its_grid():
    # train_fn solves a linear least-squares student exactly: outputs affine in the weight, and the
    # teacher (fit on labels) is exactly the alpha = 1 student, so two runs give the grid's optimum.
    X, y, Xv, yv = _problem(seed=0, n=60, n_val=40)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    lam = 3.0                                                      # interior optimum (~0.85)

    class Lin(torch.nn.Module):
        def __init__(self, W):
            super().__init__()
            self.W = torch.nn.Parameter(W)

        def forward(self, x):
            return x @ self.W

    def solve(targets):
        return Lin(torch.linalg.solve(Xt.T @ Xt + lam * torch.eye(X.shape[1], dtype=Xt.dtype), Xt.T @ targets))

    calls = []

    def train_fn(gt_weight, teacher):
        calls.append(gt_weight)
        if teacher is None:
            return solve(yt)
        with torch.no_grad():
            return solve(gt_weight * yt + (1 - gt_weight) * teacher(Xt))

    loader = [(torch.as_tensor(Xv[:20]), torch.as_tensor(yv[:20])), (torch.as_tensor(Xv[20:]), torch.as_tensor(yv[20:]))]
    grid = np.linspace(0, 1, 41)
    res = estimate_gt_weight_for_model(train_fn, loader, test_loader=loader, grid=grid, criterion="mse",
                                       estimators=("two_run",))
    study = res.to_dict()
    best = study["approaches"]["grid"]["gt_weight"]
    est = study["approaches"]["two_run"]
    assert 0.0 < est["gt_weight"] < 1.0
    assert abs(est["gt_weight"] - best) <= 0.5 / 40 + 1e-12
    assert est["affine_residual"]["max"] < 1e-20                   # exactly affine
    assert est["training_runs"] == 3                               # teacher, alpha = 0, final
    assert study["approaches"]["grid"]["training_runs"] == 1 + 41
    assert calls.count(None) == 1                                  # one teacher, shared
    assert res.chosen == "two_run" and res.gt_weight == est["gt_weight"]
    assert res.student is not res.teacher and res.student_metrics["test"] == study["runs"][est["final_key"]]["test"]


def test_config_path_shares_the_teacher_and_itemises_costs(tmp_path):
    cfg = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=300, epochs=2,
               batch_size=64, lr=1e-2, device="cpu", method="sd_mse", label_noise=0.2, checkpoint_every=0)
    res = estimate_gt_weight(cfg, tmp_path, seeds=(0,), grid=[0.0, 0.5, 1.0],
                             estimators=("two_run", "kernel_features", "one_shot_features"))
    study = res.to_dict()["per_seed"][0]
    teacher_dir = tmp_path / "runs" / "seed_0" / "teacher"
    student_dir = tmp_path / "runs" / "seed_0" / f"gt_{0.5:+.10f}"
    assert (teacher_dir / "generation_0.pt").read_bytes() == (student_dir / "generation_0.pt").read_bytes()
    record = json.loads((student_dir / "record.json").read_text())
    teacher_record = json.loads((teacher_dir / "record.json").read_text())
    assert record["generations"][0]["history"] == teacher_record["generations"][0]["history"]   # loaded, not retrained
    grid = study["approaches"]["grid"]
    crit = [c["val_criterion"] for c in grid["curve"]]
    assert grid["gt_weight"] == [0.0, 0.5, 1.0][int(np.argmin(crit))]
    assert grid["training_runs"] == 4
    two = study["approaches"]["two_run"]
    # the estimate is the closed form on the stored validation probabilities of its end points
    assert two["endpoint_keys"] == [f"w={0.0!r}", "generation 0"]
    assert two["training_runs"] == 2 + (two["final_key"] not in two["endpoint_keys"])
    expected_wall = sum(study["runs"][k]["wall_time_s"] for k in two["run_keys"]) + two["overhead_s"]
    assert two["wall_time_s"] == pytest.approx(expected_wall, rel=1e-12)
    assert 0.0 <= study["approaches"]["kernel_features"]["gt_weight"] <= 1.0
    assert (tmp_path / "estimate_weight.json").exists() and (tmp_path / "estimate_weight.csv").exists()
    rows = {r["approach"]: r for r in res.summary()}
    assert rows["grid"]["runs_ratio_to_grid"] == 1.0 and math.isnan(rows["grid"]["test_accuracy_sd"])
    # generation 1's teacher is generation 0 (trained on the labels: weight 1)
    assert rows["teacher"]["gt_weight_mean"] == 1.0
    assert rows["teacher"]["test_accuracy_mean"] == study["runs"]["generation 0"]["test"]["accuracy"]


def test_summary_teacher_row_is_the_generation_before_the_students():
    # Students at generation 2 distil from generation 1 (weight 0.3), not from generation 0.
    runs = {"generation 0": {"gt_weight": 1.0, "wall_time_s": 2.0, "test": {"accuracy": 0.5, "nll": 1.0, "ece": 0.1}},
            "generation 1": {"gt_weight": 0.3, "wall_time_s": 3.0, "test": {"accuracy": 0.7, "nll": 0.8, "ece": 0.05}}}
    per_seed = [{"seed": 0, "teacher_keys": ["generation 0", "generation 1"], "runs": runs, "approaches": {}}]
    (teacher,) = summary_rows(per_seed)
    assert teacher["approach"] == "teacher"
    assert teacher["gt_weight_mean"] == 0.3 and teacher["test_accuracy_mean"] == 0.7
    assert teacher["training_runs"] == 2 and teacher["wall_time_s"] == 5.0


def test_config_path_refuses_methods_without_a_teacher_weight(tmp_path):
    with pytest.raises(ValueError, match="method"):
        estimate_gt_weight(dict(method="ls_kd", dataset="digits", model="mlp"), tmp_path)
    with pytest.raises(ValueError, match="generation"):
        estimate_gt_weight(dict(method="sd_kd", dataset="digits", model="mlp"), tmp_path, generation=0)
    with pytest.raises(ValueError, match="estimator"):
        estimate_gt_weight(dict(method="sd_kd", dataset="digits", model="mlp"), tmp_path, estimators=("magic",))
    short = dict(method="sd_kd", dataset="digits", model="mlp", generations=3, gt_weight=[0.9, 0.5],
                 temperature=[2.0, 3.0])
    with pytest.raises(ValueError, match=r"`config.temperature` lists 2 .*`generation`=3"):
        estimate_gt_weight(short, tmp_path, generation=3)


def test_config_path_trains_sd_mse_students_outside_the_unit_interval(tmp_path):
    # [BA21]'s loss is bounded below for any weight: with allow_any_weight the student at 1.5 trains.
    # For a loss unbounded below (Hinton KD) the config refuses it, and the study reports that run's error.
    base = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=200, epochs=1,
                batch_size=64, lr=1e-2, device="cpu", label_noise=0.2, checkpoint_every=0)
    res = estimate_gt_weight(dict(base, method="sd_mse"), tmp_path / "mse", seeds=(0,), grid=[0.0, 1.0, 1.5],
                             estimators=("two_run",), allow_any_weight=True)
    run = res.per_seed[0].runs[f"w={1.5!r}"]
    assert run["error"] is None and run["gt_weight"] == 1.5
    assert all(math.isfinite(v) for v in run["test"].values())
    record = json.loads((tmp_path / "mse" / "runs" / "seed_0" / f"gt_{1.5:+.10f}" / "record.json").read_text())
    assert record["generations"][1]["gt_weight"] == 1.5 and record["config"]["allow_any_weight"] is True
    # An unconstrained estimate is trained at its own weight, not clipped.
    two = res.per_seed[0].estimators["two_run"]
    assert two.gt_weight == two.unconstrained

    res = estimate_gt_weight(dict(base, method="sd_kd"), tmp_path / "kd", seeds=(0,), grid=[0.0, 1.0, 1.5],
                             estimators=("two_run",), allow_any_weight=True)
    run = res.per_seed[0].runs[f"w={1.5!r}"]
    assert run["test"] is None and re.search(r"method 'sd_kd'.*unbounded below.*'sd_mse'", run["error"])
    assert res.per_seed[0].runs[f"w={1.0!r}"]["error"] is None
