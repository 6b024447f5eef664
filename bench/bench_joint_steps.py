"""Cost of :func:`kerneldistill.joint.joint_schedule` against the number of steps (and greedy_schedule's).

The joint optimum is polished by exact coordinate sweeps; one sweep over the ``T - 1`` weights costs
O(T^2 m) (each coordinate's quadratic runs the filter recursion over all ``T`` steps), and the
fallback may need up to 500 sweeps, so the cost grows about as T^2 to T^3. This prints the wall time
of ``joint_schedule`` and ``greedy_schedule`` for each criterion and each ``T`` on one problem, which is
where ``kerneldistill.joint.MAX_JOINT_STEPS`` (the largest ``steps`` accepted) comes from.

Usage: OMP_NUM_THREADS=1 python bench/bench_joint_steps.py [--n 40] [--steps 10 25 50 100 150 200] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kerneldistill.estimator import KernelDistiller
from kerneldistill.joint import joint_schedule
from kerneldistill.optimal import ExpectedTrainingRisk, OneShotRisk, ReferenceRisk, greedy_schedule


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="training points (the BA21 toy: sin(2 pi x) + noise)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100, 150, 200])
    parser.add_argument("--quick", action="store_true", help="steps 5 and 10 only (seconds; the smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = [5, 10]
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(args.n, 1))
    y_star = np.sin(2 * np.pi * X[:, 0])
    y = y_star + 0.1 * rng.standard_normal(args.n)
    model = KernelDistiller("rbf", ridge=0.1, gamma=10.0).fit(X, y)
    X_val = rng.uniform(size=(30, 1))
    criteria = {
        "ReferenceRisk": ReferenceRisk.from_distiller(model, X_val, np.sin(2 * np.pi * X_val[:, 0])),
        "ExpectedTrainingRisk": ExpectedTrainingRisk.from_distiller(model, y_star, 0.01),
        "OneShotRisk": OneShotRisk.from_distiller(model),
    }
    print(f"n = {args.n}, m = {model.n_components_} eigenpairs; wall seconds (one thread)")
    print(f"{'criterion':22s} {'steps':>6s} {'joint_s':>9s} {'greedy_s':>9s} {'joint/greedy':>12s}")
    for name, crit in criteria.items():
        for T in args.steps:
            t0 = time.perf_counter()
            joint_schedule(crit, T)
            t1 = time.perf_counter()
            greedy_schedule(crit, T)
            t2 = time.perf_counter()
            print(f"{name:22s} {T:6d} {t1 - t0:9.2f} {t2 - t1:9.3f} {(t1 - t0) / (t2 - t1):12.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
