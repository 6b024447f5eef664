"""Command line: ``python -m analysis {figures,list,report,verify}``.

    python -m analysis list
    python -m analysis figures NAME [NAME ...] --out DIR [--fast]
    python -m analysis figures all --out DIR [--fast]
    python -m analysis report --out DIR [--fast] [--results DIR]
    python -m analysis verify --out DIR [--fast]       # the kernel theorem checks, then the kernel figures
"""
from __future__ import annotations

import argparse
import sys

from . import verify
from .figures import FIGURES, run_all, run_figure
from .report import MissingResultsError, build_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered figures")
    fig = sub.add_parser("figures", help="regenerate figures (data step, then plot step)")
    fig.add_argument("names", nargs="+", metavar="NAME", help="figure names, or 'all'")
    fig.add_argument("--out", required=True, help="output folder for the tables and the PDF/PNG files")
    fig.add_argument("--fast", action="store_true", help="small sizes that run in seconds (for checks, not the paper)")
    rep = sub.add_parser("report", help="regenerate every figure and write report.md")
    rep.add_argument("--out", required=True, help="output folder for report.md and the figures")
    rep.add_argument("--fast", action="store_true", help="small sizes that run in seconds")
    rep.add_argument("--results", default=None, help="folder of deep self-distillation results to tabulate")
    ver = sub.add_parser("verify", help="run the kernel theorem checks (python -m kerneldistill verify) and write the "
                                        "kernel figures; exit code 1 if a check fails")
    ver.add_argument("--out", required=True, help="output folder for the kernel figures and their tables")
    ver.add_argument("--fast", action="store_true", help="small sizes that run in seconds")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max((len(n) for n in FIGURES), default=0)
        for name, spec in FIGURES.items():
            print(f"{name:<{width}}  {spec.description}")
        return 0
    if args.command == "figures":
        if args.names == ["all"]:
            produced = run_all(args.out, fast=args.fast)
        else:
            unknown = [n for n in args.names if n not in FIGURES]
            if unknown:
                valid = ", ".join(FIGURES)
                parser.error(f"unknown figure(s) {', '.join(unknown)}; valid names: {valid}, or 'all'.")
            produced = {n: run_figure(n, args.out, fast=args.fast) for n in dict.fromkeys(args.names)}
        for name, paths in produced.items():
            print(f"{name}: " + ", ".join(str(p) for p in paths))
        return 0
    if args.command == "verify":
        return verify.main(args.out, fast=args.fast)
    try:
        path = build_report(args.out, fast=args.fast, results_dir=args.results)
    except MissingResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A short summary for the terminal; the report itself holds the tables and figures.
    text = path.read_text(encoding="utf-8")
    theorem_line = next((ln for ln in text.splitlines() if "passed**" in ln), "")
    figures = sorted(p.name for p in path.parent.glob("*.png"))
    if theorem_line:
        print("kernel theorem checks: " + theorem_line.split("**")[1])
    print(f"{len(figures)} figures (PDF and PNG) in {path.parent}")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
