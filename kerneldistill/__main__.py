"""Command line: ``python -m kerneldistill verify [--fast] [--groups GROUP ...]`` and
``python -m kerneldistill claims [--fast] [--list] [NAME ...]``.

``verify`` runs the checks of :mod:`kerneldistill.verification` (closed forms against explicit refits,
limits, optimal weights against grids, expected risk against Monte Carlo, the one-shot weight against
the oracle, [MFB20]'s collapse and bounds, the sympy proofs, the toy problem), prints one pass/fail
table with the measured errors and exits with 1 if any check fails.

``claims`` runs the field's published results as claims (:mod:`kerneldistill.claims`): per claim the
paper and setting, the published statement or number, what the toolkit measured, the criterion and
PASS or FAIL, then each claim's own table; it exits with 1 if a claim fails. ``--list`` prints the
registered claims.

It draws no figures: figures belong to :mod:`analysis`, the layer above (``kerneldistill`` imports
nothing of it). ``python -m analysis verify --out DIR [--fast]`` runs the same checks and writes the
kernel figures to ``DIR``.
"""
from __future__ import annotations

import argparse
import sys
import time

from .verification import CHECK_GROUPS, run_and_print, time_line

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
    claims = sub.add_parser("claims", help="run the field's published results as claims and print the table",
                            description="Run the registered claims (default: all) and print one row per claim and "
                                        "each claim's table (exit code 1 if one fails). Figure: "
                                        "python -m analysis figures claims_summary --out DIR.")
    claims.add_argument("--fast", action="store_true", help="small sizes and seeds (seconds; what CI runs)")
    claims.add_argument("--list", action="store_true", help="list the claims (key, paper, summary) and exit")
    claims.add_argument("names", nargs="*", metavar="NAME", help="claims to run (default: all)")
    claims.add_argument("--jobs", type=int, default=None,
                        help="claims run at once, one worker process each (default: one per usable core)")
    args = parser.parse_args(argv)
    if args.command == "claims":
        return _claims(claims, args)
    if args.out is not None:
        parser.error(f"`--out` is not an option of `kerneldistill verify`: kerneldistill draws no figures. "
                     f"Run `{FIGURES_COMMAND.replace('DIR', args.out)}{' --fast' if args.fast else ''}` for the "
                     "checks and the kernel figures.")
    code = run_and_print(args.groups, fast=args.fast)
    print(f"figures of the kernel theory: {FIGURES_COMMAND}{' --fast' if args.fast else ''}")
    return code


def _claims(parser: argparse.ArgumentParser, args) -> int:
    # Imported here: `verify` should not pay for importing every claim module.
    from .claims import REGISTRY, format_claims_table, run_claims, usable_cores

    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown claim(s) {', '.join(unknown)}; valid claims: {', '.join(REGISTRY)}")
    if args.list:
        for spec in REGISTRY.values():
            print(f"{spec.key}  [{spec.paper}]  {spec.summary}")
        return 0
    jobs = usable_cores() if args.jobs is None else args.jobs
    if jobs < 1:
        parser.error(f"--jobs must be >= 1 (worker processes); got {jobs}")
    start = time.perf_counter()
    # One BLAS thread per claim, as for `verify` (run_claims sets it in every process).
    results = run_claims(args.names or None, fast=args.fast, jobs=jobs)
    print(format_claims_table(results))
    print(time_line(start, "the claims"))
    failed = [r.claim for r in results if not r.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
