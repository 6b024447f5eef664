"""Shared input validators for :mod:`kerneldistill`.

Every public entry point validates at the boundary with these helpers, so that a bad argument gets
one error message everywhere, naming the argument, what was expected and what came (the contract of
scikit-learn's ``check_scalar`` / ``check_array``, which we call where they fit).

Conventions (``docs/theory.md`` section 1): ``ridge`` is the kernel ridge penalty ``lam > 0``
with a sum-of-squares loss (step 1 == ``sklearn.kernel_ridge.KernelRidge(alpha=ridge)``);
``gt_weight`` is the weight on the GROUND TRUTH ([BA21]'s alpha), in ``[0, 1]`` unless the caller
opts in to any real weight ([DPR26]: the unconstrained optimum may be negative or above 1).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .filters import normalize_steps

__all__ = [
    "check_ridge",
    "check_gt_weight",
    "check_steps",
    "check_finite_array",
    "check_gram",
    "NEGATIVE_EIGENVALUE_RTOL",
]

# A Gram matrix is accepted as positive semi-definite when its most negative eigenvalue is no lower
# than -NEGATIVE_EIGENVALUE_RTOL * (largest |eigenvalue|). Round-off in a float64 Gram matrix of
# size n gives negatives of order n * eps * d_max ~ 1e-12 for n = 10^4, and float32 input ~ 1e-3 at
# worst; a genuinely indefinite kernel (e.g. sigmoid) has negatives of order 1e-2 .. 1 of d_max.
NEGATIVE_EIGENVALUE_RTOL = 1e-6


def _is_real_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def check_ridge(ridge, *, name: str = "ridge") -> float:
    """Return ``ridge`` as a float, raising unless it is a finite real number > 0."""
    if not _is_real_number(ridge):
        raise TypeError(f"`{name}` must be a real number > 0 (the kernel ridge penalty); "
                        f"got {ridge!r} ({type(ridge).__name__}).")
    ridge = float(ridge)
    if not math.isfinite(ridge) or ridge <= 0.0:
        raise ValueError(f"`{name}` must be a finite real number > 0 (the kernel ridge penalty); "
                         f"got {ridge!r}.")
    return ridge


def check_gt_weight(gt_weight, *, allow_any_weight: bool = False, name: str = "gt_weight"):
    """Return a ground-truth weight as a float, or a schedule as a 1-D float64 array.

    ``gt_weight`` is a real number or a 1-D sequence with one weight per step 2..T. Each weight must
    be finite and, unless ``allow_any_weight=True``, lie in ``[0, 1]`` (the convex mix of ground
    truth and teacher that [BA21] studies).
    """
    if np.ndim(gt_weight) == 0:
        if not _is_real_number(gt_weight):
            raise TypeError(f"`{name}` must be a real number in [0, 1] or a 1-D sequence of them; "
                            f"got {gt_weight!r} ({type(gt_weight).__name__}).")
        w = np.asarray([float(gt_weight)])
        scalar = True
    else:
        try:
            w = np.asarray(gt_weight, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"`{name}` must be a real number in [0, 1] or a 1-D sequence of them; "
                            f"got {gt_weight!r}.") from err
        if w.ndim != 1:
            raise ValueError(f"`{name}` must be a float or a 1-D sequence (one weight per step "
                             f"2..T); got an array of shape {w.shape}.")
        if w.size == 0:
            raise ValueError(f"`{name}` schedule must hold at least one weight (for step 2); "
                             f"got an empty sequence.")
        scalar = False
    if not np.all(np.isfinite(w)):
        raise ValueError(f"`{name}` must be finite; got {gt_weight!r}.")
    if not allow_any_weight and (np.any(w < 0.0) or np.any(w > 1.0)):
        bad = w[(w < 0.0) | (w > 1.0)]
        raise ValueError(
            f"`{name}` must lie in [0, 1] (the weight on the ground truth); got {bad.tolist()}. "
            f"Pass allow_any_weight=True to use weights outside [0, 1] (e.g. [DPR26]'s "
            f"unconstrained optimum)."
        )
    return float(w[0]) if scalar else w


def check_steps(steps, *, name: str = "steps", allow_inf: bool = True,
                allow_sequence: bool = False):
    """Return one step as an int >= 1 (or ``math.inf``), or a list of them if ``allow_sequence``.

    Integral floats (``3.0``) are accepted as ints; booleans, fractions and values < 1 raise.
    """
    if np.ndim(steps) != 0 and not allow_sequence:
        raise TypeError(f"`{name}` must be one int >= 1"
                        f"{' or math.inf' if allow_inf else ''}; got the sequence {steps!r}.")
    out = normalize_steps(steps, name=name)
    if not allow_inf and math.inf in out:
        raise ValueError(f"`{name}` must be finite integers >= 1 here; got math.inf.")
    return out if np.ndim(steps) != 0 else out[0]


def check_finite_array(X, *, name: str, ndim=(1, 2), dtype=(np.float64, np.float32),
                       min_samples: int = 1):
    """Validate a numeric array: allowed ndim, at least ``min_samples`` rows, no NaN or inf.

    Thin wrapper over :func:`sklearn.utils.check_array` (which already names NaN/inf and empty
    input); we add the argument name to every message. float32 input is kept in float32.
    """
    from sklearn.utils import check_array

    arr = np.asarray(X) if not hasattr(X, "shape") else X
    if np.ndim(arr) not in ndim:
        raise ValueError(f"`{name}` must be a {' or '.join(f'{d}-D' for d in ndim)} array; "
                         f"got an array of shape {np.shape(arr)}.")
    if np.shape(arr)[0] < min_samples:
        raise ValueError(f"`{name}` must hold at least {min_samples} sample(s); "
                         f"got shape {np.shape(arr)}.")
    try:
        return check_array(arr, ensure_2d=False, allow_nd=False, dtype=list(dtype),
                           ensure_all_finite=True, ensure_min_samples=min_samples,
                           input_name=name)
    except ValueError as err:
        raise ValueError(f"`{name}`: {err}") from err


def check_gram(K, *, name: str = "X") -> np.ndarray:
    """Check that an already validated (finite, float) training Gram matrix is square and symmetric.

    Symmetric means ``max|K - K^T| <= 100 eps * max|K|`` in ``K``'s dtype: the round-off of a kernel
    computed in that dtype, with a 100x margin. Returns ``K`` itself (never copied or modified).
    Positive semi-definiteness is checked after the eigendecomposition by :func:`check_psd_evals`,
    which costs nothing extra there.
    """
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"`{name}` must be the square (n_samples, n_samples) training Gram matrix "
                         f"for kernel='precomputed'; got shape {K.shape}.")
    scale = float(np.max(np.abs(K)))
    # In row blocks: the temporaries stay in cache (1.5x faster than K - K.T at n = 2000).
    block = 128
    asym = max(float(np.max(np.abs(K[i:i + block] - K[:, i:i + block].T)))
               for i in range(0, K.shape[0], block))
    if asym > 100 * np.finfo(K.dtype).eps * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(f"`{name}` must be a symmetric Gram matrix for kernel='precomputed'; "
                         f"got max |{name} - {name}^T| = {asym:.3g} (largest |{name}| = {scale:.3g}).")
    return K


def check_psd_evals(evals, *, name: str = "X", rtol: float = NEGATIVE_EIGENVALUE_RTOL) -> np.ndarray:
    """Raise if a Gram matrix's eigenvalues are clearly negative; clip round-off negatives to 0.

    "Clearly" means below ``-rtol * max|d|``: smaller negatives are round-off of a PSD kernel and
    are set to 0 (the filters assume ``d >= 0``; neural-tangents clips for the same reason).
    ``name``: an argument name (quoted in the message) or a description such as
    "`X` (precomputed Gram matrix)" (used as it is).
    Returns a new array.
    """
    label = name if (" " in name or "`" in name) else f"`{name}`"
    d = np.asarray(evals)
    top = float(np.max(np.abs(d))) if d.size else 0.0
    low = float(np.min(d)) if d.size else 0.0
    if low < -rtol * top:
        raise ValueError(
            f"{label} must be a positive semi-definite kernel; its Gram matrix has eigenvalue "
            f"{low:.3g} against a largest of {top:.3g} (allowed round-off: -{rtol:g} x largest). "
            f"Use a PSD kernel (e.g. 'rbf', 'linear', 'polynomial') or add a diagonal shift."
        )
    return np.clip(d, 0.0, None)
