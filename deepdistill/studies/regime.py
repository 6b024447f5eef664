"""Does the kernel theory describe my network? A check of the lazy (kernel) regime, and its verdict in words.

The kernel estimators of :mod:`deepdistill.studies.weight_estimation` (``kernel_ntk``, ``one_shot_ntk``) and
the closed forms of :mod:`kerneldistill` are exact for a network that behaves as its linearisation
(``docs/kernel_meets_deep.md`` section 1): trained on the sum of squares of its outputs, with a ridge
toward the initialisation, every generation from the same ``theta0``. :func:`kernel_regime_check` measures
whether a given network and training code are in that regime, the way part (b) of the bridge study
(:mod:`deepdistill.studies.bridge`) measured it:

1. train the teacher from the network at initialisation ``f0`` (on the labels) and a student at
   ``gt_weight`` from the same initialisation (on ``gt_weight y + (1 - gt_weight) f_teacher(X)``);
2. the closed form: kernel ridge self-distillation (``sklearn.kernel_ridge.KernelRidge(kernel="precomputed",
   alpha=ridge)``, the sum-of-squares loss, [BA21]) on the residual targets ``R = Y - f0(X)``: teacher
   ``T = K (K + ridge I)^-1 R``, student ``k(x)^T (K + ridge I)^-1 (gt_weight R + (1 - gt_weight) T)``,
   once with the empirical NTK ``K`` at the initialisation and once with that of the trained teacher
   (the kernel of the toolkit's ``kernel_ntk`` estimator);
3. the deviation ``||(f_student - f0)(X_eval) - closed form||_F / ||closed form||_F`` at new points, for
   both kernels (with ``outputs="probabilities"``: softmax outputs against one-hot targets, the space in
   which the toolkit's classification estimators compare).

The network is **in the kernel regime** when both deviations are at most ``threshold``.

The threshold, :data:`REGIME_THRESHOLD` = 0.01, comes from the bridge's own measurements (full preset,
``docs/kernel_meets_deep.md`` section 3): the same deviation, for NTK-parameterised networks of width 64 ..
4096, was 3.0e-2, 2.4e-2, 9.5e-3, 4.0e-3, 2.5e-3, 1.6e-3, 6.6e-4; the kernel's optimal weight of the
first student differed from the deep one by 0.82 and 0.41 at the two widths above 0.01 (64, 128) and by
0.02 to 0.11 at every width below it (on a weight near 4: within 3%). So below 0.01 the kernel estimators
find the network's weight to about 0.1; above it they may be off by half a unit or more.

``ridge``: the ridge of the closed form. A number when the training code has one (the lazy trainer's
``ridge ||theta - theta0||^2``); ``"match"`` (default): the ridge at which the kernel teacher's training
error equals the network teacher's (sum over outputs, mean over examples), per kernel, the rule of the
toolkit's kernel surrogates. The empirical NTK is the trace over outputs (one scalar kernel for all
outputs, as in :func:`deepdistill.studies.weight_estimators.empirical_ntk_gram`), over the parameters
that require gradients in the model given at initialisation.

:func:`bridge_case` builds the bridge's cases at small sizes (``wide_ntk``, ``standard_64``, ``adam``,
``mnist1d_ce``) for the validation in ``tests/test_regime.py``.

References: [BA21] Borup & Andersen, NeurIPS 2021, arXiv 2102.13088; Lee et al. 2019, arXiv 1902.06720
(wide networks evolve as their linearisation); Chizat, Oyallon & Bach 2019, arXiv 1812.07956 (lazy training).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["REGIME_THRESHOLD", "RegimeCheck", "kernel_regime_check", "entk", "match_ridge", "closed_form_student",
           "BRIDGE_CASES", "bridge_case"]

#: Largest deviation (student vs closed form, relative) still called "in the kernel regime"; see the module docstring.
REGIME_THRESHOLD = 1e-2
OUTPUTS = ("raw", "probabilities")


@dataclass
class RegimeCheck:
    """What :func:`kernel_regime_check` measured and its verdict (``str()`` gives the verdict in words)."""

    in_regime: bool
    deviation_init: float          # student vs closed form on the eNTK at initialisation
    deviation_trained: float       # ... on the trained teacher's eNTK
    kernel_change: float           # ||K_trained - K_init||_F / ||K_init||_F
    threshold: float
    gt_weight: float
    ridge_init: float
    ridge_trained: float
    ridge_rule: str
    outputs: str
    n_train: int
    n_eval: int
    seconds: float

    @property
    def deviation(self) -> float:
        return max(self.deviation_init, self.deviation_trained)

    @property
    def verdict(self) -> str:
        where = (f"the student trained at gt_weight {self.gt_weight:g} deviates from the kernel closed form by "
                 f"{self.deviation_init:.3g} (eNTK at initialisation) and {self.deviation_trained:.3g} (trained "
                 f"teacher's eNTK), threshold {self.threshold:.3g}; the eNTK moved by {self.kernel_change:.3g}")
        if self.in_regime:
            return f"in the kernel regime (the kernel estimators apply): {where}."
        return f"not in the kernel regime (use the trained estimators, e.g. two_run): {where}."

    def __str__(self) -> str:
        return self.verdict

    def to_dict(self) -> dict:
        return {**asdict(self), "deviation": self.deviation, "verdict": self.verdict}


def entk(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor | None = None, *, names=None,
         batch_size: int = 128) -> np.ndarray:
    """Trace empirical NTK ``sum_k <d f_k(x_a)/d theta, d f_k(x_b)/d theta>`` over the parameters ``names``
    (default: every parameter), whatever their ``requires_grad``; the model is not changed. float64 numpy."""
    from torch.func import functional_call, jacrev, vmap

    from deepdistill.core.linearize import CenteredModel

    if isinstance(model, CenteredModel):
        # f - f(theta0) has the kernel of f; its cached f(theta0) cannot run under torch.func
        names = None if names is None else [n[len("model."):] for n in names if n.startswith("model.")]
        model = model.model
    was_training = model.training
    model.eval()
    named = dict(model.named_parameters())
    names = list(named) if names is None else list(names)
    missing = [n for n in names if n not in named]
    if missing:
        raise ValueError(f"the trained model lacks parameters {missing[:3]} of the model at initialisation; "
                         "`fit` must return a network of the same architecture.")
    params = {n: named[n].detach() for n in names}
    rest = {n: p.detach() for n, p in named.items() if n not in params}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p, x):
        return functional_call(model, ({**rest, **p}, buffers), (x.unsqueeze(0),)).squeeze(0).reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))

    def jacobian(x):                                                   # (n, K, P)
        return torch.cat([torch.cat([v.reshape(v.shape[0], v.shape[1], -1) for v in jac(params, xb).values()], dim=2)
                          for xb in torch.split(x, batch_size)]).double()

    try:
        Jb = jacobian(x_a if x_b is None else x_b)
        Ja = Jb if x_b is None else jacobian(x_a)
        gram = torch.einsum("ikp,jkp->ij", Ja, Jb)
        if x_b is None:
            gram = 0.5 * (gram + gram.T)
    finally:
        model.train(was_training)
    return gram.cpu().numpy()


def _train_residual(evals: np.ndarray, z2: np.ndarray, ridge: float, n: int) -> float:
    """Mean over examples of the summed squared training residual of kernel ridge with ``ridge``:
    ``sum_j (ridge / (d_j + ridge))^2 z_j^2 / n`` with ``z = V^T R`` (``z2``: squared norms per eigenvector)."""
    return float(np.sum((ridge / (evals + ridge)) ** 2 * z2) / n)


def match_ridge(K: np.ndarray, R: np.ndarray, target: float) -> tuple[float, str]:
    """The ridge at which kernel ridge on ``(K, R)`` leaves the training residual ``target`` (mean over
    examples of the squared error summed over outputs), by bisection in ``log ridge`` (the residual grows
    with the ridge). Returns ``(ridge, rule)``; an unreachable target is clipped to the nearest end and said."""
    from scipy.optimize import brentq

    evals, V = np.linalg.eigh(K)
    evals = np.clip(evals, 0.0, None)
    z2 = np.sum((V.T @ R) ** 2, axis=1)
    n = K.shape[0]
    scale = max(float(np.mean(np.diag(K))), 1e-300)
    lo, hi = math.log(scale * 1e-10), math.log(scale * 1e8)
    gap = lambda log_r: _train_residual(evals, z2, math.exp(log_r), n) - target   # noqa: E731
    if gap(lo) >= 0:
        return math.exp(lo), f"match (network fit {target:.3g} at or below the kernel's smallest; ridge at its floor)"
    if gap(hi) <= 0:
        return math.exp(hi), f"match (network fit {target:.3g} at or above the kernel's largest; ridge at its ceiling)"
    return math.exp(brentq(gap, lo, hi, xtol=1e-10)), f"match (teacher training error {target:.4g})"


def closed_form_student(K: np.ndarray, K_eval: np.ndarray, R: np.ndarray, gt_weight: float, ridge: float) -> np.ndarray:
    """Kernel ridge self-distillation ([BA21], step 2) on residual targets ``R``: the student's predictions
    at the evaluation points. ``KernelRidge(alpha=ridge, kernel="precomputed")`` (sum-of-squares loss)."""
    from sklearn.kernel_ridge import KernelRidge

    teacher = KernelRidge(alpha=ridge, kernel="precomputed").fit(K, R)
    target = gt_weight * R + (1.0 - gt_weight) * teacher.predict(K)
    return KernelRidge(alpha=ridge, kernel="precomputed").fit(K, target).predict(K_eval)


def _targets(y: torch.Tensor, k: int) -> np.ndarray:
    y = y.detach().cpu()
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        if k < 2:
            raise ValueError(f"`y_train` holds class labels but the network has {k} output(s); labels need one per class.")
        return torch.nn.functional.one_hot(y.long(), k).double().numpy()
    y = y.double().numpy()
    return y.reshape(len(y), -1)


def kernel_regime_check(model: nn.Module, fit: Callable, x_train: torch.Tensor, y_train: torch.Tensor,
                        x_eval: torch.Tensor, *, gt_weight: float = 0.5, ridge="match", outputs: str = "raw",
                        threshold: float = REGIME_THRESHOLD) -> RegimeCheck:
    """Is ``model`` trained by ``fit`` in the kernel regime? Returns a :class:`RegimeCheck` (its ``verdict``).

    Parameters
    ----------
    model : the network at initialisation, from which your training starts (copied, never changed).
    fit : ``fit(network, gt_weight, teacher) -> trained network``: trains ``network`` (a fresh copy of
        ``model``) on ``gt_weight y + (1 - gt_weight) teacher(x)`` (your loss), in place or not;
        ``fit(network, 1.0, None)`` trains the teacher on the labels.
    x_train, y_train : the training set ``fit`` uses (labels as integers, or real targets ``(n,)``/``(n, k)``).
    x_eval : new points at which student and closed form are compared.
    gt_weight : the student's weight on the labels (not 1: the student would be a teacher).
    ridge : a number > 0 (your trainer's ridge toward the initialisation) or ``"match"``.
    outputs : ``"raw"`` (the network's outputs, the kernel theory's) or ``"probabilities"`` (softmax).
    threshold : the largest deviation called "in the regime" (default :data:`REGIME_THRESHOLD`).
    """
    started = time.perf_counter()
    if outputs not in OUTPUTS:
        raise ValueError(f"`outputs` must be one of {OUTPUTS}; got {outputs!r}.")
    if not isinstance(gt_weight, (int, float)) or isinstance(gt_weight, bool) or not math.isfinite(gt_weight) \
            or gt_weight == 1.0:
        raise ValueError(f"`gt_weight` must be a finite number other than 1 (at 1 the student is a teacher); got {gt_weight!r}.")
    if not (ridge == "match" or (isinstance(ridge, (int, float)) and not isinstance(ridge, bool) and ridge > 0)):
        raise ValueError(f"`ridge` must be a number > 0 or 'match'; got {ridge!r}.")
    if not callable(fit):
        raise TypeError(f"`fit` must be callable as fit(network, gt_weight, teacher); got {type(fit).__name__}.")
    if len(x_train) != len(y_train):
        raise ValueError(f"`x_train` and `y_train` must have the same length; got {len(x_train)} and {len(y_train)}.")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError("`model` has no parameter that requires gradients: there is nothing to train.")
    initial = copy.deepcopy(model).eval()

    def out(net, x):
        with torch.no_grad():
            f = net.eval()(x)
        f = f.reshape(len(x), -1).double()
        return (torch.softmax(f, dim=1) if outputs == "probabilities" else f).cpu().numpy()

    f0_train, f0_eval = out(initial, x_train), out(initial, x_eval)
    Y = _targets(y_train, f0_train.shape[1])
    if Y.shape[1] != f0_train.shape[1]:
        raise ValueError(f"the network has {f0_train.shape[1]} output(s) but `y_train` gives {Y.shape[1]} per example.")
    teacher = fit(copy.deepcopy(model), 1.0, None)
    if teacher is None:
        raise ValueError("`fit` returned None for the teacher; it must return the trained network.")
    student = fit(copy.deepcopy(model), float(gt_weight), teacher)
    if student is None:
        raise ValueError("`fit` returned None for the student; it must return the trained network.")
    t_train = out(teacher, x_train)
    if not np.all(np.isfinite(t_train)):
        raise ValueError("the teacher trained by `fit` produces non-finite outputs (NaN or inf) on `x_train`.")
    s_eval = out(student, x_eval) - f0_eval
    R = Y - f0_train
    teacher_error = float(np.sum((t_train - Y) ** 2) / len(Y))
    devs, ridges, rules, grams = [], [], [], []
    for net in (initial, teacher):
        K = entk(net, x_train, names=names)
        K_eval = entk(net, x_eval, x_train, names=names)
        grams.append(K)
        if ridge == "match":
            r, rule = match_ridge(K, R, teacher_error)
        else:
            r, rule = float(ridge), "given"
        closed = closed_form_student(K, K_eval, R, float(gt_weight), r)
        devs.append(float(np.linalg.norm(s_eval - closed) / max(np.linalg.norm(closed), 1e-300)))
        ridges.append(r)
        rules.append(rule)
    change = float(np.linalg.norm(grams[1] - grams[0]) / np.linalg.norm(grams[0]))
    return RegimeCheck(in_regime=bool(max(devs) <= threshold), deviation_init=devs[0], deviation_trained=devs[1],
                       kernel_change=change, threshold=float(threshold), gt_weight=float(gt_weight),
                       ridge_init=ridges[0], ridge_trained=ridges[1], ridge_rule=" / ".join(dict.fromkeys(rules)),
                       outputs=outputs, n_train=len(x_train), n_eval=len(x_eval),
                       seconds=time.perf_counter() - started)


# ------------------------------------------------------------------------------------------------
# The bridge's cases, at small sizes
# ------------------------------------------------------------------------------------------------

#: name -> (description, expected verdict: in the kernel regime?)
BRIDGE_CASES = {
    "wide_ntk": ("NTK parameterisation, width 1024 (small) or 4096, ridge-to-init L-BFGS on the sum of squares (sine)", True),
    "standard_64": ("standard parameterisation, width 64, the same trainer (sine)", False),
    "adam": ("NTK parameterisation, width 256, Adam with early stopping, no ridge (sine)", False),
    "mnist1d_ce": ("cnn1d on MNIST-1D, KD loss with cross-entropy, AdamW (softmax outputs)", False),
}


def _lazy_fit(ridge: float, x, y):
    from deepdistill.engine.lazy import fit_full_batch

    def fit(net, w, teacher):
        t = None if teacher is None else teacher(x).detach()
        fit_full_batch(net, x, y, ridge=ridge, teacher_outputs=t, gt_weight=w if teacher is not None else 1.0)
        return net
    return fit


def _adam_fit(x, y, x_val, y_val, *, lr=1e-2, max_steps=200, patience=50, every=10):
    """Full-batch Adam on the outputs' mean squared error to the mixed target, early-stopped on ``(x_val, y_val)``."""
    from deepdistill.core.losses import output_mixed_mse_loss

    def fit(net, w, teacher):
        t = None if teacher is None else teacher(x).detach()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        best, best_state, best_step = math.inf, copy.deepcopy(net.state_dict()), 0
        for step in range(max_steps):
            loss = output_mixed_mse_loss(net(x), y, t, gt_weight=w if teacher is not None else 1.0, allow_any_weight=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % every == 0:
                with torch.no_grad():
                    val = float(torch.mean((net(x_val) - y_val) ** 2))
                if val < best:
                    best, best_state, best_step = val, copy.deepcopy(net.state_dict()), step
                elif step - best_step >= patience:
                    break
        net.load_state_dict(best_state)
        return net
    return fit


def _kd_fit(x, y, *, epochs=20, lr=1e-2, temperature=4.0, batch=50, seed=0):
    """AdamW on the toolkit's KD loss ``w CE + (1 - w) T^2 KL`` (cross-entropy on labels for the teacher)."""
    from deepdistill.core.losses import cross_entropy, hinton_kd_loss

    def fit(net, w, teacher):
        g = torch.Generator().manual_seed(seed)
        t_all = None if teacher is None else teacher.eval()(x).detach()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(batch):
                logits = net(x[idx])
                loss = cross_entropy(logits, y[idx]) if teacher is None else \
                    hinton_kd_loss(logits, t_all[idx], y[idx], gt_weight=w, temperature=temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return net.eval()
    return fit


def bridge_case(name: str, *, seed: int = 0, small: bool = True) -> dict:
    """One of :data:`BRIDGE_CASES` as keyword arguments of :func:`kernel_regime_check` (plus ``expected``)."""
    from deepdistill.core.ntk import NTKMLP
    from deepdistill.core.regression import sine

    if name not in BRIDGE_CASES:
        raise ValueError(f"unknown bridge case {name!r}; valid: {sorted(BRIDGE_CASES)}.")
    expected = BRIDGE_CASES[name][1]
    if name == "mnist1d_ce":
        from deepdistill.core.data import load_dataset
        from deepdistill.core.models import build_model

        d = load_dataset("mnist1d", seed=seed, n_train=200 if small else 1000, label_noise=0.2)
        x, y = d.train.tensors
        x_eval = d.test.tensors[0][:100 if small else 1000]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_model("cnn1d", d.input_shape, d.num_classes)
        return {"model": net, "fit": _kd_fit(x, y, epochs=10 if small else 30), "x_train": x, "y_train": y,
                "x_eval": x_eval, "outputs": "probabilities", "expected": expected}
    data = sine(64, 0.5, n_val=32, n_test=200, seed=0)
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)    # noqa: E731
    x, y, x_eval = as_t(data.x_train), as_t(data.y_train).reshape(-1, 1), as_t(data.x_test)
    width = {"wide_ntk": 1024 if small else 4096, "standard_64": 64, "adam": 256}[name]
    param = "standard" if name == "standard_64" else "ntk"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = NTKMLP(1, width, input_std=1.0, activation="tanh", parameterization=param).double()
    model = net                    # not centred: the check subtracts f(theta0) itself
    if name == "adam":
        fit = _adam_fit(x, y, as_t(data.x_val), as_t(data.y_val).reshape(-1, 1))
        return {"model": model, "fit": fit, "x_train": x, "y_train": y, "x_eval": x_eval, "expected": expected}
    return {"model": model, "fit": _lazy_fit(1.0, x, y), "x_train": x, "y_train": y, "x_eval": x_eval,
            "ridge": 1.0, "expected": expected}
