"""The measurements behind ``docs/kernel_extensions.md``: step selection against the oracle, and
[DPR26]'s Proposition 2.3 with (ridge, weight) tuning by three criteria.

Each study is a pure function of its arguments and fixed seeds (``numpy.random.default_rng``) that
returns plain rows; ``examples/select_steps.py``, ``examples/ridge_weight_grid.py`` and
``analysis/figures/kernel_extensions.py`` print or draw them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimator import KernelDistiller
from .filters import filter_path
from .optimal import OneShotRisk, ReferenceRisk
from .ridge_path import Proposition23, proposition_2_3, tune_ridge_and_weight
from .step_selection import select_steps

__all__ = ["sine_data", "StepStudyRow", "select_steps_study", "linear_setting", "rbf_setting", "RIDGE_SETTINGS",
           "RidgeStudyRow", "ridge_study"]


def sine_data(n: int, noise: float, seed: int):
    """``x ~ U[0, 1]`` ``(n, 1)``, ``y = sin(2 pi x) + noise * N(0, 1)``; returns ``(X, y)``."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1))
    return X, np.sin(2 * np.pi * X[:, 0]) + noise * rng.standard_normal(n)


# --------------------------------------------------------------------------------------------------
# select_steps against the oracle best step


@dataclass(frozen=True)
class StepStudyRow:
    """One data set: the oracle's best step and the GCV choice, at ``gt_weight`` 0 and jointly with a
    constant weight from ``gt_weights``; ratios are true risk of the choice over the oracle's best."""

    n: int
    noise: float
    seed: int
    oracle_step: int
    chosen_step: int
    ratio: float
    pair_oracle: tuple
    pair_chosen: tuple
    pair_ratio: float


def select_steps_study(sizes, noises, seeds: int, *, max_steps: int = 100, ridge_per_sample: float = 1e-3,
                       gamma: float = 80.0, gt_weights=(0.0, 0.1, 0.25, 0.5, 0.75, 1.0),
                       n_eval: int = 401) -> list[StepStudyRow]:
    """:func:`~kerneldistill.step_selection.select_steps` (GCV) against the oracle best step.

    Data: :func:`sine_data`; RBF kernel ``gamma``, ``ridge = ridge_per_sample * n`` (a fixed
    per-sample penalty, small enough that pure distillation helps first and then over-smooths).
    True risk: mean squared error against ``sin(2 pi x)`` on ``n_eval`` points of ``[0, 1]``.
    """
    X_eval = np.linspace(0.0, 1.0, n_eval)[:, None]
    truth = np.sin(2 * np.pi * X_eval[:, 0])
    steps = list(range(1, max_steps + 1))
    weights = sorted({0.0, *(float(w) for w in gt_weights)})  # 0 is the single-weight study's weight
    rows = []
    for n in sizes:
        for noise in noises:
            for seed in range(seeds):
                X, y = sine_data(n, noise, seed)
                model = KernelDistiller("rbf", ridge=ridge_per_sample * n, gt_weight=0.0, gamma=gamma).fit(X, y)
                P = model.kernel_matrix(X_eval) @ model.evecs_  # (p, m): every step's prediction is P (q * z)
                _, q = filter_path(model.evals_, model.ridge_, weights, steps)  # (W, S, m)
                preds = (q * model.z_[:, 0]).reshape(-1, q.shape[-1]) @ P.T  # (W*S, p), one BLAS product
                risks = np.mean((preds - truth) ** 2, axis=-1).reshape(q.shape[:2])  # (W, S)
                r0 = risks[weights.index(0.0)]
                chosen = select_steps(model, max_steps, gt_weight=0.0)
                pair = select_steps(model, max_steps, gt_weights=weights)
                i, j = np.unravel_index(int(np.argmin(risks)), risks.shape)
                chosen_pair_risk = risks[weights.index(pair.gt_weight), pair.step - 1]
                rows.append(StepStudyRow(
                    n=int(n), noise=float(noise), seed=seed, oracle_step=int(np.argmin(r0)) + 1,
                    chosen_step=chosen.step, ratio=float(r0[chosen.step - 1] / r0.min()),
                    pair_oracle=(steps[j], weights[i]), pair_chosen=(pair.step, pair.gt_weight),
                    pair_ratio=float(chosen_pair_risk / risks.min())))
    return rows


# --------------------------------------------------------------------------------------------------
# Proposition 2.3 and (ridge, weight) tuning


def linear_setting(n, p, covariance, signal, noise, seed):
    """[DPR26]-style synthetic data: ``x ~ N(0, diag(sd^2))``, ``y = x^T theta* + noise * N(0, 1)``.

    Returns ``(X, y, X_val, y_val, K_ref, reference)`` where the oracle ``||Sigma^1/2 (theta - theta*)||^2 / p``
    is the :class:`ReferenceRisk` with ``K_ref = Sigma^1/2 X^T`` and ``reference = Sigma^1/2 theta*``.
    """
    rng = np.random.default_rng(seed)
    sd = np.ones(p)
    if covariance == "power":
        sd = np.arange(1, p + 1) ** -0.5
    elif covariance == "spiked":
        sd[:5] = 10.0
    theta = rng.standard_normal(p) / np.sqrt(p)
    if signal == "spikes":  # the signal in the 5 spiked directions only
        theta = np.zeros(p)
        theta[:5] = rng.standard_normal(5)
        theta /= np.linalg.norm(theta)
    X, X_val = rng.standard_normal((n, p)) * sd, rng.standard_normal((n, p)) * sd
    y, y_val = X @ theta + noise * rng.standard_normal(n), X_val @ theta + noise * rng.standard_normal(n)
    return X, y, X_val, y_val, sd[:, None] * X.T, sd * theta


def rbf_setting(n, gamma, noise, seed):
    X, y = sine_data(n, noise, seed)
    X_val, y_val = sine_data(n, noise, seed + 1000)
    X_eval = np.linspace(0.0, 1.0, 401)[:, None]
    return X, y, X_val, y_val, X_eval, np.sin(2 * np.pi * X_eval[:, 0])


# (name, kind, parameters). "linear": (n, p, covariance, signal, noise); "rbf": (n, gamma, noise).
RIDGE_SETTINGS = (
    ("isotropic, p/n = 0.5", "linear", (200, 100, "identity", "isotropic", 1.0)),
    ("isotropic, p/n = 2", "linear", (200, 400, "identity", "isotropic", 1.0)),
    ("isotropic, p/n = 10", "linear", (100, 1000, "identity", "isotropic", 1.0)),
    ("power-law covariance, p/n = 2", "linear", (200, 400, "power", "isotropic", 1.0)),
    ("5 spikes carry the signal, p/n = 2", "linear", (200, 400, "spiked", "spikes", 1.0)),
    ("RBF gamma 10, sine, n = 200", "rbf", (200, 10.0, 0.5)),
    ("RBF gamma 80, sine, n = 200", "rbf", (200, 80.0, 0.5)),
)


@dataclass(frozen=True)
class RidgeStudyRow:
    """One setting: Proposition 2.3 under the oracle, and the TRUE risk of the ridge and of the
    (ridge, weight) pair that the held-out and the one-shot criteria choose (unconstrained weight)."""

    name: str
    proposition: Proposition23
    held_out_ridge_risk: float
    held_out_pair_risk: float
    one_shot_ridge_risk: float
    one_shot_pair_risk: float


def ridge_study(settings=RIDGE_SETTINGS, *, seed: int = 0, n_ridges: int = 100) -> list[RidgeStudyRow]:
    """Measure :func:`~kerneldistill.ridge_path.proposition_2_3` and the tuned choices for each setting."""
    rows = []
    for name, kind, params in settings:
        if kind == "linear":
            X, y, X_val, y_val, K_ref, reference = linear_setting(*params, seed=seed)
            model = KernelDistiller("linear", ridge=1.0).fit(X, y)
            oracle = ReferenceRisk(model.evals_, model.evecs_, model.y_fit_, 1.0, K_ref, reference)
        else:
            X, y, X_val, y_val, X_eval, truth = rbf_setting(*params, seed=seed)
            model = KernelDistiller("rbf", ridge=1.0, gamma=params[1]).fit(X, y)
            oracle = ReferenceRisk.from_distiller(model, X_eval, truth)
        ridges = float(model.evals_.max()) * np.logspace(-7, 2, n_ridges)
        prop = proposition_2_3(oracle, ridges)
        true_risks = []
        for crit in (ReferenceRisk.from_distiller(model, X_val, y_val), OneShotRisk.from_distiller(model)):
            choice = tune_ridge_and_weight(crit, ridges, constrained=False)
            true_risks.append(oracle.at_ridge(choice.ridge).risk())
            true_risks.append(oracle.at_ridge(choice.pair_ridge).quadratic(2)(choice.pair_gt_weight))
        rows.append(RidgeStudyRow(name, prop, *true_risks))
    return rows
