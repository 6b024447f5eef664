"""Estimate the optimal ground-truth weight for MNIST-1D with 20% label noise, two ways.

1. With a toolkit config: :func:`deepdistill.weight_estimation.estimate_gt_weight` trains one teacher,
   the alpha = 0 student and one student at the estimate, and prints each estimate with its cost
   (the same as ``python -m deepdistill estimate-weight ... --no-grid``).
2. With your own model and data loaders: :func:`estimate_gt_weight_for_model` around a
   ``train_fn(gt_weight, teacher)``. The one below (:func:`make_train_fn`) is a plain PyTorch loop
   standing for your own training code: all it has to do is train a fresh student with the given
   weight on the labels (``gt_weight=None``: the teacher, on the labels alone).

Small sizes so that it runs in a minute or two on a laptop CPU; raise ``--epochs`` / ``--n-train`` for
real numbers, and pass ``--grid`` to compare with an 11-point grid search (12 runs instead of 3).
``--fast`` is a few seconds' version for checks (tiny data, one epoch).

    python examples/estimate_weight_mnist1d.py [--fast] [--epochs 6] [--n-train 2000] [--grid] [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepdistill.data import load_dataset  # noqa: E402
from deepdistill.losses import LOSSES  # noqa: E402
from deepdistill.models import build_model  # noqa: E402
from deepdistill.weight_estimation import (  # noqa: E402
    DEFAULT_GRID,
    estimate_gt_weight,
    estimate_gt_weight_for_model,
    format_summary_table,
)


def make_train_fn(model_factory, train_loader, *, loss: str = "kd", temperature: float = 1.0, epochs: int = 10,
                  lr: float = 1e-3, seed: int = 0):
    """Your training code, as :func:`estimate_gt_weight_for_model` calls it: ``train_fn(gt_weight, teacher)``.

    AdamW for ``epochs`` passes over ``train_loader`` with a toolkit loss (``"kd"``: Hinton,
    ``gt_weight CE + (1 - gt_weight) T^2 KL``; ``"mse_mixed"``: [BA21]; ``"zs"``: [ZS20]). The teacher
    (``gt_weight=None``) trains with the same loss at ``gt_weight = 1`` (labels only), so it is a draw
    of the alpha = 1 student. Each call seeds the initialisation with ``seed``; the batch order comes
    from the loader's own generator.
    """
    spec = LOSSES[loss]

    def train_fn(gt_weight, teacher):
        torch.manual_seed(seed)
        model = model_factory()
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        # The weight and temperature are checked once; the bound loss is called on every batch.
        loss_fn = spec.bind(gt_weight=1.0 if gt_weight is None else float(gt_weight), temperature=temperature)
        if teacher is not None:
            teacher.eval()
        for _ in range(epochs):
            model.train()
            for xb, yb in train_loader:
                logits = model(xb)
                teacher_logits = None
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(xb).float()
                loss_value = loss_fn(logits, yb, teacher_logits)     # no teacher: the labels term alone
                opt.zero_grad(set_to_none=True)
                loss_value.backward()
                opt.step()
        return model.eval()

    return train_fn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="a few seconds: 400 examples, one epoch (for checks)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--grid", action="store_true", help="also run the 11-point grid search for comparison")
    parser.add_argument("--out-dir", default="out/example_estimate_weight")
    args = parser.parse_args(argv)
    if args.fast:
        args.epochs, args.n_train = 1, 400
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
        print(format_summary_table(result["summary"]))

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
