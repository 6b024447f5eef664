"""Tests of kerneldistill.spectrum (exact, torch, top-k, Nystroem) and of the approximate paths.

Approximate spectra are checked by agreement with the exact one: identical where they must be
(top-k eigenvalues, Nystroem with every point a landmark), and an error against the exact path that
shrinks as ``n_components`` grows.
"""
import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill._validation import check_psd_evals
from kerneldistill.estimator import KernelDistiller
from kerneldistill.spectrum import (Spectrum, eigh_gram, nystroem_landmarks, nystroem_spectrum,
                                    topk_spectrum)


def _gram(n=60, gamma=0.5, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, 3))
    return X, rbf_kernel(X, gamma=gamma)


def _reconstruct(spec):
    return (spec.evecs * spec.evals) @ spec.evecs.T


def test_exact_spectrum_reconstructs_descending_orthonormal_and_keeps_input():
    _, K = _gram()
    K0 = K.copy()
    spec = eigh_gram(K)
    assert spec.method == "exact" and spec.n_components == 60
    assert np.all(np.diff(spec.evals) <= 0)
    np.testing.assert_allclose(spec.evecs.T @ spec.evecs, np.eye(60), rtol=0, atol=1e-12)
    np.testing.assert_allclose(_reconstruct(spec), K, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(K, K0)  # overwrite=False (the default) leaves the input alone
    np.testing.assert_allclose(spec.evals, np.linalg.eigvalsh(K)[::-1], rtol=0, atol=1e-12)


def test_torch_spectrum_on_cpu_equals_scipy():
    torch = pytest.importorskip("torch")
    _, K = _gram()
    ref = eigh_gram(K)
    spec = eigh_gram(K, device="cpu")
    assert isinstance(spec.evals, torch.Tensor) and spec.evecs.dtype == torch.float64
    host = spec.to_numpy()
    np.testing.assert_allclose(host.evals, ref.evals, rtol=0, atol=1e-12)
    # Eigenvectors agree up to sign (and rotation within near-degenerate clusters): compare the
    # reconstruction and the projector on the 10 leading, well-separated eigenvectors.
    np.testing.assert_allclose(_reconstruct(host), K, rtol=0, atol=1e-12)
    P, P_ref = host.evecs[:, :10] @ host.evecs[:, :10].T, ref.evecs[:, :10] @ ref.evecs[:, :10].T
    np.testing.assert_allclose(P, P_ref, rtol=0, atol=1e-9)


@pytest.mark.gpu
def test_torch_spectrum_on_cuda_equals_scipy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, K = _gram(n=500)
    spec = eigh_gram(K, device="cuda")
    assert spec.evecs.device.type == "cuda"
    np.testing.assert_allclose(spec.to_numpy().evals, eigh_gram(K).evals, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_reconstruct(spec.to_numpy()), K, rtol=0, atol=1e-10)


def test_topk_equals_leading_exact_eigenpairs_and_is_reproducible():
    _, K = _gram()
    exact = eigh_gram(K)
    top = topk_spectrum(K, 8, random_state=0)
    assert top.method == "topk" and top.evecs.shape == (60, 8)
    np.testing.assert_allclose(top.evals, exact.evals[:8], rtol=1e-10, atol=0)
    P, P_ref = top.evecs @ top.evecs.T, exact.evecs[:, :8] @ exact.evecs[:, :8].T
    np.testing.assert_allclose(P, P_ref, rtol=0, atol=1e-8)
    again = topk_spectrum(K, 8, random_state=0)
    np.testing.assert_array_equal(again.evecs, top.evecs)


def test_nystroem_with_every_point_a_landmark_is_exact():
    _, K = _gram(n=40, gamma=0.2)
    idx = nystroem_landmarks(40, 40, random_state=0)
    np.testing.assert_array_equal(idx, np.arange(40))
    spec = nystroem_spectrum(K[:, idx], K[np.ix_(idx, idx)])
    exact = eigh_gram(K)
    # W = K is numerically singular for a smooth kernel: the pseudo-inverse drops the round-off
    # directions, so the leading spectrum and the reconstruction match, not all 40 eigenvalues.
    np.testing.assert_allclose(_reconstruct(spec), K, rtol=0, atol=1e-8)
    np.testing.assert_allclose(spec.evals[:10], exact.evals[:10], rtol=1e-8, atol=0)


def test_nystroem_reconstructs_c_winv_ct():
    _, K = _gram(n=50)
    idx = nystroem_landmarks(50, 12, random_state=1)
    C, W = K[:, idx], K[np.ix_(idx, idx)]
    spec = nystroem_spectrum(C, W)
    np.testing.assert_allclose(_reconstruct(spec), C @ np.linalg.pinv(W) @ C.T, rtol=0, atol=1e-9)
    np.testing.assert_allclose(spec.evecs.T @ spec.evecs, np.eye(spec.n_components), rtol=0,
                               atol=1e-10)


@pytest.mark.parametrize("spectrum", ["topk", "nystroem"])
def test_approximate_path_error_shrinks_with_n_components(spectrum):
    """Relative error of the path (steps 1, 3, inf) against the exact spectrum, n = 300."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + 0.1 * rng.normal(size=300)
    Xt = rng.normal(size=(50, 2))
    kw = dict(kernel="rbf", ridge=0.05, gt_weight=0.5, gamma=0.5)
    exact = KernelDistiller(**kw).fit(X, y)
    ref_train = exact.path(None, [1, 3, math.inf])
    ref_test = exact.path(Xt, [1, 3, math.inf])
    errors = []
    for m in (5, 20, 80):
        approx = KernelDistiller(**kw, spectrum=spectrum, n_components=m, random_state=0).fit(X, y)
        # Nystroem may keep fewer: W's round-off directions are dropped by the pseudo-inverse.
        assert approx.evecs_.shape[0] == 300 and approx.spectrum_ == spectrum
        assert approx.n_components_ == m if spectrum == "topk" else m - 5 <= approx.n_components_ <= m
        err_train = np.linalg.norm(approx.path(None, [1, 3, math.inf]) - ref_train) / np.linalg.norm(ref_train)
        err_test = np.linalg.norm(approx.path(Xt, [1, 3, math.inf]) - ref_test) / np.linalg.norm(ref_test)
        errors.append((err_train, err_test))
    errors = np.array(errors)
    print(spectrum, "relative error (train, test) at n_components 5/20/80:", errors.tolist())
    assert np.all(np.diff(errors, axis=0) < 0), errors
    # 80 of 300 components. top-k keeps the exact leading eigenpairs (measured ~2e-5); Nystroem's
    # random landmarks approximate them (measured ~1e-2).
    assert errors[-1].max() < (1e-3 if spectrum == "topk" else 3e-2), errors


@pytest.mark.parametrize("spectrum", ["topk", "nystroem"])
def test_approximate_spectrum_with_torch_backend_equals_numpy(spectrum):
    pytest.importorskip("torch")
    X, K = _gram(n=80)
    y = np.sin(X[:, 0])
    kw = dict(kernel="rbf", ridge=0.1, gamma=0.5, gt_weight=0.3, steps=3, spectrum=spectrum,
              n_components=15, random_state=0)
    ref = KernelDistiller(**kw).fit(X, y)
    model = KernelDistiller(**kw, backend="torch").fit(X, y)
    np.testing.assert_allclose(model.predict(X[:7]), ref.predict(X[:7]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.path(None, [1, math.inf]), ref.path(None, [1, math.inf]),
                               rtol=1e-10, atol=1e-12)


def test_nystroem_refuses_indefinite_kernel():
    X, _ = _gram(n=30)
    with pytest.raises(ValueError, match=r"the kernel \(on the Nystroem landmarks\) must be a positive semi-definite"):
        KernelDistiller("sigmoid", gamma=1.0, coef0=-2.0, spectrum="nystroem", n_components=10,
                        random_state=0).fit(X, X[:, 0])


def test_bad_n_components_and_psd_check():
    _, K = _gram(n=10)
    with pytest.raises(ValueError, match=r"`n_components` must be an int in \[1, n_samples - 1\].*n_components=10 with n_samples=10"):
        topk_spectrum(K, 10)
    with pytest.raises(ValueError, match=r"`n_components` must be an int in \[1, n_samples\].*n_components=11"):
        nystroem_landmarks(10, 11)
    with pytest.raises(ValueError, match=r"positive semi-definite.*-0\.5 against a largest of 2"):
        check_psd_evals(np.array([2.0, 1.0, -0.5]))
    clipped = check_psd_evals(np.array([2.0, 1.0, -1e-15]))
    np.testing.assert_array_equal(clipped, [2.0, 1.0, 0.0])


def test_spectrum_is_a_frozen_dataclass():
    spec = Spectrum(np.ones(2), np.eye(2))
    with pytest.raises(AttributeError):
        spec.method = "topk"
    assert spec.to_numpy() is spec
