"""Estimating the optimal ground-truth weight of deep self-distillation at a fraction of a grid's cost.

Three estimators of the weight ``gt_weight`` (the weight on the GROUND TRUTH, [BA21]'s alpha) of one
student generation, and a grid search to judge them by (``../shared/THEORY.md`` sections 1, 1b):

* **Two-run affine estimate** (:func:`affine_optimal_weight`). In kernel ridge self-distillation the
  student is exactly affine in its weight, ``f_alpha = f_0 + alpha (f_1 - f_0)`` (THEORY 1, [BA21]),
  so any squared-error criterion is a convex quadratic in alpha with the closed-form minimiser::

      alpha* = <f_1 - f_0, r - f_0> / ||f_1 - f_0||^2          (r: reference values)

  For a network we ASSUME the same: the student's validation outputs are close to affine in the
  weight. Then two trained students (alpha = 0 and alpha = 1) give the whole validation criterion
  curve, and one more run trains at its minimiser. The criterion is the Brier score of the
  probabilities (classification) or the MSE of the outputs (regression), both squared errors, so the
  quadratic is exact under the assumption. Why the assumption is reasonable: for a student flexible
  enough to reach the per-example optimum of its loss, the optimum IS affine in the weight for
  [BA21]'s MSE-to-mixed-target loss (``p = alpha onehot + (1 - alpha) p_teacher``) and for Hinton KD
  at T = 1 (the minimiser of ``alpha CE + (1 - alpha) KL`` over the simplex is the same mix); at
  T != 1 or for a network that cannot reach it, it is an approximation, which
  :func:`affine_residuals` measures against students trained at intermediate weights.
  The alpha = 1 student trains on the labels only, exactly as generation 0 does (for ``sd_kd``,
  ``sd_mse`` and ``sd_zs`` the later loss at ``gt_weight = 1`` equals the first-generation loss;
  :func:`label_endpoint_is_generation_zero` checks this numerically), so generation 0 (the teacher)
  can serve as the alpha = 1 end point: one trained student, not two.

* **Kernel surrogate** (:func:`kernel_surrogate_weights`): kernel ridge self-distillation on the
  teacher's penultimate-layer features (``model.features``) or its empirical neural tangent kernel
  (:func:`empirical_ntk_gram`, on a subsample), with one-hot labels as targets. :mod:`kerneldistill`
  then gives, from one eigendecomposition, (a) the closed-form optimum of the validation MSE to the
  one-hot labels (``ReferenceRisk``) and (b) [DPR26]'s one-shot estimate from the training data alone
  (``OneShotRisk``, no held-out data). The kernel's ridge stands for the network's implicit
  regularisation; by default it is matched to the teacher (the kernel step-1 fit reaches the
  teacher's training Brier score). A ridge tuned for the kernel itself (GCV) is near the ridge that
  self-distillation would otherwise correct, which drives the optimum to alpha ~ 1 ([DPR26]:
  ``sign(1 - alpha*) = -sign(R'(lam))``), and does not describe an over-fitting network.

* **Grid search** (the reference): students at every weight of a grid, the best chosen by the mean
  validation criterion over seeds.

Cost is counted in training runs and wall time, the teacher counted once for each approach, each
run's wall time measured when it was trained (a run shared by two approaches, e.g. the alpha = 0
student that is also a grid point, is counted in both).

Entry points: :func:`estimate_gt_weight` for a toolkit :class:`~deepdistill.config.TrainConfig`
(shares one teacher per seed across every student: its ``generation_{g}.pt`` files are copied into
each student's run folder, and :func:`deepdistill.train.train_run` resumes from them), and
:func:`estimate_gt_weight_for_model` for a user's own model and data loaders (a ``train_fn``, e.g.
from :func:`make_train_fn`). ``python -m deepdistill estimate-weight`` wraps the first
(:mod:`deepdistill.estimate_cli`).

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; [DPR26] Dang, Patil & Rinaldo,
arXiv 2602.17565 (the optimum may lie outside [0, 1]; one-shot tuning).
"""
from __future__ import annotations

import math
import shutil
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_GRID",
    "AffineWeightEstimate",
    "affine_optimal_weight",
    "affine_residuals",
    "KernelWeightEstimate",
    "kernel_surrogate_weights",
    "empirical_ntk_gram",
    "label_endpoint_is_generation_zero",
    "estimate_gt_weight",
    "estimate_gt_weight_for_model",
    "make_train_fn",
    "summary_rows",
    "ESTIMATORS",
]

DEFAULT_GRID = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 10))
_CRITERIA = ("brier", "mse")
# Estimators by name: what each needs beyond the teacher.
ESTIMATORS = {
    "two_run": "affine interpolation of the alpha=0 student and the alpha=1 end point (the teacher when "
               "teacher_as_alpha1), Brier/MSE optimum on validation",
    "two_run_student": "as two_run, with a student trained at gt_weight 1 as the end point (one run more)",
    "kernel_features": "kernel ridge surrogate on the teacher's penultimate features, closed-form validation optimum",
    "one_shot_features": "[DPR26] one-shot estimate on the teacher's features, training data only",
    "kernel_ntk": "kernel ridge surrogate on the teacher's empirical NTK (training subsample), validation optimum",
    "one_shot_ntk": "[DPR26] one-shot estimate on the teacher's empirical NTK (training subsample only)",
}


# ------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------

def _as_2d(a, name: str) -> np.ndarray:
    from analysis.metrics import as_numpy

    arr = np.asarray(as_numpy(a, name), dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty (n,) or (n, k) array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; it holds {int(np.sum(~np.isfinite(arr)))} NaN/inf value(s).")
    return arr


def _check_criterion(criterion) -> str:
    if criterion not in _CRITERIA:
        raise ValueError(f"`criterion` must be one of {list(_CRITERIA)} ('brier': probabilities vs labels; "
                         f"'mse': outputs vs regression targets); got {criterion!r}.")
    return criterion


def _check_bounds(bounds):
    if bounds is None:
        return None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"`bounds` must be None or a pair (low, high); got {bounds!r}.") from None
    if not (lo < hi) or math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"`bounds` must satisfy low < high; got {bounds!r}.")
    return lo, hi


def _targets_matrix(targets, n: int, k: int, criterion: str) -> np.ndarray:
    """Targets as (n, k): integer labels become one-hot rows for the Brier score."""
    from analysis.metrics import as_numpy

    t = np.asarray(as_numpy(targets, "targets"))
    if criterion == "brier" and t.ndim == 1:
        if not (np.issubdtype(t.dtype, np.integer) or np.all(np.equal(np.mod(t, 1), 0))):
            raise ValueError(f"`targets` for criterion='brier' must be integer class labels (n,) or (n, K) "
                             f"probability rows; got non-integer values of dtype {t.dtype}.")
        t = t.astype(np.int64)
        if t.shape[0] != n or t.min() < 0 or t.max() >= k:
            raise ValueError(f"`targets` must be {n} class labels in [0, {k}); got shape {t.shape}, "
                             f"range [{t.min()}, {t.max()}].")
        return np.eye(k)[t]
    t2 = _as_2d(t, "targets")
    if t2.shape != (n, k):
        raise ValueError(f"`targets` must have the predictions' shape {(n, k)} (or be (n,) labels for 'brier'); "
                         f"got {t.shape}.")
    return t2


# ------------------------------------------------------------------------------------------------
# The two-run affine estimate
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AffineWeightEstimate:
    """The minimiser of a squared-error criterion along the affine path between two predictions.

    gt_weight : the estimate (the vertex, clipped to ``bounds`` when they were given).
    unconstrained : the vertex of the quadratic (may lie outside [0, 1]).
    criterion_at_estimate : the criterion the affine model predicts at ``gt_weight``.
    weights, criterion_values : the predicted criterion curve on a grid of weights.
    degenerate : the two predictions coincide, so every weight is optimal (``gt_weight`` is then
        ``weight_1``, the labels end point).
    """

    gt_weight: float
    unconstrained: float
    criterion_at_estimate: float
    weights: np.ndarray
    criterion_values: np.ndarray
    criterion: str
    degenerate: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def affine_optimal_weight(pred_0, pred_1, targets, criterion: str = "brier", weight_0: float = 0.0,
                          weight_1: float = 1.0, bounds=(0.0, 1.0), curve_weights=None) -> AffineWeightEstimate:
    """Closed-form optimal weight of a criterion along ``pred(w) = pred_0 + t (pred_1 - pred_0)``,
    ``t = (w - weight_0) / (weight_1 - weight_0)`` (THEORY 1: the kernel student is exactly affine in
    its ground-truth weight; a network approximately).

    With ``D = pred_1 - pred_0`` and ``E = targets - pred_0``, the criterion
    ``c(t) = (||E||^2 - 2 t <D, E> + t^2 ||D||^2) / N`` is a convex quadratic with vertex
    ``t* = <D, E> / ||D||^2`` ([BA21]'s optimum, THEORY 1). ``N`` is the number of examples for
    ``"brier"`` (the multi-class Brier score sums over classes, :func:`analysis.metrics.brier_score`)
    and the number of entries for ``"mse"``.

    Parameters
    ----------
    pred_0, pred_1 : (n,) or (n, k) predictions of the students trained at ``weight_0`` and ``weight_1``
        on the evaluation set: probabilities for ``"brier"``, raw outputs for ``"mse"``.
    targets : (n,) integer labels or (n, k) probability rows for ``"brier"``; (n,) / (n, k) values for ``"mse"``.
    bounds : ``(low, high)`` to clip the estimate to (default ``(0, 1)``), or ``None`` for the
        unconstrained optimum ([DPR26]: it may be negative or above 1).
    curve_weights : weights at which to report the predicted criterion (default: 101 points over
        ``bounds``, or over ``[min(0, w*) - 0.25, max(1, w*) + 0.25]`` without bounds).
    """
    criterion = _check_criterion(criterion)
    bounds = _check_bounds(bounds)
    w0, w1 = float(weight_0), float(weight_1)
    if not (math.isfinite(w0) and math.isfinite(w1)) or w0 == w1:
        raise ValueError(f"`weight_0` and `weight_1` must be two different finite weights; got {weight_0!r}, {weight_1!r}.")
    P0, P1 = _as_2d(pred_0, "pred_0"), _as_2d(pred_1, "pred_1")
    if P0.shape != P1.shape:
        raise ValueError(f"`pred_0` and `pred_1` must have the same shape; got {P0.shape} and {P1.shape}.")
    n, k = P0.shape
    T = _targets_matrix(targets, n, k, criterion)
    norm = n if criterion == "brier" else n * k
    D, E = P1 - P0, T - P0
    dd, de, ee = float(np.sum(D * D)), float(np.sum(D * E)), float(np.sum(E * E))

    # Both students predict the same (to float64 round-off): every weight is optimal.
    degenerate = dd <= 1e-13 * max(ee, float(np.sum(P0 * P0)), np.finfo(np.float64).tiny)
    t_star = 1.0 if degenerate else de / dd
    unconstrained = w0 + t_star * (w1 - w0)
    estimate = unconstrained if bounds is None else float(np.clip(unconstrained, *bounds))

    def curve(w):
        t = (np.asarray(w, dtype=np.float64) - w0) / (w1 - w0)
        return (ee - 2.0 * t * de + t * t * dd) / norm

    if curve_weights is None:
        lo, hi = bounds if bounds is not None else (min(0.0, unconstrained) - 0.25, max(1.0, unconstrained) + 0.25)
        curve_weights = np.linspace(lo, hi, 101)
    cw = np.asarray(curve_weights, dtype=np.float64).ravel()
    return AffineWeightEstimate(gt_weight=float(estimate), unconstrained=float(unconstrained),
                                criterion_at_estimate=float(curve(estimate)), weights=cw,
                                criterion_values=np.asarray(curve(cw), dtype=np.float64), criterion=criterion,
                                degenerate=bool(degenerate))


def affine_residuals(weights: Sequence[float], preds: Sequence, pred_0, pred_1, *, weight_0: float = 0.0,
                     weight_1: float = 1.0) -> np.ndarray:
    """How far students trained at ``weights`` are from the affine path through the two end points.

    ``residual(w) = ||pred_w - [pred_0 + t (pred_1 - pred_0)]||^2 / ||pred_1 - pred_0||^2``,
    ``t = (w - weight_0)/(weight_1 - weight_0)``: 0 when the assumption of the two-run estimate holds
    exactly; compare it with the same ratio for two students that differ only in their seed (the
    floor set by training noise).
    """
    P0, P1 = _as_2d(pred_0, "pred_0"), _as_2d(pred_1, "pred_1")
    scale = float(np.sum((P1 - P0) ** 2))
    if scale == 0.0:
        raise ValueError("`pred_0` and `pred_1` are identical: the affine path is a point, residuals are undefined.")
    weights = [float(w) for w in weights]
    if len(weights) != len(preds):
        raise ValueError(f"`weights` and `preds` must have the same length; got {len(weights)} and {len(preds)}.")
    out = []
    for w, p in zip(weights, preds):
        P = _as_2d(p, "preds[i]")
        if P.shape != P0.shape:
            raise ValueError(f"each of `preds` must have shape {P0.shape}; got {P.shape} at weight {w}.")
        t = (w - weight_0) / (weight_1 - weight_0)
        out.append(float(np.sum((P - (P0 + t * (P1 - P0))) ** 2)) / scale)
    return np.array(out)


# ------------------------------------------------------------------------------------------------
# The kernel surrogate
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelWeightEstimate:
    """Optimal weights of the kernel ridge surrogate (``kerneldistill``), in closed form.

    validation : minimiser of the validation MSE to the reference (one-hot) targets, clipped to the
        bounds (``None`` without validation data); ``validation_unconstrained`` its vertex.
    one_shot : [DPR26]'s one-shot estimate from the training data alone, clipped; ``one_shot_unconstrained``.
    ridge : the ridge used; ``ridge_rule`` how it was chosen (it says UNREACHABLE when ``"match"`` could
        not reach the teacher's training residual: the estimate is then not informative);
        ``train_residual`` the kernel step-1 fit's training MSE (per example, summed over outputs).
    """

    validation: float | None
    validation_unconstrained: float | None
    one_shot: float
    one_shot_unconstrained: float
    ridge: float
    ridge_rule: str
    train_residual: float
    n_train: int
    step: int
    wall_time_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _step1_train_residual(evals, z2, perp, ridge, n):
    """Training MSE (per example, summed over outputs) of kernel ridge on the labels:
    ``sum_i (lam / (d_i + lam))^2 ||z_i||^2 + ||y - V z||^2``, over n.

    The residual filter is ``1 - b`` with ``b = d / (d + lam)`` step 1's filter
    (:func:`kerneldistill.filters.filter_diagonals`); it is taken as ``lam q = lam / (d + lam)``, the
    same number without the cancellation of ``1 - b`` when ``d >> lam``."""
    from kerneldistill.filters import filter_diagonals

    _, q = filter_diagonals(evals, ridge, 1.0, [1])
    shrink = ridge * q[0]
    return float((np.sum(shrink**2 * z2) + perp) / n)


def _match_ridge(evals, z2, perp, n, target_residual) -> tuple[float, bool]:
    """The ridge at which the step-1 training residual equals ``target_residual`` (monotone in the
    ridge: bisection in log-ridge with scipy's brentq), clipped to the attainable range; the flag says
    the target was out of reach (the ridge is then an end of that range)."""
    from scipy.optimize import brentq

    top = float(max(evals.max(), np.finfo(np.float64).tiny))
    lo, hi = math.log(top * 1e-10), math.log(top * 1e6)

    def gap(log_ridge):
        return _step1_train_residual(evals, z2, perp, math.exp(log_ridge), n) - target_residual

    if gap(lo) >= 0:
        return math.exp(lo), True
    if gap(hi) <= 0:
        return math.exp(hi), True
    return math.exp(brentq(gap, lo, hi, xtol=1e-10)), False


def kernel_surrogate_weights(X_train, targets_train, X_val=None, targets_val=None, *, kernel: str = "linear",
                             ridge="match", match_residual: float | None = None, step: int = 2, previous=(),
                             bounds=(0.0, 1.0), ridges=None, **kernel_params) -> KernelWeightEstimate:
    """Optimal ground-truth weights of kernel ridge self-distillation on given inputs (THEORY 1, 1b).

    Kernel ridge regression with ``kernel`` on ``(X_train, targets_train)`` is the surrogate teacher
    (step 1); step ``step`` (default 2: the first student) is the student whose weight is chosen, the
    weights of steps ``2..step-1`` being ``previous``. Targets are centred by their training mean (the
    kernel fit has no intercept; the optimum is unchanged when the reference is centred alike).

    Parameters
    ----------
    X_train : (n, p) inputs (e.g. the teacher's penultimate features), or the (n, n) Gram matrix for
        ``kernel="precomputed"``.
    targets_train : (n,) integer labels (one-hot encoded here) or (n, k) float targets.
    X_val, targets_val : validation inputs (or the (n_val, n) cross kernel) and targets; ``None``
        skips the validation optimum.
    ridge : a float; ``"match"`` (default): the ridge at which the step-1 fit's training MSE equals
        ``match_residual`` (e.g. the teacher network's training Brier score), i.e. a kernel teacher
        that fits the labels as closely as the network did; ``"gcv"``: the ridge minimising the
        generalised cross-validation score of step 1 (over ``ridges``).
    bounds : clip the estimates to ``(low, high)``; ``None`` for unconstrained weights.
    kernel_params : e.g. ``gamma`` for ``kernel="rbf"``.
    """
    from kerneldistill.estimator import KernelDistiller
    from kerneldistill.optimal import OneShotRisk, ReferenceRisk, optimal_gt_weight

    started = time.perf_counter()
    bounds = _check_bounds(bounds)
    Xtr = _as_2d(X_train, "X_train")
    n = Xtr.shape[0]
    Ytr = _one_hot_or_2d(targets_train, n, "targets_train")
    k = Ytr.shape[1]
    offset = Ytr.mean(axis=0, keepdims=True)                           # (1, k)
    if kernel == "linear" and not kernel_params and Xtr.shape[1] < n:
        # Why our own spectrum here: the linear Gram X X^T has the feature matrix's SVD as its
        # eigendecomposition (d = s^2, V = U), at O(n p^2) instead of the O(n^3) of an n x n eigh;
        # penultimate features have p << n. kerneldistill's criteria take any (evals, evecs).
        U, S, _ = np.linalg.svd(Xtr, full_matrices=False)             # (n, p), (p,)
        evals, evecs = S**2, U
        z = U.T @ (Ytr - offset)                                       # (p, k)

        def cross_kernel(X_val):
            return _as_2d(X_val, "X_val") @ Xtr.T                      # (n_val, n)
    else:
        # One eigendecomposition; the ridge below only changes the filters, never the spectrum.
        distiller = KernelDistiller(kernel=kernel, ridge=1.0, gt_weight=1.0, steps=step, **kernel_params)
        distiller.fit(Xtr, Ytr - offset)
        evals, evecs = distiller.evals_, distiller.evecs_
        z = distiller.z_                                               # (m, k)

        def cross_kernel(X_val):
            return distiller.kernel_matrix(np.asarray(_as_2d(X_val, "X_val"), dtype=evecs.dtype))
    z2 = np.sum(z**2, axis=1)
    perp = max(float(np.sum((Ytr - offset) ** 2) - np.sum(z2)), 0.0)

    if isinstance(ridge, str):
        if ridge == "match":
            if match_residual is None or not (match_residual >= 0):
                raise ValueError("ridge='match' needs `match_residual` >= 0 (the teacher's training Brier score / MSE); "
                                 f"got {match_residual!r}.")
            lam, at_bound = _match_ridge(evals, z2, perp, n, float(match_residual))
            rule = f"match({match_residual:.4g})" + (": UNREACHABLE, ridge at the end of its range" if at_bound else "")
            if at_bound:
                warnings.warn(f"ridge='match': the kernel's step-1 training residual cannot reach {match_residual:.4g} "
                              f"(the closest it gets is {_step1_train_residual(evals, z2, perp, lam, n):.4g}); "
                              "with a low-rank kernel (e.g. linear on few features) the fit cannot follow the labels "
                              "as closely as the network did, and the surrogate's optimum is then not informative. "
                              "Try a full-rank kernel (kernel='rbf', or the empirical NTK).", UserWarning, stacklevel=2)
        elif ridge == "gcv":
            top = float(max(evals.max(), np.finfo(np.float64).tiny))
            grid = np.asarray(ridges if ridges is not None else top * np.logspace(-8, 2, 41), dtype=np.float64)
            # GCV of step 1 is the one-shot risk of the labels end point (alpha = 1 at step 2).
            scores = [OneShotRisk(evals, evecs, Ytr - offset, lam).quadratic(2).risk_labels for lam in grid]
            lam, rule = float(grid[int(np.argmin(scores))]), "gcv"
        else:
            raise ValueError(f"`ridge` must be a number > 0, 'match' or 'gcv'; got {ridge!r}.")
    else:
        lam, rule = float(ridge), "given"

    def clip(w):
        return float(w) if bounds is None else float(np.clip(w, *bounds))

    one_shot = optimal_gt_weight(OneShotRisk(evals, evecs, Ytr - offset, lam), step, previous, constrained=False)
    val = None
    if X_val is not None:
        if targets_val is None:
            raise ValueError("`targets_val` is needed with `X_val`.")
        K_val = cross_kernel(X_val)
        Yva = _one_hot_or_2d(targets_val, K_val.shape[0], "targets_val", num_classes=k)
        val = optimal_gt_weight(ReferenceRisk(evals, evecs, Ytr - offset, lam, K_val, Yva - offset), step, previous,
                                constrained=False)
    return KernelWeightEstimate(
        validation=None if val is None else clip(val), validation_unconstrained=val,
        one_shot=clip(one_shot), one_shot_unconstrained=float(one_shot), ridge=lam, ridge_rule=rule,
        train_residual=_step1_train_residual(evals, z2, perp, lam, n), n_train=n, step=int(step),
        wall_time_s=time.perf_counter() - started)


def _one_hot_or_2d(targets, n: int, name: str, num_classes: int | None = None) -> np.ndarray:
    from analysis.metrics import as_numpy

    t = np.asarray(as_numpy(targets, name))
    if t.ndim == 1 and np.issubdtype(t.dtype, np.integer):
        k = int(num_classes if num_classes is not None else t.max() + 1)
        if t.shape[0] != n or t.min() < 0 or t.max() >= k:
            raise ValueError(f"`{name}` must hold {n} class labels in [0, {k}); got shape {t.shape}.")
        return np.eye(k)[t]
    t2 = _as_2d(t, name)
    if t2.shape[0] != n:
        raise ValueError(f"`{name}` must have {n} rows; got {t2.shape[0]}.")
    return t2


def empirical_ntk_gram(model, x_a, x_b=None, *, batch_size: int = 128) -> np.ndarray:
    """The trace empirical neural tangent kernel ``K(x, x') = sum_k <d f_k(x)/d theta, d f_k(x')/d theta>``.

    ``f_k`` are the model's outputs (logits), ``theta`` all its trainable parameters, evaluated in
    eval mode at the current weights. Per-example Jacobians by ``torch.func`` (``vmap(jacrev)``), one
    batch at a time: memory ``batch_size * K * n_params`` floats, plus the ``(n_a, n_b)`` result.
    Returns float64 numpy. (The trace over outputs gives one scalar kernel for all k outputs, the
    usual choice for kernel regression on one-hot targets.)
    """
    import torch
    from torch.func import functional_call, jacrev, vmap

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x_a = x_a.to(device)
    x_b = None if x_b is None else x_b.to(device)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p, x):                                                       # one example -> (K,)
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    jac_fn = vmap(jacrev(f), in_dims=(None, 0))

    def jacobian(x):                                                   # (b, K, P)
        j = jac_fn(params, x)
        return torch.cat([v.reshape(x.shape[0], v.shape[1], -1) for v in j.values()], dim=2).double()

    def batches(x):
        return [x[s:s + batch_size] for s in range(0, x.shape[0], batch_size)]

    try:
        # Jacobians of the second argument are kept (float64, n_b x K x P); rows of the first are
        # streamed one batch at a time.
        J_other = torch.cat([jacobian(xb) for xb in batches(x_a if x_b is None else x_b)])   # (n_b, K, P)
        if x_b is None:
            gram = torch.einsum("ikp,jkp->ij", J_other, J_other)
            gram = 0.5 * (gram + gram.T)                               # exact symmetry for the eigensolver
        else:
            gram = torch.cat([torch.einsum("ikp,jkp->ij", jacobian(xa), J_other) for xa in batches(x_a)])
    finally:
        model.train(was_training)
    return gram.cpu().numpy()


# ------------------------------------------------------------------------------------------------
# The alpha = 1 end point
# ------------------------------------------------------------------------------------------------

def label_endpoint_is_generation_zero(method: str, *, temperature: float = 4.0, smoothing: float = 0.1,
                                      ls_convention: str = "muller") -> bool:
    """Whether a student of ``method`` at ``gt_weight = 1`` trains with generation 0's loss.

    Checked numerically on random logits (and a random teacher, which must then not matter): when it
    holds, the teacher (generation 0) is a draw of the alpha = 1 student and can serve as the
    two-run estimate's labels end point. True for ``sd_kd``, ``sd_mse`` and ``sd_zs``.
    """
    import torch

    from deepdistill.config import METHODS
    from deepdistill.losses import LOSSES

    spec = METHODS[method]
    if not (spec.uses_teacher and spec.uses_gt_weight):
        return False
    name = {"ls": f"ls_{ls_convention}"}
    first, later = name.get(spec.first_loss, spec.first_loss), name.get(spec.later_loss, spec.later_loss)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (16,), generator=g)
    teacher = torch.randn(16, 5, generator=g, dtype=torch.float64) * 3
    common = dict(temperature=temperature, smoothing=smoothing)
    placeholder = torch.zeros_like(logits)     # generation 0 has no teacher (train.py passes zeros to mse_mixed)
    a = LOSSES[first].fn(logits, labels, teacher_logits=placeholder, gt_weight=1.0, **common)
    b = LOSSES[later].fn(logits, labels, teacher_logits=teacher, gt_weight=1.0, **common)
    return bool(torch.allclose(a, b, rtol=1e-12, atol=1e-12))


# ------------------------------------------------------------------------------------------------
# The study: teacher, grid, estimates, final runs (one seed), shared by both entry points
# ------------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """One trained network: its key, training cost and evaluation outputs."""

    key: str
    gt_weight: float | None
    wall_time_s: float
    model: object = field(repr=False, default=None)
    test: dict | None = None
    val: dict | None = None
    val_outputs: np.ndarray | None = field(repr=False, default=None)
    error: str | None = None


class _Backend:
    """What a study needs from a training set-up (toolkit config or user callables)."""

    criterion = "brier"

    def label_model(self) -> _Run: ...                  # generation 0 (trains on labels); cost = its training
    def teacher_runs(self) -> list[_Run]: ...           # every run before the chosen generation (counted once)
    def student(self, gt_weight: float) -> _Run: ...    # a student at the chosen generation
    def val_targets(self): ...
    def train_arrays(self): ...                         # (x_train, y_train) for features / NTK, or None
    def val_inputs(self): ...
    def outputs(self, model, x) -> np.ndarray: ...      # probabilities ("brier") or raw outputs ("mse")
    def features(self, model, x) -> np.ndarray: ...
    previous: tuple = ()
    step: int = 2



def _kernel_entries(kest, cost: float, kind: str, jobs, teacher_keys) -> dict:
    """The ``kernel_<kind>`` (validation optimum) and ``one_shot_<kind>`` entries asked for in ``jobs``,
    from one kernel-surrogate fit ``kest`` that cost ``cost`` seconds."""
    picks = {f"kernel_{kind}": (kest.validation, kest.validation_unconstrained),
             f"one_shot_{kind}": (kest.one_shot, kest.one_shot_unconstrained)}
    return {name: {"gt_weight": w, "unconstrained": w_free, "overhead_s": cost, "kernel": kest.to_dict(),
                   "run_keys": list(teacher_keys)}
            for name, (w, w_free) in picks.items() if name in jobs}


def _study_one_seed(backend: _Backend, *, grid, estimators, bounds, allow_any_weight: bool, teacher_as_alpha1: bool,
                    kernel: str, kernel_params: dict, ntk_subsample: int | None, seed: int, log) -> dict:
    """Teacher, grid, the estimates and their final runs for one seed; every cost itemised."""
    from analysis.metrics import brier_score

    say = log or (lambda msg: None)
    runs: dict[str, _Run] = {}

    def student(w):
        w = float(w)
        key = f"w={w!r}"
        if key not in runs:
            say(f"seed {seed}: student at gt_weight {w:g}")
            runs[key] = backend.student(w)
        return key

    teacher_keys = [r.key for r in backend.teacher_runs()]
    for r in backend.teacher_runs():
        runs[r.key] = r
    label_run = backend.label_model()
    runs[label_run.key] = label_run
    y_val = backend.val_targets()
    criterion = backend.criterion

    def val_criterion(run: _Run) -> float:
        # "brier": the multi-class Brier score (summed over classes, mean over examples: the
        # normalisation of affine_optimal_weight); "mse": the mean over every entry.
        if run.val_outputs is None:
            return math.nan
        if criterion == "brier":
            return brier_score(run.val_outputs, y_val)
        return float(np.mean((run.val_outputs - _as_2d(y_val, "y_val")) ** 2))

    approaches: dict[str, dict] = {}
    # -- grid ------------------------------------------------------------------------------------
    if grid is not None:
        keys = [student(w) for w in grid]
        approaches["grid"] = {"run_keys": teacher_keys + keys, "curve": [
            {"gt_weight": runs[k].gt_weight, "val_criterion": val_criterion(runs[k]), "val": runs[k].val,
             "test": runs[k].test, "wall_time_s": runs[k].wall_time_s} for k in keys]}

    bounds_used = None if allow_any_weight else bounds
    # -- two-run affine estimates ----------------------------------------------------------------
    # "two_run": the labels end point is generation 0 when teacher_as_alpha1 (one run saved);
    # "two_run_student": always a student trained at gt_weight 1 (same seed streams as the alpha = 0
    # student, hence a less noisy path, one run more).
    variants = [(name, teacher_as_alpha1 if name == "two_run" else False)
                for name in ("two_run", "two_run_student") if name in estimators]
    for name, use_teacher in variants:
        started = time.perf_counter()
        k0 = student(0.0)
        k1 = label_run.key if use_teacher else student(1.0)
        p0, p1 = runs[k0].val_outputs, runs[k1].val_outputs
        est = affine_optimal_weight(p0, p1, y_val, criterion=criterion, bounds=bounds_used)
        free = affine_optimal_weight(p0, p1, y_val, criterion=criterion, bounds=None)
        entry = {"gt_weight": est.gt_weight, "unconstrained": est.unconstrained,
                 "predicted_val_criterion": est.criterion_at_estimate,
                 "predicted_val_criterion_unconstrained": free.criterion_at_estimate,
                 "endpoint_keys": [k0, k1], "degenerate": est.degenerate,
                 "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
                 "overhead_s": time.perf_counter() - started,
                 "run_keys": teacher_keys + [k0] + ([] if use_teacher else [k1])}
        approaches[name] = entry
        # The assumption: students at the grid's inner weights against the path through the end points.
        inner = [float(w) for w in (grid or ()) if 0.0 < float(w) < 1.0
                 and runs[f"w={float(w)!r}"].val_outputs is not None]
        if inner:
            res = affine_residuals(inner, [runs[f"w={w!r}"].val_outputs for w in inner], p0, p1)
            entry["affine_residual"] = {"gt_weights": inner, "relative": res.tolist(), "max": float(res.max()),
                                        "mean": float(res.mean())}
            if use_teacher and f"w={1.0!r}" in runs and runs[f"w={1.0!r}"].val_outputs is not None:
                # Floor set by training noise: the alpha = 1 student against the teacher (same loss,
                # different seed streams), on the same scale.
                p1s = runs[f"w={1.0!r}"].val_outputs
                entry["affine_residual"]["seed_floor"] = float(np.sum((p1s - p1) ** 2) / np.sum((p1 - p0) ** 2))
            entry["predicted_vs_grid"] = [
                {"gt_weight": c["gt_weight"], "grid": c["val_criterion"],
                 "predicted": float(affine_optimal_weight(p0, p1, y_val, criterion=criterion, bounds=None,
                                                          curve_weights=[c["gt_weight"]]).criterion_values[0])}
                for c in approaches["grid"]["curve"]]

    # -- kernel surrogates -----------------------------------------------------------------------
    kernel_jobs = [e for e in estimators if not e.startswith("two_run")]
    if kernel_jobs:
        import kerneldistill.estimator  # noqa: F401  (imported before the clock starts: not a cost of the method)
        import kerneldistill.optimal  # noqa: F401
        x_train, y_train = backend.train_arrays()
        x_val = backend.val_inputs()
        model = label_run.model
        # The kernel teacher's ridge matches the network teacher's training fit (Brier / MSE), on the
        # kernel's scale: squared error summed over outputs, averaged over examples. For labels that
        # is exactly the multi-class Brier score.
        train_out = backend.outputs(model, x_train)
        t_train = (_targets_matrix(y_train, *train_out.shape, criterion) if criterion == "brier"
                   else _as_2d(y_train, "y_train"))

        def training_fit(rows) -> float:
            if criterion == "brier":
                return brier_score(train_out[rows], y_train[rows])
            return float(np.sum((train_out[rows] - t_train[rows]) ** 2) / train_out[rows].shape[0])

        match = training_fit(slice(None))
        if any(e.endswith("features") for e in kernel_jobs):
            started = time.perf_counter()
            f_train, f_val = backend.features(model, x_train), backend.features(model, x_val)
            kest = kernel_surrogate_weights(f_train, t_train, f_val, _val_matrix(y_val, t_train.shape[1], criterion),
                                            kernel=kernel, ridge="match", match_residual=match, step=backend.step,
                                            previous=backend.previous, bounds=bounds_used, **kernel_params)
            approaches.update(_kernel_entries(kest, time.perf_counter() - started, "features", kernel_jobs, teacher_keys))
        if any(e.endswith("ntk") for e in kernel_jobs):
            started = time.perf_counter()
            import torch

            n = len(y_train)
            m = n if ntk_subsample is None else min(int(ntk_subsample), n)
            idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
            idx_t = torch.as_tensor(idx)
            gram = empirical_ntk_gram(model, x_train[idx_t])
            cross = empirical_ntk_gram(model, x_val, x_train[idx_t])
            t_sub = t_train[idx]
            match_sub = training_fit(idx)
            kest = kernel_surrogate_weights(gram, t_sub, cross, _val_matrix(y_val, t_train.shape[1], criterion),
                                            kernel="precomputed", ridge="match", match_residual=match_sub,
                                            step=backend.step, previous=backend.previous, bounds=bounds_used)
            approaches.update(_kernel_entries(kest, time.perf_counter() - started, "ntk", kernel_jobs, teacher_keys))

    # -- final runs at each estimate -------------------------------------------------------------
    for name, entry in approaches.items():
        if name == "grid":
            continue
        w = float(entry["gt_weight"])
        if teacher_as_alpha1 and w == 1.0:
            final = label_run.key        # the labels end point IS a draw of the alpha = 1 student
        else:
            final = student(w)
        entry["final_key"] = final
        if final not in entry["run_keys"]:
            entry["run_keys"] = entry["run_keys"] + [final]

    # -- itemised costs and results --------------------------------------------------------------
    out = {"seed": seed, "teacher_keys": teacher_keys, "approaches": {},
           "runs": {k: {"gt_weight": r.gt_weight, "wall_time_s": r.wall_time_s, "test": r.test, "val": r.val,
                        "val_criterion": val_criterion(r), "error": r.error} for k, r in runs.items()}}
    for name, entry in approaches.items():
        keys = entry["run_keys"]
        entry["training_runs"] = len(keys)
        entry["wall_time_s"] = float(sum(runs[k].wall_time_s for k in keys) + entry.get("overhead_s", 0.0))
        if name != "grid":
            final = runs[entry["final_key"]]
            entry["test"], entry["val"], entry["error"] = final.test, final.val, final.error
            entry["val_criterion"] = val_criterion(final)
        out["approaches"][name] = entry
    return out


def _val_matrix(y_val, k: int, criterion: str) -> np.ndarray:
    from analysis.metrics import as_numpy

    y = np.asarray(as_numpy(y_val, "y_val"))
    if criterion == "brier":
        return np.eye(k)[y.astype(np.int64)] if y.ndim == 1 else _as_2d(y, "y_val")
    return _as_2d(y, "y_val")


def _finish_grid(per_seed: list[dict]) -> None:
    """Choose the grid's weight by the MEAN validation criterion over seeds and fill its results."""
    curves = [s["approaches"]["grid"]["curve"] for s in per_seed if "grid" in s["approaches"]]
    if not curves:
        return
    weights = [c["gt_weight"] for c in curves[0]]
    mean_crit = [statistics.fmean(curve[i]["val_criterion"] for curve in curves) for i in range(len(weights))]
    best = int(np.nanargmin(mean_crit))
    for s in per_seed:
        grid = s["approaches"]["grid"]
        grid.update(gt_weight=weights[best], unconstrained=weights[best], mean_val_criterion=mean_crit,
                    test=grid["curve"][best]["test"], val=grid["curve"][best]["val"],
                    val_criterion=grid["curve"][best]["val_criterion"], error=None)


def summary_rows(per_seed: list[dict], metrics=("accuracy", "nll", "ece")) -> list[dict]:
    """One row per approach: weight and test metrics as mean and sd over seeds, cost and its ratio to
    the grid's, and whether the test accuracy is within one grid seed-sd of the grid's best.

    The "teacher" row is the run the students distil from: generation ``G - 1`` (its own
    ``gt_weight``; 1.0 for generation 0), with the cost of every run before the students."""
    from deepdistill.results import mean_sd as _mean_sd

    names = []
    for s in per_seed:
        names += [n for n in s["approaches"] if n not in names]
    grid_cost = _mean_sd([s["approaches"]["grid"]["wall_time_s"] for s in per_seed if "grid" in s["approaches"]])[0]
    grid_runs = _mean_sd([s["approaches"]["grid"]["training_runs"] for s in per_seed if "grid" in s["approaches"]])[0]
    rows = []
    for name in ["teacher"] + names:
        row = {"approach": name}
        if name == "teacher":
            entries = [{"gt_weight": s["runs"][s["teacher_keys"][-1]]["gt_weight"],
                        "test": s["runs"][s["teacher_keys"][-1]]["test"],
                        "training_runs": len(s["teacher_keys"]),
                        "wall_time_s": sum(s["runs"][k]["wall_time_s"] for k in s["teacher_keys"]), "error": None}
                       for s in per_seed]
        else:
            entries = [s["approaches"][name] for s in per_seed if name in s["approaches"]]
        row["n_seeds"] = len(entries)
        row["gt_weight_mean"], row["gt_weight_sd"] = _mean_sd([e.get("gt_weight") for e in entries])
        row["unconstrained_mean"], row["unconstrained_sd"] = _mean_sd([e.get("unconstrained") for e in entries])
        ok = [e for e in entries if e.get("test")]
        for m in metrics:
            row[f"test_{m}_mean"], row[f"test_{m}_sd"] = _mean_sd([e["test"][m] for e in ok])
        row["training_runs"] = _mean_sd([e["training_runs"] for e in entries])[0]
        row["wall_time_s"] = _mean_sd([e["wall_time_s"] for e in entries])[0]
        row["runs_ratio_to_grid"] = row["training_runs"] / grid_runs if grid_runs == grid_runs else math.nan
        row["time_ratio_to_grid"] = row["wall_time_s"] / grid_cost if grid_cost == grid_cost else math.nan
        row["errors"] = "; ".join(sorted({e["error"] for e in entries if e.get("error")}))
        rows.append(row)
    grid = next((r for r in rows if r["approach"] == "grid"), None)
    # The target: test accuracy (or MSE, lower is better) within one seed-sd of the grid's best.
    key, sign = f"test_{metrics[0]}", (1.0 if metrics[0] == "accuracy" else -1.0)
    for row in rows:
        if grid is not None and row["n_seeds"] and not math.isnan(grid[f"{key}_sd"]):
            gap = row[f"{key}_mean"] - grid[f"{key}_mean"]
            row[f"{metrics[0]}_gap_to_grid"] = gap
            row["within_one_grid_sd"] = bool(sign * gap >= -grid[f"{key}_sd"])
            row["cost_within_quarter"] = bool(row["time_ratio_to_grid"] <= 0.25 and row["runs_ratio_to_grid"] <= 0.25)
        else:
            row[f"{metrics[0]}_gap_to_grid"], row["within_one_grid_sd"], row["cost_within_quarter"] = math.nan, None, None
    return rows


def _check_estimators(estimators) -> list[str]:
    estimators = list(estimators)
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; valid: {sorted(ESTIMATORS)}.")
    return estimators


def _check_grid(grid, allow_any_weight: bool):
    if grid is None:
        return None
    grid = sorted({float(w) for w in grid})
    if len(grid) < 2:
        raise ValueError(f"`grid` must hold at least 2 distinct weights; got {grid!r}.")
    if not allow_any_weight and (grid[0] < 0.0 or grid[-1] > 1.0):
        raise ValueError(f"`grid` weights must lie in [0, 1] (set allow_any_weight=True otherwise); got {grid!r}.")
    return grid


# ------------------------------------------------------------------------------------------------
# Entry point 1: a toolkit config
# ------------------------------------------------------------------------------------------------

class _ConfigBackend(_Backend):
    """Runs of one seed of a TrainConfig: one shared teacher (generations 0..G-1), students at G."""

    def __init__(self, config, root: Path, generation: int, log=None):
        import torch

        from deepdistill.train import load_run_data, resolve_device

        self.config, self.root, self.G, self.log = config, Path(root), int(generation), log
        self.device = resolve_device(config.device)
        gt, temp = config.gt_weight, config.temperature
        self.previous = tuple(float(gt[i]) if isinstance(gt, list) else float(gt) for i in range(self.G - 1))
        self.step = self.G + 1
        self.temperature = temp[self.G - 1] if isinstance(temp, list) else temp
        self.prev_temperature = [temp[i] if isinstance(temp, list) else temp for i in range(self.G - 1)]
        self.criterion = "brier"
        self.splits, data = load_run_data(config, self.device)     # the data exactly as train_run loads it
        self.x = {p: data[f"x_{p}"] for p in ("train", "val", "test")}
        self.y = {p: data[f"y_{p}"].cpu() for p in ("train", "val", "test")}   # labels are read with numpy
        self._torch = torch
        self._prefix = None

    # configs ------------------------------------------------------------------------------------
    def _prefix_config(self):
        # allow_any_weight changes no computation for weights in [0, 1]; it is set only where a weight
        # needs it, so constrained and unconstrained studies share their run folders.
        changes = dict(generations=self.G, out_dir=str(self.root / "teacher"),
                       allow_any_weight=not all(0.0 <= w <= 1.0 for w in self.previous))
        if self.G > 1:
            changes.update(gt_weight=list(self.previous) if self.G > 2 else self.previous[0],
                           temperature=self.prev_temperature if self.G > 2 else self.prev_temperature[0])
        else:   # generation 0 alone reads neither: the method's defaults keep the teacher's config valid
            changes.update(gt_weight=None, temperature=None)
        return self.config.replace(**changes)

    def _student_config(self, w: float):
        gt = w if self.G == 1 else list(self.previous) + [w]
        temp = self.temperature if self.G == 1 else self.prev_temperature + [self.temperature]
        allow = not all(0.0 <= v <= 1.0 for v in (*self.previous, w))
        return self.config.replace(generations=self.G + 1, gt_weight=gt, temperature=temp, allow_any_weight=allow,
                                   out_dir=str(self.root / f"gt_{w:+.10f}"))

    def _load(self, run_dir: Path, g: int):
        from deepdistill.models import build_model

        state = self._torch.load(run_dir / f"generation_{g}.pt", map_location=self.device, weights_only=False)
        model = build_model(self.config.model, self.splits.input_shape, self.splits.num_classes,
                            **self.config.model_kwargs).to(self.device)
        model.load_state_dict(state["model"])
        return model, state["summary"]

    def _ensure_prefix(self):
        if self._prefix is None:
            from deepdistill.train import train_run

            cfg = self._prefix_config()
            train_run(cfg, cfg.out_dir, log=self.log, progress=False)
            runs = []
            for g in range(self.G):
                model, summary = self._load(Path(cfg.out_dir), g)
                runs.append(self._as_run("generation 0" if g == 0 else f"generation {g}", summary, model,
                                         1.0 if g == 0 else self.previous[g - 1]))
            self._prefix = runs
        return self._prefix

    def _as_run(self, key, summary, model, w) -> _Run:
        probs = self.outputs(model, self.x["val"])
        return _Run(key=key, gt_weight=w, wall_time_s=float(summary["wall_time_s"]), model=model,
                    test=summary["test"], val=summary["val"], val_outputs=probs)

    # backend API --------------------------------------------------------------------------------
    def teacher_runs(self):
        return self._ensure_prefix()

    def label_model(self):
        return self._ensure_prefix()[0]

    def student(self, w):
        from deepdistill.io import atomic_write
        from deepdistill.train import train_run

        self._ensure_prefix()
        try:
            cfg = self._student_config(w)
        except (ValueError, TypeError) as err:
            return _Run(key=f"w={w!r}", gt_weight=w, wall_time_s=0.0, error=str(err))
        run_dir = Path(cfg.out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        # Share the teacher: train_run loads finished generations from generation_{g}.pt (it checks
        # their per-generation settings, which do not depend on the student's weight).
        for g in range(self.G):
            dst = run_dir / f"generation_{g}.pt"
            if not dst.exists():
                # atomic (temp file, fsync, os.replace): never a half-copied checkpoint
                with open(Path(self._prefix_config().out_dir) / f"generation_{g}.pt", "rb") as src, \
                        atomic_write(dst, "wb") as out:
                    shutil.copyfileobj(src, out)
        train_run(cfg, run_dir, log=self.log, progress=False)
        model, summary = self._load(run_dir, self.G)
        return self._as_run(f"w={w!r}", summary, model, w)

    def val_targets(self):
        return self.y["val"].numpy()

    def val_inputs(self):
        return self.x["val"]

    def train_arrays(self):
        return self.x["train"], self.y["train"].numpy()

    def outputs(self, model, x):
        from deepdistill.train import predict_logits

        from analysis.metrics import softmax

        return softmax(predict_logits(model, x, self.config.eval_batch_size).cpu().numpy())

    def features(self, model, x):
        with self._torch.no_grad():
            model.eval()
            return np.concatenate([model.features(x[s:s + 1024]).double().cpu().numpy()
                                   for s in range(0, x.shape[0], 1024)])


def estimate_gt_weight(config, out_dir, *, seeds: Iterable[int] = (0,), generation: int = 1,
                       grid: Sequence[float] | None = DEFAULT_GRID,
                       estimators: Iterable[str] = ("two_run", "kernel_features", "one_shot_features"),
                       allow_any_weight: bool = False, teacher_as_alpha1: bool | None = None, kernel: str = "linear",
                       kernel_params: dict | None = None, ntk_subsample: int | None = 500,
                       log: Callable[[str], None] | None = None) -> dict:
    """Estimate the optimal ground-truth weight of generation ``generation`` of ``config``, each way,
    with its cost, next to a grid search; write ``out_dir/estimate_weight.json`` and ``.csv``.

    Per seed: one teacher run (generations ``0..generation-1``, with the config's weights for the
    earlier generations), shared by every student through its checkpoints; students at generation
    ``generation`` for the grid (``grid``; ``None`` skips it) and for each estimator's end points and
    final run. Criterion: the validation Brier score (the toolkit's validation labels carry the same
    label noise as the training labels unless ``data_options={"clean_val": True}``).

    Parameters
    ----------
    config : a :class:`TrainConfig` or dict of a teacher-based method (``sd_kd``, ``sd_mse``, ``sd_zs``).
    estimators : names from :data:`ESTIMATORS`.
    allow_any_weight : unconstrained estimates ([DPR26]); students outside [0, 1] are then trained with
        ``allow_any_weight=True`` (sd_mse only; for sd_kd/sd_zs the config refuses such a weight and that run reports the error).
    teacher_as_alpha1 : use generation 0 as the alpha = 1 end point (default: when
        :func:`label_endpoint_is_generation_zero` holds for the method).
    kernel, kernel_params : the kernel on the teacher's features (``"linear"``, ``"rbf"`` with ``gamma``...).
    ntk_subsample : training examples used by the empirical-NTK estimators.

    Returns a dict with ``per_seed`` (every run and approach, itemised) and ``summary`` (rows of
    :func:`summary_rows`).
    """
    from deepdistill.config import METHODS, TrainConfig

    config = TrainConfig.from_dict(dict(config)) if isinstance(config, dict) else config
    spec = METHODS[config.method]
    if not (spec.uses_teacher and spec.uses_gt_weight):
        valid = sorted(m for m, s in METHODS.items() if s.uses_teacher and s.uses_gt_weight)
        raise ValueError(f"`config.method` must distil from a teacher with a ground-truth weight, one of {valid}; "
                         f"got {config.method!r}.")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise ValueError(f"`generation` must be an integer >= 1 (generation 0 is the teacher); got {generation!r}.")
    # Per-generation lists hold one value per generation >= 1; the student at `generation` needs the
    # weights of the generations before it and the temperatures up to its own.
    for name, need in (("gt_weight", generation - 1), ("temperature", generation)):
        value = getattr(config, name)
        if isinstance(value, list) and len(value) < need:
            raise ValueError(f"`config.{name}` lists {len(value)} per-generation value(s); `generation`={generation} "
                             f"needs at least {need}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed.")
    estimators = _check_estimators(estimators)
    grid = _check_grid(grid, allow_any_weight)
    if teacher_as_alpha1 is None:
        teacher_as_alpha1 = label_endpoint_is_generation_zero(config.method, temperature=4.0,
                                                              smoothing=config.smoothing,
                                                              ls_convention=config.ls_convention)
    out_dir = Path(out_dir)
    per_seed = []
    for seed in seeds:
        backend = _ConfigBackend(config.replace(seed=seed), out_dir / "runs" / f"seed_{seed}", generation, log=log)
        per_seed.append(_study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                                        allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1,
                                        kernel=kernel, kernel_params=dict(kernel_params or {}),
                                        ntk_subsample=ntk_subsample, seed=seed, log=log))
    _finish_grid(per_seed)
    result = {"schema": "deepdistill.estimate_weight/1", "config": config.to_dict(), "generation": generation,
              "seeds": seeds, "grid": grid, "estimators": estimators, "allow_any_weight": allow_any_weight,
              "teacher_as_alpha1": teacher_as_alpha1, "criterion": "brier", "kernel": kernel,
              "kernel_params": dict(kernel_params or {}), "ntk_subsample": ntk_subsample,
              "per_seed": per_seed, "summary": summary_rows(per_seed)}
    write_results(result, out_dir)
    return result


def write_results(result: dict, out_dir) -> None:
    """``estimate_weight.json`` (everything) and ``estimate_weight.csv`` (the summary), atomically."""
    from deepdistill.io import atomic_write_csv, atomic_write_json

    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "estimate_weight.json", result)
    if result["summary"]:
        atomic_write_csv(out_dir / "estimate_weight.csv", result["summary"])


# ------------------------------------------------------------------------------------------------
# Entry point 2: a user's own model and data loaders
# ------------------------------------------------------------------------------------------------

class _CallableBackend(_Backend):
    """A study around a user's ``train_fn(gt_weight, teacher) -> model`` and data loaders."""

    def __init__(self, train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log):
        self.train_fn, self.criterion, self.device, self.log = train_fn, criterion, device, log
        self.x_val, self.y_val = _gather(val_loader, "val_loader")
        self.test = _gather(test_loader, "test_loader") if test_loader is not None else None
        self.train = _gather(train_loader, "train_loader") if train_loader is not None else None
        self._given_teacher = teacher
        self._teacher = None

    def _timed(self, key, w, fn) -> _Run:
        started = time.perf_counter()
        try:
            model = fn()
        except ValueError as err:
            return _Run(key=key, gt_weight=w, wall_time_s=time.perf_counter() - started,
                        error=f"{type(err).__name__}: {err}")
        wall = time.perf_counter() - started
        return self._evaluate(key, w, wall, model)

    def _evaluate(self, key, w, wall, model) -> _Run:
        from analysis.metrics import summarize

        run = _Run(key=key, gt_weight=w, wall_time_s=wall, model=model, val_outputs=self.outputs(model, self.x_val))
        if self.criterion == "brier":
            run.val = summarize(run.val_outputs, self.y_val.numpy())
            if self.test is not None:
                run.test = summarize(self.outputs(model, self.test[0]), self.test[1].numpy())
        else:
            run.val = {"mse": float(np.mean((run.val_outputs - _as_2d(self.y_val, "y")) ** 2))}
            if self.test is not None:
                run.test = {"mse": float(np.mean((self.outputs(model, self.test[0]) - _as_2d(self.test[1], "y")) ** 2))}
        return run

    def label_model(self):
        if self._teacher is None:
            if self._given_teacher is not None:
                # An already-trained teacher costs nothing more here (its training is the user's).
                self._teacher = self._evaluate("generation 0", 1.0, 0.0, self._given_teacher)
            else:
                self._teacher = self._timed("generation 0", 1.0, lambda: self.train_fn(None, None))
            if self._teacher.error:
                raise RuntimeError(f"training the teacher failed: {self._teacher.error}")
        return self._teacher

    def teacher_runs(self):
        return [self.label_model()]

    def student(self, w):
        teacher = self.label_model().model
        return self._timed(f"w={w!r}", w, lambda: self.train_fn(w, teacher))

    def val_targets(self):
        return self.y_val.numpy()

    def val_inputs(self):
        return self.x_val

    def train_arrays(self):
        if self.train is None:
            raise ValueError("the kernel estimators need `train_loader` (the teacher's features on the training set).")
        return self.train[0], self.train[1].numpy()

    def outputs(self, model, x):
        import torch

        from analysis.metrics import softmax

        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x[s:s + 1024].to(self.device)).double().cpu() for s in range(0, x.shape[0], 1024)])
        return softmax(out.numpy()) if self.criterion == "brier" else out.numpy().reshape(out.shape[0], -1).astype(np.float64)

    def features(self, model, x):
        import torch

        if not hasattr(model, "features"):
            raise ValueError("the feature-kernel estimators need `model.features(x)` (penultimate activations); "
                             f"{type(model).__name__} has none. Use estimators=('two_run', 'kernel_ntk', ...).")
        model.eval()
        with torch.no_grad():
            return np.concatenate([model.features(x[s:s + 1024].to(self.device)).double().cpu().numpy()
                                   for s in range(0, x.shape[0], 1024)])


def _gather(loader, name):
    """All ``(x, y)`` batches of a loader as two CPU tensors (evaluation sets are small)."""
    import torch

    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError(f"`{name}` must yield (inputs, targets) batches; got {type(batch).__name__}.")
        xs.append(torch.as_tensor(batch[0]).cpu())
        ys.append(torch.as_tensor(batch[1]).cpu())
    if not xs:
        raise ValueError(f"`{name}` yielded no batch.")
    return torch.cat(xs), torch.cat(ys)


def estimate_gt_weight_for_model(train_fn: Callable, val_loader, *, test_loader=None, train_loader=None,
                                 grid: Sequence[float] | None = None,
                                 estimators: Iterable[str] = ("two_run",), criterion: str = "brier",
                                 allow_any_weight: bool = False, teacher_as_alpha1: bool = True, teacher=None,
                                 kernel: str = "linear", kernel_params: dict | None = None,
                                 ntk_subsample: int | None = 500, device="cpu", seed: int = 0,
                                 out_dir=None, log: Callable[[str], None] | None = None) -> dict:
    """The estimates of :func:`estimate_gt_weight` for a user's own model, training code and loaders.

    Parameters
    ----------
    train_fn : ``train_fn(gt_weight, teacher) -> trained model``. ``train_fn(None, None)`` trains the
        teacher on the labels; ``train_fn(w, teacher)`` a fresh student with ground-truth weight ``w``
        (the weight on the LABELS; convert a teacher weight ``w_t`` as ``1 - w_t``). Seed inside it for
        reproducible runs. :func:`make_train_fn` builds one from a model factory and a loader.
    val_loader : yields ``(x, y)`` validation batches (labels for ``"brier"``, targets for ``"mse"``).
    test_loader : optional; test metrics of every trained network.
    train_loader : needed by the kernel estimators (teacher features on the training set).
    grid : weights for a reference grid search (``None``: no grid, the cheap estimates only).
    teacher_as_alpha1 : generation 0 serves as the alpha = 1 end point; set ``False`` if your student
        at ``gt_weight = 1`` does NOT train like your teacher (then one more run).
    teacher : an already trained teacher (its training cost is then not counted).
    out_dir : where to write ``estimate_weight.json`` / ``.csv`` (``None``: nothing written).

    Returns the same structure as :func:`estimate_gt_weight` (one "seed").
    """
    criterion = _check_criterion(criterion)
    estimators = _check_estimators(estimators)
    grid = _check_grid(grid, allow_any_weight)
    if not callable(train_fn):
        raise TypeError(f"`train_fn` must be callable as train_fn(gt_weight, teacher); got {type(train_fn).__name__}.")
    backend = _CallableBackend(train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log)
    study = _study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                            allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1, kernel=kernel,
                            kernel_params=dict(kernel_params or {}), ntk_subsample=ntk_subsample, seed=seed, log=log)
    per_seed = [study]
    _finish_grid(per_seed)
    metrics = ("accuracy", "nll", "ece") if criterion == "brier" else ("mse",)
    result = {"schema": "deepdistill.estimate_weight/1", "generation": 1, "seeds": [seed], "grid": grid,
              "estimators": estimators, "allow_any_weight": allow_any_weight, "teacher_as_alpha1": teacher_as_alpha1,
              "criterion": criterion, "kernel": kernel, "per_seed": per_seed,
              "summary": summary_rows(per_seed, metrics=metrics) if test_loader is not None else []}
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def make_train_fn(model_factory: Callable, train_loader, *, loss: str = "kd", temperature: float = 1.0,
                  epochs: int = 10, lr: float = 1e-3, weight_decay: float = 0.0, device="cpu", seed: int = 0,
                  allow_any_weight: bool = False):
    """A ``train_fn(gt_weight, teacher)`` for :func:`estimate_gt_weight_for_model` from a model factory.

    AdamW for ``epochs`` passes over ``train_loader`` with a :data:`deepdistill.losses.LOSSES` loss:
    ``"kd"`` (Hinton: ``gt_weight CE + (1 - gt_weight) T^2 KL``), ``"mse_mixed"`` ([BA21]) or ``"zs"``
    ([ZS20]). The teacher (``gt_weight=None``) trains with the same loss at ``gt_weight = 1`` (labels
    only), so it is a draw of the alpha = 1 student. Every call seeds the model's initialisation with
    ``seed`` and the batch order through the loader's own generator (seed it for reproducibility).
    ``allow_any_weight``: weights outside [0, 1], accepted by ``"mse_mixed"`` only (the other losses
    are unbounded below there and refuse them).
    """
    import torch

    from deepdistill.losses import LOSSES

    if loss not in ("kd", "mse_mixed", "zs"):
        raise ValueError(f"`loss` must be 'kd', 'mse_mixed' or 'zs' (teacher-based losses); got {loss!r}.")
    spec = LOSSES[loss]

    def train_fn(gt_weight, teacher):
        torch.manual_seed(seed)
        model = model_factory().to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        w = 1.0 if gt_weight is None else float(gt_weight)
        if teacher is not None:
            teacher.eval()
        for _ in range(epochs):
            model.train()
            for xb, yb in train_loader:
                xb, yb = xb.to(device), yb.to(device)
                logits = model(xb)
                if teacher is None:
                    t_logits = torch.zeros_like(logits)               # weight 0 on the teacher term
                else:
                    with torch.no_grad():
                        t_logits = teacher(xb).float()
                out = spec.fn(logits, yb, teacher_logits=t_logits, gt_weight=w, temperature=temperature,
                              allow_any_weight=allow_any_weight)
                opt.zero_grad(set_to_none=True)
                out.backward()
                opt.step()
        model.eval()
        return model

    return train_fn
