"""The spectral core: eigenvalues -> per-step filter diagonals of kernel ridge self-distillation.

Everything in :mod:`kerneldistill` (the estimator, the infinite-step limit, the optimal weights and
the figures) goes through the two functions here, so a new closed form is a few lines, not a new
code path (the design of neural-tangents' ``predict.gradient_descent_mse``).

Setting ([BA21] Borup & Andersen 2021, arXiv 2102.13088; ``docs/theory.md`` sections 2.1-2.2). With the
Gram matrix ``K = V diag(d) V^T`` and ridge ``lam`` (sum-of-squares loss, so step 1 is scikit-learn's
``KernelRidge(alpha=lam)``), step ``t`` fits kernel ridge regression to the mixed target
``alpha_t y + (1 - alpha_t) f^(t-1)(X)``, where ``alpha_t`` is the ground-truth weight (``gt_weight``;
``alpha_1 = 1``). Every step is a diagonal filter on ``z = V^T y``::

    a = d / (d + lam)
    b^(1) = a,   b^(t) = a * (alpha_t + (1 - alpha_t) b^(t-1))
    q^(t) = (alpha_t + (1 - alpha_t) b^(t-1)) / (d + lam)         (so b^(t) = d q^(t))

    f^(t)(X)  = V diag(b^(t)) V^T y          (fitted values)
    f^(t)(x)  = k_x^T V diag(q^(t)) V^T y    (any point; q avoids dividing by d ~ 0)

For a constant weight ``alpha`` the recursion has the closed form::

    b_inf = alpha d / (alpha d + lam),   b^(t) = b_inf + ((1 - alpha) a)^(t-1) (a - b_inf)
    q_inf = alpha / (alpha d + lam)

i.e. the infinite-step limit is plain kernel ridge regression with ridge ``lam / alpha``
("amplified regularisation"). For ``alpha = 0`` the limit is the zero function.

Near interpolation (``lam`` tiny next to ``d``) every ``b`` is close to 1, and ``1 - b`` (the part of
``y`` a step leaves in its residual, the quantity that GCV and the one-shot estimate divide by) would
lose all its digits if formed by subtraction. :func:`filter_complements` therefore computes
``c = 1 - b`` from its own recursion, a sum of positive terms for weights in [0, 1]::

    c^(1) = lam / (d + lam),   c^(t) = c^(1) + a (1 - alpha_t) c^(t-1)
    constant alpha:  c^(t) = lam / (alpha d + lam) * (1 - ((1 - alpha) a)^t)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["filter_diagonals", "filter_path", "filter_complements", "weight_endpoint_filters",
           "normalize_steps"]


def normalize_steps(steps, *, name: str = "steps") -> list:
    """Return ``steps`` as a list of ints >= 1 and/or ``math.inf``, with a clear error otherwise."""
    scalar = np.isscalar(steps)
    items = [steps] if scalar else list(steps)
    if len(items) == 0:
        raise ValueError(f"`{name}` must hold at least one step; got an empty sequence.")
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be integers >= 1 or math.inf; got the boolean {s!r}.")
        if isinstance(s, (float, np.floating)) and math.isinf(s) and s > 0:
            out.append(math.inf)
            continue
        if isinstance(s, (float, np.floating)) and float(s).is_integer():
            s = int(s)
        if not isinstance(s, (int, np.integer)):
            raise TypeError(f"`{name}` must be integers >= 1 or math.inf; got {s!r} ({type(s).__name__}).")
        if s < 1:
            raise ValueError(f"`{name}` must be integers >= 1 or math.inf; got {int(s)}.")
        out.append(int(s))
    return out


def _schedule(gt_weight, last_step: int) -> np.ndarray:
    """Weights alpha_1..alpha_T as an array of length ``last_step`` (alpha_1 = 1 is not used)."""
    w = np.asarray(gt_weight, dtype=np.float64)  # a schedule: filter_diagonals handles a scalar itself
    if w.ndim != 1:
        raise ValueError(f"`gt_weight` must be a float or a 1-D sequence; got shape {w.shape}.")
    if len(w) < last_step - 1:
        raise ValueError(
            f"`gt_weight` schedule has {len(w)} weights (steps 2..{len(w) + 1}) but step {last_step} "
            f"was asked for: give one weight per step 2..{last_step}."
        )
    return np.concatenate([[1.0], w])


def filter_diagonals(evals, ridge: float, gt_weight, steps):
    """Filter diagonals ``b`` (fitted values) and ``q`` (prediction weights) for each step.

    Parameters
    ----------
    evals : (m,) array of eigenvalues ``d >= 0`` of the Gram matrix (clipped by the caller).
    ridge : ``lam > 0``.
    gt_weight : a float (the same weight at every step >= 2) or a 1-D schedule with one weight per
        step 2..T (``schedule[0]`` is the weight of step 2).
    steps : an int >= 1, ``math.inf``, or a sequence of them.

    Returns
    -------
    b, q : arrays of shape ``(len(steps), m)``, with ``f^(t)(X) = V diag(b[i]) V^T y`` and
        ``f^(t)(x) = k_x^T V diag(q[i]) V^T y`` for ``t = steps[i]``.

    A constant weight uses the closed form (any step costs the same); a schedule uses the recursion
    up to the largest finite step. ``math.inf`` needs a constant weight: the limit of a schedule is
    not defined by its first T entries.
    """
    d = np.asarray(evals, dtype=np.float64)
    steps = normalize_steps(steps)
    scalar_weight = np.ndim(gt_weight) == 0
    if scalar_weight:
        alpha = float(gt_weight)
        b, q = _constant_weight_filters(d, ridge, np.array([alpha]), steps)
        return b[0], q[0]

    finite = [s for s in steps if s != math.inf]
    if len(finite) < len(steps):
        raise ValueError(
            "`steps` contains math.inf but `gt_weight` is a schedule: the infinite-step limit needs a "
            "constant weight (pass a float)."
        )
    last = max(finite)
    alphas = _schedule(gt_weight, last)
    denom = d + ridge
    a = d / denom
    b_rows, q_rows = {}, {}
    b_prev = None
    for t in range(1, last + 1):
        # Why the recursion and not a product formula: a schedule has no shorter closed form, and
        # T vector operations on m entries cost nothing next to the eigendecomposition.
        mix = np.ones_like(d) if t == 1 else alphas[t - 1] + (1.0 - alphas[t - 1]) * b_prev
        q_t = mix / denom
        b_t = a * mix
        b_rows[t], q_rows[t] = b_t, q_t
        b_prev = b_t
    return np.stack([b_rows[s] for s in steps]), np.stack([q_rows[s] for s in steps])


def filter_path(evals, ridge: float, gt_weights: Sequence[float], steps):
    """Filter diagonals for a grid of constant weights x steps, in one vectorised closed form.

    Returns ``b, q`` of shape ``(len(gt_weights), len(steps), m)``.
    """
    d = np.asarray(evals, dtype=np.float64)
    alphas = np.atleast_1d(np.asarray(gt_weights, dtype=np.float64))
    if alphas.ndim != 1:
        raise ValueError(f"`gt_weights` must be a 1-D sequence of weights; got shape {alphas.shape}.")
    return _constant_weight_filters(d, ridge, alphas, normalize_steps(steps))


def _constant_weight_filters(d, ridge, alphas, steps):
    """Closed form for constant weights; shapes (W, S, m)."""
    A = alphas[:, None]  # (W, 1)
    denom = d + ridge  # (m,)
    a = d / denom  # (m,)
    if math.inf in steps:
        # The limit exists iff the contraction |1 - alpha| * a_k < 1 for every k. Inside [0, 1] that
        # always holds (a < 1); outside it (allowed for [DPR26]'s unconstrained optimum) it can fail,
        # and for alpha < 0 this is also exactly the condition alpha d + lam > 0 that keeps b_inf finite.
        worst = np.abs(1.0 - alphas) * (a.max() if len(a) else 0.0)  # (W,)
        if np.any(worst >= 1.0):
            bad = [float(x) for x in alphas[worst >= 1.0]]
            raise ValueError(
                f"the infinite-step limit does not exist for gt_weight {bad}: the per-step factor "
                f"|1 - gt_weight| * d_max / (d_max + ridge) = {float(worst.max()):.4g} must be < 1. "
                "Ask for finite steps, or use a weight closer to [0, 1]."
            )
    # b_inf = alpha d / (alpha d + lam); written so that alpha = 0 gives exactly 0 without 0/0
    # (lam > 0 keeps alpha d + lam > 0).
    b_inf = A * d / (A * d + ridge)  # (W, m)
    q_inf = A / (A * d + ridge)  # (W, m)
    rate = (1.0 - A) * a  # (W, m): contraction factor per step
    # a - b_inf in closed form: as a difference it cancels when both are near 1 (tiny ridge).
    gap = (1.0 - A) * d * ridge / (denom * (A * d + ridge))  # (W, m) >= 0 for alpha <= 1
    b = np.empty((len(alphas), len(steps), len(d)))
    q = np.empty_like(b)
    # rate^(s-2) by repeated multiplication over the sorted steps: one multiply per consecutive
    # step instead of a pow per entry (measured 10x faster for 50 steps; the round-off grows by
    # about one ulp per step, far below every tolerance).
    powers = {}
    power, at = np.ones_like(rate), 0
    for s in sorted({s for s in steps if s != math.inf and s >= 2}):
        power = power * (rate if s - 2 == at + 1 else rate ** (s - 2 - at))
        at = s - 2
        powers[s] = power
    for j, s in enumerate(steps):
        if s == math.inf:
            b[:, j], q[:, j] = b_inf, q_inf
        elif s == 1:
            b[:, j] = a
            q[:, j] = 1.0 / denom
        else:
            b_prev = b_inf + powers[s] * gap
            b[:, j] = b_inf + (powers[s] * rate) * gap
            q[:, j] = (A + (1.0 - A) * b_prev) / denom
    return b, q


def filter_complements(evals, ridge: float, gt_weight, steps) -> np.ndarray:
    """``c = 1 - b`` of each step, computed without subtracting nearly equal numbers.

    Same arguments as :func:`filter_diagonals`; returns ``(len(steps), m)``. With ``e = lam / (d +
    lam)`` (computed as such, not as ``1 - a``)::

        c^(1) = e,   c^(t) = e + a (1 - alpha_t) c^(t-1),   c^(inf) = lam / (alpha d + lam)

    For a constant weight ``c^(t) = c^(inf) (1 - rate^t)`` with ``rate = (1 - alpha) a``, and
    ``1 - rate^t = -expm1(t log1p(-(1 - rate)))`` where ``0 < rate < 1``, with ``1 - rate = (alpha d
    + lam) / (d + lam)`` formed directly. For weights in [0, 1] every term is >= 0, so ``c`` keeps
    full relative precision however small it is (near interpolation it is O(lam / d)).
    """
    d = np.asarray(evals, dtype=np.float64)
    steps = normalize_steps(steps)
    denom = d + ridge
    a, e = d / denom, ridge / denom
    if np.ndim(gt_weight) == 0:
        alpha = float(gt_weight)
        c_inf = ridge / (alpha * d + ridge)
        rate = (1.0 - alpha) * a
        one_minus_rate = (alpha * d + ridge) / denom
        # 0 < rate < 1, read off 1 - rate (which is what log1p needs; a rate below eps leaves it at 1)
        inside = (one_minus_rate > 0.0) & (one_minus_rate < 1.0)
        safe = np.where(inside, one_minus_rate, 0.5)  # keeps log1p finite off the branch it serves
        rows = []
        for s in steps:
            if s == math.inf:
                rows.append(c_inf)
                continue
            decay = np.where(inside, -np.expm1(s * np.log1p(-safe)), 1.0 - rate ** s)
            rows.append(c_inf * decay)
        return np.stack(rows)
    finite = [s for s in steps if s != math.inf]
    if len(finite) < len(steps):
        raise ValueError("`steps` contains math.inf but `gt_weight` is a schedule: the infinite-step "
                         "limit needs a constant weight (pass a float).")
    alphas = _schedule(gt_weight, max(finite))
    rows, c = {}, e
    rows[1] = c
    for t in range(2, max(finite) + 1):
        c = e + a * (1.0 - alphas[t - 1]) * c
        rows[t] = c
    return np.stack([rows[s] for s in steps])


def weight_endpoint_filters(evals, ridge: float, gt_weight, step: int):
    """The last step's filters as an affine function of ONE step's weight, the others fixed.

    ``gt_weight`` is a schedule for steps ``2..T`` (``T = len(gt_weight) + 1``); the entry of step
    ``step`` (``2 <= step <= T``) is ignored. The filters of step ``T`` are affine in ``alpha_step``::

        b^(T) = b0 + alpha_step db,   q^(T) = q0 + alpha_step dq,   1 - b^(T) = c0 - alpha_step db

    Returns ``(b0, q0, c0, db, dq)``, each ``(m,)``. The derivatives are propagated as products
    (``db = a c^(step-1) prod_{s > step} a (1 - alpha_s)``), never formed as ``b1 - b0``, so they keep
    their relative precision when the two endpoints nearly coincide (tiny ridge).
    """
    d = np.asarray(evals, dtype=np.float64)
    alphas = _schedule(gt_weight, len(np.atleast_1d(gt_weight)) + 1)
    T = len(alphas)
    if not 2 <= step <= T:
        raise ValueError(f"`step` must lie in 2..{T} (the steps whose weight the schedule holds); got {step}.")
    denom = d + ridge
    a, e = d / denom, ridge / denom
    b, c = a, e  # step 1
    for t in range(2, step):
        mix = alphas[t - 1] + (1.0 - alphas[t - 1]) * b
        b, c = a * mix, e + a * (1.0 - alphas[t - 1]) * c
    # step `step` at alpha = 0: fit on the teacher; the derivative is that of a (alpha + (1 - alpha) b).
    q, db, dq = b / denom, a * c, c / denom
    b, c = a * b, e + a * c
    for t in range(step + 1, T + 1):
        keep = 1.0 - alphas[t - 1]
        q, dq = (alphas[t - 1] + keep * b) / denom, keep * db / denom
        b, c, db = a * (alphas[t - 1] + keep * b), e + a * keep * c, a * keep * db
    return b, q, c, db, dq
