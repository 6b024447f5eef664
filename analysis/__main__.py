"""Command line: ``python -m analysis {figures,list,report,verify}``.

    python -m analysis list
    python -m analysis figures NAME [NAME ...] --out DIR [--fast]
    python -m analysis figures all --out DIR [--fast]
    python -m analysis figures NAME|all --results SWEEP [--out DIR]   # from your sweep; trains nothing
    python -m analysis report --out DIR [--fast]
    python -m analysis report --results SWEEP [--out DIR]            # on your sweep alone; trains nothing
    python -m analysis verify --out DIR [--fast]       # the kernel theorem checks, then the kernel figures

Progress (runs trained out of all, figures written) goes to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepdistill.core.io import OutDirError

from . import verify
from .figures import FIGURES, run_all, run_figure
from .figures.deep import DEEP_FIGURES
from .figures.spec import MissingRunsError
from .figures.sweep_runs import draw_from_sweep
from .report import MissingResultsError, build_report
from .results_report import REPORT_FOLDER, build_results_report

# Where `figures --results SWEEP` writes unless told otherwise.
FIGURES_FOLDER = "figures"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered figures")
    fig = sub.add_parser("figures", help="regenerate figures (data step, then plot step)")
    fig.add_argument("names", nargs="+", metavar="NAME", help="figure names, or 'all'")
    fig.add_argument("--out", default=None, help="output folder for the tables and the PDF/PNG files (with --results: "
                                                 f"default RESULTS/{FIGURES_FOLDER})")
    fig.add_argument("--fast", action="store_true", help="small sizes that run in seconds (for checks, not the paper)")
    fig.add_argument("--results", default=None, metavar="SWEEP",
                     help="draw the deep figures from this sweep folder (python -m deepdistill sweep --out-dir SWEEP) "
                          "instead of the preset's runs; nothing is trained")
    rep = sub.add_parser("report", help="regenerate every figure and write report.md, or report on your own results")
    rep.add_argument("--out", default=None, help="output folder for report.md and the figures (with --results: "
                                                 f"default RESULTS/{REPORT_FOLDER})")
    rep.add_argument("--fast", action="store_true", help="small sizes that run in seconds")
    rep.add_argument("--results", default=None, metavar="SWEEP",
                     help="report on this results folder alone (its tables, weight estimates and the figures its runs "
                          "allow); nothing is trained")
    rep.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                     help="figures not drawn, and their studies not run (e.g. weight_map_gain weight_map_estimators: "
                          "the weight map, hours of the full preset on a few cores); 'python -m analysis list' names them")
    rep.add_argument("--strict", action="store_true",
                     help="with --results: exit with an error (2) when a record.json cannot be read, instead of "
                          "naming it and leaving it out")
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
    if args.command == "verify":
        return verify.main(args.out, fast=args.fast)
    if args.results is not None and args.fast:
        parser.error("--fast sizes the preset's runs; with --results nothing is trained, so leave it out.")
    if getattr(args, "strict", False) and args.results is None:
        parser.error("--strict applies to the records of --results SWEEP; give --results, or leave --strict out.")
    if args.results is None and args.out is None:
        parser.error(f"{args.command} needs --out DIR (or --results SWEEP, to work from your own sweep).")
    if args.command == "figures":
        return _figures_from_results(args, parser) if args.results is not None else _figures(args, parser)
    unknown = [n for n in getattr(args, "skip", []) if n not in FIGURES]
    if unknown:
        parser.error(f"--skip: unknown figure(s) {', '.join(unknown)}; valid names: {', '.join(FIGURES)}.")
    if getattr(args, "skip", []) and args.results is not None:
        parser.error("--skip applies to the preset's report; with --results nothing is trained, so leave it out.")
    try:
        if args.results is not None:
            path = build_results_report(args.results, args.out, log=_stderr, strict=args.strict)
        else:
            path = build_report(args.out, fast=args.fast, log=_stderr, background=True, skip=args.skip)
    except (MissingResultsError, MissingRunsError, OutDirError) as exc:
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


def _figures(args, parser) -> int:
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


def _figures_from_results(args, parser) -> int:
    names = list(DEEP_FIGURES) if args.names == ["all"] else list(dict.fromkeys(args.names))
    other = [n for n in names if n not in DEEP_FIGURES]
    if other:
        parser.error(f"figure(s) {', '.join(other)} do not read a sweep; with --results: {', '.join(DEEP_FIGURES)}, "
                     "or 'all'.")
    out = args.out if args.out is not None else str(Path(args.results) / FIGURES_FOLDER)
    try:
        drawn, missing = draw_from_sweep(names, args.results, out, log=_stderr)
    except MissingRunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, paths in drawn.items():
        print(f"{name}: " + ", ".join(str(p) for p in paths))
    for name, why in missing.items():
        print(f"{name}: not drawn: {why}")
    # Every figure asked for by name must be drawn; 'all' draws what the sweep allows.
    return 0 if drawn and (args.names == ["all"] or not missing) else 2


if __name__ == "__main__":
    sys.exit(main())
