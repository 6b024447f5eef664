"""The toy problem of [BA21] (data of [MFB20]'s example): fits per step, filters, ratios and losses.

Run: `python examples/toy_borup_andersen.py [--fast] [--out DIR]`. RBF kernel (gamma 80), ridge 0.2,
11 noisy samples of sin(2 pi x); ground-truth weights 0 and 0.25, steps 1..6 and the limit. Checks
step 1 and the limits against scikit-learn's KernelRidge, the monotone filters and the gt_weight-0
sparsification; prints the loss table against sin(2 pi x) and writes the four toy figures
(fits with the limit dashed, filter bars, consecutive ratios, loss per step). Exits with 1 if a
check fails. The toy problem is tiny: --fast changes nothing here.
"""
import math
import sys

from kerneldistill.toy import TOY_GT_WEIGHTS, TOY_STEPS, toy_results
from analysis.verify import example_main

TOY_FIGURES = ["kernel_toy_fits", "kernel_toy_filters", "kernel_toy_ratios", "kernel_toy_loss"]


def print_loss_table(args=None) -> None:
    """Loss against sin(2 pi x) (mean over x = 0, 0.01, ..., 1) per weight and step."""
    res = toy_results(TOY_GT_WEIGHTS, TOY_STEPS)
    head = ["gt_weight"] + ["limit" if math.isinf(s) else f"step {int(s)}" for s in res.steps]
    print("\nloss vs sin(2 pi x):")
    print("  ".join(f"{h:>9}" for h in head))
    for w, row in zip(res.gt_weights, res.loss):
        print("  ".join([f"{w:>9g}"] + [f"{v:>9.5f}" for v in row]))


def main(argv=None) -> int:
    return example_main(["toy"], __doc__.splitlines()[0], figures=TOY_FIGURES, argv=argv, extra=print_loss_table)


if __name__ == "__main__":
    sys.exit(main())
