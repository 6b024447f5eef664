"""Metrics, comparisons of kernel theory and deep estimates, and every figure by one command.

The metrics live in :mod:`deepdistill.core.metrics` (the training records need them, and a package never
imports one above it) and are re-exported here (``from analysis import ece``); figures live in
:mod:`analysis.figures` and are run by ``python -m analysis figures ...``; figure style and I/O are
in :mod:`analysis.plotting` (not imported here, so the metrics do not pay matplotlib's import).
"""
from deepdistill.core.metrics import (
    ECE_PRESETS,
    accuracy,
    brier_score,
    check_labels,
    check_probs,
    confidence_diversity,
    ece,
    equivalent_smoothing,
    mean_entropy,
    nll,
    penultimate_projection,
    reliability_table,
    softmax,
    stability,
    summarize,
)

__all__ = [
    "ECE_PRESETS",
    "accuracy",
    "brier_score",
    "check_labels",
    "check_probs",
    "confidence_diversity",
    "ece",
    "equivalent_smoothing",
    "mean_entropy",
    "nll",
    "penultimate_projection",
    "reliability_table",
    "softmax",
    "stability",
    "summarize",
]
