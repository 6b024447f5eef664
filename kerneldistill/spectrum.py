"""Spectra of a Gram matrix: exact (numpy/scipy or torch on a device) and approximate (top-k, Nystroem).

Every back end returns a :class:`Spectrum` ``K ~= V diag(d) V^T`` with ``V`` orthonormal columns,
eigenvalues sorted in DESCENDING order (eigen-index 0 is the largest, the order of [BA21]'s bar
charts). The estimator feeds ``d`` to :func:`kerneldistill.filters.filter_diagonals` whatever the
back end, so the approximate spectra change only which ``(d, V)`` the one filter code sees.

Costs for ``n`` training points and ``m`` components:

========== ================================================ ===================== ==============
spectrum   what it computes                                  time                   memory
========== ================================================ ===================== ==============
exact      full ``eigh`` of ``K`` (scipy ``driver="evr"``,   O(n^3)                O(n^2)
           ``torch.linalg.eigh`` when a device is given)
topk       the ``m`` largest eigenpairs of ``K``             O(n^2 m) (ARPACK)      O(n^2)
           (``scipy.sparse.linalg.eigsh``)
nystroem   exact spectrum of the Nystroem approximation      O(n m^2)              O(n m)
           ``K ~= C W^+ C^T`` (``m`` landmarks)             (never forms ``K``)
========== ================================================ ===================== ==============

ARPACK pays only for ``m << n``: at n = 2000 (one thread) 50 components cost 0.2x the exact eigh,
200 cost 1x, 800 cost 30x. Nystroem stays cheap (800 landmarks: 0.15x) but is less accurate for the
same ``m`` (``bench/bench_kernel_path.py`` prints both).

Truncating to ``m`` components drops the directions of the smallest eigenvalues: there the exact
filters ``b = d / (d + lam)`` are near 0 anyway, so the error is controlled by the discarded
spectrum mass relative to ``lam`` (measured against the exact path in ``tests/test_spectrum.py``
and ``bench/bench_kernel_path.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from ._validation import NEGATIVE_EIGENVALUE_RTOL, check_psd_evals

__all__ = ["Spectrum", "eigh_gram", "eigh_psd", "psd_evals", "exact_eigh_solver", "EXACT_EIGH_SOLVERS",
           "topk_spectrum", "nystroem_spectrum", "nystroem_landmarks"]


@dataclass(frozen=True)
class Spectrum:
    """``K ~= evecs @ diag(evals) @ evecs.T``, eigenvalues descending.

    ``evals`` (m,) and ``evecs`` (n, m) are numpy arrays, or torch tensors on ``device`` for the
    torch back end. ``method`` is ``"exact"``, ``"topk"`` or ``"nystroem"``. The eigenvalues are raw
    (a Gram matrix's round-off may leave tiny negatives): the caller validates and clips them.
    ``topk`` sees only the largest eigenvalues, so it cannot detect an indefinite kernel.
    """

    evals: Any
    evecs: Any
    method: str = "exact"

    @property
    def n_components(self) -> int:
        return int(self.evals.shape[0])

    def to_numpy(self) -> "Spectrum":
        """The same spectrum as numpy arrays (a device-to-host copy for torch tensors)."""
        if isinstance(self.evals, np.ndarray):
            return self
        return Spectrum(self.evals.detach().cpu().numpy(), self.evecs.detach().cpu().numpy(),
                        self.method)


def _descending(evals, evecs):
    # LAPACK/ARPACK/cuSOLVER return ascending order; flip once, into a positive-stride copy so that
    # every later matmul hands BLAS a plain array. LAPACK's eigenvectors are Fortran-ordered: a
    # Fortran copy moves whole columns (4x faster than converting to C order at n = 2000).
    if isinstance(evals, np.ndarray):
        order = "F" if evecs.flags.f_contiguous else "C"
        return evals[::-1].copy(), np.array(evecs[:, ::-1], order=order)
    import torch

    return torch.flip(evals, dims=(0,)).contiguous(), torch.flip(evecs, dims=(1,)).contiguous()


# The exact symmetric eigensolvers on the CPU. numpy's ``eigh`` and scipy's ``driver="evd"`` both
# call LAPACK's divide-and-conquer ``syevd``, but through DIFFERENT OpenBLAS builds (numpy and scipy
# wheels each bundle their own); ``evr`` is MRRR (``syevr``), scipy's own default driver.
# ``bench/bench_kernel_path.py`` times all three on the same matrix in one run. On our shared 2-core
# machine, one BLAS thread, n = 2000, six runs gave evr / evd = 1.01, 0.84, 0.88, 0.90, 0.84, 0.85
# and numpy / evd = 1.03, 0.95, 0.97, 0.92, 0.94, 1.14 (n = 1000: 0.97 and 1.02; n = 3000: 0.91 and
# 0.93); runs with two threads were dominated by other jobs' load and are not used. So "evr" is the
# default: the fastest in five of six runs and never more than 1.5% slower. The choice is not made by timing at
# run time: a calibration would cost extra eigendecompositions of the very size being fitted, more
# than the ~10% it could win. ``KERNELDISTILL_EIGH`` (``numpy``, ``evd`` or ``evr``) overrides it for
# a machine where the bench shows otherwise.
EXACT_EIGH_SOLVERS = ("evd", "evr", "numpy")
_DEFAULT_SOLVER = "evr"


def exact_eigh_solver() -> str:
    """The exact CPU eigensolver in use: ``KERNELDISTILL_EIGH`` if set, else ``"evr"`` (see above)."""
    name = os.environ.get("KERNELDISTILL_EIGH", _DEFAULT_SOLVER)
    if name not in EXACT_EIGH_SOLVERS:
        raise ValueError(f"KERNELDISTILL_EIGH must be one of {list(EXACT_EIGH_SOLVERS)}; got {name!r}.")
    return name


def eigh_gram(K, device=None, *, overwrite: bool = False, solver: str | None = None) -> Spectrum:
    """Exact eigendecomposition of a symmetric Gram matrix ``K`` (n, n), eigenvalues descending.

    ``device=None``: LAPACK through ``solver`` (default :func:`exact_eigh_solver`: scipy
    ``driver="evr"``). ``overwrite=True`` lets LAPACK reuse ``K``'s memory (only for a Gram matrix
    the caller owns; a user's matrix is never overwritten).

    Why ``-K``: LAPACK returns ascending eigenvalues, and flipping ``n x n`` eigenvectors into
    descending order is a full copy. The eigenpairs of ``-K`` come in the order we want, and the
    negation is exact and fused with the copy that LAPACK needs anyway (or done in place when
    ``overwrite``). ``K.T`` is passed because it is ``K`` (symmetric) in the Fortran order that
    LAPACK works in, so scipy need not transpose-copy it.

    ``device`` = ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``: ``torch.linalg.eigh`` on
    that device, in ``K``'s dtype; the result stays on the device as torch tensors.
    """
    if device is None:
        K = np.asarray(K)
        solver = exact_eigh_solver() if solver is None else solver
        if solver not in EXACT_EIGH_SOLVERS:
            raise ValueError(f"`solver` must be one of {list(EXACT_EIGH_SOLVERS)}; got {solver!r}.")
        A = K.T  # == K; Fortran-ordered when K is C-ordered
        if overwrite and A.flags.writeable and A.flags.f_contiguous:
            np.negative(A, out=A)
        else:
            A = np.negative(A, order="F")
        if solver == "numpy":
            d, V = np.linalg.eigh(A)
        else:
            d, V = scipy.linalg.eigh(A, driver=solver, overwrite_a=True, check_finite=False)
        return Spectrum(-d, V, method="exact")
    import torch

    K = np.asarray(K)
    K = K if K.flags.writeable else K.copy()  # torch refuses to wrap read-only memory
    Kt = torch.as_tensor(K, device=torch.device(device))  # shares K's memory on the CPU; eigh reads it only
    d, V = torch.linalg.eigh(Kt)
    return Spectrum(*_descending(d, V), method="exact")


def psd_evals(evals, n_samples: int, dtype, *, name: str = "the kernel") -> np.ndarray:
    """The eigenvalues of a PSD Gram matrix of ``n_samples`` points as float64, round-off negatives set to 0.

    The one rule for a spectrum's sign (:class:`kerneldistill.KernelDistiller` and every caller of
    :func:`eigh_psd`): round-off leaves eigenvalues of a PSD Gram matrix slightly negative, of order
    ``n eps d_max`` in the matrix's ``dtype``; those are clipped to 0 (the filters need ``d >= 0``), and
    clearly negative ones, below ``-max(NEGATIVE_EIGENVALUE_RTOL, 10 n eps) * max|d|``, are refused
    (:func:`kerneldistill._validation.check_psd_evals`): the filters would then be wrong, not slightly off.
    ``evals``: numpy array or torch tensor. ``name``: what the message calls the matrix.
    """
    if not isinstance(evals, np.ndarray):
        evals = evals.detach().cpu().numpy()
    rtol = max(NEGATIVE_EIGENVALUE_RTOL, 10 * int(n_samples) * np.finfo(dtype).eps)
    return check_psd_evals(np.asarray(evals).astype(np.float64), name=name, rtol=rtol)


def eigh_psd(K, device=None, *, name: str = "the kernel", overwrite: bool = False) -> Spectrum:
    """:func:`eigh_gram` of a PSD Gram matrix ``K``, its eigenvalues checked and clipped by :func:`psd_evals`
    (float64 numpy); the eigenvectors as :func:`eigh_gram` returns them."""
    K = np.asarray(K)
    spec = eigh_gram(K, device, overwrite=overwrite)
    return Spectrum(psd_evals(spec.evals, K.shape[0], K.dtype, name=name), spec.evecs, spec.method)


def topk_spectrum(K, n_components: int, *, random_state=None) -> Spectrum:
    """The ``n_components`` largest eigenpairs of ``K`` by ARPACK (``scipy.sparse.linalg.eigsh``).

    Needs ``n_components < n``. The start vector comes from ``random_state`` (ARPACK's default start
    vector is random and unseeded, which would make two fits differ at round-off).
    """
    from sklearn.utils import check_random_state

    K = np.asarray(K)
    n = K.shape[0]
    if not 1 <= n_components < n:
        raise ValueError(f"`n_components` must be an int in [1, n_samples - 1] for spectrum='topk' "
                         f"(ARPACK); got n_components={n_components} with n_samples={n}. Use "
                         f"spectrum='exact' for all eigenpairs.")
    v0 = check_random_state(random_state).uniform(-1.0, 1.0, n).astype(K.dtype)
    d, V = scipy.sparse.linalg.eigsh(K, k=n_components, which="LA", v0=v0)
    order = np.argsort(d)[::-1]  # eigsh does not promise an order
    return Spectrum(d[order], V[:, order], "topk")  # fancy indexing copies: positive strides


def nystroem_landmarks(n_samples: int, n_components: int, *, random_state=None) -> np.ndarray:
    """Indices of ``n_components`` landmarks drawn uniformly without replacement (sorted)."""
    from sklearn.utils import check_random_state

    if not 1 <= n_components <= n_samples:
        raise ValueError(f"`n_components` must be an int in [1, n_samples] for spectrum='nystroem'; "
                         f"got n_components={n_components} with n_samples={n_samples}.")
    rng = check_random_state(random_state)
    return np.sort(rng.choice(n_samples, size=n_components, replace=False))


def nystroem_spectrum(C, W) -> Spectrum:
    """Exact spectrum of the Nystroem approximation ``K ~= C W^+ C^T``.

    ``C = K(X, L)`` (n, m) is the kernel between all training points and the landmarks ``L``,
    ``W = K(L, L)`` (m, m). With ``W = U diag(s) U^T``, the features ``Z = C U diag(s^-1/2)`` (the
    map of ``sklearn.kernel_approximation.Nystroem``; Williams & Seeger 2001) satisfy
    ``Z Z^T = C W^+ C^T``, and the thin SVD ``Z = P diag(sigma) R^T`` gives the eigenpairs
    ``(sigma^2, P)`` in O(n m^2) without forming the n x n matrix.

    Why not ``sklearn.kernel_approximation.Nystroem`` itself: it cannot take a precomputed Gram
    matrix (it evaluates the kernel from feature vectors), and the estimator needs one code path for
    named, callable and precomputed kernels. ``W^+`` is a true pseudo-inverse: eigenvalues of ``W``
    below ``m * eps * max(s)`` (round-off level) are dropped. Duplicate landmarks or a smooth kernel
    make ``W`` numerically singular; sklearn instead clamps them to 1e-12, which amplifies their
    round-off noise by up to 1e6.
    """
    C = np.asarray(C)
    W = np.asarray(W)
    s, U = scipy.linalg.eigh(W, check_finite=False)
    # An indefinite kernel shows in W; refuse it here, since Z Z^T is PSD whatever W was.
    check_psd_evals(s, name="the kernel (on the Nystroem landmarks)",
                    rtol=max(NEGATIVE_EIGENVALUE_RTOL, 10 * W.shape[0] * np.finfo(W.dtype).eps))
    keep = s > W.shape[0] * np.finfo(W.dtype).eps * max(float(s.max()), np.finfo(np.float64).tiny)
    Z = C @ (U[:, keep] / np.sqrt(s[keep]))  # (n, r)
    P, sigma, _ = scipy.linalg.svd(Z, full_matrices=False, check_finite=False)
    return Spectrum(np.ascontiguousarray(sigma ** 2), np.ascontiguousarray(P), "nystroem")
