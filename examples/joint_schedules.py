"""Greedy against jointly optimal weight schedules: [BA21]'s toy, and a Pareek, Du & Oh construction.

Run: `python examples/joint_schedules.py [--fast]`.

1. The toy problem of Borup & Andersen (risk against sin(2 pi x)): the risk of the last step of
   greedy and joint schedules for T = 2..6 steps, weights in [0, 1] and unconstrained.
2. The fixed-design construction of `kerneldistill.pareek` (distinct singular values, target along the
   smallest one): excess risk of ridge at its best ridge, 1-step self-distillation, and k-step
   self-distillation with greedy and with joint weights (each at its own best ridge), for k = 1..d+1,
   beside the best diagonal filter (a lower bound on all of them).

Exits with 1 if the joint schedule is ever worse than the greedy one, or than ridge at its own best
ridge (and if any risk falls below the lower bound, which would be a numerical error).
"""
import argparse
import sys
import time

from kerneldistill.joint import joint_schedule
from kerneldistill.optimal import ReferenceRisk, greedy_schedule
from kerneldistill.pareek import pareek_construction, pareek_table
from kerneldistill.toy import toy_distiller, toy_eval_points, toy_truth

RTOL = 1e-12  # "never worse" allows round-off only
# A schedule with weights in the thousands is evaluated to about 1e-6 relative (the filter recursion
# multiplies round-off by |1 - weight| per step; measured 1.2e-6 at d = 6, k = 7), so a risk at the lower
# bound may touch it from below by that much.
BOUND_RTOL = 1e-5


def _weight(x: float) -> str:
    """A weight to 3 significant digits; a zero as ``0`` (the solver may return -0.0, which prints ``-0``)."""
    return "0" if x == 0 else f"{x:.3g}"


def toy_rows(max_steps: int = 6):
    model = toy_distiller()
    X_eval = toy_eval_points()
    crit = ReferenceRisk.from_distiller(model, X_eval, toy_truth(X_eval))
    rows = []
    for constrained in (True, False):
        for T in range(2, max_steps + 1):
            greedy = greedy_schedule(crit, T, constrained=constrained)
            joint = joint_schedule(crit, T, constrained=constrained)
            rows.append((constrained, T, greedy.risk[-1], joint.risk[-1], joint.gt_weight))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="d = 4 only (a few seconds)")
    args = parser.parse_args(argv)
    dims = (4,) if args.fast else (4, 6, 8)
    failures = []

    print("== [BA21] toy, risk of the last step against sin(2 pi x)")
    print(f"{'weights':>13} {'T':>2} {'greedy':>9} {'joint':>9}  joint weights (steps 2..T)")
    for constrained, T, g, j, w in toy_rows():
        print(f"{'in [0, 1]' if constrained else 'any':>13} {T:>2} {g:9.5f} {j:9.5f}  "
              + " ".join(_weight(x) for x in w))
        if j > g * (1 + RTOL):
            kind = "constrained" if constrained else "unconstrained"
            failures.append(f"toy T={T} ({kind}): joint {j} > greedy {g}")

    for dim in dims:
        started = time.perf_counter()
        construction = pareek_construction(dim)
        rows = pareek_table(construction)
        print(f"\n== Pareek et al. construction: d = {dim}, n = {construction.X.shape[0]}, singular values^2 / n = "
              f"2^-i, target along the smallest, snr 100 ({time.perf_counter() - started:.1f} s)")
        print(f"best diagonal filter (lower bound): {rows[0].lower_bound:.4f}; ridge at its best ridge "
              f"{rows[0].ridge:.3g}: {rows[0].ridge_risk:.4f}; 1-step SD at its best ridge: "
              f"{rows[0].one_step_risk:.4f}")
        print(f"{'k':>2} {'greedy k-step':>13} {'joint k-step':>12} {'ridge/joint':>11} {'joint ridge':>11}")
        for r in rows:
            print(f"{r.k:>2} {r.greedy_risk:13.4f} {r.joint_risk:12.4f} {r.ridge_risk / r.joint_risk:11.2f} "
                  f"{r.joint_ridge:11.3g}")
            if r.joint_risk > r.greedy_risk * (1 + RTOL):
                failures.append(f"d={dim} k={r.k}: joint {r.joint_risk} > greedy {r.greedy_risk}")
            if r.joint_risk > r.ridge_risk * (1 + RTOL):
                failures.append(f"d={dim} k={r.k}: joint {r.joint_risk} > best ridge {r.ridge_risk}")
            if r.joint_risk < r.lower_bound * (1 - BOUND_RTOL):
                failures.append(f"d={dim} k={r.k}: joint {r.joint_risk} below the lower bound {r.lower_bound}")

    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    print(f"\n{'FAIL' if failures else 'PASS'}: joint never worse than greedy or than the best ridge "
          f"({len(failures)} failure(s))")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
