"""Which estimator should be the default? Measured on settings the weight map does NOT use.

The map study (``deepdistill/studies/weight_map.py``) is the test of the default estimator: label noise
{0, 0.1, ..., 0.5} x 3 seeds (0, 1, 2). To choose the default without tuning on those cells, this
bench uses other noise levels (0.15, 0.35) and other seeds (10, 11, 12) on scikit-learn's digits with
the MLP (and, with ``--mnist1d``, MNIST-1D with the 1-D CNN at 0.25). Per setting: an 11-point grid
(the reference, best by the mean validation Brier score over seeds) and each candidate estimator,
with its weight and 90% interval, predicted against achieved validation Brier score, test accuracy,
runs and CPU seconds. The verdict line counts, per estimator, the settings where its test accuracy
is within one grid seed-sd of the grid's best, and its mean runs.

    python bench/bench_weight_default.py --small        # ~5 min on 2 busy CPU cores
    python bench/bench_weight_default.py                # more epochs
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.core.io import atomic_write_text  # noqa: E402
from deepdistill.studies.weight_estimation import DEFAULT_GRID, estimate_gt_weight  # noqa: E402

CANDIDATES = ("refined", "two_run", "two_run_student", "kernel_features", "one_shot_features")
SEEDS = (10, 11, 12)
DIGITS = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 128, "depth": 2}, noise_type="symmetric",
              epochs=30, batch_size=64, lr=3e-3, weight_decay=5e-4, checkpoint_every=0, device="cpu",
              method="sd_kd", temperature=4.0)
MNIST1D = dict(dataset="mnist1d", model="cnn1d", noise_type="symmetric", epochs=20, batch_size=128, lr=1e-2,
               weight_decay=5e-4, checkpoint_every=0, device="cpu", method="sd_kd", temperature=4.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="fewer epochs and examples")
    parser.add_argument("--mnist1d", action="store_true", help="add MNIST-1D at 25%% noise")
    parser.add_argument("--no-digits", action="store_true", help="leave out the digits settings")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out-dir", default="out/bench_weight_default")
    parser.add_argument("--quick", action="store_true",
                        help="one digits setting, one seed, 2 epochs, a 3-point grid (seconds; the smoke test)")
    args = parser.parse_args(argv)
    grid = DEFAULT_GRID
    if args.quick:
        args.no_digits, args.mnist1d, args.seeds, grid = False, False, [SEEDS[0]], (0.0, 0.5, 1.0)
    torch.set_num_threads(1)
    settings = ([] if args.no_digits else [("digits", 0.15, DIGITS), ("digits", 0.35, DIGITS)][:1 if args.quick else 2]) \
        + ([("mnist1d", 0.25, MNIST1D)] if args.mnist1d else [])
    verdict = {name: {"within": 0, "settings": 0, "runs": [], "acc_gap": []} for name in CANDIDATES}
    out = {}
    for dataset, noise, base in settings:
        cfg = dict(base, label_noise=noise)
        if args.small:
            cfg.update(epochs=max(4, cfg["epochs"] // 3), n_train=1000 if dataset == "digits" else 2000)
        if args.quick:
            cfg.update(epochs=2, n_train=300, model_kwargs={"hidden": 16, "depth": 1})
        started = time.perf_counter()
        study = estimate_gt_weight(cfg, Path(args.out_dir) / f"{dataset}_{noise}", seeds=args.seeds, grid=grid,
                                   estimators=CANDIDATES, kernel="rbf")
        print(f"== {dataset}, label noise {noise}, seeds {args.seeds} ({time.perf_counter() - started:.0f} s) ==")
        print(study.table())
        rows = {r["approach"]: r for r in study.summary()}
        out[f"{dataset}_{noise}"] = rows
        for name in CANDIDATES:
            r = rows[name]
            verdict[name]["settings"] += 1
            verdict[name]["within"] += bool(r.get("within_one_grid_sd"))
            verdict[name]["runs"].append(r["training_runs"])
            verdict[name]["acc_gap"].append(r.get("accuracy_gap_to_grid"))
    print("== verdict: settings within one grid sd of the grid's best test accuracy; mean runs; mean accuracy gap ==")
    for name, v in verdict.items():
        gaps = [g for g in v["acc_gap"] if g == g]
        print(f"{name:<18} {v['within']}/{v['settings']}  runs {sum(v['runs']) / len(v['runs']):.1f}  "
              f"gap {sum(gaps) / max(1, len(gaps)):+.4f}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out_dir) / "verdict.json",
                      json.dumps({"verdict": verdict, "rows": out}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
