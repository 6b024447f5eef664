"""The regression data sets: the BA toy's values, the sine generator's law, seeds and refusals."""
import numpy as np
import pytest

from deepdistill.core.regression import REGRESSION_DATASETS, ba_toy, sine, sine_truth
from kerneldistill.toy import TOY_X, TOY_Y


def test_ba_toy_is_borup_andersen_data_and_risk_grid():
    d = ba_toy()
    np.testing.assert_array_equal(d.x_train[:, 0], np.linspace(0, 1, 11))
    np.testing.assert_array_equal(d.x_train, TOY_X)
    np.testing.assert_array_equal(d.y_train, TOY_Y)
    assert d.y_train[0] == 0.38476636465198066 and d.y_train[-1] == 0.5589512650600734   # THEORY.md's values
    np.testing.assert_allclose(d.x_test[:, 0], np.arange(101) / 100, rtol=0, atol=1e-15)
    np.testing.assert_allclose(d.y_test, np.sin(2 * np.pi * d.x_test[:, 0]), rtol=0, atol=1e-15)
    assert d.x_val.shape == (0, 1) and d.noise is None


@pytest.mark.parametrize("dim", [1, 2])
def test_sine_shapes_truth_and_clean_test_targets(dim):
    d = sine(30, 0.2, dim=dim, n_val=5, n_test=40, seed=3)
    assert d.x_train.shape == (30, dim) and d.y_train.shape == (30,)
    assert d.x_val.shape == (5, dim) and d.x_test.shape == (40, dim) and d.dim == dim
    assert np.all((d.x_train >= 0) & (d.x_train <= 1))
    truth = np.prod(np.sin(2 * np.pi * d.x_test), axis=1)
    np.testing.assert_array_equal(d.y_test, truth)                      # the exact risk's reference
    np.testing.assert_array_equal(sine_truth(d.x_test), truth)


def test_sine_noise_has_the_stated_law():
    d = sine(20000, 0.5, seed=0)
    residual = d.y_train - sine_truth(d.x_train)
    assert abs(residual.mean()) < 4 * 0.5 / np.sqrt(20000)              # 4 standard errors
    assert residual.std() == pytest.approx(0.5, rel=0.03)
    np.testing.assert_array_equal(sine(50, 0.0, seed=1).y_train, sine_truth(sine(50, 0.0, seed=1).x_train))


def test_sine_seeds_and_independent_streams():
    a, b = sine(20, 0.3, seed=0, n_test=30), sine(20, 0.3, seed=0, n_test=30)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, sine(20, 0.3, seed=1).x_train)
    # the test set does not move with n_train
    np.testing.assert_array_equal(a.x_test, sine(50, 0.3, seed=0, n_test=30).x_test)


@pytest.mark.parametrize("kw, match", [({"n_train": 0}, "n_train"), ({"noise": -0.1}, "noise"),
                                       ({"noise": float("nan")}, "noise"), ({"dim": 3}, "dim"),
                                       ({"n_test": 0}, "n_test"), ({"n_val": -1}, "n_val"), ({"seed": -1}, "seed")])
def test_sine_refuses_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        sine(**kw)


def test_registry():
    assert set(REGRESSION_DATASETS) == {"ba_toy", "sine"}
