"""Deep multi-generation self-distillation in PyTorch, and its label-smoothing baselines.

Data (offline, seeded), models, pure loss functions, a resumable multi-generation training loop,
results records and sweeps, and the estimate of the optimal ground-truth weight for a toolkit config
(:func:`estimate_gt_weight`) or your own network (:func:`estimate_gt_weight_for_model`, with
:func:`make_train_fn` for the toolkit's training loop). ``gt_weight`` is always the weight on the
ground truth; conventions that weight the teacher (Zhang & Sabuncu's ``w``) are converted where they
enter. The formulas are in ``docs/theory.md``.
"""
from .data import DATASETS, NOISE_TYPES, DataSplits, add_label_noise, load_dataset, random_crop_flip
from .ema import EMA
from .losses import (
    LOSSES,
    LossSpec,
    beta_smoothing_loss,
    beta_smoothing_targets,
    cross_entropy,
    get_loss,
    hinton_kd_loss,
    kd_kl,
    label_smoothing_loss,
    ls_teacher_kd_loss,
    mixed_target_mse_loss,
    output_mixed_mse_loss,
    smoothed_targets,
    soft_cross_entropy,
    zhang_sabuncu_loss,
)
from .models import MODELS, build_model
from .weight_backends import make_train_fn
from .weight_estimation import ESTIMATORS, estimate_gt_weight, estimate_gt_weight_for_model
from .weight_results import EstimatorResult, WeightEstimate, WeightStudy

__all__ = [
    "DATASETS", "NOISE_TYPES", "DataSplits", "add_label_noise", "load_dataset", "random_crop_flip",
    "EMA", "LOSSES", "LossSpec", "get_loss", "beta_smoothing_loss", "beta_smoothing_targets",
    "cross_entropy", "hinton_kd_loss", "kd_kl", "label_smoothing_loss", "ls_teacher_kd_loss",
    "mixed_target_mse_loss", "output_mixed_mse_loss", "smoothed_targets", "soft_cross_entropy", "zhang_sabuncu_loss",
    "MODELS", "build_model",
    "estimate_gt_weight", "estimate_gt_weight_for_model", "make_train_fn", "ESTIMATORS", "WeightEstimate",
    "WeightStudy", "EstimatorResult",
]
