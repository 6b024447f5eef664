"""The registry of the figures of deep multi-generation self-distillation ([ZS20], [S21], [M19], [BA21]).

Each figure is a :class:`~analysis.figures.spec.FigureSpec`: a data step that trains (or reuses) runs
of :mod:`deepdistill` and writes one tidy CSV, a plot step that reads only that CSV, and a caption
built from that CSV (what it shows, from the runs present, and what it found).

=========================  =========================================================================
figure                     content (module)
=========================  =========================================================================
deep_generations           test accuracy and ECE per generation for every method, mean +- sd over seeds
                           (:mod:`~analysis.figures.deep_generations`)
deep_diversity             teacher confidence diversity and entropy per generation, and the student's
                           accuracy against its teacher's diversity ([ZS20]'s central claim) (same)
deep_gt_weight             test accuracy of generation 1 of ``sd_kd`` against ``gt_weight``, with
                           the grid's best weight (by validation accuracy) and any estimates marked
                           (:mod:`~analysis.figures.deep_weight`)
deep_reliability           reliability diagrams of ce, ls and sd_kd (test predictions pooled over seeds)
                           (:mod:`~analysis.figures.deep_calibration`)
deep_penultimate           penultimate activations of three classes projected on the plane of their
                           templates, with and without label smoothing ([M19], not t-SNE) (same)
deep_stability             1 - S of [S21] for teachers trained with and without label smoothing (same)
=========================  =========================================================================

Where the rest lives: the presets (sizes) and the runs they ask for in
:mod:`~analysis.figures.deep_presets`; driving the shared sweep, loading checkpoints and the weight
estimates in :mod:`~analysis.figures.deep_runs`; a user's own sweep in
:mod:`~analysis.figures.sweep_runs`; each series' colour and marker in
:func:`analysis.plotting.series_styles`.

One shared sweep. Every data step asks :func:`deepdistill.drivers.sweep.run_sweep` for the runs it needs
in ONE folder, ``out_dir/deep_runs/`` (``runs/<run_id>/`` per run, ``rollup.csv`` over all of them), so
five figures share the method comparison's runs and ``deep_gt_weight`` trains the weight grid.

Conventions: ``gt_weight`` is the weight on the ground truth; "generation 0" trains on the labels,
generation ``g >= 1`` is a fresh network distilled from generation ``g - 1``. Every metric comes from
:mod:`deepdistill.core.metrics` (the same code the run records use).

The names below re-exported from the other modules keep the paths that earlier code imported
(``from analysis.figures.deep import get_preset, load_generation, METHOD_LABELS ...``).
"""
from __future__ import annotations

from analysis.figures.deep_calibration import (penultimate_caption, penultimate_data, penultimate_plot,
                                               reliability_caption, reliability_data, reliability_plot,
                                               stability_caption, stability_data, stability_plot)
from analysis.figures.deep_generations import (diversity_caption, diversity_data, diversity_plot, generations_caption,
                                               generations_data, generations_plot)
from analysis.figures.deep_presets import (PRESETS, RUNS_FOLDER, DeepPreset, comparison_configs, get_preset,
                                           gt_weight_configs, runs_dir)
from analysis.figures.deep_runs import PresetRuns, ensure_runs, generation_probs, load_generation
from analysis.figures.deep_weight import ESTIMATOR_LABELS, gt_weight_caption, gt_weight_data, gt_weight_plot
from analysis.figures.spec import FigureSpec, MissingRunsError
from analysis.plotting import SERIES_LABELS as METHOD_LABELS

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

DEEP_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("deep_generations", generations_data, generations_plot,
                   "test accuracy and ECE per generation for each method of the runs; mean ± sd over seeds [ZS20], "
                   "[S21]", generations_caption),
        FigureSpec("deep_diversity", diversity_data, diversity_plot,
                   "teacher confidence diversity and entropy per generation (training set, T = 1) and the student's "
                   "test accuracy against its teacher's diversity, with Spearman's rho [ZS20]", diversity_caption),
        FigureSpec("deep_gt_weight", gt_weight_data, gt_weight_plot,
                   "test accuracy of the generation-1 SD (KD) student against gt_weight (weight on the ground "
                   "truth), mean ± sd over seeds; marked: the grid's best weight by validation accuracy and the "
                   "estimates of deepdistill.studies.weight_estimation", gt_weight_caption),
        FigureSpec("deep_reliability", reliability_data, reliability_plot,
                   "reliability diagrams on the test set (seeds pooled): CE and label smoothing (generation 0) and "
                   "self-distillation (last generation)", reliability_caption),
        FigureSpec("deep_penultimate", penultimate_data, penultimate_plot,
                   "penultimate-layer activations of three classes projected on the plane of their last-layer "
                   "templates, without and with label smoothing, train and test [M19]", penultimate_caption),
        FigureSpec("deep_stability", stability_data, stability_plot,
                   "1 - stability [S21] (within-class scatter of the softmax vectors) of teachers trained with and "
                   "without label smoothing, on train and test; mean ± sd over seeds", stability_caption),
    )
}
