"""The infinite-step limit equals KernelRidge with ridge / gt_weight ([BA21]: amplified regularisation).

Run: `python examples/limit_vs_kernel_ridge.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (group limit),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["limit"], __doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
