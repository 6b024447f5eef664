"""Retraining on FRESH real labels mixed with the previous fit's synthetic labels (the fresh-data mode).

This is the second mode of iterated self-training in this toolkit, and a different operator from the
first:

- **Fixed design, fixed labels** (:class:`kerneldistill.KernelDistiller`, [BA21]): every step refits
  the SAME training labels ``y`` mixed with the previous step's noiseless predictions,
  ``alpha y + (1 - alpha) f^(t-1)(X)``. The whole path is a deterministic diagonal filter of one ``y``.
- **Fresh data** (this module; Garg, Bhattacharya & Sur, arXiv 2509.22341; He, Xu & Cheng, arXiv
  2502.18049): round ``t`` draws NEW real labels ``y_t = X_t beta* + eps_t`` and synthetic labels from
  the previous fit used as a generative model, ``y~_t = X_t beta_(t-1) + eps~_t`` (its own fresh
  noise), and refits ridge regression (``ridge = 0``: min-norm least squares / interpolation) to::

      w y_t + (1 - w) y~_t          (w = gt_weight, the weight on the REAL labels)

  The weighted loss ``w ||y_t - X b||^2 + (1 - w) ||y~_t - X b||^2`` has the same minimiser as the
  fit to this mixed target (the two differ by a constant), as in [BA21]'s step. Round 0 fits the
  real labels alone (``w = 1``). The design ``X_t`` is either drawn once and kept
  (``covariates="fixed"``: fresh labels on a fixed design) or drawn anew every round
  (``covariates="fresh"``). The iteration is a random linear recursion, not a filter of one ``y``:
  its long-run risk is a stationary expectation, estimated here by simulation (Monte Carlo).
  With ``w = 0``, zero synthetic noise and fresh covariates, :func:`fit_mixed_rounds` is the
  self-training of Wu, Yang & Sun (arXiv 2602.14029): round 0 fits the noisy labels, every later
  round refits fresh covariates on the previous fit's noiseless pseudo-labels.

Conventions: ``gt_weight`` is the weight on the real (ground-truth) labels, which is the papers'
real-data weight ``w`` itself (no conversion). ``ridge`` multiplies ``||b||^2`` next to the SUM of
squares, as everywhere in this toolkit (``sklearn.linear_model.Ridge(alpha=ridge)``); ``ridge = 0`` is
the minimum-norm least-squares fit (``np.linalg.lstsq``), which interpolates when ``p >= n``. The risk
is the excess prediction risk ``E_x (x^T (b - beta*))^2 = (b - beta*)^T Sigma (b - beta*)`` for
``x ~ N(0, Sigma)``.

Closed form, fixed design (derived here; it is the check of the simulation). With ``X^T X = V diag(d) V^T``,
``h = d / (d + ridge)``, ``g = d / (d + ridge)^2``, noise variance ``s^2`` for real and synthetic labels,
the coefficients in the basis ``V`` follow ``b_t = (1 - w) h b_(t-1) + w h beta* + (noise with
variance (w^2 + (1 - w)^2) s^2 g)``, so the stationary mean is ``m = w h beta* / (1 - (1 - w) h)`` and
the stationary variance ``c = (w^2 + (1 - w)^2) s^2 g / (1 - (1 - w)^2 h^2)`` per direction
(:func:`stationary_risk_fixed_design`). At ``ridge = 0`` (``h = 1`` on the row space) the weight enters
only through ``(w^2 + (1 - w)^2) / (1 - (1 - w)^2)``, minimised at ``w^2 + w - 1 = 0``, i.e.
``w = 1/phi = (sqrt(5) - 1)/2`` for ANY design and covariance. With fresh isotropic Gaussian
covariates (``Sigma = I``, ``p > n + 1``) rotation invariance gives the exact stationary risk
``[(1 - n/p) ||beta*||^2 + (w^2 + (1 - w)^2) s^2 n / (p - n - 1)] / (1 - (1 - w)^2 n / p)``
(:func:`stationary_risk_fresh_isotropic`), whose minimiser depends on ``n/p`` and the signal-to-noise
ratio and equals 1/phi only as ``n/p -> 1``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GOLDEN_WEIGHT",
    "COVARIATE_MODES",
    "fit_mixed_rounds",
    "simulate_fresh_data",
    "stationary_risk_fixed_design",
    "stationary_risk_fresh_isotropic",
    "MixingWeightEstimate",
    "argmin_by_local_quadratic",
    "estimate_optimal_mixing_weight",
]

GOLDEN_WEIGHT = (np.sqrt(5.0) - 1.0) / 2.0  # 1/phi = 0.6180339887...
COVARIATE_MODES = ("fixed", "fresh")


def _check_weights(gt_weights) -> np.ndarray:
    w = np.atleast_1d(np.asarray(gt_weights, dtype=np.float64))
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)):
        raise ValueError(f"`gt_weights` must be a non-empty 1-D array of finite weights; got {gt_weights!r}.")
    return w


def _check_ridge(ridge) -> float:
    ridge = float(ridge)
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"`ridge` must be a finite penalty >= 0 (0: min-norm least squares); got {ridge!r}.")
    return ridge


def _finite(a, name: str, ndim: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim not in ndim:
        raise ValueError(f"`{name}` must be a {' or '.join(f'{d}-D' for d in ndim)} array; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must hold finite numbers; it contains NaN or inf.")
    return arr


def _operator(X: np.ndarray, ridge: float) -> np.ndarray:
    """The ``(p, n)`` matrix ``M`` with ``M @ t = argmin_b ||t - X b||^2 + ridge ||b||^2``."""
    if ridge == 0.0:
        return np.linalg.pinv(X)  # min-norm least squares (the min-norm interpolator when p >= n)
    n, p = X.shape
    if p <= n:
        return np.linalg.solve(X.T @ X + ridge * np.eye(p), X.T)
    return X.T @ np.linalg.inv(X @ X.T + ridge * np.eye(n))  # the same matrix through the n x n system


def fit_mixed_rounds(designs, real_labels, synthetic_noise, gt_weights, ridge: float) -> np.ndarray:
    """The fresh-data iteration on given data: every round's coefficients for every weight.

    Round 0 fits ``real_labels[0]`` on ``designs[0]`` (``w = 1``). Round ``t >= 1`` fits
    ``w * real_labels[t] + (1 - w) * (designs[t] @ b_(t-1) + synthetic_noise[t])`` on ``designs[t]``
    (``b_(t-1)`` the previous round's fit for the same weight ``w``). This is the fresh-data mode;
    :class:`kerneldistill.KernelDistiller` is the fixed-design, fixed-label mode.

    Parameters
    ----------
    designs : ``(T+1, n, p)`` the design of each round (fresh covariates), or ``(n, p)``: the same
        design every round (fresh labels on a fixed design; its solve is then factorised once).
    real_labels : ``(T+1, n)`` the real labels of each round.
    synthetic_noise : ``(T+1, n)`` the noise added to the previous fit's predictions (row 0 unused).
    gt_weights : ``(W,)`` weights on the real labels, run side by side on the same draws.
    ridge : ``>= 0`` (sum-of-squares convention; 0 is min-norm least squares).

    Returns
    -------
    ``(T+1, W, p)`` coefficients ``b_t`` for each round and weight.
    """
    Xs = _finite(designs, "designs", (2, 3))
    Y = _finite(real_labels, "real_labels", (2,))
    E = _finite(synthetic_noise, "synthetic_noise", (2,))
    rounds = Y.shape[0]
    n, p = Xs.shape[-2:]
    if Xs.ndim == 3 and Xs.shape[0] != rounds:
        raise ValueError(f"`designs` must hold one design per round ({rounds}); got shape {Xs.shape}.")
    if Y.shape != (rounds, n) or E.shape != (rounds, n):
        raise ValueError(f"`real_labels` and `synthetic_noise` must both be (rounds, n) with n = {n} rows per "
                         f"design; got {Y.shape} and {E.shape}.")
    w = _check_weights(gt_weights)
    ridge = _check_ridge(ridge)
    fixed = Xs.ndim == 2
    M = _operator(Xs, ridge) if fixed else None
    out = np.empty((rounds, w.size, p))
    for t in range(rounds):
        X = Xs if fixed else Xs[t]
        op = M if fixed else _operator(X, ridge)
        if t == 0:
            out[0] = op @ Y[0]
            continue
        synthetic = X @ out[t - 1].T + E[t][:, None]  # (n, W): the previous fit as a generative model
        targets = w * Y[t][:, None] + (1.0 - w) * synthetic
        out[t] = (op @ targets).T
    return out


def _sqrt_psd(covariance: np.ndarray) -> np.ndarray:
    evals, evecs = np.linalg.eigh(covariance)
    if evals.min() < -1e-10 * max(evals.max(), 1.0):
        raise ValueError(f"`covariance` must be positive semi-definite; its smallest eigenvalue is {evals.min():.3g}.")
    return evecs * np.sqrt(np.clip(evals, 0.0, None))


def simulate_fresh_data(*, n: int, beta, covariance=None, noise: float, gt_weights, rounds: int, ridge: float = 0.0,
                        covariates: str = "fixed", synthetic_noise: float | None = None, replications: int = 1,
                        seed: int = 0) -> np.ndarray:
    """Simulate the fresh-data iteration and return its excess risk per replication, weight and round.

    Each replication draws Gaussian designs ``x ~ N(0, covariance)`` (``covariance=None``: identity),
    real labels ``X beta + N(0, noise^2)`` and synthetic noise ``N(0, synthetic_noise^2)`` (default:
    ``noise``, i.e. the previous fit used as a generative model with the same noise level), then runs
    :func:`fit_mixed_rounds` for all ``gt_weights`` on the SAME draws (common random numbers, so that
    differences between weights are not drowned in the noise between draws).

    ``covariates="fixed"``: one design per replication, fresh labels every round.
    ``covariates="fresh"``: a new design every round.

    Returns ``(replications, W, rounds + 1)``: ``(b_t - beta)^T covariance (b_t - beta)`` at rounds ``0..rounds``.
    """
    beta = _finite(beta, "beta", (1,))
    p = beta.size
    Sigma = np.eye(p) if covariance is None else _finite(covariance, "covariance", (2,))
    if Sigma.shape != (p, p):
        raise ValueError(f"`covariance` must be (p, p) = {(p, p)} with p = len(beta); got {Sigma.shape}.")
    if covariates not in COVARIATE_MODES:
        raise ValueError(f"`covariates` must be one of {COVARIATE_MODES}; got {covariates!r}.")
    for name, value in (("n", n), ("rounds", rounds), ("replications", replications)):
        if int(value) != value or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1; got {value!r}.")
    noise = float(noise)
    syn = noise if synthetic_noise is None else float(synthetic_noise)
    if not (np.isfinite(noise) and noise >= 0 and np.isfinite(syn) and syn >= 0):
        raise ValueError(f"`noise` and `synthetic_noise` must be finite and >= 0; got {noise!r} and {synthetic_noise!r}.")
    w = _check_weights(gt_weights)
    root = _sqrt_psd(np.asarray(Sigma, dtype=np.float64))
    rng = np.random.default_rng(seed)
    T = int(rounds) + 1
    risks = np.empty((int(replications), w.size, T))
    for r in range(int(replications)):
        if covariates == "fixed":
            designs = rng.standard_normal((n, p)) @ root.T  # one design, reused every round
        else:
            designs = rng.standard_normal((T, n, p)) @ root.T
        real = (designs @ beta) + noise * rng.standard_normal((T, n))
        synthetic = syn * rng.standard_normal((T, n))
        err = fit_mixed_rounds(designs, real, synthetic, w, ridge) - beta  # (T, W, p)
        risks[r] = _sigma_norms(err, Sigma)
    return risks


def _sigma_norms(err: np.ndarray, Sigma: np.ndarray) -> np.ndarray:
    """``(T, W, p)`` errors -> ``(W, T)`` values of ``e^T Sigma e`` (a diagonal ``Sigma`` without the p x p product)."""
    diag = np.diag(Sigma)
    if np.count_nonzero(Sigma - np.diag(diag)) == 0:
        return np.einsum("twp,p->wt", err * err, diag)
    return np.einsum("twp,pq,twq->wt", err, Sigma, err)


def stationary_risk_fixed_design(X, beta, covariance, noise: float, gt_weights, ridge: float,
                                 synthetic_noise: float | None = None) -> np.ndarray:
    """Exact long-run (t -> infinity) expected excess risk of the fresh-label iteration on a fixed design.

    See the module docstring: in the eigenbasis ``V`` of ``X^T X`` the coefficients are an AR(1)
    process per direction, with stationary mean ``m = w h beta*_V / (1 - (1 - w) h)`` and covariance
    ``diag((w^2 s^2 + (1 - w)^2 s~^2) g / (1 - (1 - w)^2 h^2))`` (``h = d/(d + ridge)``, ``g = d/(d + ridge)^2``;
    directions with ``d = 0`` keep ``b = 0``). The risk is ``(m - beta*)^T Sigma (m - beta*) + tr(Sigma C)``.
    Needs ``0 < w <= 1`` where some ``h = 1`` (``ridge = 0``): at ``w = 0`` nothing contracts.
    Returns ``(W,)``.
    """
    X = _finite(X, "X", (2,))
    beta = np.asarray(beta, dtype=np.float64)
    Sigma = np.asarray(covariance, dtype=np.float64)
    w = _check_weights(gt_weights)
    ridge = _check_ridge(ridge)
    s2 = float(noise) ** 2
    ss2 = s2 if synthetic_noise is None else float(synthetic_noise) ** 2
    d, V = np.linalg.eigh(X.T @ X)
    keep = d > 1e-10 * max(d.max(), 1.0)  # the row space; b has no component outside it
    d, Vk = d[keep], V[:, keep]
    h, g = d / (d + ridge), d / (d + ridge) ** 2
    bV = Vk.T @ beta
    SigV = Vk.T @ Sigma @ Vk
    out = np.empty(w.size)
    for i, wi in enumerate(w):
        if (1.0 - wi) * h.max() >= 1.0 or (1.0 - wi) ** 2 * h.max() ** 2 >= 1.0:
            out[i] = np.inf  # not contracting: no stationary law
            continue
        m = wi * h * bV / (1.0 - (1.0 - wi) * h)
        c = (wi**2 * s2 + (1.0 - wi) ** 2 * ss2) * g / (1.0 - (1.0 - wi) ** 2 * h**2)
        mean_err = Vk @ m - beta
        out[i] = mean_err @ Sigma @ mean_err + np.sum(np.diag(SigV) * c)
    return out


def stationary_risk_fresh_isotropic(n: int, p: int, signal2: float, noise: float, gt_weights,
                                    synthetic_noise: float | None = None) -> np.ndarray:
    """Exact long-run expected excess risk of min-norm interpolation with fresh isotropic Gaussian covariates.

    ``x ~ N(0, I_p)``, ``p > n + 1``, ``||beta*||^2 = signal2``. With ``P_t`` the projection on the
    row space of ``X_t`` (uniformly random, rank ``n``, independent of the past),
    ``e_t = (1 - w) P_t e_(t-1) - (I - P_t) beta* + X_t^+ xi_t``; the three terms are orthogonal in
    expectation, ``E ||P e||^2 = (n/p) ||e||^2``, ``E ||(I - P) beta*||^2 = (1 - n/p) signal2`` and
    ``E ||X^+ xi||^2 = (w^2 s^2 + (1 - w)^2 s~^2) n / (p - n - 1)`` (inverse Wishart mean), so the stationary
    risk is ``[(1 - n/p) signal2 + (w^2 s^2 + (1 - w)^2 s~^2) n / (p - n - 1)] / (1 - (1 - w)^2 n/p)``.
    Exact at every finite ``n, p`` (derived here; the tests check it by simulation). Returns ``(W,)``.
    """
    if not (int(p) == p and int(n) == n and p > n + 1 and n >= 1):
        raise ValueError(f"`p` must exceed `n` + 1 (overparameterised, finite inverse-Wishart mean); got n={n!r}, p={p!r}.")
    w = _check_weights(gt_weights)
    s2 = float(noise) ** 2
    ss2 = s2 if synthetic_noise is None else float(synthetic_noise) ** 2
    kappa = n / p
    return ((1 - kappa) * float(signal2) + (w**2 * s2 + (1 - w) ** 2 * ss2) * n / (p - n - 1)) \
        / (1 - (1 - w) ** 2 * kappa)


@dataclass(frozen=True)
class MixingWeightEstimate:
    """A Monte Carlo estimate of the weight that minimises the long-run risk.

    weight : the estimate (argmin of a quadratic fitted to the mean risk curve near its minimum).
    stderr : its Monte Carlo standard error, from ``batches`` independent batches of replications
        (the spread of the per-batch argmins / sqrt(batches)).
    grid, risk : the weights tried and the mean long-run risk at each (all replications).
    batch_weights : the per-batch argmins.
    """

    weight: float
    stderr: float
    grid: np.ndarray
    risk: np.ndarray
    batch_weights: np.ndarray


def argmin_by_local_quadratic(grid, curve, half_width: int = 3) -> float:
    """The vertex of a least-squares parabola through the ``2 half_width + 1`` grid points around the
    smallest value of ``curve`` (clipped to the grid). A parabola is only a local model: on an exact
    curve its bias is what :func:`estimate_optimal_mixing_weight`'s callers report as the estimator's bias."""
    grid, curve = np.asarray(grid, dtype=np.float64), np.asarray(curve, dtype=np.float64)
    i = int(np.argmin(curve))
    lo, hi = max(0, i - half_width), min(grid.size, i + half_width + 1)
    if hi - lo < 3:
        return float(grid[i])
    a, b, _ = np.polyfit(grid[lo:hi], curve[lo:hi], 2)
    if a <= 0:
        return float(grid[i])
    return float(np.clip(-b / (2 * a), grid[0], grid[-1]))


def estimate_optimal_mixing_weight(risks, grid, *, burn_in: int, batches: int = 10,
                                   half_width: int = 3) -> MixingWeightEstimate:
    """The long-run-risk minimising weight from :func:`simulate_fresh_data`'s ``(R, W, T+1)`` risks.

    The long-run risk of a replication is its mean over rounds ``burn_in..T`` (the chain forgets its
    start geometrically, at rate ``(1 - w)`` per round, so the burn-in removes the start). The
    estimate is :func:`argmin_by_local_quadratic` of the mean over all replications; its standard
    error comes from ``batches`` disjoint batches of replications (batch means).
    """
    risks = np.asarray(risks, dtype=np.float64)
    grid = _check_weights(grid)
    if risks.ndim != 3 or risks.shape[1] != grid.size:
        raise ValueError(f"`risks` must be (replications, len(grid) = {grid.size}, rounds + 1); got {risks.shape}.")
    if not 0 <= burn_in < risks.shape[2]:
        raise ValueError(f"`burn_in` must be in [0, {risks.shape[2] - 1}]; got {burn_in!r}.")
    if int(batches) != batches or not 2 <= batches <= risks.shape[0]:
        raise ValueError(f"`batches` must be an integer in [2, replications = {risks.shape[0]}]; got {batches!r}.")
    long_run = risks[:, :, burn_in:].mean(axis=2)  # (R, W)
    curve = long_run.mean(axis=0)
    per_batch = np.array([argmin_by_local_quadratic(grid, chunk.mean(axis=0), half_width)
                          for chunk in np.array_split(long_run, int(batches))])
    return MixingWeightEstimate(weight=argmin_by_local_quadratic(grid, curve, half_width),
                                stderr=float(per_batch.std(ddof=1) / np.sqrt(per_batch.size)),
                                grid=grid, risk=curve, batch_weights=per_batch)
