"""Where the kernel theory and deep networks meet: self-distillation of linearised and wide networks,
measured against the closed form.

Run: `python examples/kernel_meets_deep.py [--fast] [--out DIR] [--device cpu|cuda] [--no-figures]`.

(a) A network linearised at its initialisation, trained to convergence with the ridge toward it, IS
kernel ridge self-distillation with its empirical NTK: the two agree to the optimiser's tolerance.
(b) A real network in the NTK parameterisation leaves that closed form by an amount that falls with
its width. (c) The optimal ground-truth weight of the closed form matches the deep grid's at the
widest width; the table shows where the two part (narrow widths, the standard parameterisation,
Adam with early stopping, cross-entropy on MNIST-1D). (d) Borup & Andersen's toy with a wide network.

Prints every table and the pass/fail table of the must-shows, draws the four bridge figures into
DIR (default results/bridge) and exits with 1 when a must-show fails. --fast is the CI size (about a
minute on 2 CPU cores); without it, the full preset behind the README's numbers (widths 64..4096,
3 seeds, 11 weights). An interrupted run resumes: each finished part (and each network of the width
sweep) is stored in DIR/bridge_runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.studies.bridge import format_must_shows, run_bridge_study  # noqa: E402


def _print_exact(e: dict) -> None:
    print(f"\n(a) linearised network (width {e['width']}, {e['n_train']} points) vs KernelDistiller on its eNTK")
    print("    max relative difference per step, over gt_weight " + ", ".join(f"{w:g}" for w in e["gt_weights"]))
    for points, rel in e["relative_difference"].items():
        worst = [max(row[s] for row in rel) for s in range(len(e["steps"]))]
        print(f"    {points:>5}: " + "  ".join(f"step {s}: {v:.1e}" for s, v in zip(e["steps"], worst)))
    f = e["fits"]
    print(f"    L-BFGS: {f['fits']} fits, all converged: {f['all_converged']}, worst max|grad| {f['worst_grad_max']:.1e}, "
          f"bound on the relative difference {e['optimiser_bound']:.1e}")


def _print_width(w: dict) -> None:
    print("\n(b) real network (NTK parameterisation) vs the closed form on its own eNTK: relative deviation at new points")
    print(f"    mean over {len(w['seeds'])} seed(s) and gt_weight " + ", ".join(f"{x:g}" for x in w["gt_weights"]))
    print("    " + f"{'width':>6}  " + "  ".join(f"{'step ' + str(s):>9}" for s in w["steps"]) + f"  {'mean':>9}")
    for width, row, mean in zip(w["widths"], w["deviation_per_step"], w["mean_deviation"]):
        print("    " + f"{width:>6}  " + "  ".join(f"{v:>9.2e}" for v in row) + f"  {mean:>9.2e}")
    print(f"    log-log slope: {w['slope']:.3f} (per step: " + ", ".join(f"{s:.2f}" for s in w["slope_per_step"]) + ")")


def _print_weights(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"    {'case':<78} {'width':>6} {'kernel':>8} {'deep':>8} {'diff':>8}")
    for r in rows:
        width = "-" if r["width"] is None else str(r["width"])
        edge = " (grid edge)" if r["deep_at_edge"] else ""
        print(f"    {r['case']:<78} {width:>6} {r['kernel_gt_weight']:>8.3f} {r['deep_gt_weight']:>8.3f} "
              f"{r['difference']:>+8.3f}{edge}")


def _print_toy(t: dict) -> None:
    print(f"\n(d) [BA21] toy: loss vs sin(2 pi x) per step (network width {t['width']}, input_std {t['input_std']:g}, "
          f"ridge {t['ridge']:g})")
    for i, w in enumerate(t["gt_weights"]):
        for curve, loss in t["loss"].items():
            print(f"    gt_weight {w:<5g} {curve:<16} " + "  ".join(f"{v:.4f}" for v in loss[i]))
    if t["shape_at_gt_weight_0"]:
        for curve, shape in t["shape_at_gt_weight_0"].items():
            print(f"    gt_weight 0, {curve:<16}: best step {shape['best_step']}, U-curve {shape['u_curve']}, "
                  f"rises after its best step {shape['rises_after_best']}")
    print("    limit (gt_weight 0: the zero function): " + ", ".join(
        f"{k} {v[0]:.4f}" for k, v in t["limit_loss"].items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the CI size (about a minute on 2 CPU cores)")
    parser.add_argument("--out", default="results/bridge", help="folder for the study's files and the figures")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    parser.add_argument("--no-figures", action="store_true", help="print the tables only")
    parser.add_argument("--jobs", type=int, default=None,
                        help="processes computing the independent pieces (widths x seeds, ...) at once; default: one "
                             "per usable core on the CPU, 1 on a GPU; the results are the same for every value")
    args = parser.parse_args(argv)
    preset = "fast" if args.fast else "full"
    started = time.perf_counter()
    out = Path(args.out)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    if args.jobs is None:
        from deepdistill.drivers.local_runner import default_jobs

        args.jobs = default_jobs(1, args.device)
    study = run_bridge_study(out / "bridge_runs", preset, device=args.device, log=log, jobs=args.jobs)
    parts = study["parts"]
    _print_exact(parts["exact"])
    _print_width(parts["width"])
    _print_weights(parts["width"]["weights"] + parts["parted"]["rows"],
                   "(c) optimal ground-truth weight of step 2: kernel closed form (eNTK at init) vs deep grid (parabola-refined)")
    _print_toy(parts["toy"])
    if not args.no_figures:
        from analysis.figures import run_figure        # reads the study just stored: nothing is recomputed

        names = ["bridge_exact", "bridge_width", "bridge_weight", "bridge_toy"]
        paths = [run_figure(name, out, fast=args.fast)[-1] for name in names]
        print("\nfigures: " + ", ".join(str(p) for p in paths))
    print(f"\npreset {preset!r}, device {args.device}; study time " + ", ".join(
        f"{k} {v:.1f} s" for k, v in study["wall_time_s"].items()) + f"; total {time.perf_counter() - started:.1f} s\n")
    print(format_must_shows(study["must_show"]))
    return 0 if all(r["passed"] for r in study["must_show"]) else 1


if __name__ == "__main__":
    sys.exit(main())
