"""The optimal ground-truth weight of kernel ridge self-distillation, per step and in closed form.

Setting ([BA21] Borup & Andersen 2021, arXiv 2102.13088; ``docs/theory.md`` sections 2.3 and 2.4).
Step ``t`` fits kernel ridge regression to ``alpha_t y + (1 - alpha_t) f^(t-1)(X)``; with the earlier
weights fixed, the step-``t`` fit is affine in ``alpha_t`` (the weight on the ground truth)::

    f_alpha = (1 - alpha) f_0 + alpha f_1

where ``f_1`` (``alpha_t = 1``) is the fit on the labels alone (= the step-1 fit) and ``f_0``
(``alpha_t = 0``) the fit on the teacher's predictions ``f^(t-1)(X)``. Both endpoints, and their
difference, are read off the spectral core (:func:`kerneldistill.filters.weight_endpoint_filters`),
so nothing here re-derives the filters. Hence any squared-error risk is a quadratic in ``alpha``,
fixed by three numbers, the risks ``R0``, ``R1`` of the endpoints and their cross term ``C``::

    risk(alpha) = (1 - alpha)^2 R0 + alpha^2 R1 + 2 alpha (1 - alpha) C
    alpha*      = (R0 - C) / (R0 + R1 - 2 C),     risk(alpha*) = R0 - (R0 - C)^2 / (R0 + R1 - 2 C)

(this is [DPR26]'s form, Dang, Patil & Rinaldo, arXiv 2602.17565, with the teacher weight
``xi = 1 - alpha``). ``R0 + R1 - 2C`` is the squared distance between the endpoints, so the quadratic
is convex and the optimum on ``[0, 1]`` is ``alpha*`` clipped. The same holds for the weight of ANY
step ``s <= t`` with the others fixed (:meth:`coordinate_quadratic`): the last step's fit is affine in
each weight, which is what :func:`kerneldistill.joint.joint_schedule` builds on.

Weights outside [0, 1]: :func:`optimal_gt_weight` and :func:`greedy_schedule` clip to [0, 1] by
default (``constrained=True``), as :class:`KernelDistiller` refuses other weights by default. With
``constrained=False`` they return the unconstrained optimum, which may be negative or above 1; pass
it on with ``allow_any_weight=True`` (:meth:`WeightSchedule.estimator_params` does both).

Three criteria (each a class with the same interface; pick the one whose risk you want minimised):

- :class:`ReferenceRisk`: the mean squared error against given reference values at reference points
  (the noise-free function in a theorem check; held-out labels in practice).
- :class:`ExpectedTrainingRisk`: the expected training-point risk ``E (1/n) ||f(X) - y*||^2`` under the
  noise model ``y = y* + e``, ``Cov e = s^2 I``, in closed form in the eigenbasis (needs ``y*``:
  an oracle for theory and simulations).
- :class:`OneShotRisk`: [DPR26]'s one-shot estimate of the out-of-sample prediction risk from the
  training data alone (GCV-type corrected residuals, no held-out data, no refit).

Numerics near interpolation (ridge tiny next to the spectrum, or ``p > n`` with a tiny ridge): the
residual filters ``1 - b`` come from :func:`kerneldistill.filters.filter_complements`, the
difference of two endpoints from its own recursion, and the part of ``y`` outside the eigenbasis is
computed directly (exactly 0 for a complete basis), so no quantity here is a difference of nearly
equal numbers. ``tests/test_near_interpolation.py`` checks the one-shot optimum against a 50-digit
evaluation.

:func:`greedy_schedule` chains the per-step optima (step 2 first, each step with the earlier ones
fixed); its ``gt_weight`` array can be passed back to :class:`KernelDistiller` as ``gt_weight``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from ._pipeline import resolve_distiller
from ._validation import (
    check_bool,
    check_finite_array,
    check_psd_evals,
    check_ridge,
    check_ridge_against_spectrum,
    check_steps,
    warn_imprecise_weights,
)
from .affine import affine_vertex
from .estimator import KernelDistiller
from .filters import filter_complements, filter_diagonals, weight_endpoint_filters
from .polynomial import power_coefficients, power_endpoint_coefficients

__all__ = [
    "StepQuadratic",
    "WeightSchedule",
    "ReferenceRisk",
    "ExpectedTrainingRisk",
    "OneShotRisk",
    "optimal_gt_weight",
    "greedy_schedule",
    "ridge_from_dpr",
    "gt_weight_from_teacher_weight",
]

# --------------------------------------------------------------------------------------------------
# The quadratic of one step, and the greedy schedule.


@dataclass(frozen=True)
class StepQuadratic:
    """A criterion as a function of one step's ground-truth weight ``alpha``.

    ``risk(alpha) = (1 - alpha)^2 risk_pd + alpha^2 risk_labels + 2 alpha (1 - alpha) cross``, where
    ``risk_pd`` is the risk of the ``alpha = 0`` endpoint (pure distillation: fit on the teacher's
    predictions), ``risk_labels`` that of ``alpha = 1`` (fit on the labels) and ``cross`` their cross
    term. In [DPR26]'s notation (teacher weight ``xi = 1 - alpha``): ``R = risk_labels`` (the teacher's
    risk at step 2), ``R_pd = risk_pd``, ``C = cross``.
    """

    risk_pd: float
    risk_labels: float
    cross: float
    # ``R0 - C`` and ``D`` computed from the difference of the two endpoint fits, f1 - f0, when the
    # criterion can: forming them from the risks subtracts nearly equal numbers, which loses every
    # digit once the endpoints nearly coincide (tiny ridge: f1 - f0 = O(ridge)). docs/theory.md 2.3's form
    # alpha* = <f1 - f0, r - f0> / ||f1 - f0||^2 is the stable one.
    gain: float | None = None
    dist2: float | None = None

    @property
    def curvature(self) -> float:
        """``D = R0 + R1 - 2C``: the squared distance between the endpoint fits (>= 0)."""
        if self.dist2 is not None:
            return self.dist2
        return self.risk_pd + self.risk_labels - 2.0 * self.cross

    def __call__(self, gt_weight):
        """The criterion at one weight or an array of weights.

        Evaluated as ``R0 - 2 alpha (R0 - C) + alpha^2 D``, the same polynomial as
        ``(1 - alpha)^2 R0 + alpha^2 R1 + 2 alpha (1 - alpha) C`` but with the endpoint difference
        ``(R0 - C, D)`` that the criteria compute without cancellation: the endpoint form cancels
        terms of size ``alpha^2 R`` and returns round-off for weights in the thousands (tiny ridges).
        """
        a = np.asarray(gt_weight, dtype=np.float64)
        gain = self.gain if self.gain is not None else self.risk_pd - self.cross
        out = self.risk_pd - 2.0 * a * gain + a**2 * self.curvature
        return float(out) if out.ndim == 0 else out

    def argmin(self, *, constrained: bool = False) -> float:
        """``alpha* = (R0 - C) / D``; with ``constrained=True`` clipped to ``[0, 1]`` (convex in alpha)."""
        constrained = check_bool(constrained, name="constrained")
        # From the risks alone, D is only known to round-off relative to the risks; from the
        # endpoint difference (dist2) it is exact (scale 0: only a zero difference is degenerate).
        scale = 0.0 if self.dist2 is not None else max(abs(self.risk_pd), abs(self.risk_labels))
        gain = self.gain if self.gain is not None else self.risk_pd - self.cross
        alpha, _ = affine_vertex(gain, self.curvature, scale)   # alpha = 1 when both endpoints coincide
        return float(np.clip(alpha, 0.0, 1.0)) if constrained else float(alpha)


@dataclass(frozen=True)
class WeightSchedule:
    """A schedule of ground-truth weights (greedy or joint) and the criterion along it.

    steps : ``(T,)`` the steps ``1..T``.
    gt_weight : ``(T-1,)`` the chosen weight of steps ``2..T``; pass it back to
        ``KernelDistiller(gt_weight=...)`` (with ``allow_any_weight=True`` if unconstrained; see
        :meth:`estimator_params`).
    unconstrained : ``(T-1,)`` greedy: the unconstrained optimum of each step given the weights
        chosen before it; joint: the unconstrained joint optimum. Equal to ``gt_weight`` when
        ``constrained`` is False.
    risk : ``(T,)`` the criterion at steps ``1..T`` under the schedule (``risk[0]`` is the step-1 fit).
    constrained : whether the weights were restricted to ``[0, 1]``.
    criterion : the name of the criterion class that was minimised.
    method : ``"greedy"`` (each step given the earlier ones) or ``"joint"`` (the last step's risk
        over all weights at once).
    """

    steps: np.ndarray
    gt_weight: np.ndarray
    unconstrained: np.ndarray
    risk: np.ndarray
    constrained: bool
    criterion: str
    method: str = "greedy"

    def estimator_params(self) -> dict:
        """``gt_weight``, ``steps`` and ``allow_any_weight`` for :class:`KernelDistiller`'s ``set_params``."""
        outside = bool(np.any((self.gt_weight < 0.0) | (self.gt_weight > 1.0)))
        return {"gt_weight": self.gt_weight.copy(), "steps": int(self.steps[-1]), "allow_any_weight": outside}


class _Criterion:
    """Shared machinery: the endpoint filters of a step, the greedy loop and the ridge copy live here once.

    A criterion is a squared-error risk of the last step's fit. Subclasses give the risk along one
    weight from the spectral core's endpoint filters (:meth:`_risks_along`), and the risk of the
    fit ``sum_j beta_j S^j y`` in the power basis (:meth:`_power_atoms`, for the joint optimum).
    """

    evals: np.ndarray
    ridge: float

    def _risks_along(self, b0, q0, c0, db, dq) -> tuple[float, ...]:  # pragma: no cover
        """``(R0, R1, C, R0 - C, D)`` of the fit with filters ``b0 + alpha db`` (``q0 + alpha dq``,
        ``1 - b = c0 - alpha db``), the last two from the difference alone."""
        raise NotImplementedError

    def _power_atoms(self, T: int):  # pragma: no cover
        """``(base, U, const, norm)`` with ``risk(beta) = (||base + U.T @ beta[1:]||^2 + const) / norm``
        for the fit ``sum_{j=1..T} beta_j S^j y`` (``sum beta = 1``); ``U`` is ``(T-1, N)``."""
        raise NotImplementedError

    def at_ridge(self, ridge: float):
        """The same criterion at another ridge, from the same eigendecomposition (no recomputation:
        everything a criterion precomputes is ridge-free)."""
        other = copy.copy(self)
        other._set_ridge(ridge)
        other._reset_ridge_cache()
        return other

    def _set_ridge(self, ridge, name: str = "ridge"):
        """Validate ``ridge`` (> 0, and not numerically zero against ``self.evals``) and store it."""
        self.ridge = check_ridge_against_spectrum(check_ridge(ridge, name=name), self.evals, name=name)

    def _reset_ridge_cache(self):
        pass

    def step2_quadratics(self, ridges) -> list[StepQuadratic]:
        """The quadratic of step 2 (:meth:`quadratic`) at each of ``ridges``, from the one eigendecomposition."""
        return [self.at_ridge(lam).quadratic(2) for lam in ridges]

    def coordinate_quadratic(self, gt_weight, step: int) -> StepQuadratic:
        """The risk of the LAST step of the schedule ``gt_weight`` (steps ``2..T``) as a quadratic in
        the weight of step ``step`` (``2 <= step <= T``; the schedule's own entry there is ignored)."""
        w = np.atleast_1d(np.asarray(gt_weight, dtype=np.float64))
        return StepQuadratic(*map(float, self._risks_along(*weight_endpoint_filters(self.evals, self.ridge, w, step))))

    def quadratic(self, step: int = 2, previous=()) -> StepQuadratic:
        """The criterion of step ``step`` as a quadratic in its weight, the weights of steps
        ``2..step-1`` being ``previous``."""
        step = check_steps(step, allow_inf=False)
        if step < 2:
            raise ValueError(f"`step` must be >= 2 (step 1 fits the labels and has no weight); got {step}.")
        previous = [float(w) for w in np.atleast_1d(np.asarray(previous, dtype=np.float64))]
        if len(previous) != step - 2:
            raise ValueError(f"`previous` must hold the {step - 2} weight(s) of steps 2..{step - 1}; "
                             f"got {len(previous)}.")
        return self.coordinate_quadratic(previous + [0.0], step)

    def risk(self, gt_weight=()) -> float:
        """The criterion at the last step of the schedule ``gt_weight`` (steps ``2..T``; ``()``: step 1).

        From the last step's own filters: evaluating a step's quadratic at a large weight instead
        would cancel terms of size ``weight^2 * risk``.
        """
        w = np.atleast_1d(np.asarray(gt_weight, dtype=np.float64))
        schedule, T = (w if w.size else 1.0), w.size + 1
        b, q = filter_diagonals(self.evals, self.ridge, schedule, [T])
        c = filter_complements(self.evals, self.ridge, schedule, [T])
        zero = np.zeros_like(b[0])
        return float(self._risks_along(b[0], q[0], c[0], zero, zero)[0])

    def schedule_risk(self, gt_weight) -> np.ndarray:
        """``(T,)``: the criterion at steps ``1..T`` under the schedule ``gt_weight`` (steps ``2..T``)."""
        w = np.atleast_1d(np.asarray(gt_weight, dtype=np.float64))
        return np.array([self.risk(w[:t]) for t in range(len(w) + 1)])

    def power_risk(self, beta) -> float:
        """The criterion of the fit ``sum_j beta_j S^j y`` (``beta`` ``(T,)``, rescaled to sum to 1)."""
        beta = np.asarray(beta, dtype=np.float64)
        beta = beta / beta.sum()
        base, U, const, norm = self._power_atoms(len(beta))
        resid = base + U.T @ beta[1:]
        return float((resid @ resid + const) / norm)


def check_criterion(criterion, *, name: str = "criterion"):
    """Return ``criterion`` if it is a criterion of this module, else raise naming it.

    A fitted :class:`KernelDistiller` (or a Pipeline ending in one) is the usual mistake: the message
    says how to build a criterion from it.
    """
    if isinstance(criterion, _Criterion):
        return criterion
    kinds = "ReferenceRisk, ExpectedTrainingRisk or OneShotRisk (kerneldistill.optimal)"
    if isinstance(criterion, (KernelDistiller, Pipeline)):
        raise TypeError(
            f"`{name}` must be a criterion, {kinds}, not a {type(criterion).__name__}; build one from the fitted "
            f"model, e.g. ReferenceRisk.from_distiller(model, X_val, y_val) (held-out data) or "
            f"OneShotRisk.from_distiller(model) (training data alone).")
    raise TypeError(f"`{name}` must be a criterion, {kinds}; got {criterion!r} ({type(criterion).__name__}).")


def optimal_gt_weight(criterion: _Criterion, step: int = 2, previous=(), *, constrained: bool = True) -> float:
    """The weight of step ``step`` that minimises ``criterion``, the weights of steps ``2..step-1``
    being ``previous`` (closed form ``(R0 - C) / (R0 + R1 - 2C)``).

    ``constrained=True`` (the default, matching :class:`KernelDistiller`'s default
    ``allow_any_weight=False``) clips it to ``[0, 1]``, the optimum there since the risk is a convex
    quadratic in the weight. ``constrained=False`` returns the unconstrained optimum, which
    :class:`KernelDistiller` accepts only with ``allow_any_weight=True``; one so large that float64
    cannot mix it precisely (a ridge tiny next to the spectrum) comes with a
    :class:`~kerneldistill._validation.PrecisionWarning`.
    """
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    w = criterion.quadratic(step, previous).argmin(constrained=constrained)
    warn_imprecise_weights(w, stacklevel=3)
    return w


def greedy_schedule(criterion: _Criterion, steps: int, *, constrained: bool = True) -> WeightSchedule:
    """Greedy optimal weights for steps ``2..steps``: each step minimises ``criterion`` given the
    weights already chosen (not a joint optimum over the whole schedule: see
    :func:`kerneldistill.joint.joint_schedule`). ``constrained`` as in :func:`optimal_gt_weight`
    (including its :class:`~kerneldistill._validation.PrecisionWarning` for huge weights)."""
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    schedule = _greedy_schedule(criterion, steps, constrained)
    warn_imprecise_weights(schedule.gt_weight, stacklevel=3)
    return schedule


def _greedy_schedule(criterion: _Criterion, steps: int, constrained: bool) -> WeightSchedule:
    """:func:`greedy_schedule` on validated arguments, without its warning (for :mod:`kerneldistill.joint`)."""
    T = check_steps(steps, allow_inf=False)
    if T < 2:
        raise ValueError(f"`steps` must be >= 2 (step 1 has no weight to choose); got {T}.")
    chosen, unconstrained, risk = [], [], []
    for t in range(2, T + 1):
        quad = criterion.quadratic(t, chosen)
        if t == 2:
            # Step 1 == step 2 at alpha = 1 (both fit the labels alone), so its risk is risk_labels.
            risk.append(quad.risk_labels)
        best = quad.argmin()
        w = float(np.clip(best, 0.0, 1.0)) if constrained else best
        unconstrained.append(best)
        chosen.append(w)
        risk.append(criterion.risk(chosen))
    return WeightSchedule(
        steps=np.arange(1, T + 1),
        gt_weight=np.array(chosen),
        unconstrained=np.array(unconstrained),
        risk=np.array(risk),
        constrained=bool(constrained),
        criterion=type(criterion).__name__,
    )


# --------------------------------------------------------------------------------------------------
# Input checks shared by the criteria.


def _spectral_inputs(evals, evecs, y, *, y_name: str = "y"):
    """Validated ``(d, V, Y)``: eigenvalues ``(m,)`` clipped at 0, eigenvectors ``(n, m)``, targets 2-D ``(n, k)``."""
    d = check_psd_evals(check_finite_array(evals, name="evals", ndim=(1,)), name="evals")
    V = check_finite_array(evecs, name="evecs", ndim=(2,))
    if V.shape[1] != d.shape[0]:
        raise ValueError(f"`evecs` must be (n_samples, m) with one column per eigenvalue (m = {d.shape[0]}); "
                         f"got shape {V.shape}.")
    if V.shape[1] > V.shape[0]:
        raise ValueError(f"`evecs` must have at most one column per training point (n = {V.shape[0]}); "
                         f"got shape {V.shape}.")
    Y = check_finite_array(y, name=y_name, ndim=(1, 2))
    Y = np.asarray(Y, dtype=np.float64).reshape(Y.shape[0], -1)
    if Y.shape[0] != V.shape[0]:
        raise ValueError(f"`{y_name}` must have one row per training point ({V.shape[0]}); got shape {Y.shape}.")
    return d.astype(np.float64), np.asarray(V, dtype=np.float64), Y


def _project(V, Y):
    """``z = V^T Y`` and the squared norm of the part of ``Y`` outside the span of ``V``.

    The part outside is computed as the residual ``Y - V z`` itself, never as ``||Y||^2 - ||z||^2``:
    for a complete basis that difference is round-off (~1e-14 ||Y||^2, not 0), which the one-shot
    estimate multiplies by ``(1/s0 - 1/s1)^2`` (huge near interpolation). A complete orthonormal
    basis (``m = n``) spans everything, so the part outside is exactly 0.
    """
    z = V.T @ Y  # (m, k)
    if V.shape[1] >= V.shape[0]:
        return z, 0.0
    resid = Y - V @ z  # (n, k): the part of Y outside span(V) (top-k or Nystroem spectra)
    return z, float(np.sum(resid**2))


def _complement_powers(a, e, T: int) -> np.ndarray:
    """``(T, m)``: row ``j`` holds ``c_j = 1 - a^j`` (``j = 0..T-1``; ``c_0 = 0``), from ``c_(j+1) = e + a c_j``
    (positive terms: no cancellation when ``a`` is near 1)."""
    out = np.zeros((T, a.shape[0]))
    for j in range(1, T):
        out[j] = e + a * out[j - 1]
    return out


# The public name of the projection for the other packages (deepdistill's kernel surrogate), so that
# the coefficients and the residual outside span(V) are computed in this one place.
project_onto_basis = _project


# --------------------------------------------------------------------------------------------------
# The three criteria.


class ReferenceRisk(_Criterion):
    """Mean squared error against reference values at reference points.

    ``risk(f) = mean_{i, j} (f_j(x_i^ref) - r_ij)^2`` over the ``p`` reference points and ``k``
    outputs, with ``f(x) = k_x^T V diag(q) V^T y`` (docs/theory.md 2.1). Use the noise-free function for a
    theorem check and held-out labels in practice. The optimal weight is
    ``<f_1 - f_0, r - f_0> / ||f_1 - f_0||^2`` (docs/theory.md 2.3), the same as ``(R0 - C) / D``.

    Parameters
    ----------
    evals, evecs : the training Gram matrix ``K = V diag(d) V^T`` (``evecs`` is ``(n, m)``).
    y : ``(n,)`` or ``(n, k)`` training targets.
    ridge : the kernel ridge penalty (sum-of-squares loss).
    K_ref_train : ``(p, n)`` cross kernel ``K(X_ref, X_train)``.
    reference : ``(p,)`` or ``(p, k)`` reference values.
    """

    def __init__(self, evals, evecs, y, ridge, K_ref_train, reference):
        self.evals, V, Y = _spectral_inputs(evals, evecs, y)
        self._set_ridge(ridge)
        K_ref = check_finite_array(K_ref_train, name="K_ref_train", ndim=(2,))
        if K_ref.shape[1] != V.shape[0]:
            raise ValueError(f"`K_ref_train` must be (n_reference, n_train) with n_train = {V.shape[0]}; "
                             f"got shape {K_ref.shape}.")
        r = check_finite_array(reference, name="reference", ndim=(1, 2))
        r = np.asarray(r, dtype=np.float64).reshape(r.shape[0], -1)
        if r.shape != (K_ref.shape[0], Y.shape[1]):
            raise ValueError(f"`reference` must have shape ({K_ref.shape[0]},) or ({K_ref.shape[0]}, {Y.shape[1]}) "
                             f"(one value per reference point and output); got {np.shape(reference)}.")
        # Precompute P = K_ref V and z = V^T y once: each step then costs O(p m k), at any ridge.
        self._P = np.asarray(K_ref, dtype=np.float64) @ V  # (p, m)
        self._z = V.T @ Y  # (m, k)
        self._r = r

    @classmethod
    def from_distiller(cls, distiller, X_ref, reference):
        """The criterion for a fitted :class:`KernelDistiller` (or a fitted scikit-learn ``Pipeline``
        ending in one: ``X_ref`` then goes through the pipeline's earlier steps) against ``reference``
        at ``X_ref``."""
        model, X_ref = resolve_distiller(distiller, X_ref)
        return cls(model.evals_, model.evecs_, model.y_fit_, model.ridge_, model.kernel_matrix(X_ref), reference)

    def predictions(self, q) -> np.ndarray:
        """``(p, k)`` predictions at the reference points of the fit with prediction diagonal ``q``."""
        return self._P @ (np.asarray(q)[:, None] * self._z)

    def _risks_along(self, b0, q0, c0, db, dq):
        e0 = self.predictions(q0) - self._r
        diff = self.predictions(dq)  # f1 - f0, from the stable difference of the filters
        e1 = e0 + diff
        return np.mean(e0**2), np.mean(e1**2), np.mean(e0 * e1), -np.mean(diff * e0), np.mean(diff**2)

    def step2_quadratics(self, ridges) -> list[StepQuadratic]:
        # All ridges in one matrix product: 2R prediction vectors as one GEMM instead of 2R GEMVs
        # (measured 13x less CPU for 100 ridges at n = 2000).
        lams = [check_ridge_against_spectrum(check_ridge(lam, name="ridges"), self.evals, name="ridges")
                for lam in ridges]
        filters = [weight_endpoint_filters(self.evals, lam, [0.0], 2) for lam in lams]
        Q = np.stack([f[1] for f in filters] + [f[4] for f in filters])  # (2R, m): q0 per ridge, then dq
        preds = np.einsum("pm,rm,mk->rpk", self._P, Q, self._z, optimize=True)  # (2R, p, k)
        R = len(filters)
        e0 = preds[:R] - self._r
        diff = preds[R:]
        e1 = e0 + diff
        stats = [np.mean(e0**2, axis=(1, 2)), np.mean(e1**2, axis=(1, 2)), np.mean(e0 * e1, axis=(1, 2)),
                 -np.mean(diff * e0, axis=(1, 2)), np.mean(diff**2, axis=(1, 2))]
        return [StepQuadratic(*(float(x[i]) for x in stats)) for i in range(R)]

    def _power_atoms(self, T):
        d, lam = self.evals, self.ridge
        denom = d + lam
        c = _complement_powers(d / denom, lam / denom, T)  # (T, m): 1 - a^j
        base = (self.predictions(1.0 / denom) - self._r).ravel()
        # q_j - q_1 = (a^(j-1) - 1) / (d + lam) = -c_(j-1) / (d + lam), j = 2..T
        U = np.stack([self.predictions(-c[j - 1] / denom).ravel() for j in range(2, T + 1)]) if T > 1 \
            else np.zeros((0, base.size))
        return base, U, 0.0, float(base.size)

    def ridge_derivatives(self) -> tuple[float, float, float, float]:
        """``(R, R', R'', D)`` of plain kernel ridge (step 1) in the ridge, at ``self.ridge``.

        ``f = P diag(q) z`` with ``q = 1 / (d + lam)``, so ``f' = -P diag(q^2) z``, ``f'' = 2 P diag(q^3) z``;
        ``R' = 2 <f - r, f'>``, ``R'' = 2 (||f'||^2 + <f - r, f''>)`` (means over points and outputs) and
        ``D = lam^2 ||f'||^2``: the squared distance between the teacher and its pure-distillation
        student, since ``f_PD - f_T = lam df_T/dlam`` ([DPR26]).
        """
        q = 1.0 / (self.evals + self.ridge)
        resid = self.predictions(q) - self._r
        f1, f2 = -self.predictions(q**2), 2.0 * self.predictions(q**3)
        return (float(np.mean(resid**2)), float(2 * np.mean(resid * f1)),
                float(2 * (np.mean(f1**2) + np.mean(resid * f2))), float(self.ridge**2 * np.mean(f1**2)))


class ExpectedTrainingRisk(_Criterion):
    """Expected training-point risk under a known noise variance, in closed form.

    Noise model ``y = y* + e`` with ``E e = 0``, ``Cov e = s^2 I`` (each of the ``k`` outputs). The
    fitted values are ``f(X) = V diag(b) V^T y``, so with ``z* = V^T y*`` and ``V^T e`` having
    covariance ``s^2 I``::

        E (1/(n k)) ||f(X) - y*||^2 = [ sum_i (b_i - 1)^2 ||z*_i||^2 + ||y* - V z*||^2 + k s^2 sum_i b_i^2 ] / (n k)

    (bias plus variance), and the cross term of two fits is the same expression with ``(b_i - 1)^2``
    and ``b_i^2`` replaced by the products of the two fits' factors. The risk is against ``y*`` at
    the training points, not against fresh data (for linear regression on a fixed design this is
    the excess risk ``E ||theta_hat - theta*||^2_Sigma_hat`` of Pareek, Du & Oh 2024). Needs ``y*``:
    an oracle for theory and simulations.

    Parameters
    ----------
    evals, evecs : the training Gram matrix ``K = V diag(d) V^T``.
    y_star : ``(n,)`` or ``(n, k)`` noise-free targets.
    noise_var : ``s^2 >= 0``.
    ridge : the kernel ridge penalty.
    """

    def __init__(self, evals, evecs, y_star, noise_var, ridge):
        self.evals, V, Y = _spectral_inputs(evals, evecs, y_star, y_name="y_star")
        self._set_ridge(ridge)
        noise_var = float(noise_var)
        if not np.isfinite(noise_var) or noise_var < 0:
            raise ValueError(f"`noise_var` must be a finite variance >= 0; got {noise_var!r}.")
        self.noise_var = noise_var
        z, self._perp = _project(V, Y)
        self._z2 = np.sum(z**2, axis=1)  # (m,): ||z*_i||^2 summed over outputs
        self._n, self._k = Y.shape

    @classmethod
    def from_distiller(cls, distiller, y_star, noise_var):
        """The criterion for a fitted :class:`KernelDistiller` (or a ``Pipeline`` ending in one; its
        training points) and noise-free targets."""
        model, _ = resolve_distiller(distiller)
        return cls(model.evals_, model.evecs_, y_star, noise_var, model.ridge_)

    def cross_risk(self, b, c) -> float:
        """``E <f_b(X) - y*, f_c(X) - y*> / (n k)`` for two fitted-value diagonals ``b`` and ``c``
        (``b = c`` gives the expected risk of one fit)."""
        b, c = np.asarray(b), np.asarray(c)
        return self._cross(1.0 - b, b, 1.0 - c, c)

    def _cross(self, cb, b, cc, c) -> float:
        """:meth:`cross_risk` from the residual filters ``cb = 1 - b``, ``cc = 1 - c`` (computed stably)."""
        bias = np.sum(cb * cc * self._z2) + self._perp
        variance = self._k * self.noise_var * np.sum(b * c)
        return float((bias + variance) / (self._n * self._k))

    def _risks_along(self, b0, q0, c0, db, dq):
        b1, c1 = b0 + db, c0 - db
        norm = self._n * self._k
        kv = self._k * self.noise_var
        gain = (np.sum(db * c0 * self._z2) - kv * np.sum(db * b0)) / norm
        dist2 = (np.sum(db * db * self._z2) + kv * np.sum(db * db)) / norm
        return self._cross(c0, b0, c0, b0), self._cross(c1, b1, c1, b1), self._cross(c0, b0, c1, b1), gain, dist2

    def _power_atoms(self, T):
        d, lam = self.evals, self.ridge
        denom = d + lam
        a, e = d / denom, lam / denom
        c = _complement_powers(a, e, T)
        root_z2, root_kv = np.sqrt(self._z2), np.sqrt(self._k * self.noise_var)
        base = np.concatenate([-root_z2 * e, root_kv * a])  # (b - 1) sqrt(z2) and b sqrt(k s^2) at beta = e_1
        # b_j - b_1 = a^j - a = -a c_(j-1): the same shift in both blocks
        U = np.stack([np.concatenate([-root_z2 * a * c[j - 1], -root_kv * a * c[j - 1]]) for j in range(2, T + 1)]) \
            if T > 1 else np.zeros((0, base.size))
        return base, U, self._perp, float(self._n * self._k)

    def ridge_derivatives(self) -> tuple[float, float, float, float]:
        """``(R, R', R'', D)`` of plain kernel ridge (step 1) in the ridge, at ``self.ridge``: as
        :meth:`ReferenceRisk.ridge_derivatives` with ``b = d / (d + lam)``, ``b' = -d / (d + lam)^2``,
        ``b'' = 2 d / (d + lam)^3`` and ``b - 1 = -lam / (d + lam)``."""
        d, lam = self.evals, self.ridge
        denom = d + lam
        b, e = d / denom, lam / denom
        b1, b2 = -d / denom**2, 2.0 * d / denom**3
        norm, kv = self._n * self._k, self._k * self.noise_var
        R = (np.sum(e * e * self._z2) + self._perp + kv * np.sum(b * b)) / norm
        dR = 2.0 * (np.sum(-e * b1 * self._z2) + kv * np.sum(b * b1)) / norm
        d2R = 2.0 * (np.sum((b1 * b1 - e * b2) * self._z2) + kv * np.sum(b1 * b1 + b * b2)) / norm
        D = lam**2 * (np.sum(b1 * b1 * self._z2) + kv * np.sum(b1 * b1)) / norm
        return float(R), float(dR), float(d2R), float(D)


class OneShotRisk(_Criterion):
    """[DPR26]'s one-shot estimate of the prediction risk, from the training data alone.

    At step 2 the fit is ``alpha S y + (1 - alpha) S^2 y`` (``S = V diag(a) V^T`` the teacher's
    smoother). [DPR26] estimate the risks of the two endpoints and their cross term from GCV-type
    corrected residuals ``r_j = (y - S^j y) / (1 - tr(S^j) / n)``: ``R^ = ||r_1||^2 / n``,
    ``R^_pd = ||r_2||^2 / n``, ``C^ = <r_1, r_2> / n`` (divided by ``k`` too for ``k`` outputs). They
    estimate the out-of-sample squared prediction error ``E (y_new - f(x_new))^2`` up to a constant
    (the noise variance) that cancels in the optimum. No held-out data and no refit.

    Later steps: the fit of step ``T`` is ``sum_j beta_j S^j y`` with ``sum_j beta_j = 1``
    (:mod:`kerneldistill.polynomial`), and this class estimates its risk by the same rule term by
    term, ``||sum_j beta_j r_j||^2 / (n k)``. So every schedule gets ONE estimate, a convex quadratic
    in ``beta`` (which :func:`kerneldistill.joint.joint_schedule` minimises) and a quadratic in each
    weight; at step 2 it is exactly [DPR26]'s estimator. [DPR26] analyse only ``j = 1, 2``: for
    ``j >= 3`` it is an extension whose algebra ``tests/test_joint.py`` checks against explicit
    smoother powers, but whose statistical consistency is not established here. (Before this
    version, steps >= 3 corrected the two endpoint smoothers of the step as a whole; that rule is not
    quadratic in the earlier weights and was dropped.)

    [DPR26] state it for linear ridge regression with a 1/n-normalised loss and the teacher weight
    ``xi``; here the ridge is the sum-of-squares ``ridge`` (``ridge = n * lambda_DPR``, see
    :func:`ridge_from_dpr`) and the optimum is returned as the ground-truth weight ``alpha = 1 - xi``
    (see :func:`gt_weight_from_teacher_weight`). The kernel form is checked numerically against the
    oracle in ``tests/test_optimal.py``.

    Numerics: near interpolation every ``r_j`` is close to ``e / mean(e)`` (``e = lam / (d + lam)``,
    tiny), so differences ``r_j - r_1`` are formed from their own expansion,
    ``r_j - r_1 = e (g_j mean(e) - mean(e g_j)) / (s_j s_1)`` with ``g_j = (1 - a^j)/e - j`` from the
    recursion ``g_(j+1) = g_j - e p_j``, ``p_j = (1 - a^j) / e``, never by subtracting the two. At
    the opposite extreme (ridge huge next to the spectrum, ``a`` tiny) this expansion cancels to first
    order in ``a`` instead and keeps about ``16 - log10(1/a)`` digits: 5e-10 relative at [DPR26]'s
    ridge 1e6 with p/n = 10 (``tests/test_near_interpolation.py``).

    Parameters
    ----------
    evals, evecs : the training Gram matrix ``K = V diag(d) V^T``.
    y : ``(n,)`` or ``(n, k)`` training labels.
    ridge : the kernel ridge penalty (sum-of-squares loss).
    """

    def __init__(self, evals, evecs, y, ridge):
        self.evals, V, Y = _spectral_inputs(evals, evecs, y)
        self._set_ridge(ridge)
        z, self._perp = _project(V, Y)
        self._z2 = np.sum(z**2, axis=1)
        self._n, self._k = Y.shape
        self._reset_ridge_cache()

    def _reset_ridge_cache(self):
        self._atoms_cache = None  # (T, base, U) of the largest power basis built so far

    @classmethod
    def from_distiller(cls, distiller):
        """The criterion for a fitted :class:`KernelDistiller` (or a ``Pipeline`` ending in one; its
        training data, no held-out data)."""
        model, _ = resolve_distiller(distiller)
        return cls(model.evals_, model.evecs_, model.y_fit_, model.ridge_)

    def _power_atoms(self, T):
        if self._atoms_cache is not None and self._atoms_cache[0] >= T:
            _, base, U = self._atoms_cache
            return base, U[: T - 1], 0.0, float(self._n * self._k)
        d, lam, n = self.evals, self.ridge, self._n
        missing = n - d.shape[0]  # directions outside span(V): d = 0 there, so e = 1, a = 0, c_j = 1
        denom = d + lam
        a, e = d / denom, lam / denom
        s1 = (np.sum(e) + missing) / n  # 1 - tr(S) / n, from e = 1 - a without subtracting
        p, g = np.ones_like(d), np.zeros_like(d)  # p_1 = 1, g_1 = 0
        rows, perp_rows = [], []
        for j in range(2, T + 1):
            g = g - e * p  # g_j = p_j - j, from g_(j-1) and p_(j-1)
            p = 1.0 + a * p  # p_j = sum_{i<j} a^i, so c_j = 1 - a^j = e p_j
            s_j = (np.sum(e * p) + missing) / n
            gbar = (np.sum(e * g) + missing * (1.0 - j)) / n
            rows.append(e * (g * s1 - gbar) / (s_j * s1))  # r_j - r_1 per eigen-direction
            perp_rows.append(((1.0 - j) * s1 - gbar) / (s_j * s1))  # and outside span(V)
        root_z2, root_perp = np.sqrt(self._z2), np.sqrt(self._perp)
        base = np.concatenate([root_z2 * e / s1, [root_perp / s1]])
        U = np.stack([np.concatenate([root_z2 * u, [root_perp * up]]) for u, up in zip(rows, perp_rows)]) \
            if T > 1 else np.zeros((0, base.size))
        self._atoms_cache = (T, base, U)
        return base, U, 0.0, float(self._n * self._k)

    def coordinate_quadratic(self, gt_weight, step: int) -> StepQuadratic:
        w = np.atleast_1d(np.asarray(gt_weight, dtype=np.float64))
        beta0, dbeta = power_endpoint_coefficients(w, step)
        base, U, _, norm = self._power_atoms(len(beta0))
        rho0 = base + U.T @ beta0[1:]
        drho = U.T @ dbeta[1:]  # sum(dbeta) = 0, so the r_1 terms cancel exactly
        rho1 = rho0 + drho
        return StepQuadratic(float(rho0 @ rho0 / norm), float(rho1 @ rho1 / norm), float(rho0 @ rho1 / norm),
                             float(-(drho @ rho0) / norm), float(drho @ drho / norm))

    def risk(self, gt_weight=()) -> float:
        return self.power_risk(power_coefficients(gt_weight))


# --------------------------------------------------------------------------------------------------
# Conversions at the boundary with [DPR26].


def ridge_from_dpr(ridge_dpr: float, n_samples: int) -> float:
    """Our sum-of-squares ``ridge`` from [DPR26]'s 1/n-normalised penalty: ``ridge = n * lambda_DPR``.

    ``(1/n) ||y - f||^2 + lambda ||f||^2`` has the same minimiser as ``||y - f||^2 + n lambda ||f||^2``.
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"`n_samples` must be an integer >= 1; got {n_samples!r}.")
    return check_ridge(ridge_dpr, name="ridge_dpr") * int(n_samples)


def gt_weight_from_teacher_weight(teacher_weight):
    """Our ground-truth weight from [DPR26]'s teacher weight: ``alpha = 1 - xi`` (works both ways)."""
    if np.ndim(teacher_weight):
        return 1.0 - np.asarray(teacher_weight, dtype=np.float64)
    return 1.0 - float(teacher_weight)
