"""Exponential moving average of a model's weights, as [ZS20]'s Beta smoothing needs.

[ZS20]'s code keeps an EMA copy of the student with decay ``min(1 - 1/(step + 1), 0.999)``: step 0
copies the model, and the early steps give the running arithmetic mean of the iterates (decay
``1 - 1/(k+1)`` is exactly the running-mean weight) until the decay caps at 0.999.

Built on ``torch.optim.swa_utils.AveragedModel`` with a custom ``multi_avg_fn``: its ``n_averaged``
counter is our ``step`` (it copies on the first update, i.e. decay 0 at step 0), and it is saved in
its ``state_dict`` (:meth:`EMA.state_dict`), so a resumed run continues the schedule. ``use_buffers=True``
so that BatchNorm running statistics are averaged too (otherwise the copy keeps the statistics of
the first step); integer buffers (``num_batches_tracked``) are copied, not averaged.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["EMA", "ema_decay"]


def ema_decay(step: int, max_decay: float = 0.999) -> float:
    """``min(1 - 1/(step + 1), max_decay)`` ([ZS20]'s schedule); 0 at step 0 (plain copy)."""
    return min(1.0 - 1.0 / (int(step) + 1), float(max_decay))


class EMA:
    """EMA copy of ``model``: call :meth:`update` after each optimiser step, use :attr:`module`;
    :meth:`state_dict` / :meth:`load_state_dict` save and resume it.

    ``ema.module`` is a deep copy living on the model's device; it is put in ``eval()`` mode and
    never receives gradients. ``ema(x)`` runs it.
    """

    def __init__(self, model: nn.Module, *, max_decay: float = 0.999):
        max_decay = float(max_decay)
        if not (0.0 <= max_decay < 1.0):
            raise ValueError(f"`max_decay` must be in [0, 1); got {max_decay!r}.")
        self.max_decay = max_decay

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

        self._averaged = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
        self._averaged.eval()
        for p in self._averaged.parameters():
            p.requires_grad_(False)
        self.update(model)                                  # step 0: copy

    @property
    def module(self) -> nn.Module:
        """The averaged network itself (the ``AveragedModel``'s wrapped copy)."""
        return self._averaged.module

    @property
    def step(self) -> int:
        """Number of updates so far (1 after construction)."""
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
        self._averaged.update_parameters(model)

    def __call__(self, x: Tensor) -> Tensor:
        return self._averaged.module(x)
