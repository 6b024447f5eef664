"""Jacot, Gabriel & Hongler 2018 (arXiv 1806.07572); Lee et al. 2019 (arXiv 1902.06720): the infinite-width limit.

Two claims, both with the infinite-width NTK of ``NTKMLP`` (:mod:`kerneldistill.infinite_ntk`) and finite
networks drawn and differentiated in numpy (:func:`~kerneldistill.infinite_ntk.empirical_ntk`; nothing here
imports torch):

``ntk_width_convergence``
    Published (Jacot et al. 2018, Theorem 1; Lee et al. 2019, section 2.3): at initialisation the empirical
    NTK of an NTK-parameterised MLP converges to a deterministic kernel as the width ``n`` grows, with
    fluctuations of order ``n^(-1/2)``. Measured: the relative Frobenius distance
    ``||Theta_n - Theta||_F / ||Theta||_F`` on fixed inputs, averaged over seeds, per width, and its
    least-squares log-log slope, per activation (erf, ReLU, tanh; depth 2 by default, so that the mean
    eNTK is not the limit exactly and the bias term of order ``1/n`` is in the measurement). Criterion
    (fixed before measuring): ``|slope + 0.5| <= 0.1`` for every activation, and the distance at the
    widest width below the one at the narrowest. The slope's bootstrap standard error over seeds is
    reported beside it.

``ntk_bridge_infinite_width``
    The bridge of ``deepdistill.studies.bridge`` (``docs/kernel_meets_deep.md``) measures, per width 64..4096, the
    optimal ground-truth weight of the first student (step 2) from each network's own eNTK (the
    "kernel" weight, 3 seeds, the vertex of the seed-averaged risk quadratic) and from the trained
    networks (the "deep" weight). Its full preset published (README; ``python examples/kernel_meets_deep.py``):
    kernel 3.88/4.22/4.20/4.16/4.21/4.26/4.11, deep 4.70/4.63/4.31/4.26/4.17/4.20/4.13. The claim: both
    converge to the infinite-width value, which this module computes with no network at all, on the
    bridge's own setting (``sine`` data: 64 training points, noise sd 0.5, 200 clean test points, data seed 0;
    one hidden tanh layer, input_std = weight_std = bias_std = 1; ridge 1; step 2).
    Measured: the infinite-width weight ``w_inf``; then a numpy sweep over the bridge's widths with
    ``seeds`` random networks each (the law of the bridge's networks, not its torch draws), which gives at
    each width the distribution of the bridge's 3-seed statistic (the vertex of the mean of 3 risk
    quadratics, over every 3-subset of the seeds). Criteria (derived from these measured spreads, never
    tuned): (i) at the widest width the seed-mean weight lies within 3 standard errors of ``w_inf``;
    (ii) the root-mean-square distance of the per-seed weights to ``w_inf`` falls with width (log-log slope
    below 0); (iii) every published kernel weight of the bridge lies in the central 99.73% (3-sigma) range
    of the 3-seed statistic at its width; (iv) the deep weight at the widest width lies in that range too
    (the deep weight adds the training deviation, which the bridge measured at 0.02 there), and the
    deep weight's distance to ``w_inf`` falls with width (log-log slope below 0).

The bridge's data come from ``deepdistill.core.regression.sine``, which ``kerneldistill`` may not import:
:func:`bridge_sine_data` repeats its three lines (same streams, same numbers), and
``tests/test_infinite_ntk.py`` checks that the two are equal.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from ..infinite_ntk import NTK_ACTIVATIONS, empirical_ntk, infinite_ntk, random_ntk_mlp
from .base import ClaimResult, claim

__all__ = ["entk_distances", "bridge_sine_data", "bridge_weight_sweep", "run_width_convergence",
           "run_bridge_infinite_width", "BRIDGE_WIDTHS", "BRIDGE_KERNEL_WEIGHTS", "BRIDGE_DEEP_WEIGHTS"]

PAPER = "Jacot, Gabriel & Hongler 2018 (arXiv 1806.07572); Lee et al. 2019 (arXiv 1902.06720)"

#: The bridge's full preset (README, docs/kernel_meets_deep.md section 3): widths, kernel and deep weights.
BRIDGE_WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
BRIDGE_KERNEL_WEIGHTS = (3.88, 4.22, 4.20, 4.16, 4.21, 4.26, 4.11)
BRIDGE_DEEP_WEIGHTS = (4.70, 4.63, 4.31, 4.26, 4.17, 4.20, 4.13)
#: The bridge's setting (deepdistill.studies.bridge.BridgePreset): data, network and ridge.
BRIDGE_SETTING = {"n_train": 64, "noise": 0.5, "n_test": 200, "data_seed": 0, "activation": "tanh",
                  "input_std": 1.0, "weight_std": 1.0, "bias_std": 1.0, "depth": 1, "ridge": 1.0, "step": 2}


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float)), 1)[0])


# --------------------------------------------------------------------------------------------------
# (a) the eNTK converges to the infinite-width NTK


def entk_distances(X, widths, seeds, *, depth: int = 2, activations=NTK_ACTIVATIONS, kernels=None,
                   seed_offset: int = 0) -> dict:
    """``{activation: (len(widths), len(seeds))}`` relative Frobenius distances ``||Theta_n - K||_F / ||K||_F``.

    ``K`` is the infinite-width NTK of the activation unless ``kernels`` (activation -> Gram matrix) says
    otherwise (a test passes a wrong kernel). One network per (width, seed) serves every activation.
    """
    X = np.asarray(X, dtype=np.float64)
    targets = {a: (infinite_ntk(X, depth=depth, activation=a) if kernels is None else kernels[a]) for a in activations}
    out = {a: np.zeros((len(widths), len(seeds))) for a in activations}
    for i, width in enumerate(widths):
        for j, seed in enumerate(seeds):
            params = random_ntk_mlp(X.shape[1], int(width), depth=depth, rng=[seed_offset, int(width), int(seed)])
            for a in activations:
                K = empirical_ntk(params, X, activation=a)
                out[a][i, j] = np.linalg.norm(K - targets[a]) / np.linalg.norm(targets[a])
    return out


def _bootstrap_slope_se(widths, dist, n_boot: int = 400, seed: int = 0) -> float:
    """Standard error of the log-log slope of the seed-mean distance, resampling seeds with replacement."""
    rng = np.random.default_rng(seed)
    S = dist.shape[1]
    slopes = [_slope(widths, dist[:, rng.integers(0, S, S)].mean(axis=1)) for _ in range(n_boot)]
    return float(np.std(slopes, ddof=1))


@claim("ntk_width_convergence", paper=PAPER,
       summary="the eNTK at initialisation converges to the infinite-width NTK at log-log slope -1/2 in the width")
def run_width_convergence(fast: bool = False, *, widths=None, seeds=None, depth: int = 2, n_points: int = 16,
                          dim: int = 3, expected_slope: float = -0.5, slope_tolerance: float = 0.1,
                          kernels=None) -> ClaimResult:
    """Claim (a): see the module docstring. ``kernels`` replaces the infinite-width kernels (a test's wrong kernel)."""
    widths = tuple(widths or ((64, 128, 256, 512, 1024, 2048) if fast else (64, 128, 256, 512, 1024, 2048, 4096)))
    seeds = tuple(seeds or (range(24) if fast else range(32)))
    X = np.random.default_rng(12345).uniform(-1.0, 1.0, size=(n_points, dim))
    dist = entk_distances(X, widths, seeds, depth=depth, kernels=kernels)
    rows, values, ok = [], {"widths": list(widths), "seeds": len(seeds), "depth": depth}, True
    for a, d in dist.items():
        mean = d.mean(axis=1)
        slope, se = _slope(widths, mean), _bootstrap_slope_se(widths, d)
        good = abs(slope - expected_slope) <= slope_tolerance and mean[-1] < mean[0]
        ok &= good
        values[a] = {"slope": slope, "slope_se": se, "mean_distance": mean.tolist(), "distance": d.tolist()}
        rows.append(f"{a:<6} " + " ".join(f"{m:>9.2e}" for m in mean) + f"  {slope:>6.3f} +- {se:.3f}  "
                    + ("ok" if good else "off"))
    table = ("relative distance ||eNTK_n - NTK||_F / ||NTK||_F (mean over seeds) per width; log-log slope +- bootstrap se\n"
             + "width  " + " ".join(f"{w:>9d}" for w in widths) + "  slope\n" + "\n".join(rows))
    slopes = ", ".join(f"{a} {values[a]['slope']:.3f}" for a in dist)
    return ClaimResult(
        claim="ntk_width_convergence", paper=PAPER,
        setting=f"NTK-parameterised MLP, depth {depth}, {n_points} inputs in [-1, 1]^{dim}, widths "
                f"{widths[0]}..{widths[-1]}, {len(seeds)} seeds, erf/ReLU/tanh; eNTK by numpy backprop",
        published="eNTK -> deterministic NTK; fluctuations O(width^-1/2)",
        measured=f"log-log slope {slopes}",
        criterion=f"|slope - ({expected_slope:g})| <= {slope_tolerance:g} for every activation, distance falls",
        passed=bool(ok), table=table, values=values)


# --------------------------------------------------------------------------------------------------
# (b) the bridge's weights converge to the infinite-width weight


def bridge_sine_data(n_train: int = 64, noise: float = 0.5, *, n_test: int = 200, seed: int = 0):
    """``(x_train, y_train, x_test, y_test)`` of ``deepdistill.core.regression.sine`` (dim 1), the same numbers.

    Each part draws from ``numpy.random.default_rng([seed, part])`` (train 0, test 2): ``x ~ U[0, 1]``,
    ``y = sin(2 pi x)`` plus ``noise * N(0, 1)`` on the training part; the test targets are clean.
    """
    def draw(part: int, n: int, noisy: bool):
        rng = np.random.default_rng([seed, part])
        x = rng.uniform(0.0, 1.0, size=(n, 1))
        y = np.sin(2.0 * np.pi * x[:, 0])
        return x, (y + noise * rng.standard_normal(n) if noisy else y)

    x_train, y_train = draw(0, n_train, True)
    x_test, y_test = draw(2, n_test, False)
    return x_train, y_train, x_test, y_test


def _quadratic(K_train, K_test, y_train, y_test, ridge, step):
    from ..optimal import ReferenceRisk
    from ..spectrum import eigh_gram

    spec = eigh_gram(np.asarray(K_train, dtype=np.float64))
    return ReferenceRisk(np.clip(spec.evals, 0.0, None), spec.evecs, y_train, ridge, K_test, y_test).quadratic(step)


def bridge_weight_sweep(widths, seeds, setting: dict | None = None, *, seed_offset: int = 7) -> dict:
    """Per width and seed, the kernel optimal weight's risk quadratic from a random network's numpy eNTK.

    Returns ``{"coefficients": (W, S, 5) [risk_pd, risk_labels, cross, gain, dist2], "weights": (W, S)}``
    (the per-seed vertices), on the bridge's setting (:data:`BRIDGE_SETTING`, overridable).
    """
    s = {**BRIDGE_SETTING, **(setting or {})}
    x_tr, y_tr, x_te, y_te = bridge_sine_data(s["n_train"], s["noise"], n_test=s["n_test"], seed=s["data_seed"])
    X = np.vstack([x_tr, x_te])
    n = len(x_tr)
    coef = np.zeros((len(widths), len(seeds), 5))
    weights = np.zeros((len(widths), len(seeds)))
    for i, width in enumerate(widths):
        for j, seed in enumerate(seeds):
            params = random_ntk_mlp(1, int(width), depth=s["depth"], rng=[seed_offset, int(width), int(seed)])
            K = empirical_ntk(params, X, activation=s["activation"], weight_std=s["weight_std"],
                              input_std=s["input_std"], bias_std=s["bias_std"])
            q = _quadratic(K[:n, :n], K[n:, :n], y_tr, y_te, s["ridge"], s["step"])
            coef[i, j] = (q.risk_pd, q.risk_labels, q.cross, q.gain, q.dist2)
            weights[i, j] = q.argmin()
    return {"coefficients": coef, "weights": weights}


@functools.lru_cache(maxsize=4)
def _cached_sweep(widths: tuple, seeds: tuple) -> dict:
    """:func:`bridge_weight_sweep` on the bridge's setting, computed once per (widths, seeds) in a process
    (a claim run with another published number or kernel reuses it); the arrays are read-only."""
    out = bridge_weight_sweep(widths, seeds)
    for a in out.values():
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4)
def _bridge_w_inf(order: int) -> float:
    """The infinite-width NTK's optimal weight on the bridge's setting (Gauss-Hermite order ``order``)."""
    from ..infinite_ntk import infinite_width_gt_weight

    s = BRIDGE_SETTING
    x_tr, y_tr, x_te, y_te = bridge_sine_data(s["n_train"], s["noise"], n_test=s["n_test"], seed=s["data_seed"])
    return infinite_width_gt_weight(x_tr, y_tr, x_te, y_te, ridge=s["ridge"], step=s["step"], depth=s["depth"],
                                    activation=s["activation"], weight_std=s["weight_std"], input_std=s["input_std"],
                                    bias_std=s["bias_std"], quadrature_order=order)


def _three_seed_statistic(coef: np.ndarray) -> np.ndarray:
    """The bridge's 3-seed kernel weight (vertex of the mean of 3 quadratics) over every 3-subset of the seeds."""
    from ..optimal import StepQuadratic

    out = []
    for idx in itertools.combinations(range(coef.shape[0]), 3):
        out.append(StepQuadratic(*coef[list(idx)].mean(axis=0)).argmin())
    return np.asarray(out)


@claim("ntk_bridge_infinite_width", paper=PAPER,
       summary="the bridge's per-width kernel and deep optimal weights converge to the infinite-width NTK's weight")
def run_bridge_infinite_width(fast: bool = False, *, seeds=None, widths=BRIDGE_WIDTHS,
                              bridge_kernel_weights=BRIDGE_KERNEL_WEIGHTS, bridge_deep_weights=BRIDGE_DEEP_WEIGHTS,
                              kernel=None, quadrature_order: int | None = None, z_max: float = 3.0,
                              coverage: float = 0.9973) -> ClaimResult:
    """Claim (b): see the module docstring.

    ``kernel``: a callable ``kernel(X, Y=None)`` for ``w_inf`` in place of the infinite-width NTK (a test's
    wrong kernel). ``bridge_*_weights``: the published numbers, one per width (a test's wrong number).
    """
    from ..infinite_ntk import DEFAULT_QUADRATURE_ORDER, infinite_width_gt_weight

    widths = tuple(int(w) for w in widths)
    if len(bridge_kernel_weights) != len(widths) or len(bridge_deep_weights) != len(widths):
        raise ValueError(f"`bridge_kernel_weights` and `bridge_deep_weights` need one weight per width {widths}; "
                         f"got {len(bridge_kernel_weights)} and {len(bridge_deep_weights)}.")
    seeds = tuple(int(x) for x in (seeds or (range(24) if fast else range(60))))
    s = BRIDGE_SETTING
    x_tr, y_tr, x_te, y_te = bridge_sine_data(s["n_train"], s["noise"], n_test=s["n_test"], seed=s["data_seed"])
    order = quadrature_order or DEFAULT_QUADRATURE_ORDER
    w_inf = _bridge_w_inf(order) if kernel is None else infinite_width_gt_weight(
        x_tr, y_tr, x_te, y_te, ridge=s["ridge"], step=s["step"], kernel=kernel)
    sweep = _cached_sweep(widths, seeds)
    w = sweep["weights"]
    mean, sd = w.mean(axis=1), w.std(axis=1, ddof=1)
    se = sd / np.sqrt(w.shape[1])
    rms = np.sqrt(np.mean((w - w_inf) ** 2, axis=1))
    lo_q, hi_q = (1.0 - coverage) / 2.0, 1.0 - (1.0 - coverage) / 2.0
    bands = [np.quantile(_three_seed_statistic(sweep["coefficients"][i]), [lo_q, hi_q]) for i in range(len(widths))]
    kernel_in = [bool(lo <= kw <= hi) for kw, (lo, hi) in zip(bridge_kernel_weights, bands)]
    deep = np.asarray(bridge_deep_weights, dtype=float)
    deep_dist = np.abs(deep - w_inf)
    z_widest = float((mean[-1] - w_inf) / se[-1])
    checks = {
        "(i) seed mean at the widest width within z_max se of w_inf": abs(z_widest) <= z_max,
        "(ii) rms distance of per-seed weights to w_inf falls with width": _slope(widths, rms) < 0,
        "(iii) every published kernel weight inside the 3-seed range at its width": all(kernel_in),
        "(iv) deep weight at the widest width inside that range; its distance falls": bool(
            bands[-1][0] <= deep[-1] <= bands[-1][1] and _slope(widths, np.maximum(deep_dist, 1e-12)) < 0),
    }
    lines = [f"infinite-width NTK (tanh, Gauss-Hermite order {order}): optimal gt_weight of step 2 = {w_inf:.4f}",
             f"{'width':>6} {'numpy mean':>10} {'se':>6} {'sd':>6} {'rms to inf':>10} "
             f"{'3-seed range (' + format(coverage, '.2%') + ')':>24} {'bridge kernel':>13} {'bridge deep':>11}"]
    for i, width in enumerate(widths):
        lo, hi = bands[i]
        lines.append(f"{width:>6d} {mean[i]:>10.3f} {se[i]:>6.3f} {sd[i]:>6.3f} {rms[i]:>10.3f} "
                     f"{'[' + format(lo, '.3f') + ', ' + format(hi, '.3f') + ']':>24} "
                     f"{bridge_kernel_weights[i]:>11.2f} {'in' if kernel_in[i] else 'OUT':>1} {deep[i]:>11.2f}")
    lines += [f"{name}: {'yes' if good else 'NO'}" for name, good in checks.items()]
    lines.append(f"(i) z = {z_widest:.2f}; (ii) slope of rms {_slope(widths, rms):.3f}; "
                 f"(iv) slope of |deep - w_inf| {_slope(widths, np.maximum(deep_dist, 1e-12)):.3f}")
    values = {"w_inf": w_inf, "widths": list(widths), "seeds": len(seeds), "numpy_mean": mean.tolist(),
              "numpy_se": se.tolist(), "numpy_sd": sd.tolist(), "rms_to_inf": rms.tolist(),
              "three_seed_range": [list(map(float, b)) for b in bands], "kernel_inside": kernel_in,
              "z_widest": z_widest, "rms_slope": _slope(widths, rms),
              "deep_distance_slope": _slope(widths, np.maximum(deep_dist, 1e-12)),
              "bridge_kernel_weights": list(bridge_kernel_weights), "bridge_deep_weights": list(bridge_deep_weights),
              "checks": checks}
    return ClaimResult(
        claim="ntk_bridge_infinite_width", paper=PAPER,
        setting="the bridge: sine n=64, noise 0.5, 1 hidden tanh layer (NTK param.), ridge 1, step 2; "
                f"numpy networks at widths {widths[0]}..{widths[-1]}, {len(seeds)} seeds",
        published="bridge kernel " + "/".join(f"{v:.2f}" for v in bridge_kernel_weights)
                  + "; deep " + "/".join(f"{v:.2f}" for v in bridge_deep_weights) + " -> one limit",
        measured=f"w_inf {w_inf:.4f}; numpy mean at {widths[-1]}: {mean[-1]:.3f} +- {se[-1]:.3f}; "
                 f"kernel inside {sum(kernel_in)}/{len(widths)}",
        criterion=f"(i) |z| <= {z_max:g} at the widest width; (ii) rms falls; (iii) bridge kernel weights in the "
                  f"{coverage:.2%} 3-seed range; (iv) deep at the widest in it, distance falls",
        passed=bool(all(checks.values())), table="\n".join(lines), values=values)
