"""The toy problem of [BA21]'s public notebook (which gives [MFB20]'s example values), and its results.

Data (``docs/theory.md`` section 2.5): 11 points ``x = 0, 0.1, ..., 1`` with the noisy labels
below, RBF kernel ``exp(-80 (x - x')^2)``, ``ridge = 0.2``; the loss of a fit is the mean over
``x = 0, 0.01, ..., 1`` of ``(f(x) - sin(2 pi x))^2``; ground-truth weights 0 and 0.25, steps 1..6
and the infinite-step limit. :func:`toy_results` computes everything [BA21]'s figures show from ONE
fitted :class:`~kerneldistill.estimator.KernelDistiller`; the figures live in
``analysis/figures/kernel.py`` and the example ``examples/toy_borup_andersen.py`` prints the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .estimator import KernelDistiller
from .filters import filter_path

__all__ = ["TOY_X", "TOY_Y", "TOY_GAMMA", "TOY_RIDGE", "TOY_GT_WEIGHTS", "TOY_STEPS", "TOY_MOBAHI_EPS",
           "toy_eval_points",
           "toy_truth", "toy_distiller", "ToyResults", "toy_results"]

TOY_X = np.linspace(0.0, 1.0, 11)[:, None]
TOY_Y = np.array([
    0.38476636465198066, 1.2333967683416893, 1.33232242218057, 0.6920159488889518,
    -0.29756145531871736, -0.24189291901377769, -0.7964485769175675, -0.9616480167034174,
    -0.49672509509916934, -0.3469066003991437, 0.5589512650600734,
])
TOY_GAMMA = 80.0
TOY_RIDGE = 0.2
TOY_GT_WEIGHTS = (0.0, 0.25)
TOY_STEPS = (1, 2, 3, 4, 5, 6, math.inf)
# [MFB20]'s fixed budget on the toy labels: r_0 = ||y|| / sqrt(n eps) ~ 11, so pure distillation runs
# about ten rounds before it collapses (a budget of our choosing; [BA21]'s notebook has none).
TOY_MOBAHI_EPS = 0.005


def toy_eval_points() -> np.ndarray:
    """``(101, 1)``: ``x = 0, 0.01, ..., 1``, where the loss is measured."""
    return np.linspace(0.0, 1.0, 101)[:, None]


def toy_truth(X) -> np.ndarray:
    """The noise-free function ``sin(2 pi x)`` at ``X`` ``(p, 1)``."""
    return np.sin(2.0 * np.pi * np.asarray(X)[:, 0])


def toy_distiller(gt_weight=0.25, **params) -> KernelDistiller:
    """A :class:`KernelDistiller` fitted on the toy data (RBF, gamma 80, ridge 0.2)."""
    return KernelDistiller("rbf", ridge=TOY_RIDGE, gt_weight=gt_weight, gamma=TOY_GAMMA, **params).fit(TOY_X, TOY_Y)


@dataclass(frozen=True)
class ToyResults:
    """Everything [BA21]'s toy figures show, for weights ``W`` x steps ``S`` (``math.inf`` = the limit).

    x_eval ``(p,)``, truth ``(p,)``: the loss grid and ``sin(2 pi x)`` on it.
    gt_weights ``(W,)``, steps ``(S,)`` (float, ``inf`` for the limit), evals ``(m,)`` (descending).
    fits ``(W, S, p)``: the fit of each step on ``x_eval``.
    filters ``(W, S, m)``: the diagonals ``b^(t)`` per eigen-index.
    ratios ``(W, S, m - 1)``: consecutive ratios ``b_k / b_(k+1)`` (NaN where ``b = 0``).
    loss ``(W, S)``: mean over ``x_eval`` of ``(f - sin(2 pi x))^2``.
    """

    x_eval: np.ndarray
    truth: np.ndarray
    gt_weights: np.ndarray
    steps: np.ndarray
    evals: np.ndarray
    fits: np.ndarray
    filters: np.ndarray
    ratios: np.ndarray
    loss: np.ndarray


def toy_results(gt_weights=TOY_GT_WEIGHTS, steps=TOY_STEPS) -> ToyResults:
    """Fits, filters, ratios and losses of the toy problem, from one eigendecomposition."""
    model = toy_distiller()
    X_eval = toy_eval_points()
    truth = toy_truth(X_eval)
    fits = model.path(X_eval, list(steps), gt_weights=list(gt_weights))  # (W, S, p)
    b, _ = filter_path(model.evals_, model.ridge_, list(gt_weights), list(steps))  # (W, S, m)
    # The limit of gt_weight 0 is the zero filter: its ratios are undefined and recorded as NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(b[..., 1:] > 0, b[..., :-1] / b[..., 1:], np.nan)
    return ToyResults(
        x_eval=X_eval[:, 0], truth=truth, gt_weights=np.asarray(gt_weights, dtype=float),
        steps=np.asarray(steps, dtype=float), evals=model.evals_, fits=fits, filters=b,
        ratios=ratios, loss=np.mean((fits - truth) ** 2, axis=-1),
    )
