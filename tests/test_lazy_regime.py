"""The full-batch ridge-to-init trainer against closed forms: ridge regression for a linear model, kernel
ridge self-distillation on the eNTK for a linearised network (the exact match of the bridge's part (a))."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from deepdistill.engine.lazy import fit_full_batch, full_batch_self_distillation
from deepdistill.core.linearize import linearize
from deepdistill.core.ntk import NTKMLP
from deepdistill.studies.weight_estimators import empirical_ntk_gram
from kerneldistill import KernelDistiller


def _data(n=10, p=7, seed=0):
    rng = np.random.default_rng(seed)
    x, xt = rng.uniform(0, 1, (n, 1)), rng.uniform(0, 1, (p, 1))
    y = np.sin(2 * np.pi * x[:, 0]) + 0.3 * rng.standard_normal(n)
    return x, y, xt


def test_linear_model_reaches_ridge_toward_its_initialisation():
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    theta0 = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20, generator=g, dtype=torch.float64)
    ridge = 0.7
    fit = fit_full_batch(model, x, y, ridge=ridge, tolerance_grad=1e-7)
    A = torch.cat([x, torch.ones(20, 1, dtype=torch.float64)], dim=1)             # theta = (w, b)
    exact = theta0 + torch.linalg.solve(A.T @ A + ridge * torch.eye(4, dtype=torch.float64), A.T @ (y - A @ theta0))
    got = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()])
    assert fit.converged and fit.grad_max <= 1e-7
    assert torch.linalg.norm(got - exact).item() <= fit.prediction_bound + 1e-14     # the stated bound holds
    assert torch.allclose(got, exact, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("subtract_initial", [True, False])
def test_linearised_self_distillation_is_kernel_ridge_self_distillation_on_the_entk(subtract_initial):
    x, y, xt = _data()
    torch.manual_seed(0)
    net = NTKMLP(1, 32).double()
    X, XT = torch.tensor(x), torch.tensor(xt)
    K, K_test = empirical_ntk_gram(net, X), empirical_ntk_gram(net, XT, X)
    f0_train = np.zeros(len(y)) if subtract_initial else net(X)[:, 0].detach().numpy()
    f0_test = np.zeros(len(xt)) if subtract_initial else net(XT)[:, 0].detach().numpy()
    weights, steps, ridge = [0.0, 0.5], 3, 0.3
    # With f(x; theta0) kept, the fit is f0 + kernel ridge on the residual targets y - f0(X).
    kernel = KernelDistiller("precomputed", ridge=ridge).fit(K, y - f0_train)
    closed_train = kernel.path(None, [1, 2, 3], gt_weights=weights) + f0_train
    closed_test = kernel.path(K_test, [1, 2, 3], gt_weights=weights) + f0_test
    lin = linearize(net, subtract_initial=subtract_initial)
    path = full_batch_self_distillation(lin, X, torch.tensor(y), ridge=ridge, gt_weights=weights, steps=steps,
                                        evaluate={"test": XT})
    assert path.train.shape == (2, 3, 10, 1) and path.evaluations["test"].shape == (2, 3, 7, 1)
    np.testing.assert_allclose(path.train[..., 0].numpy(), closed_train, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(path.evaluations["test"][..., 0].numpy(), closed_test, rtol=1e-6, atol=1e-7)


def test_every_step_restarts_from_theta0_and_the_model_is_left_there():
    x, y, _ = _data(8)
    torch.manual_seed(1)
    model = NTKMLP(1, 16).double()
    theta0 = [p.detach().clone() for p in model.parameters()]
    path = full_batch_self_distillation(model, torch.tensor(x), torch.tensor(y), ridge=0.5, gt_weights=[1.0, 0.0],
                                        steps=2)
    assert all(torch.equal(a, b) for a, b in zip(theta0, model.parameters()))
    # gt_weight 1 at step 2 fits the labels from theta0 again: the same fit as step 1, to the last bit.
    assert torch.equal(path.train[0, 1], path.train[0, 0])
    assert not torch.equal(path.train[1, 1], path.train[1, 0])
    assert path.all_converged and path.worst_fit.grad_max <= 1e-7


@pytest.mark.parametrize("ridge, error", [(0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                                          (math.inf, ValueError), ("1", TypeError), (True, TypeError)])
def test_ridge_must_be_positive(ridge, error):
    # kerneldistill's check_ridge is the one owner: a non-number is a TypeError, a bad number a ValueError,
    # with the same message as KernelDistiller's.
    from kerneldistill._validation import check_ridge as owner

    model = nn.Linear(1, 1).double()
    x, y = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with pytest.raises(error) as expected:
        owner(ridge)
    with pytest.raises(error, match="^`ridge` must be a (finite )?real number > 0") as got:
        fit_full_batch(model, x, y, ridge=ridge)
    assert str(got.value) == str(expected.value)
    with pytest.raises(error, match="ridge"):
        full_batch_self_distillation(model, x, y, ridge=ridge, gt_weights=[0.5], steps=2)


def test_steps_and_weights_are_checked():
    model = nn.Linear(1, 1).double()
    x, y = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="steps"):
        full_batch_self_distillation(model, x, y, ridge=1.0, gt_weights=[0.5], steps=0)
    with pytest.raises(ValueError, match="gt_weights"):
        full_batch_self_distillation(model, x, y, ridge=1.0, gt_weights=[], steps=2)
