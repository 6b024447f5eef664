"""Kernel ridge self-distillation in closed form.

Borup & Andersen (2021) iterated self-distillation with a ground-truth weight (``gt_weight``), its
infinite-step limit (amplified ridge) and optimal weights; Mobahi, Farajtabar & Bartlett (2020)
fixed-budget pure self-distillation; Dang, Patil & Rinaldo's one-shot weight estimate. Every
quantity is a diagonal filter on one eigendecomposition of the Gram matrix (:mod:`.filters`).

Beyond one weight at a time: :func:`joint_schedule` (all weights at once), :func:`select_steps` (the
number of steps by GCV) and :mod:`kerneldistill.ridge_path` (every ridge from the same
eigendecomposition). ``kerneldistill.symbolic`` (sympy), ``kerneldistill.verification``,
``kerneldistill.pareek``, ``kerneldistill.studies`` and ``kerneldistill.claims`` (the field's published
results as runnable claims, ``python -m kerneldistill claims``) are imported on demand.

Which data each iteration refits on (the one place that says it):

=====================================  ===========================================================
fixed design: the same ``X``, the      :class:`KernelDistiller` and everything built on its spectrum
same labels ``y`` every step ([BA21])  (:mod:`.filters`, :mod:`.optimal`, :mod:`.joint`,
                                       :mod:`.step_selection`, :mod:`.mobahi`, :mod:`.ridge_path`);
                                       :mod:`.linear_probe` (fixed features, Jeong & Chung);
                                       :mod:`.noisy_gmm` (stages on one training set, Takanami et al.)
fresh labels each round, mixed with    :mod:`.fresh_data` (Garg et al., He et al.): the same design
the previous fit's synthetic labels    and new label noise, or (``covariates="fresh"``) new ``X``
fresh covariates each step, labelled   :mod:`.self_training` (Wu, Yang & Sun): step 0 fits the noisy
by the previous fit, no noise          labels, later steps new ``X`` on noiseless pseudo-labels
=====================================  ===========================================================
"""
from .estimator import KernelDistiller
from .filters import filter_complements, filter_diagonals, filter_path
from ._validation import PrecisionWarning
from .joint import MAX_JOINT_STEPS, joint_schedule
from .mobahi import MobahiPath, fixed_budget_path, fixed_budget_path_from_distiller
from .optimal import (
    ExpectedTrainingRisk,
    OneShotRisk,
    ReferenceRisk,
    StepQuadratic,
    WeightSchedule,
    greedy_schedule,
    gt_weight_from_teacher_weight,
    optimal_gt_weight,
    ridge_from_dpr,
)
from .spectrum import Spectrum, eigh_gram, nystroem_spectrum, topk_spectrum
from .step_selection import StepSelection, select_steps

__all__ = [
    "KernelDistiller", "filter_complements", "filter_diagonals", "filter_path", "joint_schedule", "MAX_JOINT_STEPS",
    "PrecisionWarning",
    "MobahiPath", "fixed_budget_path", "fixed_budget_path_from_distiller",
    "ExpectedTrainingRisk", "OneShotRisk", "ReferenceRisk", "StepQuadratic", "WeightSchedule",
    "greedy_schedule", "gt_weight_from_teacher_weight", "optimal_gt_weight", "ridge_from_dpr",
    "Spectrum", "eigh_gram", "nystroem_spectrum", "topk_spectrum", "StepSelection", "select_steps",
]
