"""Where the deep figures get their runs: the preset's shared sweep, driven here, and the networks read back.

Every data step of :mod:`analysis.figures.deep` asks a ``runs`` object for the runs it needs:
:class:`PresetRuns` (the preset's shared sweep in ``out_dir/deep_runs/``, trained when missing by
:func:`ensure_runs`) or :class:`analysis.figures.sweep_runs.SweepRuns` (a user's own sweep, read, never
trained), which have the same interface. A run is named by the hash of its config, so a figure that
needs a run another figure already trained finds its finished record and checkpoints there and trains
nothing. Figures that need the trained networks load the checkpoints the runs wrote
(:func:`load_generation`, on the data splits of :func:`deepdistill.engine.runs.load_splits`, the
training loader's own call). :func:`weight_estimates` drives
:func:`deepdistill.studies.weight_estimation.estimate_gt_weight` for ``deep_gt_weight``.

The small helpers at the end turn a run record into a table's setting columns and a table back into a
figure title; the data steps share them.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from analysis.figures.deep_presets import DeepPreset, comparison_configs, gt_weight_configs, runs_dir
from analysis.plotting import SERIES_LABELS
from deepdistill.core import metrics
from deepdistill.core.config import TrainConfig
from deepdistill.drivers.local_runner import torch_threads
from deepdistill.drivers.sweep import expand_grid, run_sweep
from deepdistill.engine import runs
from deepdistill.engine.runs import RECORD_FILE, checkpoint_path, generation_cache_dir, is_finished, read_record, run_dir_for
from deepdistill.engine.train import predict_logits
from deepdistill.studies.weight_estimation import estimate_gt_weight

__all__ = ["ensure_runs", "PresetRuns", "load_generation", "generation_probs", "weight_estimates",
           "setting_columns", "setting_note", "method_order"]

# The figures read many checkpoints of few data splits: each split is loaded once per process
# (runs.SplitCache, the one owner of the split fields and their cache; 4 splits at most in memory).
SPLITS = runs.SplitCache(max_size=4)


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_runs(configs: list[TrainConfig], out_dir, preset: DeepPreset) -> list[dict]:
    """Train what is missing of ``configs`` in the shared sweep folder; return their records in order.

    Finished runs are loaded, not retrained (:func:`deepdistill.drivers.sweep.run_sweep`), so the figures
    share their runs. When some must be trained, stderr says how many, and each finished run is
    logged as ``[k/N]`` (the full preset's runs take minutes each).
    """
    sweep_dir = runs_dir(out_dir)
    done = sum(is_finished(read_record(run_dir_for(c, sweep_dir) / RECORD_FILE), c) for c in configs)
    log, count = None, [done]
    if done < len(configs):
        _stderr_log(f"deep runs: {done} of {len(configs)} finished in {sweep_dir}; training {len(configs) - done}")

        def log(message: str) -> None:
            # deepdistill.engine.results.describe_run starts the one line of each newly trained run with "finished".
            if message.startswith("finished"):
                count[0] += 1
                _stderr_log(f"[{count[0]}/{len(configs)}] {message}")
            elif preset.name != "fast":
                _stderr_log(message)
    with torch_threads(preset.torch_threads):
        return run_sweep(configs, sweep_dir, log=log, progress=False, jobs=preset.jobs,
                         threads_per_job=preset.torch_threads, share_generations=preset.share_generations)


class PresetRuns:
    """Where a deep figure's data step gets its runs: the preset's shared sweep in ``out_dir/deep_runs``,
    trained when missing. :class:`analysis.figures.sweep_runs.SweepRuns` has the same interface for a
    user's own sweep folder (read, never trained); each data step takes either as ``runs``."""

    strict = True          # a method the figure names must be in the preset (else it is a preset error)

    def __init__(self, out_dir, preset: DeepPreset):
        self.out_dir, self.preset = Path(out_dir), preset
        self.threads, self.reliability_bins = preset.torch_threads, preset.reliability_bins
        self.projection_classes = preset.projection_classes

    def comparison(self) -> list[dict]:
        return ensure_runs(comparison_configs(self.preset), self.out_dir, self.preset)

    def weight_grid(self) -> list[dict]:
        return ensure_runs(gt_weight_configs(self.preset), self.out_dir, self.preset)

    def weight_estimates(self) -> list[dict]:
        return weight_estimates(self.out_dir, self.preset)

    def load(self, record: dict, generation: int):
        return load_generation(record, generation, self.out_dir)

    def label(self, record: dict) -> str:
        """The series a run is drawn in: its method."""
        return record["config"]["method"]

    def of_method(self, records: list[dict], method: str, figure: str) -> list[dict]:
        recs = [r for r in records if r["config"]["method"] == method]
        if not recs:
            raise ValueError(f"{figure} needs method {method!r} in the preset's methods {self.preset.methods}.")
        return recs


def load_generation(record: dict, generation: int, out_dir, device: str = "cpu"):
    """``(model in eval mode, splits)`` of one finished generation of a run in the shared sweep
    (``out_dir/deep_runs``), read by :func:`deepdistill.engine.runs.load_generation`.

    The splits come from :func:`deepdistill.engine.runs.load_splits`, the call the training loop makes
    (the one owner of which config fields identify a split, and of the split cache); the test
    ``test_checkpoint_predictions_reproduce_the_record`` checks that predictions on them give back the
    record's metrics.
    """
    config = TrainConfig.from_dict(record["config"])
    run_dir = run_dir_for(config, runs_dir(out_dir))
    if not checkpoint_path(run_dir, generation).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint_path(run_dir, generation)} is missing; rerun the figure's "
                                f"data step to train it (python -m analysis figures NAME --out {out_dir}).")
    splits = SPLITS(config)
    model, _ = runs.load_generation(run_dir, generation, config, splits, device)
    return model, splits


def generation_probs(model, splits, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax probabilities (n, K) float64, labels (n,))`` of ``model`` on ``splits.<split>``."""
    x, y = getattr(splits, split).tensors
    logits = predict_logits(model, x.to(next(model.parameters()).device))   # (n, K), eval mode, no grad
    return metrics.softmax(logits.cpu().numpy()), y.numpy()


def weight_estimates(out_dir: Path, preset: DeepPreset) -> list[dict]:
    """Per seed and estimator, the estimates of :func:`deepdistill.studies.weight_estimation.estimate_gt_weight`.

    The estimator trains its own teacher and students (it shares one teacher per seed through
    checkpoint copies) in ``deep_runs/weight_estimation/``, resumably; its grid is skipped
    (``grid=None``): the figure's own grid is the reference.
    """
    config = expand_grid(preset.base, methods=["sd_kd"], generations=[2], seeds=[preset.seeds[0]])[0]
    with torch_threads(preset.torch_threads):
        # kernel="rbf": a linear kernel on a few dozen features is low-rank, cannot fit the labels as
        # closely as the network did, and then gives uninformative optima (the module warns so); the
        # full-rank RBF kernel can (measured on the fast preset: linear -8e4 unconstrained, RBF 3.3,
        # next to 2.0 for the two-run estimate and a grid optimum at 1).
        # The default estimator first ("half_grid"), then the ones it is compared with.
        result = estimate_gt_weight(config, runs_dir(out_dir) / "weight_estimation", seeds=preset.seeds, generation=1,
                                    grid=None, kernel="rbf", jobs=preset.jobs, threads_per_job=preset.torch_threads,
                                    estimators=("half_grid", "two_run", "refined", "kernel_features", "one_shot_features"),
                                    cache_dir=generation_cache_dir(runs_dir(out_dir)) if preset.share_generations else None)
    out = []
    for per_seed in result.per_seed:
        for name, entry in per_seed.estimators.items():
            if not entry.has_weight:           # a failed estimate has no weight and no student
                continue
            low, high = entry.interval or (math.nan, math.nan)
            out.append({"estimator": name, "seed": per_seed.seed, "gt_weight": entry.gt_weight,
                        "unconstrained_gt_weight": entry.unconstrained,
                        "val_accuracy": (entry.val or {}).get("accuracy", math.nan),
                        "test_accuracy": (entry.test or {}).get("accuracy", math.nan),
                        "teacher_test_accuracy": ((per_seed.teacher_metrics or {}).get("test") or {}).get("accuracy", math.nan),
                        # At weight 1 the estimator may keep its teacher (the labels end point) as the student.
                        "student_is_teacher": int(entry.details.get("final_key") in per_seed.teacher_keys),
                        "training_runs": entry.training_runs, "wall_time_s": entry.wall_time_s,
                        "interval_low": math.nan if low is None else low,
                        "interval_high": math.nan if high is None else high,
                        "predicted_val_brier": entry.predicted_val_criterion if entry.predicted_val_criterion
                        is not None else math.nan,
                        "achieved_val_brier": entry.achieved_val_criterion if entry.achieved_val_criterion
                        is not None else math.nan,
                        "cpu_time_s": math.nan if entry.cpu_time_s is None else entry.cpu_time_s,
                        "status": entry.status})
    return out




# --------------------------------------------------------------------------------------------------
# Tables and titles
# --------------------------------------------------------------------------------------------------

def method_order(names) -> list[str]:
    """The series ``names`` once each, in :data:`analysis.plotting.SERIES_LABELS` order (then by name)."""
    known = list(SERIES_LABELS)

    def rank(name):
        method = str(name).split(" (", 1)[0]
        return (known.index(method) if method in known else len(known), str(name))

    return sorted(set(names), key=rank)


def setting_note(columns: dict) -> str:
    """``digits, mlp, 4 epochs, 2 seeds`` from a data step's CSV (for a figure's title)."""
    seeds = len({s for s in np.asarray(columns["seed"], dtype=float) if np.isfinite(s)}) if "seed" in columns else 0
    parts = [str(columns["dataset"][0]), str(columns["model"][0]), f"{int(columns['epochs'][0])} epochs"]
    if seeds:
        parts.append(f"{seeds} seed{'s' if seeds > 1 else ''}")
    return ", ".join(parts)


def setting_columns(record: dict) -> dict:
    """The columns that name a run's setting in every deep table: data set, model, epochs."""
    c = record["config"]
    return {"dataset": c["dataset"], "model": c["model"], "epochs": c["epochs"]}
