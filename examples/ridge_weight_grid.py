"""Every ridge from one eigendecomposition: [DPR26]'s Proposition 2.3, and (ridge, weight) tuning by three criteria.

Run: `python examples/ridge_weight_grid.py [--fast]`.

For each setting (Dang, Patil & Rinaldo's synthetic linear setting with identity covariance at
p/n = 0.5, 2, 10, two anisotropic ones, and an RBF kernel on a sine), on one eigendecomposition:

1. Proposition 2.3 under the oracle risk: at the best ridge lam*, D(lam*) against lam*^2 R''(lam*)/2
   (the condition holds when their ratio is below 1), and the measured gain of the best
   (ridge, gt_weight) pair over the best ridge;
2. the TRUE risk of what a held-out set (a fresh sample of the same size) and [DPR26]'s one-shot
   estimate choose: the ridge alone, and the (ridge, gt_weight) pair.

Exits with 1 if a check fails: the ridge path equals separate KernelRidge fits; no pair is worse than
the best ridge under the oracle; and wherever the condition holds, the pair gains (the proposition).
"""
import argparse
import math
import sys
import time

import numpy as np
from sklearn.kernel_ridge import KernelRidge

from kerneldistill import KernelDistiller
from kerneldistill.studies import RIDGE_SETTINGS, ridge_study, sine_data


def check_ridge_path() -> float:
    """Largest relative gap between ``path(ridges=...)`` at step 1 and separate ``KernelRidge`` fits."""
    X, y = sine_data(60, 0.3, seed=3)
    X_test = np.linspace(0, 1, 50)[:, None]
    ridges = [1e-4, 0.1, 3.0]
    path = KernelDistiller("rbf", ridge=1.0, gamma=10.0).fit(X, y).path(X_test, [1], ridges=ridges)[:, 0]
    ref = np.stack([KernelRidge(alpha=r, kernel="rbf", gamma=10.0).fit(X, y).predict(X_test) for r in ridges])
    return float(np.max(np.abs(path - ref)) / np.max(np.abs(ref)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="three settings, 40 ridges (seconds)")
    args = parser.parse_args(argv)
    failures = []
    gap = check_ridge_path()
    print(f"ridge path vs separate KernelRidge fits: largest relative gap {gap:.1e}")
    if gap > 1e-8:
        failures.append(f"the ridge path differs from separate fits by {gap:.1e}")

    settings = [RIDGE_SETTINGS[i] for i in (0, 4, 6)] if args.fast else RIDGE_SETTINGS
    started = time.perf_counter()
    rows = ridge_study(settings, n_ridges=40 if args.fast else 100)
    print(f"\n== Proposition 2.3 (oracle risk; {time.perf_counter() - started:.1f} s). D/threshold < 1: the "
          f"condition holds")
    print(f"{'setting':<36} {'lam*':>9} {'R(lam*)':>10} {'D/thr':>6} {'holds':>5} {'pair risk':>10} {'gain':>7} "
          f"{'weight':>7}")
    for r in rows:
        p = r.proposition
        print(f"{r.name:<36} {p.ridge:9.3g} {p.risk:10.4g} {p.distance / p.threshold:6.3f} {str(p.holds):>5} "
              f"{p.pair_risk:10.4g} {100 * p.gain:6.2f}% {p.pair_gt_weight:7.3g}")
        if p.gain < -1e-12:
            failures.append(f"{r.name}: the best pair is worse than the best ridge")
        if p.holds and not p.gain > 0:
            failures.append(f"{r.name}: the condition holds but the pair does not gain")

    print("\n== true risk of the choice of each criterion (unconstrained weight)")
    print(f"{'setting':<36} {'oracle ridge':>12} {'oracle pair':>11} | {'held-out ridge':>14} {'pair':>9} | "
          f"{'one-shot ridge':>14} {'pair':>9}")
    for r in rows:
        p = r.proposition
        print(f"{r.name:<36} {p.risk:12.4g} {p.pair_risk:11.4g} | {r.held_out_ridge_risk:14.4g} "
              f"{r.held_out_pair_risk:9.4g} | {r.one_shot_ridge_risk:14.4g} {r.one_shot_pair_risk:9.4g}")
        if not all(math.isfinite(v) for v in (r.held_out_pair_risk, r.one_shot_pair_risk)):
            failures.append(f"{r.name}: a tuned risk is not finite")
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    print(f"\n{'FAIL' if failures else 'PASS'}: ridge path and Proposition 2.3 checks ({len(failures)} failure(s))")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
