"""Estimating the optimal ground-truth weight of deep self-distillation at a fraction of a grid's cost: the study.

For one student generation, the study trains what each estimator of :mod:`deepdistill.studies.weight_estimators`
needs (the half grid, the DEFAULT: students at 0, 0.2, ..., 0.8 and the pick pooled over seeds; the pooled
parabola; the two-run affine estimate; the refined estimate: a third student at the two-run
estimate and the vertex of the parabola through the three points; the kernel surrogates on the teacher's
features or empirical NTK; [DPR26]'s one-shot estimate), then one student at each estimate, and, when
asked, a grid search to judge them by (best by the mean validation criterion over seeds). Each estimate
comes with a 90% interval, the validation criterion it predicts at its weight against the one its student
achieved (the status says so in words when they differ by more than the floor, and "uncertain: ..." when
the interval covers more than half the admissible range), and why it was clipped.
Costs: each run counted once per approach; CPU and wall seconds of the runs this study trained (cached
runs cost nothing and are marked, as are runs shared between approaches), plus the estimator's own
computation. Theory: ``docs/theory.md`` section 6.

Entry points:

* :func:`estimate_gt_weight_for_model`: your own network, training code (a ``train_fn``, e.g. from
  :func:`deepdistill.studies.weight_backends.make_train_fn`) and data loaders; returns a
  :class:`~deepdistill.studies.weight_results.WeightEstimate` with the chosen weight, every estimator's
  status and cost, and the trained teacher and student.
* :func:`estimate_gt_weight`: a toolkit :class:`~deepdistill.core.config.TrainConfig` over seeds (one
  teacher per seed, shared by every student through its checkpoints, which
  :func:`deepdistill.engine.train.train_run` resumes from); returns a
  :class:`~deepdistill.studies.weight_results.WeightStudy`. ``python -m deepdistill estimate-weight`` wraps it.

A failed estimator (status other than ``"ok"``: see :mod:`deepdistill.studies.weight_results`) is never
chosen and never trained. The estimators themselves are re-exported here
(``from deepdistill.studies.weight_estimation import affine_optimal_weight``).

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; [DPR26] Dang, Patil & Rinaldo,
arXiv 2602.17565 (the optimum may lie outside [0, 1]; one-shot tuning).
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from deepdistill.core.config import METHODS, ensure_config
from deepdistill.core.data import dataset_task
from deepdistill.core.threads import torch_threads
from deepdistill.drivers.local_runner import resolve_jobs, run_local
from deepdistill.engine.runs import GENERATIONS_FOLDER
from deepdistill.core.metrics import brier_score
from deepdistill.studies.weight_backends import (CallableBackend, ConfigBackend, Run, StudyBackend, check_output_width,
                                                 student_key)
# The estimators, re-exported: this module is where a user meets them.
from deepdistill.studies.weight_estimators import (
    INTERVAL_LEVEL, AffineWeightEstimate, KernelWeightEstimate, affine_optimal_weight, affine_per_example,
    affine_residuals, affine_weight_interval, as_matrix, check_criterion, clip_interval, clip_reason,
    empirical_ntk_gram, interval_kind, kernel_surrogate_weights, label_endpoint_is_generation_zero,
    UNCERTAIN_WIDTH, paired_halfwidth, val_matrix, parabola_optimal_weight, per_example_criterion, target_matrix,
    uncertainty_flag)
from deepdistill.studies.weight_results import (STATUS_OK, WeightEstimate, WeightStudy, chosen_over_seeds,
                                                failed_entry as _failed, finish_grid, format_summary_table, summary_rows)
from deepdistill.studies.weight_pooled import (HALF_GRID_WEIGHTS, POOLED_STEP, POOLED_WEIGHTS, half_grid_seeds,
                                               pool_seeds)

__all__ = ["DEFAULT_GRID", "ESTIMATORS", "DEFAULT_ESTIMATORS", "estimate_gt_weight", "estimate_gt_weight_for_model",
           "WeightEstimate", "WeightStudy", "summary_rows", "format_summary_table", "AffineWeightEstimate",
           "affine_optimal_weight", "affine_residuals", "KernelWeightEstimate", "kernel_surrogate_weights",
           "empirical_ntk_gram", "label_endpoint_is_generation_zero", "INTERVAL_LEVEL", "UNCERTAIN_WIDTH",
           "POOLED_WEIGHTS", "POOLED_STEP", "HALF_GRID_WEIGHTS"]

DEFAULT_GRID = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 10))
# Estimators by name: what each needs beyond the teacher.
ESTIMATORS = {
    "two_run": "affine interpolation of the alpha=0 student and the alpha=1 end point (the teacher when "
               "teacher_as_alpha1), Brier/MSE optimum on validation",
    "refined": "two_run, then a student at its estimate as a third point of the validation criterion and the vertex "
               "of the parabola through the three (exact for affine outputs); one more student only when the "
               "vertex leaves its own 90% interval. At most 4 runs with the teacher",
    "pooled": "the vertex of the parabola through the validation criterion at gt_weight 0, 0.5 and 1 POOLED over the "
              "seeds, rounded to 0.1: one weight for every seed. At most 4 runs per seed with the teacher",
    "half_grid": "students at gt_weight 0, 0.2, 0.4, 0.6 and 0.8 (and the labels end point at 1); the one of least "
                 "validation criterion POOLED over the seeds, one for every seed. 6 runs per seed with the teacher",
    "two_run_student": "as two_run, with a student trained at gt_weight 1 as the end point (one run more)",
    "kernel_features": "kernel ridge surrogate on the teacher's penultimate features, closed-form validation optimum",
    "one_shot_features": "[DPR26] one-shot estimate on the teacher's features, training data only",
    "kernel_ntk": "kernel ridge surrogate on the teacher's empirical NTK (training subsample), validation optimum",
    "one_shot_ntk": "[DPR26] one-shot estimate on the teacher's empirical NTK (training subsample only)",
}
#: The estimator every entry point runs unless told otherwise. Chosen on the weight map's 12 development
#: cells by the rule fixed on 2026-12-07 (most must-shows passed, ties by the share within one grid sd):
#: ``half_grid`` passed 3 of 3 (11/12 within, 4/4 signs, no "ok" cell outside), ``two_run`` 2, ``refined`` 1,
#: ``pooled`` 0; the map's other cells test it (docs/weight_map.md sections 4-7).
DEFAULT_ESTIMATORS = ("half_grid",)


# ------------------------------------------------------------------------------------------------
# One seed: teacher, grid, estimates, final runs
# ------------------------------------------------------------------------------------------------

_MODEL_WORDS = {"two_run": "the affine model", "two_run_student": "the affine model", "refined": "the parabola",
                "pooled": "the pooled parabola"}


class _SeedStudy:
    """The runs of one seed, trained on demand through ``backend`` and kept by key, and the approaches built on them."""

    def __init__(self, backend: StudyBackend, seed: int | None, log):
        self.backend, self.seed, self.say = backend, seed, log or (lambda msg: None)
        self.runs: dict[str, Run] = {}
        self.teacher_keys = [r.key for r in backend.teacher_runs()]
        for r in backend.teacher_runs():
            self.runs[r.key] = r
        self.label_run = backend.label_model()
        self.runs[self.label_run.key] = self.label_run
        self.y_val = backend.val_targets()
        self.criterion = backend.criterion
        # name -> (weight, per-example predicted criterion at it, the keys of the runs the prediction used)
        self.predictions: dict[str, tuple] = {}
        # name -> (weight, the affine per-example prediction there, the per-example criterion trained there)
        self.affine_checks: dict[str, tuple] = {}
        self.bounds = (0.0, 1.0)
        self.training_wall = self.training_cpu = 0.0

    def student(self, w) -> str:
        """The key of the student at ``w``, trained the first time it is asked for."""
        w = float(w)
        key = student_key(w)
        if key not in self.runs:
            self.say(f"seed {self.seed}: student at gt_weight {w:g}")
            wall, cpu = time.perf_counter(), time.process_time()
            self.runs[key] = self.backend.student(w)
            # Time spent training (and loading) runs, kept apart from an estimator's own computation.
            self.training_wall += time.perf_counter() - wall
            self.training_cpu += time.process_time() - cpu
        return key

    def clock(self) -> tuple[float, float]:
        """Wall and CPU seconds so far, less the time spent in training runs (an estimator's own computation)."""
        return time.perf_counter() - self.training_wall, time.process_time() - self.training_cpu

    def val_criterion(self, run: Run) -> float:
        # "brier": the multi-class Brier score (summed over classes, mean over examples: the
        # normalisation of affine_optimal_weight); "mse": the mean over every entry.
        if run.val_outputs is None:
            return float("nan")
        if self.criterion == "brier":
            return brier_score(run.val_outputs, self.y_val)
        return float(np.mean((run.val_outputs - as_matrix(self.y_val, "y_val")) ** 2))

    def grid(self, weights) -> dict:
        keys = [self.student(w) for w in weights]
        return {"status": STATUS_OK, "run_keys": self.teacher_keys + keys, "curve": [
            {"gt_weight": self.runs[k].gt_weight, "val_criterion": self.val_criterion(self.runs[k]),
             "val": self.runs[k].val, "test": self.runs[k].test, "wall_time_s": self.runs[k].wall_time_s,
             "error": self.runs[k].error}
            for k in keys]}

    def end_points(self, use_teacher: bool):
        """``(key at weight 0, key of the labels end point, runs used, failure or None)`` of the affine
        estimators: the alpha = 0 student, and the teacher (``use_teacher``) or a student at weight 1."""
        k0 = self.student(0.0)
        k1 = self.label_run.key if use_teacher else self.student(1.0)
        used = self.teacher_keys + [k0] + ([] if use_teacher else [k1])
        for k in (k0, k1):
            if self.runs[k].val_outputs is None:
                return k0, k1, used, _failed(f"the end point {k} did not train ({self.runs[k].error})", used)
        return k0, k1, used, None

    def two_run(self, use_teacher: bool, bounds, grid, grid_entry: dict | None, name: str = "two_run") -> dict:
        """The two-run affine estimate: the alpha = 0 student and the labels end point (the teacher when
        ``use_teacher``, else a student at gt_weight 1), and its affine residuals against the grid."""
        started, cpu = self.clock()
        k0, k1, used, failure = self.end_points(use_teacher)
        if failure is not None:
            return failure
        p0, p1 = self.runs[k0].val_outputs, self.runs[k1].val_outputs
        est = affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=bounds)
        if est.degenerate:
            return _failed("the two end points predict the same on the validation set: every weight fits equally "
                           "(no information)", used, self.clock()[0] - started, endpoint_keys=[k0, k1])
        free = affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=None)
        lo, hi = affine_weight_interval(p0, p1, self.y_val, criterion=self.criterion, seed=self.seed or 0)
        entry = {"gt_weight": est.gt_weight, "unconstrained": est.unconstrained, "status": STATUS_OK,
                 "interval": clip_interval((lo, hi), bounds), "interval_unconstrained": [lo, hi],
                 "interval_kind": interval_kind(len(p0)),
                 "clip_reason": clip_reason(est.unconstrained, bounds, "two_run"),
                 "predicted_val_criterion": est.criterion_at_estimate,
                 "predicted_val_criterion_unconstrained": free.criterion_at_estimate,
                 "endpoint_keys": [k0, k1],
                 "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
                 "overhead_s": self.clock()[0] - started, "overhead_cpu_s": self.clock()[1] - cpu, "run_keys": used}
        # The per-example prediction at the estimate, for the check against the student trained there.
        self.predictions[name] = (est.gt_weight, affine_per_example(p0, p1, self.y_val, est.gt_weight,
                                                                     self.criterion), [k0, k1])
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

    def refined(self, use_teacher: bool, bounds) -> dict:
        """The two-run vertex; a student there (moved into [0.25, 0.75] to keep the points apart) as a third
        point; the vertex of the parabola through the three (exact for affine outputs); a student at it only
        when the third point is outside its 90% interval. At most 4 runs with the teacher (5 without)."""
        started, cpu = self.clock()
        k0, k1, used, failure = self.end_points(use_teacher)
        if failure is not None:
            return failure
        p0, p1 = self.runs[k0].val_outputs, self.runs[k1].val_outputs
        first = affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=bounds)
        if first.degenerate:
            return _failed("the two end points predict the same on the validation set (no information)", used)
        lo_b, hi_b = bounds if bounds is not None else (min(0.0, first.gt_weight), max(1.0, first.gt_weight))
        span = hi_b - lo_b
        probe = float(np.round(np.clip(first.gt_weight, lo_b + 0.25 * span, hi_b - 0.25 * span), 6))
        kp = self.student(probe)
        used = used + [kp]
        if self.runs[kp].val_outputs is None:
            return _failed(f"the student at the first estimate {probe:g} did not train ({self.runs[kp].error})", used)
        weights = [0.0, probe, 1.0]
        keys = [k0, kp, k1]
        per_ex = np.stack([per_example_criterion(self.runs[k].val_outputs, self.y_val, self.criterion) for k in keys])
        par = parabola_optimal_weight(weights, per_ex, bounds=bounds, seed=self.seed or 0)
        # The affine model's prediction at the third point, against what was trained there.
        affine_at_probe = float(affine_optimal_weight(p0, p1, self.y_val, criterion=self.criterion, bounds=None,
                                                      curve_weights=[probe]).criterion_values[0])
        lo, hi = par.interval
        # Train again only when the refinement leaves its own interval around the third point (or,
        # with no convex parabola, when the best measured point is not the third point).
        moved = par.concave or not (lo <= probe <= hi)
        final_w = probe
        if moved and abs(par.gt_weight - probe) > 1e-9:
            final_w = float(np.round(par.gt_weight, 6))
        entry = {"gt_weight": final_w, "unconstrained": par.unconstrained, "status": STATUS_OK,
                 "interval": clip_interval(par.interval, bounds), "interval_unconstrained": list(par.interval),
                 "interval_kind": interval_kind(per_ex.shape[1]) + f" (of the parabola's vertex; "
                                                                f"{par.interval_draws} draws convex)",
                 "clip_reason": clip_reason(par.unconstrained, bounds, "refined") if not par.concave else
                 (f"the criterion at gt_weight {weights} is {np.round(per_ex.mean(axis=1), 4).tolist()}: "
                  "not convex through the three points, so the best measured point is used"),
                 "first_estimate": first.gt_weight, "first_unconstrained": first.unconstrained,
                 "probe": probe, "parabola_weights": weights,
                 "parabola_values": per_ex.mean(axis=1).tolist(), "curvature": par.curvature,
                 "predicted_val_criterion": par.criterion_at_estimate,
                 "affine_at_probe": {"predicted": affine_at_probe, "trained": float(per_ex[1].mean())},
                 "retrained": bool(final_w != probe), "concave": bool(par.concave), "endpoint_keys": [k0, k1],
                 "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
                 "overhead_s": self.clock()[0] - started, "overhead_cpu_s": self.clock()[1] - cpu,
                 "run_keys": used}
        # Lagrange basis at the final weight: the parabola's per-example prediction there.
        basis = np.linalg.solve(np.vander(np.asarray(weights), 3).T, np.vander([final_w], 3)[0])
        self.predictions["refined"] = (final_w, basis @ per_ex, keys)
        self.affine_checks["refined"] = (probe, affine_per_example(p0, p1, self.y_val, probe, self.criterion),
                                         per_ex[1])
        return entry

    def pooled_points(self, use_teacher: bool, weights=POOLED_WEIGHTS):
        """``(keys, runs used, (len(weights), n) per-example criterion, failure or None)`` at ``weights``
        (ending at 1): students, and the labels end point (the teacher when ``use_teacher``) at 1."""
        keys = [self.label_run.key if (use_teacher and float(w) == 1.0) else self.student(w) for w in weights]
        used = self.teacher_keys + [k for k in keys if k not in self.teacher_keys]
        for w, k in zip(weights, keys):
            if self.runs[k].val_outputs is None:
                return keys, used, None, _failed(f"the student at gt_weight {w:g} did not train "
                                                 f"({self.runs[k].error})", used)
        per_ex = np.stack([per_example_criterion(self.runs[k].val_outputs, self.y_val, self.criterion) for k in keys])
        return keys, used, per_ex, None

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
        t_val = val_matrix(self.y_val, t_train.shape[1], criterion)

        def training_fit(rows) -> float:
            if criterion == "brier":
                return brier_score(train_out[rows], y_train[rows])
            return float(np.sum((train_out[rows] - t_train[rows]) ** 2) / train_out[rows].shape[0])

        def fit(kind, make_inputs) -> dict:
            cpu = time.process_time()
            entries = _fit(kind, make_inputs)
            for e in entries.values():
                e["overhead_cpu_s"] = time.process_time() - cpu
            return entries

        def _fit(kind, make_inputs) -> dict:
            started = time.perf_counter()
            try:
                inputs, kw = make_inputs()
                with warnings.catch_warnings():
                    # An unreachable ridge match is reported as the entry's status (and logged), not
                    # only as a warning on stderr.
                    warnings.simplefilter("ignore", UserWarning)
                    kest = kernel_surrogate_weights(*inputs, ridge="match", step=backend.step,
                                                    previous=backend.previous, bounds=bounds, **kw)
            except ValueError as err:
                return self._kernel_entries(None, time.perf_counter() - started, kind, jobs,
                                            f"{type(err).__name__}: {err}")
            status = STATUS_OK
            if kest.ridge_unreachable:
                status = (f"ridge match unreachable (the kernel's training fit gets no closer than "
                          f"{kest.train_residual:.4g} to the teacher's {kest.ridge_rule.split('(')[1].split(')')[0]}; "
                          f"the surrogate's optimum is not informative; try kernel='rbf' or the NTK)")
            return self._kernel_entries(kest, time.perf_counter() - started, kind, jobs, status)

        def features():
            f_train, f_val = backend.features(model, x_train), backend.features(model, x_val)
            return (f_train, t_train, f_val, t_val), dict(kernel=kernel, match_residual=training_fit(slice(None)),
                                                          **kernel_params)

        def ntk():
            n = len(y_train)
            m = n if ntk_subsample is None else min(int(ntk_subsample), n)
            idx = np.sort(np.random.default_rng(self.seed or 0).choice(n, size=m, replace=False))
            idx_t = torch.as_tensor(idx)
            gram = empirical_ntk_gram(model, x_train[idx_t])
            cross = empirical_ntk_gram(model, x_val, x_train[idx_t])
            return (gram, t_train[idx], cross, t_val), dict(kernel="precomputed", match_residual=training_fit(idx))

        entries = {}
        if any(e.endswith("features") for e in jobs):
            entries.update(fit("features", features))
        if any(e.endswith("ntk") for e in jobs):
            entries.update(fit("ntk", ntk))
        for name, e in entries.items():
            if e["status"] != STATUS_OK:
                self.say(f"seed {self.seed}: {name} {e['status']}")
        return entries

    def _kernel_entries(self, kest, cost: float, kind: str, jobs, status: str) -> dict:
        """The ``kernel_<kind>`` (validation optimum) and ``one_shot_<kind>`` entries asked for in ``jobs``,
        from one kernel-surrogate fit ``kest`` that cost ``cost`` seconds (``None`` if it raised)."""
        names = [n for n in (f"kernel_{kind}", f"one_shot_{kind}") if n in jobs]
        if status != STATUS_OK:
            extra = {} if kest is None else {"kernel": kest.to_dict()}
            return {name: _failed(status, self.teacher_keys, cost, **extra) for name in names}
        picks = {f"kernel_{kind}": (kest.validation, kest.validation_unconstrained),
                 f"one_shot_{kind}": (kest.one_shot, kest.one_shot_unconstrained)}
        bounds = self.bounds
        out = {}
        for name in names:
            entry = {"gt_weight": picks[name][0], "unconstrained": picks[name][1], "status": STATUS_OK,
                     "overhead_s": cost, "kernel": kest.to_dict(), "run_keys": list(self.teacher_keys),
                     "clip_reason": clip_reason(picks[name][1], bounds, "kernel"),
                     "interval": None, "interval_unconstrained": None,
                     "interval_kind": "none within one seed (the training data only); across seeds in the summary"}
            if name.startswith("kernel_") and kest.validation_interval is not None:
                entry.update(interval=clip_interval(kest.validation_interval, bounds),
                             interval_unconstrained=list(kest.validation_interval),
                             interval_kind=interval_kind(len(self.y_val)) + " (of the kernel's validation optimum)")
            out[name] = entry
        return out

    @staticmethod
    def final_weights(approaches: dict, teacher_as_alpha1: bool) -> list[float]:
        """The weights at which :meth:`train_finals` trains a student (the labels end point serves for 1)."""
        return sorted({float(e["gt_weight"]) for name, e in approaches.items()
                       if name != "grid" and e["status"] == STATUS_OK
                       and not (teacher_as_alpha1 and float(e["gt_weight"]) == 1.0)})

    def train_finals(self, approaches: dict, teacher_as_alpha1: bool) -> None:
        """One student at each estimate that succeeded (the labels end point serves for an estimate of 1
        when it may); an estimate whose student does not train is marked failed."""
        self.backend.train_ahead(self.final_weights(approaches, teacher_as_alpha1))
        for name, entry in approaches.items():
            if name == "grid" or entry["status"] != STATUS_OK:
                continue
            w = float(entry["gt_weight"])
            if teacher_as_alpha1 and w == 1.0:
                final = self.label_run.key        # the labels end point IS a draw of the alpha = 1 student
            else:
                final = self.student(w)
            entry["final_key"] = final
            if final not in entry["run_keys"]:
                entry["run_keys"] = entry["run_keys"] + [final]
            if self.runs[final].error:
                entry["status"] = f"the student at gt_weight {w:g} did not train ({self.runs[final].error})"

    def check_predictions(self, approaches: dict, seed_sd: float | None = None, seed_sd_source: str | None = None):
        """Predicted against achieved validation criterion at each estimate; the status says so in
        words when they differ by more than the floor: the larger of the 90% bootstrap half-width of
        the paired difference over validation examples and the seed-to-seed sd (``seed_sd``: of the
        teachers' validation criterion over seeds; within one seed, of the teacher against a student
        at gt_weight 1 when both were trained). Rerunnable: the status is rebuilt from the flags."""
        if seed_sd is None:
            at_one = self.runs.get(student_key(1.0))
            teacher = self.runs[self.teacher_keys[0]]
            if (at_one is not None and at_one.val_outputs is not None and at_one.key != teacher.key
                    and self.G0_is_labels):
                seed_sd = abs(self.val_criterion(at_one) - self.val_criterion(teacher)) / np.sqrt(2.0)
                seed_sd_source = "teacher against the student at gt_weight 1 (one pair of seeds)"
        for name, entry in approaches.items():
            if name == "grid" or entry.get("gt_weight") is None:
                continue
            flags = []
            final = self.runs.get(entry.get("final_key"))
            if name in self.predictions and final is not None and final.val_outputs is not None:
                w, pred, own = self.predictions[name]
                achieved = per_example_criterion(final.val_outputs, self.y_val, self.criterion)
                entry["achieved_val_criterion"] = float(achieved.mean())
                entry["predicted_val_criterion"] = float(pred.mean())
                if final.key in own:
                    entry["check"] = "none: the student at the estimate is one of the estimate's own points"
                else:
                    boot = paired_halfwidth(pred - achieved, self.seed or 0)
                    floor = max(boot, seed_sd or 0.0)
                    entry.update(seed_floor=floor, seed_floor_source=(
                        seed_sd_source if seed_sd is not None and seed_sd >= boot
                        else "90% bootstrap half-width over validation examples (paired)"))
                    gap = float(pred.mean() - achieved.mean())
                    entry["check"] = "holds" if abs(gap) <= floor else "fails"
                    if abs(gap) > floor:
                        flags.append(f"{_MODEL_WORDS.get(name, 'the model')} does not hold here: predicted "
                                     f"{pred.mean():.3f}, trained {achieved.mean():.3f} at gt_weight {w:g} "
                                     f"(floor {floor:.2g})")
            elif final is not None:
                entry["achieved_val_criterion"] = self.val_criterion(final)
                entry.setdefault("check", "none: this estimator predicts the kernel's criterion, not the network's")
            if name in self.affine_checks:
                w, pred, trained = self.affine_checks[name]
                boot = paired_halfwidth(pred - trained, self.seed or 0)
                floor = max(boot, seed_sd or 0.0)
                gap = float(pred.mean() - trained.mean())
                entry["affine_at_probe"].update(floor=floor, holds=bool(abs(gap) <= floor))
            if entry.get("concave"):
                flags.append(entry["clip_reason"])
            uncertain = uncertainty_flag(entry.get("interval"), self.bounds)
            if uncertain:
                flags.append(uncertain)
            # An estimate that is only uncertain is still the estimator's answer (kept when choosing).
            entry["uncertain"] = bool(uncertain)
            entry["only_uncertain"] = bool(uncertain) and len(flags) == 1
            entry["flags"] = flags
            if entry["status"] == STATUS_OK or entry.get("warned"):
                entry["status"] = STATUS_OK if not flags else "; ".join(flags)
                entry["warned"] = bool(flags)

    def itemise(self, approaches: dict) -> dict:
        """Every run and approach of the seed, with costs and results (the JSON form of the seed's study)."""
        runs = self.runs
        out = {"seed": self.seed, "criterion": self.criterion, "teacher_keys": self.teacher_keys, "approaches": {},
               "runs": {k: {"gt_weight": r.gt_weight, "wall_time_s": r.wall_time_s, "cpu_time_s": r.cpu_time_s,
                            "source": r.source, "test": r.test, "val": r.val,
                            "val_criterion": self.val_criterion(r), "error": r.error} for k, r in runs.items()}}
        users: dict[str, int] = {}
        for entry in approaches.values():
            for k in entry["run_keys"]:
                users[k] = users.get(k, 0) + 1
        for name, entry in approaches.items():
            keys = entry["run_keys"]
            # Each run once; what this study did not pay for (cached, given) costs nothing here and is marked.
            paid = [k for k in keys if runs[k].paid]
            entry["training_runs"] = len(keys)
            entry["new_runs"] = len(paid)
            entry["cached_runs"] = [k for k in keys if not runs[k].paid]
            entry["side_by_side_runs"] = [k for k in paid if runs[k].source != "trained"]
            entry["shared_runs"] = [k for k in keys if users[k] > 1 and k not in self.teacher_keys]
            entry["wall_time_s"] = float(sum(runs[k].wall_time_s for k in paid) + entry.get("overhead_s", 0.0))
            cpu = [runs[k].cpu_time_s for k in paid]
            entry["cpu_time_s"] = float(sum(cpu) + entry.get("overhead_cpu_s", entry.get("overhead_s", 0.0)))
            if name != "grid":
                final = runs.get(entry.get("final_key")) if entry.get("gt_weight") is not None else None
                entry["test"], entry["val"] = (final.test, final.val) if final is not None else (None, None)
                entry["val_criterion"] = self.val_criterion(final) if final is not None else float("nan")
            out["approaches"][name] = entry
        return out

    def result(self, itemised: dict, estimators, settings: dict) -> WeightEstimate:
        """The seed's :class:`WeightEstimate`: the first estimator asked for that succeeded (else the
        grid's best), its student, and the teacher, with the metrics computed on those modules."""
        approaches = itemised["approaches"]
        # The first estimator asked for whose status is "ok", else the first with a weight (its status
        # then warns in words), else the grid's best.
        chosen = next((n for n in estimators if approaches[n]["status"] == STATUS_OK
                       or approaches[n].get("only_uncertain")), None)
        if chosen is None:
            chosen = next((n for n in estimators if approaches[n].get("gt_weight") is not None
                           and approaches[n].get("final_key")), None)
        if chosen is None and "grid" in approaches:
            chosen = "grid"                            # its student was trained with the grid
            approaches["grid"]["final_key"] = student_key(approaches["grid"]["gt_weight"])
        teacher_run = self.runs[self.teacher_keys[-1]]
        final = self.runs[approaches[chosen]["final_key"]] if chosen is not None else None
        itemised.update(gt_weight=None if chosen is None else approaches[chosen]["gt_weight"], chosen=chosen,
                        settings=settings,
                        teacher={"val": teacher_run.val, "test": teacher_run.test, "checkpoint": teacher_run.checkpoint},
                        student=None if final is None else {"val": final.val, "test": final.test,
                                                            "checkpoint": final.checkpoint})
        return WeightEstimate.from_dict(itemised, teacher=teacher_run.model,
                                        student=None if final is None else final.model)


def _study_one_seed(backend: StudyBackend, *, grid, estimators, bounds, allow_any_weight: bool, teacher_as_alpha1: bool,
                    kernel: str, kernel_params: dict, ntk_subsample: int | None, seed: int | None, log,
                    settings: dict, finals: bool = True) -> tuple[_SeedStudy, dict]:
    """Teacher, grid, the estimates and their final runs for one seed; every cost itemised. ``finals=False``:
    stop after the estimates and return ``(study, approaches)`` for :func:`_finish_one_seed`."""
    study = _SeedStudy(backend, seed, log)
    study.G0_is_labels = teacher_as_alpha1
    approaches: dict[str, dict] = {}
    if grid is not None:
        approaches["grid"] = study.grid(grid)
    bounds_used = None if allow_any_weight else bounds
    study.bounds = bounds_used
    # "two_run": the labels end point is generation 0 when teacher_as_alpha1 (one run saved);
    # "two_run_student": always a student trained at gt_weight 1 (same seed streams as the alpha = 0
    # student, hence a less noisy path, one run more).
    for name in ("two_run", "two_run_student"):
        if name in estimators:
            use_teacher = teacher_as_alpha1 if name == "two_run" else False
            approaches[name] = study.two_run(use_teacher, bounds_used, grid, approaches.get("grid"), name)
    if "refined" in estimators:
        approaches["refined"] = study.refined(teacher_as_alpha1, bounds_used)
    if finals:        # this seed alone (with finals=False the caller pools every seed's points, once)
        if "pooled" in estimators:
            pool_seeds([(study, approaches)], teacher_as_alpha1, bounds_used)
        if "half_grid" in estimators:
            half_grid_seeds([(study, approaches)], teacher_as_alpha1)
    kernel_jobs = [e for e in estimators if not e.startswith("two_run") and e not in ("refined", "pooled", "half_grid")]
    if kernel_jobs:
        approaches.update(study.kernel_surrogates(kernel_jobs, kernel=kernel, kernel_params=kernel_params,
                                                  ntk_subsample=ntk_subsample, bounds=bounds_used))
    if not finals:
        return study, approaches
    return _finish_one_seed(study, approaches, estimators, teacher_as_alpha1)


def _finish_one_seed(study: _SeedStudy, approaches: dict, estimators, teacher_as_alpha1: bool) -> tuple[_SeedStudy, dict]:
    """The student at each estimate (found finished when trained ahead), the checks, the itemised seed."""
    study.train_finals(approaches, teacher_as_alpha1)
    study.check_predictions(approaches)
    # In the order asked for (the grid first): the order in which the chosen weight is looked for.
    ordered = {n: approaches[n] for n in (["grid"] if "grid" in approaches else []) + list(estimators)}
    return study, study.itemise(ordered)


def _check_estimators(estimators) -> list[str]:
    if isinstance(estimators, str):
        estimators = [estimators]
    if estimators is None:
        raise ValueError(f"`estimators` must name at least one of {sorted(ESTIMATORS)}; got None.")
    estimators = list(dict.fromkeys(estimators))
    if not estimators:
        raise ValueError(f"`estimators` must name at least one of {sorted(ESTIMATORS)} (default "
                         f"{list(DEFAULT_ESTIMATORS)}); got none.")
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
                       allow_any_weight: bool = False, teacher_as_alpha1: bool | None = None, kernel: str = "rbf",
                       kernel_params: dict | None = None, ntk_subsample: int | None = 500,
                       log: Callable[[str], None] | None = None, jobs: int | None = 1,
                       threads_per_job: int | None = 1, cache_dir=None) -> WeightStudy:
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
        Its ``generations`` is not read: ``generation`` says which student is studied, and the
        recorded config carries ``generations = generation + 1`` (the teacher's generations and the student's).
    estimators : names from :data:`ESTIMATORS`, in the order in which the chosen weight is looked for.
    allow_any_weight : unconstrained estimates ([DPR26]); students outside [0, 1] are then trained with
        ``allow_any_weight=True`` (sd_mse only; for sd_kd/sd_zs the config refuses such a weight and that run reports the error).
    teacher_as_alpha1 : use generation 0 as the alpha = 1 end point (default: when
        :func:`label_endpoint_is_generation_zero` holds for the method).
    kernel, kernel_params : the kernel on the teacher's features (default ``"rbf"``; ``"linear"``, ... with ``gamma``...).
    ntk_subsample : training examples used by the empirical-NTK estimators.
    jobs, threads_per_job : with ``jobs`` above 1 (``None``: one per core), the runs known in advance (every
        seed's teacher, the grid's students and the two-run end points) are trained first, that many at
        once, by the sweep's local runner (:func:`deepdistill.drivers.local_runner.run_local`); the students at
        the estimates follow, side by side too. Every run of the study then has ``threads_per_job`` torch threads.
    cache_dir : the generation cache the runs train in and share (:mod:`deepdistill.engine.runs`; default
        ``out_dir/generations``): a sweep's ``generations`` folder lends the study its teachers and students.

    Returns a :class:`~deepdistill.studies.weight_results.WeightStudy` (one
    :class:`~deepdistill.studies.weight_results.WeightEstimate` per seed, its summary over seeds, the chosen weight).
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
    # the config as the study ran it: its generations are the teacher's and the student's
    settings = {"config": {**config.to_dict(), "generations": generation + 1}, "generation": generation, "seeds": seeds,
                "grid": grid, "estimators": estimators, "allow_any_weight": allow_any_weight,
                "teacher_as_alpha1": teacher_as_alpha1, "criterion": "brier", "kernel": kernel,
                "kernel_params": dict(kernel_params or {}), "ntk_subsample": ntk_subsample}
    started = time.perf_counter()
    jobs, threads_per_job = resolve_jobs(jobs or None, threads_per_job, config.device)   # 0 or None: the default
    with torch_threads(threads_per_job if jobs != 1 else None):
        cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / GENERATIONS_FOLDER
        backends = [ConfigBackend(config.replace(seed=seed), out_dir / "runs" / f"seed_{seed}", generation, log=log,
                                  cache_dir=cache_dir, jobs=jobs, threads_per_job=threads_per_job) for seed in seeds]
        if jobs != 1:
            # What every seed needs before its estimates, all at once: teachers, grid students, two-run end points.
            ahead = set(grid or ()) | ({0.0} if {"two_run", "two_run_student", "refined", "pooled"} & set(estimators) else set())
            ahead |= {0.5} if "pooled" in estimators else set()
            ahead |= set(HALF_GRID_WEIGHTS[:-1]) if "half_grid" in estimators else set()
            ahead |= {1.0} if {"pooled", "half_grid"} & set(estimators) and not teacher_as_alpha1 else set()
            ahead |= {1.0} if "two_run_student" in estimators or ("two_run" in estimators and not teacher_as_alpha1) else set()
            run_local([item for b in backends for item in b.runs_ahead(sorted(ahead))], cache_dir, jobs=jobs,
                      threads_per_job=threads_per_job, log=log)
        estimated = []
        for i, (seed, backend) in enumerate(zip(seeds, backends)):
            if log:
                log(f"seed {seed} ({i + 1}/{len(seeds)})")
            estimated.append(_study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                                             allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1,
                                             kernel=kernel, kernel_params=dict(kernel_params or {}),
                                             ntk_subsample=ntk_subsample, seed=seed, log=log, settings={},
                                             finals=False))
        if "pooled" in estimators:
            pool_seeds(estimated, teacher_as_alpha1, None if allow_any_weight else (0.0, 1.0))
        if "half_grid" in estimators:
            half_grid_seeds(estimated, teacher_as_alpha1)
        if jobs != 1:
            # Every seed's students at its estimates, all at once (each seed then finds them finished).
            run_local([item for (st, approaches), b in zip(estimated, backends)
                       for item in b.runs_ahead(st.final_weights(approaches, teacher_as_alpha1))],
                      cache_dir, jobs=jobs, threads_per_job=threads_per_job, log=log)
        studies = [_finish_one_seed(st, approaches, estimators, teacher_as_alpha1) for st, approaches in estimated]
    finish_grid([itemised for _, itemised in studies])
    if len(studies) > 1:
        # The seed floor of the predicted-vs-trained check: the teachers are one draw per seed of the same run.
        crit = [st.val_criterion(st.runs[st.teacher_keys[-1]]) for st, _ in studies]
        seed_sd = float(np.std(crit, ddof=1))
        for study, itemised in studies:
            study.check_predictions(itemised["approaches"], seed_sd,
                                    f"sd over {len(studies)} seeds of the teacher's validation criterion")
    settings["elapsed_s"] = time.perf_counter() - started
    per_seed = []
    for study, itemised in studies:
        est = study.result(itemised, estimators, {})    # the study's settings are stated once, at the top
        # Checkpoints relative to out_dir, so that the folder may move.
        est.checkpoints = {k: os.path.relpath(v, out_dir) for k, v in est.checkpoints.items() if v}
        per_seed.append(est)
    chosen, gt_weight = chosen_over_seeds(per_seed, estimators)
    result = WeightStudy(per_seed=per_seed, gt_weight=gt_weight, chosen=chosen, settings=settings)
    result.save(out_dir)
    return result


# ------------------------------------------------------------------------------------------------
# Entry point 2: a user's own model and data loaders
# ------------------------------------------------------------------------------------------------

def estimate_gt_weight_for_model(train_fn: Callable, val_loader, *, test_loader=None, train_loader=None,
                                 grid: Sequence[float] | None = None,
                                 estimators: Iterable[str] = DEFAULT_ESTIMATORS, criterion: str = "brier",
                                 allow_any_weight: bool = False, teacher_as_alpha1: bool = True, teacher=None,
                                 kernel: str = "rbf", kernel_params: dict | None = None,
                                 ntk_subsample: int | None = 500, device="cpu", seed: int | None = None,
                                 out_dir=None, log: Callable[[str], None] | None = None) -> WeightEstimate:
    """Estimate the optimal ground-truth weight for your own network, training code and data loaders.

    Trains the teacher (``train_fn(None, None)``), what each estimator needs (``two_run``: one student
    at gt_weight 0; the kernel estimators: nothing), then one student at the chosen weight, and returns
    them with every estimate. See ``docs/theory.md`` section 6 for what each estimator assumes.

    Parameters
    ----------
    train_fn : ``train_fn(gt_weight, teacher) -> trained model``, or ``train_fn(gt_weight, teacher, seed)``.
        ``train_fn(None, None)`` trains the teacher on the labels; ``train_fn(w, teacher)`` a fresh
        student with ground-truth weight ``w`` (the weight on the LABELS; convert a teacher weight
        ``w_t`` as ``1 - w_t``). :func:`deepdistill.studies.weight_backends.make_train_fn` makes one from your
        model class and training loader with the toolkit's loop, seeded on every call.
    val_loader : yields ``(x, y)`` validation batches (labels for ``"brier"``, targets for ``"mse"``).
        A ``DataLoader`` is read in its dataset's order (its shuffling does not matter).
    test_loader : optional; test metrics of every trained network.
    train_loader : needed by the kernel estimators (the teacher's features on the training set).
    grid : weights for a reference grid search (``None``: no grid, the cheap estimates only).
    estimators : names from :data:`ESTIMATORS` (default :data:`DEFAULT_ESTIMATORS`: ``half_grid``), in the order
        in which the chosen weight is looked for: the first whose status is "ok" (else the first with a
        weight) gives ``result.gt_weight`` and ``result.student``.
    criterion : ``"brier"`` (classification: probabilities against labels) or ``"mse"`` (regression:
        the network's raw outputs against the targets).
    teacher_as_alpha1 : generation 0 serves as the alpha = 1 end point; set ``False`` if your student
        at ``gt_weight = 1`` does NOT train like your teacher (then one more run).
    teacher : an already trained teacher (its training cost is then not counted).
    seed : ``None`` (default): ``train_fn`` is called without a seed and seeds itself
        (``make_train_fn``'s own ``seed``); an integer is passed on every call as ``train_fn(...,
        seed=seed)`` (your ``train_fn`` must then take a ``seed`` argument) and seeds the NTK subsample.
    out_dir : where to :meth:`~deepdistill.studies.weight_results.WeightEstimate.save` the result (``None``: nothing written).

    Returns a :class:`~deepdistill.studies.weight_results.WeightEstimate`: ``gt_weight``, ``chosen``,
    ``estimators`` (weight, unconstrained optimum, status, runs and wall time of each), ``teacher`` and
    ``student`` with their ``teacher_metrics`` / ``student_metrics``, and ``grid``.
    """
    criterion = check_criterion(criterion)
    estimators = _check_estimators(estimators)
    grid = _check_grid(grid, allow_any_weight)
    if val_loader is None:
        raise ValueError("`val_loader` is required: the estimators judge each weight on validation (x, y) batches; "
                         "got None.")
    if not callable(train_fn):
        raise TypeError(f"`train_fn` must be callable as train_fn(gt_weight, teacher); got {type(train_fn).__name__}.")
    kernel_names = [e for e in estimators if e.startswith(("kernel_", "one_shot_"))]
    if train_loader is None and kernel_names:
        raise ValueError(f"estimators {kernel_names} need `train_loader` "
                         "(the teacher's features or NTK on the training set); pass it, or use estimators=('refined',) or ('two_run',).")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"`seed` must be None or an integer; got {seed!r}.")
    started = time.perf_counter()
    backend = CallableBackend(train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log,
                              seed=seed)
    width = getattr(train_fn, "num_outputs", None)          # make_train_fn's: checked before anything trains
    if criterion == "brier" and isinstance(width, int):
        check_output_width(width, backend.y_val, "val_loader", "train_fn's network")
        if backend.test is not None:
            check_output_width(width, backend.test[1], "test_loader", "train_fn's network")
    settings = {"grid": grid, "estimators": estimators, "allow_any_weight": allow_any_weight,
                "teacher_as_alpha1": teacher_as_alpha1, "kernel": kernel, "kernel_params": dict(kernel_params or {}),
                "ntk_subsample": ntk_subsample, "seed": seed, "criterion": criterion}
    study, itemised = _study_one_seed(backend, grid=grid, estimators=estimators, bounds=(0.0, 1.0),
                                      allow_any_weight=allow_any_weight, teacher_as_alpha1=teacher_as_alpha1,
                                      kernel=kernel, kernel_params=dict(kernel_params or {}),
                                      ntk_subsample=ntk_subsample, seed=seed, log=log, settings=settings)
    finish_grid([itemised])
    settings["elapsed_s"] = time.perf_counter() - started
    result = study.result(itemised, estimators, settings)
    if out_dir is not None:
        result.save(out_dir)
    return result
