"""Self-distillation losses as pure functions of logits (the mdistiller style).

Every function takes raw logits ``(n, K)`` and returns a scalar tensor: the batch MEAN of a
per-example loss. Conventions (``docs/theory.md`` section 4), which must not drift:

* ``gt_weight`` is the weight on the GROUND TRUTH (Borup & Andersen's alpha). Papers whose code
  weights the teacher ([ZS20]'s ``w``) are converted at the boundary: ``w = 1 - gt_weight``.
* KD = KL(teacher || student) SUMMED over classes, AVERAGED over the batch, times ``T^2`` (Hinton).
* Label smoothing has two conventions, always named: ``"muller"`` ([M19]: true class
  ``1 - e + e/K``, others ``e/K``) and ``"shen"`` ([S21]/[ZS20]: true class ``1 - e``, others
  ``e/(K-1)``). They give the same vector when ``e_shen = e_muller (K-1)/K``.

Teacher logits are used as given: the training loop computes them in ``eval()`` under
``torch.no_grad()`` (as mdistiller's distiller module does); the :data:`LOSSES` adapters also
``detach()`` them so that a teacher can never receive gradients through a loss.

References: [BA21] Borup & Andersen 2021 (arXiv 2102.13088); [ZS20] Zhang & Sabuncu 2020 (arXiv
2006.05065); [S21] Shen et al. 2021 (arXiv 2104.00676); [M19] Müller, Kornblith & Hinton 2019
(arXiv 1906.02629); Hinton, Vinyals & Dean 2015 (arXiv 1503.02531); [DPR26] Dang, Patil & Rinaldo
(arXiv 2602.17565: the optimal weight may lie outside [0, 1]).

``gt_weight`` must lie in [0, 1], except with ``allow_any_weight=True`` for the three squared-error
losses ``mse_mixed``, ``mse_logits`` and ``mse_outputs``: the distillation losses here that stay bounded
below for any weight (:attr:`LossSpec.accepts_any_weight`). The range and its escape are checked by
:func:`kerneldistill._validation.check_gt_weight`, the one owner of that rule (also for the kernel side).

Where arguments are checked. The public functions check theirs on every call (cheap scalar and shape
checks, for a user calling them directly). The training loop calls a loss on every batch, so it goes
through :meth:`LossSpec.bind`: the scalar settings (weight, temperature, smoothing) are checked once
per generation, and the bound loss calls the same computations (the private ``_`` functions below)
without checking them again.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cross_entropy",
    "soft_cross_entropy",
    "smoothed_targets",
    "label_smoothing_loss",
    "kd_kl",
    "hinton_kd_loss",
    "mixed_target_mse_loss",
    "output_mixed_mse_loss",
    "zhang_sabuncu_loss",
    "beta_smoothing_targets",
    "beta_smoothing_loss",
    "ls_teacher_kd_loss",
    "LossSpec",
    "LOSSES",
    "get_loss",
    "SMOOTHING_CONVENTIONS",
    "LABELS_ALONE_GT_WEIGHT",
]

SMOOTHING_CONVENTIONS = ("muller", "shen")


# --------------------------------------------------------------------------------------------
# Argument checks (shared by the pure functions and the registry adapters)
# --------------------------------------------------------------------------------------------

#: The weight on the ground truth of a generation that has no teacher (generation 0 of every distillation
#: method): at 1 the teacher's weight ``1 - gt_weight`` is 0, so a loss trains on the labels alone and needs no
#: teacher (:meth:`LossSpec.bind`; :meth:`deepdistill.core.config.GenerationSettings.labels_alone`).
LABELS_ALONE_GT_WEIGHT = 1.0


def _check_weight(value, name: str = "gt_weight", allow_any_weight: bool = False) -> float:
    """One ground-truth weight as a float: in [0, 1], or any finite number when ``allow_any_weight``
    ([DPR26]'s unconstrained weight). :func:`kerneldistill._validation.check_gt_weight` decides and words it."""
    if isinstance(value, Tensor) and value.ndim == 0:
        value = value.item()
    if np.ndim(value) != 0:
        raise TypeError(f"`{name}` must be one real number here (the loss of one generation); got {value!r}.")
    # Imported here: `import kerneldistill` loads scikit-learn and scipy (its estimator), which the losses need
    # nowhere else; after the first call this is a dictionary lookup.
    from kerneldistill._validation import check_gt_weight

    return check_gt_weight(value, allow_any_weight=allow_any_weight, name=name)


def _check_temperature(temperature) -> float:
    temperature = float(temperature)
    if not temperature > 0.0 or math.isinf(temperature):
        raise ValueError(f"`temperature` must be a finite number > 0; got {temperature!r}.")
    return temperature


def _check_smoothing(smoothing) -> float:
    smoothing = float(smoothing)
    if not (0.0 <= smoothing < 1.0):
        raise ValueError(f"`smoothing` must be in [0, 1); got {smoothing!r}.")
    return smoothing


def _check_logits(logits: Tensor, name: str = "logits") -> None:
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"`{name}` must be a 2-D tensor (batch, classes); got {shape}.")


def _check_pair(student_logits: Tensor, teacher: Tensor, teacher_name: str) -> None:
    _check_logits(student_logits, "student_logits")
    _check_logits(teacher, teacher_name)
    if teacher.shape != student_logits.shape:
        raise ValueError(
            f"`{teacher_name}` must have the student's shape {tuple(student_logits.shape)}; "
            f"got {tuple(teacher.shape)}."
        )


# --------------------------------------------------------------------------------------------
# Cross-entropies and label smoothing
# --------------------------------------------------------------------------------------------

def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Batch-mean cross-entropy with hard labels, ``mean_i -log softmax(s_i)[y_i]``."""
    _check_logits(logits)
    return F.cross_entropy(logits, labels)


def soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    """Batch-mean cross-entropy with a target distribution, ``mean_i -sum_k p_ik log softmax(s_i)_k``.

    ``target_probs`` rows should sum to 1 (not checked: a sub-normalised target is sometimes wanted).
    """
    _check_pair(logits, target_probs, "target_probs")
    return _soft_cross_entropy(logits, target_probs)


def _soft_cross_entropy(logits: Tensor, target_probs: Tensor) -> Tensor:
    # log_softmax, not log(softmax): stable for large logits.
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def smoothed_targets(labels: Tensor, num_classes: int, smoothing: float, convention: str = "muller", *,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Label-smoothed one-hot targets ``(n, K)`` of ``dtype`` on ``labels``' device.

    * ``"muller"`` [M19] (also ``torch.nn.CrossEntropyLoss(label_smoothing=e)``): true class
      ``1 - e + e/K``, every other class ``e/K``.
    * ``"shen"`` [S21]/[ZS20]: true class ``1 - e``, every other class ``e/(K-1)``.

    The two coincide when ``e_shen = e_muller (K-1)/K``.
    """
    smoothing = _check_smoothing(smoothing)
    if convention not in SMOOTHING_CONVENTIONS:
        raise ValueError(f"`convention` must be one of {SMOOTHING_CONVENTIONS}; got {convention!r}.")
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    return _smoothed_targets(labels, num_classes, smoothing, convention, dtype)


def _smoothed_targets(labels: Tensor, num_classes: int, smoothing: float, convention: str, dtype) -> Tensor:
    onehot = F.one_hot(labels.long(), num_classes).to(dtype)
    if convention == "muller":
        return onehot * (1.0 - smoothing) + smoothing / num_classes
    return onehot * (1.0 - smoothing) + (1.0 - onehot) * (smoothing / (num_classes - 1))


def label_smoothing_loss(logits: Tensor, labels: Tensor, smoothing: float, convention: str = "muller") -> Tensor:
    """Cross-entropy against :func:`smoothed_targets` (convention named explicitly)."""
    _check_logits(logits)
    return soft_cross_entropy(logits, smoothed_targets(labels, logits.shape[1], smoothing, convention, dtype=logits.dtype))


def _label_smoothing(logits: Tensor, labels: Tensor, smoothing: float, convention: str) -> Tensor:
    return _soft_cross_entropy(logits, _smoothed_targets(labels, logits.shape[1], smoothing, convention, logits.dtype))


# --------------------------------------------------------------------------------------------
# Distillation losses
# --------------------------------------------------------------------------------------------

def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Hinton's distillation term ``T^2 * mean_i KL(softmax(t_i/T) || softmax(s_i/T))``.

    The KL is summed over classes and averaged over the batch (``reduction="batchmean"``; the
    default ``"mean"`` would also divide by K, the most common KD bug). ``T^2`` keeps the gradient
    scale independent of T (Hinton et al. 2015, section 2).
    """
    _check_pair(student_logits, teacher_logits, "teacher_logits")
    return _kd_kl(student_logits, teacher_logits, _check_temperature(temperature))


def _kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def hinton_kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, *,
                   gt_weight: float, temperature: float) -> Tensor:
    """``gt_weight * CE(y, s) + (1 - gt_weight) * kd_kl(s, t, T)`` (Hinton et al. 2015)."""
    gt_weight = _check_weight(gt_weight)
    _check_pair(student_logits, teacher_logits, "teacher_logits")
    return _hinton_kd(student_logits, teacher_logits, labels, gt_weight, _check_temperature(temperature))


def _hinton_kd(student_logits, teacher_logits, labels, gt_weight: float, temperature: float) -> Tensor:
    return gt_weight * F.cross_entropy(student_logits, labels) + (1.0 - gt_weight) * _kd_kl(
        student_logits, teacher_logits, temperature
    )


def mixed_target_mse_loss(student_logits: Tensor, teacher_probs: Tensor, labels: Tensor, *, gt_weight: float,
                          allow_any_weight: bool = False) -> Tensor:
    """[BA21]'s deep loss: ``alpha ||p - onehot(y)||^2 + (1 - alpha) ||p - p_teacher||^2``, p = softmax(s).

    Squared norms are summed over classes and averaged over the batch; ``alpha = gt_weight``
    (Borup & Andersen's own alpha, no conversion). With ``u = onehot(y)``, ``v = p_teacher`` and the
    mixed target ``m = alpha u + (1 - alpha) v``, expanding the squares gives, for ANY real alpha::

        alpha ||p - u||^2 + (1 - alpha) ||p - v||^2
          = (alpha + 1 - alpha) ||p||^2 - 2 <p, m> + alpha ||u||^2 + (1 - alpha) ||v||^2
          = ||p - m||^2 + alpha (1 - alpha) ||u - v||^2

    (``alpha ||u||^2 + (1 - alpha) ||v||^2 - ||m||^2 = alpha (1 - alpha) ||u - v||^2``). So the loss
    is MSE to the mixed target, the deep analogue of kernel ridge self-distillation (``docs/theory.md``
    section 2), plus a term that does not depend on the student. The leading coefficient of the
    quadratic in ``p`` is 1 whatever alpha is, so the loss stays bounded below (by
    ``alpha (1 - alpha) ||u - v||^2``, finite) also for alpha outside [0, 1], where ``m`` leaves the
    simplex (e.g. alpha = 1.5 pushes the true class beyond 1 and the teacher's other classes below
    0) and the student moves as close to it as a softmax can. That is why it accepts
    ``allow_any_weight=True`` ([DPR26]: the optimal weight can lie outside [0, 1]), as do the other two
    squared distances to a mixed target (:func:`output_mixed_mse_loss`: ``mse_logits``, ``mse_outputs``);
    a cross-entropy or KL term with a negative coefficient would be unbounded below.
    """
    _check_pair(student_logits, teacher_probs, "teacher_probs")
    return _mixed_target_mse(student_logits, teacher_probs, labels, _check_weight(gt_weight, "gt_weight", allow_any_weight))


def _squared_distance_to_labels(student_logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(p, ||p - onehot(y)||^2 per example)`` with ``p = softmax(s)``."""
    probs = F.softmax(student_logits, dim=1)
    onehot = F.one_hot(labels.long(), student_logits.shape[1]).to(probs.dtype)
    return probs, (probs - onehot).pow(2).sum(dim=1)


def _mixed_target_mse(student_logits, teacher_probs, labels, gt_weight: float) -> Tensor:
    probs, to_labels = _squared_distance_to_labels(student_logits, labels)
    to_teacher = (probs - teacher_probs).pow(2).sum(dim=1)
    return (gt_weight * to_labels + (1.0 - gt_weight) * to_teacher).mean()


def output_mixed_mse_loss(student_outputs: Tensor, targets: Tensor, teacher_outputs: Tensor | None = None, *,
                          gt_weight: float, reduction: str = "mean", allow_any_weight: bool = False) -> Tensor:
    """Self-distillation on the network's OUTPUTS: ``||f(x) - (alpha y + (1 - alpha) f_teacher(x))||^2``.

    ``alpha = gt_weight`` (weight on the ground truth). The squared norm is summed over outputs, then
    averaged (``reduction="mean"``) or summed (``"sum"``) over the batch. Unlike
    :func:`mixed_target_mse_loss` there is no softmax: ``f`` is the raw output (the logits of a
    classifier, the prediction of a regressor), so with ``reduction="sum"`` and a ridge
    ``ridge ||theta - theta0||^2`` a linearised network trained on it is exactly kernel ridge
    self-distillation with its empirical NTK (``docs/theory.md`` section 2: step ``t`` is kernel ridge regression on
    the mixed target ``alpha y + (1 - alpha) f^(t-1)(X)``).

    * Regression: ``targets`` are real values with the outputs' shape (or ``(n,)`` for ``(n, 1)`` outputs).
    * Classification: ``targets`` are integer labels ``(n,)``, turned into one-hot rows ``(n, K)``.

    ``teacher_outputs`` may be ``None`` only when ``gt_weight == 1`` (:data:`LABELS_ALONE_GT_WEIGHT`: the labels alone).
    The loss is a squared distance to a mixed target, bounded below for any real weight, so
    ``allow_any_weight=True`` accepts any finite ``gt_weight`` ([DPR26]).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"`reduction` must be 'mean' or 'sum'; got {reduction!r}.")
    if not isinstance(student_outputs, Tensor) or student_outputs.ndim not in (1, 2):
        shape = tuple(student_outputs.shape) if isinstance(student_outputs, Tensor) else type(student_outputs).__name__
        raise ValueError(f"`student_outputs` must be a 1-D (n,) or 2-D (n, k) tensor; got {shape}.")
    gt_weight = _check_weight(gt_weight, "gt_weight", allow_any_weight)
    out = student_outputs if student_outputs.ndim == 2 else student_outputs.unsqueeze(1)   # (n, k)
    if not isinstance(targets, Tensor):
        raise ValueError(f"`targets` must be a tensor; got {type(targets).__name__}.")
    if not targets.is_floating_point():
        if targets.ndim != 1 or targets.shape[0] != out.shape[0]:
            raise ValueError(f"integer `targets` must be ({out.shape[0]},) class labels; got shape {tuple(targets.shape)}.")
        target = F.one_hot(targets.long(), out.shape[1]).to(out.dtype)                    # (n, K)
    else:
        target = targets.unsqueeze(1) if targets.ndim == 1 and out.shape[1] == 1 else targets
        if target.shape != out.shape:
            raise ValueError(f"`targets` must have the outputs' shape {tuple(out.shape)}; got {tuple(targets.shape)}.")
        target = target.to(out.dtype)
    if teacher_outputs is None:
        if gt_weight != LABELS_ALONE_GT_WEIGHT:
            raise ValueError(f"`teacher_outputs` is needed unless gt_weight == 1; got None with gt_weight {gt_weight!r}.")
        mixed = target
    else:
        teacher = teacher_outputs.detach()
        teacher = teacher.unsqueeze(1) if teacher.ndim == 1 and out.shape[1] == 1 else teacher
        if teacher.shape != out.shape:
            raise ValueError(f"`teacher_outputs` must have the student's shape {tuple(out.shape)}; "
                             f"got {tuple(teacher_outputs.shape)}.")
        mixed = gt_weight * target + (1.0 - gt_weight) * teacher.to(out.dtype)           # (n, k)
    per_example = (out - mixed).pow(2).sum(dim=1)                                          # (n,)
    return per_example.mean() if reduction == "mean" else per_example.sum()


def zhang_sabuncu_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, *,
                       gt_weight: float = 0.6, temperature: float = 4.0) -> Tensor:
    """[ZS20]'s code: ``(1 - w) CE(y, s) + w CE(softmax(t/T), softmax(s))``.

    Converted at the boundary: their ``w`` weights the TEACHER, so ``w = 1 - gt_weight``; their
    default ``w = 0.4`` is ``gt_weight = 0.6``. Only the teacher is tempered; the student is not,
    and there is no ``T^2`` factor (unlike :func:`hinton_kd_loss`).
    """
    _check_pair(student_logits, teacher_logits, "teacher_logits")
    return _zhang_sabuncu(student_logits, teacher_logits, labels, _check_weight(gt_weight),
                          _check_temperature(temperature))


def _zhang_sabuncu(student_logits, teacher_logits, labels, gt_weight: float, temperature: float) -> Tensor:
    teacher_probs = F.softmax(teacher_logits / temperature, dim=1)
    return gt_weight * F.cross_entropy(student_logits, labels) + (1.0 - gt_weight) * _soft_cross_entropy(
        student_logits, teacher_probs
    )


def ls_teacher_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """[S21]: distillation from a label-smoothed teacher, teacher term only: ``kd_kl(s, t, T)``.

    [S21] uses ``T = 1`` and no ground-truth term. With the KL (rather than the soft cross-entropy)
    the loss is 0 when the student matches the teacher; the two differ by the teacher's entropy
    times ``T^2``, a constant, so the gradients are the same.
    """
    return kd_kl(student_logits, teacher_logits, temperature)


# --------------------------------------------------------------------------------------------
# Beta smoothing [ZS20]
# --------------------------------------------------------------------------------------------

def beta_smoothing_targets(true_class_confidence: Tensor, labels: Tensor, num_classes: int, *,
                           a: float = 3.0, generator: torch.Generator | None = None) -> Tensor:
    """Instance-specific smoothed targets of [ZS20]'s Beta smoothing, ``(n, K)``.

    ``true_class_confidence`` is each example's probability of its true class under the EMA copy
    of the student (:class:`deepdistill.core.ema.EMA`). Draw ``n`` fresh ``b ~ Beta(a, 1)``, sort them
    ascending and give them out by the rank of the confidence: the least confident example gets the
    smallest ``b``. Target row: ``b`` on the true class, ``(1 - b)/(K - 1)`` on every other class,
    so rows sum to 1.

    Sampling: Beta(a, 1) has CDF ``x^a`` on [0, 1], so ``u^(1/a)`` with ``u ~ U(0, 1)`` is an exact
    inverse-CDF sample. We use it rather than ``torch.distributions.Beta`` because the latter cannot
    take a ``torch.Generator`` and would draw from the global RNG. ``u`` is drawn on the
    generator's device and moved to the confidences' device.
    """
    conf = true_class_confidence.detach()
    if conf.ndim != 1:
        raise ValueError(f"`true_class_confidence` must be 1-D (one value per example); got shape {tuple(conf.shape)}.")
    if labels.shape != conf.shape:
        raise ValueError(f"`labels` must have shape {tuple(conf.shape)}; got {tuple(labels.shape)}.")
    a = float(a)
    if not a > 0:
        raise ValueError(f"`a` (Beta(a, 1) shape) must be > 0; got {a!r}.")
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    n = conf.shape[0]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
    b_sorted = u.pow(1.0 / a).sort().values.to(device=conf.device, dtype=torch.float32)  # (n,) ascending
    order = torch.sort(conf, stable=True).indices                     # least confident first
    b = torch.empty_like(b_sorted)
    b[order] = b_sorted                                                # rank-matched
    off = ((1.0 - b) / (num_classes - 1)).unsqueeze(1)                 # (n, 1)
    targets = off.expand(n, num_classes).clone()                       # (n, K)
    targets.scatter_(1, labels.long().view(-1, 1).to(conf.device), b.unsqueeze(1))
    return targets


def beta_smoothing_loss(logits: Tensor, labels: Tensor, targets: Tensor, *, gt_weight: float = 0.4) -> Tensor:
    """[ZS20]'s Beta-smoothing loss ``gt_weight CE(y, s) + (1 - gt_weight) CE(targets, s)``.

    Converted at the boundary: their ``w = 0.6`` weights the smoothed target, so the default
    ``gt_weight = 1 - w = 0.4``.
    """
    gt_weight = _check_weight(gt_weight)
    _check_pair(logits, targets, "targets")
    return _beta_smoothing(logits, labels, targets, gt_weight)


def _beta_smoothing(logits: Tensor, labels: Tensor, targets: Tensor, gt_weight: float) -> Tensor:
    return gt_weight * F.cross_entropy(logits, labels) + (1.0 - gt_weight) * _soft_cross_entropy(
        logits, targets.to(logits.dtype)
    )


# --------------------------------------------------------------------------------------------
# Registry for the training loop
# --------------------------------------------------------------------------------------------

# The names a loss function may take: per batch (what the training loop has at each step) and settings (checked
# once per generation by LossSpec.bind). A loss declares what it uses by naming it, as torchdistill's loss
# classes take their settings by keyword; nothing is passed by position, so no two can be swapped.
BATCH_ARGUMENTS = ("student_logits", "labels", "teacher_logits", "beta_targets")
SETTINGS = ("gt_weight", "temperature", "smoothing")


@dataclass(frozen=True)
class LossSpec:
    """A loss as the training loop sees it.

    ``compute``: a function whose parameters are named from :data:`BATCH_ARGUMENTS` (``student_logits``,
    ``labels``, ``teacher_logits``, ``beta_targets``) and, keyword-only, :data:`SETTINGS` (``gt_weight``,
    ``temperature``, ``smoothing``): it takes exactly what it uses, by name, and computes the loss from
    already-checked settings. :meth:`bind` checks the settings once and returns the per-batch loss; :meth:`fn`
    checks everything on one call. :attr:`needs_teacher` and :attr:`needs_beta_targets` are read from the
    parameters ``compute`` names.

    ``labels_term(student_logits, labels)``: for a loss with a teacher term, the loss at ``gt_weight = 1``
    (:data:`LABELS_ALONE_GT_WEIGHT`, where the teacher's weight is 0), which then needs no teacher; ``None`` for a
    loss that always needs its teacher. Generation 0 of ``sd_mse``, ``sd_logits`` and ``sd_reg`` trains this way.

    ``targets``: ``"labels"`` (integer class labels: every classification loss) or ``"values"`` (real-valued
    regression targets: ``mse_outputs``). :class:`~deepdistill.core.config.TrainConfig` refuses a loss whose
    targets are not the data set's.

    ``accepts_any_weight``: the loss stays bounded below for EVERY real ``gt_weight``, so
    ``allow_any_weight=True`` may take the weight outside [0, 1] ([DPR26]). The three squared distances to a
    mixed target do: ``mse_mixed`` (a quadratic in the student's probabilities with leading coefficient 1,
    see :func:`mixed_target_mse_loss`), ``mse_logits`` and ``mse_outputs`` (the same in the raw outputs,
    :func:`output_mixed_mse_loss`). Every other distillation loss mixes cross-entropy/KL terms: a weight
    outside [0, 1] gives one of them a negative coefficient, and a cross-entropy is unbounded above
    (``-log p -> inf`` as ``p -> 0``), so the loss is unbounded below and training diverges.
    """

    name: str
    compute: Callable[..., Tensor]
    description: str
    accepts_any_weight: bool = False
    labels_term: Callable[[Tensor, Tensor], Tensor] | None = None
    targets: str = "labels"        # what the loss trains on: "labels" (classification) or "values" (regression)

    def __post_init__(self):
        params = inspect.signature(self.compute).parameters
        unknown = sorted(set(params) - set(BATCH_ARGUMENTS) - set(SETTINGS))
        if unknown:
            raise ValueError(f"loss {self.name!r}: `compute` takes unknown argument(s) {unknown}; it may take "
                             f"{list(BATCH_ARGUMENTS)} and, by keyword, {list(SETTINGS)}.")
        positional = [n for n in SETTINGS if n in params and params[n].kind != inspect.Parameter.KEYWORD_ONLY]
        if positional:
            raise ValueError(f"loss {self.name!r}: the settings {positional} must be keyword-only in `compute`.")

    @property
    def uses(self) -> tuple[str, ...]:
        """The names ``compute`` takes (from :data:`BATCH_ARGUMENTS` and :data:`SETTINGS`)."""
        return tuple(inspect.signature(self.compute).parameters)

    @property
    def needs_teacher(self) -> bool:
        return "teacher_logits" in self.uses

    @property
    def needs_beta_targets(self) -> bool:
        return "beta_targets" in self.uses

    def check_gt_weight(self, gt_weight, *, allow_any_weight: bool = False, who: str | None = None,
                        instead: str | None = None) -> float:
        """``gt_weight`` as a float, checked for this loss: in [0, 1] (:func:`kerneldistill._validation.check_gt_weight`),
        or, with ``allow_any_weight``, any finite number if the loss :attr:`accepts_any_weight`; a loss that does
        not is refused, saying why. ``who`` names the caller in that message (default: the loss) and ``instead``
        lists what accepts any weight (default: those losses)."""
        if allow_any_weight and not self.accepts_any_weight:
            value = _check_weight(gt_weight, "gt_weight", True)
            if not 0.0 <= value <= 1.0:
                fitting = [n for n, sp in LOSSES.items() if sp.accepts_any_weight]
                raise ValueError(
                    f"{who or f'loss {self.name!r}'} cannot use `gt_weight` {value!r} outside [0, 1], even with "
                    f"allow_any_weight=True: its loss ({self.name!r}) mixes cross-entropy/KL terms, and a weight outside "
                    "[0, 1] gives one of them a negative coefficient, so the loss is unbounded below and training "
                    f"diverges. Only the squared-error losses accept any weight: {instead or ', '.join(map(repr, fitting))}.")
            return value
        return _check_weight(gt_weight, "gt_weight", allow_any_weight)

    def bind(self, *, gt_weight: float = 1.0, temperature: float = 1.0, smoothing: float = 0.0,
             allow_any_weight: bool = False) -> Callable[..., Tensor]:
        """Check the settings once; return ``loss(student_logits, labels, teacher_logits=None,
        beta_targets=None) -> Tensor``, which trusts them (the training loop calls it on every batch).

        ``allow_any_weight``: a weight outside [0, 1] is accepted by a loss with
        ``accepts_any_weight`` only; the others refuse it, naming the loss that takes one.
        Each setting reaches ``compute`` by its name, and only if ``compute`` takes it.
        """
        gt_weight = self.check_gt_weight(gt_weight, allow_any_weight=allow_any_weight)
        settings = {"gt_weight": gt_weight, "temperature": _check_temperature(temperature),
                    "smoothing": _check_smoothing(smoothing)}
        uses = self.uses
        compute = functools.partial(self.compute, **{k: v for k, v in settings.items() if k in uses})
        takes_teacher, takes_labels = "teacher_logits" in uses, "labels" in uses
        needs_teacher, needs_beta, name = self.needs_teacher, self.needs_beta_targets, self.name
        # The teacher's weight is 0 at gt_weight 1: the labels term alone, no teacher needed.
        without_teacher = self.labels_term if gt_weight == LABELS_ALONE_GT_WEIGHT else None

        def loss(student_logits: Tensor, labels: Tensor, teacher_logits: Tensor | None = None,
                 beta_targets: Tensor | None = None) -> Tensor:
            batch = {"student_logits": student_logits}
            if takes_labels:
                batch["labels"] = labels
            if needs_teacher:
                if teacher_logits is None:
                    if without_teacher is None:
                        raise ValueError(f"loss {name!r} needs `teacher_logits` at gt_weight {gt_weight:g}; got None "
                                         f"(only at gt_weight {LABELS_ALONE_GT_WEIGHT:g}, the labels alone, can a loss "
                                         "with a labels term run without a teacher).")
                    return without_teacher(student_logits, labels)
                if takes_teacher:
                    batch["teacher_logits"] = teacher_logits.detach()     # a teacher never receives gradients
            if needs_beta:
                if beta_targets is None:
                    raise ValueError(f"loss {name!r} needs `beta_targets` (from beta_smoothing_targets); got None.")
                batch["beta_targets"] = beta_targets
            return compute(**batch)

        loss.__name__ = f"{name}_loss"
        return loss

    def fn(self, student_logits: Tensor, labels: Tensor, *, teacher_logits: Tensor | None = None,
           gt_weight: float = 1.0, temperature: float = 1.0, smoothing: float = 0.0,
           beta_targets: Tensor | None = None, allow_any_weight: bool = False) -> Tensor:
        """The loss of one batch with every argument checked (for direct use; a loop should :meth:`bind`)."""
        _check_logits(student_logits, "student_logits")
        if teacher_logits is not None:
            _check_pair(student_logits, teacher_logits, "teacher_logits")
        if beta_targets is not None:
            _check_pair(student_logits, beta_targets, "beta_targets")
        bound = self.bind(gt_weight=gt_weight, temperature=temperature, smoothing=smoothing,
                          allow_any_weight=allow_any_weight)
        return bound(student_logits, labels, teacher_logits, beta_targets)


def _mse_labels_term(s: Tensor, y: Tensor) -> Tensor:
    return _squared_distance_to_labels(s, y)[1].mean()


def _ce_labels_term(s: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(s, y)


def _outputs_labels_term(s: Tensor, y: Tensor) -> Tensor:
    return output_mixed_mse_loss(s, y, None, gt_weight=LABELS_ALONE_GT_WEIGHT)


# The registry's losses: each takes what it uses, by name (settings keyword-only), from checked settings.
def _ce_loss(student_logits, labels):
    return F.cross_entropy(student_logits, labels)


def _ls_muller_loss(student_logits, labels, *, smoothing):
    return _label_smoothing(student_logits, labels, smoothing, "muller")


def _ls_shen_loss(student_logits, labels, *, smoothing):
    return _label_smoothing(student_logits, labels, smoothing, "shen")


def _kd_loss(student_logits, labels, teacher_logits, *, gt_weight, temperature):
    return _hinton_kd(student_logits, teacher_logits, labels, gt_weight, temperature)


def _mse_mixed_loss(student_logits, labels, teacher_logits, *, gt_weight, temperature):
    return _mixed_target_mse(student_logits, F.softmax(teacher_logits / temperature, dim=1), labels, gt_weight)


def _zs_loss(student_logits, labels, teacher_logits, *, gt_weight, temperature):
    return _zhang_sabuncu(student_logits, teacher_logits, labels, gt_weight, temperature)


def _beta_loss(student_logits, labels, beta_targets, *, gt_weight):
    return _beta_smoothing(student_logits, labels, beta_targets, gt_weight)


def _mse_outputs_loss(student_logits, labels, teacher_logits, *, gt_weight):
    # The weight is already checked (any finite value of an accepting loss): no second range check here.
    return output_mixed_mse_loss(student_logits, labels, teacher_logits, gt_weight=gt_weight, allow_any_weight=True)


def _ls_teacher_kd_loss(student_logits, teacher_logits, *, temperature):
    return _kd_kl(student_logits, teacher_logits, temperature)


LOSSES: dict[str, LossSpec] = {spec.name: spec for spec in (
    LossSpec("ce", _ce_loss, "cross-entropy with the (possibly noisy) labels"),
    LossSpec("ls_muller", _ls_muller_loss, "label smoothing [M19]: true 1-e+e/K, others e/K (`smoothing` = e)"),
    LossSpec("ls_shen", _ls_shen_loss, "label smoothing [S21]/[ZS20]: true 1-e, others e/(K-1) (`smoothing` = e)"),
    LossSpec("kd", _kd_loss, "Hinton KD: gt_weight CE + (1-gt_weight) T^2 KL(softmax(t/T) || softmax(s/T))",
             labels_term=_ce_labels_term),
    LossSpec("mse_mixed", _mse_mixed_loss,
             "[BA21]: gt_weight ||p-onehot||^2 + (1-gt_weight) ||p-softmax(t/T)||^2 (their code: T=1); "
             "bounded below for any gt_weight",
             accepts_any_weight=True, labels_term=_mse_labels_term),
    LossSpec("zs", _zs_loss,
             "[ZS20] code: gt_weight CE + (1-gt_weight) CE(softmax(t/T), softmax(s)); their w=0.4,T=4 is gt_weight=0.6",
             labels_term=_ce_labels_term),
    LossSpec("beta", _beta_loss,
             "[ZS20] Beta smoothing: gt_weight CE + (1-gt_weight) CE(beta targets, s); their w=0.6 is gt_weight=0.4"),
    # The loss under which kernel ridge self-distillation is the exact limit (docs/kernel_meets_deep.md):
    # the squared distance of the raw outputs to the mixed target, bounded below for any weight.
    LossSpec("mse_logits", _mse_outputs_loss,
             "||logits - (gt_weight onehot(y) + (1-gt_weight) teacher logits)||^2, no softmax (the "
             "loss of the kernel theory on a classifier); bounded below for any gt_weight",
             accepts_any_weight=True, labels_term=_outputs_labels_term),
    LossSpec("mse_outputs", _mse_outputs_loss,
             "regression: ||f - (gt_weight y + (1-gt_weight) f_teacher)||^2 on real-valued targets; bounded "
             "below for any gt_weight",
             accepts_any_weight=True, targets="values", labels_term=_outputs_labels_term),
    LossSpec("ls_teacher_kd", _ls_teacher_kd_loss,
             "[S21]: T^2 KL from a label-smoothed teacher, teacher term only (gt_weight ignored; T=1 in [S21])"),
)}


def get_loss(name: str) -> LossSpec:
    """Look up ``LOSSES[name]`` with an error that lists the valid names."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid names: {sorted(LOSSES)}.") from None
