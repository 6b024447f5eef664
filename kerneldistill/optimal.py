"""The optimal ground-truth weight of kernel ridge self-distillation, per step and in closed form.

Setting ([BA21] Borup & Andersen 2021, arXiv 2102.13088; ``docs/theory.md`` sections 2.3 and 2.4).
Step ``t`` fits kernel ridge regression to ``alpha_t y + (1 - alpha_t) f^(t-1)(X)``; with the earlier
weights fixed, the step-``t`` fit is affine in ``alpha_t`` (the weight on the ground truth)::

    f_alpha = (1 - alpha) f_0 + alpha f_1

where ``f_1`` (``alpha_t = 1``) is the fit on the labels alone (= the step-1 fit) and ``f_0``
(``alpha_t = 0``) the fit on the teacher's predictions ``f^(t-1)(X)``. Both endpoints are read off the
spectral core (:func:`kerneldistill.filters.filter_diagonals` with ``alpha_t`` set to 0 and to 1), so
nothing here re-derives the filters. Hence any squared-error risk is a quadratic in ``alpha``, fixed by
three numbers, the risks ``R0``, ``R1`` of the endpoints and their cross term ``C``::

    risk(alpha) = (1 - alpha)^2 R0 + alpha^2 R1 + 2 alpha (1 - alpha) C
    alpha*      = (R0 - C) / (R0 + R1 - 2 C),     risk(alpha*) = R0 - (R0 - C)^2 / (R0 + R1 - 2 C)

(this is [DPR26]'s form, Dang, Patil & Rinaldo, arXiv 2602.17565, with the teacher weight
``xi = 1 - alpha``). ``R0 + R1 - 2C`` is the squared distance between the endpoints, so the quadratic
is convex and the optimum on ``[0, 1]`` is ``alpha*`` clipped. The unconstrained optimum may be
negative or above 1; pass it to :class:`KernelDistiller` with ``allow_any_weight=True``.

Three criteria (each a class with the same interface; pick the one whose risk you want minimised):

- :class:`ReferenceRisk`: the mean squared error against given reference values at reference points
  (the noise-free function in a theorem check; held-out labels in practice).
- :class:`ExpectedTrainingRisk`: the expected training-point risk ``E (1/n) ||f(X) - y*||^2`` under the
  noise model ``y = y* + e``, ``Cov e = s^2 I``, in closed form in the eigenbasis (needs ``y*``:
  an oracle for theory and simulations).
- :class:`OneShotRisk`: [DPR26]'s one-shot estimate of the out-of-sample prediction risk from the
  training data alone (GCV-type corrected residuals, no held-out data, no refit).

:func:`greedy_schedule` chains the per-step optima (step 2 first, each step with the earlier ones
fixed); its ``gt_weight`` array can be passed back to :class:`KernelDistiller` as ``gt_weight``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_finite_array, check_psd_evals, check_ridge, check_steps
from .affine import affine_vertex
from .filters import filter_diagonals

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
        """The criterion at one weight or an array of weights."""
        a = np.asarray(gt_weight, dtype=np.float64)
        out = (1.0 - a) ** 2 * self.risk_pd + a**2 * self.risk_labels + 2.0 * a * (1.0 - a) * self.cross
        return float(out) if out.ndim == 0 else out

    def argmin(self, *, constrained: bool = False) -> float:
        """``alpha* = (R0 - C) / D``; with ``constrained=True`` clipped to ``[0, 1]`` (convex in alpha)."""
        # From the risks alone, D is only known to round-off relative to the risks; from the
        # endpoint difference (dist2) it is exact (scale 0: only a zero difference is degenerate).
        scale = 0.0 if self.dist2 is not None else max(abs(self.risk_pd), abs(self.risk_labels))
        gain = self.gain if self.gain is not None else self.risk_pd - self.cross
        alpha, _ = affine_vertex(gain, self.curvature, scale)   # alpha = 1 when both endpoints coincide
        return float(np.clip(alpha, 0.0, 1.0)) if constrained else float(alpha)


@dataclass(frozen=True)
class WeightSchedule:
    """The greedy optimal schedule of ground-truth weights and the criterion along it.

    steps : ``(T,)`` the steps ``1..T``.
    gt_weight : ``(T-1,)`` the chosen weight of steps ``2..T``; pass it back to
        ``KernelDistiller(gt_weight=...)`` (with ``allow_any_weight=True`` if unconstrained).
    unconstrained : ``(T-1,)`` the unconstrained optimum of each step given the weights chosen before
        it (equal to ``gt_weight`` when ``constrained`` is False).
    risk : ``(T,)`` the criterion at steps ``1..T`` under the schedule (``risk[0]`` is the step-1 fit).
    constrained : whether the weights were clipped to ``[0, 1]``.
    criterion : the name of the criterion class that was minimised.
    """

    steps: np.ndarray
    gt_weight: np.ndarray
    unconstrained: np.ndarray
    risk: np.ndarray
    constrained: bool
    criterion: str


class _Criterion:
    """Shared machinery: the endpoint filters of a step and the greedy loop live here once."""

    evals: np.ndarray
    ridge: float

    def _endpoint_risks(self, b0, q0, b1, q1) -> tuple[float, ...]:  # pragma: no cover
        """``(R0, R1, C)``, optionally followed by ``(R0 - C, D)`` computed from ``f1 - f0``."""
        raise NotImplementedError

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
        # The two endpoints alpha_t = 0 and alpha_t = 1, straight from the spectral core.
        b0, q0 = filter_diagonals(self.evals, self.ridge, previous + [0.0], [step])
        b1, q1 = filter_diagonals(self.evals, self.ridge, previous + [1.0], [step])
        return StepQuadratic(*map(float, self._endpoint_risks(b0[0], q0[0], b1[0], q1[0])))


def optimal_gt_weight(criterion: _Criterion, step: int = 2, previous=(), *, constrained: bool = False) -> float:
    """The weight of step ``step`` that minimises ``criterion``, the weights of steps ``2..step-1``
    being ``previous`` (closed form ``(R0 - C) / (R0 + R1 - 2C)``, clipped if ``constrained``)."""
    return criterion.quadratic(step, previous).argmin(constrained=constrained)


def greedy_schedule(criterion: _Criterion, steps: int, *, constrained: bool = False) -> WeightSchedule:
    """Greedy optimal weights for steps ``2..steps``: each step minimises ``criterion`` given the
    weights already chosen (not a joint optimum over the whole schedule)."""
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
        risk.append(quad(w))
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
    Y = check_finite_array(y, name=y_name, ndim=(1, 2))
    Y = np.asarray(Y, dtype=np.float64).reshape(Y.shape[0], -1)
    if Y.shape[0] != V.shape[0]:
        raise ValueError(f"`{y_name}` must have one row per training point ({V.shape[0]}); got shape {Y.shape}.")
    return d.astype(np.float64), np.asarray(V, dtype=np.float64), Y


def _project(V, Y):
    """``z = V^T Y`` and the squared norm of the part of ``Y`` outside the span of ``V`` (0 for a full basis)."""
    z = V.T @ Y  # (m, k)
    perp = max(float(np.sum(Y**2) - np.sum(z**2)), 0.0)  # max: round-off can make it -1e-16
    return z, perp


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
        self.ridge = check_ridge(ridge)
        K_ref = check_finite_array(K_ref_train, name="K_ref_train", ndim=(2,))
        if K_ref.shape[1] != V.shape[0]:
            raise ValueError(f"`K_ref_train` must be (n_reference, n_train) with n_train = {V.shape[0]}; "
                             f"got shape {K_ref.shape}.")
        r = check_finite_array(reference, name="reference", ndim=(1, 2))
        r = np.asarray(r, dtype=np.float64).reshape(r.shape[0], -1)
        if r.shape != (K_ref.shape[0], Y.shape[1]):
            raise ValueError(f"`reference` must have shape ({K_ref.shape[0]},) or ({K_ref.shape[0]}, {Y.shape[1]}) "
                             f"(one value per reference point and output); got {np.shape(reference)}.")
        # Precompute P = K_ref V and z = V^T y once: each step then costs O(p m k).
        self._P = np.asarray(K_ref, dtype=np.float64) @ V  # (p, m)
        self._z = V.T @ Y  # (m, k)
        self._r = r

    @classmethod
    def from_distiller(cls, distiller, X_ref, reference):
        """The criterion for a fitted :class:`KernelDistiller` against ``reference`` at ``X_ref``."""
        return cls(distiller.evals_, distiller.evecs_, distiller.y_fit_, distiller.ridge_,
                   distiller.kernel_matrix(X_ref), reference)

    def predictions(self, q) -> np.ndarray:
        """``(p, k)`` predictions at the reference points of the fit with prediction diagonal ``q``."""
        return self._P @ (np.asarray(q)[:, None] * self._z)

    def _endpoint_risks(self, b0, q0, b1, q1):
        e0 = self.predictions(q0) - self._r
        e1 = self.predictions(q1) - self._r
        diff = self.predictions(np.asarray(q1) - np.asarray(q0))  # f1 - f0, linear in q (see StepQuadratic)
        return np.mean(e0**2), np.mean(e1**2), np.mean(e0 * e1), -np.mean(diff * e0), np.mean(diff**2)


class ExpectedTrainingRisk(_Criterion):
    """Expected training-point risk under a known noise variance, in closed form.

    Noise model ``y = y* + e`` with ``E e = 0``, ``Cov e = s^2 I`` (each of the ``k`` outputs). The
    fitted values are ``f(X) = V diag(b) V^T y``, so with ``z* = V^T y*`` and ``V^T e`` having
    covariance ``s^2 I``::

        E (1/(n k)) ||f(X) - y*||^2 = [ sum_i (b_i - 1)^2 ||z*_i||^2 + ||y* - V z*||^2 + k s^2 sum_i b_i^2 ] / (n k)

    (bias plus variance), and the cross term of two fits is the same expression with ``(b_i - 1)^2``
    and ``b_i^2`` replaced by the products of the two fits' factors. The risk is against ``y*`` at
    the training points, not against fresh data. Needs ``y*``: an oracle for theory and simulations.

    Parameters
    ----------
    evals, evecs : the training Gram matrix ``K = V diag(d) V^T``.
    y_star : ``(n,)`` or ``(n, k)`` noise-free targets.
    noise_var : ``s^2 >= 0``.
    ridge : the kernel ridge penalty.
    """

    def __init__(self, evals, evecs, y_star, noise_var, ridge):
        self.evals, V, Y = _spectral_inputs(evals, evecs, y_star, y_name="y_star")
        self.ridge = check_ridge(ridge)
        noise_var = float(noise_var)
        if not np.isfinite(noise_var) or noise_var < 0:
            raise ValueError(f"`noise_var` must be a finite variance >= 0; got {noise_var!r}.")
        self.noise_var = noise_var
        z, self._perp = _project(V, Y)
        self._z2 = np.sum(z**2, axis=1)  # (m,): ||z*_i||^2 summed over outputs
        self._n, self._k = Y.shape

    @classmethod
    def from_distiller(cls, distiller, y_star, noise_var):
        """The criterion for a fitted :class:`KernelDistiller` (its training points) and noise-free targets."""
        return cls(distiller.evals_, distiller.evecs_, y_star, noise_var, distiller.ridge_)

    def cross_risk(self, b, c) -> float:
        """``E <f_b(X) - y*, f_c(X) - y*> / (n k)`` for two fitted-value diagonals ``b`` and ``c``
        (``b = c`` gives the expected risk of one fit)."""
        b, c = np.asarray(b), np.asarray(c)
        bias = np.sum((b - 1.0) * (c - 1.0) * self._z2) + self._perp
        variance = self._k * self.noise_var * np.sum(b * c)
        return float((bias + variance) / (self._n * self._k))

    def _endpoint_risks(self, b0, q0, b1, q1):
        b0, b1 = np.asarray(b0), np.asarray(b1)
        db = b1 - b0                               # f1 - f0 = V diag(db) V^T y: the difference, stably
        norm = self._n * self._k
        gain = -(np.sum(db * (b0 - 1.0) * self._z2) + self._k * self.noise_var * np.sum(db * b0)) / norm
        dist2 = (np.sum(db * db * self._z2) + self._k * self.noise_var * np.sum(db * db)) / norm
        return self.cross_risk(b0, b0), self.cross_risk(b1, b1), self.cross_risk(b0, b1), gain, dist2


class OneShotRisk(_Criterion):
    """[DPR26]'s one-shot estimate of the prediction risk, from the training data alone.

    For each endpoint fit (a linear smoother ``L = V diag(b) V^T`` of the labels) the GCV-type
    corrected residual is ``r_L = (y - L y) / (1 - tr L / n)``; the risks and the cross term are
    estimated by ``R^ = ||r_1||^2 / n``, ``R^_pd = ||r_0||^2 / n`` and ``C^ = <r_1, r_0> / n``
    (divided by ``k`` too for ``k`` outputs). They estimate the out-of-sample squared prediction
    error ``E (y_new - f(x_new))^2`` up to a constant (the noise variance) that cancels in the optimum.
    No held-out data and no refit: in the eigenbasis ``||(I - L) y||^2 = sum_i (1 - b_i)^2 ||z_i||^2
    + ||y - V z||^2`` and ``tr L = sum_i b_i``.

    At step 2 this is exactly [DPR26]'s estimator (teacher ``S y``, pure distillation ``S^2 y``), in
    kernel form. [DPR26] state it for linear ridge regression with a 1/n-normalised loss and the
    teacher weight ``xi``; here the ridge is the sum-of-squares ``ridge`` (``ridge = n * lambda_DPR``,
    see :func:`ridge_from_dpr`) and the optimum is returned as the ground-truth weight
    ``alpha = 1 - xi`` (see :func:`gt_weight_from_teacher_weight`). Later steps apply the same
    correction to the two endpoint smoothers of the step: an extension that [DPR26] do not analyse.
    The kernel form is checked numerically against the oracle in ``tests/test_optimal.py``.

    Parameters
    ----------
    evals, evecs : the training Gram matrix ``K = V diag(d) V^T``.
    y : ``(n,)`` or ``(n, k)`` training labels.
    ridge : the kernel ridge penalty (sum-of-squares loss).
    """

    def __init__(self, evals, evecs, y, ridge):
        self.evals, V, Y = _spectral_inputs(evals, evecs, y)
        self.ridge = check_ridge(ridge)
        z, self._perp = _project(V, Y)
        self._z2 = np.sum(z**2, axis=1)
        self._n, self._k = Y.shape

    @classmethod
    def from_distiller(cls, distiller):
        """The criterion for a fitted :class:`KernelDistiller` (its training data, no held-out data)."""
        return cls(distiller.evals_, distiller.evecs_, distiller.y_fit_, distiller.ridge_)

    def _endpoint_risks(self, b0, q0, b1, q1):
        n = self._n
        # tr L < n always: b_i < 1 for ridge > 0, so the corrections never divide by zero.
        s0 = 1.0 - np.sum(b0) / n
        s1 = 1.0 - np.sum(b1) / n
        norm = n * self._k

        def inner(u, v):  # <(I - L_u) y, (I - L_v) y>
            return np.sum((1.0 - u) * (1.0 - v) * self._z2) + self._perp

        # r0 - r1 in the eigenbasis (coefficient of z_i, and of the part of y outside span V): the
        # difference is formed per coefficient, not from the risks (see StepQuadratic).
        c0, c1 = (1.0 - b0) / s0, (1.0 - b1) / s1
        dc, dperp = c0 - c1, 1.0 / s0 - 1.0 / s1
        gain = (np.sum(c0 * dc * self._z2) + dperp * self._perp / s0) / norm
        dist2 = (np.sum(dc * dc * self._z2) + dperp * dperp * self._perp) / norm
        return (inner(b0, b0) / (s0 * s0 * norm), inner(b1, b1) / (s1 * s1 * norm),
                inner(b0, b1) / (s0 * s1 * norm), gain, dist2)


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
