"""Wu, Yang & Sun (arXiv 2602.14029): self-training on fresh covariates is U-shaped in the number of
steps, acts as a spectral filter, and its iterated GCV finds the stopping step.

Run: `python examples/claim_self_training.py [--fast]` (the same as `python -m kerneldistill claims
wu_yang_sun_self_training [--fast]`, plus two exactness checks).

Setting (kerneldistill/claims/wu_yang_sun.py): ridgeless linear regression, p = 2n, Sigma = diag(20, 4,
1, ..., 1), beta = (1, 0.5, 0, ...), noise 1.5; step 0 fits the noisy labels, each later step fits fresh
covariates on the previous fit's noiseless pseudo-labels (kerneldistill.self_training). The claim's
table gives, per n, the oracle step, the step the iterated GCV picks, its regret, and the same for
select_steps' fixed-design GCV formula applied to the same map.

Before the claim, two checks on a small problem: the iteration equals an explicit loop of numpy
least-squares refits, and the leave-one-out estimate equals brute-force refits without each point.
Exits with 1 if a check or the claim fails.
"""
import argparse
import sys

import numpy as np

from kerneldistill.claims import REGISTRY
from kerneldistill.self_training import self_training_path


def check_against_refits(seed: int = 0):
    """Largest relative gaps: coefficients vs an explicit lstsq loop, and LOO vs brute-force refits."""
    rng = np.random.default_rng(seed)
    n, p, T = 12, 30, 4
    X0, y0 = rng.standard_normal((n, p)), rng.standard_normal(n)
    fresh = [rng.standard_normal((n, p)) for _ in range(T)]
    path = self_training_path(X0, y0, fresh)
    b = np.linalg.lstsq(X0, y0, rcond=None)[0]  # the minimum-norm interpolator
    coef_gap = np.max(np.abs(path.coefs[0] - b))
    for t, X in enumerate(fresh, start=1):
        b = np.linalg.lstsq(X, X @ b, rcond=None)[0]  # refit the noiseless pseudo-labels of fresh covariates
        coef_gap = max(coef_gap, np.max(np.abs(path.coefs[t] - b)))
    loo = np.zeros(T + 1)
    for i in range(n):
        keep = np.arange(n) != i
        b = np.linalg.lstsq(X0[keep], y0[keep], rcond=None)[0]
        for t in range(T + 1):
            if t > 0:
                b = np.linalg.lstsq(fresh[t - 1], fresh[t - 1] @ b, rcond=None)[0]
            loo[t] += (y0[i] - X0[i] @ b) ** 2 / n
    return coef_gap / np.max(np.abs(path.coefs)), np.max(np.abs(path.loo / loo - 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="n in (50, 100, 200), 8 seeds (seconds)")
    args = parser.parse_args(argv)
    coef_gap, loo_gap = check_against_refits()
    ok = coef_gap < 1e-10 and loo_gap < 1e-8
    print(f"iteration vs explicit lstsq refits: max relative gap {coef_gap:.1e}; "
          f"leave-one-out vs brute-force refits: {loo_gap:.1e} -> {'PASS' if ok else 'FAIL'}")
    result = REGISTRY["wu_yang_sun_self_training"].run(fast=args.fast)
    print(f"{result.claim}: {result.verdict} ({result.seconds:.1f} s)\n  paper: {result.paper}\n  setting: {result.setting}"
          f"\n  published: {result.published}\n  measured: {result.measured}\n  criterion: {result.criterion}\n")
    print(result.table)
    if not ok:
        print("the iteration or its leave-one-out estimate differs from explicit refits", file=sys.stderr)
    return 0 if ok and result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
