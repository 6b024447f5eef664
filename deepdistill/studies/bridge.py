"""Where the kernel theory and deep networks meet: four measurements of one study.

The kernel theory of self-distillation (``docs/theory.md`` section 2, [BA21]) is exact for a network in one
regime: a network linearised at its initialisation ``theta0``, trained to convergence on the
sum-of-squares loss :func:`deepdistill.core.losses.output_mixed_mse_loss` with the ridge
``ridge ||theta - theta0||^2``, every generation restarting from ``theta0``, is kernel ridge
self-distillation with the empirical NTK ``K(x, x') = <J(x), J(x')>`` at ``theta0``. This module
measures that, and how fast real networks leave it (all networks in float64, centred at
initialisation, :class:`deepdistill.core.linearize.CenteredModel`, so that the closed form needs no offset):

(a) ``exact``: the linearised network (:func:`deepdistill.core.linearize.linearize`, ``J(x) w`` by
    ``torch.func.jvp``) against ``KernelDistiller(kernel="precomputed")`` on its eNTK, steps
    ``1..S``, several ``gt_weight``, at the training points and at new points. Measured: the relative
    difference ``||f_deep - f_kernel||_2 / ||f_kernel||_2`` over each point set, its maximum over sets,
    weights and steps. Must show: <= 1e-4, or the optimiser's stated tolerance where that is tighter
    (the L-BFGS stop ``max |grad| <= tolerance_grad`` bounds each prediction of a linearised fit by
    ``sqrt(K(x, x)) ||grad||_2 / (2 ridge)``; accumulated over the steps it is reported beside).
(b) ``width``: the real network in the NTK parameterisation (:class:`deepdistill.core.ntk.NTKMLP`), same
    loss, ridge and trainer, at growing widths and several seeds, against the same closed form on its
    own eNTK at ``theta0``. Measured: the relative deviation at the test points per width and step.
    Must show: the deviation (mean over seeds, weights and steps) falls with width, with a least-squares
    log-log slope <= -0.3 (lazy-training theory: -0.5 or steeper; Lee et al. 2019, arXiv 1902.06720).
(c) ``weight``: the optimal ground-truth weight of the first student (step 2), kernel against deep,
    per width, on the ``sine`` data. Kernel: the vertex of ``ReferenceRisk`` on the eNTK at ``theta0``
    against the clean test targets (risks averaged over seeds, then the vertex). Deep: students at every
    weight of a grid, their test risks averaged over seeds; the grid's argmin refined by the parabola
    through it and its two neighbours (exact when the risk is quadratic in the weight, as it is in the
    linearised regime). Must show: ``|kernel - deep| <= 0.05`` at the widest width. Then where they
    part (measured, never tuned): the narrow widths, the standard parameterisation, Adam with early
    stopping instead of the ridge-to-init fit, and cross-entropy on MNIST-1D with the toolkit's own
    trainer (:mod:`deepdistill.studies.bridge_mnist1d`).
(d) ``toy``: [BA21]'s 11-point toy with a wide network: the deep loss per step for gt_weight 0 and 0.25
    beside the closed form on the network's own eNTK and the RBF curves of :mod:`kerneldistill.toy`.

:func:`run_bridge_study` runs the parts, writes each part's result as JSON in ``out_dir`` (atomically;
a part already there with the same settings is read back, so an interrupted study resumes) and returns
everything with the pass/fail table of :func:`must_shows`. ``examples/kernel_meets_deep.py`` prints it;
``analysis/figures/bridge.py`` draws it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepdistill.core.config import stable_hash
from deepdistill.core.io import atomic_write_json, read_json
from deepdistill.engine.lazy import check_ridge, full_batch_self_distillation
from deepdistill.core.linearize import CenteredModel, linearize
from deepdistill.core.losses import output_mixed_mse_loss
from deepdistill.core.ntk import NTKMLP
from deepdistill.core.regression import ba_toy, sine
from deepdistill.core.threads import torch_threads

__all__ = ["BridgePreset", "PRESETS", "TINY_PRESET", "PARTS", "get_preset", "run_bridge_study", "read_bridge_study", "must_shows",
           "format_must_shows", "refine_grid_argmin", "log_log_slope", "measure_exact", "measure_width", "measure_parted", "measure_toy"]

PARTS = ("exact", "width", "parted", "toy")
SCHEMA = "deepdistill.bridge/1"


@dataclass(frozen=True)
class BridgePreset:
    """Every setting of the study (defaults: the ``fast`` preset, about a minute on 2 CPU cores)."""

    name: str = "fast"
    # data: sine(n_train, noise) in one dimension, clean test targets, a noisy validation set (Adam only)
    n_train: int = 64
    noise: float = 0.5
    n_val: int = 32
    n_test: int = 200
    data_seed: int = 0
    # network (NTKMLP, one hidden layer) and the full-batch trainer
    activation: str = "tanh"
    input_std: float = 1.0
    ridge: float = 1.0
    tolerance_grad: float = 1e-7
    # (a) linearised vs closed form
    exact_width: int = 128
    exact_n_train: int = 32
    exact_steps: int = 5
    exact_weights: tuple = (0.0, 0.25, 0.5, 1.0)
    exact_tolerance: float = 1e-4
    # (b) real networks of growing width
    widths: tuple = (64, 512, 4096)
    seeds: tuple = (0, 1)
    width_weights: tuple = (0.5,)
    width_steps: int = 3
    slope_threshold: float = -0.3
    # (c) optimal weight, kernel vs deep; then where they part
    grid: tuple = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    weight_tolerance: float = 0.05
    standard_widths: tuple = (64,)
    adam_width: int = 256
    adam_seeds: tuple = (0,)
    adam_lr: float = 1e-2
    adam_max_steps: int = 200
    adam_patience: int = 50
    adam_eval_every: int = 10
    mnist1d: dict = field(default_factory=lambda: {"n_train": 500, "epochs": 3, "grid": (0.0, 0.5, 1.0),
                                                   "seeds": (0,), "ntk_subsample": 100, "model": "cnn1d",
                                                   "label_noise": 0.2, "method": "sd_kd"})
    # (d) the BA toy with a wide network
    toy_width: int = 512
    toy_input_std: float = 16.0
    toy_ridge: float = 0.2
    toy_steps: int = 6
    toy_weights: tuple = (0.0, 0.25)
    # intra-op torch threads while the study runs (None: unchanged). These networks are small: on 2 shared
    # cores one thread ran the width-4096 cell 3x and the toy 7x faster than two (synchronisation).
    torch_threads: int | None = 1

    def __post_init__(self):
        check_ridge(self.ridge)
        check_ridge(self.toy_ridge, name="toy_ridge")
        for name in ("exact_width", "adam_width", "toy_width"):
            _check_width(name, getattr(self, name))
        for name in ("widths", "standard_widths"):
            for w in getattr(self, name):
                _check_width(name, w)
        if len(self.widths) < 2:
            raise ValueError(f"`widths` needs at least two widths to fit a slope; got {self.widths!r}.")
        if len(self.grid) < 3:
            raise ValueError(f"`grid` needs at least three weights to refine its argmin; got {self.grid!r}.")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))   # tuples -> lists, as JSON reads them back

    _SHARED = ("n_train", "noise", "n_val", "n_test", "data_seed", "activation", "input_std", "ridge", "tolerance_grad")
    _OWN = {"exact": ("exact_",), "width": ("widths", "seeds", "width_", "grid"),
            "parted": ("standard_", "seeds", "grid", "adam_", "mnist1d"), "toy": ("toy_", "activation", "tolerance_grad"),
            # the cached networks of the width sweep and of the cases where kernel and deep part
            "ntk_cell": ("width_", "grid"), "standard_cell": ("grid",), "adam_cell": ("grid", "adam_")}

    def part_settings(self, part: str) -> dict:
        """The settings a part (or one cached network of it) reads: its cache key. The toy reads no sine data."""
        shared = () if part == "toy" else self._SHARED
        d = self.to_dict()
        return {k: v for k, v in d.items() if k in shared or k.startswith(self._OWN[part])}


def _check_width(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must hold positive integer widths; got {value!r}.")


PRESETS = {
    "fast": BridgePreset(),
    # The README numbers: widths 64..4096, 3 seeds, 11 weights, steps 1..5.
    "full": BridgePreset(
        name="full", widths=(64, 128, 256, 512, 1024, 2048, 4096), seeds=(0, 1, 2), width_weights=(0.0, 0.5),
        width_steps=5, exact_width=256, grid=tuple(float(w) for w in np.linspace(0.0, 5.0, 11)), standard_widths=(64, 256, 1024),
        adam_width=1024, adam_seeds=(0, 1, 2), adam_max_steps=2000, adam_patience=200,
        mnist1d={"n_train": 4000, "epochs": 30, "grid": tuple(float(w) for w in np.linspace(0.0, 1.0, 11)),
                 "seeds": (0, 1, 2), "ntk_subsample": 500, "model": "cnn1d", "label_noise": 0.2, "method": "sd_kd"},
        toy_width=4096),
}


#: Seconds-sized, for tests and quick benchmark runs that check the machinery only (not in PRESETS).
TINY_PRESET = BridgePreset(name="tiny", n_train=16, n_val=8, n_test=20, exact_width=16, exact_n_train=8, exact_steps=3,
    widths=(16, 64), seeds=(0, 1), width_steps=2, grid=(0.0, 2.0, 4.0, 6.0), standard_widths=(8,), adam_width=16, adam_seeds=(0, 1),
    adam_max_steps=20, adam_patience=10, toy_width=32, toy_steps=3, mnist1d={"n_train": 200, "epochs": 1, "grid": (0.0, 0.5, 1.0),
    "seeds": (0,), "ntk_subsample": 30, "model": "mlp", "label_noise": 0.2, "method": "sd_kd"})


def get_preset(preset) -> BridgePreset:
    """A :class:`BridgePreset` from itself or a name in :data:`PRESETS`."""
    if isinstance(preset, BridgePreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown bridge preset {preset!r}; valid names: {sorted(PRESETS)} (or a BridgePreset).")
    return PRESETS[preset]


# ------------------------------------------------------------------------------------------------
# Small pieces
# ------------------------------------------------------------------------------------------------

def _network(width: int, seed: int, *, in_features: int, input_std: float, activation: str, device,
             parameterization: str = "ntk") -> NTKMLP:
    """The seeded network in float64 on ``device``; drawn on the CPU, so every device starts from the same theta0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = NTKMLP(in_features, width, input_std=input_std, activation=activation, parameterization=parameterization)
    return net.to(device=device, dtype=torch.float64)


def _ntk(net, x_train: torch.Tensor, x_other: torch.Tensor | None = None):
    """The eNTK Gram matrix at the training points and the cross kernel ``K(x_other, x_train)`` (numpy float64)."""
    from deepdistill.studies.weight_estimators import empirical_ntk_gram

    K = empirical_ntk_gram(net, x_train)
    return K, (None if x_other is None else empirical_ntk_gram(net, x_other, x_train))


def _tensor(a, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``||a - b||_2 / ||b||_2`` over the last axis."""
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


def refine_grid_argmin(grid, risks) -> dict:
    """The grid's argmin refined by the parabola through it and its two neighbours.

    At an end of the grid the three end points are used (the vertex may then lie outside the grid:
    ``at_edge`` says so). A parabola that opens downwards (noise) gives no vertex: the grid's argmin
    is returned. Exact when ``risks`` are a quadratic in the weight.
    """
    g = np.asarray(grid, dtype=np.float64)
    r = np.asarray(risks, dtype=np.float64)
    if g.shape != r.shape or g.ndim != 1 or len(g) < 3 or not np.all(np.diff(g) > 0):
        raise ValueError(f"`grid` must be >= 3 increasing weights with one risk each; got {g.tolist()} and {r.shape}.")
    i = int(np.argmin(r))
    j = min(max(i, 1), len(g) - 2)                                      # the middle of the three points
    a, b, _ = np.polyfit(g[j - 1:j + 2], r[j - 1:j + 2], 2)
    vertex = float(-b / (2.0 * a)) if a > 0 else float(g[i])
    return {"argmin": float(g[i]), "vertex": vertex, "at_edge": i in (0, len(g) - 1)}


def log_log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64)), 1)[0])


def _fit_summary(path) -> dict:
    fits = list({id(f): f for row in path.fits for f in row}.values())   # step 1 is one fit, shared by every weight
    # The study records each cell's convergence (and reports it) instead of a warning per fit: its fits
    # often stop a little above tolerance_grad where the loss is flat to round-off.
    return {"fits": len(fits), "all_converged": bool(path.all_converged), "worst_grad_max": max(f.grad_max for f in fits),
            "worst_prediction_bound": max(f.prediction_bound for f in fits), "max_iterations": max(f.iterations for f in fits),
            "seconds": float(sum(f.seconds for f in fits))}


# ------------------------------------------------------------------------------------------------
# (a) the linearised network against the closed form
# ------------------------------------------------------------------------------------------------

def measure_exact(preset: BridgePreset, *, device="cpu", seed: int = 0) -> dict:
    """(a): deep self-distillation of the linearised network vs ``KernelDistiller`` on its eNTK at theta0."""
    from kerneldistill import KernelDistiller

    p = preset
    data = sine(p.exact_n_train, p.noise, n_test=p.n_test, seed=p.data_seed)
    x_train, x_test = _tensor(data.x_train, device), _tensor(data.x_test, device)
    net = _network(p.exact_width, seed, in_features=1, input_std=p.input_std, activation=p.activation, device=device)
    K, K_test = _ntk(net, x_train, x_test)
    steps = list(range(1, p.exact_steps + 1))
    kernel = KernelDistiller("precomputed", ridge=p.ridge).fit(K, data.y_train)
    closed = {"train": kernel.path(None, steps, gt_weights=list(p.exact_weights)),        # (W, S, n)
              "test": kernel.path(K_test, steps, gt_weights=list(p.exact_weights))}     # (W, S, p)
    lin = linearize(net, subtract_initial=True)
    path = full_batch_self_distillation(lin, x_train, _tensor(data.y_train, device), ridge=p.ridge,
                                        gt_weights=p.exact_weights, steps=p.exact_steps, evaluate={"test": x_test},
                                        tolerance_grad=p.tolerance_grad, warn_unconverged=False)
    deep = {"train": path.train[..., 0].cpu().numpy(), "test": path.evaluations["test"][..., 0].cpu().numpy()}
    rel = {k: _relative(deep[k], closed[k]) for k in deep}                            # (W, S) each
    # The optimiser's guarantee: each linearised fit is within sqrt(K(x,x)) ||grad||/(2 ridge) of the
    # exact fit at every point; over a point set, sqrt(trace K) ||grad||/(2 ridge) in the 2-norm; a step
    # also inherits its teacher's error (a shrinking map), so S steps accumulate at most S of these.
    fits = _fit_summary(path)
    trace = {"train": float(np.trace(K)), "test": float(np.trace(_ntk(net, x_test)[0]))}
    bound = max(p.exact_steps * math.sqrt(trace[k]) * fits["worst_prediction_bound"] / float(np.min(np.linalg.norm(
        closed[k], axis=-1))) for k in closed)
    worst = max(float(rel[k].max()) for k in rel)
    return {"width": p.exact_width, "n_train": p.exact_n_train, "gt_weights": list(p.exact_weights), "steps": steps,
            "relative_difference": {k: v.tolist() for k, v in rel.items()}, "max_relative_difference": worst,
            "optimiser_bound": bound, "threshold": min(p.exact_tolerance, bound) if bound > 0 else p.exact_tolerance,
            "fits": fits}


# ------------------------------------------------------------------------------------------------
# (b) and (c): real networks of growing width, one cell per (width, seed, parameterisation)
# ------------------------------------------------------------------------------------------------

def _kernel_quadratic(K, K_test, y_train, y_test, ridge) -> dict:
    """Step 2's test risk as a quadratic in its weight, from the eNTK (``ReferenceRisk``, exact, no refit)."""
    from kerneldistill import ReferenceRisk, StepQuadratic
    from kerneldistill.spectrum import eigh_psd

    # KernelDistiller's rule: round-off negatives clipped to 0, clearly negative eigenvalues refused.
    spec = eigh_psd(np.asarray(K, dtype=np.float64), name="the empirical NTK's Gram matrix")
    q: StepQuadratic = ReferenceRisk(spec.evals, spec.evecs, y_train, ridge, K_test, y_test).quadratic(2)
    return {"risk_pd": q.risk_pd, "risk_labels": q.risk_labels, "cross": q.cross, "gain": q.gain, "dist2": q.dist2,
            "gt_weight": q.argmin()}


def _width_cell(preset: BridgePreset, width: int, seed: int, parameterization: str, with_deviation: bool,
                device) -> dict:
    """One network: the kernel's quadratic, the deep risks on the grid, and (b)'s deviations if asked."""
    from kerneldistill import KernelDistiller

    p = preset
    data = sine(p.n_train, p.noise, n_val=p.n_val, n_test=p.n_test, seed=p.data_seed)
    x_train, y_train, x_test = _tensor(data.x_train, device), _tensor(data.y_train, device), _tensor(data.x_test, device)
    net = _network(width, seed, in_features=1, input_std=p.input_std, activation=p.activation, device=device,
                   parameterization=parameterization)
    started = time.perf_counter()
    K, K_test = _ntk(net, x_train, x_test)
    cell = {"width": width, "seed": seed, "parameterization": parameterization,
            "kernel": _kernel_quadratic(K, K_test, data.y_train, data.y_test, p.ridge)}
    model = CenteredModel(net)
    if with_deviation:
        steps = list(range(1, p.width_steps + 1))
        kernel = KernelDistiller("precomputed", ridge=p.ridge).fit(K, data.y_train)
        closed = kernel.path(K_test, steps, gt_weights=list(p.width_weights))            # (W, S, p)
        path = full_batch_self_distillation(model, x_train, y_train, ridge=p.ridge, gt_weights=p.width_weights,
                                            steps=p.width_steps, evaluate={"test": x_test},
                                            tolerance_grad=p.tolerance_grad, warn_unconverged=False)
        deep = path.evaluations["test"][..., 0].cpu().numpy()
        cell["deviation"] = _relative(deep, closed).tolist()                             # (W, S)
        cell["deviation_fits"] = _fit_summary(path)
    grid_path = full_batch_self_distillation(model, x_train, y_train, ridge=p.ridge, gt_weights=p.grid, steps=2,
                                             evaluate={"test": x_test}, tolerance_grad=p.tolerance_grad, warn_unconverged=False)
    students = grid_path.evaluations["test"][:, 1, :, 0].cpu().numpy()                 # (G, p): step 2 per weight
    cell["deep_risk"] = np.mean((students - data.y_test) ** 2, axis=1).tolist()
    cell["teacher_risk"] = float(np.mean((grid_path.evaluations["test"][0, 0, :, 0].cpu().numpy() - data.y_test) ** 2))
    cell["grid_fits"] = _fit_summary(grid_path)
    cell["seconds"] = time.perf_counter() - started
    return cell


def _mean_quadratic(cells: list[dict]) -> dict:
    """The kernel's risk quadratic averaged over seeds (its coefficients are linear in the risks) and its vertex."""
    from kerneldistill import StepQuadratic

    keys = ("risk_pd", "risk_labels", "cross", "gain", "dist2")
    q = StepQuadratic(*(float(np.mean([c["kernel"][k] for c in cells])) for k in keys))
    return {"gt_weight": q.argmin(), "quadratic": q}


def _weight_row(preset: BridgePreset, cells: list[dict], label: str) -> dict:
    """Kernel and deep optimal weights of a group of cells (one width, one set-up), averaged over seeds."""
    kernel = _mean_quadratic(cells)
    deep_risk = np.mean([c["deep_risk"] for c in cells], axis=0)
    deep = refine_grid_argmin(preset.grid, deep_risk)
    return {"case": label, "width": cells[0]["width"], "parameterization": cells[0]["parameterization"],
            "seeds": [c["seed"] for c in cells], "kernel_gt_weight": kernel["gt_weight"],
            "deep_gt_weight": deep["vertex"], "deep_grid_argmin": deep["argmin"], "deep_at_edge": deep["at_edge"],
            "difference": deep["vertex"] - kernel["gt_weight"], "grid": list(preset.grid),
            "deep_risk": deep_risk.tolist(), "kernel_risk": np.asarray(kernel["quadratic"](list(preset.grid))).tolist()}


def _cached_cell(cache_dir: Path | None, key: dict, compute: Callable[[], dict], log) -> dict:
    """A cell read from ``cache_dir`` when present with the same settings, else computed and written atomically."""
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / f"{stable_hash(key)}.json"
    stored = read_json(path)
    if isinstance(stored, dict) and stored.get("key") == json.loads(json.dumps(key)):
        return stored["cell"]
    cell = compute()
    atomic_write_json(path, {"key": key, "cell": cell})
    return cell


# Each cell (one network) as a task: its cache key, the function and its arguments. The serial measures and
# the parallel prefetch (:func:`_prefetch`) build them here, so both compute and store the same cells.
def _width_task(p: BridgePreset, width: int, seed: int, device):
    key = {"part": "width", "settings": p.part_settings("ntk_cell"), "width": width, "seed": seed}
    return key, _width_cell, (p, width, seed, "ntk", True, device)


def _standard_task(p: BridgePreset, width: int, seed: int, device):
    key = {"part": "standard", "settings": p.part_settings("standard_cell"), "width": width, "seed": seed}
    return key, _width_cell, (p, width, seed, "standard", False, device)


def _adam_task(p: BridgePreset, seed: int, device):
    key = {"part": "adam", "settings": p.part_settings("adam_cell"), "seed": seed}
    return key, _adam_cell, (p, seed, device)


def measure_width(preset: BridgePreset, *, device="cpu", cache_dir=None, log=None) -> dict:
    """(b) the deviation against width and (c) the optimal weight, kernel vs deep, per width (NTK parameterisation)."""
    p = preset
    say = log or (lambda msg: None)
    cells = []
    for width in p.widths:
        for seed in p.seeds:
            say(f"bridge width {width} seed {seed}")
            key, fn, args = _width_task(p, width, seed, device)
            cells.append(_cached_cell(cache_dir, key, lambda: fn(*args), say))
    per_width = {w: [c for c in cells if c["width"] == w] for w in p.widths}
    deviation = np.array([[c["deviation"] for c in per_width[w]] for w in p.widths])   # (widths, seeds, W, S)
    mean_dev = deviation.mean(axis=(1, 2, 3))                                          # (widths,)
    per_step = deviation.mean(axis=(1, 2))                                             # (widths, S)
    slope = log_log_slope(p.widths, mean_dev)
    return {"widths": list(p.widths), "seeds": list(p.seeds), "gt_weights": list(p.width_weights),
            "steps": list(range(1, p.width_steps + 1)), "deviation": deviation.tolist(),
            "mean_deviation": mean_dev.tolist(), "deviation_per_step": per_step.tolist(), "slope": slope,
            "slope_per_step": [log_log_slope(p.widths, per_step[:, s]) for s in range(per_step.shape[1])],
            "weights": [_weight_row(p, per_width[w], "NTK parameterisation, ridge to init, L-BFGS") for w in p.widths],
            "cells": cells}


# ------------------------------------------------------------------------------------------------
# (c) where they part
# ------------------------------------------------------------------------------------------------

def _fit_adam(model, x, y, teacher, gt_weight, x_val, y_val, preset: BridgePreset) -> int:
    """Full-batch Adam on ``output_mixed_mse_loss`` (batch mean, no ridge), stopped early on the validation
    MSE to the noisy validation labels (patience ``adam_patience`` steps); keeps the best weights.
    Returns the step it kept."""
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=preset.adam_lr)
    best, best_state, best_step = math.inf, [q.detach().clone() for q in params], 0
    model.train()
    for step in range(preset.adam_max_steps):
        loss = output_mixed_mse_loss(model(x), y, teacher, gt_weight=gt_weight, allow_any_weight=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % preset.adam_eval_every == 0 or step == preset.adam_max_steps - 1:
            with torch.no_grad():
                val = float(torch.mean((model(x_val)[:, 0] - y_val) ** 2))
            if val < best:
                best, best_step = val, step
                best_state = [q.detach().clone() for q in params]
            elif step - best_step >= preset.adam_patience:
                break
    with torch.no_grad():
        for q, s in zip(params, best_state):
            q.copy_(s)
    model.eval()
    return best_step


def _adam_cell(preset: BridgePreset, seed: int, device) -> dict:
    """The NTK-parameterised network trained by Adam with early stopping: teacher, then a student per weight."""
    p = preset
    data = sine(p.n_train, p.noise, n_val=p.n_val, n_test=p.n_test, seed=p.data_seed)
    x_train, y_train = _tensor(data.x_train, device), _tensor(data.y_train, device)
    x_val, y_val, x_test = _tensor(data.x_val, device), _tensor(data.y_val, device), _tensor(data.x_test, device)
    net = _network(p.adam_width, seed, in_features=1, input_std=p.input_std, activation=p.activation, device=device)
    started = time.perf_counter()
    K, K_test = _ntk(net, x_train, x_test)
    cell = {"width": p.adam_width, "seed": seed, "parameterization": "ntk",
            "kernel": _kernel_quadratic(K, K_test, data.y_train, data.y_test, p.ridge)}
    model = CenteredModel(net)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    stops = [_fit_adam(model, x_train, y_train, None, 1.0, x_val, y_val, p)]
    with torch.no_grad():
        teacher = model(x_train).detach()
        cell["teacher_risk"] = float(torch.mean((model(x_test)[:, 0] - _tensor(data.y_test, device)) ** 2))
    risks = []
    for w in p.grid:
        model.load_state_dict(theta0)                                                # every student from theta0
        stops.append(_fit_adam(model, x_train, y_train, teacher, float(w), x_val, y_val, p))
        with torch.no_grad():
            risks.append(float(np.mean((model(x_test)[:, 0].cpu().numpy() - data.y_test) ** 2)))
    cell.update(deep_risk=risks, stopped_at=stops, seconds=time.perf_counter() - started)
    return cell


def measure_parted(preset: BridgePreset, *, device="cpu", cache_dir=None, out_dir=None, log=None,
                   include_mnist1d: bool = True, mnist1d_per_seed: dict | None = None) -> dict:
    """Where kernel and deep optimal weights part: standard parameterisation, Adam with early stopping,
    cross-entropy on MNIST-1D (the narrow widths are in :func:`measure_width`)."""
    p = preset
    say = log or (lambda msg: None)
    rows = []
    for width in p.standard_widths:
        cells = []
        for seed in p.seeds:
            say(f"bridge standard parameterisation width {width} seed {seed}")
            key, fn, args = _standard_task(p, width, seed, device)
            cells.append(_cached_cell(cache_dir, key, lambda: fn(*args), say))
        rows.append(_weight_row(p, cells, "standard parameterisation, ridge to init, L-BFGS"))
    cells = []
    for seed in p.adam_seeds:
        say(f"bridge Adam with early stopping width {p.adam_width} seed {seed}")
        key, fn, args = _adam_task(p, seed, device)
        cells.append(_cached_cell(cache_dir, key, lambda: fn(*args), say))
    adam = _weight_row(p, cells, "NTK parameterisation, Adam with early stopping, no ridge")
    adam["stopped_at"] = [c["stopped_at"] for c in cells]
    rows.append(adam)
    out = {"rows": rows}
    if include_mnist1d:
        from deepdistill.studies.bridge_mnist1d import aggregate_seeds, mnist1d_cross_entropy

        if mnist1d_per_seed is not None:          # computed seed by seed in other processes (run_bridge_study's jobs)
            mnist = aggregate_seeds(p.mnist1d, [mnist1d_per_seed[int(s)] for s in p.mnist1d["seeds"]])
        elif out_dir is None:        # nothing is kept: the runs live in a temporary folder
            with tempfile.TemporaryDirectory(prefix="bridge_mnist1d_") as tmp:
                mnist = mnist1d_cross_entropy(p.mnist1d, Path(tmp), device=device, log=say)
        else:                      # one folder per settings, so that another preset never meets these runs
            root = Path(out_dir) / "mnist1d_runs" / stable_hash(p.to_dict()["mnist1d"])
            mnist = mnist1d_cross_entropy(p.mnist1d, root, device=device, log=say)
        deep = refine_grid_argmin(mnist["grid"], mnist["mean_val_brier"])
        for kernel, weight in mnist["kernel_gt_weight"].items():
            rows.append({"case": f"MNIST-1D, cross-entropy (KD), AdamW + best-val selection; kernel: eNTK of the {kernel}",
                         "width": None, "parameterization": "standard (PyTorch)",
                         "seeds": list(p.mnist1d["seeds"]), "kernel_gt_weight": weight,
                         "deep_gt_weight": deep["vertex"], "deep_grid_argmin": deep["argmin"],
                         "deep_at_edge": deep["at_edge"], "difference": deep["vertex"] - weight,
                         "grid": mnist["grid"], "deep_risk": mnist["mean_val_brier"], "kernel_risk": None})
        out["mnist1d"] = mnist
    return out


# ------------------------------------------------------------------------------------------------
# (d) the BA toy with a wide network
# ------------------------------------------------------------------------------------------------

def _shape(loss_zero: np.ndarray) -> dict:
    """The shape of a gt_weight-0 loss curve over steps 1..S: its best step, and whether it rises after it."""
    best = int(np.argmin(loss_zero))
    return {"best_step": best + 1, "u_curve": bool(0 < best < len(loss_zero) - 1),
            "rises_after_best": bool(loss_zero[-1] > loss_zero[best])}


def measure_toy(preset: BridgePreset, *, device="cpu", seed: int = 0) -> dict:
    """(d): [BA21]'s toy, loss against sin(2 pi x) per step: deep (wide network), its eNTK closed form, RBF."""
    from kerneldistill import KernelDistiller
    from kerneldistill.toy import toy_results

    p = preset
    data = ba_toy()
    x_train, x_eval = _tensor(data.x_train, device), _tensor(data.x_test, device)
    net = _network(p.toy_width, seed, in_features=1, input_std=p.toy_input_std, activation=p.activation, device=device)
    K, K_eval = _ntk(net, x_train, x_eval)
    steps = list(range(1, p.toy_steps + 1))
    weights = list(p.toy_weights)
    kernel = KernelDistiller("precomputed", ridge=p.toy_ridge).fit(K, data.y_train)
    ntk_fits = kernel.path(K_eval, steps + [math.inf], gt_weights=weights)               # (W, S+1, p)
    ntk_loss = np.mean((ntk_fits - data.y_test) ** 2, axis=-1)
    path = full_batch_self_distillation(CenteredModel(net), x_train, _tensor(data.y_train, device), ridge=p.toy_ridge,
                                        gt_weights=weights, steps=p.toy_steps, evaluate={"eval": x_eval},
                                        tolerance_grad=p.tolerance_grad, warn_unconverged=False)
    deep_fits = path.evaluations["eval"][..., 0].cpu().numpy()                         # (W, S, p)
    deep_loss = np.mean((deep_fits - data.y_test) ** 2, axis=-1)
    rbf = toy_results(weights, steps + [math.inf])
    curves = {"deep": deep_loss, "ntk_closed_form": ntk_loss[:, :-1], "rbf_closed_form": rbf.loss[:, :-1]}
    zero = weights.index(0.0) if 0.0 in weights else None
    return {"width": p.toy_width, "input_std": p.toy_input_std, "ridge": p.toy_ridge, "gt_weights": weights,
            "steps": steps, "x_eval": data.x_test[:, 0].tolist(), "truth": data.y_test.tolist(),
            "loss": {k: v.tolist() for k, v in curves.items()},
            "limit_loss": {"ntk_closed_form": ntk_loss[:, -1].tolist(), "rbf_closed_form": rbf.loss[:, -1].tolist()},
            "fits": {"deep": deep_fits.tolist(), "ntk_closed_form": ntk_fits[:, :-1].tolist()},
            "shape_at_gt_weight_0": None if zero is None else {k: _shape(v[zero]) for k, v in curves.items()},
            "deep_vs_ntk_relative": float(np.max(np.abs(deep_loss - ntk_loss[:, :-1]) / ntk_loss[:, :-1])),
            "fit_summary": _fit_summary(path)}


# ------------------------------------------------------------------------------------------------
# The study, the must-shows, the table
# ------------------------------------------------------------------------------------------------

def _part_key(p: BridgePreset, part: str, include_mnist1d: bool) -> dict:
    return json.loads(json.dumps({"part": part, "settings": p.part_settings(part), "include_mnist1d": include_mnist1d}))


def _read_part(out: Path | None, p: BridgePreset, part: str, include_mnist1d: bool):
    """``(result, wall_time_s)`` of a part stored in ``out`` with the same settings, else ``None``."""
    if out is None:
        return None
    stored = read_json(out / f"bridge_{part}.json")
    if isinstance(stored, dict) and stored.get("key") == _part_key(p, part, include_mnist1d):
        return stored["result"], stored["wall_time_s"]
    return None


def _study(p: BridgePreset, results: dict, seconds: dict, device) -> dict:
    from deepdistill.engine.results import device_description, library_versions

    study = {"schema": SCHEMA, "preset": p.to_dict(), "parts": results, "wall_time_s": seconds,
             "device": device_description(device), "versions": library_versions()}
    study["must_show"] = must_shows(study)
    return study


def read_bridge_study(out_dir, preset="fast", *, parts=PARTS, include_mnist1d: bool = True) -> dict | None:
    """The study stored in ``out_dir`` by :func:`run_bridge_study` (same preset), or ``None`` if a part is missing.

    Reads only; computes nothing (for the report, which must not start a study of its own).
    """
    p = get_preset(preset)
    results, seconds = {}, {}
    for part in parts:
        stored = _read_part(Path(out_dir), p, part, include_mnist1d)
        if stored is None:
            return None
        results[part], seconds[part] = stored
    return _study(p, results, seconds, "cpu") | {"device": "as stored in bridge_<part>.json"}


def _cell_job(cache_dir: str, key: dict, fn, args, threads: int | None) -> None:
    """In a worker process: one cell computed and stored in ``cache_dir`` (nothing if it is there already)."""
    with torch_threads(threads):
        _cached_cell(Path(cache_dir), key, lambda: fn(*args), None)


def _part_job(p: BridgePreset, part: str, device) -> tuple[dict, float]:
    """In a worker process: a part that is one computation (``exact``, ``toy``), as JSON types, and its seconds."""
    started = time.perf_counter()
    with torch_threads(p.torch_threads):
        result = {"exact": measure_exact, "toy": measure_toy}[part](p, device=device)
    return json.loads(json.dumps(result, default=float)), time.perf_counter() - started


def _mnist1d_seed_job(settings: dict, root: str, seed: int, device: str, threads: int | None) -> dict:
    """In a worker process: the MNIST-1D study of one seed (its runs, left in ``root``, and its kernel surrogates)."""
    from deepdistill.studies.bridge_mnist1d import seed_study

    with torch_threads(threads):
        return json.loads(json.dumps(seed_study(settings, Path(root), seed, device), default=float))


def _prefetch(p: BridgePreset, parts: list, device, cells: Path, mnist_root: Path | None, jobs: int,
              log: Callable[[str], None] | None) -> dict:
    """Compute every independent piece of the study on ``jobs`` processes: the cells (one network of a width x
    seed, of the standard parameterisation, of Adam) into ``cells``, the MNIST-1D runs of each seed into
    ``mnist_root``, and the one-computation parts (returned: ``{part: (result, seconds)}``). The measures then
    read the cells and runs back, so the study's results are those of a serial run: each piece is the same
    computation with the same thread count, only in another process.
    """
    import concurrent.futures as cf
    import multiprocessing

    say = log or (lambda msg: None)
    tasks = []                                                 # (label, cost guess, function, arguments)
    threads = p.torch_threads
    cell_tasks = []
    if "width" in parts:
        cell_tasks += [(f"width {w} seed {s}", w * w, *_width_task(p, w, s, device)) for w in p.widths for s in p.seeds]
    if "parted" in parts:
        cell_tasks += [(f"standard width {w} seed {s}", w * w, *_standard_task(p, w, s, device))
                       for w in p.standard_widths for s in p.seeds]
        cell_tasks += [(f"Adam width {p.adam_width} seed {s}", p.adam_width ** 2 * p.adam_max_steps / 10,
                        *_adam_task(p, s, device)) for s in p.adam_seeds]
        if mnist_root is not None:
            dev = "cuda" if str(device).startswith("cuda") else str(device)
            tasks += [(f"MNIST-1D seed {s}", math.inf, _mnist1d_seed_job, (p.mnist1d, str(mnist_root), int(s), dev, threads))
                      for s in p.mnist1d["seeds"]]
    for label, cost, key, fn, args in cell_tasks:
        stored = read_json(cells / f"{stable_hash(key)}.json")
        if not (isinstance(stored, dict) and stored.get("key") == json.loads(json.dumps(key))):
            tasks.append((label, cost, _cell_job, (str(cells), key, fn, args, threads)))
    for part, cost in (("exact", p.exact_width ** 2), ("toy", p.toy_width ** 2)):
        if part in parts:
            tasks.append((f"part {part}", cost, _part_job, (p, part, device)))
    results: dict = {}
    if not tasks:
        return results
    tasks.sort(key=lambda t: -t[1])                            # the longest first: the last to finish is short
    say(f"bridge: {len(tasks)} independent task(s) on {jobs} process(es)")

    def record(label, fn, args, out) -> None:
        if fn is _part_job:
            results[args[1]] = out
        elif fn is _mnist1d_seed_job:
            results.setdefault("mnist1d_per_seed", {})[args[2]] = out
        say(f"bridge: {label} done")

    # jobs - 1 worker processes take the longest tasks first; this process, which has imported everything
    # already, takes the shortest ones in between (a spawned worker pays ~5-8 s of CPU for its imports and
    # first calls, as much as many small tasks: one fewer of them is that much less).
    pending = list(tasks)
    in_flight: dict = {}
    with cf.ProcessPoolExecutor(max_workers=max(1, min(jobs - 1, len(tasks))),
                                mp_context=multiprocessing.get_context("spawn")) as pool:
        while pending or in_flight:
            while pending and len(in_flight) < jobs - 1:
                label, _, fn, args = pending.pop(0)
                in_flight[pool.submit(fn, *args)] = (label, fn, args)
            if pending:                                        # this process: the shortest task left
                label, _, fn, args = pending.pop()
                record(label, fn, args, fn(*args))
                done = [f for f in in_flight if f.done()]
            else:
                done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for future in done:
                label, fn, args = in_flight.pop(future)
                record(label, fn, args, future.result())     # an error in a task stops the study, as serially
    return results


def run_bridge_study(out_dir=None, preset="fast", *, parts=PARTS, device="cpu",
                     log: Callable[[str], None] | None = None, include_mnist1d: bool = True, jobs: int = 1) -> dict:
    """Run the parts of the study (all by default) and return ``{"preset", "parts", "must_show", ...}``.

    ``out_dir``: where each part's JSON (``bridge_<part>.json``), the per-network cells (``cells/``)
    and the MNIST-1D runs go; a part whose file holds the same settings is read, not recomputed
    (``None``: nothing is written or read). ``device``: ``"cpu"``, ``"cuda"`` or a ``torch.device``.
    ``jobs``: processes that compute the independent pieces (the widths x seeds, the other cells, the MNIST-1D
    seeds, the exact and toy parts) at once (``spawn``; guard a script's entry point with
    ``if __name__ == "__main__":``); the results equal the serial run's (``jobs=1``, in this process).
    Every piece is stored as it finishes, so an interrupted run resumes. Keep ``jobs=1`` on a GPU.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1 (processes); got {jobs!r}.")
    if jobs > 1:
        with contextlib.ExitStack() as stack:
            out = Path(out_dir) if out_dir is not None else Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bridge_")))
            return _run_bridge_study(out, preset, parts=parts, device=device, log=log, include_mnist1d=include_mnist1d,
                                     jobs=jobs, keep=out_dir is not None)
    return _run_bridge_study(None if out_dir is None else Path(out_dir), preset, parts=parts, device=device, log=log,
                             include_mnist1d=include_mnist1d, jobs=1, keep=True)


def _run_bridge_study(out: Path | None, preset, *, parts, device, log, include_mnist1d: bool, jobs: int,
                      keep: bool) -> dict:
    """:func:`run_bridge_study`; ``keep=False``: ``out`` is a temporary folder (the parts are not read from it
    or written as results, only its cells and runs are used)."""
    from deepdistill.engine.results import device_description, library_versions

    p = get_preset(preset)
    parts = list(parts)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; valid parts: {list(PARTS)}.")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but torch sees no CUDA device; use 'cpu'.")
    cells = None if out is None else out / "cells"
    measures = {
        "exact": lambda: measure_exact(p, device=device),
        "width": lambda: measure_width(p, device=device, cache_dir=cells, log=log),
        "parted": lambda: measure_parted(p, device=device, cache_dir=cells, out_dir=out, log=log,
                                         include_mnist1d=include_mnist1d,
                                         mnist1d_per_seed=done_apart.get("mnist1d_per_seed")),
        "toy": lambda: measure_toy(p, device=device),
    }
    results, seconds = {}, {}
    todo = [part for part in parts if not (keep and _read_part(out, p, part, include_mnist1d) is not None)]
    done_apart: dict = {}
    if jobs > 1 and todo:
        mnist_root = out / "mnist1d_runs" / stable_hash(p.to_dict()["mnist1d"]) if include_mnist1d else None
        done_apart = _prefetch(p, todo, device, cells, mnist_root, jobs, log)
    for part in parts:
        stored = _read_part(out, p, part, include_mnist1d) if keep else None
        if stored is not None:
            results[part], seconds[part] = stored
            continue
        if log:
            log(f"bridge part {part!r} ({p.name} preset)")
        started = time.perf_counter()
        if part in done_apart:
            results[part], seconds[part] = done_apart[part]
        else:
            with torch_threads(p.torch_threads):
                results[part] = json.loads(json.dumps(measures[part](), default=float))   # plain JSON types, as read back
            seconds[part] = time.perf_counter() - started
        if out is not None and keep:
            atomic_write_json(out / f"bridge_{part}.json", {
                "schema": SCHEMA, "key": _part_key(p, part, include_mnist1d), "result": results[part],
                "wall_time_s": seconds[part], "device": device_description(device), "versions": library_versions()})
    return _study(p, results, seconds, device)


def must_shows(study: dict) -> list[dict]:
    """The pass/fail rows of the parts present: name, measured value, threshold, passed, detail."""
    parts, p = study["parts"], study["preset"]
    rows = []
    if "exact" in parts:
        e = parts["exact"]
        rows.append({"must_show": "(a) linearised net = closed form", "measured": e["max_relative_difference"],
                     "threshold": e["threshold"], "passed": e["max_relative_difference"] <= e["threshold"],
                     "detail": f"max relative difference over steps 1..{max(e['steps'])}, gt_weight "
                               f"{e['gt_weights']}, train and new points; width {e['width']}; optimiser bound "
                               f"{e['optimiser_bound']:.1e}"})
    if "width" in parts:
        w = parts["width"]
        falls = w["mean_deviation"][-1] < w["mean_deviation"][0]
        rows.append({"must_show": "(b) deviation falls with width", "measured": w["slope"],
                     "threshold": p["slope_threshold"], "passed": falls and w["slope"] <= p["slope_threshold"],
                     "detail": f"log-log slope of the mean relative deviation, widths {w['widths'][0]}..{w['widths'][-1]}, "
                               f"{len(w['seeds'])} seeds; deviation {w['mean_deviation'][0]:.2e} -> "
                               f"{w['mean_deviation'][-1]:.2e}"})
        widest = w["weights"][-1]
        rows.append({"must_show": "(c) optimal weight, kernel = deep at the widest width",
                     "measured": abs(widest["difference"]), "threshold": p["weight_tolerance"],
                     "passed": abs(widest["difference"]) <= p["weight_tolerance"],
                     "detail": f"width {widest['width']}: kernel {widest['kernel_gt_weight']:.3f}, deep "
                               f"{widest['deep_gt_weight']:.3f} (grid of {len(widest['grid'])}, parabola-refined)"})
    return rows


def format_must_shows(rows: list[dict]) -> str:
    """The pass/fail table as aligned text."""
    lines = [f"{'must show':<52} {'measured':>10} {'threshold':>10}  result"]
    for r in rows:
        lines.append(f"{r['must_show']:<52} {r['measured']:>10.3g} {r['threshold']:>10.3g}  "
                     f"{'PASS' if r['passed'] else 'FAIL'}")
        lines.append(f"    {r['detail']}")
    return "\n".join(lines)
