"""``deep_generations`` and ``deep_diversity``: the methods over generations ([ZS20], [S21]).

- ``deep_generations``: test accuracy and ECE per generation for every series (a method, or a group of a
  user's sweep), mean ± sd over seeds, read from the run records;
- ``deep_diversity``: the teachers' confidence diversity and entropy per generation (training set,
  T = 1), recomputed from the checkpoints, and the student's test accuracy against its teacher's
  diversity, with Spearman's rho ([ZS20]'s central claim).

Every series has its own colour and marker (:func:`analysis.plotting.series_styles`), the same in both.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.stats
from matplotlib.ticker import MaxNLocator

from analysis.figures.deep_presets import get_preset
from analysis.figures.deep_runs import (PresetRuns, generation_probs, method_order, setting_columns,
                                        setting_note)
from analysis.figures.spec import MissingRunsError, read_csv, write_csv
from analysis.plotting import dodge, mean_sd_drawn, new_figure, save_figure, series_label, series_styles
from deepdistill.core import metrics
from deepdistill.core.config import METHODS
from deepdistill.core.threads import torch_threads

__all__ = ["generations_data", "generations_plot", "generations_caption", "diversity_data", "diversity_plot",
           "diversity_caption", "spearman_or_none"]

_GENERATION_METRICS = ("accuracy", "nll", "ece", "brier", "entropy", "diversity")


def generations_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """One row per series, seed and generation: the record's val and test metrics."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "seed", "generation", "loss",
                                             "gt_weight", "temperature")}
    for split in ("val", "test"):
        for m in _GENERATION_METRICS:
            rows[f"{split}_{m}"] = []
    for rec in records:
        for gen in rec["generations"]:
            for k, v in setting_columns(rec).items():
                rows[k].append(v)
            rows["method"].append(runs.label(rec))
            rows["seed"].append(rec["seed"])
            for k in ("generation", "loss", "gt_weight", "temperature"):
                rows[k].append(gen[k])
            for split in ("val", "test"):
                for m in _GENERATION_METRICS:
                    rows[f"{split}_{m}"].append(gen[split][m])
    return write_csv(Path(out_dir) / "deep_generations.csv", rows)


def _plot_over_generations(ax, cols, metric: str, methods: list[str], styles: dict) -> None:
    for i, method in enumerate(methods):
        mask = cols["method"] == method
        gens = sorted(set(cols["generation"][mask].tolist()))
        stats = [mean_sd_drawn(cols[metric][mask & (cols["generation"] == g)]) for g in gens]
        x = np.asarray(gens, dtype=float) + dodge(i, len(methods))
        ax.errorbar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], ms=4, label=series_label(method),
                    **styles[method])
    ax.set_xticks(sorted(set(cols["generation"].tolist())))
    ax.set_xlabel("generation")


def generations_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = method_order(cols["method"].tolist())
    styles = series_styles(methods)
    fig, axes = new_figure("full", height=2.5, ncols=2)
    _plot_over_generations(axes[0], cols, "test_accuracy", methods, styles)
    axes[0].set_ylabel("test accuracy")
    _plot_over_generations(axes[1], cols, "test_ece", methods, styles)
    axes[1].set_ylabel("test ECE (15 bins)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    fig.suptitle(f"Methods over generations ({setting_note(cols)}); mean $\\pm$ sd over seeds")
    return save_figure(fig, out_dir, "deep_generations")


def _series_list(names) -> str:
    names = [series_label(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def generations_caption(data_path: Path) -> str:
    """What the figure shows (the series present) and what it found (each series' first to last generation)."""
    cols = read_csv(data_path)
    methods = method_order(cols["method"].tolist())
    shows = (f"Test accuracy and ECE per generation of {_series_list(methods)}; mean ± sd over seeds "
             f"({setting_note(cols)}).")
    changes = []
    for method in methods:
        m = cols["method"] == method
        first, last = cols["generation"][m].min(), cols["generation"][m].max()
        if last == first:
            continue
        a0 = mean_sd_drawn(cols["test_accuracy"][m & (cols["generation"] == first)])[0]
        a1 = mean_sd_drawn(cols["test_accuracy"][m & (cols["generation"] == last)])[0]
        changes.append(f"{series_label(method)} {a0:.3f} to {a1:.3f} ({a1 - a0:+.3f})")
    if not changes:
        return shows + " Every series has a single generation, so none changes over generations."
    return f"{shows} Mean test accuracy from the first generation to the last: {'; '.join(changes)}."


# --------------------------------------------------------------------------------------------------
# deep_diversity: teacher diversity and entropy against the student's accuracy
# --------------------------------------------------------------------------------------------------

def diversity_data(out_dir: Path, fast: bool, runs=None) -> Path:
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
                for k, v in setting_columns(rec).items():
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


def spearman_or_none(x, y) -> float | None:
    """Spearman's rho of the pairs ``(x, y)``, or ``None`` where it is undefined: fewer than 3 pairs, or a
    constant ``x`` or ``y`` (scipy would return NaN)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(scipy.stats.spearmanr(x, y).statistic)


def _pairs(cols, method):
    mask = (cols["method"] == method) & np.isfinite(cols["student_test_accuracy"])
    return mask, cols["train_diversity"][mask], cols["student_test_accuracy"][mask]


def _rho_text(rho: float | None, n: int) -> str:
    # Spearman's rho: [ZS20] claim a monotone association, not a linear one. Undefined: say why, never "nan".
    return f"Spearman $\\rho$ = {rho:.2f}, {n} pairs" if rho is not None else f"{n} pair{'s' if n != 1 else ''}: no $\\rho$"


def _marker_size(g) -> np.ndarray:
    return 8 + 10 * np.asarray(g, dtype=float)


def diversity_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = method_order(cols["method"].tolist())
    styles = series_styles(methods)
    fig, axes = new_figure("full", height=2.5, ncols=3)
    _plot_over_generations(axes[0], cols, "train_diversity", methods, styles)
    axes[0].set_ylabel("teacher diversity\n(var. of true-class prob.)")
    _plot_over_generations(axes[1], cols, "train_entropy", methods, styles)
    axes[1].set_ylabel("teacher mean entropy (nats)")
    ax = axes[2]
    rhos = {}
    teacher_gens = sorted(set(cols["generation"][np.isfinite(cols["student_test_accuracy"])].tolist()))
    for method in methods:
        mask, x, y = _pairs(cols, method)
        rhos[method] = (spearman_or_none(x, y), len(x))
        style = {k: v for k, v in styles[method].items() if k != "ls"}
        # The size says the teacher's generation only when the panel holds more than one.
        size = _marker_size(cols["generation"][mask]) if len(teacher_gens) > 1 else 16
        ax.scatter(x, y, s=size, color=style["color"], marker=style["marker"], alpha=0.8, linewidths=0)
    ax.set_xlabel("teacher diversity (generation $g$)")
    ax.set_ylabel("student test accuracy ($g + 1$)")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    if len(teacher_gens) > 1:
        sizes = [ax.scatter([], [], s=_marker_size(g), color="0.5", marker="o", linewidths=0) for g in teacher_gens]
        ax.legend(sizes, [f"$g$ = {g}" for g in teacher_gens], title="marker size", fontsize=6, title_fontsize=6,
                  loc="best", frameon=False, handletextpad=0.2, borderaxespad=0.2)
        ax.set_title("each point: one seed and teacher generation", fontsize=7)
    else:
        ax.set_title(f"teachers of generation {teacher_gens[0] if teacher_gens else '-'}; one point per seed",
                     fontsize=7)
    for a in axes[:2]:
        a.set_title("on the training set, $T = 1$", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [f"{label} ({_rho_text(*rhos[m])})" for label, m in zip(labels, methods)]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(methods), 3))
    fig.suptitle(f"Teacher diversity and student accuracy ({setting_note(cols)})")
    return save_figure(fig, out_dir, "deep_diversity")


def diversity_caption(data_path: Path) -> str:
    """What the figure shows (the series present) and what it found (rho, or why there is none)."""
    cols = read_csv(data_path)
    methods = method_order(cols["method"].tolist())
    shows = (f"The teachers' confidence diversity and entropy per generation on the training set of "
             f"{_series_list(methods)}, and the student's test accuracy against its teacher's diversity ([ZS20]).")
    found = []
    for method in methods:
        _, x, y = _pairs(cols, method)
        rho = spearman_or_none(x, y)
        found.append(f"{series_label(method)}: Spearman's rho {rho:.2f} over {len(x)} teacher-student pairs" if rho is not None
                     else f"{series_label(method)}: {len(x)} teacher-student pair{'s' if len(x) != 1 else ''}, too few "
                          "(or too alike) for a rank correlation")
    return f"{shows} " + "; ".join(found) + "."
