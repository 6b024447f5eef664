"""The number of self-distillation steps from the training data alone (GCV) against the oracle best step.

Run: `python examples/select_steps.py [--fast]`.

Data: x ~ U[0, 1], y = sin(2 pi x) + noise; RBF kernel gamma 80, ridge = 1e-3 n, pure distillation
(gt_weight 0, where the risk is U-shaped in the number of steps), steps 1..100. For each n and noise
level the table gives the true risk of the step that `select_steps` picks over the true risk of the
best step (1 = the oracle's choice), as a mean and a 90% quantile over seeds, and the same for the
(steps, constant weight) pair chosen jointly from gt_weight in {0, 0.1, 0.25, 0.5, 0.75, 1}.

Exits with 1 if a check fails: GCV equals its definition computed with explicit smoother matrices,
and no ratio is below 1 (the oracle is the minimum).
"""
import argparse
import sys
import time

import numpy as np
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill import KernelDistiller
from kerneldistill.step_selection import select_steps
from kerneldistill.studies import select_steps_study, sine_data

FAST = dict(sizes=(25, 100, 200), noises=(0.3, 1.0), seeds=3)
FULL = dict(sizes=(25, 50, 100, 200, 400, 1000, 2000), noises=(0.1, 0.3, 1.0), seeds=20)


def check_gcv_definition() -> float:
    """Largest relative gap between select_steps' scores and (||y - S_t y||^2/n) / (1 - tr S_t/n)^2."""
    X, y = sine_data(40, 0.5, seed=7)
    model = KernelDistiller("rbf", ridge=0.04, gamma=80.0).fit(X, y)
    scores = select_steps(model, 6, gt_weight=0.3).scores
    K = rbf_kernel(X, gamma=80.0)
    S = K @ np.linalg.inv(K + 0.04 * np.eye(40))
    fit, worst, St = S @ y, 0.0, S
    for t in range(1, 7):
        if t > 1:
            fit = S @ (0.3 * y + 0.7 * fit)  # step t refits the mixed target
            # S_t is the smoother of step t: S_t y = fit; its trace from the same recursion on I
            St = S @ (0.3 * np.eye(40) + 0.7 * St)
        gcv = (np.sum((y - fit) ** 2) / 40) / (1 - np.trace(St) / 40) ** 2
        worst = max(worst, abs(scores[t - 1] - gcv) / gcv)
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="n up to 200, 3 seeds (seconds)")
    args = parser.parse_args(argv)
    preset = FAST if args.fast else FULL
    failures = []
    gap = check_gcv_definition()
    print(f"GCV scores vs explicit smoother matrices: largest relative gap {gap:.1e}")
    if gap > 1e-9:
        failures.append(f"GCV differs from its definition by {gap:.1e}")

    started = time.perf_counter()
    rows = select_steps_study(preset["sizes"], preset["noises"], preset["seeds"])
    print(f"\nrisk of the chosen step / risk of the oracle's best step ({preset['seeds']} seeds per cell, "
          f"{time.perf_counter() - started:.0f} s)")
    print(f"{'n':>5} {'noise':>5} | {'mean':>6} {'q90':>6} {'oracle step':>11} {'chosen step':>11} | "
          f"{'pair mean':>9} {'pair q90':>8}")
    for n in preset["sizes"]:
        for noise in preset["noises"]:
            cell = [r for r in rows if r.n == n and r.noise == noise]
            ratios = np.array([r.ratio for r in cell])
            pairs = np.array([r.pair_ratio for r in cell])
            print(f"{n:>5} {noise:>5} | {ratios.mean():6.3f} {np.quantile(ratios, 0.9):6.3f} "
                  f"{np.median([r.oracle_step for r in cell]):>11.0f} "
                  f"{np.median([r.chosen_step for r in cell]):>11.0f} | "
                  f"{pairs.mean():9.3f} {np.quantile(pairs, 0.9):8.3f}")
            if ratios.min() < 1 - 1e-12 or pairs.min() < 1 - 1e-12:
                failures.append(f"n={n} noise={noise}: a ratio below 1")
    for line in failures:
        print(f"FAIL {line}", file=sys.stderr)
    print(f"\n{'FAIL' if failures else 'PASS'}: select_steps checks ({len(failures)} failure(s))")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
