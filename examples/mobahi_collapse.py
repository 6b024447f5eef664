"""[MFB20]'s fixed-budget pure self-distillation: per-round multipliers, their bounds, collapse, sparsification.

Run: `python examples/mobahi_collapse.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (group mobahi),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["mobahi"], __doc__.splitlines()[0], figures=["kernel_mobahi_collapse"], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
