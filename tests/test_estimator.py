"""Tests of kerneldistill.estimator.KernelDistiller, by agreement with independent computations.

References: scikit-learn's KernelRidge (step 1, explicit refits on mixed targets, the amplified-ridge
limit), the estimator itself step by step (path vs predict), column-wise fits (multi-output).

scikit-learn's estimator checks (``parametrize_with_checks``) run on eight configurations below.
Checks that do not apply, and why (marked as expected failures, so a change is noticed):
- check_estimators_dtypes, for kernel="precomputed": the check casts a Gram matrix to integers,
  which truncates it into an indefinite matrix (eigenvalue -2 against 216); it is refused, as any
  clearly non-PSD kernel is.
- check_positive_only_tag_during_fit, for kernel="precomputed": the check subtracts the mean from
  the Gram matrix, which makes it indefinite; refused for the same reason.
Skipped by scikit-learn itself here: check_array_api_input (SCIPY_ARRAY_API unset) and
check_regressor_data_not_an_array (pandas not installed). No check is skipped by us.
"""
import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from kerneldistill.estimator import KernelDistiller
from kerneldistill.filters import filter_diagonals

# Toy data of [BA21]'s public notebook (docs/theory.md section 2.5).
X_TOY = np.linspace(0.0, 1.0, 11)[:, None]
Y_TOY = np.array([0.38476636465198066, 1.2333967683416893, 1.33232242218057, 0.6920159488889518,
                  -0.29756145531871736, -0.24189291901377769, -0.7964485769175675,
                  -0.9616480167034174, -0.49672509509916934, -0.3469066003991437,
                  0.5589512650600734])
X_GRID = np.linspace(0.0, 1.0, 101)[:, None]

# float64 agreement between two exact solvers (eigh vs Cholesky) on well-conditioned problems.
TOL64 = dict(rtol=1e-9, atol=1e-11)


def _data(n=40, d=3, k=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=(d,) if k is None else (d, k))
    y = np.sin(X @ w) + 0.1 * rng.normal(size=(n,) if k is None else (n, k))
    Xt = rng.normal(size=(17, d))
    return X, y, Xt


def _my_kernel(x, z, scale=1.0):
    """A callable kernel on two rows (Laplacian-like, PSD)."""
    return np.exp(-np.sum(np.abs(x - z)) / scale)


def _iterated_refits(make_krr, X, y, Xt, weights, last_step):
    """Explicit self-distillation: refit KernelRidge on alpha_t y + (1 - alpha_t) f^(t-1)(X)."""
    train, test, target = [], [], y
    for t in range(1, last_step + 1):
        if t >= 2:
            a = weights[t - 2]
            target = a * y + (1.0 - a) * train[-1]
        krr = make_krr().fit(X, target)
        train.append(krr.predict(X))
        test.append(krr.predict(Xt))
    return np.stack(train), np.stack(test)


KERNEL_CASES = {
    "rbf": (dict(kernel="rbf", gamma=0.7), dict(kernel="rbf", gamma=0.7)),
    "linear": (dict(kernel="linear"), dict(kernel="linear")),
    "polynomial": (dict(kernel="polynomial", degree=3, gamma=0.5, coef0=1.0),
                   dict(kernel="polynomial", degree=3, gamma=0.5, coef0=1.0)),
    "callable": (dict(kernel=_my_kernel, kernel_params=dict(scale=2.0)),
                 dict(kernel=_my_kernel, kernel_params=dict(scale=2.0))),
}


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_step_one_equals_kernel_ridge(case):
    ours, theirs = KERNEL_CASES[case]
    X, y, Xt = _data(n=25 if case == "callable" else 40)
    model = KernelDistiller(ridge=0.3, steps=1, **ours).fit(X, y)
    krr = KernelRidge(alpha=0.3, **theirs).fit(X, y)
    np.testing.assert_allclose(model.predict(Xt), krr.predict(Xt), **TOL64)
    np.testing.assert_allclose(model.fitted_values(), krr.predict(X), **TOL64)


def test_step_one_precomputed_equals_kernel_ridge_and_named_kernel():
    X, y, Xt = _data()
    K, K_test = rbf_kernel(X, gamma=0.7), rbf_kernel(Xt, X, gamma=0.7)
    model = KernelDistiller("precomputed", ridge=0.3, gt_weight=0.4, steps=3).fit(K, y)
    named = KernelDistiller("rbf", ridge=0.3, gt_weight=0.4, steps=3, gamma=0.7).fit(X, y)
    krr = KernelRidge(alpha=0.3, kernel="precomputed").fit(K, y)
    np.testing.assert_allclose(model.predict(K_test, step=1), krr.predict(K_test), **TOL64)
    np.testing.assert_allclose(model.predict(K_test), named.predict(Xt), **TOL64)
    assert model.X_fit_ is None
    np.testing.assert_array_equal(model.kernel_matrix(K_test), K_test)


@pytest.mark.parametrize("weights", [[0.25] * 4, [0.0] * 4, [0.9, 0.1, 0.5, 0.3]],
                         ids=["constant", "zero", "schedule"])
def test_closed_form_equals_iterated_refits(weights):
    """Steps 2..5 in closed form == explicit KernelRidge refits on the mixed targets."""
    constant = len(set(weights)) == 1
    gt_weight = weights[0] if constant else weights
    model = KernelDistiller("rbf", ridge=0.2, gt_weight=gt_weight, steps=5, gamma=80).fit(X_TOY, Y_TOY)
    train, test = _iterated_refits(lambda: KernelRidge(alpha=0.2, kernel="rbf", gamma=80),
                                   X_TOY, Y_TOY, X_GRID, weights, 5)
    for t in range(1, 6):
        np.testing.assert_allclose(model.predict(X_GRID, step=t), test[t - 1], **TOL64)
        np.testing.assert_allclose(model.fitted_values(step=t), train[t - 1], **TOL64)
    # The closed form must actually move: step 5 differs from step 1 by far more than round-off.
    assert np.max(np.abs(test[4] - test[0])) > 1e-2


def test_limit_is_amplified_ridge_and_large_step_approaches_it():
    model = KernelDistiller("rbf", ridge=0.2, gt_weight=0.25, steps=math.inf, gamma=80).fit(X_TOY, Y_TOY)
    krr = KernelRidge(alpha=0.2 / 0.25, kernel="rbf", gamma=80).fit(X_TOY, Y_TOY)
    limit = model.predict(X_GRID)
    np.testing.assert_allclose(limit, krr.predict(X_GRID), **TOL64)
    # Convergence is linear with rate (1 - alpha) max(a) < 0.75: 200 steps reach round-off.
    np.testing.assert_allclose(model.predict(X_GRID, step=200), limit, rtol=0, atol=1e-12)
    gap = [np.max(np.abs(model.predict(X_GRID, step=t) - limit)) for t in (2, 5, 20)]
    assert gap[0] > gap[1] > gap[2] > 0


def test_zero_weight_limit_is_zero_function():
    model = KernelDistiller("rbf", ridge=0.2, gt_weight=0.0, steps=math.inf, gamma=80).fit(X_TOY, Y_TOY)
    np.testing.assert_array_equal(model.predict(X_GRID), np.zeros(len(X_GRID)))
    assert np.max(np.abs(model.predict(X_GRID, step=3))) > 1e-2


def test_path_equals_per_step_predict_and_fitted_values():
    X, y, Xt = _data(k=2)
    steps, weights = [1, 2, 7, math.inf], [0.0, 0.3, 1.0]
    model = KernelDistiller("rbf", ridge=0.1, gt_weight=0.5, steps=2, gamma=0.5).fit(X, y)
    at_test = model.path(Xt, steps, gt_weights=weights)
    at_train = model.path(None, steps, gt_weights=weights)
    assert at_test.shape == (3, 4, len(Xt), 2) and at_train.shape == (3, 4, len(X), 2)
    for i, w in enumerate(weights):
        single = KernelDistiller("rbf", ridge=0.1, gt_weight=w, gamma=0.5).fit(X, y)
        for j, s in enumerate(steps):
            np.testing.assert_allclose(at_test[i, j], single.predict(Xt, step=s), **TOL64)
            np.testing.assert_allclose(at_train[i, j], single.predict(X, step=s), **TOL64)
            np.testing.assert_allclose(at_train[i, j], single.fitted_values(step=s), **TOL64)
    # Without gt_weights: the fitted weight, first axis dropped.
    np.testing.assert_allclose(model.path(Xt, steps), model.path(Xt, steps, gt_weights=[0.5])[0],
                               **TOL64)
    np.testing.assert_allclose(model.path(None, [2])[0], model.fitted_values(), **TOL64)


def test_path_with_fitted_schedule_and_filters():
    X, y, Xt = _data()
    schedule = [0.9, 0.1, 0.5]
    model = KernelDistiller("rbf", ridge=0.1, gt_weight=schedule, steps=4, gamma=0.5).fit(X, y)
    path = model.path(Xt, [1, 3, 4])
    assert path.shape == (3, len(Xt))
    for j, s in enumerate([1, 3, 4]):
        np.testing.assert_allclose(path[j], model.predict(Xt, step=s), **TOL64)
    b, q = model.filters([1, 3, 4])
    b_ref, q_ref = filter_diagonals(model.evals_, 0.1, schedule, [1, 3, 4])
    np.testing.assert_array_equal(b, b_ref)
    np.testing.assert_array_equal(q, q_ref)
    # Documented fitted attributes.
    np.testing.assert_allclose(model.z_, model.evecs_.T @ model.y_fit_, **TOL64)
    assert model.y_fit_.shape == (len(X), 1) and model.n_outputs_ == 1
    assert np.all(np.diff(model.evals_) <= 0) and np.all(model.evals_ >= 0)
    np.testing.assert_allclose(model.kernel_matrix(Xt), rbf_kernel(Xt, X, gamma=0.5), **TOL64)


def test_multi_output_equals_column_wise():
    X, Y, Xt = _data(k=3)
    model = KernelDistiller("rbf", ridge=0.1, gt_weight=0.3, steps=4, gamma=0.5).fit(X, Y)
    pred = model.predict(Xt)
    assert pred.shape == (len(Xt), 3)
    for c in range(3):
        col = KernelDistiller("rbf", ridge=0.1, gt_weight=0.3, steps=4, gamma=0.5).fit(X, Y[:, c])
        np.testing.assert_allclose(pred[:, c], col.predict(Xt), **TOL64)
        np.testing.assert_allclose(model.fitted_values(math.inf)[:, c],
                                   col.fitted_values(math.inf), **TOL64)


@pytest.mark.parametrize("n, ridge", [(60, 0.1), (200, 1e-3)])
def test_float32_matches_float64(n, ridge):
    """Documented tolerance: atol = eps32 * (d_max / ridge) * max|f| (measured 10x-40x below)."""
    X, y, Xt = _data(n=n)
    kw = dict(kernel="rbf", ridge=ridge, gt_weight=0.3, steps=3, gamma=0.5)
    f64 = KernelDistiller(**kw).fit(X, y)
    f32 = KernelDistiller(**kw).fit(X.astype(np.float32), y.astype(np.float32))
    assert f32.evecs_.dtype == np.float32 and f64.evecs_.dtype == np.float64
    rel = np.finfo(np.float32).eps * f64.evals_[0] / ridge
    for step in (1, 3, math.inf):
        p64 = f64.predict(Xt, step=step)
        p32 = f32.predict(Xt.astype(np.float32), step=step)
        assert p32.dtype == np.float32
        np.testing.assert_allclose(p32, p64, rtol=0, atol=rel * np.max(np.abs(p64)))


def test_torch_backend_on_cpu_equals_numpy():
    pytest.importorskip("torch")
    X, Y, Xt = _data(k=2)
    kw = dict(kernel="rbf", ridge=0.1, gt_weight=0.3, steps=4, gamma=0.5)
    ref = KernelDistiller(**kw).fit(X, Y)
    for extra in (dict(backend="torch"), dict(device="cpu")):
        model = KernelDistiller(**kw, **extra).fit(X, Y)
        assert isinstance(model.evecs_, np.ndarray)
        np.testing.assert_allclose(model.evals_, ref.evals_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(model.predict(Xt), ref.predict(Xt), **TOL64)
        np.testing.assert_allclose(model.path(None, [1, 5, math.inf], gt_weights=[0.1, 0.8]),
                                   ref.path(None, [1, 5, math.inf], gt_weights=[0.1, 0.8]), **TOL64)


@pytest.mark.gpu
def test_cuda_device_equals_numpy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X, Y, Xt = _data(n=300, k=2)
    kw = dict(kernel="rbf", ridge=0.1, gt_weight=0.3, steps=4, gamma=0.5)
    ref = KernelDistiller(**kw).fit(X, Y)
    model = KernelDistiller(**kw, device="cuda").fit(X, Y)
    assert model._evecs_b.device.type == "cuda"
    np.testing.assert_allclose(model.predict(Xt), ref.predict(Xt), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.path(None, [1, 5, math.inf], gt_weights=[0.1, 0.8]),
                               ref.path(None, [1, 5, math.inf], gt_weights=[0.1, 0.8]),
                               rtol=1e-8, atol=1e-10)


def test_duplicate_points_and_tiny_ridge_match_kernel_ridge():
    X, y, Xt = _data(n=30)
    X = np.vstack([X, X[:10]])  # 10 exact duplicates: the Gram matrix is singular
    y = np.concatenate([y, y[:10] + 0.05])  # conflicting labels on the duplicates
    for ridge in (1e-10, 1e-3):
        model = KernelDistiller("rbf", ridge=ridge, steps=1, gamma=0.5).fit(X, y)
        krr = KernelRidge(alpha=ridge, kernel="rbf", gamma=0.5).fit(X, y)
        pred = model.predict(Xt)
        assert np.all(np.isfinite(pred))
        # Both solvers invert K + ridge I with condition ~ d_max / ridge ~ 1e11 at ridge = 1e-10:
        # they agree to about eps * condition relative to the largest prediction.
        scale = np.max(np.abs(krr.predict(Xt)))
        np.testing.assert_allclose(pred, krr.predict(Xt), rtol=0, atol=1e-4 * scale)
        np.testing.assert_allclose(model.fitted_values(), krr.predict(X), rtol=0, atol=1e-4 * scale)
        assert np.all(np.isfinite(model.path(Xt, [2, 10, math.inf], gt_weights=[0.0, 0.5])))


@pytest.mark.parametrize("spectrum", ["exact", "topk", "nystroem", "torch"])
def test_user_gram_matrix_is_not_mutated(spectrum):
    X, y, Xt = _data()
    K, K_test = rbf_kernel(X, gamma=0.5), rbf_kernel(Xt, X, gamma=0.5)
    K0, K_test0 = K.copy(), K_test.copy()
    kw = dict(backend="torch") if spectrum == "torch" else dict(spectrum=spectrum)
    if spectrum in ("topk", "nystroem"):
        kw.update(n_components=10, random_state=0)
    model = KernelDistiller("precomputed", ridge=0.1, **kw).fit(K, y)
    model.predict(K_test)
    model.path(K_test, [1, 3], gt_weights=[0.2, 0.7])
    np.testing.assert_array_equal(K, K0)
    np.testing.assert_array_equal(K_test, K_test0)


# --- scikit-learn integration ---------------------------------------------------------------------

def test_clone_get_set_params_round_trip_with_kernel_params():
    model = KernelDistiller("rbf", ridge=0.2, gt_weight=[0.5, 0.4], steps=3, gamma=4.0)
    params = model.get_params()
    assert params["gamma"] == 4.0 and params["ridge"] == 0.2
    twin = clone(model)
    assert twin.get_params() == params
    # A kernel parameter the instance was built without (as GridSearchCV does with a clone).
    bare = KernelDistiller("rbf", ridge=0.2).set_params(gamma=3.0)
    assert clone(bare).get_params()["gamma"] == 3.0
    X, y, Xt = _data()
    np.testing.assert_allclose(bare.fit(X, y).kernel_matrix(Xt), rbf_kernel(Xt, X, gamma=3.0),
                               **TOL64)
    # As KernelRidge: gamma, degree, coef0 are parameters; the ones a named kernel does not have are ignored.
    np.testing.assert_allclose(KernelDistiller("rbf", gamma=3.0, degree=7, coef0=-4.0).fit(X, y).kernel_matrix(Xt),
                               rbf_kernel(Xt, X, gamma=3.0), **TOL64)
    # set_params refuses a name the estimator does not have (it used to store any name as a kernel parameter).
    with pytest.raises(ValueError, match=r"Invalid parameter 'gama' for estimator KernelDistiller"):
        KernelDistiller("rbf").set_params(gama=3.0)
    # kernel_params is for a callable kernel only.
    with pytest.raises(ValueError, match=r"`kernel_params` is for a callable kernel; kernel='rbf' takes `gamma`"):
        KernelDistiller("rbf", kernel_params={"gamma": 3.0}).fit(X, y)
    with pytest.raises(ValueError, match=r"kernel='precomputed' takes no kernel parameters.*kernel_params"):
        KernelDistiller("precomputed", kernel_params={"gamma": 3.0}).fit(rbf_kernel(X), y)
    # The declared constraints catch what the named checks do not (a negative gamma).
    with pytest.raises(ValueError, match=r"'gamma' parameter of KernelDistiller must be"):
        KernelDistiller("rbf", gamma=-1.0).fit(X, y)
    assert set(KernelDistiller._parameter_constraints) == set(KernelDistiller().get_params())


def test_grid_search_agrees_with_path_on_each_fold():
    """GridSearchCV's refits == a brute-force grid computed from one path per fold."""
    X, y, _ = _data(n=45)
    ridges, weights, steps = [0.05, 0.5], [0.0, 0.4, 1.0], [1, 3, math.inf]
    search = GridSearchCV(KernelDistiller("rbf", gamma=0.5),
                          dict(ridge=ridges, gt_weight=weights, steps=steps),
                          cv=KFold(3), scoring="neg_mean_squared_error").fit(X, y)
    brute = np.zeros((len(ridges), len(weights), len(steps)))
    for train, test in KFold(3).split(X):
        for r, ridge in enumerate(ridges):
            model = KernelDistiller("rbf", ridge=ridge, gamma=0.5).fit(X[train], y[train])
            pred = model.path(X[test], steps, gt_weights=weights)  # (W, S, n_test)
            brute[r] -= np.mean((pred - y[test]) ** 2, axis=-1) / 3
    ours = search.cv_results_["mean_test_score"]
    order = [(ridges.index(p["ridge"]), weights.index(p["gt_weight"]), steps.index(p["steps"]))
             for p in search.cv_results_["params"]]
    np.testing.assert_allclose(ours, [brute[i] for i in order], **TOL64)
    # Ties are real (gt_weight = 1 makes every step equal step 1): compare the best score.
    np.testing.assert_allclose(search.best_score_, brute.max(), **TOL64)


def test_grid_search_over_kernel_param_and_pipeline():
    X, y, Xt = _data(n=45)
    pipe = make_pipeline(StandardScaler(), KernelDistiller("rbf", ridge=0.1, steps=2))
    search = GridSearchCV(pipe, {"kerneldistiller__gamma": [0.1, 1.0]}, cv=3).fit(X, y)
    assert search.best_params_["kerneldistiller__gamma"] in (0.1, 1.0)
    scaler = StandardScaler().fit(X)
    direct = KernelDistiller("rbf", ridge=0.1, steps=2,
                             gamma=search.best_params_["kerneldistiller__gamma"])
    direct.fit(scaler.transform(X), y)
    np.testing.assert_allclose(search.predict(Xt), direct.predict(scaler.transform(Xt)), **TOL64)


def test_grid_search_precomputed_uses_pairwise_tag():
    X, y, _ = _data(n=30)
    K = rbf_kernel(X, gamma=0.5)
    search = GridSearchCV(KernelDistiller("precomputed"), {"ridge": [0.1, 1.0]}, cv=3).fit(K, y)
    named = GridSearchCV(KernelDistiller("rbf", gamma=0.5), {"ridge": [0.1, 1.0]}, cv=3).fit(X, y)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               named.cv_results_["mean_test_score"], **TOL64)


# --- bad input --------------------------------------------------------------------------------------

def _fit(**kw):
    X, y, _ = _data(n=12)
    return KernelDistiller(**{"kernel": "rbf", **kw}).fit(X, y)


@pytest.mark.parametrize("kw, error, match", [
    (dict(ridge=0.0), ValueError, r"`ridge` must be a finite real number > 0.*got 0\.0"),
    (dict(ridge=-1.0), ValueError, r"`ridge` must be .* > 0.*got -1\.0"),
    (dict(ridge="big"), TypeError, r"`ridge` must be a real number > 0.*'big'"),
    (dict(gt_weight=1.5), ValueError, r"`gt_weight` must lie in \[0, 1\].*1\.5.*allow_any_weight"),
    (dict(gt_weight=[0.5, -0.1], steps=3), ValueError, r"`gt_weight` must lie in \[0, 1\].*-0\.1"),
    (dict(gt_weight=np.nan), ValueError, r"`gt_weight` must be finite"),
    (dict(steps=0), ValueError, r"`steps` must be integers >= 1 or math.inf; got 0"),
    (dict(steps=2.5), TypeError, r"`steps` must be integers >= 1 or math.inf; got 2\.5"),
    (dict(steps=[1, 2]), TypeError, r"`steps` must be one int >= 1"),
    (dict(gt_weight=[0.5, 0.5], steps=4), ValueError, r"`steps`=4 needs one `gt_weight` per step 2\.\.4.*holds 2"),
    (dict(gt_weight=[0.5], steps=math.inf), ValueError, r"`steps`=inf needs one `gt_weight`"),
    (dict(kernel="gaussian"), ValueError, r"`kernel` must be one of .*got 'gaussian'"),
    (dict(kernel=3), TypeError, r"`kernel` must be a kernel name.*got 3"),
    (dict(spectrum="svd"), ValueError, r"`spectrum` must be one of .*got 'svd'"),
    (dict(spectrum="topk"), ValueError, r"`n_components` must be an int >= 1 for spectrum='topk'; got None"),
    (dict(backend="jax"), ValueError, r"`backend` must be None, 'numpy' or 'torch'; got 'jax'"),
    (dict(backend="numpy", device="cuda"), ValueError, r"backend='numpy' runs on the CPU only"),
    (dict(kernel="sigmoid", gamma=1.0, coef0=-2.0), ValueError, r"kernel='sigmoid'.* must be a positive semi-definite"),
])
def test_bad_parameters_name_argument(kw, error, match):
    with pytest.raises(error, match=match):
        _fit(**kw)


def test_weights_outside_unit_interval_need_opt_in():
    X, y, Xt = _data()
    model = KernelDistiller("rbf", ridge=0.2, gt_weight=1.3, steps=3, gamma=0.5,
                            allow_any_weight=True).fit(X, y)
    train, test = _iterated_refits(lambda: KernelRidge(alpha=0.2, kernel="rbf", gamma=0.5),
                                   X, y, Xt, [1.3, 1.3], 3)
    np.testing.assert_allclose(model.predict(Xt), test[2], **TOL64)
    with pytest.raises(ValueError, match=r"`gt_weights` must lie in \[0, 1\]"):
        KernelDistiller("rbf", gamma=0.5).fit(X, y).path(None, [2], gt_weights=[0.5, 1.2])


@pytest.mark.parametrize("X, y, match", [
    (np.array([[0.0], [np.nan], [1.0]]), np.zeros(3), r"Input X contains NaN"),
    (np.array([[0.0], [np.inf], [1.0]]), np.zeros(3), r"Input X contains infinity"),
    (np.zeros((3, 1)), np.array([0.0, np.nan, 1.0]), r"Input y contains NaN"),
    (np.zeros((3, 1)), np.zeros(4), r"`X` and `y` must hold the same number of samples; got X with 3 and y with 4"),
    (np.zeros((0, 1)), np.zeros(0), r"`X` is empty: found array with 0 sample"),
    (np.zeros((3, 1)), None, r"requires y to be passed"),
])
def test_bad_data_names_argument(X, y, match):
    with pytest.raises(ValueError, match=match):
        KernelDistiller("rbf").fit(X, y)


def test_bad_precomputed_gram():
    y = np.zeros(3)
    with pytest.raises(ValueError, match=r"`X` must be the square .* Gram matrix .*got shape \(3, 2\)"):
        KernelDistiller("precomputed").fit(np.ones((3, 2)), y)
    with pytest.raises(ValueError, match=r"`X` must be a symmetric Gram matrix.*max \|X - X\^T\| = 0\.5"):
        KernelDistiller("precomputed").fit(np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), y)
    indefinite = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eigenvalue -1 of 3
    with pytest.raises(ValueError, match=r"`X` \(precomputed Gram matrix\) must be a positive semi-definite.*-1"):
        KernelDistiller("precomputed").fit(indefinite, y)
    with pytest.raises(ValueError, match="takes no kernel parameters"):
        KernelDistiller("precomputed", gamma=1.0).fit(np.eye(3), y)
    # Round-off negatives (rank-deficient Gram matrix of a linear kernel) are clipped, not refused.
    Z = np.random.default_rng(0).normal(size=(20, 3))
    model = KernelDistiller("precomputed", ridge=0.1).fit(Z @ Z.T, np.arange(20.0))
    assert np.all(model.evals_ >= 0) and np.sum(model.evals_ > 1e-8) == 3
    fitted = model.fit(Z @ Z.T, np.arange(20.0))
    with pytest.raises(ValueError, match=r"cross kernel K\(X_test, X_train\)"):
        fitted.predict(np.ones((2, 5)))


def test_predict_errors():
    X, y, Xt = _data()
    with pytest.raises(NotFittedError):
        KernelDistiller("rbf").predict(Xt)
    with pytest.raises(NotFittedError):
        KernelDistiller("rbf").path(None, [1])
    model = KernelDistiller("rbf", gt_weight=[0.3, 0.6], steps=3).fit(X, y)
    with pytest.raises(ValueError, match=r"`gt_weight` schedule has 2 weights \(steps 2\.\.3\) but step 5"):
        model.predict(Xt, step=5)
    with pytest.raises(ValueError, match=r"math.inf.*`gt_weight` is a schedule"):
        model.predict(Xt, step=math.inf)
    with pytest.raises(ValueError, match=r"`step` must be integers >= 1 or math.inf; got 0"):
        model.predict(Xt, step=0)
    with pytest.raises(ValueError, match=r"X has 2 features, but KernelDistiller is expecting 3"):
        model.predict(Xt[:, :2])
    with pytest.raises(ValueError, match=r"NaN"):
        model.predict(np.full((2, 3), np.nan))


# --- scikit-learn's own estimator checks -------------------------------------------------------------

def _expected_failed_checks(estimator):
    failed = {}
    if estimator.kernel == "precomputed":
        failed["check_estimators_dtypes"] = (
            "casts a Gram matrix to int, which makes it indefinite; refused as non-PSD")
        failed["check_positive_only_tag_during_fit"] = (
            "subtracts the mean from a Gram matrix, which makes it indefinite; refused as non-PSD")
    return failed


@pytest.mark.filterwarnings("ignore:n_components=")  # > n_samples on the checks' tiny data
@parametrize_with_checks(
    [
        KernelDistiller(),
        KernelDistiller("rbf", ridge=0.1, gt_weight=0.5, steps=3),
        KernelDistiller("rbf", ridge=0.1, gt_weight=[0.5, 0.2], steps=3),
        KernelDistiller("rbf", ridge=0.1, steps=math.inf, gamma=0.5),
        KernelDistiller("precomputed", ridge=0.1),
        KernelDistiller("rbf", ridge=0.1, backend="torch"),
        KernelDistiller("rbf", ridge=0.1, spectrum="topk", n_components=40, random_state=0),
        KernelDistiller("rbf", ridge=0.1, spectrum="nystroem", n_components=40, random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
