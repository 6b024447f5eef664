"""The kernel-regime check (deepdistill.studies.regime) on the bridge's own cases, and its pieces."""
import numpy as np
import pytest
import torch

from deepdistill.studies.regime import (REGIME_THRESHOLD, bridge_case, closed_form_student, entk,
                                        kernel_regime_check, match_ridge)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _check(name, **overrides):
    case = bridge_case(name)
    expected = case.pop("expected")
    case.update(overrides)
    return expected, kernel_regime_check(**case)


@pytest.mark.slow
def test_wide_ntk_network_is_in_the_regime():
    expected, r = _check("wide_ntk")
    assert expected is True
    assert r.in_regime, r.verdict
    assert r.verdict.startswith("in the kernel regime (the kernel estimators apply)")
    # well inside, not at the edge: the bridge measured 2.5e-3 at width 1024 (mean over seeds and steps)
    assert r.deviation <= REGIME_THRESHOLD / 3
    assert r.kernel_change < 1e-2


@pytest.mark.slow
def test_wide_ntk_network_matched_ridge_recovers_the_trainers_ridge():
    _, r = _check("wide_ntk", ridge="match")
    assert r.in_regime, r.verdict
    # the lazy trainer's ridge is 1: matching the teacher's training error finds it (lazy: nearly linear)
    assert r.ridge_init == pytest.approx(1.0, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["standard_64", "adam", "mnist1d_ce"])
def test_bridge_cases_where_kernel_and_deep_part_are_not_in_the_regime(name):
    expected, r = _check(name)
    assert expected is False
    assert not r.in_regime, r.verdict
    assert r.verdict.startswith("not in the kernel regime (use the trained estimators")
    assert r.deviation > REGIME_THRESHOLD


def test_closed_form_matches_sklearn_two_step_and_entk_of_linear_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    lin = torch.nn.Linear(3, 1, bias=False).double()
    K = entk(lin, torch.as_tensor(X))
    np.testing.assert_allclose(K, X @ X.T, rtol=1e-12, atol=1e-12)   # the eNTK of a linear map is X X^T
    R = rng.standard_normal((12, 2))
    w, ridge = 0.3, 0.7
    A = np.linalg.inv(K + ridge * np.eye(12))
    teacher = K @ A @ R
    expect = K @ A @ (w * R + (1 - w) * teacher)
    np.testing.assert_allclose(closed_form_student(K, K, R, w, ridge), expect, rtol=1e-10, atol=1e-12)


def test_match_ridge_hits_the_target_and_is_monotone():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 5))
    K = X @ X.T + 0.1 * np.eye(20)
    R = rng.standard_normal((20, 1))
    for target in (0.05, 0.3):
        ridge, rule = match_ridge(K, R, target)
        fitted = K @ np.linalg.solve(K + ridge * np.eye(20), R)
        assert np.sum((fitted - R) ** 2) / 20 == pytest.approx(target, rel=1e-6)
        assert rule.startswith("match (teacher")
    # a target beyond what the kernel can leave (more than the data's own norm): clipped and said so
    _, rule = match_ridge(K, R, 10.0 * float(np.sum(R ** 2)))
    assert "ceiling" in rule


def test_bad_inputs_are_named():
    lin = torch.nn.Linear(1, 1).double()
    x = torch.zeros(4, 1, dtype=torch.float64)
    fit = lambda net, w, t: net   # noqa: E731
    with pytest.raises(ValueError, match="gt_weight"):
        kernel_regime_check(lin, fit, x, x, x, gt_weight=1.0)
    with pytest.raises(ValueError, match="outputs"):
        kernel_regime_check(lin, fit, x, x, x, outputs="logits")
    with pytest.raises(ValueError, match="ridge"):
        kernel_regime_check(lin, fit, x, x, x, ridge=-1)
    with pytest.raises(TypeError, match="fit"):
        kernel_regime_check(lin, None, x, x, x)
    with pytest.raises(ValueError, match="output"):
        kernel_regime_check(lin, fit, x, torch.zeros(4, 3, dtype=torch.float64), x)
