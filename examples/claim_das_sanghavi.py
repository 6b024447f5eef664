"""Das & Sanghavi (ICML 2023): at high label noise the optimal teacher weight exceeds 1 (gt_weight < 0).

Run: `python examples/claim_das_sanghavi.py [--fast] [--out DIR]`.
Prints the two claims' tables: (a) the optimal gt_weight of linear ridge self-distillation per noise level and
ridge, in closed form (KernelDistiller + kerneldistill.claims.das_sanghavi.ExpectedParameterError);
(b) softmax-regression students on digits with 30% and 50% corrupted labels, per teacher weight xi and
per teacher/student regularisation (full run). Exits with 1 if either claim fails. With --out, also draws the figure
`claim_das_sanghavi` (data CSV, PDF and PNG) into DIR.
The same claims run in `python -m kerneldistill claims das_sanghavi_regression das_sanghavi_classification`.
"""
import argparse
import sys
from pathlib import Path

from kerneldistill.claims import REGISTRY


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small sizes (seconds; what CI runs)")
    parser.add_argument("--out", type=Path, default=None, help="also draw the figure 'claim_das_sanghavi' into this folder")
    args = parser.parse_args(argv)
    results = [REGISTRY[key].run(fast=args.fast) for key in ("das_sanghavi_regression", "das_sanghavi_classification")]
    for result in results:
        print(f"{result.claim}: {result.paper}")
        print(f"  setting:   {result.setting}")
        print(f"  published: {result.published}")
        print(f"  measured:  {result.measured}")
        print(f"  criterion: {result.criterion}")
        print(f"  result:    {result.verdict} ({result.seconds:.1f} s)")
        print()
        print(result.table)
        print()
    if args.out is not None:
        from analysis.figures import run_figure

        for path in run_figure('claim_das_sanghavi', args.out, fast=args.fast):
            print(f"wrote {path}")
    failed = [r for r in results if not r.passed]
    for result in failed:
        print(f"{result.claim}: FAIL ({result.criterion})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
