"""Pure self-distillation with a fixed fit budget ([MFB20] Mobahi, Farajtabar & Bartlett 2020).

Setting (``docs/theory.md`` section 3; arXiv 2002.05715). Each round fits the minimum-RKHS-norm
function within a fixed training-error budget ``eps`` of the round's targets ``y_t`` (``y_0 = y``,
``y_(t+1) = f_t(X)``: pure distillation, no ground truth after round 0)::

    minimise ||f||_H   subject to   (1/n) sum_i ||f(x_i) - y_t,i||^2 <= eps

With the normalised Gram matrix ``G = K / n = V diag(g) V^T`` (``g = d / n``) and ``z = V^T y_t``, the
solution is kernel ridge regression ``f_t(X) = V diag(g / (g + c_t)) V^T y_t`` whose multiplier
``c_t > 0`` is the unique root of the budget equation::

    sum_i (c z_i / (c + g_i))^2 = n eps          (a root exists iff ||y_t||^2 > n eps)

The left side increases strictly in ``c`` (from 0 to ``||y_t||^2``), so a bracketing root finder
(:func:`scipy.optimize.brentq`) is safe. In this toolkit's sum-of-squares convention the round is
``KernelRidge(alpha=n c_t)``: the per-round ``ridge`` is ``n c_t``.

Bounds (derived here; [MFB20]'s exact statements could not be read). With ``r_t = ||y_t|| / sqrt(n eps)``
and ``kappa = g_max / g_min``, comparing every factor ``c / (c + g_i)`` with its extremes gives::

    g_min / (r_t - 1) <= c_t <= g_max / (r_t - 1)
    r_t (r_t - 1) / (r_t - 1 + kappa) <= r_(t+1) <= r_t kappa (r_t - 1) / (kappa (r_t - 1) + 1)

so ``r`` falls by at most ``kappa`` and at least ``1 / kappa`` per round: collapse (``||y_t|| <=
sqrt(n eps)``: ``f = 0`` satisfies the budget and is the minimum-norm fit, and stays so) happens at a
round ``t_c`` with ``(r_0 - 1) / kappa <= t_c <= ceil(kappa (r_0 - 1))``.

Sparsification: the product filter ``B_t = prod_(s <= t) diag(g / (g + c_s))`` favours large
eigenvalues more every round: ``B_t[i] / B_t[j]`` increases strictly in ``t`` for ``g_i > g_j``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ._validation import check_steps
from .filters import filter_diagonals
from .optimal import _spectral_inputs

__all__ = ["MobahiPath", "budget_multiplier", "budget_residual", "fixed_budget_path",
           "fixed_budget_path_from_distiller"]


@dataclass(frozen=True)
class MobahiPath:
    """Rounds of fixed-budget pure self-distillation, as arrays (round ``t = 0, 1, ...``).

    eps, n : the budget and the number of training points.
    evals_normalised : ``(n,)`` eigenvalues ``g`` of ``G = K / n``, in decreasing order.
    c : ``(R,)`` the multiplier ``c_t`` of each round (NaN from the collapse round on).
    ridge : ``(R,)`` the same in the sum-of-squares convention, ``n c_t``.
    c_lower, c_upper : ``(R,)`` the bounds ``g_min / (r_t - 1)`` and ``g_max / (r_t - 1)`` (NaN after collapse).
    target_norm : ``(R + 1,)`` ``||y_t||`` (Frobenius over outputs); ``target_norm[t + 1]`` is the
        norm of the round-``t`` fit at the training points.
    r : ``(R + 1,)`` ``||y_t|| / sqrt(n eps)``.
    collapse_round : the first round whose fit is 0 (``r_t <= 1``), or None if none within ``R`` rounds.
    collapse_bounds : ``((r_0 - 1) / kappa, ceil(kappa (r_0 - 1)))``, the derived bounds on it.
    kappa : ``g_max / g_min``.
    filters : ``(R, n)`` ``B_t`` per eigen-index (decreasing eigenvalue order), product over rounds ``<= t``.
    ratios : ``(R, n - 1)`` sparsification ratios ``B_t[i] / B_t[i + 1]`` of consecutive eigen-indices
        (NaN from the collapse round on, where ``B_t = 0``).
    fits : ``(R + 1, n, k)`` the targets ``y_t`` (``fits[t + 1]`` is the round-``t`` fit at the training points).
    """

    eps: float
    n: int
    evals_normalised: np.ndarray
    c: np.ndarray
    ridge: np.ndarray
    c_lower: np.ndarray
    c_upper: np.ndarray
    target_norm: np.ndarray
    r: np.ndarray
    collapse_round: int | None
    collapse_bounds: tuple[float, float]
    kappa: float
    filters: np.ndarray
    ratios: np.ndarray
    fits: np.ndarray


def budget_residual(c, evals_normalised, z) -> float:
    """Left side of the budget equation, ``sum_i (c z_i / (c + g_i))^2`` (``z`` is ``(n,)`` or ``(n, k)``)."""
    g = np.asarray(evals_normalised, dtype=np.float64)
    z2 = np.sum(np.asarray(z, dtype=np.float64).reshape(len(g), -1) ** 2, axis=1)
    return float(np.sum((c / (c + g)) ** 2 * z2))


def budget_multiplier(evals_normalised, z, budget: float) -> float:
    """The root ``c > 0`` of ``sum_i (c z_i / (c + g_i))^2 = budget`` (``budget = n eps``), by brentq.

    The bounds ``g_min / (r - 1) <= c <= g_max / (r - 1)`` with ``r = ||z|| / sqrt(budget)`` bracket the
    root, so the bracket costs nothing and never fails. Raises if ``||z||^2 <= budget`` (no root: the
    zero function already meets the budget).
    """
    g = np.asarray(evals_normalised, dtype=np.float64)
    norm2 = float(np.sum(np.asarray(z, dtype=np.float64) ** 2))
    if norm2 <= budget:
        raise ValueError(f"no multiplier: ||y_t||^2 = {norm2:.6g} <= n eps = {budget:.6g}, the zero "
                         f"function meets the budget (collapse).")
    r = math.sqrt(norm2 / budget)
    # Widen by a few ulps: at the bounds the residual equals the budget only up to round-off.
    lo, hi = g.min() / (r - 1.0) * (1 - 1e-12), g.max() / (r - 1.0) * (1 + 1e-12)
    f = lambda c: budget_residual(c, g, z) - budget  # noqa: E731
    f_lo, f_hi = f(lo), f(hi)
    if f_lo >= 0.0:
        return lo
    if f_hi <= 0.0:
        return hi
    return brentq(f, lo, hi, xtol=1e-15 * hi, rtol=8 * np.finfo(np.float64).eps, maxiter=200)


def fixed_budget_path(evals, evecs, y, eps: float, rounds: int) -> MobahiPath:
    """Run ``rounds`` rounds of [MFB20]'s fixed-budget pure self-distillation in the eigenbasis.

    Parameters
    ----------
    evals, evecs : the eigendecomposition ``K = V diag(d) V^T`` of the training Gram matrix (``K``,
        not ``K / n``: the division by ``n`` happens here). ``evecs`` must be a full ``(n, n)`` basis
        and ``K`` positive definite, as in [MFB20] (the bounds need ``g_min > 0``).
    y : ``(n,)`` or ``(n, k)`` labels.
    eps : the training-error budget ``(1/n) sum_i ||f(x_i) - y_i||^2 <= eps``, > 0.
    rounds : the number of rounds ``R >= 1`` (rounds after the collapse are recorded as zero fits).
    """
    d, V, Y = _spectral_inputs(evals, evecs, y)
    n = V.shape[0]
    if V.shape[1] != n:
        raise ValueError(f"`evecs` must be a full (n, n) eigenbasis for the fixed-budget setting; got shape {V.shape}.")
    if d.min() <= 0.0:
        raise ValueError(f"`evals` must be > 0: [MFB20]'s setting needs a positive definite Gram matrix; "
                         f"the smallest eigenvalue is {d.min():.3g}.")
    eps = float(eps)
    if not math.isfinite(eps) or eps <= 0.0:
        raise ValueError(f"`eps` must be a finite training-error budget > 0; got {eps!r}.")
    R = check_steps(rounds, name="rounds", allow_inf=False)

    order = np.argsort(d)[::-1]  # decreasing eigenvalues, so that ratios[:, i] compares i with i + 1
    g = d[order] / n
    kappa = float(g[0] / g[-1])
    budget = n * eps
    z = V[:, order].T @ Y  # (n, k); the basis is full, so ||z|| = ||y_t|| and no part lies outside it

    c = np.full(R, np.nan)
    norms = np.empty(R + 1)
    fits = np.zeros((R + 1, n, Y.shape[1]))
    fits[0] = Y
    filters = np.empty((R, n))
    B = np.ones(n)
    collapse = None
    for t in range(R):
        norms[t] = math.sqrt(float(np.sum(z**2)))
        if collapse is None and norms[t] ** 2 <= budget:
            collapse = t
        if collapse is not None:
            B = np.zeros(n)  # the zero function from the collapse round on
            z = np.zeros_like(z)
        else:
            c[t] = budget_multiplier(g, z, budget)
            # The round is kernel ridge with ridge n c_t on K (g / (g + c) = d / (d + n c)): its
            # shrinkage is the spectral core's step-1 filter.
            shrink = filter_diagonals(g, c[t], 1.0, [1])[0][0]
            z = shrink[:, None] * z
            B = B * shrink
        filters[t] = B
        fits[t + 1] = V[:, order] @ z
    norms[R] = math.sqrt(float(np.sum(z**2)))
    if collapse is None and norms[R] ** 2 <= budget:
        collapse = R

    r = norms / math.sqrt(budget)
    with np.errstate(divide="ignore", invalid="ignore"):
        live = np.isfinite(c)
        c_lower = np.where(live, g[-1] / (r[:R] - 1.0), np.nan)
        c_upper = np.where(live, g[0] / (r[:R] - 1.0), np.nan)
        ratios = np.where(live[:, None], filters[:, :-1] / filters[:, 1:], np.nan)
    return MobahiPath(
        eps=eps, n=n, evals_normalised=g, c=c, ridge=n * c, c_lower=c_lower, c_upper=c_upper,
        target_norm=norms, r=r, collapse_round=collapse,
        collapse_bounds=((r[0] - 1.0) / kappa, float(math.ceil(kappa * (r[0] - 1.0)))),
        kappa=kappa, filters=filters, ratios=ratios, fits=fits,
    )


def fixed_budget_path_from_distiller(distiller, eps: float, rounds: int) -> MobahiPath:
    """:func:`fixed_budget_path` on a fitted :class:`KernelDistiller`'s spectrum and training targets
    (its ``ridge`` and ``gt_weight`` play no part: each round solves for its own multiplier)."""
    return fixed_budget_path(distiller.evals_, distiller.evecs_, distiller.y_fit_, eps, rounds)
