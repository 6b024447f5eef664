"""Where the kernel path's time goes beyond its eigendecomposition, at n = 2000 (bench_kernel_path.py's problem).

    python bench/bench_kernel_path_parts.py [--n 2000] [--repeats 5]

``bench/bench_kernel_path.py`` reports the path (``KernelDistiller.fit`` + ``path(None, 50 steps x 11 weights)``)
as a ratio to the fastest bare ``eigh``; the target is <= 1.1x. This script splits the path into its parts,
each timed alone on the same Gram matrix (minimum over --repeats of the process CPU time, which other
processes on a shared machine barely move; wall time beside it):

1. the bare eigh the estimator uses (``kerneldistill.spectrum.exact_eigh_solver``);
2. the filter diagonals of the 550 (step, weight) filters (``kerneldistill.filters.filter_diagonals``);
3. the one GEMM that applies them: ``(P x r) @ (r x n)`` with P = 550 filters and r = the eigenvalues
   that are not exactly 0 after clipping (the estimator already leaves the exact zeros out);
4. the whole path as the estimator runs it.

It then prints the GEMM's share against the eigh's (the floor of an exact path is eigh + GEMM: every one of
the 550 fitted-value vectors is a combination of r eigenvectors of length n, so ``P r n`` multiply-adds
cannot be avoided without dropping eigenvectors), and how many of the kept eigenvalues lie at the eigh's
round-off level (``|d| <= n eps d_max``, indistinguishable from 0, as are the negatives already clipped):
the GEMM's cost if those were left out too (an approximation at the 1e-13 level, not made here).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill.estimator import KernelDistiller
from kerneldistill.filters import filter_diagonals
from kerneldistill.spectrum import eigh_gram, exact_eigh_solver

STEPS = list(range(1, 51))
WEIGHTS = list(np.linspace(0.0, 1.0, 11))
RIDGE = 0.1


def best(fn, repeats):
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="n = 200, one repeat (checks that it runs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 200, 1
    n = args.n
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    y = np.sin(X @ rng.normal(size=2)) + 0.1 * rng.normal(size=n)
    K = rbf_kernel(X, gamma=0.5)
    name = exact_eigh_solver()

    c_eigh, w_eigh, spec = best(lambda: eigh_gram(K), args.repeats)
    d = np.clip(np.asarray(spec.evals, dtype=np.float64), 0.0, None)      # descending, as the estimator clips
    V = spec.evecs
    r = int(np.count_nonzero(d > 0))
    c_filt, w_filt, B = best(lambda: np.vstack([filter_diagonals(d, RIDGE, float(w), STEPS)[0] for w in WEIGHTS]),
                             args.repeats)                                 # (P, m)
    z = V.T @ y
    coef = (B * z[None, :])                                                # (P, m)
    c_gemm, w_gemm, _ = best(lambda: coef[:, :r] @ V[:, :r].T, args.repeats)

    def whole():
        return KernelDistiller(kernel="precomputed", ridge=RIDGE).fit(K, y).path(None, STEPS, gt_weights=WEIGHTS)

    c_path, w_path, _ = best(whole, args.repeats)
    noise = int(np.count_nonzero((d > 0) & (d <= n * np.finfo(np.float64).eps * d[0])))
    P = B.shape[0]
    print(f"n = {n}, P = {P} filters, eigh solver: {name}; eigenvalues clipped to exactly 0: {len(d) - r}, kept: {r}")
    print(f"{'part':38} {'CPU s':>8} {'wall s':>8} {'/ eigh (CPU)':>13}")
    for label, c, w in (("bare eigh", c_eigh, w_eigh), ("filter diagonals (P x m)", c_filt, w_filt),
                        (f"GEMM ({P} x {r}) @ ({r} x {n})", c_gemm, w_gemm), ("whole path (fit + path)", c_path, w_path)):
        print(f"{label:38} {c:8.3f} {w:8.3f} {c / c_eigh:12.3f}x")
    rest = c_path - c_eigh - c_filt - c_gemm
    print(f"{'rest (z = V^T y, copies, checks)':38} {rest:8.3f} {'':8} {rest / c_eigh:12.3f}x")
    print(f"\nfloor of the exact path: (eigh + GEMM) / eigh = {(c_eigh + c_gemm) / c_eigh:.3f}x; "
          f"GEMM = {2 * P * r * n / 1e9:.2f} GFLOP")
    print(f"kept eigenvalues at round-off level (0 < d <= n eps d_max = {n * np.finfo(np.float64).eps * d[0]:.2e}): "
          f"{noise}; a GEMM over the other {r - noise} would cost about {(r - noise) / r * c_gemm:.3f} s CPU "
          f"(path ~ {(c_eigh + c_filt + (r - noise) / r * c_gemm) / c_eigh:.3f}x eigh)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
