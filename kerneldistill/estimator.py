"""A scikit-learn estimator for kernel ridge self-distillation in closed form.

Setting ([BA21] Borup & Andersen 2021, arXiv 2102.13088; ``docs/theory.md`` section 2): step 1
is kernel ridge regression on ``y`` (``f^(1) == KernelRidge(alpha=ridge)``); step ``t >= 2`` is kernel
ridge regression on the mixed target ``alpha_t y + (1 - alpha_t) f^(t-1)(X)`` with ``alpha_t`` the
weight on the GROUND TRUTH (``gt_weight``). With ``K = V diag(d) V^T`` and ``z = V^T y``::

    f^(t)(X_train) = V diag(b^(t)) z            f^(t)(x) = k_x^T V diag(q^(t)) z

where ``b, q`` come from :func:`kerneldistill.filters.filter_diagonals` (the one spectral core).
So ``fit`` does ONE eigendecomposition, and every step, weight, schedule and the infinite-step
limit (plain kernel ridge with ridge ``ridge / gt_weight``) is a diagonal filter on top of it.

Back ends (same code, chosen by arguments): the exact spectrum by scipy (``device=None``) or by
``torch.linalg.eigh`` on ``device`` (``"cpu"``, ``"cuda"``, a ``torch.device``; the later matmuls run
there too), or an approximate spectrum (``spectrum="topk"`` / ``"nystroem"`` with ``n_components``)
from :mod:`kerneldistill.spectrum`.

Precision: the computation runs in the dtype of ``X`` (float32 input stays float32, as in
scikit-learn's kernels); the filters themselves are always float64. Against a float64 fit, a
float32 fit's predictions agree to ``atol = eps32 * (d_max / ridge) * max|f|`` (eps32 = 1.2e-7,
d_max the largest Gram eigenvalue): measured 1e-6 relative at d_max/ridge = 14 .. 1e3 and 4e-4 at
1.2e5, always within that bound (``tests/test_estimator.py::test_float32_matches_float64``). For
small ridges relative to the spectrum, pass float64.
"""
from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics.pairwise import KERNEL_PARAMS, pairwise_kernels
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from . import _validation
from ._validation import (
    check_bool,
    check_gram,
    check_gt_weight,
    check_numeric,
    check_ridge,
    check_steps,
)
from .filters import filter_diagonals, filter_path
from .spectrum import eigh_gram, nystroem_landmarks, nystroem_spectrum, psd_evals, topk_spectrum

__all__ = ["KernelDistiller", "fit_memory_bytes"]

_SPECTRA = ("exact", "topk", "nystroem")
_BACKENDS = (None, "numpy", "torch")
# Allocations below this size are not checked against the memory available: reading it costs about
# 0.25 ms (procfs and cgroup files), more than a small prediction itself.
_MEMORY_CHECK_MIN_BYTES = 64 * 2**20
# Peak host memory of a Nystroem fit, in units of n * m * itemsize: C = K(X, L), the kernel's own
# temporary of that size, the features Z = C U s^-1/2, and the SVD's left vectors P and workspace.
_NYSTROEM_COPIES = 5


def fit_memory_bytes(n_samples: int, itemsize: int, spectrum: str = "exact", n_components: int | None = None,
                     *, precomputed: bool = False) -> int:
    """Estimated peak host memory (bytes) of :meth:`KernelDistiller.fit`, beyond the input itself.

    - ``"exact"``: two ``n x n`` matrices: the Gram matrix and its eigenvectors (LAPACK overwrites a Gram
      matrix the fit computed; a precomputed one is copied instead, so two either way). LAPACK's
      workspace is O(n).
    - ``"topk"``: the Gram matrix (none for a precomputed one) and ARPACK's ``2 m + 1`` Lanczos vectors
      of length ``n`` (float64) plus the ``n x m`` eigenvectors.
    - ``"nystroem"``: ``_NYSTROEM_COPIES`` (5) ``n x m`` matrices (see that constant); never ``n x n``.

    Measured (``ru_maxrss`` growth of one fit, RBF kernel, one thread): exact n = 3000 float64 141 MiB
    (estimate 137), float32 88 MiB (69: scikit-learn computes float32 distances in float64 chunks),
    precomputed 142 MiB (137); topk m = 50 74 MiB (71); Nystroem n = 20000, m = 300 174 MiB (229).
    """
    n, b = int(n_samples), int(itemsize)
    if spectrum == "nystroem":
        return _NYSTROEM_COPIES * n * int(n_components) * b
    if spectrum == "topk":
        m = int(n_components)
        return (0 if precomputed else n * n * b) + (2 * m + 1) * n * 8 + n * m * b
    return 2 * n * n * b


def _gib(nbytes: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes / 2**10:.1f} KiB"


class KernelDistiller(RegressorMixin, BaseEstimator):
    """Kernel ridge self-distillation, every step from one eigendecomposition.

    Parameters
    ----------
    kernel : str or callable, default="linear"
        A name of :func:`sklearn.metrics.pairwise.pairwise_kernels` (``"rbf"``, ``"linear"``,
        ``"polynomial"``, ``"laplacian"``, ...), ``"precomputed"`` (``fit`` takes the training Gram
        matrix, ``predict`` the ``(n_test, n_train)`` cross kernel), or a callable ``k(x, x')`` on
        two 1-D rows (as in scikit-learn, evaluated pair by pair: slow, small data only).
        The kernel must be positive semi-definite.
    ridge : float > 0, default=1.0
        Kernel ridge penalty ``lam`` with a sum-of-squares loss: step 1 equals
        ``sklearn.kernel_ridge.KernelRidge(alpha=ridge)``.
    gt_weight : float or sequence of float, default=0.5
        Weight on the ground truth at steps >= 2 ([BA21]'s alpha; NOT the teacher's weight). A float
        is used at every step; a sequence gives one weight per step 2..T (``gt_weight[0]`` is step 2).
        Must lie in [0, 1] unless ``allow_any_weight=True``.
    steps : int >= 1 or math.inf, default=2
        Default step for :meth:`predict`. ``math.inf`` is the infinite-step limit (needs a constant
        weight). With a schedule, ``steps <= len(gt_weight) + 1``.
    allow_any_weight : bool, default=False
        Accept ground-truth weights outside [0, 1] (the unconstrained optimum of [DPR26]).
    spectrum : {"exact", "topk", "nystroem"}, default="exact"
        Exact ``eigh``; the ``n_components`` largest eigenpairs by ARPACK; or the exact spectrum of a
        Nystroem approximation with ``n_components`` landmarks (never forms the n x n Gram matrix).
        Predictions at new points use the exact cross kernel ``k_x`` with the approximate ``(d, V)``.
    n_components : int, default=None
        Number of eigenpairs / landmarks for the approximate spectra (required there, ignored by
        ``"exact"``).
    device : None, str or torch.device, default=None
        ``None``: numpy/scipy. Otherwise torch on that device (``"cuda"``, ``"cpu"``, ...): the exact
        ``eigh`` and all matmuls of :meth:`predict` / :meth:`path` run there.
    backend : {None, "numpy", "torch"}, default=None
        ``"torch"`` with ``device=None`` runs the torch code on the CPU. ``None`` picks torch iff a
        device is given.
    random_state : int, RandomState or None, default=None
        Seeds the ARPACK start vector (``"topk"``) and the landmarks (``"nystroem"``).
    gamma : float >= 0 or None, default=None
        Parameter of the RBF, laplacian, polynomial, exponential chi2 and sigmoid kernels, as in
        :class:`sklearn.kernel_ridge.KernelRidge` (``None``: scikit-learn's default, 1 / n_features).
        Ignored by the other kernels.
    degree : float >= 0, default=3
        Degree of the polynomial kernel. Ignored by the other kernels.
    coef0 : float, default=1
        Zero coefficient of the polynomial and sigmoid kernels. Ignored by the other kernels.
    kernel_params : dict or None, default=None
        Keyword arguments of a callable ``kernel`` (refused with a named kernel, whose parameters are
        ``gamma``, ``degree`` and ``coef0``, and with ``"precomputed"``).

    The parameters follow :class:`sklearn.kernel_ridge.KernelRidge`: every one is named in ``__init__``
    and declared in ``_parameter_constraints``, so ``get_params``/``set_params``/``clone`` and
    ``GridSearchCV`` are scikit-learn's own, and ``set_params`` refuses a name the estimator does not have.

    Attributes
    ----------
    X_fit_ : training inputs, or None for ``kernel="precomputed"``.
    evals_ : (m,) float64 eigenvalues of the Gram matrix, descending, round-off negatives clipped to 0.
    evecs_ : (n, m) eigenvectors (numpy, the computation dtype).
    y_fit_ : (n, k) training targets as a 2-D float array.
    z_ : (m, k) ``evecs_.T @ y_fit_``.
    n_outputs_ : k (1 for a 1-D ``y``; predictions are then 1-D).
    ridge_, gt_weight_, steps_ : the validated parameters used by the fit.
    n_components_ : m.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(0, 1, 11)[:, None]; y = np.sin(2 * np.pi * X[:, 0])
    >>> model = KernelDistiller("rbf", ridge=0.2, gt_weight=0.25, steps=3, gamma=80).fit(X, y)
    >>> model.predict(X).shape, model.path(None, [1, 2, math.inf], gt_weights=[0, 0.5]).shape
    ((11,), (2, 3, 11))
    """

    # Declared as KernelRidge declares its own; fit checks them after the named checks below, whose
    # messages say more (e.g. why a ridge must be > 0), so these catch only what those do not cover.
    _parameter_constraints: dict = {
        "kernel": [StrOptions(set(KERNEL_PARAMS) | {"precomputed"}), callable],
        "ridge": [Interval(Real, 0, None, closed="neither")],
        "gt_weight": [Interval(Real, None, None, closed="neither"), "array-like"],
        "steps": [Interval(Real, 1, None, closed="both")],        # math.inf: the infinite-step limit
        "allow_any_weight": ["boolean"],
        "spectrum": [StrOptions(set(_SPECTRA))],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "device": "no_validation",          # None, a device name or a torch.device: checked in _check_solver
        "backend": [StrOptions({"numpy", "torch"}), None],
        "random_state": ["random_state"],
        "gamma": [Interval(Real, 0, None, closed="left"), None],
        "degree": [Interval(Real, 0, None, closed="left")],
        "coef0": [Interval(Real, None, None, closed="neither")],
        "kernel_params": [dict, None],
    }

    def __init__(self, kernel="linear", ridge=1.0, gt_weight=0.5, steps=2, *,
                 allow_any_weight=False, spectrum="exact", n_components=None, device=None,
                 backend=None, random_state=None, gamma=None, degree=3, coef0=1, kernel_params=None):
        self.kernel = kernel
        self.ridge = ridge
        self.gt_weight = gt_weight
        self.steps = steps
        self.allow_any_weight = allow_any_weight
        self.spectrum = spectrum
        self.n_components = n_components
        self.device = device
        self.backend = backend
        self.random_state = random_state
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.kernel == "precomputed"
        tags.input_tags.sparse = self.kernel != "precomputed"
        tags.target_tags.multi_output = True
        return tags

    # ----------------------------------------------------------------------------------------------
    # parameter validation
    def _kernel_params(self) -> dict:
        """The keyword arguments of the kernel, as KernelRidge passes them: ``kernel_params`` to a callable,
        ``gamma``/``degree``/``coef0`` to a named kernel (which takes those it has: ``filter_params``)."""
        if callable(self.kernel):
            return dict(self.kernel_params or {})
        return {"gamma": self.gamma, "degree": self.degree, "coef0": self.coef0}

    def _check_kernel(self):
        if callable(self.kernel):
            if self.kernel_params is not None and not isinstance(self.kernel_params, dict):
                raise TypeError(f"`kernel_params` must be None or a dict of the callable kernel's keyword "
                                f"arguments; got {self.kernel_params!r}.")
            return
        if not isinstance(self.kernel, str):
            raise TypeError(f"`kernel` must be a kernel name, 'precomputed' or a callable; got "
                            f"{self.kernel!r} ({type(self.kernel).__name__}).")
        if self.kernel != "precomputed" and self.kernel not in KERNEL_PARAMS:
            raise ValueError(f"`kernel` must be one of {sorted(KERNEL_PARAMS)}, 'precomputed' or a "
                             f"callable; got {self.kernel!r}.")
        if self.kernel == "precomputed":
            # degree and coef0 have defaults that cannot be told from a choice; gamma (None) and kernel_params can.
            given = {k: v for k, v in (("gamma", self.gamma), ("kernel_params", self.kernel_params)) if v}
            if given:
                raise ValueError(f"kernel='precomputed' takes no kernel parameters (the Gram matrix is given); "
                                 f"got {given}.")
            return
        if self.kernel_params:
            raise ValueError(f"`kernel_params` is for a callable kernel; kernel={self.kernel!r} takes `gamma`, "
                             f"`degree`, `coef0` (those it has: {sorted(KERNEL_PARAMS[self.kernel])}) as parameters "
                             f"of the estimator; got kernel_params={self.kernel_params!r}.")

    def _check_solver(self):
        """Return (torch device or None) after checking spectrum/n_components/device/backend."""
        if self.spectrum not in _SPECTRA:
            raise ValueError(f"`spectrum` must be one of {list(_SPECTRA)}; got {self.spectrum!r}.")
        # n_components is ignored by the exact spectrum (as PCA-like sklearn estimators ignore
        # unused parameters; scikit-learn's checks set it on any estimator that has it).
        if self.spectrum != "exact" and ( (not isinstance(self.n_components, (int, np.integer)) or isinstance(self.n_components, bool)
              or self.n_components < 1)):
            raise ValueError(f"`n_components` must be an int >= 1 for spectrum={self.spectrum!r}; "
                             f"got {self.n_components!r}.")
        if self.backend not in _BACKENDS:
            raise ValueError(f"`backend` must be None, 'numpy' or 'torch'; got {self.backend!r}.")
        if self.backend == "numpy" and self.device is not None:
            raise ValueError(f"backend='numpy' runs on the CPU only; got device={self.device!r}. "
                             f"Use backend='torch' (or None) with a device.")
        if self.device is None and self.backend != "torch":
            return None
        import torch

        try:
            device = torch.device("cpu" if self.device is None else self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda'; got "
                             f"{self.device!r}.") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} was asked for but torch sees no CUDA device; "
                             f"use device=None (numpy) or 'cpu'.")
        return device

    # ----------------------------------------------------------------------------------------------
    # data validation
    def _validate_fit_data(self, X, y):
        precomputed = self.kernel == "precomputed"
        if y is None:
            raise ValueError("KernelDistiller requires y to be passed, but the target y is None.")
        n_x, n_y = _num_samples(X), _num_samples(y)
        if n_x == 0:
            raise ValueError(f"`X` is empty: found array with 0 sample(s) (shape={np.shape(X)}) "
                             f"while a minimum of 1 is required.")
        if n_x != n_y:
            raise ValueError(f"`X` and `y` must hold the same number of samples; got X with {n_x} "
                             f"and y with {n_y}.")
        _check_numeric_input(X, "X")
        _check_numeric_input(y, "y")
        X, y = validate_data(self, X, y, accept_sparse=False if precomputed else ("csr", "csc"),
                             dtype=[np.float64, np.float32], multi_output=True, y_numeric=True)
        if y.ndim > 2:
            raise ValueError(f"`y` must be 1-D (n,) or 2-D (n, k); got shape {y.shape}.")
        if not np.all(np.isfinite(y)):
            # scikit-learn's y_numeric turns an object array's None into NaN after its finiteness
            # check, so NaN can only be caught here (KernelRidge fails later, inside its solver).
            bad = int(np.sum(~np.isfinite(y)))
            raise ValueError(f"`y` must hold finite numbers; got {bad} NaN or infinite value(s) (a None in an "
                             f"object array becomes NaN). Remove or impute the missing targets.")
        if precomputed:
            check_gram(X, name="X")
        return X, y

    # ----------------------------------------------------------------------------------------------
    def fit(self, X, y):
        """Eigendecompose the Gram matrix of ``X`` once and store what every step needs.

        ``X``: (n, n_features), or the (n, n) Gram matrix for ``kernel="precomputed"`` (never
        modified). ``y``: (n,) or (n, k). Returns ``self``.
        """
        self._check_kernel()
        ridge = check_ridge(self.ridge)
        gt_weight = check_gt_weight(self.gt_weight,
                                    allow_any_weight=check_bool(self.allow_any_weight, name="allow_any_weight"))
        steps = check_steps(self.steps)
        if np.ndim(gt_weight) == 1 and (steps == math.inf or steps > len(gt_weight) + 1):
            raise ValueError(f"`steps`={steps} needs one `gt_weight` per step 2..{steps}, but the "
                             f"schedule holds {len(gt_weight)} (steps 2..{len(gt_weight) + 1}); "
                             f"lengthen the schedule or lower `steps`.")
        device = self._check_solver()
        self._validate_params()         # the declared constraints: what the named checks above do not cover
        X, y = self._validate_fit_data(X, y)
        dtype = X.dtype
        n = X.shape[0]
        precomputed = self.kernel == "precomputed"

        method = self.spectrum
        if method != "exact" and self.n_components >= n:
            # n_components == n is the exact spectrum (ARPACK cannot return all n eigenpairs, and
            # n landmarks reproduce K). As sklearn's Nystroem, warn when more were asked for.
            if self.n_components > n:
                warnings.warn(f"n_components={self.n_components} > n_samples={n}: spectrum="
                              f"{self.spectrum!r} uses the exact spectrum of all {n} samples.",
                              UserWarning, stacklevel=2)
            method = "exact"
        self._check_memory(n, dtype.itemsize, method, precomputed)
        if method == "nystroem":
            idx = nystroem_landmarks(n, self.n_components, random_state=self.random_state)
            C = X[:, idx] if precomputed else self._kernel(X, X[idx])  # (n, m) = K(X, landmarks)
            spec = nystroem_spectrum(C, C[idx])  # K(L, L) are the landmark rows of C
        else:
            K = X if precomputed else self._kernel(X)
            if method == "topk":
                spec = topk_spectrum(K, self.n_components, random_state=self.random_state)
            else:
                # LAPACK may overwrite only a Gram matrix we computed, never the user's.
                spec = eigh_gram(K, device, overwrite=not precomputed)
            del K

        # Round-off negatives clipped to 0, clearly negative eigenvalues refused (spectrum.psd_evals).
        what = "`X` (precomputed Gram matrix)" if precomputed else f"kernel={self.kernel!r}"
        self.evals_ = psd_evals(spec.evals, n, dtype, name=what)

        y2 = np.asarray(y, dtype=dtype).reshape(n, -1)  # (n, k)
        self._device = device
        evecs_b = spec.evecs  # (n, m) on the back end
        if device is not None and isinstance(evecs_b, np.ndarray):
            # The approximate spectra are computed by scipy; the matmuls still run on the device.
            import torch

            evecs_b = torch.as_tensor(np.ascontiguousarray(evecs_b), device=device)
        self._evecs_b = evecs_b
        self._z_b = self._evecs_b.T @ self._to_backend(y2)  # (m, k)
        self.evecs_ = self._to_numpy(spec.evecs)
        self.z_ = self._to_numpy(self._z_b)
        self.y_fit_ = y2
        self.n_outputs_ = y2.shape[1]
        self._y_1d = y.ndim == 1
        self.X_fit_ = None if precomputed else X
        self.n_components_ = int(self.evals_.shape[0])
        self._n_positive = int(np.count_nonzero(self.evals_ > 0))  # leading: the eigenvalues are descending
        self.ridge_, self.gt_weight_, self.steps_ = ridge, gt_weight, steps
        self.spectrum_ = spec.method
        return self

    def _check_memory(self, n, itemsize, method, precomputed):
        """Refuse, before allocating, a fit whose estimated peak memory (:func:`fit_memory_bytes`)
        exceeds what this process can allocate (:func:`kerneldistill._validation.available_memory_bytes`;
        no check where that is unknown). The message suggests a Nystroem size that fits."""
        need = fit_memory_bytes(n, itemsize, method, self.n_components, precomputed=precomputed)
        if need < _MEMORY_CHECK_MIN_BYTES:
            return
        available = _validation.available_memory_bytes()
        if available is None or need <= available:
            return
        largest = min(n - 1, available // (_NYSTROEM_COPIES * n * itemsize))
        what = (f"spectrum={self.spectrum!r} with n_components={self.n_components}" if method == "nystroem"
                else f"spectrum={method!r}")
        if largest >= 1:
            advice = (f"use spectrum='nystroem' with n_components <= {largest} (needs {_NYSTROEM_COPIES} x "
                      f"n_samples x n_components x {itemsize} bytes; time grows as n_samples x n_components^2)")
            few = min(100, n - 1)
            if method == "exact" and fit_memory_bytes(n, itemsize, "topk", few, precomputed=precomputed) <= available:
                advice += f" or spectrum='topk' with n_components={few} (ARPACK on the Gram matrix)"
        else:
            advice = "even spectrum='nystroem' with one landmark does not fit: subsample the training set"
        parts = {"exact": f"the {n} x {n} Gram matrix and its eigenvectors",
                 "topk": f"the {n} x {n} Gram matrix and ARPACK's vectors",
                 "nystroem": f"{_NYSTROEM_COPIES} matrices of {n} x {self.n_components}"}[method]
        raise MemoryError(
            f"KernelDistiller.fit: {what} at n_samples={n} needs about {_gib(need)} ({parts}, "
            f"{itemsize}-byte floats) but about {_gib(available)} is available; {advice}.")

    # ----------------------------------------------------------------------------------------------
    # kernels and back end
    def _kernel(self, A, B=None):
        return pairwise_kernels(A, B, metric=self.kernel, filter_params=True, **self._kernel_params())

    def kernel_matrix(self, X) -> np.ndarray:
        """``K(X, X_fit_)`` as a numpy array (n_test, n_train), in the fit's dtype.

        For ``kernel="precomputed"`` ``X`` already is that cross kernel; it is validated (shape,
        finite) and returned (not copied when its dtype matches).
        """
        check_is_fitted(self)
        precomputed = self.kernel == "precomputed"
        n_train = self.evecs_.shape[0]
        if _num_samples(X) == 0:
            raise ValueError(f"`X` is empty: found array with 0 sample(s) (shape={np.shape(X)}) "
                             f"while a minimum of 1 is required.")
        _check_numeric_input(X, "X")
        try:
            # scikit-learn's checks first (NaN/inf, 1-D input, n_features_in_), then our hint.
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                              accept_sparse=False if precomputed else ("csr", "csc"))
        except ValueError as err:
            if precomputed:
                raise ValueError(f"{err} For kernel='precomputed', `X` must be the (n_test, "
                                 f"n_train={n_train}) cross kernel K(X_test, X_train).") from err
            raise
        if not precomputed:
            self._check_cross_kernel_memory(X.shape[0], self.X_fit_.shape[0], self.evecs_.dtype.itemsize)
        K = X if self.kernel == "precomputed" else self._kernel(X, self.X_fit_)
        return np.asarray(K, dtype=self.evecs_.dtype)

    @staticmethod
    def _check_cross_kernel_memory(n_test, n_train, itemsize):
        """Refuse, before allocating, a cross kernel ``(n_test, n_train)`` that does not fit twice (the
        kernel and scikit-learn's distance or dot-product temporary) in the memory available."""
        need = 2 * n_test * n_train * itemsize
        if need < _MEMORY_CHECK_MIN_BYTES:
            return
        available = _validation.available_memory_bytes()
        if available is None or need <= available:
            return
        rows = available // (2 * n_train * itemsize)
        advice = (f"predict in batches of at most {rows} rows" if rows >= 1
                  else "even one row does not fit: free memory first")
        raise MemoryError(f"KernelDistiller: the cross kernel of {n_test} points against the {n_train} training "
                          f"points needs about {_gib(need)} (two {n_test} x {n_train} matrices of {itemsize}-byte "
                          f"floats) but about {_gib(available)} is available; {advice}.")

    def _to_backend(self, a):
        """``a`` as an array of the fit's back end, device and dtype (those of ``_evecs_b``)."""
        if self._device is None:
            return np.asarray(a, dtype=self._evecs_b.dtype)
        import torch

        a = np.asarray(a)
        a = a if a.flags.writeable else a.copy()  # torch refuses to wrap read-only memory
        return torch.as_tensor(a, device=self._device).to(self._evecs_b.dtype)

    def _to_numpy(self, a) -> np.ndarray:
        if isinstance(a, np.ndarray):
            return a
        return a.detach().cpu().numpy()

    def _apply_filters(self, rows, K_x=None) -> np.ndarray:
        """Apply P filter rows (P, m) to ``z``: returns (P, n_points, k).

        ``K_x=None``: fitted values ``V diag(b) z`` (rows = b). Otherwise predictions
        ``K_x V diag(q) z`` (rows = q) at the points of the cross kernel ``K_x`` (n_test, n).
        """
        V, z = self._evecs_b, self._z_b  # (n, m), (m, k)
        n, m = V.shape
        k = z.shape[1]
        P = rows.shape[0]
        R = self._to_backend(rows)  # (P, m)
        # All P filters in one GEMM (a batched matmul over P would run P thin GEMVs when k = 1).
        coef = (R.T[:, :, None] * z[:, None, :]).reshape(m, P * k)  # (m, P*k)
        # Products are formed transposed, (P*k, n_out) = coef^T V^T [K_x^T], so that the result is
        # C-ordered by filter row and reshapes to (P, k, n_out) without a copy (BLAS transposes
        # for free).
        if K_x is None:
            # Eigenvalues clipped to exactly 0 (the round-off tail of a smooth kernel: 503 of 2000 in
            # bench_kernel_path's RBF) have b = d q = 0 in every fitted-value filter, so their
            # eigenvectors add exact zeros: leave them out of the product. They are the trailing
            # columns (descending order), so V[:, :r] is a view, not a copy.
            r = self._n_positive
            out_t = coef[:r].T @ V[:, :r].T  # (P*k, n)
            n_out = n
        else:
            Kb = self._to_backend(K_x)  # (n_test, n)
            n_out = Kb.shape[0]
            # Pick the cheaper association: K_x (V coef) costs n m Pk + n_test n Pk,
            # (K_x V) coef costs n_test n m + n_test m Pk.
            if n * m * P * k + n_out * n * P * k <= n_out * n * m + n_out * m * P * k:
                out_t = (coef.T @ V.T) @ Kb.T
            else:
                out_t = coef.T @ (Kb @ V).T
        out = out_t.reshape(P, k, n_out).mT  # (P, n_out, k)
        return np.ascontiguousarray(self._to_numpy(out))

    def _finish(self, out):
        return out[..., 0] if self._y_1d else out

    # ----------------------------------------------------------------------------------------------
    # predictions
    def predict(self, X, step=None):
        """Predictions of step ``step`` (default: the fitted ``steps``; ``math.inf`` = the limit).

        Returns (n_test,) for a 1-D ``y``, else (n_test, k).
        """
        check_is_fitted(self)
        step = self.steps_ if step is None else check_steps(step, name="step")
        K_x = self.kernel_matrix(X)
        _, q = filter_diagonals(self.evals_, self.ridge_, self.gt_weight_, [step])
        return self._finish(self._apply_filters(q, K_x)[0])

    def fitted_values(self, step=None) -> np.ndarray:
        """``f^(step)`` at the training points, ``V diag(b) V^T y`` (no kernel evaluation)."""
        check_is_fitted(self)
        step = self.steps_ if step is None else check_steps(step, name="step")
        return self.path(None, [step])[0]

    def filters(self, steps, gt_weight=None):
        """Filter diagonals ``(b, q)``, each of shape (len(steps), m), on the fitted eigenvalues.

        ``gt_weight=None`` uses the fitted weight or schedule. See
        :func:`kerneldistill.filters.filter_diagonals`.
        """
        check_is_fitted(self)
        steps = check_steps(steps, allow_sequence=True)
        steps = steps if isinstance(steps, list) else [steps]
        weight = self.gt_weight_ if gt_weight is None else check_gt_weight(
            gt_weight, allow_any_weight=check_bool(self.allow_any_weight, name="allow_any_weight"))
        return filter_diagonals(self.evals_, self.ridge_, weight, steps)

    def path(self, X, steps, gt_weights=None, *, ridges=None) -> np.ndarray:
        """Predictions for many steps (and constant weights, and ridges) from the one eigendecomposition.

        Parameters
        ----------
        X : None for the training points (``V diag(b) V^T y``, no kernel evaluation), else inputs
            (or the cross kernel for ``kernel="precomputed"``).
        steps : int, math.inf, or a sequence of them.
        gt_weights : None (use the fitted weight or schedule) or a sequence of constant weights.
        ridges : None (the fitted ridge) or a sequence of ridges > 0. The eigenvectors of the Gram
            matrix do not depend on the ridge, so every ridge costs only its filters and its share
            of one matrix product; ``ridges=[r]`` equals a new fit with ``ridge=r``.

        Returns
        -------
        (len(ridges), len(gt_weights), len(steps), n_points[, k]); the ridge axis is absent when
        ``ridges`` is None, the weight axis when ``gt_weights`` is None, the last when ``y`` was 1-D.
        """
        check_is_fitted(self)
        steps = check_steps(steps, allow_sequence=True)
        steps = steps if isinstance(steps, list) else [steps]
        lams = [self.ridge_] if ridges is None else [check_ridge(r, name="ridges") for r in np.atleast_1d(ridges)]
        if ridges is not None and len(lams) == 0:
            raise ValueError("`ridges` must hold at least one ridge; got an empty sequence.")
        if gt_weights is not None:
            weights = check_gt_weight(np.atleast_1d(np.asarray(gt_weights, dtype=float)),
                                      allow_any_weight=check_bool(self.allow_any_weight, name="allow_any_weight"),
                                      name="gt_weights")
        blocks = []
        for lam in lams:
            if gt_weights is None:
                b, q = filter_diagonals(self.evals_, lam, self.gt_weight_, steps)  # (S, m)
            else:
                b, q = filter_path(self.evals_, lam, weights, steps)  # (W, S, m)
            blocks.append(b if X is None else q)
        shape = ((len(lams),) if ridges is not None else ()) + blocks[0].shape[:-1]
        rows = np.stack(blocks).reshape(-1, self.n_components_)
        out = self._apply_filters(rows, None if X is None else self.kernel_matrix(X))
        return self._finish(out.reshape(*shape, *out.shape[1:]))


def _check_numeric_input(v, name):
    """:func:`~kerneldistill._validation.check_numeric` on array-likes; sparse matrices and inputs that
    numpy cannot even make an array of are left to scikit-learn's own messages."""
    if hasattr(v, "dtype") and not hasattr(v, "tocsr"):
        check_numeric(v, name=name)
    elif not hasattr(v, "tocsr"):
        try:
            arr = np.asarray(v)
        except (ValueError, TypeError):
            return
        check_numeric(arr, name=name)
