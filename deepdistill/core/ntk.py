"""A fully connected network in the NTK parameterisation (or the standard one), with its width as a parameter.

NTK parameterisation (Jacot, Gabriel & Hongler 2018, arXiv 1806.07572; the form of Lee et al. 2019,
arXiv 1902.06720, eq. 1). With ``x^0 = x`` (``d`` inputs), ``n_l`` units in layer ``l`` and every weight
and bias drawn ``N(0, 1)``::

    h^(l+1) = (sigma_l / sqrt(n_l)) W^(l+1) x^l + bias_std b^(l+1),      x^(l+1) = phi(h^(l+1))
    f(x)    = h^(L+1)                                                   (no activation on the output)

with ``sigma_0 = input_std`` on the first layer (the scale at which the network reads its inputs: a
larger value gives units whose transitions are sharper on the input's range, hence a kernel with more
detail) and ``sigma_l = weight_std`` on every later layer.

The scale ``sigma_l / sqrt(n_l)`` sits in the forward pass, not in the initialisation, so every
parameter moves by O(1 / sqrt(width)) in training while the function moves by O(1): as the width
grows the empirical NTK ``K(x, x') = <grad_theta f(x), grad_theta f(x')>`` stays O(1) and becomes
constant in training, and gradient training of the network becomes kernel regression with that
kernel (the lazy regime).

Standard parameterisation (``parameterization="standard"``, PyTorch's usual layout): the same
distribution at initialisation, ``W ~ N(0, sigma_l^2 / n_l)``, ``b ~ N(0, bias_std^2)``, no scale in the
forward pass. The function at initialisation has the same law, but the gradients (hence the empirical
NTK) grow with the width, so the same ridge means a different amount of regularisation at every width.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["NTKMLP", "ACTIVATIONS", "PARAMETERIZATIONS"]

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "erf": torch.erf}
PARAMETERIZATIONS = ("ntk", "standard")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return value


def _positive_float(name: str, value, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {need}; got {value!r}.")
    return float(value)


class NTKMLP(nn.Module):
    """An MLP ``in_features -> width x depth -> out_features`` in the NTK (or standard) parameterisation.

    Parameters
    ----------
    in_features : inputs per example (a 1-D input ``(n,)`` is read as ``(n, 1)``).
    width : units per hidden layer (> 0).
    out_features : outputs (1 for scalar regression).
    depth : hidden layers (>= 1).
    activation : ``"tanh"`` (default: smooth, so the lazy-regime corrections are regular), ``"erf"`` or ``"relu"``.
    weight_std : ``sigma_l`` of the hidden and output layers.
    input_std : ``sigma_0`` of the first layer (default: ``weight_std``).
    bias_std : the biases' scale (``0`` drops their effect but keeps them as parameters).
    parameterization : ``"ntk"`` or ``"standard"``.
    """

    def __init__(self, in_features: int, width: int, out_features: int = 1, *, depth: int = 1,
                 activation: str = "tanh", weight_std: float = 1.0, input_std: float | None = None,
                 bias_std: float = 1.0, parameterization: str = "ntk"):
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.width = _positive_int("width", width)
        self.out_features = _positive_int("out_features", out_features)
        self.depth = _positive_int("depth", depth)
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"`parameterization` must be one of {list(PARAMETERIZATIONS)}; got {parameterization!r}.")
        self.activation, self.parameterization = activation, parameterization
        self.weight_std = _positive_float("weight_std", weight_std)
        self.input_std = self.weight_std if input_std is None else _positive_float("input_std", input_std)
        self.bias_std = _positive_float("bias_std", bias_std, allow_zero=True)
        self._stds = [self.input_std] + [self.weight_std] * self.depth                # sigma_l per layer
        sizes = [self.in_features] + [self.width] * self.depth + [self.out_features]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out, std in zip(sizes[:-1], sizes[1:], self._stds):
            w, b = torch.randn(fan_out, fan_in), torch.randn(fan_out)   # N(0, 1): the NTK layout
            if parameterization == "standard":
                # The same law at initialisation, with the scales moved from the forward pass into the draw.
                w, b = w * (std / math.sqrt(fan_in)), b * self.bias_std
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def _layer(self, i: int, h: Tensor) -> Tensor:
        w, b, std = self.weights[i], self.biases[i], self._stds[i]
        if self.parameterization == "ntk":
            return (std / math.sqrt(w.shape[1])) * (h @ w.T) + self.bias_std * b           # (n, fan_out)
        return h @ w.T + b

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations ``x^L`` ``(n, width)`` (the output is a scaled linear map of them)."""
        if x.ndim == 1:
            x = x.unsqueeze(1)                                            # (n,) -> (n, 1)
        elif x.ndim > 2:
            x = x.flatten(1)                                              # (n, C, L) -> (n, C * L)
        if x.shape[1] != self.in_features:
            raise ValueError(f"input must be (n, {self.in_features}); got shape {tuple(x.shape)}.")
        phi = ACTIVATIONS[self.activation]
        h = x
        for i in range(self.depth):
            h = phi(self._layer(i, h))
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self._layer(self.depth, self.features(x))                 # (n, out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, width={self.width}, out_features={self.out_features}, "
                f"depth={self.depth}, activation={self.activation!r}, parameterization={self.parameterization!r}, "
                f"weight_std={self.weight_std:g}, input_std={self.input_std:g}, bias_std={self.bias_std:g}")
