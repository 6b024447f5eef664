"""Every ridge from one eigendecomposition: ridge x weight grids, joint tuning and [DPR26]'s Proposition 2.3.

The eigenvectors of the Gram matrix do not depend on the ridge, so every criterion of
:mod:`kerneldistill.optimal` moves to another ridge at no cost (:meth:`at_ridge`: only the filters
change), and :meth:`KernelDistiller.path` takes ``ridges=`` for predictions. Here:

- :func:`ridge_weight_grid`: for each ridge, plain kernel ridge (step 1) and self-distillation at
  its optimal step-2 weight, under any criterion (oracle, held-out or one-shot);
- :func:`tune_ridge_and_weight`: the best ridge for plain kernel ridge against the best
  (ridge, gt_weight) pair, each on the grid and then refined by Brent's method in ``log(ridge)``;
- :func:`proposition_2_3`: Dang, Patil & Rinaldo (arXiv 2602.17565) Proposition 2.3, in the form
  derived here from their identities ``xi* = -(lam/2) R'(lam) / D`` and ``R_sd = R - (R - C)^2 / D``:
  at the best ridge ``lam*`` (``R'(lam*) = 0``) the optimal weight is that of plain ridge, and near
  ``lam*`` the optimally weighted student's risk is, with ``delta = lam - lam*``,
  ``R* + R''(lam*) delta^2 / 2 * (1 - lam*^2 R''(lam*) / (2 D(lam*)))``, so self-distillation at a
  nearby ridge beats the best ridge iff ``D(lam*) < lam*^2 R''(lam*) / 2``.
  ``D = ||f_T - f_PD||^2`` in the risk's norm. The condition is local (sufficient, not necessary:
  a far-away ridge can still win), so the table reports the measured best pair beside it. Both
  sides are invariant to the scale of the ridge, so [DPR26]'s 1/n convention and ours agree.
  The paper itself could not be read here: the statement is this derivation, not a quotation.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.optimize

from ._validation import check_bool, warn_imprecise_weights
from .optimal import check_criterion

__all__ = ["minimise_over_ridge", "RidgeWeightGrid", "ridge_weight_grid", "RidgeWeightChoice",
           "tune_ridge_and_weight", "Proposition23", "proposition_2_3"]


def _check_ridges(ridges, name: str = "ridges") -> np.ndarray:
    try:
        r = np.asarray(ridges, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a non-empty 1-D sequence of finite ridges > 0; got {ridges!r}.") from err
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence of finite ridges > 0; got {ridges!r}.")
    return r


def minimise_over_ridge(fn: Callable[[float], float], ridges: Sequence[float], *, extra: Sequence[float] = ()):
    """``(ridge, fn(ridge))`` minimising ``fn`` over the grid ``ridges`` (plus ``extra`` points), then
    refined by bounded Brent in ``log(ridge)`` between the grid neighbours of the best point. The
    result is never worse than the best point evaluated.

    Ridges where ``fn`` returns NaN are skipped, with a ``UserWarning`` that says at how many and
    which (``np.argmin`` would otherwise return the first NaN as the minimum); if ``fn`` is NaN at
    every ridge, a ``ValueError``. A NaN met by the refinement is never accepted (NaN < x is False).
    """
    more = np.asarray(extra, dtype=np.float64).ravel()
    grid = np.unique(np.concatenate([_check_ridges(ridges), _check_ridges(more, name="extra") if more.size else more]))
    values = np.array([fn(float(lam)) for lam in grid], dtype=np.float64)
    nan = np.isnan(values)
    if nan.all():
        raise ValueError(f"`fn` returned NaN at every one of the {len(grid)} ridges "
                         f"({grid[0]:.3g} .. {grid[-1]:.3g}); there is nothing to minimise.")
    if nan.any():
        shown = ", ".join(f"{lam:.3g}" for lam in grid[nan][:5]) + (", ..." if nan.sum() > 5 else "")
        warnings.warn(f"minimise_over_ridge: `fn` returned NaN at {int(nan.sum())} of {len(grid)} ridges "
                      f"({shown}); they are skipped.", UserWarning, stacklevel=2)
        grid, values = grid[~nan], values[~nan]
    i = int(np.argmin(values))
    best = (float(grid[i]), float(values[i]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if lo < hi:
        res = scipy.optimize.minimize_scalar(lambda t: fn(float(np.exp(t))), bounds=(np.log(lo), np.log(hi)),
                                             method="bounded", options={"xatol": 1e-7})
        if res.fun < best[1]:
            best = (float(np.exp(res.x)), float(res.fun))
    return best


@dataclass(frozen=True)
class RidgeWeightGrid:
    """Plain kernel ridge and optimally weighted self-distillation (step 2) on a grid of ridges.

    ridges ``(R,)``; ridge_risk ``(R,)``: the criterion of plain kernel ridge (step 1);
    gt_weight ``(R,)``: the optimal step-2 weight at each ridge (in [0, 1] if ``constrained``);
    sd_risk ``(R,)``: the step-2 criterion at that weight (``<= ridge_risk``).
    """

    ridges: np.ndarray
    ridge_risk: np.ndarray
    gt_weight: np.ndarray
    sd_risk: np.ndarray
    constrained: bool
    criterion: str


def ridge_weight_grid(criterion, ridges, *, constrained: bool = True) -> RidgeWeightGrid:
    """:class:`RidgeWeightGrid` of ``criterion`` (any criterion of :mod:`kerneldistill.optimal`) over
    ``ridges``, from the criterion's one eigendecomposition."""
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    r = _check_ridges(ridges)
    ridge_risk, weight, sd_risk = np.empty(len(r)), np.empty(len(r)), np.empty(len(r))
    for i, quad in enumerate(criterion.step2_quadratics(r)):
        ridge_risk[i] = quad.risk_labels  # step 2 at alpha = 1 is step 1
        weight[i] = quad.argmin(constrained=constrained)
        sd_risk[i] = quad(weight[i])
    warn_imprecise_weights(weight, stacklevel=2)  # tiny ridges give weights ~ eigenvalue / ridge
    return RidgeWeightGrid(r, ridge_risk, weight, sd_risk, bool(constrained), type(criterion).__name__)


@dataclass(frozen=True)
class RidgeWeightChoice:
    """The best ridge for plain kernel ridge, and the best (ridge, gt_weight) pair with self-distillation."""

    ridge: float
    ridge_risk: float
    pair_ridge: float
    pair_gt_weight: float
    pair_risk: float
    constrained: bool
    criterion: str


def _sd_at(criterion, lam, constrained):
    quad = criterion.at_ridge(lam).quadratic(2)
    w = quad.argmin(constrained=constrained)
    return w, quad(w)


def tune_ridge_and_weight(criterion, ridges, *, constrained: bool = True) -> RidgeWeightChoice:
    """Tune ``ridge`` alone (plain kernel ridge) and ``(ridge, gt_weight)`` jointly (step 2) under
    ``criterion``: grid, then Brent in ``log(ridge)``; the pair's search includes the best ridge, so
    the pair is never worse than it under the criterion."""
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    lam, risk = minimise_over_ridge(lambda x: criterion.at_ridge(x).quadratic(2).risk_labels, ridges)
    pair_lam, pair_risk = minimise_over_ridge(lambda x: _sd_at(criterion, x, constrained)[1], ridges, extra=[lam])
    w, pair_risk = _sd_at(criterion, pair_lam, constrained)
    warn_imprecise_weights(w, stacklevel=2)
    return RidgeWeightChoice(lam, risk, pair_lam, float(w), float(pair_risk), bool(constrained),
                             type(criterion).__name__)


@dataclass(frozen=True)
class Proposition23:
    """[DPR26] Proposition 2.3 measured at the best ridge ``lam*`` of a criterion (see the module docstring).

    ridge, risk: ``lam*`` and ``R(lam*)``; slope: ``R'(lam*)`` (about 0); curvature: ``R''(lam*)``;
    distance: ``D(lam*)``; threshold: ``lam*^2 R''(lam*) / 2``; holds: ``distance < threshold``.
    pair_ridge, pair_gt_weight, pair_risk: the best (ridge, weight) pair (unconstrained weight);
    gain: ``1 - pair_risk / risk`` (>= 0).
    """

    ridge: float
    risk: float
    slope: float
    curvature: float
    distance: float
    threshold: float
    holds: bool
    pair_ridge: float
    pair_gt_weight: float
    pair_risk: float
    gain: float


def proposition_2_3(criterion, ridges) -> Proposition23:
    """Measure Proposition 2.3 for ``criterion`` (a :class:`ReferenceRisk` or
    :class:`ExpectedTrainingRisk`: the proposition is about the true risk, whose derivatives in the
    ridge these two give in closed form) over the grid ``ridges``."""
    check_criterion(criterion)
    if not hasattr(criterion, "ridge_derivatives"):
        raise TypeError(f"`criterion` must be a ReferenceRisk or an ExpectedTrainingRisk (a risk with closed-form "
                        f"derivatives in the ridge); got {type(criterion).__name__}.")
    choice = tune_ridge_and_weight(criterion, ridges, constrained=False)
    risk, slope, curvature, distance = criterion.at_ridge(choice.ridge).ridge_derivatives()
    threshold = choice.ridge**2 * curvature / 2.0
    pair_risk = min(choice.pair_risk, risk)
    return Proposition23(ridge=choice.ridge, risk=risk, slope=slope, curvature=curvature, distance=distance,
                         threshold=threshold, holds=bool(distance < threshold), pair_ridge=choice.pair_ridge,
                         pair_gt_weight=choice.pair_gt_weight, pair_risk=pair_risk, gain=1.0 - pair_risk / risk)
