"""Regression data with a known truth, for self-distillation with real-valued targets.

* :func:`ba_toy`: Borup & Andersen's toy problem ([BA21]'s public notebook, which gives [MFB20]'s
  example values): 11 points ``x = 0, 0.1, ..., 1`` with the noisy labels of
  :data:`kerneldistill.toy.TOY_Y`; risk against ``sin(2 pi x)`` on the 101 points ``x = 0, 0.01, ..., 1``.
  Their kernel is RBF with gamma 80 and ridge 0.2 (:mod:`kerneldistill.toy`).
* :func:`sine`: a seeded generator of ``y = f*(x) + noise``, ``x ~ U[0, 1]^dim``, with
  ``f*(x) = prod_j sin(2 pi x_j)`` (``sin(2 pi x)`` in one dimension) and Gaussian noise of standard
  deviation ``noise``. The test targets are the clean ``f*(x_test)``, so the test MSE is the exact
  risk ``E (f(x) - f*(x))^2`` (up to the test sample). An optional validation set carries noisy
  labels, like the training set (for early stopping or model selection).

Every array is float64 numpy; ``x`` is ``(n, dim)`` and ``y`` is ``(n,)``. Each part (train,
validation, test) draws from its own stream of ``numpy.random.default_rng([seed, part])``, so the test
set does not move when ``n_train`` changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RegressionData", "REGRESSION_DATASETS", "ba_toy", "sine", "sine_truth"]


@dataclass(frozen=True)
class RegressionData:
    """Training, validation and test sets of a regression problem with a known truth.

    ``y_test`` holds the CLEAN targets ``f*(x_test)``; ``y_train`` and ``y_val`` the noisy labels.
    ``noise`` is the noise standard deviation (``None`` when unknown, as for the toy's fixed labels).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    noise: float | None
    meta: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])


def sine_truth(x) -> np.ndarray:
    """``f*(x) = prod_j sin(2 pi x_j)`` for ``x`` of shape ``(n, dim)``; ``(n,)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`x` must be (n, dim); got shape {x.shape}.")
    return np.prod(np.sin(2.0 * np.pi * x), axis=1)


def _count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def sine(n_train: int = 64, noise: float = 0.5, *, dim: int = 1, n_val: int = 0, n_test: int = 200,
         seed: int = 0) -> RegressionData:
    """``y = prod_j sin(2 pi x_j) + noise * N(0, 1)`` at ``x ~ U[0, 1]^dim`` (see the module docstring).

    Parameters
    ----------
    n_train : training points (>= 1). noise : the noise standard deviation (>= 0).
    dim : input dimension, 1 or 2. n_val : noisy validation points (>= 0). n_test : clean test points (>= 1).
    seed : the data seed (train, validation and test each draw from their own stream).
    """
    n_train, n_val, n_test = _count("n_train", n_train, 1), _count("n_val", n_val, 0), _count("n_test", n_test, 1)
    seed = _count("seed", seed, 0)
    if dim not in (1, 2) or isinstance(dim, bool):
        raise ValueError(f"`dim` must be 1 or 2; got {dim!r}.")
    if not (isinstance(noise, (int, float)) and not isinstance(noise, bool) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"`noise` must be a finite standard deviation >= 0; got {noise!r}.")

    def draw(part: int, n: int, noisy: bool):
        rng = np.random.default_rng([seed, part])
        x = rng.uniform(0.0, 1.0, size=(n, dim))
        y = sine_truth(x)
        return x, (y + noise * rng.standard_normal(n) if noisy else y)

    x_train, y_train = draw(0, n_train, True)
    x_val, y_val = draw(1, n_val, True)
    x_test, y_test = draw(2, n_test, False)
    return RegressionData("sine", x_train, y_train, x_val, y_val, x_test, y_test, float(noise), meta={
        "source": f"sine(n_train={n_train}, noise={noise}, dim={dim}, n_val={n_val}, n_test={n_test}, seed={seed})",
        "truth": "prod_j sin(2 pi x_j)"})


def ba_toy() -> RegressionData:
    """[BA21]'s 11-point toy: the fixed labels, the 101-point risk grid and ``sin(2 pi x)`` on it (no validation)."""
    from kerneldistill.toy import TOY_X, TOY_Y, toy_eval_points, toy_truth

    x_eval = toy_eval_points()
    empty = np.zeros((0, 1))
    return RegressionData("ba_toy", np.array(TOY_X, dtype=np.float64), np.array(TOY_Y, dtype=np.float64), empty,
                          np.zeros(0), x_eval, toy_truth(x_eval), None, meta={
                              "source": "Borup & Andersen's toy (kerneldistill.toy)", "truth": "sin(2 pi x)",
                              "their_kernel": "rbf, gamma 80, ridge 0.2"})


#: Regression data sets by name (each a function returning :class:`RegressionData`).
REGRESSION_DATASETS = {"ba_toy": ba_toy, "sine": sine}
