"""L2-regularised multinomial logistic regression on soft targets that may hold NEGATIVE entries.

A student trained on ``xi * p_teacher + (1 - xi) * onehot(y)`` with ``xi > 1`` (Das & Sanghavi's
teacher weight beyond 1) sees targets whose entries can be negative (they still sum to 1). Its loss::

    L(W) = (1/n) sum_i [ logsumexp(z_i) - t_i^T z_i ] + (ridge / 2) ||W||_F^2,     z_i = W^T [x_i; 1]

is still convex in ``W`` (log-sum-exp is convex, the target term linear), but with a negative
``t_ik`` the data term is unbounded below (send ``z_ik -> -inf``); the L2 term makes ``L`` strongly
convex, so it has exactly one minimiser. The intercept is penalised too: a class whose targets sum to
a negative total would otherwise drive its unpenalised intercept to ``-inf``.

Why not scikit-learn: ``LogisticRegression`` takes class labels, and soft targets only through
duplicated rows weighted by the target entries, which must be non-negative sample weights. So the
convex objective above is minimised here with scipy's L-BFGS (gradient in closed form,
``(1/n) X^T (softmax(Z) - T) + ridge W``). With one-hot targets it is exactly scikit-learn's
``LogisticRegression(C=1/(n ridge), fit_intercept=False)`` on ``[X, 1]`` (the tests check this, and
non-negative soft targets against the duplicated-row form).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

__all__ = ["fit_softmax_regression", "softmax_scores", "corrupt_labels"]


def _with_intercept(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))])


def fit_softmax_regression(X, targets, ridge: float, *, init=None, gtol: float = 1e-7, max_iter: int = 5000) -> np.ndarray:
    """Minimise the module's objective; returns ``W`` of shape ``(n_features + 1, n_classes)`` (last row: intercepts).

    ``targets`` ``(n, K)``: rows summing to 1 (entries may be negative). ``ridge > 0`` is required
    (the minimum exists only then, see the module docstring). ``init``: a starting ``W`` (e.g. the
    teacher's, which is close to the student's for moderate weights).
    """
    Xb = _with_intercept(X)
    T = np.asarray(targets, dtype=np.float64)
    n, d = Xb.shape
    if T.ndim != 2 or T.shape[0] != n:
        raise ValueError(f"`targets` must be (n_samples = {n}, n_classes); got shape {T.shape}.")
    if not np.allclose(T.sum(axis=1), 1.0, atol=1e-8):
        raise ValueError("`targets` rows must sum to 1 (mixtures of probability vectors); "
                         f"got row sums in [{T.sum(axis=1).min():.4g}, {T.sum(axis=1).max():.4g}].")
    ridge = float(ridge)
    if not np.isfinite(ridge) or ridge <= 0:
        raise ValueError(f"`ridge` must be > 0 (with negative targets the loss has no minimum without it); got {ridge!r}.")
    K = T.shape[1]

    def objective(flat):
        W = flat.reshape(d, K)
        Z = Xb @ W
        lse = logsumexp(Z, axis=1)
        loss = np.mean(lse - np.sum(T * Z, axis=1)) + 0.5 * ridge * np.sum(W * W)
        grad = Xb.T @ (softmax(Z, axis=1) - T) / n + ridge * W
        return loss, grad.ravel()

    start = np.zeros(d * K) if init is None else np.asarray(init, dtype=np.float64).ravel()
    res = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": gtol,
                                                                               # L-BFGS-B also stops on a relative
                                                                               # decrease of the loss: tie it to gtol
                                                                               "ftol": 1e-2 * gtol})
    if not res.success and np.max(np.abs(res.jac)) > 100 * gtol:
        raise RuntimeError(f"softmax regression did not converge: {res.message} (max |gradient| {np.max(np.abs(res.jac)):.3g}).")
    return res.x.reshape(d, K)


def softmax_scores(X, W, *, probabilities: bool = False) -> np.ndarray:
    """The logits ``[X, 1] W`` (or their softmax with ``probabilities=True``), ``(n, K)``."""
    Z = _with_intercept(X) @ W
    return softmax(Z, axis=1) if probabilities else Z


def corrupt_labels(y, rate: float, n_classes: int, rng) -> np.ndarray:
    """Each label replaced, with probability ``rate``, by a uniformly drawn OTHER class (symmetric noise)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must lie in [0, 1); got {rate!r}.")
    y = np.asarray(y).copy()
    flip = rng.random(y.size) < rate
    y[flip] = (y[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return y
