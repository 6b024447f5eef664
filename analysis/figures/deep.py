"""Figures of deep multi-generation self-distillation ([ZS20], [S21], [M19], [BA21]).

Each figure is a :class:`~analysis.figures.spec.FigureSpec`: a data step that trains (or reuses) runs
of :mod:`deepdistill` and writes one tidy CSV, and a plot step that reads only that CSV.

=========================  =========================================================================
figure                     content
=========================  =========================================================================
deep_generations           test accuracy and ECE per generation for every method, mean +- sd over seeds
deep_diversity             teacher confidence diversity and entropy per generation, and the student's
                           accuracy against its teacher's diversity ([ZS20]'s central claim)
deep_gt_weight             test accuracy of generation 1 of ``sd_kd`` against ``gt_weight``, with
                           the grid's best weight (by validation accuracy) and any estimates marked
deep_reliability           reliability diagrams of ce, ls and sd_kd (test predictions pooled over seeds)
deep_penultimate           penultimate activations of three classes projected on the plane of their
                           templates, with and without label smoothing ([M19], not t-SNE)
deep_stability             1 - S of [S21] for teachers trained with and without label smoothing
=========================  =========================================================================

One shared sweep. Every data step asks :func:`deepdistill.drivers.sweep.run_sweep` for the runs it needs
in ONE folder, ``out_dir/deep_runs/`` (``runs/<run_id>/`` per run, ``rollup.csv`` over all of
them). A run is named by the hash of its config, so a figure that needs a run another figure
already trained finds its finished record and checkpoints there and trains nothing: the method
comparison (:func:`comparison_configs`) feeds ``deep_generations``, ``deep_diversity``,
``deep_reliability``, ``deep_penultimate`` and ``deep_stability``; the weight grid
(:func:`gt_weight_configs`) feeds ``deep_gt_weight``. Figures that need the trained networks load
the checkpoints the runs wrote (:func:`deepdistill.engine.runs.load_generation`). Each data step takes
its runs from a ``runs`` object: :class:`PresetRuns` (this shared sweep, trained when missing) or
:class:`analysis.figures.sweep_runs.SweepRuns` (a user's own sweep, read, never trained).

Presets (:data:`PRESETS`). ``fast`` is for CI and checks: scikit-learn's bundled 8x8 digits (no
download), a one-hidden-layer MLP of width 64, 4 epochs, 2 seeds, 3 generations, on the CPU with one
torch thread (these models are so small that a second intra-op thread only adds synchronisation; on
a loaded 2-core machine it made training 5x slower). ``full`` is the paper-quality version: MNIST-1D,
the MNIST-1D authors' 1-D CNN with the toolkit's default recipe (60 epochs at a constant AdamW lr of
1e-2, batch 100: about 92% test accuracy alone), 3 seeds, 5 generations, on the GPU when there is one,
else on one process per core with one torch thread each (a second thread does not speed this CNN up, and
on a loaded machine it slows it down many times); runs that share generations train them once.

Conventions: ``gt_weight`` is the weight on the ground truth; "generation 0" trains on the labels,
generation ``g >= 1`` is a fresh network distilled from generation ``g - 1``. Every metric comes from
:mod:`deepdistill.core.metrics` (the same code the run records use).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis.figures.spec import FigureSpec, MissingRunsError, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure
from deepdistill.core import metrics
from deepdistill.engine import runs
from deepdistill.core.config import METHODS, TrainConfig
from deepdistill.drivers.local_runner import torch_threads
from deepdistill.engine.results import mean_sd
from deepdistill.engine.runs import (RECORD_FILE, SplitCache, checkpoint_path, generation_cache_dir, is_finished,
                             read_record, run_dir_for)
from deepdistill.drivers.sweep import expand_grid, run_sweep
from deepdistill.engine.train import predict_logits
from deepdistill.studies.weight_estimation import estimate_gt_weight

__all__ = [
    "DEEP_FIGURES",
    "DeepPreset",
    "PRESETS",
    "get_preset",
    "RUNS_FOLDER",
    "runs_dir",
    "comparison_configs",
    "gt_weight_configs",
    "ensure_runs",
    "PresetRuns",
    "MissingRunsError",
    "load_generation",
    "generation_probs",
    "METHOD_LABELS",
    "ESTIMATOR_LABELS",
]

#: The shared sweep folder, relative to a figure's ``out_dir``.
RUNS_FOLDER = "deep_runs"

#: Legend names of the methods (``deepdistill.core.config.METHODS`` keys).
METHOD_LABELS = {
    "ce": "CE",
    "ls": "label smoothing",
    "beta": "Beta smoothing",
    "sd_kd": "SD (KD)",
    "sd_mse": "SD (MSE)",
    "sd_zs": "SD ([ZS20] loss)",
    "ls_kd": "KD from LS teacher",
}
# One colour per method in every figure (Okabe-Ito, plotting.PALETTE).
_METHOD_COLOURS = {"ce": PALETTE[7], "ls": PALETTE[1], "beta": PALETTE[2], "sd_kd": PALETTE[0],
                   "sd_mse": PALETTE[5], "sd_zs": PALETTE[3], "ls_kd": PALETTE[4]}


@dataclass(frozen=True)
class DeepPreset:
    """The sizes of the deep figures.

    base : :class:`deepdistill.core.config.TrainConfig` fields shared by every run (data set, model,
        epochs, optimiser, device ...).
    methods : the methods compared in ``deep_generations`` (and reused by the other figures).
    generations : generations per comparison run (0 .. generations-1).
    seeds : one run per seed; figures show mean +- sd over them.
    gt_weights : the ``sd_kd`` grid of ``deep_gt_weight`` (weight on the ground truth at generation 1).
    reliability_bins : equal-width bins of the reliability diagrams (15 as in [M19] for the full preset).
    projection_classes : the three classes of the penultimate-layer projection.
    torch_threads : intra-op threads while training and predicting (None: torch's default).
    jobs : runs trained at once by the shared sweep and the weight estimation (None: one per usable core,
        :func:`deepdistill.drivers.local_runner.default_jobs`; 1: in this process).
    share_generations : runs that share their first generations (students of one teacher, methods whose
        generation 0 is the same) train them once, in ``deep_runs/generations``; the weight estimation
        takes its teachers and students from there too.
    """

    name: str
    base: dict = field(default_factory=dict)
    methods: tuple = ("ce", "ls", "beta", "sd_kd", "sd_mse", "ls_kd")
    generations: int = 3
    seeds: tuple = (0, 1)
    gt_weights: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)
    reliability_bins: int = 10
    projection_classes: tuple = (0, 1, 2)
    torch_threads: int | None = 1
    jobs: int | None = 1
    share_generations: bool = True


PRESETS: dict[str, DeepPreset] = {
    # Measured on the shared 2-core machine (load ~7): all six deep figures in 30-45 s from an empty folder,
    # ~0.2 s of training per generation; the full `python -m analysis report --fast` in about 60 s.
    "fast": DeepPreset(
        name="fast",
        base=dict(dataset="digits", model="mlp", model_kwargs={"hidden": 64, "depth": 1}, epochs=4,
                  batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0),
        generations=3, seeds=(0, 1), gt_weights=(0.0, 0.25, 0.5, 0.75, 1.0), reliability_bins=10,
        torch_threads=1,
    ),
    # The paper-quality version: MNIST-1D (4000 train / 1000 test), the authors' CNN with TrainConfig's
    # default recipe (60 epochs, constant lr 1e-2, batch 100; ~92% alone). About 170 generations
    # (comparison 90, grid 66, the weight estimators the rest); the sweep resumes where it stopped.
    "full": DeepPreset(
        name="full",
        base=dict(dataset="mnist1d", model="cnn1d", device="auto"),
        generations=5, seeds=(0, 1, 2), gt_weights=tuple(round(0.1 * i, 1) for i in range(11)),
        reliability_bins=15, torch_threads=1, jobs=None,
    ),
}


def get_preset(fast: bool) -> DeepPreset:
    return PRESETS["fast" if fast else "full"]


def runs_dir(out_dir) -> Path:
    """The shared sweep folder of the deep figures: ``out_dir/deep_runs``."""
    return Path(out_dir) / RUNS_FOLDER


# --------------------------------------------------------------------------------------------------
# The runs: configs, the shared sweep, checkpoints
# --------------------------------------------------------------------------------------------------

def comparison_configs(preset: DeepPreset) -> list[TrainConfig]:
    """The method comparison: every method of the preset x its seeds, ``preset.generations`` each."""
    return expand_grid(preset.base, methods=preset.methods, generations=[preset.generations], seeds=preset.seeds)


def gt_weight_configs(preset: DeepPreset) -> list[TrainConfig]:
    """The ``sd_kd`` weight grid: one generation-1 student per ``gt_weight`` and seed (2 generations)."""
    return expand_grid(preset.base, methods=["sd_kd"], gt_weights=preset.gt_weights, generations=[2],
                       seeds=preset.seeds)


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
        return _weight_estimates(self.out_dir, self.preset)

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


# Data sets loaded in this process, by the config fields that determine them (MNIST-1D is generated
# on every load, ~1 s; a figure asks for the same split once per run and generation).
_SPLITS_CACHE = SplitCache()


def _splits_for(config: TrainConfig):
    """The data splits a run was trained on (:func:`deepdistill.engine.runs.load_splits`, the training loader's
    own call), loaded once per process.

    The test ``test_checkpoint_predictions_reproduce_the_record`` checks that predictions on these
    splits give back the record's metrics, so a drift from the training loader would be caught.
    """
    return _SPLITS_CACHE(config)


def load_generation(record: dict, generation: int, out_dir, device: str = "cpu"):
    """``(model in eval mode, splits)`` of one finished generation of a run in the shared sweep
    (``out_dir/deep_runs``), read by :func:`deepdistill.engine.runs.load_generation`."""
    config = TrainConfig.from_dict(record["config"])
    run_dir = run_dir_for(config, runs_dir(out_dir))
    if not checkpoint_path(run_dir, generation).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint_path(run_dir, generation)} is missing; rerun the figure's "
                                f"data step to train it (python -m analysis figures NAME --out {out_dir}).")
    splits = _splits_for(config)
    model, _ = runs.load_generation(run_dir, generation, config, splits, device)
    return model, splits


def generation_probs(model, splits, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(softmax probabilities (n, K) float64, labels (n,))`` of ``model`` on ``splits.<split>``."""
    x, y = getattr(splits, split).tensors
    logits = predict_logits(model, x.to(next(model.parameters()).device))   # (n, K), eval mode, no grad
    return metrics.softmax(logits.cpu().numpy()), y.numpy()


def _method_order(names) -> list[str]:
    known = list(METHOD_LABELS)
    return sorted(set(names), key=lambda m: (known.index(m) if m in known else len(known), m))


def _mean_sd(values) -> tuple[float, float]:
    """:func:`deepdistill.engine.results.mean_sd` (the roll-up's and the report's rule), except that the
    undefined sd of a single seed is drawn as no error bar (0) rather than left out of the plot."""
    mean, sd = mean_sd(np.asarray(values, dtype=float).ravel().tolist())
    return mean, (0.0 if math.isnan(sd) and not math.isnan(mean) else sd)


def _dodge(i: int, n: int, width: float = 0.3) -> float:
    """Horizontal offset of series ``i`` of ``n`` so that error bars at the same x do not overlap."""
    return 0.0 if n == 1 else (i / (n - 1) - 0.5) * width


def _setting_note(columns: dict) -> str:
    """``digits, mlp, 4 epochs, 2 seeds`` from a data step's CSV (for a figure's title)."""
    seeds = len({s for s in np.asarray(columns["seed"], dtype=float) if np.isfinite(s)}) if "seed" in columns else 0
    parts = [str(columns["dataset"][0]), str(columns["model"][0]), f"{int(columns['epochs'][0])} epochs"]
    if seeds:
        parts.append(f"{seeds} seed{'s' if seeds > 1 else ''}")
    return ", ".join(parts)


def _setting_columns(record: dict) -> dict:
    c = record["config"]
    return {"dataset": c["dataset"], "model": c["model"], "epochs": c["epochs"]}


# --------------------------------------------------------------------------------------------------
# deep_generations: accuracy and ECE over generations
# --------------------------------------------------------------------------------------------------

_GENERATION_METRICS = ("accuracy", "nll", "ece", "brier", "entropy", "diversity")


def _generations_data(out_dir: Path, fast: bool, runs=None) -> Path:
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "seed", "generation", "loss",
                                             "gt_weight", "temperature")}
    for split in ("val", "test"):
        for m in _GENERATION_METRICS:
            rows[f"{split}_{m}"] = []
    for rec in records:
        for gen in rec["generations"]:
            for k, v in _setting_columns(rec).items():
                rows[k].append(v)
            rows["method"].append(runs.label(rec))
            rows["seed"].append(rec["seed"])
            for k in ("generation", "loss", "gt_weight", "temperature"):
                rows[k].append(gen[k])
            for split in ("val", "test"):
                for m in _GENERATION_METRICS:
                    rows[f"{split}_{m}"].append(gen[split][m])
    return write_csv(Path(out_dir) / "deep_generations.csv", rows)


def _plot_over_generations(ax, cols, metric: str, methods: list[str]) -> None:
    for i, method in enumerate(methods):
        mask = cols["method"] == method
        gens = sorted(set(cols["generation"][mask].tolist()))
        stats = [_mean_sd(cols[metric][mask & (cols["generation"] == g)]) for g in gens]
        x = np.asarray(gens, dtype=float) + _dodge(i, len(methods))
        ax.errorbar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], color=_METHOD_COLOURS.get(method),
                    marker="o", label=METHOD_LABELS.get(method, method))
    ax.set_xticks(sorted(set(cols["generation"].tolist())))
    ax.set_xlabel("generation")


def _generations_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = _method_order(cols["method"].tolist())
    fig, axes = new_figure("full", height=2.5, ncols=2)
    _plot_over_generations(axes[0], cols, "test_accuracy", methods)
    axes[0].set_ylabel("test accuracy")
    _plot_over_generations(axes[1], cols, "test_ece", methods)
    axes[1].set_ylabel("test ECE (15 bins)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    fig.suptitle(f"Methods over generations ({_setting_note(cols)}); mean $\\pm$ sd over seeds")
    return save_figure(fig, out_dir, "deep_generations")


# --------------------------------------------------------------------------------------------------
# deep_diversity: teacher diversity and entropy against the student's accuracy
# --------------------------------------------------------------------------------------------------

def _diversity_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Per run of a method with a teacher and per generation g: confidence diversity and mean entropy
    of generation g's predictions on the training set (the targets a student of g is fitted to, at
    temperature 1), its test accuracy, and the test accuracy of its student, generation g + 1."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    keep = [r for r in records if METHODS[r["config"]["method"]].uses_teacher]
    if not keep:
        raise MissingRunsError(f"no run of a method with a teacher (methods {sorted({runs.label(r) for r in records})}); "
                               "deep_diversity needs one such as 'sd_kd'.")
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "seed", "generation",
                                             "train_diversity", "train_entropy", "train_accuracy",
                                             "test_accuracy", "student_test_accuracy")}
    with torch_threads(runs.threads):
        for rec in keep:
            gens = rec["generations"]
            for g, gen in enumerate(gens):
                model, splits = runs.load(rec, g)
                p, y = generation_probs(model, splits, "train")
                for k, v in _setting_columns(rec).items():
                    rows[k].append(v)
                rows["method"].append(runs.label(rec))
                rows["seed"].append(rec["seed"])
                rows["generation"].append(g)
                rows["train_diversity"].append(metrics.confidence_diversity(p, y))
                rows["train_entropy"].append(metrics.mean_entropy(p))
                rows["train_accuracy"].append(metrics.accuracy(p, y))
                rows["test_accuracy"].append(gen["test"]["accuracy"])
                rows["student_test_accuracy"].append(gens[g + 1]["test"]["accuracy"] if g + 1 < len(gens) else math.nan)
    return write_csv(Path(out_dir) / "deep_diversity.csv", rows)


def _diversity_plot(data_path: Path, out_dir: Path) -> list[Path]:
    import scipy.stats

    cols = read_csv(data_path)
    methods = _method_order(cols["method"].tolist())
    fig, axes = new_figure("full", height=2.4, ncols=3)
    _plot_over_generations(axes[0], cols, "train_diversity", methods)
    axes[0].set_ylabel("teacher diversity\n(var. of true-class prob.)")
    _plot_over_generations(axes[1], cols, "train_entropy", methods)
    axes[1].set_ylabel("teacher mean entropy (nats)")
    ax = axes[2]
    rhos = {}
    for method in methods:
        mask = (cols["method"] == method) & np.isfinite(cols["student_test_accuracy"])
        x, y = cols["train_diversity"][mask], cols["student_test_accuracy"][mask]
        # Spearman's rho: [ZS20] claim a monotone association, not a linear one.
        rhos[method] = (scipy.stats.spearmanr(x, y).statistic if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0
                        else math.nan)
        ax.scatter(x, y, s=6 + 6 * cols["generation"][mask], color=_METHOD_COLOURS.get(method), alpha=0.8,
                   linewidths=0)
    ax.set_xlabel("teacher diversity (generation $g$)")
    ax.set_ylabel("student test accuracy ($g + 1$)")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_title("larger marker = later generation", fontsize=7)
    for a in axes[:2]:
        a.set_title("on the training set, $T = 1$", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [f"{label} (Spearman $\\rho$ = {rhos[m]:.2f})" for label, m in zip(labels, methods)]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(methods))
    fig.suptitle(f"Teacher diversity and student accuracy ({_setting_note(cols)})")
    return save_figure(fig, out_dir, "deep_diversity")


# --------------------------------------------------------------------------------------------------
# deep_gt_weight: generation-1 accuracy against the ground-truth weight
# --------------------------------------------------------------------------------------------------

def _weight_estimates(out_dir: Path, preset: DeepPreset) -> list[dict]:
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
        result = estimate_gt_weight(config, runs_dir(out_dir) / "weight_estimation", seeds=preset.seeds, generation=1,
                                    grid=None, kernel="rbf", jobs=preset.jobs, threads_per_job=preset.torch_threads,
                                    cache_dir=generation_cache_dir(runs_dir(out_dir)) if preset.share_generations else None)
    out = []
    for per_seed in result.per_seed:
        for name, entry in per_seed.estimators.items():
            if not entry.ok:                   # a failed estimate has no weight and no student
                continue
            out.append({"estimator": name, "seed": per_seed.seed, "gt_weight": entry.gt_weight,
                        "unconstrained_gt_weight": entry.unconstrained,
                        "val_accuracy": (entry.val or {}).get("accuracy", math.nan),
                        "test_accuracy": (entry.test or {}).get("accuracy", math.nan),
                        "training_runs": entry.training_runs, "wall_time_s": entry.wall_time_s})
    return out


_GT_COLUMNS = ("dataset", "model", "epochs", "kind", "estimator", "seed", "temperature", "gt_weight", "unconstrained_gt_weight",
               "val_accuracy", "test_accuracy", "teacher_test_accuracy", "training_runs", "wall_time_s")


def _gt_weight_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Rows of ``kind``:

    - ``run``: one per (gt_weight, seed) of the grid: generation-1 val/test accuracy, the teacher's
      (generation 0) test accuracy, and the training cost of the student;
    - ``estimate``: ``grid_best_val`` (the grid weight with the best mean validation accuracy; seed
      empty; its cost is the teacher plus every grid student, per seed), then one row per seed and
      estimator of :mod:`deepdistill.studies.weight_estimation` (test accuracy of the student trained at the
      estimate).
    """
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.weight_grid()
    rows: dict[str, list] = {k: [] for k in _GT_COLUMNS}

    def add(rec, **values):
        for k, v in _setting_columns(rec).items():
            rows[k].append(v)
        for k in _GT_COLUMNS[3:]:
            rows[k].append(values.get(k, "" if k == "estimator" else math.nan))

    for rec in records:
        g0, g1 = rec["generations"][:2]
        add(rec, kind="run", gt_weight=g1["gt_weight"], seed=rec["seed"], temperature=g1["temperature"],
            val_accuracy=g1["val"]["accuracy"],
            test_accuracy=g1["test"]["accuracy"], teacher_test_accuracy=g0["test"]["accuracy"], training_runs=1,
            wall_time_s=g1["wall_time_s"])
    weights = sorted({r["generations"][1]["gt_weight"] for r in records})
    at = {w: [r for r in records if r["generations"][1]["gt_weight"] == w] for w in weights}
    val_mean = [np.mean([r["generations"][1]["val"]["accuracy"] for r in at[w]]) for w in weights]
    best = weights[int(np.argmax(val_mean))]  # ties: the smallest weight
    teacher_cost = np.mean([r["generations"][0]["wall_time_s"] for r in at[best]])
    add(records[0], kind="estimate", estimator="grid_best_val", gt_weight=best,
        val_accuracy=float(np.mean([r["generations"][1]["val"]["accuracy"] for r in at[best]])),
        test_accuracy=float(np.mean([r["generations"][1]["test"]["accuracy"] for r in at[best]])),
        training_runs=1 + len(weights),
        wall_time_s=float(teacher_cost + sum(np.mean([r["generations"][1]["wall_time_s"] for r in at[w]])
                                             for w in weights)))
    for e in runs.weight_estimates():
        add(records[0], kind="estimate", **e)
    return write_csv(Path(out_dir) / "deep_gt_weight.csv", rows)


def _gt_weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    run = cols["kind"] == "run"
    weights = sorted(set(cols["gt_weight"][run].tolist()))
    fig, ax = new_figure("column", height=3.2)
    for s in sorted(set(cols["seed"][run].tolist())):
        m = run & (cols["seed"] == s)
        order = np.argsort(cols["gt_weight"][m])
        ax.plot(cols["gt_weight"][m][order], cols["test_accuracy"][m][order], color=PALETTE[0], alpha=0.3, lw=0.6)
    stats = [_mean_sd(cols["test_accuracy"][run & (cols["gt_weight"] == w)]) for w in weights]
    ax.errorbar(weights, [s[0] for s in stats], yerr=[s[1] for s in stats], color=PALETTE[0], marker="o",
                label="student, generation 1")
    teacher, teacher_sd = _mean_sd(cols["teacher_test_accuracy"][run & (cols["gt_weight"] == weights[0])])
    ax.axhline(teacher, color=PALETTE[7], ls=":", lw=0.8, label="teacher, generation 0")
    ax.axhspan(teacher - teacher_sd, teacher + teacher_sd, color=PALETTE[7], alpha=0.08, lw=0)
    estimate = cols["kind"] == "estimate"
    names = list(dict.fromkeys(cols["estimator"][estimate].tolist()))
    markers = ["D", "s", "^", "v", "P", "X"]
    for j, name in enumerate(names):
        m = estimate & (cols["estimator"] == name)
        w, w_sd = _mean_sd(cols["gt_weight"][m])
        acc, acc_sd = _mean_sd(cols["test_accuracy"][m])
        label = ESTIMATOR_LABELS.get(name, name.replace("_", " "))
        # Each estimate at (its weight, the test accuracy of the student trained there), +- sd over seeds.
        ax.errorbar([w], [acc], xerr=[w_sd] if w_sd > 0 else None, yerr=[acc_sd] if acc_sd > 0 else None, color=PALETTE[(3, 4, 2, 1, 5, 7)[j % 6]], marker=markers[j % 6],
                    ls="none", ms=5, mfc="none", mew=1.0, label=f"{label}: {w:.2f}")
    ax.set_xlabel("gt_weight (weight on the ground truth)")
    ax.set_ylabel("test accuracy")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=6, frameon=False)
    temperature = float(cols["temperature"][run][0])
    ax.set_title(f"SD (KD, $T$ = {temperature:g}), generation 1 ({_setting_note(cols)})", fontsize=7)
    return save_figure(fig, out_dir, "deep_gt_weight")


ESTIMATOR_LABELS = {
    "grid_best_val": "grid best (val. acc.)",
    "two_run": "two-run affine",
    "two_run_student": "two-run affine (student end point)",
    "kernel_features": "kernel surrogate (features)",
    "one_shot_features": "one-shot [DPR26] (features)",
    "kernel_ntk": "kernel surrogate (NTK)",
    "one_shot_ntk": "one-shot [DPR26] (NTK)",
}


# --------------------------------------------------------------------------------------------------
# deep_reliability: reliability diagrams of ce, ls and sd_kd
# --------------------------------------------------------------------------------------------------

# (method, which generation): the baselines' generation 0, self-distillation's last generation.
_RELIABILITY_METHODS = (("ce", 0), ("ls", 0), ("sd_kd", -1))


def _reliability_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Per method: :func:`deepdistill.core.metrics.reliability_table` of the test predictions of every seed pooled."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    bins = runs.reliability_bins
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "generation", "n_seeds", "bin",
                                             "lower", "upper", "count", "confidence", "accuracy", "gap", "ece")}
    with torch_threads(runs.threads):
        for method, which in _RELIABILITY_METHODS:
            recs = runs.of_method(records, method, "deep_reliability")
            if not recs:
                continue                            # a user's sweep without this method: drawn without it
            g = which % recs[0]["config"]["generations"]
            probs, labels = zip(*(generation_probs(*runs.load(r, g), "test") for r in recs))
            p, y = np.concatenate(probs), np.concatenate(labels)
            table = metrics.reliability_table(p, y, n_bins=bins)
            ece = metrics.ece(p, y, n_bins=bins)
            for b in range(bins):
                for k, v in _setting_columns(recs[0]).items():
                    rows[k].append(v)
                rows["method"].append(method)
                rows["generation"].append(g)
                rows["n_seeds"].append(len(recs))
                rows["bin"].append(b)
                for k in ("lower", "upper", "count", "confidence", "accuracy", "gap"):
                    rows[k].append(table[k][b])
                rows["ece"].append(ece)
    return write_csv(Path(out_dir) / "deep_reliability.csv", rows)


def _reliability_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    fig, axes = new_figure("full", height=2.5, ncols=len(methods), sharey=True)
    for ax, method in zip(np.atleast_1d(axes), methods):
        m = cols["method"] == method
        lower, upper = cols["lower"][m], cols["upper"][m]
        acc, conf, count = cols["accuracy"][m], cols["confidence"][m], cols["count"][m]
        filled = count > 0
        width = (upper - lower)[filled]
        ax.bar(lower[filled], acc[filled], width=width, align="edge", color=_METHOD_COLOURS.get(method), alpha=0.55,
               edgecolor="white", linewidth=0.4, label="accuracy of the bin")
        # The gap to the bin's mean confidence, hatched: above a bar = over-confident.
        ax.bar(lower[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width, align="edge",
               color="none", edgecolor=PALETTE[3], hatch="////", linewidth=0.4,
               label="gap to the bin's mean confidence")
        ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence (max. probability)")
        g, n_seeds, ece = int(cols["generation"][m][0]), int(cols["n_seeds"][m][0]), float(cols["ece"][m][0])
        ax.set_title(f"{METHOD_LABELS.get(method, method)}, gen. {g}: ECE {ece:.3f}")
        pooled = f"{int(count.sum())} test predictions of {n_seeds} seeds pooled, {len(count)} bins"
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("accuracy")
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(f"Reliability ({_setting_note(cols)}; {pooled}); bars above the diagonal: under-confident")
    return save_figure(fig, out_dir, "deep_reliability")


# --------------------------------------------------------------------------------------------------
# deep_penultimate: [M19]'s projection of penultimate activations
# --------------------------------------------------------------------------------------------------

def _penultimate_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Generation 0 of ``ce`` and ``ls`` (first seed): activations of the three classes on train and
    test, projected on the plane through their last-layer templates
    (:func:`deepdistill.core.metrics.penultimate_projection`)."""
    import torch

    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    classes = list(runs.projection_classes)
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "smoothing", "seed", "split",
                                             "label", "predicted", "u", "v")}
    with torch_threads(runs.threads), torch.no_grad():
        for method in ("ce", "ls"):
            recs = runs.of_method(records, method, "deep_penultimate")
            if not recs:
                continue                            # a user's sweep without this method: drawn without it
            rec = min(recs, key=lambda r: r["seed"])    # the first seed
            model, splits = runs.load(rec, 0)
            for split in ("train", "test"):
                x, y = getattr(splits, split).tensors
                keep = np.isin(y.numpy(), classes)
                feats = model.features(x[torch.as_tensor(keep)])                          # (m, D)
                predicted = model.head(feats).argmax(dim=1).numpy()                         # (m,)
                uv = metrics.penultimate_projection(feats, model.head.weight, model.head.bias, classes)  # (m, 2)
                for label, pred, (u, v) in zip(y.numpy()[keep], predicted, uv):
                    for k, val in _setting_columns(rec).items():
                        rows[k].append(val)
                    rows["method"].append(method)
                    rows["smoothing"].append(rec["config"]["smoothing"] if method == "ls" else 0.0)
                    rows["seed"].append(rec["seed"])
                    rows["split"].append(split)
                    rows["label"].append(int(label))
                    rows["predicted"].append(int(pred))
                    rows["u"].append(float(u))
                    rows["v"].append(float(v))
    return write_csv(Path(out_dir) / "deep_penultimate.csv", rows)


def _penultimate_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    classes = sorted(set(cols["label"].tolist()))
    methods = list(dict.fromkeys(cols["method"].tolist()))
    splits = ("train", "test")
    fig, axes = new_figure("full", height=2.1, ncols=len(methods) * len(splits))
    for j, (method, split) in enumerate((m, s) for m in methods for s in splits):
        ax = axes[j]
        m = (cols["method"] == method) & (cols["split"] == split)
        for c_i, c in enumerate(classes):
            mc = m & (cols["label"] == c)
            ax.scatter(cols["u"][mc], cols["v"][mc], s=2, alpha=0.5, color=PALETTE[c_i], linewidths=0,
                       label=f"class {c}", rasterized=True)
        smoothing = float(cols["smoothing"][m][0])
        name = "CE" if method == "ce" else f"LS ($\\epsilon$ = {smoothing:g})"
        ax.set_title(f"{name}, {split}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[["left", "bottom"]].set_color("0.6")
    axes[0].set_ylabel("template plane, axis 2")
    for ax in axes:
        ax.set_xlabel("axis 1")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(classes), markerscale=3)
    fig.suptitle(f"Penultimate activations on the plane of the class templates [M19] ({_setting_note(cols)}, "
                 "generation 0)")
    return save_figure(fig, out_dir, "deep_penultimate")


# --------------------------------------------------------------------------------------------------
# deep_stability: 1 - S of [S21] with and without label smoothing
# --------------------------------------------------------------------------------------------------

def _stability_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Generation 0 of ``ce`` and ``ls`` per seed: ``1 - S`` ([S21]) and accuracy on train and test."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "smoothing", "seed", "split",
                                             "one_minus_stability", "accuracy")}
    with torch_threads(runs.threads):
        for method in ("ce", "ls"):
            for rec in runs.of_method(records, method, "deep_stability"):
                model, splits = runs.load(rec, 0)
                for split in ("train", "test"):
                    p, y = generation_probs(model, splits, split)
                    for k, v in _setting_columns(rec).items():
                        rows[k].append(v)
                    rows["method"].append(method)
                    rows["smoothing"].append(rec["config"]["smoothing"] if method == "ls" else 0.0)
                    rows["seed"].append(rec["seed"])
                    rows["split"].append(split)
                    rows["one_minus_stability"].append(1.0 - metrics.stability(p, y))
                    rows["accuracy"].append(metrics.accuracy(p, y))
    return write_csv(Path(out_dir) / "deep_stability.csv", rows)


def _stability_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    splits = list(dict.fromkeys(cols["split"].tolist()))
    fig, ax = new_figure("column", height=2.3)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        smoothing = float(cols["smoothing"][cols["method"] == method][0])
        label = "CE (no smoothing)" if method == "ce" else f"label smoothing, $\\epsilon$ = {smoothing:g}"
        for j, split in enumerate(splits):
            m = (cols["method"] == method) & (cols["split"] == split)
            mean, sd = _mean_sd(cols["one_minus_stability"][m])
            x = j + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, mean, width=width * 0.9, yerr=sd, color=_METHOD_COLOURS.get(method), alpha=0.55,
                   label=label if j == 0 else None)
            ax.scatter(np.full(m.sum(), x), cols["one_minus_stability"][m], s=6, color="black", zorder=3, linewidths=0)
    ax.set_xticks(range(len(splits)), [f"{s} set" for s in splits])
    ax.set_ylabel("1 $-$ stability (within-class scatter)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=1)
    ax.set_title(f"Teachers, generation 0 ({_setting_note(cols)}); dots = seeds", fontsize=7)
    return save_figure(fig, out_dir, "deep_stability")


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

DEEP_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("deep_generations", _generations_data, _generations_plot,
                   "test accuracy and ECE per generation for CE, label smoothing, Beta smoothing, self-distillation "
                   "(KD and MSE) and KD from a label-smoothed teacher; mean ± sd over seeds [ZS20], [S21]"),
        FigureSpec("deep_diversity", _diversity_data, _diversity_plot,
                   "teacher confidence diversity and entropy per generation (training set, T = 1) and the student's "
                   "test accuracy against its teacher's diversity, with Spearman's rho [ZS20]"),
        FigureSpec("deep_gt_weight", _gt_weight_data, _gt_weight_plot,
                   "test accuracy of the generation-1 SD (KD) student against gt_weight (weight on the ground "
                   "truth), mean ± sd over seeds; marked: the grid's best weight by validation accuracy and the "
                   "estimates of deepdistill.studies.weight_estimation"),
        FigureSpec("deep_reliability", _reliability_data, _reliability_plot,
                   "reliability diagrams on the test set (seeds pooled): CE and label smoothing (generation 0) and "
                   "self-distillation (last generation)"),
        FigureSpec("deep_penultimate", _penultimate_data, _penultimate_plot,
                   "penultimate-layer activations of three classes projected on the plane of their last-layer "
                   "templates, without and with label smoothing, train and test [M19]"),
        FigureSpec("deep_stability", _stability_data, _stability_plot,
                   "1 - stability [S21] (within-class scatter of the softmax vectors) of teachers trained with and "
                   "without label smoothing, on train and test; mean ± sd over seeds"),
    )
}
