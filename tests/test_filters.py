import math

import numpy as np
import pytest

from kerneldistill.filters import filter_diagonals, filter_path


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.9, 1.0])
def test_closed_form_equals_recursion(alpha):
    rng = np.random.default_rng(0)
    d = rng.gamma(0.5, size=30)
    steps = [1, 2, 3, 8, 25]
    b_rec, q_rec = filter_diagonals(d, 0.3, np.full(30, alpha), steps)
    b_cf, q_cf = filter_diagonals(d, 0.3, alpha, steps)
    np.testing.assert_allclose(b_cf, b_rec, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(q_cf, q_rec, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b_cf, d * q_cf, rtol=1e-12, atol=1e-14)


def test_limit_is_amplified_ridge_and_large_step():
    d = np.linspace(0.0, 5.0, 40)
    b, q = filter_diagonals(d, 0.2, 0.25, [400, math.inf])
    np.testing.assert_allclose(b[1], d / (d + 0.2 / 0.25), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b[0], b[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(q[0], q[1], rtol=0, atol=1e-12)


def test_path_matches_the_recursion_and_the_amplified_ridge():
    # Independent computations: the vectorised closed form against the step-by-step recursion (a
    # schedule takes the recursion path), and its limit against KRR with ridge / gt_weight.
    d = np.geomspace(1e-6, 10, 25)
    weights = [0.0, 0.3, 1.0]
    b, q = filter_path(d, 0.1, weights, [1, 5, math.inf])
    for i, w in enumerate(weights):
        b_rec, q_rec = filter_diagonals(d, 0.1, np.full(4, w), [1, 5])
        np.testing.assert_allclose(b[i, :2], b_rec, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(q[i, :2], q_rec, rtol=1e-12, atol=1e-15)
        expected_inf = np.zeros_like(d) if w == 0 else d / (d + 0.1 / w)
        np.testing.assert_allclose(b[i, 2], expected_inf, rtol=1e-12, atol=1e-15)


def test_bad_steps_and_schedule():
    with pytest.raises(ValueError, match="steps"):
        filter_diagonals([1.0], 0.1, 0.5, [0])
    with pytest.raises(TypeError, match="steps"):
        filter_diagonals([1.0], 0.1, 0.5, [1.5])
    with pytest.raises(ValueError, match="gt_weight"):
        filter_diagonals([1.0], 0.1, [0.5], [4])
    with pytest.raises(ValueError, match="math.inf"):
        filter_diagonals([1.0], 0.1, [0.5, 0.5], [math.inf])


def test_limit_outside_unit_interval_exists_only_when_contracting():
    d = np.array([0.5, 1.0, 3.0])
    lam = 1.0
    # gt_weight 1.5: |1 - 1.5| * 0.75 < 1, so the limit exists and equals KRR with ridge lam / 1.5.
    b, _ = filter_diagonals(d, lam, 1.5, [math.inf, 300])
    np.testing.assert_allclose(b[0], d / (d + lam / 1.5), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b[1], b[0], rtol=0, atol=1e-12)
    # gt_weight -0.5: |1.5| * 0.75 > 1, the recursion diverges: no limit, and a clear error.
    with pytest.raises(ValueError, match="limit does not exist for gt_weight"):
        filter_diagonals(d, lam, -0.5, [math.inf])
    b_large, _ = filter_diagonals(d, lam, -0.5, [60])
    assert np.abs(b_large).max() > 1e3
