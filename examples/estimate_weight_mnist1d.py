"""Estimate the optimal ground-truth weight for MNIST-1D with 20% label noise, two ways.

1. With a toolkit config: :func:`deepdistill.weight_estimation.estimate_gt_weight` trains one teacher,
   the alpha = 0 student and one student at the estimate, and prints each estimate with its cost
   (the same as ``python -m deepdistill estimate-weight ... --no-grid``).
2. With your own model and data loaders: :func:`estimate_gt_weight_for_model` around a
   ``train_fn(gt_weight, teacher)`` built by :func:`make_train_fn` from a model factory (replace it by
   your own training code: it only has to train a fresh student with the given weight on the labels).

Small sizes so that it runs in a minute or two on a laptop CPU; raise ``--epochs`` / ``--n-train`` for
real numbers, and pass ``--grid`` to compare with an 11-point grid search (12 runs instead of 3).

    python examples/estimate_weight_mnist1d.py [--epochs 6] [--n-train 2000] [--grid] [--out-dir out/example]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.data import load_dataset  # noqa: E402
from deepdistill.estimate_cli import format_table  # noqa: E402
from deepdistill.models import build_model  # noqa: E402
from deepdistill.weight_estimation import (  # noqa: E402
    DEFAULT_GRID,
    estimate_gt_weight,
    estimate_gt_weight_for_model,
    make_train_fn,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--grid", action="store_true", help="also run the 11-point grid search for comparison")
    parser.add_argument("--out-dir", default="out/example_estimate_weight")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)   # tiny networks: one thread avoids contention
    grid = DEFAULT_GRID if args.grid else None

    # -- 1. a toolkit config ----------------------------------------------------------------------
    config = dict(dataset="mnist1d", model="cnn1d", method="sd_kd", label_noise=0.2, n_train=args.n_train,
                  epochs=args.epochs, batch_size=128, lr=1e-2, device="cpu", checkpoint_every=0)
    result = estimate_gt_weight(config, Path(args.out_dir) / "config", seeds=(0,), grid=grid,
                                estimators=("two_run", "kernel_features", "one_shot_features"))
    study = result["per_seed"][0]
    print("== toolkit config (sd_kd, T=4) ==")
    for name, entry in study["approaches"].items():
        print(f"{name:>18}: gt_weight {entry['gt_weight']:.3f} (unconstrained {entry['unconstrained']:.3f}), "
              f"test accuracy {entry['test']['accuracy']:.3f}, {entry['training_runs']} training runs, "
              f"{entry['wall_time_s']:.1f} s")
    if grid is not None:
        print(format_table(result["summary"]))

    # -- 2. your own model and data loaders -------------------------------------------------------
    splits = load_dataset("mnist1d", seed=0, label_noise=0.2, n_train=args.n_train)
    loader = DataLoader(splits.train, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_loader, test_loader = DataLoader(splits.val, batch_size=512), DataLoader(splits.test, batch_size=512)

    def model_factory():
        return build_model("cnn1d", splits.input_shape, splits.num_classes)

    train_fn = make_train_fn(model_factory, loader, loss="kd", temperature=4.0, epochs=args.epochs, lr=1e-2)
    result = estimate_gt_weight_for_model(train_fn, val_loader, test_loader=test_loader, train_loader=loader,
                                          grid=grid, estimators=("two_run", "kernel_features", "one_shot_features"),
                                          out_dir=Path(args.out_dir) / "own_model")
    print("== own model and loaders ==")
    for name, entry in result["per_seed"][0]["approaches"].items():
        print(f"{name:>18}: gt_weight {entry['gt_weight']:.3f}, test accuracy {entry['test']['accuracy']:.3f}, "
              f"{entry['training_runs']} training runs, {entry['wall_time_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
