"""The sizes of the deep figures (:data:`PRESETS`) and the runs each preset asks for.

Presets. ``fast`` is for CI and checks: scikit-learn's bundled 8x8 digits (no download), a
one-hidden-layer MLP of width 64, 4 epochs, 2 seeds, 3 generations, on the CPU with one torch thread
(these models are so small that a second intra-op thread only adds synchronisation; on a loaded 2-core
machine it made training 5x slower). ``full`` is the paper-quality version: MNIST-1D, the MNIST-1D
authors' 1-D CNN with the toolkit's default recipe (60 epochs at a constant AdamW lr of 1e-2, batch
100: about 92% test accuracy alone), 3 seeds, 5 generations, on the GPU when there is one, else on one
process per core with one torch thread each (a second thread does not speed this CNN up, and on a loaded
machine it slows it down many times); runs that share generations train them once.

The runs: :func:`comparison_configs` (every method x seed, for ``deep_generations``, ``deep_diversity``,
``deep_reliability``, ``deep_penultimate``, ``deep_stability``) and :func:`gt_weight_configs` (the
``sd_kd`` weight grid of ``deep_gt_weight``), all in one sweep folder, :func:`runs_dir`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepdistill.core.config import TrainConfig
from deepdistill.drivers.sweep import expand_grid

__all__ = ["DeepPreset", "PRESETS", "get_preset", "RUNS_FOLDER", "runs_dir", "comparison_configs", "gt_weight_configs"]

#: The shared sweep folder, relative to a figure's ``out_dir``.
RUNS_FOLDER = "deep_runs"


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


def comparison_configs(preset: DeepPreset) -> list[TrainConfig]:
    """The method comparison: every method of the preset x its seeds, ``preset.generations`` each."""
    return expand_grid(preset.base, methods=preset.methods, generations=[preset.generations], seeds=preset.seeds)


def gt_weight_configs(preset: DeepPreset) -> list[TrainConfig]:
    """The ``sd_kd`` weight grid: one generation-1 student per ``gt_weight`` and seed (2 generations)."""
    return expand_grid(preset.base, methods=["sd_kd"], gt_weights=preset.gt_weights, generations=[2],
                       seeds=preset.seeds)
