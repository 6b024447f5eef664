"""The ridge x weight grid from one eigendecomposition against a per-ridge recomputation.

Prints, measured in one run, the time of the same table (for each of --ridges ridges: the held-out
risk of kernel ridge, [DPR26]'s optimal weight of step 2 and the risk there, all against a held-out
set) computed two ways, and their ratio:

- toolkit: ``KernelDistiller.fit`` (one eigendecomposition) + ``ReferenceRisk`` + ``ridge_weight_grid``;
- per-ridge recomputation, written here as [DPR26]'s public code does it (a new factorisation for
  every ridge of the grid): for each ridge, factor ``K + lam I`` (Cholesky, the cheapest honest
  per-ridge solve; an explicit inverse, as their linear code forms for ``X^T X + n lam I``, would cost
  more), solve for the teacher, refit on the teacher's fitted values (pure distillation), predict
  both on the held-out points and form ``R``, ``R_pd``, ``C`` and ``xi* = (R - C) / (R + R_pd - 2C)``.

Two settings: an RBF kernel (n x n per ridge), and linear ridge with p < n, where the reference
inverts the p x p matrix ``X^T X + lam I`` per ridge as their code does (the toolkit still works on
the n x n Gram matrix, so there the per-ridge route can be cheaper: the table says so if it is).
Both sides get the same precomputed kernel matrices; the tables must agree (checked, printed).

Usage: python bench/bench_ridge_grid.py [--n 2000] [--ridges 100] [--p 500] [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import scipy.linalg
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill.estimator import KernelDistiller
from kerneldistill.optimal import ReferenceRisk
from kerneldistill.ridge_path import ridge_weight_grid


def _best_time(fn, repeats):
    """Minimum (wall, CPU) seconds over ``repeats`` calls, and the last result."""
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return (wall, cpu), out


def _table(ridge_risk, pd_risk, cross):
    """``(R, alpha*, R_sd)`` per ridge from the endpoint risks (gt_weight = 1 - xi)."""
    R, Rp, C = map(np.asarray, (ridge_risk, pd_risk, cross))
    D = R + Rp - 2 * C
    xi = (R - C) / D
    return np.stack([R, 1 - xi, R - (R - C) ** 2 / D])


def per_ridge_kernel(K, y, K_val, y_val, ridges):
    """Their route in kernel form: one Cholesky factorisation of ``K + lam I`` per ridge."""
    R, Rp, C = [], [], []
    n = len(y)
    for lam in ridges:
        factor = scipy.linalg.cho_factor(K + lam * np.eye(n), check_finite=False)
        coef = scipy.linalg.cho_solve(factor, y, check_finite=False)  # teacher
        coef_pd = scipy.linalg.cho_solve(factor, K @ coef, check_finite=False)  # refit on its fitted values
        e, e_pd = K_val @ coef - y_val, K_val @ coef_pd - y_val
        R.append(e @ e / len(y_val)), Rp.append(e_pd @ e_pd / len(y_val)), C.append(e @ e_pd / len(y_val))
    return _table(R, Rp, C)


def per_ridge_linear(X, y, X_val, y_val, ridges):
    """Their route for linear ridge: a p x p inverse of ``X^T X + lam I`` per ridge."""
    R, Rp, C = [], [], []
    G, Xty = X.T @ X, X.T @ y
    for lam in ridges:
        inv = np.linalg.inv(G + lam * np.eye(G.shape[0]))
        beta = inv @ Xty
        beta_pd = inv @ (X.T @ (X @ beta))
        e, e_pd = X_val @ beta - y_val, X_val @ beta_pd - y_val
        R.append(e @ e / len(y_val)), Rp.append(e_pd @ e_pd / len(y_val)), C.append(e @ e_pd / len(y_val))
    return _table(R, Rp, C)


def toolkit(K, y, K_val, y_val, ridges):
    model = KernelDistiller("precomputed", ridge=1.0).fit(K, y)
    grid = ridge_weight_grid(ReferenceRisk.from_distiller(model, K_val, y_val), ridges, constrained=False)
    return np.stack([grid.ridge_risk, grid.gt_weight, grid.sd_risk])


def _compare(name, ref_fn, tool_fn, repeats):
    t_ref, ref = _best_time(ref_fn, repeats)
    t_tool, tool = _best_time(tool_fn, repeats)
    err = float(np.max(np.abs(tool - ref) / np.abs(ref)))
    print(f"{name}: per-ridge recomputation wall {t_ref[0]:7.3f} s, CPU {t_ref[1]:7.3f} s | toolkit wall "
          f"{t_tool[0]:7.3f} s, CPU {t_tool[1]:7.3f} s | speed-up {t_ref[0] / t_tool[0]:.1f}x wall, "
          f"{t_ref[1] / t_tool[1]:.1f}x CPU | tables agree to {err:.1e} (relative)")
    assert err < 1e-6, f"{name}: the two tables disagree ({err:.1e})"
    return t_ref[1] / t_tool[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="training points (default 2000; 300 with --quick)")
    parser.add_argument("--ridges", type=int, default=None, help="ridges in the grid (default 100; 20 with --quick)")
    parser.add_argument("--p", type=int, default=None,
                        help="features of the linear setting (default 500; 50 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: leave as is)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads, user_api="blas"):
            return _run(args)
    return _run(args)


def _run(args):
    n = args.n or (300 if args.quick else 2000)
    n_ridges = args.ridges or (20 if args.quick else 100)
    p = args.p or (50 if args.quick else 500)
    repeats = 1 if n >= 1000 else 3
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; n = {n}, "
          f"{n_ridges} ridges, held-out n = {n // 4}")
    rng = np.random.default_rng(0)
    X, X_val = rng.uniform(size=(n, 2)), rng.uniform(size=(n // 4, 2))
    f = lambda A: np.sin(2 * np.pi * A[:, 0]) * np.cos(np.pi * A[:, 1])  # noqa: E731
    y, y_val = f(X) + 0.3 * rng.standard_normal(n), f(X_val) + 0.3 * rng.standard_normal(n // 4)
    K, K_val = rbf_kernel(X, gamma=10.0), rbf_kernel(X_val, X, gamma=10.0)
    ridges = np.logspace(-4, 2, n_ridges)
    kernel_ratio = _compare("RBF kernel (n x n per ridge)", lambda: per_ridge_kernel(K, y, K_val, y_val, ridges),
                            lambda: toolkit(K, y, K_val, y_val, ridges), repeats)
    Z, Z_val = rng.standard_normal((n, p)), rng.standard_normal((n // 4, p))
    theta = rng.standard_normal(p) / np.sqrt(p)
    yl, yl_val = Z @ theta + rng.standard_normal(n), Z_val @ theta + rng.standard_normal(n // 4)
    ridges_l = float(n) * np.logspace(-4, 1, n_ridges)
    linear_ratio = _compare(f"linear, p = {p} (p x p inverse per ridge)",
                            lambda: per_ridge_linear(Z, yl, Z_val, yl_val, ridges_l),
                            lambda: toolkit(Z @ Z.T, yl, Z_val @ Z.T, yl_val, ridges_l), repeats)
    print(f"ratio (per-ridge CPU / toolkit CPU): kernel {kernel_ratio:.1f}x, linear p = {p}: {linear_ratio:.1f}x")
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
