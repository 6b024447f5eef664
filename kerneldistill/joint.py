"""Jointly optimal weight schedules: the weights of steps ``2..T`` that minimise the risk of step ``T``.

:func:`kerneldistill.optimal.greedy_schedule` picks each step's weight given the earlier ones; the
last step's risk is then not minimised over all schedules (on [BA21]'s toy, 3 steps: greedy 0.14889,
joint 0.14765 against ``sin(2 pi x)``). :func:`joint_schedule` minimises it jointly.

Method and guarantee. The fit of step ``T`` is ``sum_{j=1..T} beta_j S^j y`` with ``sum beta = 1``
(:mod:`kerneldistill.polynomial`), so every criterion of :mod:`kerneldistill.optimal` is a convex
quadratic in ``beta``:

- unconstrained weights reach every ``beta`` of the hyperplane ``sum beta = 1`` except a set of
  measure zero, so the joint optimum is a linear least-squares problem in ``beta_2..beta_T``
  (``scipy.linalg.lstsq``);
- weights in ``[0, 1]`` reach exactly the ``beta`` of the probability simplex, so the constrained
  joint optimum is the convex QP ``min ||sum_j beta_j A_j||^2`` over the simplex. It is solved exactly
  by one non-negative least-squares problem (``scipy.optimize.nnls``, Lawson-Hanson):
  ``u = argmin_{u >= 0} ||[A; 1^T] u - [0; 1]||`` gives ``beta = u / sum(u)`` (for a fixed total
  ``t = sum u`` the first block is ``t^2`` times the simplex problem, so the minimiser is ``t beta*``);
- ``beta`` is mapped back to weights (:func:`~kerneldistill.polynomial.schedule_from_power_coefficients`)
  and, with the greedy schedule as a second start, polished by exact coordinate minimisation (the
  last step's risk is a convex quadratic in each weight given the others,
  :meth:`~kerneldistill.optimal.ReferenceRisk.coordinate_quadratic`), which never increases it.

So the result is the global joint optimum up to round-off, and never worse than the greedy
schedule (both are evaluated by the same :meth:`risk` and the better one is returned).

Limits, stated honestly. Many steps over close eigenvalues make the power basis ill-conditioned
(it is a Krylov basis): the optimal ``beta`` then has huge entries and the weights that reach it
are huge too, and neither the filter recursion nor the power basis can evaluate such a schedule to
full precision. The least-squares solve is therefore repeated with singular-value cut-offs
(``_LSTSQ_CUTOFFS``) and a candidate is kept only if its risk from the filter recursion and from the
power basis agree to ``_RELIABLE_RTOL``; if none does, the greedy schedule is polished by coordinate
descent instead, which is then a coordinate-wise minimum, not a certified global one. Where the
optimal ``beta`` lies on the measure-zero set that no finite schedule reaches, only the infimum is
approached. In every case the risk returned is that of the weights returned, which is what
:class:`KernelDistiller` reproduces.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize

from ._validation import check_bool, check_steps, warn_imprecise_weights
from .optimal import WeightSchedule, _greedy_schedule, check_criterion
from .polynomial import power_coefficients, schedule_from_power_coefficients

__all__ = ["joint_schedule", "joint_power_coefficients", "MAX_JOINT_STEPS"]

# The largest `steps` joint_schedule accepts. Its cost grows about as steps^2 to steps^3 (each
# coordinate of a sweep reruns the filter recursion over all steps, a sweep visits every step, and
# the fallback may sweep hundreds of times) and with the number of eigenpairs m. Measured by
# bench/bench_joint_steps.py (one thread, a shared 2-core machine; wall seconds, joint / greedy), for
# ReferenceRisk, ExpectedTrainingRisk, OneShotRisk:
#   n = m = 40:   100 steps 2.3 / 0.11, 3.6 / 0.08, 1.2 / 0.05;  200 steps 14 / 0.5, 11.7 / 0.17, 5.7 / 0.11
#   n = m = 400:  100 steps 5.9 / 0.25, 10.6 / 0.4, 8.9 / 0.17;  200 steps 40 / 1.0, 38 / 1.2, 20 / 0.46
# and 1000 steps ran for more than 5 minutes (issue 18), where greedy_schedule takes 11-46 s. Beyond
# a few tens of steps the power basis is too ill-conditioned for the certified optimum anyway (module
# docstring), so the extra steps buy a coordinate polish of the greedy schedule, not a global optimum.
MAX_JOINT_STEPS = 100

# Coordinate sweeps stop when a sweep gains less than this fraction of the risk (each sweep is exact
# 1-D minimisations, so the risk is monotone; the caps only bound slow zig-zags in a flat valley: a
# start at the least-squares optimum needs one or two sweeps, the greedy fallback may need many).
_SWEEP_RTOL = 1e-13
_POLISH_SWEEPS, _FALLBACK_SWEEPS = 20, 500
# Cut-offs (relative to the largest singular value) of the least-squares solve. Ill-conditioned
# power bases (many steps, close eigenvalues) give huge coefficients, whose weights the filter
# recursion cannot evaluate: each cut-off is a candidate and the best reliable one wins.
_LSTSQ_CUTOFFS = (None, 1e-12, 1e-9, 1e-6)
# A schedule's risk is trusted when the filter recursion and the power basis, two computations with
# different round-off, agree to this relative tolerance (huge weights make both cancel).
_RELIABLE_RTOL = 1e-7


def _power_optimum(criterion, T: int, constrained: bool, cutoff=None) -> np.ndarray:
    base, U, _, _ = criterion._power_atoms(T)
    if not constrained:
        # min_gamma ||base + U^T gamma||, gamma = beta_2..T (beta_1 = 1 - sum gamma is implicit in base)
        gamma = scipy.linalg.lstsq(U.T, -base, cond=cutoff, check_finite=False)[0]
        return np.concatenate([[1.0 - gamma.sum()], gamma])
    atoms = np.vstack([base, base[None, :] + U]).T  # (N, T): the residual of beta = e_j
    scale = max(float(np.linalg.norm(atoms)), np.finfo(np.float64).tiny)  # the minimiser is scale-free
    A = np.vstack([atoms / scale, np.ones((1, T))])
    rhs = np.zeros(A.shape[0])
    rhs[-1] = 1.0
    u = scipy.optimize.nnls(A, rhs)[0]
    return u / u.sum()


def joint_power_coefficients(criterion, steps: int, *, constrained: bool = True) -> np.ndarray:
    """``beta`` ``(T,)`` of the joint optimum over all schedules of ``steps`` steps (``sum beta = 1``).

    Unconstrained: least squares over ``sum beta = 1``; constrained (weights in [0, 1]): the simplex,
    by NNLS. See the module docstring.
    """
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    T = check_steps(steps, allow_inf=False)
    if T == 1:
        return np.array([1.0])
    return _power_optimum(criterion, T, constrained)


def _coordinate_descent(criterion, weights, constrained: bool, max_sweeps: int):
    """Exact coordinate minimisation of the last step's risk, from ``weights``; returns ``(weights, risk)``."""
    w = np.array(weights, dtype=np.float64)
    best_w, best = w.copy(), criterion.risk(w)
    for _ in range(max_sweeps):
        for t in range(2, len(w) + 2):
            w[t - 2] = criterion.coordinate_quadratic(w, t).argmin(constrained=constrained)
        risk = criterion.risk(w)
        gain = best - risk
        if risk < best:
            best_w, best = w.copy(), risk
        if not gain > _SWEEP_RTOL * abs(best):
            break
    return best_w, best


def _reliable(criterion, weights, risk) -> bool:
    if not (np.all(np.isfinite(weights)) and np.isfinite(risk)):
        return False
    other = criterion.power_risk(power_coefficients(weights))
    return abs(other - risk) <= _RELIABLE_RTOL * max(abs(risk), np.finfo(np.float64).tiny)


def _joint_weights(criterion, T, constrained, greedy_weights):
    """The best reliable candidate: greedy, and the power-basis optimum (at each cut-off) polished."""
    candidates = [(np.asarray(greedy_weights, dtype=np.float64), criterion.risk(greedy_weights))]
    cutoffs = (None,) if constrained else _LSTSQ_CUTOFFS
    found = False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for cutoff in cutoffs:
            beta = _power_optimum(criterion, T, constrained, cutoff)
            if not (np.all(np.isfinite(beta)) and abs(beta.sum()) > 0.5):  # sum is 1 unless overwhelmed
                continue
            w = schedule_from_power_coefficients(beta)
            if constrained:
                w = np.clip(w, 0.0, 1.0)  # beta in the simplex gives weights in [0, 1] up to round-off
            if not np.all(np.isfinite(w)):
                continue
            w, risk = _coordinate_descent(criterion, w, constrained, _POLISH_SWEEPS)
            if _reliable(criterion, w, risk):
                candidates.append((w, risk))
                found = True
    if not found:
        candidates.append(_coordinate_descent(criterion, greedy_weights, constrained, _FALLBACK_SWEEPS))
    return min(candidates, key=lambda c: c[1])


def joint_schedule(criterion, steps: int, *, constrained: bool = True) -> WeightSchedule:
    """The schedule of weights for steps ``2..steps`` that minimises ``criterion`` at the LAST step.

    ``criterion`` is any criterion of :mod:`kerneldistill.optimal` (``ReferenceRisk``,
    ``ExpectedTrainingRisk``, ``OneShotRisk``). ``constrained=True`` (the default, as
    :class:`KernelDistiller` refuses other weights by default) keeps every weight in ``[0, 1]``;
    ``constrained=False`` allows any real weight (pass the result on with ``allow_any_weight=True``,
    or use :meth:`WeightSchedule.estimator_params`).

    Guarantee (see the module docstring): the global joint optimum up to round-off, and never worse
    than :func:`greedy_schedule` with the same ``constrained``. Intermediate steps are not optimised:
    ``risk[:-1]`` are what the schedule gives there. ``unconstrained`` holds the unconstrained joint
    optimum (equal to ``gt_weight`` when ``constrained`` is False). Unconstrained weights too large for
    float64 to mix precisely (a ridge tiny next to the spectrum) come with a
    :class:`~kerneldistill._validation.PrecisionWarning`.

    Cost: about ``steps^2`` to ``steps^3``, and growing with the number of eigenpairs (exact coordinate
    sweeps, each coordinate rerunning the filter recursion over all steps). Measured with
    ``bench/bench_joint_steps.py`` (one thread): 100 steps 1.2-3.6 s at n = 40 and 6-11 s at n = 400;
    200 steps 6-14 s and 20-40 s; :func:`greedy_schedule` is 20-80x cheaper. ``steps`` above
    :data:`MAX_JOINT_STEPS` (100) is refused: use :func:`greedy_schedule` there.
    """
    check_criterion(criterion)
    constrained = check_bool(constrained, name="constrained")
    T = check_steps(steps, allow_inf=False)
    if T < 2:
        raise ValueError(f"`steps` must be >= 2 (step 1 has no weight to choose); got {T}.")
    if T > MAX_JOINT_STEPS:
        raise ValueError(
            f"`steps`={T} is more than joint_schedule accepts ({MAX_JOINT_STEPS}): its cost grows as steps^2 to "
            f"steps^3 (measured 20-40 s at 200 steps with 400 training points, over 5 minutes reported at 1000). Use "
            f"greedy_schedule(criterion, {T}) (each step's optimum given the earlier ones; 20-80x cheaper), or at "
            f"most {MAX_JOINT_STEPS} steps.")
    greedy = _greedy_schedule(criterion, T, constrained)
    weights, _ = _joint_weights(criterion, T, constrained, greedy.gt_weight)
    if constrained:
        free = _greedy_schedule(criterion, T, False)
        unconstrained, _ = _joint_weights(criterion, T, False, free.gt_weight)
    else:
        unconstrained = weights
        warn_imprecise_weights(weights, stacklevel=2)
    return WeightSchedule(
        steps=np.arange(1, T + 1),
        gt_weight=weights,
        unconstrained=np.array(unconstrained),
        risk=criterion.schedule_risk(weights),
        constrained=bool(constrained),
        criterion=type(criterion).__name__,
        method="joint",
    )
