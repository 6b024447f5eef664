"""Symbolic checks (sympy) of the identities of kernel ridge self-distillation.

Each check proves an identity of ``docs/theory.md`` section 2 for symbolic eigenvalue
``d > 0``, ridge ``lam > 0`` and ground-truth weight ``alpha`` (in ``(0, 1]`` where the identity
needs it), by reducing ``lhs - rhs`` to 0 with :func:`sympy.simplify` or showing that a factored
expression is a product of non-negative factors. Nothing is sampled: a passing check holds for all
values. One eigen-coordinate suffices for the filter identities, since every step is diagonal in the
eigenbasis ([BA21]); the checks that involve a risk use two coordinates, so that cross terms appear.

:func:`run_symbolic_checks` returns ``(name, passed, detail)`` records; ``tests/test_symbolic.py``
and ``examples/symbolic_checks.py`` run them.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import sympy as sp

__all__ = ["SymbolicCheck", "SYMBOLIC_CHECKS", "run_symbolic_checks"]

# Steps checked for the identities stated "for every t": an induction would need sympy to reason
# about a symbolic t in a recursion, which it cannot; the closed forms are checked at symbolic t.
_STEPS = range(1, 7)

d, lam = sp.symbols("d lambda", positive=True)
alpha = sp.Symbol("alpha", positive=True)
t = sp.Symbol("t", integer=True, positive=True)
# alpha in (0, 1] written as 1 / (1 + u), u >= 0, so that sympy's sign assumptions see 1 - alpha >= 0.
u = sp.Symbol("u", nonnegative=True)

a = d / (d + lam)  # step-1 shrinkage
b_inf = alpha * d / (alpha * d + lam)
rate = (1 - alpha) * a


class SymbolicCheck(NamedTuple):
    name: str
    passed: bool
    detail: str


def _recursion(steps: int, weight=alpha):
    """``b^(1) = a, b^(t) = a (alpha + (1 - alpha) b^(t-1))`` ([BA21]; ``filters.filter_diagonals``)."""
    b = [a]
    for _ in range(steps - 1):
        b.append(a * (weight + (1 - weight) * b[-1]))
    return b


def _closed_form(step):
    return b_inf + rate ** (step - 1) * (a - b_inf)


# At a symbolic step t, rate^(t-1) stands as its own symbol (sympy cannot cancel symbolic powers of a
# rational expression reliably); rate^t is then rate^(t-1) * rate.
rate_pow = sp.Symbol("rho_t", nonnegative=True)  # rate^(t-1)
closed_t = b_inf + rate_pow * (a - b_inf)  # b^(t)
closed_t1 = b_inf + rate_pow * rate * (a - b_inf)  # b^(t+1)


def _is_zero(expr) -> bool:
    # cancel() decides rational identities quickly; simplify() is the slower fallback for the rest.
    return sp.cancel(sp.together(expr)) == 0 or sp.simplify(expr) == 0


def _nonnegative(expr) -> bool:
    """True if ``factor(expr)`` is a product/quotient of factors sympy can show are >= 0."""
    return bool(sp.factor(sp.simplify(expr)).is_nonnegative)


def check_explicit_sum_equals_recursion() -> SymbolicCheck:
    """``b^(t) = alpha a sum_(j<t-1) rate^j + rate^(t-1) a`` equals the recursion, t = 1..6."""
    rec = _recursion(max(_STEPS))
    bad = [s for s in _STEPS
           if not _is_zero(alpha * a * sum(rate**j for j in range(s - 1)) + rate ** (s - 1) * a - rec[s - 1])]
    return SymbolicCheck("explicit sum == recursion", not bad,
                         f"t = 1..{max(_STEPS)}" + (f"; fails at t = {bad}" if bad else ""))


def check_closed_form_equals_recursion() -> SymbolicCheck:
    """``b^(t) = b_inf + rate^(t-1) (a - b_inf)`` equals the recursion, t = 1..6, and satisfies it at symbolic t."""
    rec = _recursion(max(_STEPS))
    bad = [s for s in _STEPS if not _is_zero(_closed_form(s) - rec[s - 1])]
    # At symbolic t: the closed form at t + 1 is the recursion applied to the closed form at t.
    symbolic_ok = _is_zero(closed_t1 - a * (alpha + (1 - alpha) * closed_t))
    return SymbolicCheck("closed form == recursion", not bad and symbolic_ok,
                         f"t = 1..{max(_STEPS)} and symbolic t" + (f"; fails at t = {bad}" if bad else "")
                         + ("" if symbolic_ok else "; symbolic-t step fails"))


def check_limit() -> SymbolicCheck:
    """``b^(t) -> b_inf = d / (d + lam/alpha)``: the fixed point of the recursion, contraction rate in [0, 1)."""
    fixed = sp.solve(sp.Eq(sp.Symbol("b"), a * (alpha + (1 - alpha) * sp.Symbol("b"))), sp.Symbol("b"))
    fixed_ok = len(fixed) == 1 and _is_zero(fixed[0] - d / (d + lam / alpha))
    rate_u = rate.subs(alpha, 1 / (1 + u))
    # 0 <= rate and 1 - rate = (alpha d + lam)/(d + lam) > 0, so rate^t -> 0 and b^(t) -> b_inf.
    contraction = _nonnegative(rate_u) and bool(sp.factor(sp.simplify(1 - rate_u)).is_positive)
    at_point = _closed_form(t).subs(alpha, 1 / (1 + u)).subs({d: 1, lam: 1, u: 1})  # alpha = 1/2
    limit_ok = sp.limit(at_point, t, sp.oo) == sp.Rational(1, 3)  # = d / (d + lam / alpha)
    passed = fixed_ok and contraction and limit_ok
    return SymbolicCheck("limit = KRR(ridge/alpha)", passed,
                         f"fixed point {fixed_ok}, 0 <= rate < 1 {contraction}, limit at d=lam=1, alpha=1/2 {limit_ok}")


def check_monotone_decrease() -> SymbolicCheck:
    """``b^(t) - b^(t+1) = rate^(t-1) (1 - rate) (a - b_inf) >= 0`` for alpha in (0, 1]."""
    factored_ok = _is_zero(closed_t - closed_t1 - rate_pow * (1 - rate) * (a - b_inf))
    gap = sp.factor(sp.simplify((a - b_inf).subs(alpha, 1 / (1 + u))))
    one_minus_rate = sp.factor(sp.simplify((1 - rate).subs(alpha, 1 / (1 + u))))
    signs_ok = (bool(gap.is_nonnegative) and bool(one_minus_rate.is_positive)
                and _nonnegative(rate.subs(alpha, 1 / (1 + u))))
    return SymbolicCheck("monotone decrease in t", factored_ok and signs_ok,
                         f"difference factors {factored_ok}; a - b_inf = {gap} >= 0 {signs_ok}")


def check_affine_in_weight() -> SymbolicCheck:
    """The step-t fit is affine in alpha_t, and the optimum of a squared error is ``<f1 - f0, r - f0> / ||f1 - f0||^2``.

    Two eigen-coordinates with their own ``d_i``, teacher factor ``p_i`` (= b^(t-1)) and reference
    ``r_i``; the risk ``sum_i (b_i(alpha) z_i - r_i)^2`` is minimised over alpha_t.
    """
    w = sp.Symbol("w", real=True)  # this step's weight, any real
    ds = sp.symbols("d1 d2", positive=True)
    ps, zs, rs = sp.symbols("p1 p2", real=True), sp.symbols("z1 z2", real=True), sp.symbols("r1 r2", real=True)
    fits = [di / (di + lam) * (w + (1 - w) * pi) * zi for di, pi, zi in zip(ds, ps, zs)]
    affine_ok = all(sp.diff(f, w, 2) == 0 for f in fits)
    f0 = [f.subs(w, 0) for f in fits]
    f1 = [f.subs(w, 1) for f in fits]
    risk = sum((f - r) ** 2 for f, r in zip(fits, rs))
    # The risk is quadratic in w (the fits are affine), so its derivative is curvature * w + slope_0 and
    # the stationary point is -slope_0 / curvature (cheaper than sympy's solve on rational expressions).
    curvature, slope_0 = sp.diff(risk, w, 2), sp.diff(risk, w).subs(w, 0)
    closed = sum((x1 - x0) * (r - x0) for x0, x1, r in zip(f0, f1, rs)) / sum((x1 - x0) ** 2 for x0, x1 in zip(f0, f1))
    optimum_ok = _is_zero(-slope_0 / curvature - closed)
    # Convex: the second derivative is 2 ||f1 - f0||^2, a sum of squares.
    convex_ok = _is_zero(curvature - 2 * sum((x1 - x0) ** 2 for x0, x1 in zip(f0, f1)))
    return SymbolicCheck("affine in weight; optimum", affine_ok and optimum_ok and convex_ok,
                         f"affine {affine_ok}, optimum == <f1-f0, r-f0>/||f1-f0||^2 {optimum_ok}, convex {convex_ok}")


def check_zero_weight_collapse() -> SymbolicCheck:
    """alpha = 0: ``b^(t) = a^t`` (t = 1..6 and the closed form at symbolic t) and ``b_inf = 0``."""
    rec = _recursion(max(_STEPS), weight=0)
    steps_ok = all(_is_zero(rec[s - 1] - a**s) for s in _STEPS)
    closed_ok = _is_zero(_closed_form(t).subs(alpha, 0) - a**t)
    limit_ok = b_inf.subs(alpha, 0) == 0
    return SymbolicCheck("alpha = 0 collapse", steps_ok and closed_ok and limit_ok,
                         f"b^(t) = a^t {steps_ok and closed_ok}, b_inf = 0 {limit_ok}")


def check_pd_minus_teacher_is_ridge_derivative() -> SymbolicCheck:
    """``f_PD - f_T = lam d f_T / d lam`` ([DPR26]): per coordinate ``h^2 - h = lam dh/dlam``, ``h = d/(d+lam)``."""
    h = d / (d + lam)
    ok = _is_zero(h**2 - h - lam * sp.diff(h, lam))
    return SymbolicCheck("f_PD - f_T = lam df_T/dlam", ok, "h^2 - h - lam h'(lam) = 0" if ok else "nonzero")


def check_dpr_optimum() -> SymbolicCheck:
    """[DPR26]: the teacher weight ``xi* = (R - C)/D = -(lam/2) R'(lam) / D`` and ``R*_sd = R - (R - C)^2 / D``.

    ``xi = 1 - alpha`` is the teacher weight of the student ``(1 - xi) f_T + xi f_PD``. The optimum
    and the minimum are polynomial identities in the fits, checked for two coordinates with free
    symbols ``f_T,i``, ``f_PD,i``, ``r_i``; the derivative form then uses ``f_T,i = h_i z_i``,
    ``f_PD,i = h_i^2 z_i`` with ``h_i = d_i / (d_i + lam)``.
    """
    xi = sp.Symbol("xi", real=True)
    fT, fPD, rs = (sp.symbols(f"{s}1 {s}2", real=True) for s in ("fT", "fPD", "r"))

    def terms(ft, fpd, r):
        R = sum((f - x) ** 2 for f, x in zip(ft, r))
        C = sum((f - x) * (g - x) for f, g, x in zip(ft, fpd, r))
        D = R + sum((g - x) ** 2 for g, x in zip(fpd, r)) - 2 * C
        return R, C, D

    R, C, D = terms(fT, fPD, rs)
    student = sum(((1 - xi) * f + xi * g - x) ** 2 for f, g, x in zip(fT, fPD, rs))
    slope = sp.expand(sp.diff(student, xi))  # linear in xi: slope = 2 (xi D - (R - C))
    xi_ok = _is_zero(slope - 2 * (xi * D - (R - C)))
    min_ok = _is_zero(student.subs(xi, (R - C) / D) - (R - (R - C) ** 2 / D))
    ds, zs = sp.symbols("d1 d2", positive=True), sp.symbols("z1 z2", real=True)
    h = [di / (di + lam) for di in ds]
    ft = [hi * zi for hi, zi in zip(h, zs)]
    R_lam, C_lam, _ = terms(ft, [hi**2 * zi for hi, zi in zip(h, zs)], rs)
    deriv_ok = _is_zero((R_lam - C_lam) + lam / 2 * sp.diff(R_lam, lam))
    return SymbolicCheck("[DPR26] xi* = -(lam/2) R'/D", xi_ok and deriv_ok and min_ok,
                         f"xi* = (R-C)/D {xi_ok}, R - C = -(lam/2) R' {deriv_ok}, R*_sd {min_ok}")


SYMBOLIC_CHECKS: dict[str, Callable[[], SymbolicCheck]] = {
    "explicit_sum": check_explicit_sum_equals_recursion,
    "closed_form": check_closed_form_equals_recursion,
    "limit": check_limit,
    "monotone": check_monotone_decrease,
    "affine_optimum": check_affine_in_weight,
    "zero_weight_collapse": check_zero_weight_collapse,
    "pd_derivative": check_pd_minus_teacher_is_ridge_derivative,
    "dpr_optimum": check_dpr_optimum,
}


def run_symbolic_checks() -> list[SymbolicCheck]:
    """Run every check of :data:`SYMBOLIC_CHECKS`; returns ``(name, passed, detail)`` records."""
    return [check() for check in SYMBOLIC_CHECKS.values()]
