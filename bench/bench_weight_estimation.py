"""How good and how cheap is each estimate of the optimal ground-truth weight? (issue 4, "must show")

For each data set (MNIST-1D with 20% symmetric label noise; scikit-learn's 8x8 digits with 20%
symmetric noise) and 3 seeds: a grid search over 11 weights in [0, 1] at generation 1 (the reference,
best by the mean validation Brier score over seeds), the two-run affine estimate (with generation 0 as
the alpha = 1 end point, and with a trained alpha = 1 student), the kernel surrogates on the teacher's
penultimate features and empirical NTK (closed-form validation optimum) and [DPR26]'s one-shot
estimates (training data only). Prints, per approach, the weight, test accuracy / NLL / ECE as
mean +- sd over seeds, the training runs and wall time, their ratio to the grid's, and whether the
targets hold (test accuracy within one grid seed-sd of the grid's best; cost at most a quarter of
the grid's). Then the diagnostics: how close the students are to affine in the weight, and whether
unconstrained weights (outside [0, 1], [DPR26]) would help by the affine model's prediction.

All ratios are measured in this one run. Costs count the teacher once per approach; the wall time
of a run is the training time recorded when it was trained (runs shared between approaches, such as
the alpha = 0 student that is also a grid point, are trained once but counted in each).

    python bench/bench_weight_estimation.py --quick        # a few seconds: checks that it runs (not a measurement)
    python bench/bench_weight_estimation.py --small        # a small version (~1-2 min on 2 CPU cores)
    python bench/bench_weight_estimation.py                # the study (see DATASETS for the settings)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# One BLAS thread, like torch below: on 2 shared cores more threads only contend (set before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.studies.weight_estimation import DEFAULT_GRID, estimate_gt_weight  # noqa: E402

ESTIMATORS = ("two_run", "two_run_student", "kernel_features", "one_shot_features", "kernel_ntk", "one_shot_ntk")

# Small, fast models and few epochs: the machine has 2 shared CPU cores.
DATASETS = {
    "mnist1d": dict(dataset="mnist1d", model="cnn1d", label_noise=0.2, noise_type="symmetric", epochs=20,
                    batch_size=128, lr=1e-2, weight_decay=5e-4, checkpoint_every=0, device="cpu"),
    "digits": dict(dataset="digits", model="mlp", model_kwargs={"hidden": 128, "depth": 2}, label_noise=0.2,
                   noise_type="symmetric", epochs=30, batch_size=64, lr=3e-3, weight_decay=5e-4, checkpoint_every=0,
                   device="cpu"),
}
SMALL = {"epochs": 4, "n_train": 1000}
# --quick: one data set, one seed, a 3-point grid, tiny runs; seconds, to check that the script runs.
QUICK = {"epochs": 1, "n_train": 300}
QUICK_GRID = (0.0, 0.5, 1.0)


from deepdistill.engine.results import mean_sd as _mean_sd  # noqa: E402  (one implementation of the roll-up's rule)


def diagnostics(result: dict) -> str:
    """Affine assumption and unconstrained weights, from the per-seed records (``WeightStudy.to_dict()``)."""
    lines = []
    for name in ("two_run", "two_run_student"):
        entries = [s["approaches"][name] for s in result["per_seed"]
                   if name in s["approaches"] and s["approaches"][name]["status"] == "ok"]
        res = [e["affine_residual"] for e in entries if "affine_residual" in e]
        if not res:
            continue
        mx, mean = _mean_sd([r["max"] for r in res]), _mean_sd([r["mean"] for r in res])
        floor = _mean_sd([r.get("seed_floor") for r in res])
        lines.append(f"{name}: affine residual ||p_w - affine||^2/||p_1 - p_0||^2 over inner grid weights: "
                     f"mean {mean[0]:.3f}, max {mx[0]:.3f}"
                     + ("" if math.isnan(floor[0]) else f"; seed floor (alpha=1 student vs teacher) {floor[0]:.3f}"))
        # predicted vs measured validation Brier along the grid
        gaps, corr = [], []
        for e in entries:
            pv = e.get("predicted_vs_grid") or []
            g = np.array([c["grid"] for c in pv])
            p = np.array([c["predicted"] for c in pv])
            if len(g) > 2:
                gaps.append(float(np.max(np.abs(g - p))))
                corr.append(float(np.corrcoef(g, p)[0, 1]))
        if gaps:
            lines.append(f"{name}: predicted vs measured val Brier on the grid: max |gap| {_mean_sd(gaps)[0]:.4f} "
                         f"(mean over seeds), correlation {_mean_sd(corr)[0]:.3f}")
        free = [e["unconstrained"] for e in entries]
        gain = [e["predicted_val_criterion"] - e["predicted_val_criterion_unconstrained"] for e in entries]
        outside = sum(1 for w in free if not 0.0 <= w <= 1.0)
        lines.append(f"{name}: unconstrained optimum per seed {', '.join(f'{w:.2f}' for w in free)} "
                     f"({outside}/{len(free)} outside [0, 1]); predicted val Brier gain of the unconstrained weight "
                     f"{_mean_sd(gain)[0]:.4f}")
    for name in ("kernel_features", "kernel_ntk"):
        entries = [s["approaches"][name] for s in result["per_seed"] if name in s["approaches"]]
        if entries:
            k = [e["kernel"] for e in entries if "kernel" in e]
            def fmt(key, spec=".2f"):
                return ", ".join(format(e[key], spec) for e in k)
            lines.append(f"{name}: validation optimum (unconstrained) {fmt('validation_unconstrained')}; one-shot "
                         f"{fmt('one_shot_unconstrained')}; matched ridge {fmt('ridge', '.3g')} (kernel step-1 "
                         f"training residual {fmt('train_residual', '.3f')}; unreachable match in "
                         f"{sum('UNREACHABLE' in e['ridge_rule'] for e in k)}/{len(k)} seeds)")
    grid = [s["approaches"]["grid"] for s in result["per_seed"] if "grid" in s["approaches"]]
    if grid:
        mean_crit = grid[0]["mean_val_criterion"]
        lines.append("grid: mean val Brier by weight: " + ", ".join(
            f"{w:.1f}:{c:.4f}" for w, c in zip(result["grid"], mean_crit)))
        accs = np.array([[c["test"]["accuracy"] for c in g["curve"]] for g in grid])
        lines.append("grid: test accuracy by weight (mean over seeds): " + ", ".join(
            f"{w:.1f}:{a:.3f}" for w, a in zip(result["grid"], accs.mean(axis=0))))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a small version: fewer epochs and examples, 2 seeds")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: digits only, 1 seed, 1 epoch, a 3-point grid (checks that it runs)")
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(DATASETS),
                        help="default: every data set (digits only with --quick)")
    parser.add_argument("--method", default="sd_kd", choices=["sd_kd", "sd_mse", "sd_zs"])
    parser.add_argument("--temperature", type=float, default=None, help="None: the method's default")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--ntk-subsample", type=int, default=500)
    parser.add_argument("--kernel", default="linear", help="kernel on the teacher's features (linear, rbf, ...)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these tiny nets)")
    parser.add_argument("--allow-any-weight", action="store_true",
                        help="unconstrained estimates (method sd_mse only), the grid extended by -0.5, -0.25, 1.25, 1.5, 2")
    parser.add_argument("--out-dir", default="out/bench_weight_estimation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = args.seeds or ([0] if args.quick else [0, 1] if args.small else [0, 1, 2])
    datasets = args.datasets or (["digits"] if args.quick else list(DATASETS))
    size = "_quick" if args.quick else "_small" if args.small else ""
    for name in datasets:
        cfg = dict(DATASETS[name], method=args.method, temperature=args.temperature)
        cfg.update(QUICK if args.quick else SMALL if args.small else {})
        started = time.perf_counter()
        grid = list(QUICK_GRID if args.quick else DEFAULT_GRID)
        grid += [-0.5, -0.25, 1.25, 1.5, 2.0] if args.allow_any_weight else []
        ntk_subsample = min(args.ntk_subsample, 100 if args.quick else 200 if args.small else args.ntk_subsample)
        result = estimate_gt_weight(cfg, Path(args.out_dir) / f"{name}_{args.method}{size}",
                                    seeds=seeds, grid=grid, estimators=ESTIMATORS, allow_any_weight=args.allow_any_weight,
                                    ntk_subsample=ntk_subsample, kernel=args.kernel)
        table, result = result.table(), result.to_dict()
        print(f"\n=== {name}, {args.method} (T={result['config']['temperature']}), {args.kernel} kernel on features, label noise "
              f"{cfg['label_noise']:.0%} symmetric, model {cfg['model']} {cfg.get('model_kwargs', {})}, "
              f"{cfg['epochs']} epochs, seeds {seeds}, grid of {len(grid)} weights; "
              f"session {time.perf_counter() - started:.0f} s ===")
        print(table)
        print(diagnostics(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
