"""Metrics of a classifier's predictive distribution: one implementation for the run records, the weight
estimates, the figures and the report (:mod:`analysis` re-exports them: ``from analysis import ece``).

Every metric takes ``probs`` (n, K): one predictive distribution per example (rows of non-negative
numbers summing to 1, e.g. ``softmax(logits)``) and, where it needs them, ``labels`` (n,): integer
classes in ``[0, K)``. NumPy arrays and torch tensors (any device, any float dtype) are accepted;
they are converted to float64 NumPy at the boundary, so results do not depend on the caller's dtype.
Results are Python floats (or NumPy arrays for tables). Formulas and references are in each
docstring.

References
----------
[G17]  Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.
[M19]  Müller, Kornblith & Hinton, "When Does Label Smoothing Help?", NeurIPS 2019, arXiv 1906.02629.
[ZS20] Zhang & Sabuncu, "Self-Distillation as Instance-Specific Label Smoothing", NeurIPS 2020,
       arXiv 2006.05065.
[S21]  Shen et al., "Is Label Smoothing Truly Incompatible with Knowledge Distillation", ICLR 2021,
       arXiv 2104.00676.
[B50]  Brier, "Verification of forecasts expressed in terms of probability", Monthly Weather Review 1950.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.special
# scipy.stats (about 0.4 s on import) is imported by the one function that uses it: every training process
# imports this module.

__all__ = [
    "ECE_PRESETS",
    "as_numpy",
    "check_probs",
    "check_labels",
    "softmax",
    "accuracy",
    "nll",
    "brier_score",
    "ece",
    "reliability_table",
    "mean_entropy",
    "confidence_diversity",
    "stability",
    "equivalent_smoothing",
    "penultimate_projection",
    "summarize",
    "summarize_regression",
    "headline_metric",
]

#: Number of equal-width ECE bins used by each paper: [M19] 15 bins, [ZS20] 20 bins.
ECE_PRESETS = {"muller": 15, "zhang_sabuncu": 20}

_BINNINGS = ("equal_width", "equal_mass")


# --------------------------------------------------------------------------------------------------
# Input conversion and validation
# --------------------------------------------------------------------------------------------------

def as_numpy(x, name: str = "x") -> np.ndarray:
    """``x`` as a NumPy array; torch tensors are detached and moved to the CPU first.

    Torch is recognised by its type's module rather than imported, so the metrics do not pay torch's
    import time when the caller never uses it. bfloat16 has no NumPy dtype, so it goes via float32.
    """
    if type(x).__module__.startswith("torch"):
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`{name}` must be an array or a tensor; got {type(x).__name__} ({exc}).") from None


def _sum_tolerance(dtype: np.dtype) -> float:
    # Rows produced by a softmax in low precision miss 1 by a few ulps times sqrt(K); these bounds
    # accept that and still reject logits or unnormalised scores (which miss by O(1)).
    if dtype == np.float64:
        return 1e-6
    if dtype == np.float32:
        return 1e-4
    return 1e-2  # float16 (check_probs gives bfloat16 tensors the same)


def check_probs(probs, name: str = "probs", *, atol: float | None = None) -> np.ndarray:
    """Validate an (n, K) array of probability rows and return it as float64.

    Each row must be finite, entries in ``[-atol, 1 + atol]``, and sum to 1 within ``atol``
    (default by dtype: 1e-6 for float64, 1e-4 for float32, 1e-2 for half precision).
    """
    half = str(getattr(probs, "dtype", "")) == "torch.bfloat16"  # as_numpy turns it into float32
    p = as_numpy(probs, name)
    if p.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (n examples, K classes); got shape {p.shape}.")
    if p.shape[0] == 0 or p.shape[1] < 2:
        raise ValueError(f"`{name}` must have at least one example and two classes; got shape {p.shape}.")
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"`{name}` must hold floating-point probabilities; got dtype {p.dtype}.")
    tol = (1e-2 if half else _sum_tolerance(p.dtype)) if atol is None else float(atol)
    p = p.astype(np.float64, copy=False)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"`{name}` must be finite; got {int(np.sum(~np.isfinite(p)))} NaN/inf entries.")
    lo, hi = p.min(), p.max()
    if lo < -tol or hi > 1 + tol:
        raise ValueError(
            f"`{name}` entries must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}]. "
            "Pass probabilities (e.g. deepdistill.core.metrics.softmax(logits)), not logits."
        )
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > tol:
        raise ValueError(
            f"`{name}` rows must sum to 1 (atol={tol:g}); row {worst} sums to {sums[worst]:.6g}. "
            "Pass probabilities (e.g. deepdistill.core.metrics.softmax(logits)), not logits or scores."
        )
    return p


def check_labels(labels, n_classes: int, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Validate a 1-D array of integer class labels in ``[0, n_classes)`` (of length ``n`` if given)."""
    y = as_numpy(labels, name)
    if y.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of class indices; got shape {y.shape}.")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"`{name}` must have one label per example ({n}); got {y.shape[0]}.")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integer class indices; got dtype {y.dtype}.")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"`{name}` must lie in [0, {n_classes}); got values in [{y.min()}, {y.max()}].")
    return y.astype(np.intp, copy=False)


def _prepare(probs, labels):
    p = check_probs(probs)
    return p, check_labels(labels, p.shape[1], p.shape[0])


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Tempered softmax over the last axis: ``p_k = exp(z_k / T) / sum_j exp(z_j / T)`` (float64).

    Uses :func:`scipy.special.softmax`, which subtracts the row maximum first (no overflow).
    ``temperature`` is any real scalar > 0 (Python or NumPy, e.g. ``np.float32(2.0)``), not a bool.
    """
    # numbers.Real covers Python and NumPy scalars alike; booleans are Integral too, so excluded by hand.
    if (not isinstance(temperature, numbers.Real) or isinstance(temperature, (bool, np.bool_))
            or not temperature > 0):
        raise ValueError(f"`temperature` must be a positive real number (not a bool); got {temperature!r}.")
    z = as_numpy(logits, "logits")
    if not np.issubdtype(z.dtype, np.number) or z.ndim == 0:
        raise ValueError(f"`logits` must be a numeric array with a class axis; got dtype {z.dtype}, shape {z.shape}.")
    return scipy.special.softmax(z.astype(np.float64) / float(temperature), axis=-1)


# --------------------------------------------------------------------------------------------------
# Accuracy and proper scoring rules
# --------------------------------------------------------------------------------------------------

def accuracy(probs, labels) -> float:
    """Top-1 accuracy: ``mean_i [argmax_k p_ik == y_i]`` (ties go to the lowest class index)."""
    p, y = _prepare(probs, labels)
    return float(np.mean(p.argmax(axis=1) == y))


def _nll(p, y, eps):
    # Clip so that a true class given probability 0 costs -log(eps) instead of inf: one such
    # example would otherwise make a whole evaluation's mean infinite.
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def nll(probs, labels, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class, in nats: ``-(1/n) sum_i log max(p_{i,y_i}, eps)``."""
    if not 0 < eps < 1:
        raise ValueError(f"`eps` must lie in (0, 1); got {eps!r}.")
    p, y = _prepare(probs, labels)
    return _nll(p, y, eps)


def _brier(p, y):
    sq = np.sum(p**2, axis=1) - 2.0 * p[np.arange(len(y)), y] + 1.0  # ||p - e_y||^2 expanded
    return float(np.mean(sq))


def brier_score(probs, labels) -> float:
    """Multi-class Brier score [B50]: ``(1/n) sum_i sum_k (p_ik - [k == y_i])^2``.

    Convention: summed over the K classes and averaged over examples, so it lies in [0, 2] (0 for a
    confident correct prediction, 2 for a confident wrong one). Some libraries divide by K as well,
    or score only the binary positive class (scikit-learn's ``brier_score_loss``); multiply by 1/K
    to compare with a per-class mean.
    """
    p, y = _prepare(probs, labels)
    return _brier(p, y)


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------

def _resolve_bins(n_bins) -> int:
    if isinstance(n_bins, str):
        if n_bins not in ECE_PRESETS:
            raise ValueError(f"`n_bins` preset must be one of {sorted(ECE_PRESETS)}; got {n_bins!r}.")
        return ECE_PRESETS[n_bins]
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"`n_bins` must be an integer >= 1 or a preset name {sorted(ECE_PRESETS)}; got {n_bins!r}.")
    return int(n_bins)


def _reliability(p, y, n_bins, binning):
    """Per-bin columns over the top-label confidence; see :func:`reliability_table`."""
    if binning not in _BINNINGS:
        raise ValueError(f"`binning` must be one of {_BINNINGS}; got {binning!r}.")
    n_bins = _resolve_bins(n_bins)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    n = len(conf)
    if binning == "equal_width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        # Bins are (e_{b-1}, e_b], the first one closed at 0 ([G17]'s reference code). torchmetrics
        # uses [e_{b-1}, e_b) with an extra bin for confidence exactly 1; the two agree unless a
        # confidence falls exactly on an interior edge or equals 1.
        idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
        lower, upper = edges[:-1], edges[1:]
    else:
        if n < n_bins:
            raise ValueError(f"equal-mass binning needs at least `n_bins` examples; got n={n}, n_bins={n_bins}.")
        # Equal mass: sort by confidence and cut the ranks into n_bins runs whose sizes differ by at
        # most one (np.array_split). Ties at a cut may fall on both sides; that keeps the counts equal.
        order = np.argsort(conf, kind="stable")
        sizes = np.full(n_bins, n // n_bins) + (np.arange(n_bins) < n % n_bins)  # np.array_split's sizes
        idx = np.empty(n, dtype=np.intp)
        idx[order] = np.repeat(np.arange(n_bins), sizes)
        sorted_conf = conf[order]
        cut = np.cumsum(sizes)[:-1]
        # Reported edges: midway between the neighbouring confidences at each cut, 0 and 1 outside.
        inner = 0.5 * (sorted_conf[cut - 1] + sorted_conf[cut])
        lower = np.concatenate([[0.0], inner])
        upper = np.concatenate([inner, [1.0]])
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins give NaN on purpose
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {
        "lower": lower,
        "upper": upper,
        "count": count,
        "confidence": mean_conf,
        "accuracy": acc,
        "gap": acc - mean_conf,
    }


def reliability_table(probs, labels, n_bins=15, binning: str = "equal_width") -> dict[str, np.ndarray]:
    """The per-bin table behind a reliability diagram and the ECE, over top-label confidence.

    With confidence ``c_i = max_k p_ik`` and correctness ``a_i = [argmax_k p_ik == y_i]``, examples are
    binned by ``c_i`` and each bin ``B`` reports its edges, ``count = |B|``, ``confidence = mean c_i``,
    ``accuracy = mean a_i`` and ``gap = accuracy - confidence`` (negative = over-confident). Empty
    bins have NaN confidence/accuracy/gap.

    Parameters
    ----------
    n_bins : an int, or a preset name from ``ECE_PRESETS`` ("muller" = 15, "zhang_sabuncu" = 20).
    binning : "equal_width" (edges ``b/n_bins``; bins are ``(lower, upper]``, the first closed at 0,
        as in [G17]'s code) or "equal_mass" (bins of equal count, by confidence rank).

    Returns
    -------
    dict of equal-length columns ``lower, upper, count, confidence, accuracy, gap`` (one row per
    bin), ready for :func:`analysis.figures.spec.write_csv`.
    """
    p, y = _prepare(probs, labels)
    return _reliability(p, y, n_bins, binning)


def _ece_from_table(table, n):
    filled = table["count"] > 0
    return float(np.sum(table["count"][filled] / n * np.abs(table["gap"][filled])))


def ece(probs, labels, n_bins=15, binning: str = "equal_width") -> float:
    """Expected calibration error [G17]: ``ECE = sum_b (|B_b| / n) |acc(B_b) - conf(B_b)|``.

    Bins over the top-label confidence ``max_k p_ik`` (see :func:`reliability_table` for the bin
    convention). ``n_bins`` is an int or a preset: ``ECE_PRESETS["muller"] = 15`` ([M19]),
    ``ECE_PRESETS["zhang_sabuncu"] = 20`` ([ZS20]). With equal-width bins this equals torchmetrics'
    ``multiclass_calibration_error(norm="l1")`` whenever no confidence lies exactly on an interior
    edge or at 1.
    """
    p, y = _prepare(probs, labels)
    return _ece_from_table(_reliability(p, y, n_bins, binning), len(y))


# --------------------------------------------------------------------------------------------------
# Uncertainty and diversity
# --------------------------------------------------------------------------------------------------

def _mean_entropy(p):
    return float(np.mean(np.sum(scipy.special.entr(p), axis=1)))


def mean_entropy(probs) -> float:
    """Mean predictive entropy in nats: ``(1/n) sum_i -sum_k p_ik log p_ik`` (with 0 log 0 = 0).

    Lies in ``[0, log K]``; higher = less certain predictions (the "predictive uncertainty" of
    ``docs/theory.md`` section 5). :func:`scipy.special.entr` supplies ``-x log x`` with the 0 case handled.
    """
    return _mean_entropy(check_probs(probs))


_WHICH = ("true", "max")
_ESTIMATORS = ("variance", "entropy")


def _diversity(p, y, which, estimator, n_bins):
    if which not in _WHICH:
        raise ValueError(f"`which` must be one of {_WHICH}; got {which!r}.")
    if estimator not in _ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {_ESTIMATORS}; got {estimator!r}.")
    if which == "true":
        if y is None:
            raise ValueError("`labels` are needed for which='true' (the true-class probability); "
                             "pass labels, or which='max' for the top-label confidence.")
        c = p[np.arange(len(y)), y]
    else:
        c = p.max(axis=1)
    if estimator == "variance":
        return float(np.var(c))
    if not isinstance(n_bins, (int, np.integer)) or isinstance(n_bins, bool) or n_bins < 2:
        raise ValueError(f"`n_bins` must be an integer >= 2 for the histogram entropy; got {n_bins!r}.")
    hist, _ = np.histogram(c, bins=n_bins, range=(0.0, 1.0))
    import scipy.stats

    return float(scipy.stats.entropy(hist))  # normalises the counts; 0 log 0 = 0


def confidence_diversity(probs, labels=None, which: str = "true", estimator: str = "variance",
                         n_bins: int = 20) -> float:
    """Spread across examples of the model's confidence, the predictive diversity of [ZS20].

    The confidence is ``c_i = p_{i, y_i}`` (``which="true"``, needs ``labels``) or ``c_i = max_k p_ik``
    (``which="max"``). Estimators:

    - ``"variance"``: population variance ``(1/n) sum_i (c_i - mean c)^2`` (ddof = 0), in [0, 1/4];
    - ``"entropy"``: entropy in nats of the histogram of ``c`` over ``n_bins`` equal-width bins of
      [0, 1], in ``[0, log n_bins]`` (0 when every confidence falls in one bin).
    """
    p = check_probs(probs)
    y = None if labels is None else check_labels(labels, p.shape[1], p.shape[0])
    return _diversity(p, y, which, estimator, n_bins)


def stability(probs, labels) -> float:
    """Stability of [S21]: ``S = 1 - (1/K) sum_c (1/n_c) sum_{i: y_i = c} ||p_i - pbar_c||^2``.

    ``pbar_c`` is the mean probability vector of class ``c``; the sum is the within-class scatter of
    the softmax vectors, so ``S = 1`` when every example of a class gets the same distribution.
    ``K`` counts the classes present in ``labels`` (a class with no example has no scatter to
    average). Tables in [S21] report ``1 - S`` (the mean within-class scatter; lower = label
    smoothing erased more of the per-example information); this function returns ``S``.
    """
    p, y = _prepare(probs, labels)
    K = p.shape[1]
    n_c = np.bincount(y, minlength=K)
    sums = np.zeros((K, K))
    np.add.at(sums, y, p)  # per-class sums of probability vectors, without an (n, K) one-hot
    present = n_c > 0
    centroids = np.divide(sums, n_c[:, None], out=np.zeros_like(sums), where=present[:, None])
    sq = np.sum((p - centroids[y]) ** 2, axis=1)
    scatter = np.bincount(y, weights=sq, minlength=K)[present] / n_c[present]
    return float(1.0 - np.mean(scatter))


def equivalent_smoothing(teacher_probs, labels) -> float:
    """Label smoothing equivalent to a teacher's targets [M19]: ``gamma = (K/(K-1)) E_i[ sum_k (1 - y_ik) p_ik ]``.

    ``y`` is one-hot, so the inner sum is the mass the teacher puts off the true class,
    ``1 - p_{i, y_i}``. Pass the teacher's probabilities at the distillation temperature
    (``softmax(logits, temperature=T)``). Convention: [M19] ("muller"), i.e. a target of
    ``1 - gamma + gamma/K`` on the true class and ``gamma/K`` elsewhere has exactly this off-class
    mass, so such targets give back ``gamma``. In the [S21]/[ZS20] ("shen") convention the same mass
    is ``eps_shen = gamma (K - 1)/K``.
    """
    p, y = _prepare(teacher_probs, labels)
    K = p.shape[1]
    off_class = 1.0 - p[np.arange(len(y)), y]
    return float(np.mean(off_class) * K / (K - 1))


# --------------------------------------------------------------------------------------------------
# Penultimate-layer geometry
# --------------------------------------------------------------------------------------------------

def penultimate_projection(activations, weight, bias, classes) -> np.ndarray:
    """2-D coordinates of penultimate-layer activations in the plane of three class templates [M19].

    The logit of class ``k`` is ``w_k . x + b_k = t_k . x~`` with template ``t_k = [w_k, b_k]`` and the
    activation with an appended 1, ``x~ = [x, 1]``. For ``classes = (a, b, c)`` take an orthonormal
    basis ``Q = [q_1, q_2]`` of ``span(t_b - t_a, t_c - t_a)`` (Gram-Schmidt in that order, via QR) and
    return ``Q^T (x~_i - t_a)``: template ``a`` sits at the origin, ``b`` on the positive first axis,
    ``c`` in the upper half-plane, and distances within the plane are preserved. (A linear projection,
    as in [M19]; not t-SNE.)

    Parameters
    ----------
    activations : (n, D) penultimate features.
    weight : (K, D) last-layer weight (``torch.nn.Linear`` layout: out x in).
    bias : (K,) last-layer bias, or None for a layer without bias (then the appended coordinate is 0).
    classes : three distinct class indices in ``[0, K)``.

    Returns
    -------
    (n, 2) float64 coordinates.
    """
    W = as_numpy(weight, "weight").astype(np.float64)
    X = as_numpy(activations, "activations").astype(np.float64)
    if W.ndim != 2:
        raise ValueError(f"`weight` must be 2-D (K classes, D features); got shape {W.shape}.")
    K, D = W.shape
    if X.ndim != 2 or X.shape[1] != D:
        raise ValueError(f"`activations` must have shape (n, {D}) to match `weight`; got {X.shape}.")
    if bias is None:
        b = np.zeros(K)
    else:
        b = as_numpy(bias, "bias").astype(np.float64)
        if b.shape != (K,):
            raise ValueError(f"`bias` must have shape ({K},) to match `weight`; got {b.shape}.")
    cls = np.asarray(as_numpy(classes, "classes")).ravel()
    if (cls.size != 3 or not np.issubdtype(cls.dtype, np.integer) or len(set(cls.tolist())) != 3
            or cls.min() < 0 or cls.max() >= K):
        raise ValueError(f"`classes` must be three distinct integer indices in [0, {K}); got {classes!r}.")
    cls = cls.tolist()
    templates = np.concatenate([W, b[:, None]], axis=1)[cls]  # (3, D+1)
    X1 = np.concatenate([X, np.ones((len(X), 1))], axis=1)  # (n, D+1)
    diffs = (templates[1:] - templates[0]).T  # (D+1, 2)
    Q, R = np.linalg.qr(diffs)
    scale = np.abs(np.diag(R))
    if scale.min() <= 1e-12 * max(scale.max(), 1e-300):
        raise ValueError(f"the templates of classes {cls} are collinear: they span no plane to project onto.")
    Q = Q * np.sign(np.diag(R))  # QR's signs are arbitrary; fix them so the orientation is the one stated
    return (X1 - templates[0]) @ Q


# --------------------------------------------------------------------------------------------------
# One record per evaluation
# --------------------------------------------------------------------------------------------------

def summarize(probs, labels, n_bins=15) -> dict[str, float]:
    """The per-generation record: accuracy, nll, ece, brier, entropy, diversity (Python floats).

    ``ece`` uses ``n_bins`` equal-width bins (an int or an ``ECE_PRESETS`` name); ``entropy`` is
    :func:`mean_entropy` (nats); ``diversity`` is :func:`confidence_diversity` with the true-class
    probability and the variance estimator ([ZS20]'s teacher diversity).
    """
    p, y = _prepare(probs, labels)
    return {
        "accuracy": float(np.mean(p.argmax(axis=1) == y)),
        "nll": _nll(p, y, 1e-12),
        "ece": _ece_from_table(_reliability(p, y, n_bins, "equal_width"), len(y)),
        "brier": _brier(p, y),
        "entropy": _mean_entropy(p),
        "diversity": _diversity(p, y, "true", "variance", 20),
    }


def summarize_regression(predictions, targets) -> dict[str, float]:
    """The per-generation record of a regression: ``mse = mean_ij (f_j(x_i) - y_ij)^2`` over examples and
    outputs, and ``rmse = sqrt(mse)`` (Python floats). ``predictions`` ``(n,)`` or ``(n, k)``; ``targets``
    of the same size (a ``(n,)`` target goes with ``(n, 1)`` predictions)."""
    f = np.asarray(as_numpy(predictions, "predictions"), dtype=np.float64)
    y = np.asarray(as_numpy(targets, "targets"), dtype=np.float64)
    if f.shape[0] != y.shape[0] or f.size != y.size or f.size == 0:
        raise ValueError(f"`predictions` and `targets` must hold the same non-zero number of values per example; got "
                         f"shapes {f.shape} and {y.shape}.")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(y))):
        raise ValueError("`predictions` and `targets` must be finite.")
    mse = float(np.mean((f.reshape(y.shape[0], -1) - y.reshape(y.shape[0], -1)) ** 2))
    return {"mse": mse, "rmse": float(np.sqrt(mse))}


def headline_metric(record: dict) -> tuple[str, float]:
    """``(name, value)`` of the metric a run reports first: ``accuracy`` for classification (from
    :func:`summarize`), ``mse`` for regression (from :func:`summarize_regression`)."""
    name = "accuracy" if "accuracy" in record else "mse"
    return name, record[name]
