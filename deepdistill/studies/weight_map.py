"""The map: where self-distillation helps, and whether each weight estimator finds the weight there.

One study over cells ``(data set, label noise, training-set size)``. Per cell, with symmetric label
noise, several seeds and the KD student of generation 1 (method ``sd_kd``: ``gt_weight CE + (1 -
gt_weight) T^2 KL``), :func:`deepdistill.studies.weight_estimation.estimate_gt_weight` trains

* the grid over ``gt_weight`` (students at every weight, one shared teacher per seed), and
* every estimator (the library's default first, then the others of the preset), each with its final
  student, its status and its cost,

through the toolkit's generation cache (:mod:`deepdistill.engine.runs`) and, with ``jobs > 1``, the
sweep's local runner (:func:`deepdistill.drivers.local_runner.run_local`). The cell keeps:

* the grid's curve (mean validation Brier score and test accuracy per weight over seeds), the weight a
  grid search picks (the lowest mean validation Brier score) and its test accuracy and sd over seeds;
* the gain of that student over the teacher (mean over seeds of the paired difference in test
  accuracy) and whether it exceeds seed noise: ``|gain| > z * sd(paired differences) / sqrt(seeds)``
  (``gain_z``, default 2: an approximate two-sided test of the paired mean; always ``False`` with one seed);
* per estimator: weight per seed and its mean, the unconstrained optimum, the interval and the
  predicted/achieved validation numbers when the estimator reports them (read defensively: these
  fields are newer than this module), the achieved test accuracy, status per seed, training runs and
  wall time per seed;
* the kernel surrogates' prediction (``kernel_*`` and ``one_shot_*`` estimators, clipped and unconstrained).

Negative weights ([DS23]). ``sd_kd`` refuses ``gt_weight < 0``: the cross-entropy term then has a
negative coefficient and the loss is unbounded below (:mod:`deepdistill.core.config` refuses it even with
``allow_any_weight``). Das & Sanghavi's claim (at high label noise the optimal TEACHER weight exceeds
1, i.e. the optimal ``gt_weight`` is below 0, for linear models trained with cross-entropy and a ridge) is
therefore tested in the cells of noise ``>= negative_from`` with the one teacher-based classification
loss that stays bounded below for any weight, ``sd_mse`` ([BA21]'s squared error of the softmax to the
mixed target), on its own grid ``negative_grid`` (weights below 0 and the reference weights 0 and 1).
Reported either way: the weight of its best mean validation Brier score and of its best mean test accuracy.

Must show (:func:`summarize`, the issue's section 5):

1. the default estimator's mean test accuracy within one grid sd (the sd over seeds of the test
   accuracy at the grid's pick) of the grid's pick, at no more than half the grid's training runs
   (per seed, the teacher counted in both), in at least 90% of the cells;
2. every cell whose accuracy is outside that has a status other than ``"ok"`` in at least one seed (an
   ``"ok"`` cell outside counts as a failure; the cost ratio is structural and needs no status);
3. in at least 80% of the cells whose gain exceeds seed noise, the estimator predicts its sign:
   distillation helps (gain > 0) exactly when its mean weight is below 1 by at least half the grid's step
   (a weight the grid cannot tell from 1 predicts "labels alone");
4. whether ``gt_weight < 0`` is optimal at high noise ([DS23]), as a fraction of those cells.

Cells are fixed before any run in :data:`PRESETS` and never tuned on: the estimators' developers do not see them.

Resumable: each cell is written atomically to ``out_dir/cells/<cell>.json`` with its settings; a rerun
reads a finished cell back and trains nothing; an interrupted cell resumes from the generation cache.

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; [DS23] Das & Sanghavi,
"Understanding self-distillation in the presence of label noise", ICML 2023, arXiv 2301.13304.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from deepdistill.core.io import atomic_write_json, read_json

__all__ = ["MapPreset", "PRESETS", "get_preset", "cell_list", "run_weight_map", "read_weight_map", "summarize",
           "summarize_split", "development_cells", "estimator_table",
           "summarize_cell", "format_summary", "THRESHOLDS", "SCHEMA"]

SCHEMA = "deepdistill.weight_map/1"
#: The issue's must-show thresholds.
THRESHOLDS = {"within_fraction": 0.9, "cost_ratio": 0.5, "sign_fraction": 0.8}
_GRID_11 = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 10))


@dataclass(frozen=True)
class MapPreset:
    """Every setting of the map. ``datasets``: one dict per data set with ``dataset``, ``model``,
    ``sizes`` (``n_train`` values; ``None`` is the data set's full pool), ``epochs`` and optional
    ``model_kwargs``, ``data_options``, ``batch_size``, ``lr``."""

    name: str
    datasets: tuple
    noise_levels: tuple = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    seeds: tuple = (0, 1, 2)
    method: str = "sd_kd"
    grid: tuple = _GRID_11
    estimators: tuple | None = None        # None: the library's DEFAULT_ESTIMATORS, then kernel_features
    extra_estimators: tuple = ("two_run", "kernel_features")
    kernel: str = "rbf"
    ntk_subsample: int = 200
    negative_from: float = 0.3
    negative_method: str = "sd_mse"
    negative_grid: tuple = (-1.0, -0.5, -0.25, 0.0, 0.5, 1.0)
    gain_z: float = 2.0

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: The middle training-set size of every data set of the full preset, with its settings (the fresh seeds' cells).
_MIDDLE_SIZES = (
    {"dataset": "mnist1d", "model": "cnn1d", "sizes": (1500,), "epochs": 30},
    {"dataset": "digits", "model": "mlp", "sizes": (700,), "epochs": 30},
    {"dataset": "gaussian_mixture", "model": "mlp", "sizes": (1000,), "epochs": 30, "model_kwargs": {"hidden": 64}},
    {"dataset": "mnist_5k", "model": "cnn2d", "sizes": (1500,), "epochs": 20},
)

#: The full preset's data sets, models and sizes (the issue's cells).
_FULL_DATASETS = (
    {"dataset": "mnist1d", "model": "cnn1d", "sizes": (500, 1500, None), "epochs": 30},
    {"dataset": "digits", "model": "mlp", "sizes": (300, 700, None), "epochs": 30},
    {"dataset": "gaussian_mixture", "model": "mlp", "sizes": (200, 1000, None), "epochs": 30,
     "model_kwargs": {"hidden": 64}},
    {"dataset": "mnist_5k", "model": "cnn2d", "sizes": (500, 1500, None), "epochs": 20},
)

PRESETS = {
    # CI: one data set, two noise levels, one size, one seed, a tiny network, a few epochs (seconds).
    "fast": MapPreset(
        name="fast", noise_levels=(0.0, 0.4), seeds=(0,), negative_grid=(-0.5, 0.0, 1.0),
        datasets=({"dataset": "gaussian_mixture", "model": "mlp", "sizes": (200,), "epochs": 8, "batch_size": 32,
                   "model_kwargs": {"hidden": 16, "depth": 1}},)),
    # The cells, fixed before any run (too big for 2 CPU cores: hours; the report's preset). The
    # estimators are named, not taken from the library's default, so the cells stay the same when it changes.
    "full": MapPreset(
        name="full", estimators=("half_grid", "two_run", "refined", "kernel_features"),
        datasets=_FULL_DATASETS),
    # Fresh cells for the default chosen on the development cells (half_grid, 2026-12-07): every 72 cells of
    # seeds 0-2 had been seen by then, so its confirmation uses new seeds (3-5) of the middle size of every data
    # set, fixed before any of them ran; without the Das & Sanghavi grid (measured on the test cells).
    "fresh": MapPreset(
        name="fresh", seeds=(3, 4, 5), estimators=("half_grid", "two_run", "refined"), negative_from=2.0,
        datasets=_MIDDLE_SIZES),
    # A second replicate of the fresh cells (seeds 6-8), fixed before any of them ran (2026-12-07, after the
    # fresh cells): new test cells for the default, and with the full and fresh maps three disjoint seed sets of
    # the same 24 cells, so that a pick made on one set can be judged on another (:mod:`deepdistill.studies.weight_map_cross`).
    "replicate": MapPreset(
        name="replicate", seeds=(6, 7, 8), estimators=("half_grid", "two_run", "refined"), negative_from=2.0,
        datasets=_MIDDLE_SIZES),
    # A third set of unseen seeds (9-11) of the same 24 cells, fixed before any of them ran (2026-12-07, after the
    # replicate cells): the test of the half grid's two-level (seeds, then examples) interval and its status,
    # decided before the run; the examples-only interval is kept beside it in every cell, to compare.
    "holdout": MapPreset(
        name="holdout", seeds=(9, 10, 11), estimators=("half_grid", "two_run", "refined"), negative_from=2.0,
        datasets=_MIDDLE_SIZES),
    # The map's own 72 cells (the full preset's settings) on seeds no run had used (12-14), fixed before any of
    # them ran (2026-12-08): every cell of seeds 0-2 had been seen by then, and the fresh/replicate/holdout seeds
    # tested the default on the middle size only. Nothing in ``half_grid`` changed after the holdout cells. The
    # cells run size by size (every data set small, then middle, then the full pool), so that a run cut short
    # still covers every data set; without the Das & Sanghavi grid (measured on the test cells) and without
    # ``refined``, to fit the run on 2 CPU cores.
    "confirm": MapPreset(
        name="confirm", seeds=(12, 13, 14), estimators=("half_grid", "two_run"), negative_from=2.0,
        datasets=tuple({**d, "sizes": (d["sizes"][i],)} for i in range(3) for d in _FULL_DATASETS)),
    # The same 72 cells on seeds 15-17, fixed before any of them ran (2026-12-08, after the confirm map): a
    # replicate of the confirm map, nothing changed in the estimators; its readings are declared before it runs
    # (docs/weight_map.md section 11).
    "confirm2": MapPreset(
        name="confirm2", seeds=(15, 16, 17), estimators=("half_grid", "two_run"), negative_from=2.0,
        datasets=tuple({**d, "sizes": (d["sizes"][i],)} for i in range(3) for d in _FULL_DATASETS)),
    # The subset measured on 2 shared CPU cores: the full preset's settings, two data sets, three noise levels,
    # the small size and the full pool (its cells are cells of "full": nothing chosen after seeing results).
    "subset": MapPreset(
        name="subset", noise_levels=(0.0, 0.2, 0.4), estimators=("refined", "two_run", "kernel_features", "pooled", "half_grid"),
        datasets=({"dataset": "digits", "model": "mlp", "sizes": (300, None), "epochs": 30},
                  {"dataset": "gaussian_mixture", "model": "mlp", "sizes": (200, None), "epochs": 30,
                   "model_kwargs": {"hidden": 64}})),
}


def development_cells() -> frozenset:
    """The slugs of the cells seen while the default estimator and the "uncertain" threshold were chosen
    (the ``subset`` preset's 12 cells, run on 2026-12-07 before either choice). Every other cell of the
    ``full`` preset is a test cell: :func:`summarize` reports the two apart."""
    return frozenset(c["slug"] for c in cell_list("subset"))


def get_preset(preset) -> MapPreset:
    if isinstance(preset, MapPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown weight-map preset {preset!r}; valid names: {sorted(PRESETS)} (or a MapPreset).")
    return PRESETS[preset]


def cell_list(preset) -> list[dict]:
    """The cells of ``preset`` in order: ``{"dataset", "model", "noise", "n_train", "slug", "setting"}``."""
    p = get_preset(preset)
    cells = []
    for d in p.datasets:
        for size in d["sizes"]:
            for noise in p.noise_levels:
                slug = f"{d['dataset']}_noise{float(noise):.2f}_n{'pool' if size is None else int(size)}"
                cells.append({"dataset": d["dataset"], "model": d["model"], "noise": float(noise),
                              "n_train": None if size is None else int(size), "slug": slug, "setting": d})
    return cells


# ------------------------------------------------------------------------------------------------
# Reading a WeightStudy defensively (its fields grow: intervals, predicted vs achieved, CPU time)
# ------------------------------------------------------------------------------------------------

def _field(entry, name, default=None):
    """``entry.name``, else ``entry.details[name]``, else ``default``."""
    value = getattr(entry, name, None)
    if value is None:
        value = (getattr(entry, "details", None) or {}).get(name)
    return default if value is None else value


def _accuracy(metrics) -> float:
    if not isinstance(metrics, dict) or metrics.get("accuracy") is None:
        return math.nan
    return float(metrics["accuracy"])


def _num(x) -> float:
    """A stored number as a float; ``None`` (how JSON stores NaN) as NaN."""
    return math.nan if x is None else float(x)


def _mean_sd(values) -> tuple[float, float]:
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return math.nan, math.nan
    return float(statistics.fmean(v)), (float(statistics.stdev(v)) if len(v) > 1 else math.nan)


def _estimator_row(name: str, entries: list) -> dict:
    weights = [_field(e, "gt_weight") for e in entries]
    ok_weights = [w for w in weights if w is not None]
    acc = [_accuracy(_field(e, "test")) for e in entries]
    mean_acc, sd_acc = _mean_sd(acc)
    statuses = [str(_field(e, "status", "ok")) for e in entries]
    return {"name": name, "gt_weight": weights,
            "gt_weight_mean": float(statistics.fmean(ok_weights)) if ok_weights else None,
            "unconstrained": [_field(e, "unconstrained") for e in entries],
            "interval": [_field(e, "interval") for e in entries],
            "interval_kind": [_field(e, "interval_kind") for e in entries],
            "predicted_val_criterion": [_field(e, "predicted_val_criterion") for e in entries],
            "achieved_val_criterion": [_field(e, "achieved_val_criterion", _field(e, "val_criterion")) for e in entries],
            "test_accuracy": acc, "test_accuracy_mean": mean_acc, "test_accuracy_sd": sd_acc,
            "status": statuses, "ok": all(s == "ok" for s in statuses),
            "training_runs": [int(_field(e, "training_runs", 0)) for e in entries],
            "wall_time_s": [float(_field(e, "wall_time_s", math.nan)) for e in entries],
            "cpu_time_s": [_field(e, "cpu_time_s") for e in entries],
            **{k: [_field(e, k) for e in entries] for k in ("clip_reason", "seed_floor", "new_runs", "cached_runs",
                                                              "shared_runs", "interval_examples")}}


def _teacher_val(runs: dict, teacher_keys) -> float:
    """The teacher's validation criterion in one seed's itemised runs (NaN when not recorded)."""
    run = (runs or {}).get(teacher_keys[-1]) if teacher_keys else None
    value = run.get("val_criterion") if isinstance(run, dict) else None
    return math.nan if value is None else float(value)


def _with_teacher_val(root: Path, p: MapPreset, cell: dict, estimators: tuple, stored: dict) -> dict:
    """``stored`` (a finished cell) with ``teacher_val_criterion`` filled in from its study's JSON when the
    cell predates that field (maps run before 2026-12-08); unchanged when the study is not at hand."""
    if stored.get("teacher_val_criterion") is not None:
        return stored
    study = read_json(_study_dir(root, cell, _cell_key(p, cell, estimators)) / "estimate_weight.json")
    if not isinstance(study, dict) or len(study.get("per_seed") or ()) != len(stored.get("seeds") or ()):
        return stored
    return {**stored, "teacher_val_criterion": [_teacher_val(s.get("runs"), s.get("teacher_keys"))
                                                for s in study["per_seed"]]}


def _teacher_end(cell: dict, gain_z: float) -> dict | None:
    """The grid read with the teacher as its labels-alone point (gt_weight 1) instead of its own student at 1,
    as ``half_grid`` and the user's own study use it: the pick, its accuracy and sd, the gain over the
    teacher (0 where the pick is the teacher) and whether it exceeds seed noise. ``None`` when the cell
    lacks what it needs (the teacher's validation criterion, a grid ending at 1). Why: the student at 1 and
    the teacher both train on the labels alone, from different seeds; on the weight map they differ by about
    4 points of test accuracy per seed pair (docs/weight_map.md section 10), so a grid whose pick is its
    own student at 1 can be a lucky label-only run that no estimator using the teacher can match."""
    g, tv = cell["grid"], cell.get("teacher_val_criterion")
    weights = [float(w) for w in g.get("weights") or ()]
    teacher = [_num(a) for a in cell["teacher_test_accuracy"]]
    if (not tv or any(v is None or math.isnan(float(v)) for v in tv) or not weights
            or abs(weights[-1] - 1.0) > 1e-9 or "val_criterion_mean" not in g):
        return None
    val = list(g["val_criterion_mean"][:-1]) + [statistics.fmean(float(v) for v in tv)]
    rows = [[_num(a) for a in r] for r in g["test_accuracy"][:-1]] + [teacher]
    pick = int(np.nanargmin(val))
    gain, _, exceeds = _paired_gain(rows[pick], teacher, gain_z)
    best_mean, best_sd = _mean_sd(rows[pick])
    return {"best_weight": weights[pick], "best_accuracy": best_mean, "grid_sd": best_sd, "gain": gain,
            "gain_exceeds_noise": exceeds}


def _paired_gain(best, teacher, gain_z: float) -> tuple[float, float, bool]:
    """``(gain, noise, exceeds)``: the mean over seeds of the paired differences ``best - teacher``, its
    standard error, and whether ``|gain| > gain_z`` standard errors (never with one seed)."""
    diffs = [b - t for b, t in zip(best, teacher) if not (math.isnan(b) or math.isnan(t))]
    gain = float(statistics.fmean(diffs)) if diffs else math.nan
    noise = (float(statistics.stdev(diffs)) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.nan
    return gain, noise, bool(len(diffs) > 1 and abs(gain) > gain_z * noise)


def _grid_rows(per_seed) -> dict:
    """The grid's curve over seeds: mean validation criterion and test accuracy per weight, the pick."""
    curves = [{float(c["gt_weight"]): c for c in s.grid.details["curve"]} for s in per_seed]
    weights = sorted(curves[0])
    val = [statistics.fmean(float(c[w]["val_criterion"]) for c in curves) for w in weights]
    acc = [[_accuracy(c[w].get("test")) for c in curves] for w in weights]
    pick = int(np.nanargmin(val))
    mean_acc = [_mean_sd(a)[0] for a in acc]
    return {"weights": weights, "val_criterion_mean": val, "test_accuracy": acc, "test_accuracy_mean": mean_acc,
            "best_weight": weights[pick], "best_test_accuracy": acc[pick],
            "oracle_weight": weights[int(np.nanargmax(mean_acc))],
            "training_runs": [int(_field(s.grid, "training_runs", 0)) for s in per_seed],
            "wall_time_s": [float(_field(s.grid, "wall_time_s", math.nan)) for s in per_seed]}


def summarize_cell(cell: dict, gain_z: float = 2.0, default: str | None = None) -> dict:
    """Derived numbers of one cell: gain and its noise, and per estimator whether it is within one grid sd
    of the grid's pick, at what cost ratio, and whether it predicts the gain's sign. Pure: reads the cell only."""
    g = cell["grid"]
    best = [_num(a) for a in g["best_test_accuracy"]]
    teacher = [_num(a) for a in cell["teacher_test_accuracy"]]
    gain, noise, exceeds = _paired_gain(best, teacher, gain_z)
    best_mean, best_sd = _mean_sd(best)
    tolerance = 0.0 if math.isnan(best_sd) else best_sd            # one seed: no sd, the estimator must match the pick
    grid_runs = statistics.fmean(g["training_runs"]) if g["training_runs"] else math.nan
    weights = sorted(float(x) for x in g.get("weights", ()))
    half_step = 0.5 * min(np.diff(weights)) if len(weights) > 1 else 0.05
    # Where the grid's own pick is labels alone (gt_weight 1), the "gain" compares two trainings on the labels
    # (the student at 1 against the teacher): seed noise, not distillation (docs/weight_map.md section 10).
    picks_labels = bool(float(g["best_weight"]) >= 1.0 - half_step - 1e-12)
    out = {"gain": gain, "gain_noise": noise, "gain_exceeds_noise": exceeds, "grid_best_accuracy": best_mean,
           "grid_sd": best_sd, "grid_picks_labels": picks_labels, "estimators": {},
           "teacher_end": _teacher_end(cell, gain_z)}
    te = out["teacher_end"]
    for name, e in cell["estimators"].items():
        acc = _num(e["test_accuracy_mean"])
        runs = statistics.fmean(e["training_runs"]) if e["training_runs"] else math.nan
        within_accuracy = bool(not math.isnan(acc) and acc >= best_mean - tolerance - 1e-12)
        cost_ratio = runs / grid_runs if grid_runs else math.nan
        w = e["gt_weight_mean"]
        # "distil" means a weight the grid can tell from 1: below 1 by at least half the grid's step
        predicts_gain = None if w is None else bool(w < 1.0 - half_step)
        # how honest the intervals are: the share of seeds whose interval holds the grid's own pick
        ivs = [iv for iv in e.get("interval") or () if iv and len(iv) == 2 and None not in iv]
        covers = (statistics.fmean(float(lo) - 1e-9 <= float(g["best_weight"]) <= float(hi) + 1e-9 for lo, hi in ivs)
                  if ivs else math.nan)
        out["estimators"][name] = {
            "within_accuracy": within_accuracy, "accuracy": acc, "runs": runs, "cost_ratio": cost_ratio,
            "within": within_accuracy and cost_ratio <= THRESHOLDS["cost_ratio"] + 1e-12,
            "accuracy_loss": best_mean - acc if not math.isnan(acc) else math.nan,
            "weight_error": None if w is None else w - float(g["best_weight"]),
            "ok": e["ok"], "predicts_gain": predicts_gain, "interval_covers_grid_pick": covers,
            "right_sign": None if (predicts_gain is None or not exceeds) else predicts_gain == (gain > 0)}
        if te is not None:
            tol = 0.0 if math.isnan(te["grid_sd"]) else te["grid_sd"]
            te_accuracy = bool(not math.isnan(acc) and acc >= te["best_accuracy"] - tol - 1e-12)
            out["estimators"][name]["teacher_end"] = {
                "within_accuracy": te_accuracy,
                "within": te_accuracy and cost_ratio <= THRESHOLDS["cost_ratio"] + 1e-12,
                "right_sign": (None if (predicts_gain is None or not te["gain_exceeds_noise"])
                               else predicts_gain == (te["gain"] > 0))}
    out["default"] = default or cell.get("default_estimator")
    return out


def summarize_split(cells: list[dict], gain_z: float = 2.0, default: str | None = None, seeds=None) -> dict:
    """:func:`summarize` over the development cells and over the test cells apart (see
    :func:`development_cells`): ``{"development": ..., "test": ...}`` (``None`` where a part has no cell).
    ``seeds``: the map's seeds; the development cells were seen on the ``subset`` preset's seeds only, so on
    other seeds (``fresh``, ``confirm``, ...) every cell is a test cell."""
    dev = development_cells() if seeds is None or tuple(seeds) == tuple(get_preset("subset").seeds) else frozenset()
    parts = {"development": [c for c in cells if c["slug"] in dev], "test": [c for c in cells if c["slug"] not in dev]}
    return {k: (summarize(v, gain_z, default) if v else None) for k, v in parts.items()}


def summarize(cells: list[dict], gain_z: float = 2.0, default: str | None = None) -> dict:
    """The must-show statistics over ``cells`` (dicts as :func:`run_weight_map` stores them).

    ``within_fraction``: share of cells where the default estimator is within one grid sd of the grid's
    pick at ``<=`` half its runs; ``outside_ok``: slugs of the cells outside that with status ``"ok"`` in
    every seed (failures); ``sign_fraction``: share of the gain-exceeding-noise cells where the default
    predicts the sign; ``negative_optimal``: share of the [DS23] cells where a weight below 0 is best.
    Each estimator gets the same numbers under ``per_estimator``.
    """
    derived = [(c, summarize_cell(c, gain_z)) for c in cells]
    derived_of = {c["slug"]: d for c, d in derived}
    names = list(dict.fromkeys(n for c in cells for n in c["estimators"]))
    per = {}
    for name in names:
        rows = [(c, d["estimators"][name]) for c, d in derived if name in d["estimators"]]
        signed = [(c, r) for c, r in rows if r["right_sign"] is not None]
        distilling = [(c, r) for c, r in signed if not derived_of[c["slug"]]["grid_picks_labels"]]
        # "outside" is about accuracy (what a status can warn of); the cost ratio is counted in "within"
        outside = [c["slug"] for c, r in rows if not r["within_accuracy"]]
        per[name] = {"cells": len(rows), "within": sum(r["within"] for _, r in rows),
                     "within_accuracy": sum(r["within_accuracy"] for _, r in rows),
                     "within_fraction": (sum(r["within"] for _, r in rows) / len(rows)) if rows else math.nan,
                     "outside": outside,
                     "outside_ok": [c["slug"] for c, r in rows if not r["within_accuracy"] and r["ok"]],
                     # cells with a warning in some seed, and how the "ok" ones fared: a status that warns
                     # everywhere would meet must-show 2 and say nothing
                     "flagged": sum(not r["ok"] for _, r in rows),
                     "within_when_ok": sum(r["within"] for _, r in rows if r["ok"]),
                     "ok_cells": sum(r["ok"] for _, r in rows),
                     "sign_cells": len(signed), "right_sign": sum(r["right_sign"] for _, r in signed),
                     "sign_fraction": (sum(r["right_sign"] for _, r in signed) / len(signed)) if signed else math.nan,
                     # the same, without the cells whose grid pick is labels alone (their gain is not distillation's)
                     "sign_cells_distilling": len(distilling),
                     "right_sign_distilling": sum(r["right_sign"] for _, r in distilling),
                     "mean_accuracy_loss": _mean_sd([r["accuracy_loss"] for _, r in rows])[0],
                     "mean_abs_weight_error": _mean_sd([abs(r["weight_error"]) for _, r in rows
                                                        if r["weight_error"] is not None])[0],
                     "mean_cost_ratio": _mean_sd([r["cost_ratio"] for _, r in rows])[0],
                     "interval_covers_grid_pick": _mean_sd([r.get("interval_covers_grid_pick") for _, r in rows])[0],
                     "teacher_end": _teacher_end_counts(rows)}
    if default is None:
        defaults = [c.get("default_estimator") for c in cells]
        default = defaults[0] if defaults and all(d == defaults[0] for d in defaults) else None
    ds = [c["das_sanghavi"] for c in cells if c.get("das_sanghavi")]
    negative = {"cells": len(ds),
                "negative_by_val": sum(bool(d["best_weight_val"] < 0) for d in ds),
                "negative_by_test": sum(bool(d["best_weight_test"] < 0) for d in ds)}
    negative["fraction_by_val"] = negative["negative_by_val"] / len(ds) if ds else math.nan
    negative["fraction_by_test"] = negative["negative_by_test"] / len(ds) if ds else math.nan
    d = per.get(default, {}) if default else {}
    must = [
        {"must_show": "default within one grid sd of the grid's pick, at <= half the grid's runs",
         "measured": d.get("within_fraction", math.nan), "threshold": THRESHOLDS["within_fraction"],
         "passed": bool(d and d["within_fraction"] >= THRESHOLDS["within_fraction"])},
        {"must_show": "every cell outside one grid sd has a non-'ok' status (count of 'ok' cells outside)",
         "measured": len(d.get("outside_ok", [])) if d else math.nan, "threshold": 0,
         "passed": bool(d) and not d["outside_ok"]},
        {"must_show": "right sign of the gain where it exceeds seed noise",
         "measured": d.get("sign_fraction", math.nan), "threshold": THRESHOLDS["sign_fraction"],
         # None: no cell's gain exceeds seed noise, so there is no sign to get right (neither pass nor fail)
         "passed": (None if d and not d["sign_cells"] else
                    bool(d and d["sign_fraction"] >= THRESHOLDS["sign_fraction"]))},
    ]
    return {"default_estimator": default, "cells": len(cells), "per_estimator": per, "must_show": must,
            "das_sanghavi": negative, "gain_cells": sum(x["gain_exceeds_noise"] for _, x in derived),
            "derived": {c["slug"]: x for c, x in derived}}


def _teacher_end_counts(rows) -> dict:
    """The must-show counts against the grid read with the teacher as its labels-alone point (cells that
    have it): within one grid sd at <= half the runs, "ok" cells outside, right sign where the gain
    exceeds seed noise."""
    te = [(c, r["teacher_end"], r["ok"]) for c, r in rows if r.get("teacher_end") is not None]
    signed = [t["right_sign"] for _, t, _ in te if t["right_sign"] is not None]
    return {"cells": len(te), "within": sum(t["within"] for _, t, _ in te),
            # as in the registered count: "outside" is about accuracy; the cost ratio is counted in "within"
            "outside_ok": [c["slug"] for c, t, ok in te if not t["within_accuracy"] and ok],
            "sign_cells": len(signed), "right_sign": sum(signed)}


def _verdict(passed: bool | None) -> str:
    """PASS, FAIL, or n/a where a must-show has no cell to judge (:func:`summarize`'s ``passed`` is None)."""
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def format_summary(summary: dict) -> str:
    """The must-show table and the per-estimator numbers as aligned text."""
    lines = [f"default estimator: {summary['default_estimator']}; cells: {summary['cells']}; "
             f"cells whose gain exceeds seed noise: {summary['gain_cells']}",
             f"{'must show':<78} {'measured':>9} {'threshold':>9}  result"]
    for r in summary["must_show"]:
        lines.append(f"{r['must_show']:<78} {r['measured']:>9.3g} {r['threshold']:>9.3g}  "
                     f"{_verdict(r['passed'])}")
    lines.append(f"{'estimator':<20} {'within':>8} {'sign':>8} {'|w err|':>8} {'acc loss':>9} {'cost':>6} "
                 f"{'warned':>7} {'ok: within':>11} {'covers':>6}  outside with 'ok'")
    for name, e in summary["per_estimator"].items():
        lines.append(f"{name:<20} {e['within']:>3}/{e['cells']:<4} {e['right_sign']:>3}/{e['sign_cells']:<4} "
                     f"{e['mean_abs_weight_error']:>8.3f} {e['mean_accuracy_loss']:>9.4f} {e['mean_cost_ratio']:>6.2f} "
                     f"{e.get('flagged', 0):>3}/{e['cells']:<3} {e.get('within_when_ok', 0):>5}/{e.get('ok_cells', 0):<5} "
                     f"{e.get('interval_covers_grid_pick', math.nan):>6.0%}  "
                     f"{', '.join(e['outside_ok']) or '-'}")
    lines.append("right sign without the cells whose grid pick is labels alone (their gain compares two trainings "
                 "on the labels): " + ", ".join(f"{name} {e.get('right_sign_distilling', 0)}/{e.get('sign_cells_distilling', 0)}"
                                                 for name, e in summary["per_estimator"].items()))
    lines.append("with the teacher as the grid's labels-alone point (gt_weight 1), as half_grid uses it: " + "; ".join(
        f"{name} within {t['within']}/{t['cells']}, 'ok' outside {len(t['outside_ok'])}, sign {t['right_sign']}/{t['sign_cells']}"
        for name, e in summary["per_estimator"].items() if (t := e.get("teacher_end")) and t["cells"]))
    n = summary["das_sanghavi"]
    lines.append(f"[DS23] gt_weight < 0 optimal at high noise: {n['negative_by_val']}/{n['cells']} cells by validation "
                 f"Brier, {n['negative_by_test']}/{n['cells']} by test accuracy")
    return "\n".join(lines)


def estimator_table(summary: dict, seeds: int) -> str:
    """The README's estimator table, from a :func:`summarize` result: per estimator, the cells within one
    grid sd at <= half the grid's runs, the right sign of the gain, the test accuracy lost against the
    grid's pick (mean over cells and its 90% interval, normal approximation over cells), the mean absolute
    error of the weight, the runs against the grid's, and the cells with a warning. Markdown."""
    derived = summary["derived"].values()
    lines = [f"| estimator | within one grid sd (of {summary['cells']} cells, {seeds} seeds each) | right sign "
             "of the gain | accuracy lost vs the grid (mean, 90% interval over cells) | mean abs. weight error | "
             "runs / grid's | cells warned |", "|---|---|---|---|---|---|---|"]
    for name, e in summary["per_estimator"].items():
        losses = np.array([d["estimators"][name]["accuracy_loss"] for d in derived if name in d["estimators"]],
                          dtype=float)
        losses = losses[np.isfinite(losses)]
        half = 1.645 * losses.std(ddof=1) / math.sqrt(len(losses)) if len(losses) > 1 else math.nan
        mean = float(losses.mean()) if len(losses) else math.nan
        lines.append(f"| `{name}` | {e['within']} ({e['within_fraction']:.0%}) | {e['right_sign']}/{e['sign_cells']} | "
                     f"{mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] | {e['mean_abs_weight_error']:.2f} | "
                     f"{e['mean_cost_ratio']:.2f} | {e.get('flagged', 0)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Running the cells
# ------------------------------------------------------------------------------------------------

def _estimators(p: MapPreset) -> tuple[str, tuple]:
    from deepdistill.studies import weight_estimation as we

    known = getattr(we, "ESTIMATORS", {})
    chosen = tuple(p.estimators) if p.estimators is not None else \
        tuple(getattr(we, "DEFAULT_ESTIMATORS", ("two_run",))) + tuple(p.extra_estimators)
    chosen = tuple(e for e in dict.fromkeys(chosen) if not known or e in known)
    return chosen[0], chosen


def _config(p: MapPreset, cell: dict, method: str, seed: int = 0):
    from deepdistill.core.config import TrainConfig

    s = cell["setting"]
    kw = {k: s[k] for k in ("batch_size", "lr") if k in s}
    return TrainConfig(dataset=cell["dataset"], model=cell["model"], method=method, generations=2,
                       n_train=cell["n_train"], label_noise=cell["noise"], noise_type="symmetric",
                       epochs=int(s["epochs"]), seed=seed, device="cpu", model_kwargs=dict(s.get("model_kwargs", {})),
                       data_options=dict(s.get("data_options", {})), checkpoint_every=0, **kw)


def _cell_key(p: MapPreset, cell: dict, estimators: tuple) -> dict:
    own = {k: v for k, v in p.to_dict().items() if k not in ("name", "datasets", "noise_levels")}
    # the data set's list of sizes is not the cell's: a cell of the "subset" preset is the same cell in "full"
    setting = {k: v for k, v in cell["setting"].items() if k != "sizes"}
    return json.loads(json.dumps({"schema": SCHEMA, "cell": {**cell, "setting": setting}, "settings": own,
                                  "estimators": list(estimators)}))


def _study_dir(root: Path, cell: dict, key: dict) -> Path:
    """The cell's study folder, named by its settings too: another preset's runs of the same cell never meet it."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return root / "studies" / f"{cell['slug']}-{digest}"


def _run_cell(p: MapPreset, cell: dict, root: Path, estimators: tuple, default: str, *, jobs, threads_per_job,
              log) -> dict:
    from deepdistill.studies import weight_estimation as we

    started = time.perf_counter()
    cache = root / "generations"
    folder = _study_dir(root, cell, _cell_key(p, cell, estimators))
    study = we.estimate_gt_weight(_config(p, cell, p.method), folder, seeds=p.seeds,
                                  grid=p.grid, estimators=estimators, kernel=p.kernel,
                                  ntk_subsample=p.ntk_subsample, log=log, jobs=jobs,
                                  threads_per_job=threads_per_job, cache_dir=cache)
    per_seed = study.per_seed
    out = {"slug": cell["slug"], "dataset": cell["dataset"], "model": cell["model"], "noise": cell["noise"],
           "n_train": cell["n_train"], "seeds": list(p.seeds), "method": p.method, "default_estimator": default,
           "grid": _grid_rows(per_seed),
           "teacher_test_accuracy": [_accuracy((s.teacher_metrics or {}).get("test")) for s in per_seed],
           "teacher_val_criterion": [_teacher_val(s.runs, s.teacher_keys) for s in per_seed],
           "estimators": {n: _estimator_row(n, [s.estimators[n] for s in per_seed]) for n in estimators
                          if all(n in s.estimators for s in per_seed)},
           "chosen": study.chosen, "chosen_gt_weight": study.gt_weight}
    out["kernel_surrogates"] = {n: {"gt_weight_mean": e["gt_weight_mean"], "unconstrained": e["unconstrained"]}
                                for n, e in out["estimators"].items() if n.startswith(("kernel_", "one_shot_"))}
    out["das_sanghavi"] = None
    if cell["noise"] >= p.negative_from - 1e-12:
        neg = we.estimate_gt_weight(_config(p, cell, p.negative_method), folder / "negative",
                                    seeds=p.seeds, grid=p.negative_grid, estimators=("two_run",),
                                    allow_any_weight=True, kernel=p.kernel, log=log, jobs=jobs,
                                    threads_per_job=threads_per_job, cache_dir=cache)
        g = _grid_rows(neg.per_seed)
        two = _estimator_row("two_run", [s.estimators["two_run"] for s in neg.per_seed])
        out["das_sanghavi"] = {"method": p.negative_method, "grid": g, "best_weight_val": g["best_weight"],
                               "best_weight_test": g["oracle_weight"], "two_run_unconstrained": two["unconstrained"]}
    out["wall_time_s"] = time.perf_counter() - started
    return out


def run_weight_map(out_dir, preset="fast", *, jobs: int | None = 1, threads_per_job: int | None = 1,
                   cells: list[str] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run (or read back) every cell of ``preset`` into ``out_dir``; return ``{"preset", "cells", "summary"}``.

    ``cells``: slugs to run (default: all of the preset's). A finished cell (``out_dir/cells/<slug>.json``
    with the same settings) is read, not trained again. ``jobs``/``threads_per_job``: passed to
    :func:`~deepdistill.studies.weight_estimation.estimate_gt_weight` (its runs go through the local runner).
    """
    p = get_preset(preset)
    root = Path(out_dir)
    default, estimators = _estimators(p)
    wanted = cell_list(p)
    if cells is not None:
        unknown = sorted(set(cells) - {c["slug"] for c in wanted})
        if unknown:
            raise ValueError(f"unknown cell(s) {unknown} for preset {p.name!r}; valid: {[c['slug'] for c in wanted]}.")
        wanted = [c for c in wanted if c["slug"] in cells]
    done = []
    for i, cell in enumerate(wanted):
        path = root / "cells" / f"{cell['slug']}.json"
        key = _cell_key(p, cell, estimators)
        stored = read_json(path)
        if isinstance(stored, dict) and stored.get("key") == key:
            done.append(_with_teacher_val(root, p, cell, estimators, stored["cell"]))
            continue
        if log:
            log(f"weight map cell {cell['slug']} ({i + 1}/{len(wanted)})")
        result = json.loads(json.dumps(_run_cell(p, cell, root, estimators, default, jobs=jobs,
                                                 threads_per_job=threads_per_job, log=log), default=float))
        atomic_write_json(path, {"key": key, "cell": result})
        done.append(read_json(path)["cell"])          # as stored (NaN as null), so a rerun returns the same
    return {"schema": SCHEMA, "preset": p.to_dict(), "cells": done, "summary": summarize(done, p.gain_z),
            "split": summarize_split(done, p.gain_z, seeds=p.seeds)}


def read_weight_map(out_dir, preset="fast") -> dict | None:
    """The finished cells of ``preset`` stored in ``out_dir`` (reads only; ``None`` if none is there)."""
    p = get_preset(preset)
    _, estimators = _estimators(p)
    found = []
    for cell in cell_list(p):
        stored = read_json(Path(out_dir) / "cells" / f"{cell['slug']}.json")
        if isinstance(stored, dict) and stored.get("key") == _cell_key(p, cell, estimators):
            found.append(_with_teacher_val(Path(out_dir), p, cell, estimators, stored["cell"]))
    if not found:
        return None
    return {"schema": SCHEMA, "preset": p.to_dict(), "cells": found, "summary": summarize(found, p.gain_z),
            "split": summarize_split(found, p.gain_z, seeds=p.seeds),
            "complete": len(found) == len(cell_list(p))}


def main(argv=None) -> int:
    """``python -m deepdistill.studies.weight_map --out DIR [--preset fast|subset|full] [--jobs N] [--cell SLUG ...]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m deepdistill.studies.weight_map", description=main.__doc__)
    parser.add_argument("--out", help="the study's folder (resumable: finished cells are read back)")
    parser.add_argument("--preset", default="fast", choices=sorted(PRESETS))
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once by the local runner")
    parser.add_argument("--threads-per-job", type=int, default=1)
    parser.add_argument("--cell", action="append", default=None, help="run only this cell (repeatable)")
    parser.add_argument("--table", action="store_true",
                        help="read the finished cells (trains nothing) and print the README's estimator table, "
                             "test cells only")
    parser.add_argument("--cross", action="append", default=None, metavar="PRESET=DIR",
                        help="read finished maps (trains nothing; repeat, at least twice: e.g. full=DIR1 fresh=DIR2) "
                             "and judge every pick made on one map's seeds on another's "
                             "(deepdistill.studies.weight_map_cross)")
    args = parser.parse_args(argv)
    if args.cross:
        from deepdistill.studies.weight_map_cross import cross_seed_check, format_cross_seed

        maps = {}
        for item in args.cross:
            name, sep, folder = item.partition("=")
            if not sep or name not in PRESETS:
                parser.error(f"--cross: expected PRESET=DIR with PRESET one of {sorted(PRESETS)}; got {item!r}")
            study = read_weight_map(folder, name)
            if study is None:
                parser.error(f"--cross: no finished cell of preset {name!r} in {folder}")
            maps[name] = study["cells"]
        if len(maps) < 2:
            parser.error(f"--cross: expected at least two maps; got {len(maps)}")
        print(format_cross_seed(cross_seed_check(maps)))
        return 0
    if args.out is None:
        parser.error("--out is required (unless --cross)")
    if args.table:
        study = read_weight_map(args.out, args.preset)
        if study is None:
            parser.error(f"no finished cell of preset {args.preset!r} in {args.out}")
        part = study["split"]["test"] or study["summary"]
        print(estimator_table(part, len(study["preset"]["seeds"])))
        return 0
    study = run_weight_map(args.out, args.preset, jobs=args.jobs, threads_per_job=args.threads_per_job,
                           cells=args.cell, log=lambda msg: print(msg, flush=True) if "cell" in msg else None)
    print(format_summary(study["summary"]))
    for part, summary in study["split"].items():
        if summary is not None and summary["cells"] < study["summary"]["cells"]:
            print(f"\n{part} cells only:\n{format_summary(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
