"""Estimators of the optimal ground-truth weight of deep self-distillation: pure functions of arrays.

Three estimators of the weight ``gt_weight`` (the weight on the GROUND TRUTH, [BA21]'s alpha) of one
student generation (``docs/theory.md`` section 6; the kernel results they rest on are in sections 2.3
and 2.4). They take predictions, features or Gram matrices and return numbers; the study that trains
the networks they need, and a grid search to judge them by, is :mod:`deepdistill.studies.weight_estimation`.

* **Two-run affine estimate** (:func:`affine_optimal_weight`). In kernel ridge self-distillation the
  student is exactly affine in its weight, ``f_alpha = f_0 + alpha (f_1 - f_0)`` (``docs/theory.md``
  2.3, [BA21]), so any squared-error criterion is a convex quadratic in alpha with the closed-form minimiser::

      alpha* = <f_1 - f_0, r - f_0> / ||f_1 - f_0||^2          (r: reference values)

  (computed by :func:`kerneldistill.affine.affine_vertex`, the routine of the kernel criteria too, with
  the same rule for a degenerate path). For a network we ASSUME the same: the student's validation outputs are close to affine in the
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

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; [DPR26] Dang, Patil & Rinaldo,
arXiv 2602.17565 (the optimum may lie outside [0, 1]; one-shot tuning).
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import brentq
from torch.func import functional_call, jacrev, vmap

from deepdistill.core.config import METHODS
from deepdistill.core.losses import LOSSES
from deepdistill.core.metrics import as_numpy
from kerneldistill.affine import affine_vertex
from kerneldistill.estimator import KernelDistiller
from kerneldistill.filters import filter_diagonals, weight_endpoint_filters
from kerneldistill.optimal import OneShotRisk, ReferenceRisk, optimal_gt_weight, project_onto_basis

__all__ = [
    "CRITERIA",
    "UNCERTAIN_WIDTH",
    "uncertainty_flag",
    "AffineWeightEstimate",
    "affine_optimal_weight",
    "affine_residuals",
    "KernelWeightEstimate",
    "kernel_surrogate_weights",
    "empirical_ntk_gram",
    "label_endpoint_is_generation_zero",
    "as_matrix",
    "target_matrix",
    "check_criterion",
    "INTERVAL_LEVEL",
    "affine_weight_interval",
    "per_example_criterion",
    "parabola_vertex",
    "ParabolaWeightEstimate",
    "parabola_optimal_weight",
    "kernel_validation_paths",
    "interval_kind",
    "clip_interval",
    "clip_reason",
    "affine_per_example",
    "paired_halfwidth",
]

#: The level of every interval the estimators report (two-sided, percentile bootstrap).
INTERVAL_LEVEL = 0.9

#: The squared-error criteria: the Brier score of probabilities (classification), the MSE of outputs (regression).
CRITERIA = ("brier", "mse")


# ------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------

def as_matrix(a, name: str) -> np.ndarray:
    """``a`` (array or tensor, ``(n,)`` or ``(n, k)``) as a finite float64 ``(n, k)`` matrix; ``name`` names it in errors."""
    arr = np.asarray(as_numpy(a, name), dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty (n,) or (n, k) array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; it holds {int(np.sum(~np.isfinite(arr)))} NaN/inf value(s).")
    return arr


def check_criterion(criterion) -> str:
    """``criterion`` if it is one of :data:`CRITERIA`, else an error that lists them."""
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {list(CRITERIA)} ('brier': probabilities vs labels; "
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


def target_matrix(targets, n: int, k: int, criterion: str) -> np.ndarray:
    """Targets as (n, k): integer labels become one-hot rows for the Brier score."""
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
    t2 = as_matrix(t, "targets")
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
    ``t = (w - weight_0) / (weight_1 - weight_0)`` (docs/theory.md 2.3: the kernel student is exactly affine in
    its ground-truth weight; a network approximately).

    With ``D = pred_1 - pred_0`` and ``E = targets - pred_0``, the criterion
    ``c(t) = (||E||^2 - 2 t <D, E> + t^2 ||D||^2) / N`` is a convex quadratic with vertex
    ``t* = <D, E> / ||D||^2`` ([BA21]'s optimum, docs/theory.md 2.3). ``N`` is the number of examples for
    ``"brier"`` (the multi-class Brier score sums over classes, :func:`deepdistill.core.metrics.brier_score`)
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
    criterion = check_criterion(criterion)
    bounds = _check_bounds(bounds)
    w0, w1 = float(weight_0), float(weight_1)
    if not (math.isfinite(w0) and math.isfinite(w1)) or w0 == w1:
        raise ValueError(f"`weight_0` and `weight_1` must be two different finite weights; got {weight_0!r}, {weight_1!r}.")
    P0, P1 = as_matrix(pred_0, "pred_0"), as_matrix(pred_1, "pred_1")
    if P0.shape != P1.shape:
        raise ValueError(f"`pred_0` and `pred_1` must have the same shape; got {P0.shape} and {P1.shape}.")
    n, k = P0.shape
    T = target_matrix(targets, n, k, criterion)
    norm = n if criterion == "brier" else n * k
    D, E = P1 - P0, T - P0
    dd, de, ee = float(np.sum(D * D)), float(np.sum(D * E)), float(np.sum(E * E))

    # Both students predict the same (to round-off relative to the predictions and residuals):
    # every weight is optimal, and the vertex is the labels end point (t = 1).
    t_star, degenerate = affine_vertex(de, dd, scale=max(ee, float(np.sum(P0 * P0))))
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
    P0, P1 = as_matrix(pred_0, "pred_0"), as_matrix(pred_1, "pred_1")
    scale = float(np.sum((P1 - P0) ** 2))
    if scale == 0.0:
        raise ValueError("`pred_0` and `pred_1` are identical: the affine path is a point, residuals are undefined.")
    weights = [float(w) for w in weights]
    if len(weights) != len(preds):
        raise ValueError(f"`weights` and `preds` must have the same length; got {len(weights)} and {len(preds)}.")
    out = []
    for w, p in zip(weights, preds):
        P = as_matrix(p, "preds[i]")
        if P.shape != P0.shape:
            raise ValueError(f"each of `preds` must have shape {P0.shape}; got {P.shape} at weight {w}.")
        t = (w - weight_0) / (weight_1 - weight_0)
        out.append(float(np.sum((P - (P0 + t * (P1 - P0))) ** 2)) / scale)
    return np.array(out)


def _bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` resampled example indices (with replacement), reproducible from ``seed``."""
    return np.random.default_rng(seed).integers(0, n, size=(int(n_boot), n))


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return float(lo), float(hi)


def affine_weight_interval(pred_0, pred_1, targets, criterion: str = "brier", *, weight_0: float = 0.0,
                           weight_1: float = 1.0, level: float = INTERVAL_LEVEL, n_boot: int = 2000,
                           seed: int = 0) -> tuple[float, float]:
    """A percentile-bootstrap interval of the UNCONSTRAINED affine vertex over validation examples.

    The vertex ``t* = <D, E> / ||D||^2`` (:func:`affine_optimal_weight`) is a ratio of two sums over
    examples, ``sum_i d_i / sum_i s_i`` with ``d_i = <D_i, E_i>`` and ``s_i = ||D_i||^2``; each
    bootstrap draw resamples the examples (Efron & Tibshirani 1993, ch. 13: percentile interval) and
    recomputes the ratio. It measures how much the estimate depends on WHICH validation examples were
    drawn, not the training noise of the two students (that needs several seeds). Clip both ends to
    the bounds yourself for a constrained weight.
    """
    criterion = check_criterion(criterion)
    P0, P1 = as_matrix(pred_0, "pred_0"), as_matrix(pred_1, "pred_1")
    if P0.shape != P1.shape:
        raise ValueError(f"`pred_0` and `pred_1` must have the same shape; got {P0.shape} and {P1.shape}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must lie in (0, 1); got {level!r}.")
    T = target_matrix(targets, *P0.shape, criterion)
    D, E = P1 - P0, T - P0
    d, sq = np.sum(D * E, axis=1), np.sum(D * D, axis=1)               # (n,), (n,)
    idx = _bootstrap_indices(len(d), n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d[idx].sum(axis=1) / sq[idx].sum(axis=1)                   # (n_boot,)
    lo, hi = _percentiles(weight_0 + t * (weight_1 - weight_0), level)
    return (lo, hi) if weight_1 > weight_0 else (hi, lo)


def per_example_criterion(pred, targets, criterion: str = "brier") -> np.ndarray:
    """The criterion of each example: ``sum_k (p_ik - t_ik)^2`` (``"brier"``, whose mean is the
    multi-class Brier score) or ``mean_k (p_ik - t_ik)^2`` (``"mse"``), ``(n,)``."""
    criterion = check_criterion(criterion)
    P = as_matrix(pred, "pred")
    T = target_matrix(targets, *P.shape, criterion)
    sq = (P - T) ** 2
    return sq.sum(axis=1) if criterion == "brier" else sq.mean(axis=1)


def parabola_vertex(weights, values) -> tuple[float, float, float]:
    """The parabola ``c(w) = a w^2 + b w + c0`` through three points ``(w_j, c_j)`` (distinct ``w_j``):
    returns ``(vertex, a, value at the vertex)``; ``vertex`` is ``nan`` when ``a <= 0`` (no minimum).

    Exact for a criterion that IS a quadratic in the weight, as a squared error of outputs that are
    affine in the weight is (:func:`affine_optimal_weight`). Lagrange's form, solved by numpy."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    c = np.asarray(values, dtype=np.float64).ravel()
    if w.shape != (3,) or c.shape != (3,):
        raise ValueError(f"`weights` and `values` must hold 3 numbers each; got {w.shape} and {c.shape}.")
    if len(set(w.tolist())) != 3 or not np.all(np.isfinite(w)) or not np.all(np.isfinite(c)):
        raise ValueError(f"`weights` must be 3 distinct finite weights and `values` finite; got {w.tolist()}, "
                         f"{c.tolist()}.")
    a, b, c0 = np.linalg.solve(np.vander(w, 3), c)
    if not a > 0:
        return math.nan, float(a), math.nan
    v = -b / (2.0 * a)
    return float(v), float(a), float(c0 - b * b / (4.0 * a))


@dataclass(frozen=True)
class ParabolaWeightEstimate:
    """The minimiser of the parabola through three measured points of the validation criterion.

    gt_weight : the vertex clipped to ``bounds`` (when the parabola opens downward, or is flat: the
        measured point of least criterion, and ``concave`` is True).
    unconstrained : the vertex (``nan`` when there is none).
    criterion_at_estimate : the parabola's value at ``gt_weight``.
    interval : percentile-bootstrap interval of the unconstrained vertex over validation examples
        (``level``), from the draws whose parabola opens upward; ``interval_draws`` says how many did.
    """

    gt_weight: float
    unconstrained: float
    criterion_at_estimate: float
    curvature: float
    interval: tuple
    interval_draws: int
    concave: bool
    level: float = INTERVAL_LEVEL

    def to_dict(self) -> dict:
        return asdict(self)


def parabola_optimal_weight(weights, per_example, *, bounds=(0.0, 1.0), level: float = INTERVAL_LEVEL,
                            n_boot: int = 2000, seed: int = 0) -> ParabolaWeightEstimate:
    """Refine a weight from three trained students: the vertex of the parabola through their mean
    validation criteria (:func:`parabola_vertex`), with a bootstrap interval over validation examples.

    ``weights``: the 3 distinct weights; ``per_example``: a ``(3, n)`` array of each student's
    per-example criterion on the same validation examples (:func:`per_example_criterion`). Unlike the
    two-run estimate, this needs no assumption that the OUTPUTS are affine in the weight, only that
    the criterion is close to a quadratic between the points; it is exact when the outputs are affine.
    """
    bounds = _check_bounds(bounds)
    w = np.asarray(weights, dtype=np.float64).ravel()
    C = np.asarray(per_example, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != 3 or w.shape != (3,):
        raise ValueError(f"`per_example` must be (3, n) (one row per weight of `weights`); got {C.shape}.")
    if not np.all(np.isfinite(C)):
        raise ValueError("`per_example` must be finite.")
    means = C.mean(axis=1)
    vertex, a, _ = parabola_vertex(w, means)

    def clip(v):
        return float(v) if bounds is None else float(np.clip(v, *bounds))

    # The parabola's coefficients are linear in the three means: one solve for every bootstrap draw.
    inv = np.linalg.inv(np.vander(w, 3))                                # coefficients = inv @ means
    idx = _bootstrap_indices(C.shape[1], n_boot, seed)
    boot_means = C[:, idx].mean(axis=2)                                 # (3, n_boot)
    coef = inv @ boot_means                                             # (3, n_boot): a, b, c0
    up = coef[0] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = -coef[1, up] / (2.0 * coef[0, up])
    interval = _percentiles(draws, level)
    concave = not math.isfinite(vertex)
    if concave:
        # No minimum between the points: the best measured point (the criterion falls towards it).
        est = clip(float(w[int(np.argmin(means))]))
    else:
        est = clip(vertex)
    at = float(np.polyval(np.linalg.solve(np.vander(w, 3), means), est))
    return ParabolaWeightEstimate(gt_weight=est, unconstrained=float(vertex), criterion_at_estimate=at,
                                  curvature=float(a), interval=interval, interval_draws=int(up.sum()),
                                  concave=bool(concave), level=level)


@dataclass(frozen=True)
class GridArgminEstimate:
    """The measured weight of least mean validation criterion, and how firmly the data fix it.

    gt_weight : the argmin of the mean criterion over ``weights``.
    criterion_at_estimate : the mean criterion there.
    interval : percentile-bootstrap interval of the argmin over validation examples (``level``).
    values : the mean criterion at each weight.
    """

    gt_weight: float
    criterion_at_estimate: float
    interval: tuple
    values: tuple
    level: float = INTERVAL_LEVEL

    def to_dict(self) -> dict:
        return asdict(self)


def grid_argmin_weight(weights, per_example, *, level: float = INTERVAL_LEVEL, n_boot: int = 2000,
                       seed: int = 0) -> GridArgminEstimate:
    """A grid search's pick and its interval: the weight of least mean per-example criterion
    (``per_example``: ``(len(weights), n)``, each trained student's criterion on the same ``n`` validation
    examples), with a percentile bootstrap of that argmin over the examples. No model of the curve."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    C = np.asarray(per_example, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != w.size or w.size < 2:
        raise ValueError(f"`per_example` must be (len(weights), n) with at least 2 weights; got {C.shape} for "
                         f"{w.size} weights.")
    if not np.all(np.isfinite(C)):
        raise ValueError("`per_example` must be finite.")
    means = C.mean(axis=1)
    pick = int(np.argmin(means))
    idx = _bootstrap_indices(C.shape[1], n_boot, seed)
    # one weight's (n_boot, n) resample at a time: C[:, idx] whole would be len(weights) times that in memory
    draws = w[np.argmin(np.stack([row[idx].mean(axis=1) for row in C]), axis=0)]
    return GridArgminEstimate(gt_weight=float(w[pick]), criterion_at_estimate=float(means[pick]),
                              interval=_percentiles(draws, level), values=tuple(means.tolist()), level=level)


def interval_kind(n: int) -> str:
    """How a bootstrap interval over ``n`` validation examples is described in the results."""
    return f"{int(round(100 * INTERVAL_LEVEL))}% bootstrap over {n} validation examples"


#: An estimate whose 90% interval covers more than this share of the admissible range says so in its status
#: ("uncertain: ..."). Set on the weight map's development cells only (docs/weight_map.md).
UNCERTAIN_WIDTH = 0.5


def uncertainty_flag(interval, bounds) -> str | None:
    """Words when ``interval`` covers more than :data:`UNCERTAIN_WIDTH` of the admissible range (``bounds``,
    or a width of 1 when any weight is allowed): the validation data do not fix the weight, and a grid
    search may find a better student. ``None`` otherwise (or without a finite interval)."""
    if not interval or any(v is None or not np.isfinite(v) for v in interval):
        return None
    lo, hi = float(interval[0]), float(interval[1])
    span = (bounds[1] - bounds[0]) if bounds is not None else 1.0
    if hi - lo <= UNCERTAIN_WIDTH * span:
        return None
    return (f"uncertain: the 90% interval [{lo:.2f}, {hi:.2f}] covers more than {UNCERTAIN_WIDTH:.0%} of the "
            f"admissible range; the validation data do not fix the weight (a grid search, more validation "
            f"examples or more seeds may find a better one)")


def clip_interval(interval, bounds):
    """An interval of an unconstrained weight, clipped to ``bounds`` like the weight (``None``: as is)."""
    lo, hi = interval
    if bounds is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return [lo, hi]
    return [float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))]


def clip_reason(unconstrained, bounds, what: str) -> str | None:
    """Why a weight was clipped, in words (``None`` when it was not)."""
    if unconstrained is None or bounds is None or not np.isfinite(unconstrained):
        return None
    lo, hi = bounds
    if unconstrained > hi:
        return (f"clipped to {hi:g}: the optimum lies beyond {hi:g} (unconstrained {unconstrained:.3g}): along "
                f"{what}'s curve the teacher's outputs help less than the labels at every weight")
    if unconstrained < lo:
        return (f"clipped to {lo:g}: the optimum lies below {lo:g} (unconstrained {unconstrained:.3g}): the teacher's "
                "outputs help more than the labels at every weight in the bounds (allow_any_weight for weights "
                "below 0, with sd_mse)")
    return None


def affine_per_example(p0, p1, y, w: float, criterion: str) -> np.ndarray:
    """The affine model's per-example criterion at weight ``w`` (``pred = p0 + w (p1 - p0)``)."""
    P0, P1 = as_matrix(p0, "pred_0"), as_matrix(p1, "pred_1")
    return per_example_criterion(P0 + w * (P1 - P0), y, criterion)


def paired_halfwidth(diff: np.ndarray, seed: int, n_boot: int = 2000) -> float:
    """Half the width of the 90% percentile-bootstrap interval of ``mean(diff)`` over examples."""
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_boot, len(diff)))
    tail = 50.0 * (1.0 - INTERVAL_LEVEL)
    lo, hi = np.percentile(diff[idx].mean(axis=1), [tail, 100.0 - tail])
    return float((hi - lo) / 2.0)


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
        not reach the teacher's training residual: the estimate is then not informative, and
        ``ridge_unreachable`` is True); ``train_residual`` the kernel step-1 fit's training MSE (per
        example, summed over outputs).
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
    ridge_unreachable: bool = False
    validation_interval: tuple | None = None   # 90% bootstrap over validation examples, unconstrained

    def to_dict(self) -> dict:
        return asdict(self)


def kernel_validation_paths(evals, evecs, y_train, ridge: float, K_val, step: int = 2, previous=()):
    """The kernel student's validation predictions at weight 0 and weight 1 of step ``step`` (the
    earlier steps at ``previous``): ``(f_0, f_1)``, each ``(n_val, k)``. The student is exactly affine
    in its weight between them (docs/theory.md 2.3), so :func:`affine_weight_interval` on them gives the
    bootstrap interval of the kernel's validation optimum."""
    schedule = list(previous) + [0.0]
    _, q0, _, _, dq = weight_endpoint_filters(evals, ridge, schedule, step)
    P = np.asarray(K_val, dtype=np.float64) @ evecs                    # (n_val, m)
    z = evecs.T @ np.asarray(y_train, dtype=np.float64)                # (m, k)
    f0 = P @ (q0[:, None] * z)
    return f0, f0 + P @ (dq[:, None] * z)


def _step1_train_residual(evals, z2, perp, ridge, n):
    """Training MSE (per example, summed over outputs) of kernel ridge on the labels:
    ``sum_i (lam / (d_i + lam))^2 ||z_i||^2 + ||y - V z||^2``, over n.

    The residual filter is ``1 - b`` with ``b = d / (d + lam)`` step 1's filter
    (:func:`kerneldistill.filters.filter_diagonals`); it is taken as ``lam q = lam / (d + lam)``, the
    same number without the cancellation of ``1 - b`` when ``d >> lam``."""
    _, q = filter_diagonals(evals, ridge, 1.0, [1])
    shrink = ridge * q[0]
    return float((np.sum(shrink**2 * z2) + perp) / n)


def _match_ridge(evals, z2, perp, n, target_residual) -> tuple[float, bool]:
    """The ridge at which the step-1 training residual equals ``target_residual`` (monotone in the
    ridge: bisection in log-ridge with scipy's brentq), clipped to the attainable range; the flag says
    the target was out of reach (the ridge is then an end of that range)."""
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
    """Optimal ground-truth weights of kernel ridge self-distillation on given inputs (docs/theory.md 2.3, 2.4).

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
    started = time.perf_counter()
    bounds = _check_bounds(bounds)
    Xtr = as_matrix(X_train, "X_train")
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

        def cross_kernel(X_val):
            return as_matrix(X_val, "X_val") @ Xtr.T                      # (n_val, n)
    else:
        # One eigendecomposition; the ridge below only changes the filters, never the spectrum.
        distiller = KernelDistiller(kernel=kernel, ridge=1.0, gt_weight=1.0, steps=step, **kernel_params)
        distiller.fit(Xtr, Ytr - offset)
        evals, evecs = distiller.evals_, distiller.evecs_

        def cross_kernel(X_val):
            return distiller.kernel_matrix(np.asarray(as_matrix(X_val, "X_val"), dtype=evecs.dtype))
    z, perp = project_onto_basis(evecs, Ytr - offset)                # z: (m, k); perp: the part outside span(V)
    z2 = np.sum(z**2, axis=1)

    at_bound = False
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
    val = val_interval = None
    if X_val is not None:
        if targets_val is None:
            raise ValueError("`targets_val` is needed with `X_val`.")
        K_val = cross_kernel(X_val)
        Yva = _one_hot_or_2d(targets_val, K_val.shape[0], "targets_val", num_classes=k)
        val = optimal_gt_weight(ReferenceRisk(evals, evecs, Ytr - offset, lam, K_val, Yva - offset), step, previous,
                                constrained=False)
        f0, f1 = kernel_validation_paths(evals, evecs, Ytr - offset, lam, K_val, step, previous)
        val_interval = affine_weight_interval(f0, f1, Yva - offset, criterion="mse")
    return KernelWeightEstimate(
        validation=None if val is None else clip(val), validation_unconstrained=val,
        one_shot=clip(one_shot), one_shot_unconstrained=float(one_shot), ridge=lam, ridge_rule=rule,
        train_residual=_step1_train_residual(evals, z2, perp, lam, n), n_train=n, step=int(step),
        wall_time_s=time.perf_counter() - started, ridge_unreachable=bool(at_bound), validation_interval=val_interval)


def val_matrix(y_val, k: int, criterion: str) -> np.ndarray:
    """The validation targets as the ``(n, k)`` matrix the criterion compares outputs with: one-hot labels
    for ``"brier"`` (or given probabilities), the targets themselves for ``"mse"``."""
    y = np.asarray(as_numpy(y_val, "y_val"))
    if criterion == "brier":
        return np.eye(k)[y.astype(np.int64)] if y.ndim == 1 else as_matrix(y, "y_val")
    return as_matrix(y, "y_val")


def _one_hot_or_2d(targets, n: int, name: str, num_classes: int | None = None) -> np.ndarray:
    t = np.asarray(as_numpy(targets, name))
    if t.ndim == 1 and np.issubdtype(t.dtype, np.integer):
        k = int(num_classes if num_classes is not None else t.max() + 1)
        if t.shape[0] != n or t.min() < 0 or t.max() >= k:
            raise ValueError(f"`{name}` must hold {n} class labels in [0, {k}); got shape {t.shape}.")
        return np.eye(k)[t]
    t2 = as_matrix(t, name)
    if t2.shape[0] != n:
        raise ValueError(f"`{name}` must have {n} rows; got {t2.shape[0]}.")
    return t2


def empirical_ntk_gram(model, x_a, x_b=None, *, batch_size: int = 128) -> np.ndarray:
    """The trace empirical neural tangent kernel ``K(x, x') = sum_k <d f_k(x)/d theta, d f_k(x')/d theta>``.

    ``f_k`` are the model's outputs (logits), ``theta`` ALL its parameters (whatever their
    ``requires_grad``: a frozen teacher has the same kernel), evaluated in eval mode at the current
    weights, on a copy (``model`` itself is left as it was). Per-example Jacobians by ``torch.func`` (``vmap(jacrev)``), one
    batch at a time: memory ``batch_size * K * n_params`` floats, plus the ``(n_a, n_b)`` result.
    Returns float64 numpy. (The trace over outputs gives one scalar kernel for all k outputs, the
    usual choice for kernel regression on one-hot targets.)
    """
    # On a copy, in eval mode: the caller's network (often a frozen teacher, requires_grad=False)
    # keeps its flags, mode and weights. Every parameter counts, whatever its requires_grad: the
    # kernel is the network's, not that of what an optimiser would update (torch.func
    # differentiates the detached copies it is given, so no flag is needed).
    model = copy.deepcopy(model).eval()
    named = dict(model.named_parameters())
    if not named:
        raise ValueError(f"`model` ({type(model).__name__}) has no parameter: its empirical NTK is empty.")
    device = next(iter(named.values())).device
    x_a = x_a.to(device)
    x_b = None if x_b is None else x_b.to(device)
    params = {k: v.detach() for k, v in named.items()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p, x):                                                       # one example -> (K,)
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    jac_fn = vmap(jacrev(f), in_dims=(None, 0))

    def jacobian(x):                                                   # (b, K, P)
        j = jac_fn(params, x)
        return torch.cat([v.reshape(x.shape[0], v.shape[1], -1) for v in j.values()], dim=2).double()

    def batches(x):
        return [x[s:s + batch_size] for s in range(0, x.shape[0], batch_size)]

    # Jacobians of the second argument are kept (float64, n_b x K x P); rows of the first are
    # streamed one batch at a time.
    J_other = torch.cat([jacobian(xb) for xb in batches(x_a if x_b is None else x_b)])   # (n_b, K, P)
    if x_b is None:
        gram = torch.einsum("ikp,jkp->ij", J_other, J_other)
        gram = 0.5 * (gram + gram.T)                                   # exact symmetry for the eigensolver
    else:
        gram = torch.cat([torch.einsum("ikp,jkp->ij", jacobian(xa), J_other) for xa in batches(x_a)])
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
    spec = METHODS[method]
    if not (spec.uses_teacher and spec.uses_gt_weight):
        return False
    first, later = spec.loss_names(ls_convention)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (16,), generator=g)
    teacher = torch.randn(16, 5, generator=g, dtype=torch.float64) * 3
    common = dict(temperature=temperature, smoothing=smoothing)
    a = LOSSES[first].fn(logits, labels, gt_weight=1.0, **common)     # generation 0 has no teacher
    b = LOSSES[later].fn(logits, labels, teacher_logits=teacher, gt_weight=1.0, **common)
    return bool(torch.allclose(a, b, rtol=1e-12, atol=1e-12))


