"""Full-batch training to convergence with a ridge toward the initialisation: the lazy-regime trainer.

One fit minimises, over the model's trainable parameters ``theta`` (starting at ``theta0``)::

    L(theta) = sum_i ||f(x_i; theta) - t_i||^2 + ridge * ||theta - theta0||^2

with the sum-of-squares loss :func:`deepdistill.core.losses.output_mixed_mse_loss` (``reduction="sum"``) and
targets ``t = alpha y + (1 - alpha) f_teacher(X)``. For a linearised model
(:func:`deepdistill.core.linearize.linearize`, ``w = theta - theta0``) this is kernel ridge regression with
the empirical NTK at ``theta0``, so step 1 equals ``KernelRidge(alpha=ridge)`` on that kernel and every
later step is kernel ridge self-distillation (``docs/theory.md`` section 2, [BA21]).

Optimiser: L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search) on the whole training set, chosen
because the problems here are small (tens to hundreds of points) and smooth; it reaches float64
round-off in tens to hundreds of iterations where gradient descent would need the condition number's
worth (``(d_max + ridge) / ridge``, 1e3 and more). Stopping rule, the stated tolerance: the largest
gradient entry ``max |dL/dtheta| <= tolerance_grad``. For the linearised model ``L`` is
``2 ridge``-strongly convex, so at the stop ``||w - w*|| <= ||grad L||_2 / (2 ridge)`` and every
prediction is within ``sqrt(K(x, x)) ||grad L||_2 / (2 ridge)`` of the exact kernel ridge fit
(:attr:`FullBatchFit.prediction_bound` reports this number, which the bridge study checks). The
default ``tolerance_grad = 1e-7`` sits just above what float64 allows: the line search stalls once a
step's decrease (about ``||grad||^2 / L_max``) falls below the round-off of ``L`` itself
(``eps |L|``), i.e. near ``||grad|| ~ sqrt(eps |L| L_max)``, 1e-8 to 1e-7 for the problems here.

Self-distillation (:func:`full_batch_self_distillation`): step 1 fits the labels; step ``t >= 2``
fits the mixed target built from step ``t - 1``'s outputs on the training points, and EVERY step
restarts from the same ``theta0`` (the state of the model when the function is called), as the
kernel theory's steps all start from the same prior.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch import Tensor

from deepdistill.core.losses import output_mixed_mse_loss
from kerneldistill._validation import check_ridge     # the one owner (TypeError for a non-number, ValueError for <= 0)

__all__ = ["FullBatchFit", "fit_full_batch", "full_batch_self_distillation", "SelfDistillationPath", "check_ridge"]


@dataclass(frozen=True)
class FullBatchFit:
    """What one fit reached.

    objective : ``L`` at the end. grad_max : ``max |dL/dtheta|``; grad_norm : ``||dL/dtheta||_2``.
    iterations : L-BFGS iterations. converged : ``grad_max <= tolerance_grad``.
    prediction_bound : ``||grad||_2 / (2 ridge)``, the bound on ``||w - w*||`` of a strongly convex
        (linearised) fit; times ``sqrt(K(x, x))`` it bounds the error of a prediction.
    seconds : wall time.
    """

    objective: float
    grad_max: float
    grad_norm: float
    iterations: int
    converged: bool
    prediction_bound: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("`model` has no trainable parameter (requires_grad=True).")
    return params


def _check_inputs(model: nn.Module, tensors: dict) -> None:
    """Each of ``tensors`` (name -> tensor or None) a finite floating tensor of the model's dtype and device;
    else an error that names it, what it holds and what the model has (torch's own names neither)."""
    params = _trainable(model)
    dtype, device = params[0].dtype, params[0].device
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor; got {type(t).__name__}.")
        if not t.is_floating_point():
            raise TypeError(f"`{name}` must be a floating-point tensor of the model's dtype {dtype}; got {t.dtype}.")
        if t.dtype != dtype:
            raise TypeError(f"`{name}` is {t.dtype} but the model's parameters are {dtype}; convert one to the other "
                            f"(e.g. `{name}.to({dtype})`, or `model.to({t.dtype})`).")
        if t.device != device:
            raise ValueError(f"`{name}` is on {t.device} but the model's parameters are on {device}; move one.")
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(f"`{name}` holds {int(bad.sum())} non-finite value(s) (NaN or inf), e.g. at index "
                             f"{tuple(int(i) for i in bad.nonzero()[0])}; the fits or their outputs would be NaN. Remove or impute them.")


def fit_full_batch(model: nn.Module, x: Tensor, targets: Tensor, *, ridge: float, teacher_outputs: Tensor | None = None,
                   gt_weight: float = 1.0, tolerance_grad: float = 1e-7, max_iter: int = 20_000,
                   history_size: int = 50) -> FullBatchFit:
    """Minimise ``sum_i ||f(x_i) - (alpha y_i + (1 - alpha) f_teacher(x_i))||^2 + ridge ||theta - theta0||^2``
    in place by full-batch L-BFGS, ``theta0`` being the model's trainable parameters at the call.

    Stops when ``max |grad| <= tolerance_grad`` or after ``max_iter`` iterations (``converged`` says which;
    :func:`full_batch_self_distillation` warns about a fit that stopped unconverged).
    ``x``, ``targets`` and ``teacher_outputs`` must be finite and already on the model's device and dtype
    (an error names the tensor and both dtypes otherwise).
    """
    ridge = check_ridge(ridge)
    _check_inputs(model, {"x": x, "targets": targets, "teacher_outputs": teacher_outputs})
    if not (isinstance(tolerance_grad, (int, float)) and tolerance_grad > 0):
        raise ValueError(f"`tolerance_grad` must be a number > 0; got {tolerance_grad!r}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"`max_iter` must be a positive integer; got {max_iter!r}.")
    params = _trainable(model)
    anchor = [p.detach().clone() for p in params]                       # theta0
    model.train()
    # tolerance_change tiny: stop on the gradient (the stated tolerance), not on a stalled objective.
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, max_eval=int(max_iter * 1.25),
                            tolerance_grad=tolerance_grad, tolerance_change=1e-300, history_size=history_size,
                            line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        fit = output_mixed_mse_loss(model(x), targets, teacher_outputs, gt_weight=gt_weight, reduction="sum",
                                    allow_any_weight=True)
        penalty = sum((p - a).pow(2).sum() for p, a in zip(params, anchor))
        return fit + ridge * penalty

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=False)
        value = objective()
        value.backward()
        return value

    started = time.perf_counter()
    opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    value = closure()                                                     # final objective and gradient
    grad = torch.cat([p.grad.reshape(-1) for p in params])
    grad_max, grad_norm = float(grad.abs().max()), float(grad.norm())
    opt.zero_grad(set_to_none=True)
    model.eval()
    return FullBatchFit(objective=float(value.detach()), grad_max=grad_max, grad_norm=grad_norm, iterations=iterations,
                        converged=grad_max <= tolerance_grad, prediction_bound=grad_norm / (2.0 * ridge),
                        seconds=time.perf_counter() - started)


@dataclass
class SelfDistillationPath:
    """Outputs of every step of full-batch self-distillation.

    gt_weights ``(W,)``; steps ``(S,)`` = ``1..S``; train ``(W, S, n, k)`` outputs at the training points;
    evaluations ``{name: (W, S, p, k)}`` outputs at each set of evaluation points; fits ``[W][S]``
    :class:`FullBatchFit` (step 1 is shared by every weight: one fit, repeated in the list).
    """

    gt_weights: list
    steps: list
    train: Tensor
    evaluations: dict
    fits: list

    @property
    def converged(self) -> bool:
        """Whether every fit reached ``max |grad| <= tolerance_grad`` (an unconverged one is also warned about)."""
        return all(f.converged for row in self.fits for f in row)

    @property
    def all_converged(self) -> bool:
        """The same as :attr:`converged` (the older name)."""
        return self.converged

    @property
    def worst_fit(self) -> FullBatchFit:
        return max((f for row in self.fits for f in row), key=lambda f: f.grad_max)


@torch.no_grad()
def _outputs(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    out = model(x)
    return out if out.ndim == 2 else out.unsqueeze(1)                   # (n, k)


def full_batch_self_distillation(model: nn.Module, x_train: Tensor, y_train: Tensor, *, ridge: float, gt_weights,
                                 steps: int, evaluate: dict | None = None, tolerance_grad: float = 1e-7,
                                 max_iter: int = 20_000, warn_unconverged: bool = True) -> SelfDistillationPath:
    """Steps ``1..steps`` of self-distillation for each constant weight in ``gt_weights``, each step a
    :func:`fit_full_batch` from the same ``theta0`` (the model's state now; the model is left at ``theta0``).

    ``evaluate``: ``{name: x}`` points where every step's outputs are recorded (e.g. test points).
    ``x_train``, ``y_train`` and the evaluation points must be finite tensors of the model's dtype and device
    (refused, naming the tensor and both dtypes, before any fit). A fit that stops with its gradient above
    ``tolerance_grad`` (after ``max_iter`` iterations, or earlier when the line search can make no more
    progress) is warned about (RuntimeWarning naming the step, the weight and its gradient), unless
    ``warn_unconverged=False`` (a caller that records and reports the fits' convergence itself); the path's
    :attr:`SelfDistillationPath.converged` says whether every fit converged.
    """
    ridge = check_ridge(ridge)
    _check_inputs(model, {"x_train": x_train, "y_train": y_train,
                          **{f"evaluate[{k!r}]": v for k, v in dict(evaluate or {}).items()}})
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer; got {steps!r}.")
    weights = [float(w) for w in gt_weights]
    if not weights:
        raise ValueError("`gt_weights` must hold at least one weight.")
    evaluate = dict(evaluate or {})
    theta0 = copy.deepcopy(model.state_dict())

    def run(teacher_train: Tensor | None, weight: float, step: int):
        model.load_state_dict(theta0)                                     # every step restarts from theta0
        fit = fit_full_batch(model, x_train, y_train, ridge=ridge, teacher_outputs=teacher_train, gt_weight=weight,
                             tolerance_grad=tolerance_grad, max_iter=max_iter)
        if not fit.converged and warn_unconverged:
            which = "step 1 (the labels alone, shared by every weight)" if step == 1 else f"step {step} at gt_weight {weight:g}"
            why = (f"Raise max_iter ({max_iter}) or tolerance_grad." if fit.iterations >= max_iter else
                   "The line search made no more progress (the loss is flat to round-off there): raise "
                   "tolerance_grad, or fit in float64.")
            warnings.warn(f"full_batch_self_distillation: the fit of {which} stopped unconverged after {fit.iterations} "
                          f"L-BFGS iteration(s): max |grad| {fit.grad_max:.3g} > tolerance_grad {tolerance_grad:g} "
                          f"(||grad||_2 {fit.grad_norm:.3g}). {why}", RuntimeWarning, stacklevel=3)
        return fit, _outputs(model, x_train), {k: _outputs(model, v) for k, v in evaluate.items()}

    first = run(None, 1.0, 1)                                             # step 1: the labels alone
    train_rows, eval_rows, fit_rows = [], {k: [] for k in evaluate}, []
    for w in weights:
        fit, out_train, out_eval = first
        fits, trains, evals = [fit], [out_train], {k: [v] for k, v in out_eval.items()}
        for step in range(2, steps + 1):
            fit, out_train, out_eval = run(trains[-1], w, step)
            fits.append(fit)
            trains.append(out_train)
            for k, v in out_eval.items():
                evals[k].append(v)
        fit_rows.append(fits)
        train_rows.append(torch.stack(trains))
        for k in evaluate:
            eval_rows[k].append(torch.stack(evals[k]))
    model.load_state_dict(theta0)
    return SelfDistillationPath(gt_weights=weights, steps=list(range(1, steps + 1)), train=torch.stack(train_rows),
                                evaluations={k: torch.stack(v) for k, v in eval_rows.items()}, fits=fit_rows)
