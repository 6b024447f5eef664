"""The infinite-width limit of the bridge (Jacot, Gabriel & Hongler 2018; Lee et al. 2019), as two claims.

Run: `python examples/claim_infinite_width.py [--fast] [--out DIR]`.

1. ``ntk_width_convergence``: the empirical NTK of random NTK-parameterised MLPs (numpy, depth 2; erf, ReLU,
   tanh) converges to the infinite-width NTK of :mod:`kerneldistill.infinite_ntk` at a log-log slope near -1/2.
2. ``ntk_bridge_infinite_width``: the optimal ground-truth weight of the bridge's first student
   (``deepdistill.studies.bridge``: sine data, one hidden tanh layer, ridge 1) computed with the infinite-width NTK and
   no network at all, against the per-width weights of numpy networks and the bridge's published kernel and
   deep weights.

Prints each claim's row and table; with ``--out`` also draws ``claim_ntk_convergence`` and
``claim_ntk_bridge_weight`` into DIR. Exits with 1 if a claim FAILs (the same verdict as
``python -m kerneldistill claims``). ``--fast``: the CI sizes (about 16 s on one core).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer widths and seeds (seconds)")
    parser.add_argument("--out", default=None, help="folder for the two figures (default: none drawn)")
    args = parser.parse_args(argv)

    from kerneldistill.claims import REGISTRY

    results = [REGISTRY[key].run(fast=args.fast) for key in ("ntk_width_convergence", "ntk_bridge_infinite_width")]
    for r in results:
        print(f"\n{r.claim}: {r.verdict} ({r.seconds:.1f} s)\n  paper: {r.paper}\n  setting: {r.setting}\n"
              f"  published: {r.published}\n  measured: {r.measured}\n  criterion: {r.criterion}\n")
        print(r.table)
    if args.out:
        from analysis.figures import run_figure

        for name in ("claim_ntk_convergence", "claim_ntk_bridge_weight"):
            print("wrote", ", ".join(str(p) for p in run_figure(name, args.out, fast=args.fast)))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
