"""Symbolic (sympy) proofs of the identities of kernel ridge self-distillation ([BA21], [DPR26]).

Run: `python examples/symbolic_checks.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (group symbolic),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["symbolic"], __doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
