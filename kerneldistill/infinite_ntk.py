"""The infinite-width neural tangent kernel of ``deepdistill.core.ntk.NTKMLP``, in numpy, and its finite-width eNTK.

The network (``deepdistill/core/ntk.py``, NTK parameterisation, every weight and bias ``N(0, 1)``; Jacot,
Gabriel & Hongler 2018, arXiv 1806.07572; Lee et al. 2019, arXiv 1902.06720, eq. 1)::

    h^1     = (sigma_0 / sqrt(d)) W^1 x + beta b^1,         x^l = phi(h^l)        (l = 1..L, L = depth)
    h^(l+1) = (sigma_w / sqrt(n)) W^(l+1) x^l + beta b^(l+1),   f(x) = h^(L+1)    (no output activation)

with ``sigma_0 = input_std``, ``sigma_w = weight_std``, ``beta = bias_std``, ``n = width``. As ``n -> inf``
the empirical NTK ``Theta_n(x, x') = <grad_theta f(x), grad_theta f(x')>`` at initialisation converges
(in probability, with fluctuations of order ``n^(-1/2)``) to the deterministic kernel ``Theta`` of the
recursion (Jacot et al. 2018, Theorem 1; Lee et al. 2019, eqs. 4-5)::

    Sigma^1(x, x')     = sigma_0^2 <x, x'> / d + beta^2,                Theta^1 = Sigma^1
    Sigma^(l+1)(x, x') = sigma_w^2 E[phi(u) phi(v)]   + beta^2
    dSigma^(l+1)(x, x')= sigma_w^2 E[phi'(u) phi'(v)]
    Theta^(l+1)        = Sigma^(l+1) + Theta^l * dSigma^(l+1)           Theta = Theta^(L+1)

where ``(u, v) ~ N(0, [[Sigma^l(x, x), Sigma^l(x, x')], [Sigma^l(x, x'), Sigma^l(x', x')]])``. This is
the kernel of ONE output: the trace eNTK over ``k`` outputs (``deepdistill``'s ``empirical_ntk_gram``)
converges to ``k * Theta``.

The Gaussian expectations (the "dual activations"):

* ``erf``: ``E[erf(u) erf(v)] = (2/pi) arcsin(2 s12 / sqrt((1 + 2 s11)(1 + 2 s22)))`` (Williams 1997) and
  ``E[erf'(u) erf'(v)] = (4/pi) / sqrt((1 + 2 s11)(1 + 2 s22) - 4 s12^2)``.
* ``relu``: the arc-cosine kernels of Cho & Saul 2009 with ``cos t = s12 / sqrt(s11 s22)``:
  ``E[relu(u) relu(v)] = sqrt(s11 s22) (sin t + (pi - t) cos t) / (2 pi)``, ``E[relu'(u) relu'(v)] = (pi - t) / (2 pi)``
  (a point whose pre-activation variance is 0, possible only with ``bias_std = 0`` and ``x = 0``,
  gives ``relu = 0`` and, by the convention ``relu'(0) = 0`` of torch, ``E[relu' relu'] = 0``).
* ``tanh``: no closed form; tensor-product Gauss-Hermite quadrature of order ``m`` over the bivariate
  Gaussian, written through its Cholesky factor ``u = sqrt(s11) z1``,
  ``v = sqrt(s22) (rho z1 + sqrt(1 - rho^2) z2)``, ``z1, z2 ~ N(0, 1)`` independent (the pair ordered with the
  smaller variance first, so that ``K(x, y)`` and ``K(y, x)`` are the same sum), node pairs whose weight
  product is below 1e-18 dropped. ``tanh(a z)`` has poles at ``z = +- i pi / (2a)``, so the error falls only
  like ``exp(-c sqrt(m))``, slower for larger pre-activation variances. Measured against order 256 (the
  largest relative difference of the Gram matrix): at the default order 128, 4.3e-9 on 20 inputs in
  ``[-1, 1]^3`` at depth 2 and 4.1e-8 on 30 inputs in ``[0, 1]`` with the bridge's network (where the optimal
  weight moves by 8e-7 from order 128 to 192); order 64: 5e-6 and 2e-5; order 16: 1e-2
  (``tests/test_infinite_ntk.py::test_tanh_quadrature_converges`` holds order 128 to 1e-7).

Finite width: :func:`random_ntk_mlp` draws the parameters as ``NTKMLP`` does (same layout: ``W`` is
``(fan_out, fan_in)``) and :func:`empirical_ntk` computes ``Theta_n`` by the explicit backward pass,
layer by layer, ``Theta_n(x, x') = sum_l <delta^l(x), delta^l(x')> (sigma_{l-1}^2 <x^(l-1), x'^(l-1)> / n_{l-1} + beta^2)``
with ``delta^l = df/dh^l`` (the ``W^l`` block gives the first term, ``b^l`` the ``beta^2`` one), without
ever forming a Jacobian. ``tests/test_infinite_ntk.py`` checks it against torch's ``empirical_ntk_gram``
of ``NTKMLP`` with the same weights.

Use with :class:`kerneldistill.KernelDistiller` as a precomputed kernel (fast, exact and within its
scikit-learn contract)::

    ntk = InfiniteNTK(depth=1, activation="tanh")
    model = KernelDistiller("precomputed", ridge=1.0).fit(ntk(X), y)
    model.predict(ntk(X_test, X))

or as a callable kernel, ``KernelDistiller(ntk, ...)`` (scikit-learn then evaluates it pair by pair: slow,
small data only). :func:`infinite_width_gt_weight` gives the optimal ground-truth weight of a student with
this kernel (no network at all).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from ._validation import check_finite_array, check_ridge

__all__ = ["NTK_ACTIVATIONS", "DEFAULT_QUADRATURE_ORDER", "InfiniteNTK", "infinite_ntk", "nngp_and_ntk",
           "random_ntk_mlp", "empirical_ntk", "infinite_width_gt_weight"]

NTK_ACTIVATIONS = ("erf", "relu", "tanh")
DEFAULT_QUADRATURE_ORDER = 128
# Pairs per block of the quadrature: a block holds pairs * order^2 float64 values (~ 20 MB at order 48).
_QUAD_BLOCK_VALUES = 2_500_000


def _check_scale(name: str, value, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(float(value)) or value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {need}; got {value!r}.")
    return float(value)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def _check_activation(activation) -> str:
    if activation not in NTK_ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {list(NTK_ACTIVATIONS)}; got {activation!r}.")
    return activation


def _as_inputs(X, name: str) -> np.ndarray:
    X = check_finite_array(X, name=name, ndim=(1, 2))
    X = np.asarray(X, dtype=np.float64)
    return X[:, None] if X.ndim == 1 else X                              # (n,) -> (n, 1), as NTKMLP reads it


# --------------------------------------------------------------------------------------------------
# Dual activations: E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, [[s11, s12], [s12, s22]])


def _dual_erf(s11, s22, s12):
    a, b = 1.0 + 2.0 * s11, 1.0 + 2.0 * s22
    rho = np.clip(2.0 * s12 / np.sqrt(a * b), -1.0, 1.0)
    # a b - 4 s12^2 >= 1 + 2 (s11 + s22) > 0 whenever |s12| <= sqrt(s11 s22): never 0
    return (2.0 / np.pi) * np.arcsin(rho), (4.0 / np.pi) / np.sqrt(a * b - 4.0 * s12 ** 2)


def _dual_relu(s11, s22, s12):
    norm = np.sqrt(s11 * s22)
    safe = np.where(norm > 0, norm, 1.0)
    cos = np.clip(s12 / safe, -1.0, 1.0)
    theta = np.arccos(cos)
    k0 = np.where(norm > 0, (np.pi - theta) / (2.0 * np.pi), 0.0)
    k1 = norm * (np.sin(theta) + (np.pi - theta) * cos) / (2.0 * np.pi)
    return k1, k0


# Products of weights below this (the tails beyond |z| ~ 9) change an expectation of a function bounded by 1
# by less than order^2 * 1e-18 in all: they are dropped, which removes ~3/4 of the 2-D grid at order 128.
_WEIGHT_FLOOR = 1e-18


def _hermite(order: int):
    """Nodes and weights of probabilists' Gauss-Hermite quadrature, normalised to ``E_{z ~ N(0,1)}``."""
    z, w = np.polynomial.hermite_e.hermegauss(order)
    return z, w / math.sqrt(2.0 * math.pi)


def _hermite_grid(order: int):
    """The tensor-product grid ``(i, z2, w_i w_j)`` with products of weights below ``_WEIGHT_FLOOR`` dropped."""
    z, w = _hermite(order)
    i, j = np.nonzero(np.outer(w, w) >= _WEIGHT_FLOOR)
    return z, i, z[j], w[i] * w[j]


def _tanh_and_derivative(h):
    t = np.tanh(h)
    return t, 1.0 - t * t                                # one tanh per node serves both expectations


def _dual_quadrature(s11, s22, s12, order: int, phi_dphi=_tanh_and_derivative):
    """Both expectations by tensor-product Gauss-Hermite quadrature; ``phi_dphi(h) -> (phi(h), phi'(h))``."""
    z, i1, z2, w12 = _hermite_grid(order)
    s11, s22, s12 = (np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(s11, s22, s12))
    shape = s11.shape
    # Both expectations are symmetric in (u, v) but the Cholesky rule is not: order every pair the same way
    # (smaller variance first), so that K(x, y) and K(y, x) are the same sum, bit for bit.
    s11, s22 = np.minimum(s11, s22).ravel(), np.maximum(s11, s22).ravel()
    s12 = s12.ravel()
    a, b = np.sqrt(s11), np.sqrt(s22)
    rho = np.clip(s12 / np.where(a * b > 0, a * b, 1.0), -1.0, 1.0)
    c = np.sqrt(1.0 - rho ** 2)
    z1 = z[i1]
    k, kd = np.empty_like(s11), np.empty_like(s11)
    block = max(1, _QUAD_BLOCK_VALUES // len(w12))
    for s in range(0, s11.size, block):
        sl = slice(s, s + block)
        fu, du = phi_dphi(a[sl, None] * z[None, :])                                      # (P, m) at u = a z1
        fv, dv = phi_dphi(b[sl, None] * (rho[sl, None] * z1[None, :] + c[sl, None] * z2[None, :]))   # (P, G) at v
        k[sl] = (fu[:, i1] * fv) @ w12
        kd[sl] = (du[:, i1] * dv) @ w12
    return k.reshape(shape), kd.reshape(shape)


def _dual(activation: str, s11, s22, s12, order: int):
    if activation == "erf":
        return _dual_erf(s11, s22, s12)
    if activation == "relu":
        return _dual_relu(s11, s22, s12)
    return _dual_quadrature(s11, s22, s12, order)


# --------------------------------------------------------------------------------------------------
# The infinite-width kernels


def nngp_and_ntk(X, Y=None, *, depth: int = 1, activation: str = "tanh", weight_std: float = 1.0,
                 input_std: float | None = None, bias_std: float = 1.0,
                 quadrature_order: int = DEFAULT_QUADRATURE_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """``(Sigma^(L+1)(X, Y), Theta(X, Y))``: the output's NNGP kernel and the NTK of ``NTKMLP`` at infinite width.

    ``X`` ``(n, d)`` (a 1-D ``X`` is ``(n, 1)``), ``Y`` ``(m, d)`` or ``None`` (``Y = X``; the result is then
    symmetrised exactly). The parameters are those of ``NTKMLP`` (``input_std=None``: ``weight_std``).
    ``quadrature_order``: Gauss-Hermite nodes per dimension, used by ``tanh`` only. See the module docstring.
    """
    X = _as_inputs(X, "X")
    Y = X if Y is None else _as_inputs(Y, "Y")
    if Y.shape[1] != X.shape[1]:
        raise ValueError(f"`X` and `Y` must have the same number of features; got {X.shape[1]} and {Y.shape[1]}.")
    depth = _check_int("depth", depth, 1)
    activation = _check_activation(activation)
    sw = _check_scale("weight_std", weight_std)
    s0 = sw if input_std is None else _check_scale("input_std", input_std)
    beta2 = _check_scale("bias_std", bias_std, allow_zero=True) ** 2
    order = _check_int("quadrature_order", quadrature_order, 2)
    d = X.shape[1]
    symmetric = Y is X
    # Sigma^1 on the pairs and on each point's own variance (the diagonals drive the expectations).
    c = (s0 ** 2 / d) * (X @ Y.T) + beta2                                           # (n, m)
    # With Y = X the variances are the Gram's own diagonal, bit for bit: then s12 / sqrt(s11 s22) is exactly 1
    # on the diagonal (sqrt(c * c) == c in IEEE arithmetic), where arccos would turn a round-off of 1e-16 into
    # an angle of 1e-8 (ReLU).
    qx = np.diag(c).copy() if symmetric else (s0 ** 2 / d) * np.einsum("ij,ij->i", X, X) + beta2   # (n,)
    qy = qx if symmetric else (s0 ** 2 / d) * np.einsum("ij,ij->i", Y, Y) + beta2   # (m,)
    theta = c.copy()
    for _ in range(depth):
        s11, s22 = np.broadcast_to(qx[:, None], c.shape), np.broadcast_to(qy[None, :], c.shape)
        k, kd = _dual(activation, s11, s22, c, order)
        kx, _ = _dual(activation, qx, qx, qx, order)
        ky = kx if symmetric else _dual(activation, qy, qy, qy, order)[0]
        c, theta = sw ** 2 * k + beta2, sw ** 2 * k + beta2 + theta * (sw ** 2 * kd)
        qx, qy = sw ** 2 * kx + beta2, sw ** 2 * ky + beta2
    if symmetric:
        c, theta = 0.5 * (c + c.T), 0.5 * (theta + theta.T)
    return c, theta


def infinite_ntk(X, Y=None, **params) -> np.ndarray:
    """The infinite-width NTK ``Theta(X, Y)`` of ``NTKMLP`` (one output); ``params`` as :func:`nngp_and_ntk`."""
    return nngp_and_ntk(X, Y, **params)[1]


@dataclass(frozen=True)
class InfiniteNTK:
    """The infinite-width NTK of ``NTKMLP`` with fixed parameters, as a kernel object.

    ``ntk(X)`` is the Gram matrix, ``ntk(X, Y)`` the cross kernel (for ``KernelDistiller("precomputed")``).
    Two 1-D arrays ``ntk(x, y)`` are two rows and give a number, so the object is also a scikit-learn callable
    kernel (``KernelDistiller(ntk)``; evaluated pair by pair: slow). ``ntk(x)`` with a 1-D ``x`` reads ``(n, 1)``.
    """

    depth: int = 1
    activation: str = "tanh"
    weight_std: float = 1.0
    input_std: float | None = None
    bias_std: float = 1.0
    quadrature_order: int = DEFAULT_QUADRATURE_ORDER

    def __post_init__(self):
        _check_int("depth", self.depth, 1)
        _check_activation(self.activation)
        _check_scale("weight_std", self.weight_std)
        if self.input_std is not None:
            _check_scale("input_std", self.input_std)
        _check_scale("bias_std", self.bias_std, allow_zero=True)
        _check_int("quadrature_order", self.quadrature_order, 2)

    def params(self) -> dict:
        return {"depth": self.depth, "activation": self.activation, "weight_std": self.weight_std,
                "input_std": self.input_std, "bias_std": self.bias_std, "quadrature_order": self.quadrature_order}

    def __call__(self, X, Y=None):
        if Y is not None and np.ndim(X) == 1 and np.ndim(Y) == 1:
            # scikit-learn's callable protocol: two rows -> a number (pass 1-D data as (n, 1) for a Gram matrix)
            return float(infinite_ntk(np.asarray(X)[None, :], np.asarray(Y)[None, :], **self.params())[0, 0])
        return infinite_ntk(X, Y, **self.params())


# --------------------------------------------------------------------------------------------------
# Finite width: the parameters of NTKMLP and its empirical NTK by the explicit backward pass


def random_ntk_mlp(in_features: int, width: int, *, depth: int = 1, out_features: int = 1,
                   rng=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W^1, b^1), ..., (W^(L+1), b^(L+1))]``, every entry ``N(0, 1)`` (``NTKMLP``'s draw and layout).

    ``W^l`` is ``(fan_out, fan_in)``; ``rng``: a ``numpy.random.Generator`` or a seed.
    """
    in_features, width = _check_int("in_features", in_features, 1), _check_int("width", width, 1)
    depth, out_features = _check_int("depth", depth, 1), _check_int("out_features", out_features, 1)
    rng = np.random.default_rng(rng)
    sizes = [in_features] + [width] * depth + [out_features]
    return [(rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out))
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]


_PHI = {"erf": (erf, lambda h: (2.0 / math.sqrt(math.pi)) * np.exp(-h * h)),
        "relu": (lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(np.float64)),   # relu'(0) = 0, as torch
        "tanh": (np.tanh, lambda h: 1.0 - np.tanh(h) ** 2)}


def _forward(params, X, activation, stds, beta):
    """Pre-activations ``h^l`` and activations ``x^(l-1)`` (the layers' inputs) of every layer."""
    phi = _PHI[activation][0]
    inputs, pre = [X], []
    for i, (W, b) in enumerate(params):
        h = (stds[i] / math.sqrt(W.shape[1])) * (inputs[-1] @ W.T) + beta * b
        pre.append(h)
        if i < len(params) - 1:
            inputs.append(phi(h))
    return inputs, pre


def _deltas(params, pre, activation, stds, output: int):
    """``delta^l = d f_output / d h^l`` for every layer, last first reversed to layer order."""
    dphi = _PHI[activation][1]
    n = pre[-1].shape[0]
    delta = np.zeros((n, params[-1][0].shape[0]))
    delta[:, output] = 1.0
    out = [delta]
    for i in range(len(params) - 1, 0, -1):                    # from h^(i+1) back to h^i
        W = params[i][0]
        delta = ((stds[i] / math.sqrt(W.shape[1])) * (delta @ W)) * dphi(pre[i - 1])
        out.append(delta)
    return out[::-1]


def empirical_ntk(params, X, Y=None, *, activation: str = "tanh", weight_std: float = 1.0,
                  input_std: float | None = None, bias_std: float = 1.0) -> np.ndarray:
    """The trace eNTK ``sum_k <grad_theta f_k(X), grad_theta f_k(Y)>`` of an ``NTKMLP`` with parameters ``params``.

    ``params``: as :func:`random_ntk_mlp` (or an ``NTKMLP``'s ``weights``/``biases`` as numpy). Computed
    layer by layer (module docstring), in float64; ``Y=None`` gives the symmetric Gram matrix of ``X``.
    """
    activation = _check_activation(activation)
    sw = _check_scale("weight_std", weight_std)
    s0 = sw if input_std is None else _check_scale("input_std", input_std)
    beta = _check_scale("bias_std", bias_std, allow_zero=True)
    if not isinstance(params, (list, tuple)) or len(params) < 2:
        raise ValueError(f"`params` must be a list of (W, b) per layer, at least two layers; got {type(params).__name__}.")
    params = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)) for W, b in params]
    for i, (W, b) in enumerate(params):
        if W.ndim != 2 or b.shape != (W.shape[0],) or (i and W.shape[1] != params[i - 1][0].shape[0]):
            raise ValueError(f"`params` layer {i}: expected W (fan_out, fan_in) chained to the previous layer and "
                             f"b (fan_out,); got W {W.shape}, b {b.shape}.")
    X = _as_inputs(X, "X")
    Yv = X if Y is None else _as_inputs(Y, "Y")
    for name, A in (("X", X), ("Y", Yv)):
        if A.shape[1] != params[0][0].shape[1]:
            raise ValueError(f"`{name}` must be (n, {params[0][0].shape[1]}); got shape {A.shape}.")
    stds = [s0] + [sw] * (len(params) - 1)
    in_x, pre_x = _forward(params, X, activation, stds, beta)
    in_y, pre_y = (in_x, pre_x) if Y is None else _forward(params, Yv, activation, stds, beta)
    # The input Grams of every layer (the W^l blocks' factor) do not depend on the output.
    feats = [(stds[i] ** 2 / params[i][0].shape[1]) * (in_x[i] @ in_y[i].T) + beta ** 2 for i in range(len(params))]
    gram = np.zeros((X.shape[0], Yv.shape[0]))
    for k in range(params[-1][0].shape[0]):
        dx = _deltas(params, pre_x, activation, stds, k)
        dy = dx if Y is None else _deltas(params, pre_y, activation, stds, k)
        for i in range(len(params)):
            gram += (dx[i] @ dy[i].T) * feats[i]
    return 0.5 * (gram + gram.T) if Y is None else gram


# --------------------------------------------------------------------------------------------------
# The optimal weight with this kernel


def infinite_width_gt_weight(X_train, y_train, X_test, reference, *, ridge: float, step: int = 2,
                             kernel=None, **params) -> float:
    """The optimal ground-truth weight of step ``step`` with the infinite-width NTK: no network at all.

    The vertex of :class:`kerneldistill.ReferenceRisk`'s exact risk quadratic (``.quadratic(step).argmin()``)
    against ``reference`` at ``X_test`` (the clean targets), on the Gram matrix of ``kernel`` (default:
    ``InfiniteNTK(**params)``; any callable ``kernel(X, Y=None)`` returning a Gram matrix works, for a check).
    """
    from .optimal import ReferenceRisk
    from .spectrum import eigh_gram

    ridge = check_ridge(ridge)
    kernel = InfiniteNTK(**params) if kernel is None else kernel
    K = kernel(X_train)
    spec = eigh_gram(np.asarray(K, dtype=np.float64))
    evals = np.clip(spec.evals, 0.0, None)         # round-off negatives of a PSD Gram matrix (as KernelDistiller)
    risk = ReferenceRisk(evals, spec.evecs, y_train, ridge, kernel(X_test, X_train), reference)
    return float(risk.quadratic(step).argmin())
