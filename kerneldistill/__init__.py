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
import importlib

# Lazy (PEP 562), as in deepdistill: `import kerneldistill` or of any submodule (the deep losses check a weight
# with `kerneldistill._validation` in every training process) would otherwise load scikit-learn and scipy
# through the estimator, about 1 s per process. A name below is imported on first use, then kept here.
_PUBLIC = {
    **dict.fromkeys(["KernelDistiller"], "kerneldistill.estimator"),
    **dict.fromkeys(["filter_complements", "filter_diagonals", "filter_path"], "kerneldistill.filters"),
    **dict.fromkeys(["PrecisionWarning"], "kerneldistill._validation"),
    **dict.fromkeys(["MAX_JOINT_STEPS", "joint_schedule"], "kerneldistill.joint"),
    **dict.fromkeys(["MobahiPath", "fixed_budget_path", "fixed_budget_path_from_distiller"], "kerneldistill.mobahi"),
    **dict.fromkeys(["ExpectedTrainingRisk", "OneShotRisk", "ReferenceRisk", "StepQuadratic", "WeightSchedule",
                     "greedy_schedule", "gt_weight_from_teacher_weight", "optimal_gt_weight", "ridge_from_dpr"],
                    "kerneldistill.optimal"),
    **dict.fromkeys(["Spectrum", "eigh_gram", "nystroem_spectrum", "topk_spectrum"], "kerneldistill.spectrum"),
    **dict.fromkeys(["StepSelection", "select_steps"], "kerneldistill.step_selection"),
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kerneldistill' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value            # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "KernelDistiller", "filter_complements", "filter_diagonals", "filter_path", "joint_schedule", "MAX_JOINT_STEPS",
    "PrecisionWarning",
    "MobahiPath", "fixed_budget_path", "fixed_budget_path_from_distiller",
    "ExpectedTrainingRisk", "OneShotRisk", "ReferenceRisk", "StepQuadratic", "WeightSchedule",
    "greedy_schedule", "gt_weight_from_teacher_weight", "optimal_gt_weight", "ridge_from_dpr",
    "Spectrum", "eigh_gram", "nystroem_spectrum", "topk_spectrum", "StepSelection", "select_steps",
]
