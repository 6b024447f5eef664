"""Where kernel and deep part: cross-entropy self-distillation on MNIST-1D, with the toolkit's own trainer.

The setting of the toolkit's deep grid: a 1-D CNN trained with AdamW and best-validation selection
(early stopping) by :func:`deepdistill.engine.train.train_run`, a KD student (``sd_kd``: ``gt_weight CE +
(1 - gt_weight) T^2 KL``) of generation 1 at every weight of a grid, one shared teacher per seed (its
``generation_0.pt`` copied into each student's run folder, from which ``train_run`` resumes).

Against it, the kernel surrogate of :mod:`deepdistill.studies.weight_estimators`
(:func:`~deepdistill.studies.weight_estimators.kernel_surrogate_weights`, kernel ridge self-distillation on
one-hot targets, closed-form optimum of the validation MSE, ridge matched to the teacher's training
Brier score) with two kernels from :func:`~deepdistill.studies.weight_estimators.empirical_ntk_gram` on the
same training subsample:

* the eNTK of the TRAINED teacher (what the toolkit's ``kernel_ntk`` estimator uses), and
* the eNTK at the teacher's INITIALISATION (the kernel of the lazy-regime theory).

The deep optimum is the grid's argmin of the mean validation Brier score over seeds (the squared
error the surrogate minimises), refined by the caller (:mod:`deepdistill.studies.bridge`). Nothing here is
tuned to make the two agree: the function reports what it measures.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["mnist1d_cross_entropy"]


def _surrogate(model, x_sub, y_sub, x_val, y_val, match: float, *, with_ntk_of: str) -> dict:
    from deepdistill.studies.weight_estimators import empirical_ntk_gram, kernel_surrogate_weights

    gram = empirical_ntk_gram(model, x_sub)
    cross = empirical_ntk_gram(model, x_val, x_sub)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = kernel_surrogate_weights(gram, y_sub, cross, y_val, kernel="precomputed", ridge="match",
                                       match_residual=match, bounds=None)
    return {"kernel": with_ntk_of, "gt_weight": est.validation_unconstrained, "one_shot": est.one_shot_unconstrained,
            "ridge": est.ridge, "ridge_rule": est.ridge_rule, "warnings": [str(w.message) for w in caught]}


def _teacher_config(settings: dict, root: Path, seed: int, device: str):
    from deepdistill.core.config import TrainConfig

    return TrainConfig(dataset="mnist1d", model=settings["model"], method=settings["method"], generations=1,
                       n_train=int(settings["n_train"]), label_noise=float(settings["label_noise"]),
                       epochs=int(settings["epochs"]), seed=int(seed), device=device,
                       out_dir=str(root / f"seed_{seed}" / "teacher"))


def _student_config(base, root: Path, seed: int, w: float):
    return base.replace(generations=2, gt_weight=float(w), out_dir=str(root / f"seed_{seed}" / f"gt_{float(w):+.6f}"))


def train_seed_runs(settings: dict, root, seed: int, device: str, log=None) -> tuple[dict, list[dict]]:
    """The records of the teacher of ``seed`` and of a student per weight of the grid (trained, or read back
    when finished), under ``root`` (a task of its own: seeds are independent)."""
    from deepdistill.core.io import atomic_write
    from deepdistill.engine.runs import checkpoint_path
    from deepdistill.engine.train import train_run

    log = log or (lambda msg: None)
    root = Path(root)
    base = _teacher_config(settings, root, seed, device)
    log(f"mnist1d seed {seed}: teacher")
    teacher_record = train_run(base, base.out_dir, progress=False)
    teacher_file = checkpoint_path(base.out_dir, 0)
    records = []
    for w in settings["grid"]:
        cfg = _student_config(base, root, seed, w)
        run_dir = Path(cfg.out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not checkpoint_path(run_dir, 0).exists():       # share the teacher: train_run resumes from it
            with open(teacher_file, "rb") as src, atomic_write(checkpoint_path(run_dir, 0), "wb") as dst:
                shutil.copyfileobj(src, dst)
        log(f"mnist1d seed {seed}: student at gt_weight {float(w):g}")
        records.append(train_run(cfg, run_dir, progress=False))
    return teacher_record, records


def _seed_study(settings: dict, root: Path, seed: int, device: str, log) -> dict:
    from deepdistill.core.config import derive_seed
    from deepdistill.core.metrics import brier_score
    from deepdistill.core.models import build_model
    from deepdistill.engine.runs import load_generation
    from deepdistill.engine.train import load_run_data, predict_logits

    base = _teacher_config(settings, root, seed, device)
    teacher_record, records = train_seed_runs(settings, root, seed, device, log)
    grid_rows = []
    for w, record in zip(settings["grid"], records):
        student = record["generations"][1]
        grid_rows.append({"gt_weight": float(w), "val_brier": student["val"]["brier"],
                          "test_accuracy": student["test"]["accuracy"]})

    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    splits, data = load_run_data(base, dev)
    trained, _ = load_generation(base.out_dir, 0, base, splits, dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(base.seed, 0, "init"))     # the teacher's own initialisation (train.py)
        initial = build_model(base.model, splits.input_shape, splits.num_classes, **base.model_kwargs).to(dev)
    n = data["x_train"].shape[0]
    m = min(int(settings["ntk_subsample"]), n)
    idx = torch.as_tensor(np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False)), device=dev)
    x_sub, y_sub = data["x_train"][idx], data["y_train"][idx]
    # the teacher's training fit on the subsample: the kernel teacher's ridge is matched to it
    match = brier_score(torch.softmax(predict_logits(trained, x_sub).double(), dim=1).cpu().numpy(), y_sub.cpu().numpy())
    y_sub_np, y_val_np = y_sub.cpu().numpy(), data["y_val"].cpu().numpy()
    kernels = [_surrogate(trained, x_sub, y_sub_np, data["x_val"], y_val_np, match, with_ntk_of="trained teacher"),
               _surrogate(initial, x_sub, y_sub_np, data["x_val"], y_val_np, match, with_ntk_of="initialisation")]
    return {"seed": seed, "grid": grid_rows, "teacher_train_brier_subsample": match, "kernels": kernels,
            "teacher_test_accuracy": teacher_record["generations"][0]["test"]["accuracy"]}


def mnist1d_cross_entropy(settings: dict, root, *, device="cpu", log=None) -> dict:
    """Deep grid and kernel surrogates (trained-teacher and initial eNTK) per seed; runs live under ``root``.

    ``settings``: ``n_train``, ``epochs``, ``grid``, ``seeds``, ``ntk_subsample``, ``model``,
    ``label_noise``, ``method`` (a teacher-based method with a ground-truth weight). Finished runs are
    read back, so a repeated call trains nothing.
    """
    say = log or (lambda msg: None)
    device = str(device) if not isinstance(device, str) else device
    device = "cuda" if device.startswith("cuda") else device
    per_seed = [_seed_study(settings, Path(root), int(s), device, say) for s in settings["seeds"]]
    return aggregate_seeds(settings, per_seed)


def seed_study(settings: dict, root, seed: int, device="cpu", log=None) -> dict:
    """One seed of :func:`mnist1d_cross_entropy` (its runs under ``root``, and its kernel surrogates): a task of
    its own, as seeds are independent; combine them with :func:`aggregate_seeds`."""
    device = str(device) if not isinstance(device, str) else device
    device = "cuda" if device.startswith("cuda") else device
    return _seed_study(settings, Path(root), int(seed), device, log or (lambda msg: None))


def aggregate_seeds(settings: dict, per_seed: list[dict]) -> dict:
    """:func:`mnist1d_cross_entropy`'s result from the per-seed results (in the order of ``settings["seeds"]``)."""
    weights = [r["gt_weight"] for r in per_seed[0]["grid"]]
    mean_brier = np.mean([[r["val_brier"] for r in s["grid"]] for s in per_seed], axis=0)
    kernel_means = {}
    for i, k in enumerate(per_seed[0]["kernels"]):
        kernel_means[k["kernel"]] = float(np.mean([s["kernels"][i]["gt_weight"] for s in per_seed]))
    return {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
            "grid": weights, "mean_val_brier": mean_brier.tolist(),
            "mean_test_accuracy": np.mean([[r["test_accuracy"] for r in s["grid"]] for s in per_seed], axis=0).tolist(),
            "kernel_gt_weight": kernel_means, "per_seed": per_seed}
