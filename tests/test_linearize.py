"""Linearisation against an explicit Jacobian, the NTK-parameterised MLP, and what both refuse."""
import pytest
import torch
import torch.nn as nn
from torch.func import functional_call, jacrev

from deepdistill.core.linearize import CenteredModel, linearize
from deepdistill.core.ntk import NTKMLP

TOL = dict(rtol=1e-12, atol=1e-12)   # float64, a handful of products


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return NTKMLP(2, 5, out_features=2, depth=2, **kw).double()


def _explicit_jacobian(model, x):
    """(n * k, P): d f(x) / d theta for every trainable parameter, in model.named_parameters() order."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    n_out = x.shape[0] * model.out_features
    return torch.cat([jac[n].reshape(n_out, -1) for n in params], dim=1)


@pytest.mark.parametrize("subtract_initial", [False, True])
def test_linearisation_equals_f0_plus_explicit_jacobian_times_w(subtract_initial):
    model = _tiny()
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lin = linearize(model, subtract_initial=subtract_initial)
    assert torch.allclose(lin(x), torch.zeros(7, 2, dtype=torch.float64) if subtract_initial else model(x), **TOL)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for d in lin.delta:
            d.copy_(torch.randn(d.shape, generator=g, dtype=torch.float64))
    w = torch.cat([d.reshape(-1) for d in lin.delta])
    J = _explicit_jacobian(model, x)                                    # (7 * 2, P)
    expected = (J @ w).reshape(7, 2) + (0.0 if subtract_initial else model(x).detach())
    assert torch.allclose(lin(x), expected, **TOL)
    # Gradients flow through the Jacobian-vector product: d/dw 0.5 ||J w||^2 = J^T J w.
    out = lin(x)
    grad = torch.autograd.grad(0.5 * (out - (0.0 if subtract_initial else model(x).detach())).pow(2).sum(), list(lin.delta))
    assert torch.allclose(torch.cat([g_.reshape(-1) for g_ in grad]), J.T @ (J @ w), rtol=1e-10, atol=1e-10)


def test_linearize_trains_only_w_and_leaves_the_model_alone():
    model = _tiny()
    before = [p.detach().clone() for p in model.parameters()]
    lin = linearize(model)
    assert [p for p in lin.parameters() if p.requires_grad] == list(lin.delta)
    with torch.no_grad():
        for d in lin.delta:
            d.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    lin.train()
    assert not lin.base.training                                       # the linearisation is of eval mode


def test_linearize_refuses_running_statistics_and_untrainable_models():
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="running statistics"):
        linearize(bn)
    with pytest.raises(ValueError, match="running statistics"):
        CenteredModel(bn)
    # Without running statistics the buffers are constants: accepted.
    ok = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 1)).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    assert torch.allclose(linearize(ok)(x), ok.eval()(x), **TOL)
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        linearize(frozen)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        linearize(lambda x: x)


def test_centered_model_is_zero_at_init_and_follows_its_network():
    model = _tiny()
    x = torch.randn(5, 2, dtype=torch.float64)
    centred = CenteredModel(model)
    assert torch.allclose(centred(x), torch.zeros(5, 2, dtype=torch.float64), **TOL)
    with torch.no_grad():
        model.biases[-1].add_(0.5)                                     # the trained network moves ...
    assert torch.allclose(centred(x), torch.full((5, 2), 0.5 * model.bias_std, dtype=torch.float64), **TOL)
    x.mul_(2.0)                                                        # ... and an input changed in place is re-read
    assert torch.allclose(centred(x), model(x) - centred.initial(x), **TOL)


def test_ntk_and_standard_parameterisation_agree_at_init_and_scale_the_gradients():
    x = torch.rand(9, 2, dtype=torch.float64)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)           # float64 draws: no float32 rounding of the scaled weights
    try:
        ntk, std = _tiny(3, input_std=2.0), _tiny(3, input_std=2.0, parameterization="standard")
    finally:
        torch.set_default_dtype(default)
    assert torch.allclose(ntk(x), std(x), **TOL)                     # the same function from the same draws
    # The NTK layout keeps the N(0, 1) draws and scales in the forward pass: a hidden weight's gradient is
    # sigma / sqrt(fan_in) times the standard one.
    ntk(x).sum().backward()
    std(x).sum().backward()
    ratio = ntk.weights[1].grad / std.weights[1].grad
    assert torch.allclose(ratio, torch.full_like(ratio, 1.0 / 5 ** 0.5), rtol=1e-10)


@pytest.mark.parametrize("kw, match", [({"width": 0}, "width"), ({"width": -3}, "width"), ({"width": 2.5}, "width"),
                                       ({"width": 4, "depth": 0}, "depth"), ({"width": 4, "activation": "sin"}, "activation"),
                                       ({"width": 4, "parameterization": "mup"}, "parameterization"),
                                       ({"width": 4, "weight_std": 0.0}, "weight_std"),
                                       ({"width": 4, "input_std": -1.0}, "input_std")])
def test_ntk_mlp_refuses_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        NTKMLP(1, **kw)


def test_ntk_mlp_checks_its_input_shape():
    net = NTKMLP(2, 4)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        net(torch.zeros(3, 5))
    assert NTKMLP(1, 4)(torch.zeros(3)).shape == (3, 1)             # a 1-D input is (n, 1)
