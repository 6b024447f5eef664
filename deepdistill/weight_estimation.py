"""Estimating the optimal ground-truth weight of deep self-distillation at a fraction of a grid's cost: the study.

For one student generation, the study trains what each estimator of :mod:`deepdistill.weight_estimators`
needs (the two-run affine estimate, the kernel surrogates on the teacher's features or empirical NTK,
[DPR26]'s one-shot estimate), then one student at each estimate, and a grid search to judge them by:

* **Grid search** (the reference): students at every weight of a grid, the best chosen by the mean
  validation criterion over seeds.

Cost is counted in training runs and wall time, the teacher counted once for each approach, each
run's wall time measured when it was trained (a run shared by two approaches, e.g. the alpha = 0
student that is also a grid point, is counted in both).

Entry points: :func:`estimate_gt_weight` for a toolkit :class:`~deepdistill.config.TrainConfig`
(shares one teacher per seed across every student: its checkpoints are copied into each student's
run folder, and :func:`deepdistill.train.train_run` resumes from them), and
:func:`estimate_gt_weight_for_model` for a user's own model, training code (a ``train_fn``) and data
loaders; :mod:`deepdistill.weight_backends` holds the two set-ups. ``python -m deepdistill
estimate-weight`` wraps the first (:mod:`deepdistill.cli`). The estimators themselves are re-exported
here (``from deepdistill.weight_estimation import affine_optimal_weight``).

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; [DPR26] Dang, Patil & Rinaldo,
arXiv 2602.17565 (the optimum may lie outside [0, 1]; one-shot tuning).
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from deepdistill.config import METHODS, ensure_config
from deepdistill.data import dataset_task
from deepdistill.io import atomic_write_csv, atomic_write_json
from deepdistill.metrics import as_numpy, brier_score
from deepdistill.results import mean_sd
from deepdistill.weight_backends import CallableBackend, ConfigBackend, Run, StudyBackend, student_key
# The estimators, re-exported: this module is where a user meets them.
from deepdistill.weight_estimators import (
    AffineWeightEstimate,
    KernelWeightEstimate,
    affine_optimal_weight,
    affine_residuals,
    as_matrix,
    check_criterion,
    empirical_ntk_gram,
    kernel_surrogate_weights,
    label_endpoint_is_generation_zero,
    target_matrix,
)

__all__ = [
    "DEFAULT_GRID",
    "ESTIMATORS",
    "DEFAULT_ESTIMATORS",
    "estimate_gt_weight",
    "estimate_gt_weight_for_model",
    "summary_rows",
    "format_summary_table",
    "write_results",
    "AffineWeightEstimate",
    "affine_optimal_weight",
    "affine_residuals",
    "KernelWeightEstimate",
    "kernel_surrogate_weights",
    "empirical_ntk_gram",
    "label_endpoint_is_generation_zero",
]

DEFAULT_GRID = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 10))
# Estimators by name: what each needs beyond the teacher.
ESTIMATORS = {
    "two_run": "affine interpolation of the alpha=0 student and the alpha=1 end point (the teacher when "
               "teacher_as_alpha1), Brier/MSE optimum on validation",
    "two_run_student": "as two_run, with a student trained at gt_weight 1 as the end point (one run more)",
    "kernel_features": "kernel ridge surrogate on the teacher's penultimate features, closed-form validation optimum",
    "one_shot_features": "[DPR26] one-shot estimate on the teacher's features, training data only",
    "kernel_ntk": "kernel ridge surrogate on the teacher's empirical NTK (training subsample), validation optimum",
    "one_shot_ntk": "[DPR26] one-shot estimate on the teacher's empirical NTK (training subsample only)",
}
#: The estimators a study runs unless told otherwise: one training run each beyond the teacher's.
DEFAULT_ESTIMATORS = ("two_run", "kernel_features", "one_shot_features")


# ------------------------------------------------------------------------------------------------
# One seed: teacher, grid, estimates, final runs
# ------------------------------------------------------------------------------------------------

class _SeedStudy:
    """The runs of one seed, trained on demand through ``backend`` and kept by key, and the approaches built on them."""

    def __init__(self, backend: StudyBackend, seed: int, log):
        self.backend, self.seed, self.say = backend, seed, log or (lambda msg: None)
        self.runs: dict[str, Run] = {}
        self.teacher_keys = [r.key for r in backend.teacher_runs()]
        for r in backend.teacher_runs():
            self.runs[r.key] = r
        self.label_run = backend.label_model()
        self.runs[self.label_run.key] = self.label_run
        self.y_val = backend.val_targets()
        self.criterion = backend.criterion

    def student(self, w) -> str:
        """The key of the student at ``w``, trained the first time it is asked for."""
        w = float(w)
        key = student_key(w)
        if key not in self.runs:
            self.say(f"seed {self.seed}: student at gt_weight {w:g}")
            self.runs[key] = self.backend.student(w)
        return key

    def val_criterion(self, run: Run) -> float:
        # "brier": the multi-class Brier score (summed over classes, mean over examples: the
        # normalisation of affine_optimal_weight); "mse": the mean over every entry.
        if run.val_outputs is None:
            return math.nan
        if self.criterion == "brier":
            return brier_score(run.val_outputs, self.y_val)
        return float(np.mean((run.val_outputs - as_matrix(self.y_val, "y_val")) ** 2))

    def grid(self, weights) -> dict:
        keys = [self.student(w) for w in weights]
        return {"run_keys": self.teacher_keys + keys, "curve": [
            {"gt_weight": self.runs[k].gt_weight, "val_criterion": self.val_criterion(self.runs[k]),
             "val": self.runs[k].val, "test": self.runs[k].test, "wall_time_s": self.runs[k].wall_time_s}
            for k in keys]}

    def two_run(self, use_teacher: bool, bounds, grid, grid_entry: dict | None) -> dict:
        """The two-run affine estimate: the alpha = 0 student and the labels end point (the teacher when
        ``use_teacher``, else a student at gt_weight 1), and its affine residuals against the grid."""
        started = time.perf_counter()
        k0 = self.student(0.0)
        k1 = self.label_run.key if use_teacher else self.student(1.0)
        p0, p1 = self.runs[k0].val_outputs, self.runs[k1].val_outputs
        est = affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=bounds)
        free = affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=None)
        entry = {"gt_weight": est.gt_weight, "unconstrained": est.unconstrained,
                 "predicted_val_criterion": est.criterion_at_estimate,
                 "predicted_val_criterion_unconstrained": free.criterion_at_estimate,
                 "endpoint_keys": [k0, k1], "degenerate": est.degenerate,
                 "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
                 "overhead_s": time.perf_counter() - started,
                 "run_keys": self.teacher_keys + [k0] + ([] if use_teacher else [k1])}
        # The assumption: students at the grid's inner weights against the path through the end points.
        inner = [float(w) for w in (grid or ()) if 0.0 < float(w) < 1.0
                 and self.runs[student_key(w)].val_outputs is not None]
        if inner:
            res = affine_residuals(inner, [self.runs[student_key(w)].val_outputs for w in inner], p0, p1)
            entry["affine_residual"] = {"gt_weights": inner, "relative": res.tolist(), "max": float(res.max()),
                                        "mean": float(res.mean())}
            at_one = self.runs.get(student_key(1.0))
            if use_teacher and at_one is not None and at_one.val_outputs is not None:
                # Floor set by training noise: the alpha = 1 student against the teacher (same loss,
                # different seed streams), on the same scale.
                p1s = at_one.val_outputs
                entry["affine_residual"]["seed_floor"] = float(np.sum((p1s - p1) ** 2) / np.sum((p1 - p0) ** 2))
            entry["predicted_vs_grid"] = [
                {"gt_weight": c["gt_weight"], "grid": c["val_criterion"],
                 "predicted": float(affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=None,
                                                          curve_weights=[c["gt_weight"]]).criterion_values[0])}
                for c in grid_entry["curve"]]
        return entry

    def kernel_surrogates(self, jobs, *, kernel: str, kernel_params: dict, ntk_subsample: int | None, bounds) -> dict:
        """The kernel-surrogate and one-shot entries in ``jobs``, on the teacher's features and/or empirical NTK."""
        backend, criterion = self.backend, self.criterion
        x_train, y_train = backend.train_arrays()
        x_val = backend.val_inputs()
        model = self.label_run.model
        # The kernel teacher's ridge matches the network teacher's training fit (Brier / MSE), on the
        # kernel's scale: squared error summed over outputs, averaged over examples. For labels that
        # is exactly the multi-class Brier score.
        train_out = backend.outputs(model, x_train)
        t_train = (target_matrix(y_train, *train_out.shape, criterion) if criterion == "brier"
                   else as_matrix(y_train, "y_train"))
        t_val = _val_matrix(self.y_val, t_train.shape[1], criterion)

        def training_fit(rows) -> float:
            if criterion == "brier":
                return brier_score(train_out[rows], y_train[rows])
            return float(np.sum((train_out[rows] - t_train[rows]) ** 2) / train_out[rows].shape[0])

        entries = {}
        if any(e.endswith("features") for e in jobs):
            started = time.perf_counter()
            f_train, f_val = backend.features(model, x_train), backend.features(model, x_val)
            kest = kernel_surrogate_weights(f_train, t_train, f_val, t_val, kernel=kernel, ridge="match",
                                            match_residual=training_fit(slice(None)), step=backend.step,
                                            previous=backend.previous, bounds=bounds, **kernel_params)
            entries.update(self._kernel_entries(kest, time.perf_counter() - started, "features", jobs))
        if any(e.endswith("ntk") for e in jobs):
            started = time.perf_counter()
            n = len(y_train)
            m = n if ntk_subsample is None else min(int(ntk_subsample), n)
            idx = np.sort(np.random.default_rng(self.seed).choice(n, size=m, replace=False))
            idx_t = torch.as_tensor(idx)
            gram = empirical_ntk_gram(model, x_train[idx_t])
            cross = empirical_ntk_gram(model, x_val, x_train[idx_t])
            kest = kernel_surrogate_weights(gram, t_train[idx], cross, t_val, kernel="precomputed", ridge="match",
                                            match_residual=training_fit(idx), step=backend.step,
                                            previous=backend.previous, bounds=bounds)
            entries.update(self._kernel_entries(kest, time.perf_counter() - started, "ntk", jobs))
        return entries

    def _kernel_entries(self, kest, cost: float, kind: str, jobs) -> dict:
        """The ``kernel_<kind>`` (validation optimum) and ``one_shot_<kind>`` entries asked for in ``jobs``,
        from one kernel-surrogate fit ``kest`` that cost ``cost`` seconds."""
        picks = {f"kernel_{kind}": (kest.validation, kest.validation_unconstrained),
                 f"one_shot_{kind}": (kest.one_shot, kest.one_shot_unconstrained)}
        return {name: {"gt_weight": w, "unconstrained": w_free, "overhead_s": cost, "kernel": kest.to_dict(),
                       "run_keys": list(self.teacher_keys)}
                for name, (w, w_free) in picks.items() if name in jobs}

    def train_finals(self, approaches: dict, teacher_as_alpha1: bool) -> None:
        """One student at each estimate (the labels end point serves for an estimate of 1 when it may)."""
        for name, entry in approaches.items():
            if name == "grid":
                continue
            w = float(entry["gt_weight"])
            if teacher_as_alpha1 and w == 1.0:
                final = self.label_run.key        # the labels end point IS a draw of the alpha = 1 student
            else:
                final = self.student(w)
            entry["final_key"] = final
            if final not in entry["run_keys"]:
                entry["run_keys"] = entry["run_keys"] + [final]

    def itemise(self, approaches: dict) -> dict:
        """Every run and approach of the seed, with costs and results."""
        runs = self.runs
        out = {"seed": self.seed, "teacher_keys": self.teacher_keys, "approaches": {},
               "runs": {k: {"gt_weight": r.gt_weight, "wall_time_s": r.wall_time_s, "test": r.test, "val": r.val,
                            "val_criterion": self.val_criterion(r), "error": r.error} for k, r in runs.items()}}
        for name, entry in approaches.items():
            keys = entry["run_keys"]
            entry["training_runs"] = len(keys)
            entry["wall_time_s"] = float(sum(runs[k].wall_time_s for k in keys) + entry.get("overhead_s", 0.0))
            if name != "grid":
                final = runs[entry["final_key"]]
                entry["test"], entry["val"], entry["error"] = final.test, final.val, final.error
                entry["val_criterion"] = self.val_criterion(final)
            out["approaches"][name] = entry
        return out


def _study_one_seed(backend: StudyBackend, *, grid, estimators, bounds, allow_any_weight: bool, teacher_as_alpha1: bool,
                    kernel: str, kernel_params: dict, ntk_subsample: int | None, seed: int, log) -> dict:
    """Teacher, grid, the estimates and their final runs for one seed; every cost itemised."""
    study = _SeedStudy(backend, seed, log)
    approaches: dict[str, dict] = {}
    if grid is not None:
        approaches["grid"] = study.grid(grid)
    bounds_used = None if allow_any_weight else bounds
    # "two_run": the labels end point is generation 0 when teacher_as_alpha1 (one run saved);
    # "two_run_student": always a student trained at gt_weight 1 (same seed streams as the alpha = 0
    # student, hence a less noisy path, one run more).
    for name in ("two_run", "two_run_student"):
        if name in estimators:
            use_teacher = teacher_as_alpha1 if name == "two_run" else False
            approaches[name] = study.two_run(use_teacher, bounds_used, grid, approaches.get("grid"))
    kernel_jobs = [e for e in estimators if not e.startswith("two_run")]
    if kernel_jobs:
        approaches.update(study.kernel_surrogates(kernel_jobs, kernel=kernel, kernel_params=kernel_params,
                                                  ntk_subsample=ntk_subsample, bounds=bounds_used))
    study.train_finals(approaches, teacher_as_alpha1)
    return study.itemise(approaches)


def _val_matrix(y_val, k: int, criterion: str) -> np.ndarray:
    y = np.asarray(as_numpy(y_val, "y_val"))
    if criterion == "brier":
        return np.eye(k)[y.astype(np.int64)] if y.ndim == 1 else as_matrix(y, "y_val")
    return as_matrix(y, "y_val")


def _finish_grid(per_seed: list[dict]) -> None:
    """Choose the grid's weight by the MEAN validation criterion over seeds and fill its results."""
    curves = [s["approaches"]["grid"]["curve"] for s in per_seed if "grid" in s["approaches"]]
    if not curves:
        return
    weights = [c["gt_weight"] for c in curves[0]]
    mean_crit = [statistics.fmean(curve[i]["val_criterion"] for curve in curves) for i in range(len(weights))]
    best = int(np.nanargmin(mean_crit))
    for s in per_seed:
        grid = s["approaches"]["grid"]
        grid.update(gt_weight=weights[best], unconstrained=weights[best], mean_val_criterion=mean_crit,
                    test=grid["curve"][best]["test"], val=grid["curve"][best]["val"],
                    val_criterion=grid["curve"][best]["val_criterion"], error=None)


def summary_rows(per_seed: list[dict], metrics=("accuracy", "nll", "ece")) -> list[dict]:
    """One row per approach: weight and test metrics as mean and sd over seeds, cost and its ratio to
    the grid's, and whether the test accuracy is within one grid seed-sd of the grid's best.

    The "teacher" row is the run the students distil from: generation ``G - 1`` (its own
    ``gt_weight``; 1.0 for generation 0), with the cost of every run before the students."""
    names = []
    for s in per_seed:
        names += [n for n in s["approaches"] if n not in names]
    grid_cost = mean_sd([s["approaches"]["grid"]["wall_time_s"] for s in per_seed if "grid" in s["approaches"]])[0]
    grid_runs = mean_sd([s["approaches"]["grid"]["training_runs"] for s in per_seed if "grid" in s["approaches"]])[0]
    rows = []
    for name in ["teacher"] + names:
        row = {"approach": name}
        if name == "teacher":
            entries = [{"gt_weight": s["runs"][s["teacher_keys"][-1]]["gt_weight"],
                        "test": s["runs"][s["teacher_keys"][-1]]["test"],
                        "training_runs": len(s["teacher_keys"]),
                        "wall_time_s": sum(s["runs"][k]["wall_time_s"] for k in s["teacher_keys"]), "error": None}
                       for s in per_seed]
        else:
            entries = [s["approaches"][name] for s in per_seed if name in s["approaches"]]
        row["n_seeds"] = len(entries)
        row["gt_weight_mean"], row["gt_weight_sd"] = mean_sd([e.get("gt_weight") for e in entries])
        row["unconstrained_mean"], row["unconstrained_sd"] = mean_sd([e.get("unconstrained") for e in entries])
        ok = [e for e in entries if e.get("test")]
        for m in metrics:
            row[f"test_{m}_mean"], row[f"test_{m}_sd"] = mean_sd([e["test"][m] for e in ok])
        row["training_runs"] = mean_sd([e["training_runs"] for e in entries])[0]
        row["wall_time_s"] = mean_sd([e["wall_time_s"] for e in entries])[0]
        row["runs_ratio_to_grid"] = row["training_runs"] / grid_runs if grid_runs == grid_runs else math.nan
        row["time_ratio_to_grid"] = row["wall_time_s"] / grid_cost if grid_cost == grid_cost else math.nan
        row["errors"] = "; ".join(sorted({e["error"] for e in entries if e.get("error")}))
        rows.append(row)
    grid = next((r for r in rows if r["approach"] == "grid"), None)
    # The target: test accuracy (or MSE, lower is better) within one seed-sd of the grid's best.
    key, sign = f"test_{metrics[0]}", (1.0 if metrics[0] == "accuracy" else -1.0)
    for row in rows:
        if grid is not None and row["n_seeds"] and not math.isnan(grid[f"{key}_sd"]):
            gap = row[f"{key}_mean"] - grid[f"{key}_mean"]
            row[f"{metrics[0]}_gap_to_grid"] = gap
            row["within_one_grid_sd"] = bool(sign * gap >= -grid[f"{key}_sd"])
            row["cost_within_quarter"] = bool(row["time_ratio_to_grid"] <= 0.25 and row["runs_ratio_to_grid"] <= 0.25)
        else:
            row[f"{metrics[0]}_gap_to_grid"], row["within_one_grid_sd"], row["cost_within_quarter"] = math.nan, None, None
    return rows


def _check_estimators(estimators) -> list[str]:
    estimators = list(estimators)
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; valid: {sorted(ESTIMATORS)}.")
    return estimators


def _check_grid(grid, allow_any_weight: bool):
    if grid is None:
        return None
    grid = sorted({float(w) for w in grid})
    if len(grid) < 2:
        raise ValueError(f"`grid` must hold at least 2 distinct weights; got {grid!r}.")
    if not allow_any_weight and (grid[0] < 0.0 or grid[-1] > 1.0):
        raise ValueError(f"`grid` weights must lie in [0, 1] (set allow_any_weight=True otherwise); got {grid!r}.")
    return grid


# ------------------------------------------------------------------------------------------------
# Entry point 1: a toolkit config
# ------------------------------------------------------------------------------------------------

def estimate_gt_weight(config, out_dir, *, seeds: Iterable[int] = (0,), generation: int = 1,
                       grid: Sequence[float] | None = DEFAULT_GRID,
                       estimators: Iterable[str] = DEFAULT_ESTIMATORS,
                       allow_any_weight: bool = False, teacher_as_alpha1: bool | None = None, kernel: str = "linear",
                       kernel_params: dict | None = None, ntk_subsample: int | None = 500,
                       log: Callable[[str], None] | None = None) -> dict:
    """Estimate the optimal ground-truth weight of generation ``generation`` of ``config``, each way,
    with its cost, next to a grid search; write ``out_dir/estimate_weight.json`` and ``.csv``.

    Per seed: one teacher run (generations ``0..generation-1``, with the config's weights for the
    earlier generations), shared by every student through its checkpoints; students at generation
    ``generation`` for the grid (``grid``; ``None`` skips it) and for each estimator's end points and
    final run. Criterion: the validation Brier score (the toolkit's validation labels carry the same
    label noise as the training labels unless ``data_options={"clean_val": True}``).

    Parameters
    ----------
    config : a :class:`TrainConfig` or dict of a teacher-based method (``sd_kd``, ``sd_mse``, ``sd_zs``).
    estimators : names from :data:`ESTIMATORS`.
    allow_any_weight : unconstrained estimates ([DPR26]); students outside [0, 1] are then trained with
        ``allow_any_weight=True`` (sd_mse only; for sd_kd/sd_zs the config refuses such a weight and that run reports the error).
    teacher_as_alpha1 : use generation 0 as the alpha = 1 end point (default: when
        :func:`label_endpoint_is_generation_zero` holds for the method).
    kernel, kernel_params : the kernel on the teacher's features (``"linear"``, ``"rbf"`` with ``gamma``...).
    ntk_subsample : training examples used by the empirical-NTK estimators.

    Returns a dict with ``per_seed`` (every run and approach, itemised) and ``summary`` (rows of
    :func:`summary_rows`).
    """
    config = ensure_config(config)
    spec = METHODS[config.method]
    if not (spec.uses_teacher and spec.uses_gt_weight):
        valid = sorted(m for m, s in METHODS.items() if s.uses_teacher and s.uses_gt_weight)
        raise ValueError(f"`config.method` must distil from a teacher with a ground-truth weight, one of {valid}; "
                         f"got {config.method!r}.")
    if dataset_task(config.dataset) == "regression":
        raise ValueError(f"estimate_gt_weight judges a toolkit config by the validation Brier score of a classifier, "
                         f"but dataset {config.dataset!r} has regression targets; for regression use "
                         "estimate_gt_weight_for_model(..., criterion='mse') with your own train_fn.")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1:
        raise ValueError(f"`generation` must be an integer >= 1 (generation 0 is the teacher); got {generation!r}.")
    # Per-generation lists hold one value per generation >= 1; the student at `generation` needs the
    # weights of the generations before it and the temperatures up to its own.
    for name, need in (("gt_weight", generation - 1), ("temperature", generation)):
        value = getattr(config, name)
        if isinstance(value, list) and len(value) < need:
            raise ValueError(f"`config.{name}` lists {len(value)} per-generation value(s); `generation`={generation} "
                             f"needs at least {need}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("`seeds` must hold at least one seed.")
    estimators = _check_estimators(estimators)
    grid = _check_grid(grid, allow_any_weight)
    if teacher_as_alpha1 is None:
        teacher_as_alpha1 = label_endpoint_is_generation_zero(config.method, temperature=4.0,
                                                              smoothing=config.smoothing,
                                                              ls_convention=config.ls_convention)
    out_dir = Path(out_dir)
    per_seed = []
    for seed in seeds:
        backend = ConfigBackend(config.replace(seed=seed), out_dir / "runs" / f"seed_{seed}", generation, log=log)
        per_seed.append(_study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                                        allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1,
                                        kernel=kernel, kernel_params=dict(kernel_params or {}),
                                        ntk_subsample=ntk_subsample, seed=seed, log=log))
    _finish_grid(per_seed)
    result = {"schema": "deepdistill.estimate_weight/1", "config": config.to_dict(), "generation": generation,
              "seeds": seeds, "grid": grid, "estimators": estimators, "allow_any_weight": allow_any_weight,
              "teacher_as_alpha1": teacher_as_alpha1, "criterion": "brier", "kernel": kernel,
              "kernel_params": dict(kernel_params or {}), "ntk_subsample": ntk_subsample,
              "per_seed": per_seed, "summary": summary_rows(per_seed)}
    write_results(result, out_dir)
    return result


def write_results(result: dict, out_dir) -> None:
    """``estimate_weight.json`` (everything) and ``estimate_weight.csv`` (the summary), atomically."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "estimate_weight.json", result)
    if result["summary"]:
        atomic_write_csv(out_dir / "estimate_weight.csv", result["summary"])


# ------------------------------------------------------------------------------------------------
# Entry point 2: a user's own model and data loaders
# ------------------------------------------------------------------------------------------------

def estimate_gt_weight_for_model(train_fn: Callable, val_loader, *, test_loader=None, train_loader=None,
                                 grid: Sequence[float] | None = None,
                                 estimators: Iterable[str] = ("two_run",), criterion: str = "brier",
                                 allow_any_weight: bool = False, teacher_as_alpha1: bool = True, teacher=None,
                                 kernel: str = "linear", kernel_params: dict | None = None,
                                 ntk_subsample: int | None = 500, device="cpu", seed: int = 0,
                                 out_dir=None, log: Callable[[str], None] | None = None) -> dict:
    """The estimates of :func:`estimate_gt_weight` for a user's own model, training code and loaders.

    Parameters
    ----------
    train_fn : ``train_fn(gt_weight, teacher) -> trained model``. ``train_fn(None, None)`` trains the
        teacher on the labels; ``train_fn(w, teacher)`` a fresh student with ground-truth weight ``w``
        (the weight on the LABELS; convert a teacher weight ``w_t`` as ``1 - w_t``). Seed inside it for
        reproducible runs (``examples/estimate_weight_mnist1d.py`` shows one).
    val_loader : yields ``(x, y)`` validation batches (labels for ``"brier"``, targets for ``"mse"``).
    test_loader : optional; test metrics of every trained network.
    train_loader : needed by the kernel estimators (teacher features on the training set).
    grid : weights for a reference grid search (``None``: no grid, the cheap estimates only).
    teacher_as_alpha1 : generation 0 serves as the alpha = 1 end point; set ``False`` if your student
        at ``gt_weight = 1`` does NOT train like your teacher (then one more run).
    teacher : an already trained teacher (its training cost is then not counted).
    out_dir : where to write ``estimate_weight.json`` / ``.csv`` (``None``: nothing written).

    Returns the same structure as :func:`estimate_gt_weight` (one "seed").
    """
    criterion = check_criterion(criterion)
    estimators = _check_estimators(estimators)
    grid = _check_grid(grid, allow_any_weight)
    if not callable(train_fn):
        raise TypeError(f"`train_fn` must be callable as train_fn(gt_weight, teacher); got {type(train_fn).__name__}.")
    backend = CallableBackend(train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log)
    study = _study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                            allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1, kernel=kernel,
                            kernel_params=dict(kernel_params or {}), ntk_subsample=ntk_subsample, seed=seed, log=log)
    per_seed = [study]
    _finish_grid(per_seed)
    metrics = ("accuracy", "nll", "ece") if criterion == "brier" else ("mse",)
    result = {"schema": "deepdistill.estimate_weight/1", "generation": 1, "seeds": [seed], "grid": grid,
              "estimators": estimators, "allow_any_weight": allow_any_weight, "teacher_as_alpha1": teacher_as_alpha1,
              "criterion": criterion, "kernel": kernel, "per_seed": per_seed,
              "summary": summary_rows(per_seed, metrics=metrics) if test_loader is not None else []}
    if out_dir is not None:
        write_results(result, out_dir)
    return result


# ------------------------------------------------------------------------------------------------
# The summary as a text table (python -m deepdistill estimate-weight, the example, the benchmark)
# ------------------------------------------------------------------------------------------------

def _pm(mean, sd, digits=3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.{digits}f}" + ("" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f"+-{sd:.{digits}f}")


def format_summary_table(rows: list[dict]) -> str:
    """The rows of :func:`summary_rows` as an aligned text table (weights, test metrics mean+-sd, cost and ratios)."""
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
