"""Command line: ``python -m kerneldistill verify --out DIR [--fast]``.

``verify`` runs every check of :mod:`kerneldistill.verification` (closed forms against explicit
refits, limits, optimal weights against grids, expected risk against Monte Carlo, the one-shot weight
against the oracle, [MFB20]'s collapse and bounds, the sympy proofs, the toy problem), prints one
pass/fail table with the measured errors, writes the kernel figures to ``DIR`` and exits with 1 if
any check fails.
"""
from __future__ import annotations

import sys

from .verification import CHECK_GROUPS, example_main

# Every kernel figure: the toy problem of [BA21], the optimal weights and [MFB20]'s collapse.
VERIFY_FIGURES = ("kernel_toy_fits", "kernel_toy_filters", "kernel_toy_ratios", "kernel_toy_loss",
                  "kernel_optimal_weight", "kernel_one_shot", "kernel_mobahi_collapse")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] != "verify":
        print(f"unknown command {argv[0]!r}; the only command is 'verify' (python -m kerneldistill verify "
              f"--out DIR [--fast]).", file=sys.stderr)
        return 2
    return example_main(list(CHECK_GROUPS), "Verify the kernel self-distillation theory numerically and "
                        "symbolically; write the kernel figures.", VERIFY_FIGURES, argv=argv[1:])


if __name__ == "__main__":
    sys.exit(main())
