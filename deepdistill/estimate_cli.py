"""``python -m deepdistill estimate-weight``: each estimate of the optimal ground-truth weight, its cost,
and the grid search's result, side by side (:func:`deepdistill.weight_estimation.estimate_gt_weight`).

    python -m deepdistill estimate-weight --dataset mnist1d --label-noise 0.2 --method sd_kd \\
        --seeds 0 1 2 --epochs 20 --out-dir out/estimate_weight
    python -m deepdistill estimate-weight ... --no-grid            # the cheap estimates only
    python -m deepdistill estimate-weight ... --allow-any-weight   # unconstrained weights ([DPR26])

Every :class:`~deepdistill.config.TrainConfig` field is an option, as in ``train``. Writes
``OUT_DIR/estimate_weight.json`` (every run and estimate, itemised) and ``OUT_DIR/estimate_weight.csv``
(the table printed).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

__all__ = ["add_subparser", "build_parser", "run", "main", "format_table"]

COMMAND = "estimate-weight"
DESCRIPTION = ("Estimate the optimal ground-truth weight of one student generation: the two-run affine estimate, "
               "the kernel surrogates on the teacher's features / empirical NTK, and [DPR26]'s one-shot estimate, "
               "each with its cost, next to a grid search over gt_weight x seeds.")


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``estimate-weight`` subcommand to ``python -m deepdistill``'s subparsers; return it."""
    from deepdistill.cli import _add_config_options
    from deepdistill.weight_estimation import DEFAULT_GRID, ESTIMATORS

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser(COMMAND, formatter_class=fmt, help="estimate the optimal gt_weight, with costs, vs a grid",
                              description=DESCRIPTION)
    # The run's own fields (seed and out_dir are per-study options below).
    _add_config_options(p, skip={"seed", "out_dir"})
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (one teacher per seed)")
    p.add_argument("--generation", type=int, default=1,
                   help="the student generation whose weight is estimated (earlier ones use --gt-weight)")
    p.add_argument("--grid", nargs="+", type=float, default=list(DEFAULT_GRID),
                   help="weights of the reference grid search")
    p.add_argument("--no-grid", action="store_true", help="skip the grid search (the cheap estimates only)")
    p.add_argument("--estimators", nargs="+", default=["two_run", "kernel_features", "one_shot_features"],
                   choices=sorted(ESTIMATORS), help="; ".join(f"{k}: {v}" for k, v in ESTIMATORS.items()))
    p.add_argument("--train-alpha1", action="store_true",
                   help="train a student at gt_weight 1 for the two-run estimate instead of using generation 0")
    p.add_argument("--kernel", default="linear", help="kernel on the teacher's features (a sklearn pairwise kernel)")
    p.add_argument("--gamma", type=float, default=None, help="kernel gamma (rbf, laplacian, polynomial, sigmoid)")
    p.add_argument("--ntk-subsample", type=int, default=500, help="training examples used by the NTK estimators")
    p.add_argument("--out-dir", default="out/estimate_weight", dest="out_dir",
                   help="runs go to OUT_DIR/runs/seed_S/ (teacher/ and gt_<weight>/, reused when present); results to "
                        "OUT_DIR/estimate_weight.json and .csv. --allow-any-weight gives unconstrained estimates")
    p.add_argument("--quiet", action="store_true", help="no per-run log lines")
    return p


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m deepdistill.estimate_cli``) with the one subcommand."""
    parser = argparse.ArgumentParser(prog="python -m deepdistill", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar=f"{{{COMMAND}}}")
    add_subparser(sub)
    return parser


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the study that ``args`` describe, print the table, write the results; return 0."""
    from deepdistill.cli import _config_fields, _log
    from deepdistill.config import TrainConfig
    from deepdistill.weight_estimation import estimate_gt_weight

    fields = _config_fields(args, skip={"seed", "out_dir"})
    config = TrainConfig.from_dict(fields)
    result = estimate_gt_weight(
        config, args.out_dir, seeds=args.seeds, generation=args.generation, grid=None if args.no_grid else args.grid,
        estimators=args.estimators, allow_any_weight=config.allow_any_weight,
        teacher_as_alpha1=False if args.train_alpha1 else None, kernel=args.kernel,
        kernel_params={} if args.gamma is None else {"gamma": args.gamma}, ntk_subsample=args.ntk_subsample,
        log=_log(args.quiet))
    print(format_table(result["summary"]))
    print(f"results: {Path(args.out_dir) / 'estimate_weight.json'} and {Path(args.out_dir) / 'estimate_weight.csv'}")
    return 0


def _pm(mean, sd, digits=3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.{digits}f}" + ("" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f"+-{sd:.{digits}f}")


def format_table(rows: list[dict]) -> str:
    """The summary rows as an aligned text table (weights, test metrics mean+-sd, cost and ratios)."""
    head = (f"{'approach':<18} {'gt_weight':>13} {'test_acc':>13} {'test_nll':>13} {'test_ece':>13} "
            f"{'runs':>5} {'wall_s':>8} {'runs/grid':>9} {'time/grid':>9} {'<=1sd':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        within = r.get("within_one_grid_sd")
        lines.append(
            f"{r['approach']:<18} {_pm(r['gt_weight_mean'], r['gt_weight_sd'], 2):>13} "
            f"{_pm(r.get('test_accuracy_mean'), r.get('test_accuracy_sd')):>13} "
            f"{_pm(r.get('test_nll_mean'), r.get('test_nll_sd')):>13} {_pm(r.get('test_ece_mean'), r.get('test_ece_sd')):>13} "
            f"{r['training_runs']:>5.1f} {r['wall_time_s']:>8.1f} {r['runs_ratio_to_grid']:>9.2f} "
            f"{r['time_ratio_to_grid']:>9.2f} {'-' if within is None else ('yes' if within else 'NO'):>6}"
            + (f"  errors: {r['errors']}" if r.get("errors") else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args, parser)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
