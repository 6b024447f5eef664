import math

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill.mobahi import budget_multiplier, budget_residual, fixed_budget_path, fixed_budget_path_from_distiller
from kerneldistill.toy import TOY_GAMMA, TOY_X, TOY_Y, toy_distiller


def _rbf_path(eps=0.005, rounds=30, y=TOY_Y):
    K = rbf_kernel(TOY_X, gamma=TOY_GAMMA)
    d, V = np.linalg.eigh(K)
    return fixed_budget_path(d, V, y, eps, rounds), K


def test_multiplier_solves_the_budget_equation_and_refits_agree():
    path, K = _rbf_path()
    n = path.n
    live = np.flatnonzero(np.isfinite(path.c))
    assert len(live) >= 5
    d, V = np.linalg.eigh(K)
    for t in live:
        targets = path.fits[t][:, 0]
        # the root equation, evaluated on this round's own targets
        z = V.T @ targets
        assert budget_residual(path.c[t], d / n, z) == pytest.approx(n * path.eps, rel=1e-10)
        # the round is kernel ridge with ridge n c_t (an independent Cholesky solve), and it meets the budget
        fit = KernelRidge(alpha=path.ridge[t], kernel="rbf", gamma=TOY_GAMMA).fit(TOY_X, targets).predict(TOY_X)
        np.testing.assert_allclose(path.fits[t + 1][:, 0], fit, rtol=1e-9, atol=1e-12)
        assert np.mean((fit - targets) ** 2) == pytest.approx(path.eps, rel=1e-9)


def test_multiplier_and_round_bounds_hold():
    path, _ = _rbf_path()
    live = np.isfinite(path.c)
    assert np.all(path.c_lower[live] <= path.c[live]) and np.all(path.c[live] <= path.c_upper[live])
    # c_t grows as the targets shrink
    assert np.all(np.diff(path.c[live]) > 0)
    # per-round bounds on r_(t+1) (module docstring), for the rounds before collapse
    k = path.kappa
    for t in np.flatnonzero(live):
        r, r_next = path.r[t], path.r[t + 1]
        assert r * (r - 1) / (r - 1 + k) <= r_next * (1 + 1e-12)
        assert r_next <= r * k * (r - 1) / (k * (r - 1) + 1) * (1 + 1e-12)


def test_collapse_round_is_first_round_under_budget_and_within_bounds():
    path, _ = _rbf_path(rounds=40)
    tc = path.collapse_round
    assert tc is not None
    assert path.r[tc] <= 1 < path.r[tc - 1]
    lo, hi = path.collapse_bounds
    assert lo <= tc <= hi
    assert np.all(path.fits[tc + 1:] == 0) and np.all(np.isnan(path.c[tc:]))
    assert np.all(np.isfinite(path.c[:tc]))


def test_scalar_kernel_collapses_exactly_at_ceil_r0_minus_one():
    # K = 2 I: kappa = 1, so the bounds are equalities: c_t = g / (r_t - 1), r_(t+1) = r_t - 1 and
    # the collapse round is ceil(r_0 - 1).
    n = 9
    rng = np.random.default_rng(0)
    y = rng.normal(size=n)
    eps = float(np.sum(y**2) / n / 5.3**2)  # r_0 = 5.3
    path = fixed_budget_path(np.full(n, 2.0), np.eye(n), y, eps, rounds=10)
    assert path.kappa == 1.0
    np.testing.assert_allclose(path.r[:5], 5.3 - np.arange(5), rtol=1e-12)
    np.testing.assert_allclose(path.c[:5], (2.0 / n) / (path.r[:5] - 1), rtol=1e-12)
    assert path.collapse_round == math.ceil(5.3 - 1)


def test_sparsification_ratios_increase_every_round():
    path, _ = _rbf_path()
    live = np.flatnonzero(np.isfinite(path.c))
    assert np.all(path.ratios[live] > 1)  # the larger eigenvalue is always kept more
    assert np.all(np.diff(path.ratios[live], axis=0) > 0)
    assert np.all(np.isnan(path.ratios[path.collapse_round:]))
    np.testing.assert_allclose(path.filters[live[-1]], np.prod([path.evals_normalised / (path.evals_normalised + c)
                                                                for c in path.c[live]], axis=0), rtol=1e-12)


def test_multi_output_and_distiller_wrapper():
    model = toy_distiller()
    Y = np.stack([TOY_Y, -0.5 * TOY_Y[::-1]], axis=1)
    path = fixed_budget_path(model.evals_, model.evecs_, Y, 0.01, 20)
    fit = KernelRidge(alpha=path.ridge[0], kernel="rbf", gamma=TOY_GAMMA).fit(TOY_X, Y).predict(TOY_X)
    np.testing.assert_allclose(path.fits[1], fit, rtol=1e-9, atol=1e-12)
    assert np.mean(np.sum((fit - Y) ** 2, axis=1)) == pytest.approx(0.01, rel=1e-9)
    wrapped = fixed_budget_path_from_distiller(model, 0.005, 20)
    direct, _ = _rbf_path(rounds=20)
    np.testing.assert_allclose(wrapped.c, direct.c, rtol=1e-10)
    assert wrapped.collapse_round == direct.collapse_round


def test_labels_inside_budget_collapse_at_round_zero():
    path, _ = _rbf_path(eps=10.0, rounds=3)
    assert path.collapse_round == 0 and np.all(np.isnan(path.c)) and np.all(path.fits[1:] == 0)


def test_bad_inputs():
    K = rbf_kernel(TOY_X, gamma=TOY_GAMMA)
    d, V = np.linalg.eigh(K)
    with pytest.raises(ValueError, match="eps"):
        fixed_budget_path(d, V, TOY_Y, 0.0, 5)
    with pytest.raises(ValueError, match="full"):
        fixed_budget_path(d[1:], V[:, 1:], TOY_Y, 0.01, 5)
    with pytest.raises(ValueError, match="positive definite"):
        fixed_budget_path(np.r_[0.0, d[1:]], V, TOY_Y, 0.01, 5)
    with pytest.raises(ValueError, match="rounds"):
        fixed_budget_path(d, V, TOY_Y, 0.01, 0)
    with pytest.raises(ValueError, match="collapse"):
        budget_multiplier(d / 11, V.T @ TOY_Y, budget=1e3)
