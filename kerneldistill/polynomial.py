"""The filter of step ``T`` as a polynomial in the shrinkage ``a = d / (d + lam)``.

Setting: [BA21] Borup & Andersen 2021 (see :mod:`kerneldistill.filters`). Unrolling the recursion
``b^(1) = a``, ``b^(t) = alpha_t a + (1 - alpha_t) a b^(t-1)`` gives::

    b^(T) = sum_{j=1..T} beta_j a^j,       beta^(1) = (1),
    beta^(t) = alpha_t e_1 + (1 - alpha_t) shift(beta^(t-1))          (shift: a^j -> a^(j+1))

so the fit of step ``T`` is the combination ``sum_j beta_j S^j y`` of the powers of the teacher
smoother ``S = V diag(a) V^T``, with ``sum_j beta_j = 1`` (at ``a = 1`` every filter is 1). This is
the parametrisation in which Pareek, Du & Oh (NeurIPS 2024) find the excess risk of k-step
self-distillation quadratic. Two facts make it the right coordinates for a JOINT choice of weights:

- every squared-error criterion is a convex quadratic in ``beta`` (the fit is linear in ``beta``);
- the map ``alpha -> beta`` is onto the hyperplane ``sum beta = 1`` apart from a set of measure
  zero (:func:`schedule_from_power_coefficients` inverts it), and weights in ``[0, 1]``
  correspond exactly to ``beta`` in the probability simplex.
"""
from __future__ import annotations

import numpy as np

__all__ = ["power_coefficients", "power_endpoint_coefficients", "schedule_from_power_coefficients"]


def power_coefficients(gt_weight) -> np.ndarray:
    """``beta`` ``(T,)`` of the schedule ``gt_weight`` (one weight per step ``2..T``): ``b^(T) = sum_j beta_j a^j``."""
    beta = np.array([1.0])
    for alpha in np.atleast_1d(np.asarray(gt_weight, dtype=np.float64)):
        beta = np.concatenate([[alpha], (1.0 - alpha) * beta])
    return beta


def power_endpoint_coefficients(gt_weight, step: int) -> tuple[np.ndarray, np.ndarray]:
    """``beta`` of the last step as an affine function of the weight of step ``step``: ``(beta0, dbeta)``.

    ``beta^(T) = beta0 + alpha_step dbeta`` (the schedule's own entry for ``step`` is ignored);
    ``dbeta`` sums to 0. Both ``(T,)``.
    """
    w = np.atleast_1d(np.asarray(gt_weight, dtype=np.float64)).copy()
    T = len(w) + 1
    if not 2 <= step <= T:
        raise ValueError(f"`step` must lie in 2..{T}; got {step}.")
    w[step - 2] = 0.0
    beta0 = power_coefficients(w)
    w[step - 2] = 1.0
    # The difference of two exact polynomial expansions: O(1) coefficients, no cancellation issue.
    return beta0, power_coefficients(w) - beta0


def schedule_from_power_coefficients(beta) -> np.ndarray:
    """The schedule (steps ``2..T``) whose last step has power coefficients ``beta`` ``(T,)``.

    Inverts :func:`power_coefficients`: ``alpha_T = beta_1``, and the earlier steps have the
    coefficients ``beta_(2..T) / (1 - alpha_T)``. ``beta`` is first rescaled to sum to 1. Where
    ``alpha_t = 1`` exactly, step ``t`` refits the labels and the earlier weights do not matter;
    they are returned as 1. Where ``1 - alpha_t`` is tiny but the remaining coefficients are not,
    ``beta`` is reached only in a limit and the earlier weights come out huge: callers should
    evaluate the returned schedule rather than trust ``beta``.
    """
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim != 1 or beta.size < 1:
        raise ValueError(f"`beta` must be a non-empty 1-D array of power coefficients; got shape {beta.shape}.")
    total = beta.sum()
    if not np.isfinite(total) or total == 0.0:
        raise ValueError(f"`beta` must sum to a finite non-zero number (it is rescaled to sum to 1); got {total!r}.")
    beta = beta / total
    weights = []
    while beta.size > 1:
        alpha = float(beta[0])
        weights.append(alpha)
        rest = 1.0 - alpha
        if rest == 0.0:
            weights.extend([1.0] * (beta.size - 2))
            break
        beta = beta[1:] / rest
    return np.array(weights[::-1])
