"""[DPR26]'s one-shot weight (kernel form, no held-out data) approaches the oracle optimum as n grows.

Run: `python examples/one_shot_vs_oracle.py [--fast] [--out DIR]`.
Prints a pass/fail table with the measured errors and exits with 1 if a check fails.
The checks live in :mod:`kerneldistill.verification` (group one_shot),
where `python -m kerneldistill verify` runs them too.
"""
import sys

from analysis.verify import example_main


def main(argv=None) -> int:
    return example_main(["one_shot"], __doc__.splitlines()[0], figures=["kernel_one_shot"], argv=argv)


if __name__ == "__main__":
    sys.exit(main())
