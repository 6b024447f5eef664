"""A network linearised in its parameters around its initialisation, and a network centred at it.

Linearisation (Lee et al. 2019, arXiv 1902.06720, eq. 5): for a model ``f(x; theta)`` and its
parameters ``theta0`` at the time of the call,

    f_lin(x; w) = f(x; theta0) + J(x) w,        J(x) = d f(x; theta) / d theta  at theta0,   w = theta - theta0

with ``w`` the trainable parameters, starting at 0. ``J(x) w`` is one Jacobian-vector product
(``torch.func.jvp``, forward mode), so the ``n x P`` Jacobian is never formed: a forward pass costs
about two of the model's. Trained with a sum-of-squares loss and the ridge ``ridge * ||w||^2``, the
linearised model is kernel ridge regression with the empirical NTK at ``theta0``,
``K(x, x') = <J(x), J(x')>`` (``docs/theory.md`` section 2 with that kernel): the regime in which the kernel
theory of self-distillation is exact for a network.

``subtract_initial=True`` drops ``f(x; theta0)``, so the initial function is zero and the fit is
exactly ``KernelRidge(kernel="precomputed", alpha=ridge)`` on the eNTK Gram matrix, with no offset.
:class:`CenteredModel` does the same for the real (non-linearised) network,
``f_c(x; theta) = f(x; theta) - f(x; theta0)``: the centring trick of lazy-training studies
(Chizat, Oyallon & Bach 2019, arXiv 1812.07956), which keeps the random initial function out of
the comparison with the kernel closed form.

Buffers. The linearisation is taken of the model in eval mode (no dropout), with its buffers read
as constants. A model whose buffers change in training (batch-norm running statistics) is refused:
its function at ``theta0`` would drift while ``w`` trains, which no linearisation describes.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch import Tensor
from torch.func import functional_call, jvp

__all__ = ["LinearizedModel", "CenteredModel", "linearize", "check_no_running_statistics"]


def check_no_running_statistics(model: nn.Module, what: str = "linearize") -> None:
    """Refuse a model with normalisation layers that update running statistics in training."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what}: `model` must be a torch.nn.Module; got {type(model).__name__}.")
    tracking = [name or type(model).__name__ for name, m in model.named_modules()
                if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    if tracking:
        raise ValueError(
            f"{what}: `model` has layers whose buffers change in training (running statistics of "
            f"{', '.join(tracking[:4])}{' ...' if len(tracking) > 4 else ''}); the function at theta0 would drift "
            "while the linearised parameters train. Use a model without batch normalisation, or build its "
            "norm layers with track_running_stats=False.")


def _frozen_copy(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    base = copy.deepcopy(model).eval()
    if not any(p.requires_grad for p in base.parameters()):
        raise ValueError("`model` has no trainable parameter (requires_grad=True): there is nothing to linearise.")
    return base


class LinearizedModel(nn.Module):
    """``f_lin(x; w) = [f(x; theta0)] + J(x) w``; the only trainable parameters are ``w`` (zeros at first).

    ``base`` is a frozen copy of the model at ``theta0`` (its parameters do not require gradients);
    ``delta`` holds ``w``, one tensor per trainable parameter of the model, in its order.
    """

    def __init__(self, model: nn.Module, *, subtract_initial: bool = False):
        super().__init__()
        check_no_running_statistics(model)
        base = _frozen_copy(model)
        self.subtract_initial = bool(subtract_initial)
        self._names = [n for n, p in base.named_parameters() if p.requires_grad]
        self.delta = nn.ParameterList([nn.Parameter(torch.zeros_like(p)) for n, p in base.named_parameters()
                                       if p.requires_grad])
        base.requires_grad_(False)
        self.base = base

    def train(self, mode: bool = True):
        # The linearisation is of the model in eval mode: the frozen base never switches to training.
        self.training = mode
        self.base.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        params = dict(self.base.named_parameters())
        buffers = dict(self.base.named_buffers())
        primals = {n: params[n] for n in self._names}                      # theta0, frozen
        tangents = {n: d for n, d in zip(self._names, self.delta)}         # w, trainable

        def f(p):
            return functional_call(self.base, ({**params, **p}, buffers), (x,))

        f0, jw = jvp(f, (primals,), (tangents,))                           # f(x; theta0), J(x) w
        return jw if self.subtract_initial else f0 + jw


class CenteredModel(nn.Module):
    """``f_c(x; theta) = f(x; theta) - f(x; theta0)``: the model, minus a frozen copy of it at ``theta0``.

    A real (non-linearised) network whose initial function is zero; ``model`` is trained in place.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        check_no_running_statistics(model, what="CenteredModel")
        initial = _frozen_copy(model).requires_grad_(False)
        self.model = model
        self.initial = initial
        self._cache = None         # (a copy of the last input, f(x; theta0) there)

    def train(self, mode: bool = True):
        self.training = mode
        self.model.train(mode)
        self.initial.eval()
        return self

    def _initial_outputs(self, x: Tensor) -> Tensor:
        # Full-batch training evaluates the same inputs hundreds of times: f(x; theta0) is kept for the
        # last input seen, keyed by its CONTENT (a private copy, compared exactly), never by its identity or
        # address: a freed input's memory may be reused by a new tensor of the same shape, and an id or
        # data_ptr key then returns the old input's outputs. The comparison reads x once (n x d), far less
        # than a forward pass; the cache saved about 7% of a fit of the bridge's toy at width 4096 (5.8 s
        # against 6.2 s without it, 418 L-BFGS iterations, one thread on a loaded 2-core machine).
        cached = self._cache
        if (cached is None or cached[0].shape != x.shape or cached[0].dtype != x.dtype
                or cached[0].device != x.device or not torch.equal(cached[0], x)):
            with torch.no_grad():
                self._cache = cached = (x.detach().clone(), self.initial(x))
        return cached[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) - self._initial_outputs(x)


def linearize(model: nn.Module, *, subtract_initial: bool = False) -> LinearizedModel:
    """The model linearised in its parameters around their current values ``theta0`` (see the module docstring).

    ``subtract_initial=True`` gives ``J(x) w`` (initial function zero). The returned module's trainable
    parameters are ``w`` only; ``model`` itself is copied, not changed.
    """
    return LinearizedModel(model, subtract_initial=subtract_initial)
