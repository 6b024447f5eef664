"""Garg, Bhattacharya & Sur (2025): retraining on fresh real labels mixed with synthetic ones, optimal real weight 1/phi.

Run: `python examples/claim_fresh_data_mixing.py [--fast] [--out DIR]`.
Prints the claim's table: the long-run-optimal real-data weight of min-norm interpolation by simulation
(kerneldistill.fresh_data, the fresh-data mode of the iteration) with its Monte Carlo standard error,
against 1/phi = 0.618 (fixed design, fresh labels) and against the exact optimum with fresh isotropic
covariates; and the ridge optimum (exact and simulated) against the lower bound 1/2. Exits with 1 if the
claim fails. With --out, also draws the figure `claim_fresh_data_mixing` into DIR.
The same claim runs in `python -m kerneldistill claims garg_mixing`.
"""
import argparse
import sys
from pathlib import Path

from kerneldistill.claims import REGISTRY


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (seconds; what CI runs)")
    parser.add_argument("--out", type=Path, default=None, help="also draw the figure 'claim_fresh_data_mixing' into this folder")
    args = parser.parse_args(argv)
    result = REGISTRY['garg_mixing'].run(fast=args.fast)
    print(f"{result.claim}: {result.paper}")
    print(f"  setting:   {result.setting}")
    print(f"  published: {result.published}")
    print(f"  measured:  {result.measured}")
    print(f"  criterion: {result.criterion}")
    print(f"  result:    {result.verdict} ({result.seconds:.1f} s)")
    print()
    print(result.table)
    if args.out is not None:
        from analysis.figures import run_figure

        for path in run_figure('claim_fresh_data_mixing', args.out, fast=args.fast):
            print(f"wrote {path}")
    if not result.passed:
        print(f"{result.claim}: FAIL ({result.criterion})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
