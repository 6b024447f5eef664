"""Self-training with FRESH covariates at every step, and its iterated GCV (Wu, Yang & Sun, arXiv 2602.14029).

This is the fresh-covariate mode of self-distillation, NOT [BA21]'s fixed design that
:class:`~kerneldistill.KernelDistiller` runs (there every step refits the SAME training inputs, so
step ``t`` is the smoother ``S^t`` of one Gram matrix). Here, in linear regression ``y = x^T beta + e``
with ``x ~ N(0, Sigma)`` and ``Var e = sigma^2``:

- step 0 fits the noisy labels ``y_0`` of ``X_0`` (``n x p``):
  ``b_0 = argmin ||y_0 - X_0 b||^2 + ridge ||b||^2`` (``ridge = 0``: the minimum-norm least-squares
  fit, the interpolator when ``p > n``);
- step ``t >= 1`` draws FRESH covariates ``X_t`` and refits their NOISELESS pseudo-labels
  ``X_t b_{t-1}``: ``b_t = A_t b_{t-1}`` with ``A_t = X_t^T (X_t X_t^T + ridge I)^+ X_t``
  (``ridge = 0``: the orthogonal projection onto the row space of ``X_t``).

``ridge`` is the sum-of-squares penalty of the rest of the toolkit (step 0 equals
``sklearn.linear_model.Ridge(alpha=ridge, fit_intercept=False)``). Wu, Yang & Sun study the
ridgeless (minimum-norm) iteration in the overparameterised regime ``p > n`` and ridge; which
normalisation of the ridge they use could not be read, so the ridge here is ours and the claims run
ridgeless (where the normalisation does not matter). The same ``n`` is drawn at every step (our choice).

Test risk: ``R_t = ||b_t - beta||^2_Sigma + sigma^2`` (prediction error on a fresh ``(x, y)``).

Spectral filter. Writing ``kappa`` for the solution of ``kappa = (ridge / n) + (kappa / n) tr(Sigma (Sigma +
kappa)^-1)`` (ridgeless, ``p > n``: ``tr(Sigma (Sigma + kappa)^-1) = n``), a refit on fresh Gaussian
covariates acts on average as ``Phi = Sigma (Sigma + kappa I)^-1`` (the deterministic equivalent of
``A_t``), so ``E b_t ~ Phi^(t+1) beta``: along an eigenvector of ``Sigma`` with eigenvalue ``l`` the
signal is kept by ``(l / (l + kappa))^(t+1)`` -- strong directions survive, weak ones are forgotten
(:func:`filter_prediction`). This is the standard deterministic equivalent of ridge(less) regression
(e.g. Hastie, Montanari, Rosset & Tibshirani 2022), derived here, not quoted from the paper.

Iterated GCV. Only step 0 sees labels of the truth, so the risk of step ``t`` must be read off
``(X_0, y_0)``. The fit of step ``t`` on ``X_0`` is the linear map ``X_0 b_t = S_t y_0`` with
``S_t = X_0 M_t H_0``, ``M_t = A_t ... A_1`` (independent of ``(X_0, y_0)``) and
``H_0 = X_0^T (X_0 X_0^T + ridge I)^-1``. Leaving out point ``i`` of step 0 and running the same
fresh-covariate refits gives ``M_t b_0^(-i)``, and the rank-one downdate of ridge gives EXACTLY::

    y_i - x_i^T M_t b_0^(-i) = (y - S_t y)_i + (S_t)_ii * l_i,   l_i = r_i / (1 - (S_0)_ii)

with ``r = y - S_0 y`` the step-0 residual and ``l`` its leave-one-out residual (:func:`self_training_path`
returns this leave-one-out estimate as ``loo``). Replacing the diagonals by their means gives the
iterated GCV::

    iGCV(t) = (1/n) || y - S_t y + (tr S_t / n) g ||^2,    g = r / (1 - tr S_0 / n)

which at ``t = 0`` is the plain GCV of ridge. Ridgeless with ``p > n`` (``r = 0``, ``tr S_0 = n``), ``g``
is continued to its limit ``ridge -> 0``: ``g = n K^-1 y / tr K^-1`` with ``K = X_0 X_0^T``.
Wu, Yang & Sun's own formula (their eqs. 11-12, with a "ridgeless continuation") could NOT be read
here; the criterion above is derived in this module from the exact leave-one-out identity, and
whether it coincides with theirs is unchecked. What is checked (``python -m kerneldistill claims
wu_yang_sun_self_training``): it tracks ``R_t`` uniformly in ``t`` and its step approaches the oracle
step as ``n`` grows.

Beside :func:`kerneldistill.select_steps` (fixed design). ``select_steps`` scores step ``t`` by the
GCV of the smoother that step ``t`` is, ``||y - S_t y||^2 / n / (1 - tr S_t / n)^2``, which is right
there because every step refits the same inputs with the same labels. Applied to the fresh-covariate
map ``S_t`` above that formula (``naive_gcv`` here) is biased at the early steps, where it matters:
``S_t`` is not a ridge smoother of ``(X_0, y_0)`` (it is ridge followed by projections that ``X_0``
never saw), and the missing term ``(tr S_t / n) g`` is the step-0 leave-one-out residual carried
through the refits. Both criteria coincide at ``t = 0``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.optimize

__all__ = ["SpikedModel", "spiked_model", "SelfTrainingPath", "self_training_path", "simulate_self_training",
           "filter_prediction", "self_training_kappa"]

# Singular values below this fraction of the largest are treated as zero (the pseudo-inverse's rule).
_RANK_RTOL = 1e-10


def _check_ridge0(ridge) -> float:
    r = float(ridge)
    if not np.isfinite(r) or r < 0.0:
        raise ValueError(f"`ridge` must be a finite number >= 0 (0: the minimum-norm fit); got {ridge!r}.")
    return r


def _svd(X: np.ndarray):
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    keep = s > _RANK_RTOL * (s[0] if s.size else 0.0)
    return U[:, keep], s[keep], Vt[keep]


def _refit(X: np.ndarray, V: np.ndarray, ridge: float) -> np.ndarray:
    """``A V`` for the refit operator ``A = X^T (X X^T + ridge I)^+ X`` on fresh ``X`` (``V``: ``(p,)`` or
    ``(p, m)``), through the ``n x n`` Gram matrix (cheaper than an SVD when ``p > n``)."""
    d, U = np.linalg.eigh(X @ X.T)
    keep = d > _RANK_RTOL * max(float(d[-1]), np.finfo(np.float64).tiny)  # the pseudo-inverse's rank rule
    d, U = d[keep], U[:, keep]
    XV = X @ V
    inner = U.T @ XV
    inner = inner / (d + ridge)[:, None] if inner.ndim == 2 else inner / (d + ridge)
    return X.T @ (U @ inner)


@dataclass(frozen=True)
class SelfTrainingPath:
    """One self-training trajectory with fresh covariates.

    steps : ``(T+1,)`` ``0..T``.
    coefs : ``(T+1, p)`` ``b_t``.
    igcv : ``(T+1,)`` the iterated GCV (estimates ``R_t``, noise included).
    loo : ``(T+1,)`` the exact leave-one-out estimate it approximates.
    naive_gcv : ``(T+1,)`` ``select_steps``' formula applied to ``S_t`` (biased for ``t >= 1``).
    dof : ``(T+1,)`` ``tr S_t``.
    """

    steps: np.ndarray
    coefs: np.ndarray
    igcv: np.ndarray
    loo: np.ndarray
    naive_gcv: np.ndarray
    dof: np.ndarray

    @property
    def igcv_step(self) -> int:
        """The step that the iterated GCV picks."""
        return int(self.steps[int(np.argmin(self.igcv))])


def self_training_path(X0, y0, fresh: Sequence, *, ridge: float = 0.0) -> SelfTrainingPath:
    """Run the fresh-covariate iteration of the module docstring on ``(X0, y0)`` and the fresh designs
    ``fresh`` (``T`` arrays ``(n_t, p)``, no labels), and score every step by the iterated GCV."""
    ridge = _check_ridge0(ridge)
    X0 = np.asarray(X0, dtype=np.float64)
    y0 = np.asarray(y0, dtype=np.float64)
    if X0.ndim != 2 or y0.shape != (X0.shape[0],):
        raise ValueError(f"`X0` must be (n, p) and `y0` (n,); got {X0.shape} and {y0.shape}.")
    n, p = X0.shape
    fresh = [np.asarray(X, dtype=np.float64) for X in fresh]
    for t, X in enumerate(fresh, start=1):
        if X.ndim != 2 or X.shape[1] != p:
            raise ValueError(f"`fresh[{t - 1}]` (the covariates of step {t}) must be (n_t, {p}); got {X.shape}.")
    U, s, Vt = _svd(X0)
    rank = s.size
    uy = U.T @ y0
    # the labels outside the column space of X0, and 1 - ||U_i||^2: exactly zero when rank == n (set so,
    # since their round-off would swamp ridge / (s^2 + ridge) at a tiny ridge)
    perp = y0 - U @ uy if rank < n else np.zeros(n)
    lev_perp = 1.0 - np.einsum("ij,ij->i", U, U) if rank < n else np.zeros(n)
    if ridge > 0.0 or rank < n:
        w = ridge / (s**2 + ridge)  # 1 - the step-0 filter, per direction
        scale = 1.0
    else:
        # Ridgeless interpolation (rank n): r and 1 - tr S_0 / n both vanish like ridge; continue them by
        # their limits divided by ridge, i.e. use 1 / s^2 in place of ridge / (s^2 + ridge).
        w = 1.0 / s**2
        scale = 0.0  # the orthogonal part carries no ridge factor and is zero here anyway
    resid0 = U @ (w * uy) + scale * perp  # (proportional to) r = y - S_0 y
    diag0 = np.einsum("ij,j,ij->i", U, w, U) + scale * lev_perp  # 1 - (S_0)_ii
    dof_left0 = (w.sum() + scale * (n - rank)) / n  # 1 - tr S_0 / n, same scaling
    g = resid0 / dof_left0
    loo0 = resid0 / diag0
    h = s / (s**2 + ridge)
    b = Vt.T @ (h * uy)  # b_0
    B = Vt.T * h  # (p, rank): M_t V diag(h), so that S_t = X0 B_t U^T
    coefs, igcv, loo, naive, dof = [], [], [], [], []
    for t in range(len(fresh) + 1):
        if t > 0:
            both = _refit(fresh[t - 1], np.column_stack([b, B]), ridge)  # one factorisation per step
            b, B = both[:, 0], both[:, 1:]
        XB = X0 @ B  # (n, rank)
        diag = np.einsum("ij,ij->i", XB, U)  # (S_t)_ii
        tr = float(diag.sum())
        fit_resid = y0 - X0 @ b
        coefs.append(b.copy())
        dof.append(tr)
        igcv.append(float(np.mean((fit_resid + tr / n * g) ** 2)))
        loo.append(float(np.mean((fit_resid + diag * loo0) ** 2)))
        left = 1.0 - tr / n
        naive.append(float(np.mean(fit_resid**2) / left**2) if left > 1e-12 else np.inf)
    if ridge == 0.0 and rank == n:
        naive[0] = igcv[0]  # select_steps' GCV at step 0 is the same ridgeless limit
    return SelfTrainingPath(np.arange(len(fresh) + 1), np.array(coefs), np.array(igcv), np.array(loo),
                            np.array(naive), np.array(dof))


# --------------------------------------------------------------------------------------------------
# The spiked model and its simulation


@dataclass(frozen=True)
class SpikedModel:
    """``x ~ N(0, diag(eigenvalues))`` (rotation invariance of the Gaussian design makes a diagonal
    ``Sigma`` no loss of generality), ``y = x^T beta + N(0, noise_var)``."""

    eigenvalues: np.ndarray
    beta: np.ndarray
    noise_var: float

    @property
    def n_features(self) -> int:
        return self.eigenvalues.size

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal((n, self.n_features)) * np.sqrt(self.eigenvalues)

    def risk(self, coefs: np.ndarray) -> np.ndarray:
        """``||b - beta||^2_Sigma + noise_var`` for each row of ``coefs``."""
        e = np.atleast_2d(coefs) - self.beta
        return np.einsum("ij,j,ij->i", e, self.eigenvalues, e) + self.noise_var


def spiked_model(n_features: int, spikes=(20.0,), signal=(1.0,), *, noise: float = 1.0) -> SpikedModel:
    """``Sigma = diag(spikes..., 1, ..., 1)`` and ``beta = (signal..., 0, ..., 0)``: the signal lies along the spikes."""
    spikes = np.atleast_1d(np.asarray(spikes, dtype=np.float64))
    signal = np.atleast_1d(np.asarray(signal, dtype=np.float64))
    if spikes.shape != signal.shape or spikes.size > n_features:
        raise ValueError(f"`spikes` and `signal` must have the same length <= n_features={n_features}; got "
                         f"{spikes.size} and {signal.size}.")
    if np.any(spikes <= 0):
        raise ValueError(f"`spikes` must be eigenvalues > 0; got {spikes.tolist()}.")
    lam = np.ones(int(n_features))
    lam[: spikes.size] = spikes
    beta = np.zeros(int(n_features))
    beta[: signal.size] = signal
    return SpikedModel(lam, beta, float(noise) ** 2)


def simulate_self_training(model: SpikedModel, n: int, steps: int, *, ridge: float = 0.0, seed: int = 0):
    """One trajectory on data drawn from ``model``: returns ``(path, risk)`` with ``risk`` ``(T+1,)``."""
    rng = np.random.default_rng(seed)
    X0 = model.draw(rng, n)
    y0 = X0 @ model.beta + np.sqrt(model.noise_var) * rng.standard_normal(n)
    fresh = [model.draw(rng, n) for _ in range(int(steps))]
    path = self_training_path(X0, y0, fresh, ridge=ridge)
    return path, model.risk(path.coefs)


def self_training_kappa(eigenvalues, n: int, ridge: float = 0.0) -> float:
    """``kappa`` of the module docstring: ``kappa (1 - tr(Sigma (Sigma + kappa)^-1) / n) = ridge / n``."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    ridge = _check_ridge0(ridge)
    if ridge == 0.0 and lam.size <= n:
        raise ValueError(f"ridgeless self-training needs p > n for kappa > 0; got p={lam.size}, n={n}.")

    upper = float(lam.sum()) / n + ridge / n + 1.0  # the root lies below: there g(k) > 0
    if ridge == 0.0:
        # kappa solves tr(Sigma (Sigma + kappa)^-1) = n (decreasing from p > n to 0)
        return float(scipy.optimize.brentq(lambda k: np.sum(lam / (lam + k)) - n, 1e-300, upper * lam.max(),
                                           xtol=1e-15, rtol=1e-13))
    # g(k) = k - ridge / n - (k / n) tr(Sigma (Sigma + k)^-1): negative near 0, positive at `upper`
    return float(scipy.optimize.brentq(lambda k: k - ridge / n - k * np.sum(lam / (lam + k)) / n, 1e-300, upper,
                                       xtol=1e-15, rtol=1e-13))


def filter_prediction(eigenvalues, n: int, steps: int, ridge: float = 0.0) -> np.ndarray:
    """``(T+1, p)``: ``(l / (l + kappa))^(t+1)``, the predicted fraction of ``beta`` that step ``t`` keeps along
    each eigendirection (see the module docstring)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    kappa = self_training_kappa(lam, n, ridge)
    phi = lam / (lam + kappa)
    return phi[None, :] ** (np.arange(int(steps) + 1)[:, None] + 1)
