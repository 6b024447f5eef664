"""One generation of self-distillation: the training loop alone, top to bottom (the minGPT / nanoGPT style).

:func:`train_generation` builds a FRESH network (its own seeded initialisation), an optimiser and a
learning-rate schedule, then for every epoch: draws the batch order, computes each batch's loss against the
frozen teacher and the labels (the loss its method names, bound once to the generation's ``gt_weight``,
``temperature`` and ``smoothing``: :meth:`deepdistill.core.losses.LossSpec.bind`), steps, evaluates on the
validation split, keeps the selected epoch's weights and writes a resumable mid-generation checkpoint.
It returns the network with the selected weights and the generation's summary. Where the generation
lives, who may train it and how a run chains its generations is :mod:`deepdistill.engine.train`.

Cost: without augmentation the teacher's logits on the training set are computed once per
generation (eval mode, no gradients) and indexed by each batch's example indices, so a student
generation costs about what a plain run costs; with augmentation the teacher sees each augmented
batch.

Randomness: every stream (initial weights, batch order, augmentation, Beta draws, dropout) is
seeded from ``(seed, generation, stream, epoch)`` by :func:`deepdistill.core.config.derive_seed`; nothing
carries across epochs, so a generation resumed after epoch ``e`` draws what the uninterrupted one drew and
ends with the same weights (exactly, on CPU).
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from deepdistill.core.config import DEVICES, GenerationSettings, TrainConfig, derive_seed
from deepdistill.core.ema import EMA
from deepdistill.core.io import atomic_torch_save
from deepdistill.core.losses import LOSSES, beta_smoothing_targets
from deepdistill.core.metrics import softmax, summarize, summarize_regression
from deepdistill.core.models import build_model
from deepdistill.engine.runs import CorruptFileError, load_checkpoint

__all__ = ["train_generation", "resolve_device", "autocast_for", "predict_logits", "predict_features", "evaluate",
           "NonFiniteLossError", "EpochHook"]

# A hook called after every finished (and checkpointed) epoch: hook(generation=..., epoch=..., metrics=...).
EpochHook = Callable[..., None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names generation, epoch and step."""


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------

def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available else cpu; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch.cuda.is_available() is False; use device='cpu' or 'auto'.")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid devices: {list(DEVICES)}.")
    return torch.device(name)


def autocast_for(config: TrainConfig, device: torch.device):
    """bf16/fp16 autocast on CUDA when ``config.amp`` asks for it; a no-op context otherwise (CPU)."""
    enabled = config.amp != "off" and device.type == "cuda"
    dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, batch_size: int = 1024, autocast=None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Logits ``(n, K)`` as ``dtype`` (float32), in eval mode and without gradients; the model's mode is restored.

    ``no_grad`` rather than ``inference_mode``: a tensor made under inference mode cannot be saved
    for a later backward pass, and teacher logits enter the student's loss.
    """
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, x.shape[0], batch_size):
        with autocast if autocast is not None else contextlib.nullcontext():
            chunks.append(model(x[start:start + batch_size]).to(dtype))  # (b, K)
    model.train(was_training)
    return torch.cat(chunks)                                             # (n, K)


@torch.no_grad()
def predict_features(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Penultimate activations ``model.features(x)`` ``(n, D)``, in eval mode and without gradients
    (every model of :data:`deepdistill.core.models.MODELS` has ``features``); the model's mode is restored."""
    if not hasattr(model, "features"):
        raise ValueError(f"the model must have `features(x)` (its penultimate activations); {type(model).__name__} "
                         "has none.")
    was_training = model.training
    model.eval()
    chunks = [model.features(x[start:start + batch_size]) for start in range(0, x.shape[0], batch_size)]  # (b, D)
    model.train(was_training)
    return torch.cat(chunks)                                             # (n, D)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024, autocast=None,
             task: str = "classification") -> dict[str, float]:
    """The metrics of ``model`` on ``(x, y)``: accuracy, nll, ece, brier, entropy, diversity
    (:func:`deepdistill.core.metrics.summarize`) for classification; mse, rmse
    (:func:`deepdistill.core.metrics.summarize_regression`) for regression."""
    outputs = predict_logits(model, x, batch_size, autocast)             # (n, K)
    if task == "regression":
        return summarize_regression(outputs.cpu().numpy(), y.cpu().numpy())
    return summarize(softmax(outputs.cpu().numpy()), y.cpu().numpy())


@contextlib.contextmanager
def _determinism(enabled: bool):
    """``torch.use_deterministic_algorithms`` and cudnn flags for the run, restored afterwards."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    if enabled:
        # cuBLAS needs a fixed workspace for deterministic matrix products (CUDA >= 10.2).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _make_schedule(config: TrainConfig, optimizer, total_steps: int):
    if config.schedule == "cosine":
        # Stepped once per optimiser step, reaching 0 after the last one.
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _batch_starts(n: int, batch_size: int) -> list[int]:
    # A trailing batch of ONE example is dropped: BatchNorm cannot normalise a batch of one in
    # training mode, and one example in an epoch changes nothing that matters.
    return [s for s in range(0, n, batch_size) if min(batch_size, n - s) >= 2 or n == 1]


def _is_better(selection: str, metrics: dict, best: dict | None) -> bool:
    if best is None or selection == "last":
        return True
    if selection == "best_val_nll":
        return metrics["nll"] < best["nll"]
    if selection == "best_val_mse":
        return metrics["mse"] < best["mse"]
    return metrics["accuracy"] > best["accuracy"]   # ties keep the earlier epoch


def _read_partial(path: Path, generation: int, device, log=None) -> dict | None:
    """The mid-generation state at ``path``, or ``None`` when there is none; an unreadable one (a crash
    while it was written, a truncated copy) is discarded with a warning, and the generation restarts."""
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, device)
    except CorruptFileError as err:
        message = (f"partial checkpoint {str(path)!r} is unreadable ({err.reason}); discarded: generation {generation} "
                   "restarts from its first epoch.")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        if log:
            log(f"warning: {message}")
        path.unlink(missing_ok=True)
        return None


# ------------------------------------------------------------------------------------------------
# One generation
# ------------------------------------------------------------------------------------------------

def train_generation(config: TrainConfig, settings: GenerationSettings, splits, data: dict[str, Tensor],
                     teacher: nn.Module | None, device: torch.device, *, partial_path: Path | None = None,
                     on_epoch_end: EpochHook | None = None, log: Callable[[str], None] | None = None,
                     check: Callable[[], None] | None = None, model_factory: Callable[[], nn.Module] | None = None):
    """Train one generation; return ``(model with the selected weights, summary dict)``.

    ``data`` holds ``x_train, y_train, x_val, y_val, x_test, y_test`` already on ``device``.
    ``partial_path``: where the mid-generation checkpoint lives (resumed from when present; an
    unreadable one is discarded with a warning). ``check``: called after every epoch, before its
    checkpoint is written; what it raises stops the generation (a claim that another process took over).
    ``model_factory``: builds the fresh network (a user's own ``nn.Module``; called under the
    generation's seeded initialisation); default: ``build_model(config.model, ...)``. This is how
    :func:`deepdistill.studies.weight_backends.make_train_fn` trains a user's network with this loop.
    """
    g, cfg = settings.generation, config
    loss_spec = LOSSES[settings.loss]
    # The settings are checked here, once per generation; the bound loss trusts them on every batch.
    loss_fn = loss_spec.bind(gt_weight=settings.gt_weight, temperature=settings.temperature, smoothing=cfg.smoothing,
                             allow_any_weight=cfg.allow_any_weight)
    autocast = autocast_for(cfg, device)
    x_train, y_train = data["x_train"], data["y_train"]                 # (n, *input_shape), (n,)
    n_train, num_classes = x_train.shape[0], splits.num_classes
    task = getattr(splits, "task", "classification")

    # A fresh network with its own seeded initialisation (same architecture every generation).
    torch.manual_seed(derive_seed(cfg.seed, g, "init"))
    model = (model_factory() if model_factory is not None
             else build_model(cfg.model, splits.input_shape, num_classes, **cfg.model_kwargs)).to(device)
    optimizer = _make_optimizer(cfg, model)
    starts = _batch_starts(n_train, cfg.batch_size)
    schedule = _make_schedule(cfg, optimizer, cfg.epochs * len(starts))
    # fp16 needs loss scaling (its range is narrow); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")
    ema = None
    if loss_spec.needs_beta_targets:
        init = None
        if cfg.ema_variant == "zs20":      # [ZS20]: the EMA starts from its own, separately seeded network
            torch.manual_seed(derive_seed(cfg.seed, g, "ema_init"))
            init = model_factory() if model_factory is not None else build_model(
                cfg.model, splits.input_shape, num_classes, **cfg.model_kwargs)
        ema = EMA(model, variant=cfg.ema_variant, init=init)

    start_epoch, best_epoch, best_metrics, best_state, history, elapsed = 0, -1, None, None, [], 0.0
    state = _read_partial(partial_path, g, device, log) if partial_path is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])          # averaged weights and step: the decay schedule resumes
        start_epoch, best_epoch = state["epoch"] + 1, state["best_epoch"]
        best_metrics, best_state = state["best_metrics"], state["best_state"]
        history, elapsed = state["history"], state["elapsed_s"]
        if log:
            log(f"generation {g}: resuming after epoch {state['epoch']}")

    # The teacher is frozen: eval mode (BatchNorm running statistics, no dropout), no gradients.
    cached_teacher = None
    if teacher is not None:
        teacher.eval().requires_grad_(False)
        if splits.augment is None and cfg.cache_teacher:
            cached_teacher = predict_logits(teacher, x_train, cfg.eval_batch_size, autocast)  # (n, K)

    t_start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        torch.manual_seed(derive_seed(cfg.seed, g, "dropout", epoch))   # global RNG: dropout, if any
        order = torch.Generator().manual_seed(derive_seed(cfg.seed, g, "order", epoch))
        # The permutation is drawn on the CPU so that CPU and GPU runs see the same batch order.
        perm = torch.randperm(n_train, generator=order).to(device)       # (n,)
        aug_gen = beta_gen = None
        if splits.augment is not None:
            aug_gen = torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, g, "augment", epoch))
        if ema is not None:
            beta_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, g, "beta", epoch))
        # Loss sum and first bad step stay on the device: checking them every step would force a
        # CPU-GPU sync per step. We read them once per epoch (and stop then, naming the first bad step).
        loss_sum = torch.zeros((), device=device)
        first_bad_step = torch.full((), -1, dtype=torch.long, device=device)

        for step, start in enumerate(starts):
            idx = perm[start:start + cfg.batch_size]                     # (b,)
            xb, yb = x_train[idx], y_train[idx]                          # (b, *input_shape), (b,)
            if aug_gen is not None:
                xb = splits.augment(xb, aug_gen)
            # Without a teacher (GenerationSettings.labels_alone: generation 0) a teacher loss runs on its labels term.
            teacher_logits = beta_targets = None
            if teacher is not None:
                if cached_teacher is not None:
                    teacher_logits = cached_teacher[idx]                 # (b, K)
                else:
                    with torch.no_grad(), autocast:
                        teacher_logits = teacher(xb).float()             # (b, K)
            if ema is not None:
                with torch.no_grad(), autocast:
                    ema_probs = torch.softmax(ema.module(xb).float(), dim=1)   # (b, K)
                confidence = ema_probs.gather(1, yb[:, None]).squeeze(1)      # (b,)
                beta_targets = beta_smoothing_targets(confidence, yb, num_classes, a=cfg.beta_a, generator=beta_gen)

            with autocast:
                logits = model(xb)                                       # (b, K)
            loss = loss_fn(logits.float(), yb, teacher_logits, beta_targets)

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            if ema is not None:
                ema.update(model)

            loss = loss.detach()
            loss_sum += loss
            first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(loss), step, first_bad_step)

        bad = int(first_bad_step)                                        # one sync per epoch
        if bad >= 0:
            raise NonFiniteLossError(
                f"non-finite training loss in generation {g}, epoch {epoch}, step {bad} (method {cfg.method!r}, "
                f"loss {settings.loss!r}, lr {cfg.lr:g}); lower the learning rate or check the data."
            )
        val = evaluate(model, data["x_val"], data["y_val"], cfg.eval_batch_size, autocast, task)
        watched = ("accuracy", "nll") if task == "classification" else ("mse",)
        history.append({"epoch": epoch, "train_loss": float(loss_sum) / len(starts),
                        **{f"val_{m}": val[m] for m in watched}, "lr": optimizer.param_groups[0]["lr"]})
        if _is_better(cfg.selection, val, best_metrics):
            best_epoch, best_metrics = epoch, val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if log:
            log(f"generation {g} epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, "
                + ", ".join(f"val {m} {val[m]:.4f}" for m in watched))

        if check is not None:
            check()
        last = epoch == cfg.epochs - 1
        if partial_path is not None and cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0 and not last:
            atomic_torch_save({
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "best_epoch": best_epoch, "best_metrics": best_metrics,
                "best_state": best_state, "history": history,
                "elapsed_s": elapsed + time.perf_counter() - t_start, "settings": settings.to_dict(),
            }, partial_path, guard=check)
        if on_epoch_end is not None:
            on_epoch_end(generation=g, epoch=epoch, metrics=val)

    model.load_state_dict(best_state)
    summary = {
        **settings.to_dict(),
        "selection": cfg.selection,
        "selected_epoch": best_epoch,
        "epochs_trained": len(history),
        "wall_time_s": elapsed + time.perf_counter() - t_start,
        # CPU seconds of this process while it trained (this session; a resumed generation's earlier
        # sessions are not in it): with several runs side by side, the sum of wall times is not the cost.
        "cpu_time_s": time.process_time() - cpu_start,
        "teacher_cached": cached_teacher is not None,
        "val": evaluate(model, data["x_val"], data["y_val"], cfg.eval_batch_size, autocast, task),
        "test": evaluate(model, data["x_test"], data["y_test"], cfg.eval_batch_size, autocast, task),
        "history": history,
    }
    return model, summary

