"""Deep multi-generation self-distillation in PyTorch, and its label-smoothing baselines.

Data (offline, seeded), models, pure loss functions, a resumable multi-generation training loop,
results records and sweeps, and the estimate of the optimal ground-truth weight for a toolkit config
(:func:`estimate_gt_weight`) or your own network (:func:`estimate_gt_weight_for_model`, with
:func:`make_train_fn` for the toolkit's training loop). ``gt_weight`` is always the weight on the
ground truth; conventions that weight the teacher (Zhang & Sabuncu's ``w``) are converted where they
enter. The formulas are in ``docs/theory.md``.

Four floors, each importing only the floors below it (``tests/test_layers.py`` checks this):

=============  =====================================================================================
``core``       data, models, losses, metrics, configs, atomic files: the pieces, no training loop
``engine``     the training loop, the run folder, records, claims, the lazy-regime trainer
``drivers``    sweeps: grids, the local runner (``--jobs``), Ray
``studies``    the weight estimation and the kernel-meets-deep bridge
=============  =====================================================================================

The public names below are looked up lazily (PEP 562), so ``import deepdistill.core.io`` loads no
training loop, no sweep scheduler and no study.
"""
from __future__ import annotations

import importlib

# public name -> the module that defines it
_PUBLIC = {
    **dict.fromkeys(["DATASETS", "NOISE_TYPES", "DataSplits", "add_label_noise", "load_dataset", "random_crop_flip"],
                    "deepdistill.core.data"),
    "EMA": "deepdistill.core.ema",
    **dict.fromkeys(["LOSSES", "LossSpec", "get_loss", "beta_smoothing_loss", "beta_smoothing_targets", "cross_entropy",
                     "hinton_kd_loss", "kd_kl", "label_smoothing_loss", "ls_teacher_kd_loss", "mixed_target_mse_loss",
                     "output_mixed_mse_loss", "smoothed_targets", "soft_cross_entropy", "zhang_sabuncu_loss"],
                    "deepdistill.core.losses"),
    **dict.fromkeys(["MODELS", "build_model"], "deepdistill.core.models"),
    "NTKMLP": "deepdistill.core.ntk",
    "TrainConfig": "deepdistill.core.config",
    "make_train_fn": "deepdistill.studies.weight_backends",
    **dict.fromkeys(["ESTIMATORS", "estimate_gt_weight", "estimate_gt_weight_for_model"],
                    "deepdistill.studies.weight_estimation"),
    **dict.fromkeys(["EstimatorResult", "WeightEstimate", "WeightStudy"], "deepdistill.studies.weight_results"),
}

__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'deepdistill' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value            # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
