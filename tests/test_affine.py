"""The one affine-optimum routine: the vertex against a brute-force grid, the degenerate rule, and the
kernel and deep callers agreeing because they share it."""
import numpy as np
import pytest

from deepdistill.studies.weight_estimators import affine_optimal_weight
from kerneldistill.affine import DEGENERATE_RTOL, affine_vertex
from kerneldistill.optimal import StepQuadratic


def _path(seed=0, n=50, k=3):
    rng = np.random.default_rng(seed)
    f0, f1, r = rng.standard_normal((n, k)), rng.standard_normal((n, k)), rng.standard_normal((n, k))
    return f0, f1, r


def test_vertex_is_the_argmin_of_the_squared_error_along_the_path():
    f0, f1, r = _path()
    D, E = f1 - f0, r - f0
    alpha, degenerate = affine_vertex(float(np.sum(D * E)), float(np.sum(D * D)))
    grid = np.linspace(-3.0, 4.0, 70001)                               # spacing 1e-4
    risks = [np.sum((f0 + a * D - r) ** 2) for a in grid]
    assert not degenerate
    assert alpha == pytest.approx(grid[int(np.argmin(risks))], abs=1e-4)


def test_degenerate_path_returns_the_labels_end_point():
    assert affine_vertex(0.3, 0.0) == (1.0, True)                      # D = 0: every weight is optimal
    # A distance formed by subtraction from risks of size 1 is only known to ~1e-16 of them.
    assert affine_vertex(1e-15, 0.5 * DEGENERATE_RTOL, scale=1.0) == (1.0, True)
    # The same distance computed from the difference itself is exact: not degenerate.
    alpha, degenerate = affine_vertex(1e-15, 0.5 * DEGENERATE_RTOL, scale=0.0)
    assert not degenerate and alpha == pytest.approx(1e-15 / (0.5 * DEGENERATE_RTOL), rel=1e-12)


def test_kernel_and_deep_callers_share_the_vertex():
    # The same path seen by kerneldistill's StepQuadratic (risks and the stable gain / distance) and by
    # deepdistill's two-run estimate (two prediction arrays): one routine, one answer.
    f0, f1, r = _path(seed=1)
    e0, e1, D = f0 - r, f1 - r, f1 - f0
    quad = StepQuadratic(np.mean(e0**2), np.mean(e1**2), np.mean(e0 * e1), gain=-np.mean(D * e0),
                         dist2=np.mean(D**2))
    deep = affine_optimal_weight(f0, f1, r, criterion="mse", bounds=None)
    assert deep.unconstrained == pytest.approx(quad.argmin(), rel=1e-12)
    assert deep.criterion_at_estimate == pytest.approx(quad(quad.argmin()), rel=1e-12)
    # Identical end points: both report the labels end point.
    assert StepQuadratic(1.0, 1.0, 1.0, gain=0.0, dist2=0.0).argmin() == 1.0
    same = affine_optimal_weight(f0, f0, r, criterion="mse", bounds=None)
    assert same.degenerate and same.unconstrained == 1.0
