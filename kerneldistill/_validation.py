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
import os
import warnings

import numpy as np

from .filters import normalize_steps

__all__ = [
    "check_ridge",
    "check_ridge_against_spectrum",
    "check_gt_weight",
    "check_steps",
    "check_bool",
    "check_numeric",
    "check_finite_array",
    "check_gram",
    "warn_imprecise_weights",
    "available_memory_bytes",
    "PrecisionWarning",
    "NEGATIVE_EIGENVALUE_RTOL",
    "RIDGE_FLOOR_RTOL",
    "WEIGHT_PRECISION_RTOL",
]


class PrecisionWarning(UserWarning):
    """A result is finite but keeps few significant digits in float64 (e.g. a ground-truth weight in the
    billions). A UserWarning, not a RuntimeWarning: nothing overflowed, the caller is told what it costs."""

# A Gram matrix is accepted as positive semi-definite when its most negative eigenvalue is no lower
# than -NEGATIVE_EIGENVALUE_RTOL * (largest |eigenvalue|). Round-off in a float64 Gram matrix of
# size n gives negatives of order n * eps * d_max ~ 1e-12 for n = 10^4, and float32 input ~ 1e-3 at
# worst; a genuinely indefinite kernel (e.g. sigmoid) has negatives of order 1e-2 .. 1 of d_max.
NEGATIVE_EIGENVALUE_RTOL = 1e-6


# A ridge below RIDGE_FLOOR_RTOL * (largest eigenvalue) is numerically zero against the spectrum: a
# symmetric eigensolver returns the eigenvalues to about eps * d_max (backward stability), so a
# smaller ridge changes the fit by less than the eigenvalues' own round-off. The optimal weights then
# grow as d / ridge past 1 / eps (measured on issue 18's p > n linear kernel, d_max = 422: the one-shot
# optimum at ridge 1e-15 and 1e-14 is -2e17 and -2e16, whose 1 - w rounds to -w, and greedy_schedule's
# risks are NaN; at 1e-300 every risk is NaN and joint_schedule fails inside scipy, "array must not
# contain infs or NaNs" here, LAPACK's DLASCL error in the report). 10 eps leaves a factor of about
# 10 between the smallest accepted ridge (9.4e-13 there, weight -2e14) and those weights.
RIDGE_FLOOR_RTOL = 10 * np.finfo(np.float64).eps

# A ground-truth weight ``w`` enters the filters as ``w + (1 - w) b``: forming it loses about
# ``eps * |w|`` relative precision. Measured against a 60-digit evaluation of the filters (p > n linear
# kernel of issue 18, the one-shot optimum at ridge 1e-8, 1e-10, 1e-12, i.e. |w| = 2e10, 2e12, 2e14;
# eps |w| = 4.4e-6, 4.4e-4, 4.4e-2): the prediction filters q of step 2 and of 3-step schedules holding w
# are off by 4e-7..2e-6, 6e-5..2e-4 and 5e-3..2e-2 relative (0.1-0.5 eps |w|); only the step-2 fitted
# values of a constant weight (a closed form) stay exact. Above |w| = WEIGHT_PRECISION_RTOL / eps
# (4.5e9) fewer than 6 digits are left.
WEIGHT_PRECISION_RTOL = 1e-6


def _is_real_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def check_bool(value, *, name: str) -> bool:
    """Return ``value`` as a bool; only ``True``/``False`` (Python or numpy) are accepted.

    A string such as ``'no'`` is truthy, so accepting anything would silently run the other branch.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool (True or False); got {value!r} ({type(value).__name__}).")
    return bool(value)


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

    The one owner of this rule and its messages: :mod:`deepdistill` checks a loss's weight and a
    config's weights with it too (``deepdistill.core.losses.LossSpec.check_gt_weight``, which adds only
    which losses may take a weight outside [0, 1]).
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
            f"`{name}` must lie in [0, 1] (the weight on the ground truth); got {float(bad[0]) if scalar else bad.tolist()}. "
            f"Pass allow_any_weight=True to use weights outside [0, 1] (e.g. [DPR26]'s "
            f"unconstrained optimum)."
        )
    if allow_any_weight:
        warn_imprecise_weights(w, name=name, stacklevel=4)
    return float(w[0]) if scalar else w


def warn_imprecise_weights(weights, *, name: str = "gt_weight", stacklevel: int = 2) -> None:
    """Warn (:class:`PrecisionWarning`) when a ground-truth weight is so large that the filters keep
    fewer than 6 significant digits: ``eps * max|w| > WEIGHT_PRECISION_RTOL`` (see that constant).

    Such weights are the exact optimum of a criterion at a ridge tiny next to the spectrum (the
    optimum grows as ``d / ridge``), so they are returned, not refused; but a fit that uses them is
    dominated by round-off. The cure is a larger ``ridge``.
    """
    w = np.abs(np.atleast_1d(np.asarray(weights, dtype=np.float64)))
    if w.size == 0 or not np.all(np.isfinite(w)):
        return
    top = float(w.max())
    loss = np.finfo(np.float64).eps * top
    if loss > WEIGHT_PRECISION_RTOL:
        digits = max(0.0, -math.log10(loss))
        warnings.warn(
            f"`{name}` reaches {top:.3g} in absolute value: a fit with it loses about eps * |{name}| = {loss:.2g} "
            f"relative precision (about {digits:.0f} significant digit(s) left). Such weights come from a ridge "
            f"tiny next to the spectrum; a larger `ridge` gives a weight that float64 can use.",
            PrecisionWarning, stacklevel=stacklevel)


def check_ridge_against_spectrum(ridge: float, evals, *, name: str = "ridge") -> float:
    """Refuse a ridge that is numerically zero against the eigenvalues ``evals``.

    Numerically zero: ``ridge < RIDGE_FLOOR_RTOL * max(evals)`` (10 eps times the largest eigenvalue,
    below the eigenvalues' own round-off; see :data:`RIDGE_FLOOR_RTOL`). The message gives the
    smallest ridge accepted. An all-zero spectrum (a zero kernel) accepts any ridge > 0.
    """
    d = np.asarray(evals, dtype=np.float64)
    top = float(d.max()) if d.size else 0.0
    floor = RIDGE_FLOOR_RTOL * top
    if ridge < floor:
        # Printed rounded UP to 3 digits, so that the value shown is itself accepted.
        exponent = math.floor(math.log10(floor)) - 2
        shown = math.ceil(floor / 10.0**exponent) * 10.0**exponent
        shown = shown if shown >= floor else math.nextafter(shown, math.inf)
        raise ValueError(
            f"`{name}`={ridge:.3g} is numerically zero against the spectrum (largest Gram eigenvalue {top:.4g}): "
            f"below 10 eps x {top:.4g} the eigenvalues' own round-off exceeds the ridge, and the optimal weights "
            f"(about eigenvalue / ridge) exceed what float64 can mix. Use `{name}` >= {shown:.3g} (the smallest "
            f"accepted); ridges that small still give weights that keep few digits.")
    return ridge


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
    check_numeric(arr, name=name)
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


def check_numeric(arr, *, name: str) -> None:
    """Raise naming ``name`` unless ``arr`` holds numbers (a numeric dtype, or an object array of numbers).

    Strings (e.g. class labels ``['a', 'b']``) would otherwise reach ``np.isfinite`` or a float
    conversion and fail there with a message that names neither the argument nor the cause.
    A sparse matrix (numeric by construction) is left to scikit-learn.
    """
    dtype = getattr(arr, "dtype", None)
    if dtype is None or dtype.kind in "biufc":
        return
    if dtype.kind == "O":
        # Only text is caught here: other objects (a dict, say) are left to scikit-learn's conversion,
        # whose TypeError its estimator checks expect; None becomes NaN there and is reported as missing.
        bad = next((v for v in np.asarray(arr).ravel() if isinstance(v, (str, bytes))), None)
        if bad is None:
            return
        example = bad
    elif dtype.kind in "USV":
        flat = np.asarray(arr).ravel()
        example = flat[0] if flat.size else None
    else:  # datetime, timedelta: numbers in disguise, but not what a kernel or a target means
        example = np.asarray(arr).ravel()[0] if np.size(arr) else None
    example = example.item() if isinstance(example, np.generic) else example  # 'a', not np.str_('a')
    hint = (" For class labels, encode them first (e.g. sklearn.preprocessing.LabelBinarizer for one "
            "column per class)." if name.startswith("y") else "")
    raise ValueError(f"`{name}` must be numeric (int or float); got an array of dtype {dtype} "
                     f"(e.g. {example!r}).{hint}")


def available_memory_bytes() -> int | None:
    """Bytes this process can still allocate, or None when no limit can be read.

    The smallest of: ``MemAvailable`` (``/proc/meminfo``); the cgroup's limit minus its usage (v2
    ``memory.max`` / ``memory.current`` for the process's own cgroup or the root of the mount, v1
    ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``); and an address-space limit (``ulimit -v``)
    minus the process's size. Linux only (psutil is not a dependency); elsewhere None.
    """
    candidates = []

    def read(path):
        try:
            with open(path) as fh:
                return fh.read()
        except OSError:
            return None

    meminfo = read("/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    cgroup_dirs = ["/sys/fs/cgroup"]
    own = read("/proc/self/cgroup") or ""
    for line in own.splitlines():
        if line.startswith("0::/") and len(line) > 4:
            cgroup_dirs.insert(0, "/sys/fs/cgroup" + line[3:].strip())
    for folder in cgroup_dirs:
        limit, usage = read(os.path.join(folder, "memory.max")), read(os.path.join(folder, "memory.current"))
        if limit is not None and limit.strip() != "max" and usage is not None:
            candidates.append(int(limit) - int(usage))
            break
    limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    usage = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is not None and usage is not None and int(limit) < 2**60:  # v1 writes ~2^63 for "no limit"
        candidates.append(int(limit) - int(usage))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        status = read("/proc/self/status") or ""
        size = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:")),
                    None)
        if soft != resource.RLIM_INFINITY and size is not None:
            candidates.append(soft - size)
    except (ImportError, ValueError, OSError):
        pass
    return max(0, min(candidates)) if candidates else None


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
