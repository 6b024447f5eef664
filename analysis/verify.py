"""The kernel theory's checks with their figures: ``python -m analysis verify`` and the kernel examples.

:mod:`kerneldistill.verification` runs the checks (``python -m kerneldistill verify`` prints them);
the figures belong to this layer, so the runner that also draws them lives here:

    python -m analysis verify --out DIR [--fast]      # every check, then every kernel figure
    python examples/NAME.py [--fast] [--out DIR]      # one group of checks, its figures (example_main)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from kerneldistill.verification import CHECK_GROUPS, run_and_print

from .figures import run_figure
from .figures.kernel import KERNEL_FIGURES

__all__ = ["VERIFY_FIGURES", "write_figures", "verify", "example_main"]

#: Every kernel figure: the toy problem of [BA21], the optimal weights, the one-shot weight and [MFB20]'s collapse.
VERIFY_FIGURES = tuple(KERNEL_FIGURES)


def write_figures(out_dir, names: Sequence[str], fast: bool = False) -> list[Path]:
    """Write figures by name through their registered data and plot steps; returns the PDF paths."""
    return [p for name in names for p in run_figure(name, out_dir, fast=fast) if p.suffix == ".pdf"]


def verify(groups: Sequence[str] | None, figures: Sequence[str], out_dir, fast: bool = False,
           extra: Callable[[], None] | None = None) -> int:
    """Run the check groups and print their table, call ``extra()``, write ``figures`` to ``out_dir``;
    return the exit code (1 if a check failed)."""
    def then():
        if extra is not None:
            extra()
        if figures:
            written = write_figures(out_dir, figures, fast=fast)
            print(f"figures: {', '.join(str(p) for p in written)}")

    return run_and_print(groups, fast=fast, then=then)


def example_main(groups: Sequence[str], description: str, figures: Sequence[str] = (),
                 argv: Sequence[str] | None = None, extra: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Command line of the kernel examples: ``--fast``, ``--out DIR``; returns the exit code.

    Runs the check groups, prints the table, calls ``extra(args)`` for anything else the example
    prints and writes ``figures`` (kernel figure names) to ``--out``. Exit code 1 on a failed check.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="small sizes (seconds; used by the tests)")
    parser.add_argument("--out", type=Path, default=Path("results") / "kernel",
                        help="folder for figures and tables (default: results/kernel)")
    args = parser.parse_args(argv)
    return verify(groups, figures, args.out, fast=args.fast, extra=None if extra is None else lambda: extra(args))


def main(out_dir, fast: bool = False) -> int:
    """``python -m analysis verify``: every check group, then every kernel figure in ``out_dir``."""
    return verify(list(CHECK_GROUPS), VERIFY_FIGURES, out_dir, fast=fast)
