"""Command line: ``python -m kerneldistill verify [--fast] [--groups GROUP ...]``.

``verify`` runs the checks of :mod:`kerneldistill.verification` (closed forms against explicit refits,
limits, optimal weights against grids, expected risk against Monte Carlo, the one-shot weight against
the oracle, [MFB20]'s collapse and bounds, the sympy proofs, the toy problem), prints one pass/fail
table with the measured errors and exits with 1 if any check fails.

It draws no figures: figures belong to :mod:`analysis`, the layer above (``kerneldistill`` imports
nothing of it). ``python -m analysis verify --out DIR [--fast]`` runs the same checks and writes the
kernel figures to ``DIR``.
"""
from __future__ import annotations

import argparse
import sys

from .verification import CHECK_GROUPS, run_and_print

FIGURES_COMMAND = "python -m analysis verify --out DIR"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kerneldistill",
                                     description="Verify the kernel self-distillation theory numerically and symbolically.")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="run every theorem check and print the pass/fail table",
                            description=f"Run the theorem checks and print the pass/fail table (exit code 1 if one "
                                        f"fails). The figures: {FIGURES_COMMAND} [--fast].")
    verify.add_argument("--fast", action="store_true", help="small sizes (seconds; used by the tests)")
    verify.add_argument("--groups", nargs="+", choices=list(CHECK_GROUPS), default=None, metavar="GROUP",
                        help=f"check groups to run (default: all of {', '.join(CHECK_GROUPS)})")
    # The option of the former `verify`, which also drew the figures: refused with the command that does.
    verify.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is not None:
        parser.error(f"`--out` is not an option of `kerneldistill verify`: kerneldistill draws no figures. "
                     f"Run `{FIGURES_COMMAND.replace('DIR', args.out)}{' --fast' if args.fast else ''}` for the "
                     "checks and the kernel figures.")
    code = run_and_print(args.groups, fast=args.fast)
    print(f"figures of the kernel theory: {FIGURES_COMMAND}{' --fast' if args.fast else ''}")
    return code


if __name__ == "__main__":
    sys.exit(main())
