"""The number of self-distillation steps from the training data alone: generalised cross-validation.

With ``gt_weight`` 0 the risk is U-shaped in the number of steps (on [BA21]'s toy it is best at step
3, and the fit collapses to the zero function in the limit), so the step count needs choosing, and a
user rarely has a held-out set to spare. Step ``t`` is the linear smoother ``S_t = V diag(b^(t)) V^T``
of the labels (:mod:`kerneldistill.filters`), so generalised cross-validation (Craven & Wahba 1979) applies to it::

    GCV(t) = (||y - S_t y||^2 / (n k)) / (1 - tr(S_t) / n)^2

and every ``t`` costs O(m) from the one eigendecomposition: ``||y - S_t y||^2 = sum_i (1 - b_i)^2 ||z_i||^2
+ ||y - V z||^2`` and ``tr S_t = sum_i b_i``, with ``1 - b`` from
:func:`kerneldistill.filters.filter_complements` (no cancellation near interpolation).

``criterion="one_shot"`` scores each step instead by [DPR26]'s one-shot rule applied to the powers of
the teacher's smoother (:class:`kerneldistill.optimal.OneShotRisk`); for ``gt_weight`` 0 (a single
power per step) and 1 the two coincide.

Fresh covariates. Wu, Yang & Sun (arXiv 2602.14029, 2026) refit each iterate on FRESH covariates
with noiseless pseudo-labels, which is not this procedure (every step here reuses the same training
inputs and labels). That mode and its iterated GCV live in :mod:`kerneldistill.self_training`. Where
the two differ: there step ``t``'s fit on the labelled inputs is ``S_t y`` with ``S_t`` a ridge fit
followed by projections those inputs never saw, and ``GCV(t)`` above applied to that ``S_t`` is biased
at the early steps (on the claim's setting it puts step 1 about 45% above the true risk); the iterated
GCV adds the step-0 leave-one-out residual carried through the refits, ``(tr S_t / n) g``. Both agree
at the first fit. ``GCV(t)`` above is the plain GCV of the smoother that step ``t`` actually is here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._pipeline import resolve_distiller
from ._validation import check_bool, check_gt_weight, check_steps
from .filters import filter_complements
from .optimal import OneShotRisk, _project

__all__ = ["StepSelection", "gcv_scores", "select_steps"]

_CRITERIA = ("gcv", "one_shot")


@dataclass(frozen=True)
class StepSelection:
    """The chosen number of steps and the scores behind it.

    step : the chosen step (minimum score).
    gt_weight : the weight (float) or schedule used; with ``gt_weights`` given, the chosen constant weight.
    steps : ``(S,)`` the candidate steps ``1..max_steps``.
    scores : ``(S,)``, or ``(W, S)`` over ``gt_weights`` x steps: the criterion (an estimate of the
        prediction risk up to the noise variance's constant).
    gt_weights : the weight grid of a joint (steps, weight) choice, else None.
    criterion : ``"gcv"`` or ``"one_shot"``.
    """

    step: int
    gt_weight: object
    steps: np.ndarray
    scores: np.ndarray
    gt_weights: np.ndarray | None
    criterion: str


def gcv_scores(evals, z2, perp: float, n_samples: int, n_outputs: int, ridge: float, gt_weight, steps) -> np.ndarray:
    """``GCV(t)`` for each of ``steps`` (see the module docstring); ``z2`` ``(m,)`` are ``||z_i||^2``
    summed over outputs and ``perp`` the squared norm of the labels outside the eigenbasis."""
    c = filter_complements(evals, ridge, gt_weight, steps)  # (S, m): 1 - b^(t)
    missing = n_samples - len(evals)  # directions outside span(V): b = 0 there
    resid = (c**2 @ z2 + perp) / (n_samples * n_outputs)
    dof_left = (c.sum(axis=1) + missing) / n_samples  # 1 - tr(S_t) / n, formed without subtracting
    return resid / dof_left**2


def select_steps(distiller, max_steps: int, *, gt_weight=None, gt_weights=None,
                 criterion: str = "gcv", allow_any_weight=None) -> StepSelection:
    """Choose the number of steps (``1..max_steps``) of a fitted :class:`KernelDistiller` (or a
    ``Pipeline`` ending in one) from its training data alone.

    gt_weight : None (the distiller's own weight or schedule), a float, or a schedule (one weight per
        step ``2..``, at least ``max_steps - 1`` long).
    gt_weights : a grid of constant weights: choose ``(step, weight)`` jointly (then ``gt_weight``
        must be None).
    criterion : ``"gcv"`` (the smoother's generalised cross-validation) or ``"one_shot"`` (see the
        module docstring).
    allow_any_weight : None (the distiller's own ``allow_any_weight``) or a bool. Weights outside
        ``[0, 1]`` are refused unless it is True, by the same check as :class:`KernelDistiller`'s
        (:func:`kerneldistill._validation.check_gt_weight`), so that a weight scored here can be fitted.
    """
    model, _ = resolve_distiller(distiller)
    if criterion not in _CRITERIA:
        raise ValueError(f"`criterion` must be one of {list(_CRITERIA)}; got {criterion!r}.")
    T = check_steps(max_steps, name="max_steps", allow_inf=False)
    steps = np.arange(1, T + 1)
    # One owner of the weight range (check_gt_weight), with the distiller's own opt-in by default: a
    # weight that select_steps scores is one that KernelDistiller then accepts.
    allow = check_bool(model.allow_any_weight if allow_any_weight is None else allow_any_weight,
                       name="allow_any_weight")
    if gt_weights is not None:
        if gt_weight is not None:
            raise ValueError("pass either `gt_weight` (score the steps of one weight or schedule) or `gt_weights` "
                             "(choose a constant weight and the steps jointly), not both.")
        grid = check_gt_weight(np.atleast_1d(np.asarray(gt_weights, dtype=float)), allow_any_weight=allow,
                               name="gt_weights")
        weights = list(grid)
    else:
        weight = model.gt_weight_ if gt_weight is None else check_gt_weight(gt_weight, allow_any_weight=allow)
        if np.ndim(weight) == 1 and len(weight) < T - 1:
            raise ValueError(f"the `gt_weight` schedule holds {len(weight)} weights (steps 2..{len(weight) + 1}) "
                             f"but max_steps={T} needs one per step 2..{T}.")
        weights = [weight]
    if criterion == "gcv":
        z, perp = _project(model.evecs_.astype(np.float64), model.y_fit_)
        z2 = np.sum(z**2, axis=1)
        n, k = model.y_fit_.shape
        scores = np.stack([gcv_scores(model.evals_, z2, perp, n, k, model.ridge_, w, list(steps)) for w in weights])
    else:
        one_shot = OneShotRisk.from_distiller(model)
        scores = np.stack([[one_shot.risk(_as_schedule(w, t)) for t in steps] for w in weights])
    i, j = np.unravel_index(int(np.argmin(scores)), scores.shape)
    if gt_weights is None:
        return StepSelection(int(steps[j]), weights[0], steps, scores[0], None, criterion)
    return StepSelection(int(steps[j]), float(weights[i]), steps, scores, np.asarray(weights), criterion)


def _as_schedule(weight, step: int):
    """The weights of steps ``2..step`` of a constant weight or a schedule."""
    if np.ndim(weight) == 0:
        return [float(weight)] * (step - 1)
    return list(np.asarray(weight)[: step - 1])
