"""The closed-form optimal ground-truth weight per step agrees with brute-force grids and Monte Carlo.

Run: `python examples/optimal_weight_vs_grid.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (groups optimal_weight expected_risk),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["optimal_weight", "expected_risk"], __doc__.splitlines()[0],
                        figures=["kernel_optimal_weight"], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
