"""Closed-form self-distillation steps agree with explicit iterated refits by scikit-learn's KernelRidge.

Run: `python examples/closed_form_vs_refits.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (group closed_form),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["closed_form"], __doc__.splitlines()[0], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
