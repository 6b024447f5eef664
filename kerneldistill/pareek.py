"""Repeated self-distillation against ridge on a Pareek, Du & Oh construction (NeurIPS 2024).

Pareek, Du & Oh, "Understanding the gains from repeated self-distillation", show that in fixed-design
linear regression k-step self-distillation with optimal per-step parameters can reduce the excess
risk of ridge regression by a factor up to the dimension ``d``, when the singular values of the
design are distinct and the target is aligned with the eigenbasis. Their paper could not be read
here (only its abstract); this module builds a construction with those two properties and MEASURES
the risks, it does not reproduce their theorem's constants:

- design ``X = U diag(s) W^T`` (``n x d``, ``U`` and ``W`` random orthonormal, seeded), with distinct
  singular values ``s_i^2 = n * spread^(-i)``, ``i = 0..d-1``;
- target ``theta*`` along ``w_d``, the right singular vector of the SMALLEST singular value, so that
  ridge (whose filter ``s^2 / (s^2 + lam)`` is increasing in ``s``) cannot keep it while damping the
  ``d - 1`` stronger, signal-free directions; its size is set by the signal-to-noise ratio of that
  direction, ``snr = s_d^2 ||theta*||^2 / noise^2``;
- noise ``N(0, noise^2)``; excess risk ``E ||X (theta_hat - theta*)||^2 / n``, the fixed-design risk,
  which is exactly :class:`~kerneldistill.optimal.ExpectedTrainingRisk` with ``y* = X theta*``
  (linear kernel, so kernel ridge is ridge regression).

The best diagonal filter in the eigenbasis (``b_i = signal_i / (signal_i + noise^2)``) is a lower
bound on every spectral estimator, ridge and self-distillation alike; k-step self-distillation's
filter is a degree-``k+1`` polynomial in ``a = s^2 / (s^2 + lam)`` through 0 and 1
(:mod:`kerneldistill.polynomial`), which can interpolate that filter at the ``d`` singular values once
``k >= d``. The table compares, each minimised over the ridge: ridge regression, 1-step
self-distillation (step 2 at its optimal weight) and k-step self-distillation with greedy and with
jointly optimal weights (:func:`~kerneldistill.joint.joint_schedule`, unconstrained weights: Pareek et
al.'s imitation parameters are real numbers, and the gain needs weights outside [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimator import KernelDistiller
from .joint import joint_schedule
from .optimal import ExpectedTrainingRisk, greedy_schedule
from .ridge_path import minimise_over_ridge

__all__ = ["PareekConstruction", "pareek_construction", "PareekRow", "pareek_table"]


@dataclass(frozen=True)
class PareekConstruction:
    """A fixed design ``X`` ``(n, d)``, the noise-free targets ``X theta*`` and the noise variance."""

    X: np.ndarray
    theta_star: np.ndarray
    y_star: np.ndarray
    noise_var: float
    singular_values: np.ndarray

    def criterion(self) -> ExpectedTrainingRisk:
        """The excess risk ``E ||X theta_hat - X theta*||^2 / n`` as a criterion (at ridge 1; use
        :meth:`~kerneldistill.optimal.ExpectedTrainingRisk.at_ridge`)."""
        model = KernelDistiller("linear", ridge=1.0).fit(self.X, self.y_star)
        return ExpectedTrainingRisk.from_distiller(model, self.y_star, self.noise_var)

    def oracle_filter_risk(self) -> float:
        """The excess risk of the best diagonal filter in the eigenbasis: a lower bound on every
        spectral estimator (``sum_i signal_i noise^2 / (signal_i + noise^2) / n``)."""
        n = self.X.shape[0]
        _, _, Wt = np.linalg.svd(self.X, full_matrices=False)
        signal = (self.singular_values * (Wt @ self.theta_star)) ** 2
        return float(np.sum(signal * self.noise_var / (signal + self.noise_var)) / n)


def pareek_construction(dim: int = 6, n_samples: int | None = None, *, spread: float = 2.0, snr: float = 100.0,
                        noise: float = 1.0, seed: int = 0) -> PareekConstruction:
    """The construction of the module docstring (``n_samples`` defaults to ``2 * dim``).

    As ``snr`` grows, the lower bound tends to ``noise^2 / n`` (one direction's noise) while ridge
    keeps about ``d`` directions' noise: the ratio of the two approaches ``d``.
    """
    dim = int(dim)
    n = 2 * dim if n_samples is None else int(n_samples)
    if dim < 1 or n < dim:
        raise ValueError(f"need dim >= 1 and n_samples >= dim; got dim={dim}, n_samples={n}.")
    if not snr > 0.0:
        raise ValueError(f"`snr` must be > 0; got {snr!r}.")
    if not spread > 1.0:
        raise ValueError(f"`spread` must be > 1 (distinct singular values); got {spread!r}.")
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, dim)))[0]
    W = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    s = np.sqrt(n) * spread ** (-np.arange(dim) / 2.0)
    X = U @ np.diag(s) @ W.T
    theta = np.sqrt(snr) * float(noise) / s[-1] * W[:, -1]
    return PareekConstruction(X=X, theta_star=theta, y_star=X @ theta, noise_var=float(noise) ** 2,
                              singular_values=s)


@dataclass(frozen=True)
class PareekRow:
    """One row of :func:`pareek_table`: each risk minimised over the ridge (the minimiser beside it)."""

    k: int
    ridge_risk: float
    ridge: float
    one_step_risk: float
    greedy_risk: float
    greedy_ridge: float
    joint_risk: float
    joint_ridge: float
    lower_bound: float


def pareek_table(construction: PareekConstruction, max_k: int | None = None, *, n_ridges: int = 40) -> list[PareekRow]:
    """Excess risks of optimal ridge, 1-step SD and k-step SD (greedy and joint) for ``k = 1..max_k``
    (default ``d + 1``), each minimised over a log grid of ``n_ridges`` ridges refined by Brent's method."""
    crit = construction.criterion()
    dim = construction.X.shape[1]
    max_k = dim + 1 if max_k is None else int(max_k)
    top = float(crit.evals.max())
    ridges = top * np.logspace(-4, 2, n_ridges)
    ridge, ridge_risk = minimise_over_ridge(lambda lam: crit.at_ridge(lam).risk(), ridges)

    def greedy(lam, k):
        return greedy_schedule(crit.at_ridge(lam), k + 1, constrained=False).risk[-1]

    def joint(lam, k):
        return joint_schedule(crit.at_ridge(lam), k + 1, constrained=False).risk[-1]

    # Each search includes the minimisers found before it, so that under the same criterion the joint
    # schedule is never reported worse than the greedy one or than ridge (it is not, at any one ridge).
    _, one_step = minimise_over_ridge(lambda lam: joint(lam, 1), ridges, extra=[ridge])
    rows = []
    for k in range(1, max_k + 1):
        g_lam, g_risk = minimise_over_ridge(lambda lam: greedy(lam, k), ridges, extra=[ridge])
        j_lam, j_risk = minimise_over_ridge(lambda lam: joint(lam, k), ridges, extra=[ridge, g_lam])
        rows.append(PareekRow(k=k, ridge_risk=ridge_risk, ridge=ridge, one_step_risk=one_step, greedy_risk=g_risk,
                              greedy_ridge=g_lam, joint_risk=j_risk, joint_ridge=j_lam,
                              lower_bound=construction.oracle_filter_risk()))
    return rows
