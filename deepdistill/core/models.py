"""Models for deep self-distillation: a plain-dict registry and one builder.

Every model has ``features(x) -> (n, h)`` (the penultimate activations, used by [M19]'s
penultimate-layer projection and by linear probes) and ``head`` (the final ``nn.Linear``), with
``forward(x) = head(features(x))``.

* ``"linear"``: logistic regression (features = the flattened input). Useful for exact tests.
* ``"mlp"``: flatten, ``depth`` x (Linear, ReLU) of width ``hidden`` (2 x 256), then the head.
* ``"cnn1d"``: the small 1-D CNN of the MNIST-1D authors (Greydanus & Kobak, arXiv 2011.14439,
  ``ConvBase``: three Conv1d layers of 25 channels, kernel 5/3/3, stride 2, ReLU); ~94% test
  accuracy on their 4000/1000 split (measured here: 94.2% and 92.9% for two seeds, Adam lr 1e-2,
  batch 100, 8000 steps on all 4000 training examples).
* ``"resnet18"``: ResNet-18 for 32x32 inputs as used in CIFAR work (kuangliu/pytorch-cifar, [BA21]
  and [ZS20] code): a 3x3 stride-1 stem and no max-pool, four stages of two BasicBlocks
  (64, 128, 256, 512 channels x ``width/64``), global average pool.
* ``"ntk_mlp"``: :class:`deepdistill.core.ntk.NTKMLP` (NTK or standard parameterisation, ``width``,
  ``depth``, tanh by default); ``features`` is its last hidden layer, and its output layer is scaled by
  ``weight_std / sqrt(width)`` rather than an ``nn.Linear`` head. The lazy-regime network of
  :mod:`deepdistill.studies.bridge`, also for regression (one output).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from deepdistill.core.ntk import NTKMLP

__all__ = ["MODELS", "build_model", "LinearClassifier", "MLP", "CNN1D", "CNN2D", "ResNet18", "ntk_mlp"]


def _flat_dim(input_shape) -> int:
    return int(math.prod(input_shape))


class LinearClassifier(nn.Module):
    """Multinomial logistic regression: ``features`` is the flattened input."""

    def __init__(self, input_shape, num_classes: int):
        super().__init__()
        self.head = nn.Linear(_flat_dim(input_shape), num_classes)

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)                                   # (n, d)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten, then ``depth`` hidden layers ``Linear -> ReLU`` of width ``hidden``, then the head.

    Defaults (2 x 256) follow the MNIST-1D authors' MLP baseline (``hidden_size`` 256 in their
    ``get_model_args``; ~68% test accuracy on their split with Adam lr 1e-2, batch 100, 8000 steps).
    """

    def __init__(self, input_shape, num_classes: int, *, hidden: int = 256, depth: int = 2):
        super().__init__()
        if depth < 1:
            raise ValueError(f"`depth` must be >= 1; got {depth}.")
        layers, d = [], _flat_dim(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.body = nn.Sequential(nn.Flatten(1), *layers)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)                                   # (n, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class CNN1D(nn.Module):
    """The MNIST-1D authors' ``ConvBase``: 3 x (Conv1d stride 2, ReLU), flatten, head.

    Input ``(n, C, L)`` or ``(n, L)`` (a channel axis is added). Features are the flattened last
    conv map, ``channels * L'`` values (125 for L = 40, 25 channels), as in the original.
    """

    def __init__(self, input_shape, num_classes: int, *, channels: int = 25):
        super().__init__()
        if len(input_shape) == 1:
            in_channels, length = 1, input_shape[0]
        elif len(input_shape) == 2:
            in_channels, length = input_shape
        else:
            raise ValueError(f"cnn1d needs `input_shape` (L,) or (C, L); got {tuple(input_shape)}.")
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(1),
        )
        with torch.no_grad():   # the flattened size depends on L; measure it rather than re-derive it
            feature_dim = self.body(torch.zeros(1, in_channels, length)).shape[1]
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)                                # (n, L) -> (n, 1, L)
        return self.body(x)                                   # (n, channels * L')

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class CNN2D(nn.Module):
    """A small CNN for small grey images (28 x 28 MNIST digits, dataset ``mnist_5k``): 2 x (Conv2d 3x3
    stride 2, ReLU), flatten, head; ``channels`` and ``2 * channels`` maps (about 20k parameters at the
    default 16 on 28 x 28), so that a CPU trains it in seconds. Input ``(n, C, H, W)`` or ``(n, H, W)``."""

    def __init__(self, input_shape, num_classes: int, *, channels: int = 16):
        super().__init__()
        if len(input_shape) == 2:
            input_shape = (1, *input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"cnn2d needs `input_shape` (H, W) or (C, H, W); got {tuple(input_shape)}.")
        c = int(channels)
        self.body = nn.Sequential(
            nn.Conv2d(input_shape[0], c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(1),
        )
        with torch.no_grad():   # the flattened size depends on H and W: measure it
            feature_dim = self.body(torch.zeros(1, *input_shape)).shape[1]
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)                                # (n, H, W) -> (n, 1, H, W)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18: 3x3 stride-1 stem, no max-pool, [2, 2, 2, 2] BasicBlocks.

    ``width`` is the first stage's channels (64 in the standard net; smaller for tests). Adaptive
    average pooling makes any spatial size >= 8 work (8x8 digits included).
    """

    def __init__(self, input_shape, num_classes: int, *, width: int = 64):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"resnet18 needs `input_shape` (C, H, W); got {tuple(input_shape)}.")
        in_channels = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages, in_planes = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**i
            stages.append(nn.Sequential(_BasicBlock(in_planes, planes, stride), _BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)   # (n, 8 * width)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def ntk_mlp(input_shape, num_classes: int, *, width: int = 512, depth: int = 1, activation: str = "tanh",
            weight_std: float = 1.0, input_std: float | None = None, bias_std: float = 1.0,
            parameterization: str = "ntk") -> NTKMLP:
    """:class:`deepdistill.core.ntk.NTKMLP` on the flattened input, ``num_classes`` outputs (1 for a scalar regression)."""
    return NTKMLP(_flat_dim(input_shape), width, num_classes, depth=depth, activation=activation, weight_std=weight_std,
                  input_std=input_std, bias_std=bias_std, parameterization=parameterization)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "linear": LinearClassifier,
    "mlp": MLP,
    "cnn1d": CNN1D,
    "cnn2d": CNN2D,
    "resnet18": ResNet18,
    "ntk_mlp": ntk_mlp,
}


def build_model(name: str, input_shape, num_classes: int, **kwargs) -> nn.Module:
    """Build ``MODELS[name](input_shape, num_classes, **kwargs)`` with clear errors.

    ``input_shape`` is the per-example shape (``DataSplits.input_shape``). Seed with
    ``torch.manual_seed`` before calling for reproducible initial weights.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODELS)}.")
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise ValueError(f"`input_shape` must be a tuple of ints (per-example shape); got {input_shape!r}.") from None
    if len(input_shape) == 0 or min(input_shape) < 1:
        raise ValueError(f"`input_shape` must be a non-empty tuple of positive ints; got {input_shape}.")
    num_classes = int(num_classes)
    if num_classes < 1:
        # Classes of a classifier (a data set has >= 2), or outputs of a regression (1 for scalar targets).
        raise ValueError(f"`num_classes` (classes, or outputs of a regression) must be >= 1; got {num_classes}.")
    try:
        return MODELS[name](input_shape, num_classes, **kwargs)
    except TypeError as err:
        raise TypeError(f"bad options for model {name!r}: {err}") from None
