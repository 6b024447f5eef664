"""Exponential moving average of a model's weights, as [ZS20]'s Beta smoothing needs.

Beta smoothing ranks each example by the probability that an EMA of the student gives its true class
(``docs/theory.md`` section 4). The decay is [ZS20]'s ``min(1 - 1/(step + 1), 0.999)``: the early
updates give the running arithmetic mean of the samples (decay ``1 - 1/(k+1)`` is exactly the
running-mean weight) until the decay caps at 0.999. Two variants (``variant``):

* ``"copy"`` (the default): the EMA starts as a COPY of the model (decay 0 at step 0, so the average
  is over the model's own iterates, its initial weights included); BatchNorm running statistics are
  averaged along with the weights (``use_buffers=True``; integer buffers such as
  ``num_batches_tracked`` are copied), and the EMA predicts in eval mode, with those averaged
  statistics.
* ``"zs20"``: what [ZS20]'s public code does (``train_smoothing.py``). The EMA network is a SEPARATELY
  INITIALISED network of the same architecture (pass it as ``init``); the model is never copied into
  it, so its own random initial weights are the first sample of the running mean (after ``k``
  updates they still weigh ``1/(k+1)``, until the cap). Only the parameters are averaged; the EMA
  predicts in TRAIN mode, so BatchNorm normalises with the current batch's statistics (and its
  running statistics follow from its own forward passes, never from the model's), and dropout, if
  any, is active.

Built on ``torch.optim.swa_utils.AveragedModel`` with a custom ``multi_avg_fn`` (``"zs20"`` averages
its parameters directly, see :meth:`EMA.update`): its ``n_averaged`` counter is our ``step`` and is
saved in its ``state_dict`` (:meth:`EMA.state_dict`), so a resumed run continues the schedule.

Reference: [ZS20] Zhang & Sabuncu, "Self-Distillation as Instance-Specific Label Smoothing", NeurIPS
2020, arXiv 2006.05065.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["EMA", "ema_decay", "EMA_VARIANTS"]

#: ``"copy"``: the toolkit's EMA (a copy of the model, averaged BatchNorm statistics, eval mode);
#: ``"zs20"``: [ZS20]'s (a separately initialised network, parameters only, train-mode predictions).
EMA_VARIANTS = ("copy", "zs20")


def ema_decay(step: int, max_decay: float = 0.999) -> float:
    """``min(1 - 1/(step + 1), max_decay)`` ([ZS20]'s schedule); 0 at step 0 (plain copy)."""
    return min(1.0 - 1.0 / (int(step) + 1), float(max_decay))


class EMA:
    """EMA of ``model``: call :meth:`update` after each optimiser step, use :attr:`module` (or call it);
    :meth:`state_dict` / :meth:`load_state_dict` save and resume it.

    ``variant="copy"``: ``ema.module`` is a deep copy of ``model`` on its device, in ``eval()`` mode.
    ``variant="zs20"``: ``init`` is a freshly initialised network of the same architecture (the caller
    seeds its initialisation); ``ema.module`` is a deep copy of ``init``, kept in ``train()`` mode.
    Neither ever receives gradients.
    """

    def __init__(self, model: nn.Module, *, max_decay: float = 0.999, variant: str = "copy",
                 init: nn.Module | None = None):
        max_decay = float(max_decay)
        if not (0.0 <= max_decay < 1.0):
            raise ValueError(f"`max_decay` must be in [0, 1); got {max_decay!r}.")
        if variant not in EMA_VARIANTS:
            raise ValueError(f"`variant` must be one of {list(EMA_VARIANTS)}; got {variant!r}.")
        if (variant == "zs20") != (init is not None):
            raise ValueError("variant 'zs20' needs `init`, a separately initialised network of the model's architecture "
                             f"(and 'copy' takes none); got variant {variant!r} with init={type(init).__name__}.")
        self.max_decay, self.variant = max_decay, variant
        self._decay = 0.0

        def multi_avg_fn(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
            # AveragedModel calls this once per (device, dtype) group; the decay was read once in
            # update(), so there is no host-device sync per tensor.
            if not averaged[0].is_floating_point():       # e.g. BatchNorm's num_batches_tracked
                for a, c in zip(averaged, current):
                    a.copy_(c)
                return
            # a + (1 - decay)(c - a) = decay a + (1 - decay) c; torch's own get_ema_multi_avg_fn uses lerp too
            torch._foreach_lerp_(averaged, current, 1.0 - self._decay)

        if variant == "copy":
            self._averaged = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
            self._averaged.eval()
        else:
            # [ZS20]: the averaged network is the fresh one, on the model's device (AveragedModel is its
            # container and step counter here; update() averages its parameters).
            device = next(model.parameters()).device
            self._averaged = AveragedModel(init.to(device), use_buffers=False)
            self._averaged.train()
        for p in self._averaged.parameters():
            p.requires_grad_(False)
        if variant == "copy":
            self.update(model)                              # step 0: copy
        else:
            # The fresh initial weights are the first sample: the next update uses decay 1/2, as in [ZS20].
            self._averaged.n_averaged.fill_(1)

    @property
    def module(self) -> nn.Module:
        """The averaged network itself (the ``AveragedModel``'s wrapped copy)."""
        return self._averaged.module

    @property
    def step(self) -> int:
        """Number of samples in the average so far (1 after construction)."""
        return int(self._averaged.n_averaged)

    def state_dict(self) -> dict[str, Tensor]:
        """The whole EMA state, to save with a checkpoint: the averaged network's weights and buffers
        (keys ``"module.<name>"``) and the step counter (key ``"n_averaged"``, :attr:`step`).

        It is the ``AveragedModel``'s own ``state_dict``: the counter is what resumes the decay
        schedule, and the format is that of checkpoints written before this method existed.
        """
        return self._averaged.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore a :meth:`state_dict` (weights, buffers and step); the next :meth:`update` continues
        the decay schedule where the saved EMA stopped. Keys must match exactly (torch's strict load)."""
        if not isinstance(state, dict):
            raise TypeError(f"`state` must be a dict from EMA.state_dict(); got {type(state).__name__}.")
        self._averaged.load_state_dict(state)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average (decay ``ema_decay(step)``)."""
        self._decay = ema_decay(self.step, self.max_decay)
        if self.variant == "copy":
            self._averaged.update_parameters(model)
            return
        # "zs20" averages the parameters here rather than through AveragedModel.update_parameters,
        # which with use_buffers=False would also copy the model's buffers (BatchNorm statistics)
        # into the EMA; [ZS20]'s EMA keeps its own.
        averaged = [p.detach() for p in self.module.parameters()]
        torch._foreach_lerp_(averaged, [p.detach() for p in model.parameters()], 1.0 - self._decay)
        self._averaged.n_averaged += 1

    def __call__(self, x: Tensor) -> Tensor:
        return self._averaged.module(x)
