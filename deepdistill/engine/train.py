"""Multi-generation self-distillation: one readable loop, top to bottom (the nanoGPT style).

Generation 0 trains a network on the labels. Generation ``g >= 1`` trains a FRESH network of the
same architecture (its own seeded initialisation) against the frozen, selected generation ``g-1``
and the labels, with the loss its method names (:data:`deepdistill.core.config.METHODS`) and the
generation's ``gt_weight`` (weight on the ground truth) and ``temperature``
(``docs/theory.md`` section 4; [BA21], [ZS20], [S21]).

Cost: without augmentation the teacher's logits on the training set are computed once per
generation (eval mode, no gradients) and indexed by each batch's example indices, so a student
generation costs about what a plain run costs; with augmentation the teacher sees each augmented
batch.

The run folder holds the config, one checkpoint per finished generation, the mid-generation state of
the generation in progress (removed at its end) and, once every generation is done, the results
record; :mod:`deepdistill.engine.runs` names these files and reads them back, every write is atomic
(:mod:`deepdistill.core.io`).

:func:`train_run` trains (or resumes) one run in its folder; :func:`run_one` does so for a run of a
sweep folder (``<sweep>/runs/<run_id>/``), the unit that every sweep backend executes.

Randomness: every stream (initial weights, batch order, augmentation, Beta draws, dropout) is
seeded from ``(seed, generation, stream, epoch)`` by :func:`deepdistill.core.config.derive_seed`; nothing
carries across epochs, so a run resumed after epoch ``e`` draws what the uninterrupted run drew and
ends with the same weights (exactly, on CPU).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from deepdistill.engine.claims import DEFAULT_STALE_AFTER, Holder, heartbeat_interval, try_claim
from deepdistill.core.config import (DEVICES, PER_GENERATION_FIELDS, GenerationSettings, TrainConfig, config_diff,
                                derive_seed, ensure_config)
from deepdistill.core.ema import EMA
from deepdistill.core.io import atomic_torch_save, atomic_write_json, read_json
from deepdistill.core.losses import LOSSES, beta_smoothing_targets
from deepdistill.core.metrics import headline_metric, softmax, summarize, summarize_regression
from deepdistill.core.models import build_model
from deepdistill.engine.results import describe_run, make_record
from deepdistill.engine.runs import (CONFIG_FILE, RECORD_FILE, CorruptFileError, checkpoint_path, claim_path,
                              ensure_folder, generation_cache_dir, inspect_record, is_finished, link_or_copy, load_checkpoint,
                              load_splits, partial_path, prefix_dir, restore_generation, run_dir_for)

__all__ = ["train_run", "run_one", "train_generation", "load_run_data", "resolve_device", "predict_logits",
           "predict_features", "evaluate", "NonFiniteLossError", "ConfigMismatchError", "GenerationBusy"]

# A hook called after every finished (and checkpointed) epoch: hook(generation=..., epoch=..., metrics=...).
EpochHook = Callable[..., None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names generation, epoch and step."""


class ConfigMismatchError(ValueError):
    """A run folder holds a run made with a different config."""


class GenerationBusy(Exception):
    """Another live process holds the claim on a generation this call would train (with ``wait=False``)."""

    def __init__(self, holder: Holder, generation: int):
        super().__init__(f"generation {generation} is being trained by {holder.describe()}")
        self.holder, self.generation = holder, generation


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

    t_start = time.perf_counter()
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
            # Without a teacher (generation 0) a teacher loss runs at gt_weight 1: its labels term alone.
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
        "teacher_cached": cached_teacher is not None,
        "val": evaluate(model, data["x_val"], data["y_val"], cfg.eval_batch_size, autocast, task),
        "test": evaluate(model, data["x_test"], data["y_test"], cfg.eval_batch_size, autocast, task),
        "history": history,
    }
    return model, summary


# ------------------------------------------------------------------------------------------------
# A run: every generation, checkpointed and resumable
# ------------------------------------------------------------------------------------------------

def _check_config(config: TrainConfig, run_dir: Path) -> None:
    """Refuse a run folder made with a different config (per-generation fields: see _load_finished)."""
    path = run_dir / CONFIG_FILE
    stored = read_json(path)
    if stored is None and path.exists() or stored is not None and not isinstance(stored, dict):
        # Not ours (planted, or overwritten): never guessed at, nor silently replaced.
        raise CorruptFileError(f"{str(path)!r} is not a run config (a JSON object of TrainConfig fields); delete it "
                               "to have this command write its own, or use another out_dir.", path, "not a run config")
    if stored is not None:
        # Operational fields and knobs the method never reads (see TrainConfig.identity) may differ.
        unread = tuple(set(config.to_dict()) - set(config.identity()))
        differ = config_diff(stored, config.to_dict(), ignore=unread + PER_GENERATION_FIELDS)
        if differ:
            details = "; ".join(f"{k}: {stored.get(k)!r} in the folder, {getattr(config, k, None)!r} now" for k in differ)
            raise ConfigMismatchError(
                f"run folder {str(run_dir)!r} was made with a different config; fields that differ: {differ} "
                f"({details}). Use another out_dir, or delete the folder to start over."
            )


def _check_settings(stored: dict, settings: GenerationSettings, path: Path) -> None:
    now = settings.to_dict()
    differ = [k for k in now if stored.get(k) != now[k]]
    if differ:
        raise ConfigMismatchError(
            f"{str(path)!r} was trained with different settings for generation {settings.generation}; fields that "
            f"differ: {differ} (" + "; ".join(f"{k}: {stored.get(k)!r} there, {now[k]!r} now" for k in differ)
            + "). Use another out_dir, or delete the folder to start over."
        )


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


def _load_finished(config: TrainConfig, run_dir: Path, device: torch.device, log=None) -> dict[int, dict]:
    """Checkpoints of the finished generations, after checking every checkpoint's settings (finished
    or partial) against the config, so that a refused resume is refused before anything is written."""
    finished = {}
    for g in range(config.generations):
        done, partial = checkpoint_path(run_dir, g), partial_path(run_dir, g)
        if done.exists():
            finished[g] = load_checkpoint(done, device)
            _check_settings(finished[g]["summary"], config.generation_settings(g), done)
        else:
            state = _read_partial(partial, g, "cpu", log)
            if state is not None:
                _check_settings(state["settings"], config.generation_settings(g), partial)
    return finished


def _read_existing_record(run_dir: Path, log=None) -> dict | None:
    """The run folder's complete record, or ``None``; an unreadable one is named (it is then written anew
    from the run's checkpoints, which a record only summarises)."""
    record, problem = inspect_record(run_dir / RECORD_FILE)
    if problem is not None:
        message = (f"record {str(run_dir / RECORD_FILE)!r} {problem}; the run is finished again from its checkpoints "
                   "and the record rewritten.")
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        if log:
            log(f"warning: {message}")
    return record


def _obtain_generation(config: TrainConfig, g: int, folder: Path, *, splits, data, teacher_fn: Callable, device,
                       claim_timeout: float, wait: bool, adopt_from: Path | None = None,
                       on_epoch_end: EpochHook | None = None, log=None):
    """``(state, model or None)`` of generation ``g`` of ``config`` in ``folder`` (a run folder, or the
    generation cache's folder of that prefix): read when its checkpoint is there, else trained here.

    Training happens under a claim (:mod:`deepdistill.engine.claims`): while another live process holds it,
    this call waits for that process's checkpoint (``wait=True``; a stale claim is taken over) or
    raises :class:`GenerationBusy` (``wait=False``, for a scheduler that has other work). The claim is
    checked after every epoch, so a process whose claim was taken over stops.
    ``adopt_from``: a run folder whose partial checkpoint of ``g`` (from before the cache) is moved in.
    """
    done = checkpoint_path(folder, g)
    ensure_folder(folder, f"folder of generation {g}")
    said_waiting = False
    while True:
        if done.exists():
            return load_checkpoint(done, device), None
        what = f"generation {g} of {config.method} seed {config.seed} (run {config.run_id()})"
        claim = try_claim(claim_path(folder, g), what, claim_timeout, log=log)
        if isinstance(claim, Holder):
            if not wait:
                raise GenerationBusy(claim, g)
            note = claim.waiting_note(claim_timeout)
            if not said_waiting and (log or note):    # an unreadable claim is named even without a log
                message = f"generation {g}: {note}" if note else \
                    f"generation {g} is being trained by {claim.describe()}; waiting for it"
                (log or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
            said_waiting = True
            time.sleep(min(heartbeat_interval(claim_timeout), 2.0))
            continue
        with claim:
            if done.exists():          # finished by another process just before we claimed it
                continue
            # Temporary files of this generation's checkpoints left by a process killed mid-write (only the
            # claim's holder writes them, and the claim is ours now).
            for stale in (*folder.glob(f".{checkpoint_path(folder, g).name}.*.tmp"),
                          *folder.glob(f".{partial_path(folder, g).name}.*.tmp")):
                stale.unlink(missing_ok=True)
            partial = partial_path(folder, g)
            if adopt_from is not None and partial_path(adopt_from, g).exists() and not partial.exists():
                os.replace(partial_path(adopt_from, g), partial)
            settings = config.generation_settings(g)
            if log:
                log(f"generation {g}: training in {folder}")
            model, summary = train_generation(config, settings, splits, data,
                                              teacher_fn() if settings.uses_teacher else None, device,
                                              partial_path=partial, on_epoch_end=on_epoch_end, log=log,
                                              check=claim.check)
            state = {"model": model.state_dict(), "summary": summary}
            atomic_torch_save(state, done, guard=claim.check)
            partial.unlink(missing_ok=True)
            return state, model


def load_run_data(config: TrainConfig, device: torch.device, splits=None):
    """``(splits, data)``: the config's DataSplits (``splits`` when given: already loaded by the caller),
    and its six tensors (x/y of train, val, test) on ``device``."""
    splits = load_splits(config) if splits is None else splits
    # Small data sets stay on the device as whole tensors; batches are index slices (no DataLoader).
    data = {}
    for part in ("train", "val", "test"):
        x, y = getattr(splits, part).tensors
        data[f"x_{part}"], data[f"y_{part}"] = x.to(device), y.to(device)
    return splits, data


def train_run(config: TrainConfig | dict, run_dir=None, *, on_epoch_end: EpochHook | None = None,
              log: Callable[[str], None] | None = None, progress: bool | None = None,
              through_generation: int | None = None, cache_dir=None, claim_timeout: float = DEFAULT_STALE_AFTER,
              wait: bool = True, splits=None) -> dict | None:
    """Train every generation of ``config`` in ``run_dir`` (default ``config.out_dir``); return the record.

    Resumes what the folder already holds: finished generations are loaded, not retrained; a
    generation interrupted mid-way restarts after its last checkpointed epoch (an unreadable partial
    checkpoint is discarded with a warning). A folder whose ``record.json`` already covers this config
    is returned as is. ``progress``: a tqdm bar over generations (``None``: only when stderr is a
    terminal). A dict ``config`` is validated into a :class:`TrainConfig` here, once.

    ``through_generation``: train (or load) only generations ``0..through_generation`` and return
    ``None`` without writing ``record.json``. The Ray backend (:mod:`deepdistill.drivers.ray_backend`) trains
    one generation per task this way; a record is only ever written for the whole run, so an
    unfinished chain never leaves a record that looks complete.

    ``cache_dir``: a generation cache (:func:`deepdistill.engine.runs.generation_cache_dir`): each generation
    is taken from there, or trained there for every run that shares it, and linked into ``run_dir``.
    Each generation is trained under a claim (:mod:`deepdistill.engine.claims`, ``claim_timeout`` seconds
    without a heartbeat before a claim is stale): a generation that another process is training is
    waited for (``wait=False``: :class:`GenerationBusy` is raised instead). ``splits``: the config's data,
    already loaded (:func:`deepdistill.engine.runs.load_splits`; a sweep worker loads a data set once for all its tasks).
    """
    config = ensure_config(config)
    run_dir = Path(run_dir if run_dir is not None else config.out_dir)
    return _train_run(config, run_dir, _read_existing_record(run_dir, log), on_epoch_end=on_epoch_end, log=log,
                      progress=progress, through_generation=through_generation, cache_dir=cache_dir,
                      claim_timeout=claim_timeout, wait=wait, splits=splits)


def run_one(config: TrainConfig, sweep_dir, *, log: Callable[[str], None] | None = None,
            progress: bool | None = None, share_generations: bool = True, claim_timeout: float = DEFAULT_STALE_AFTER,
            wait: bool = True) -> dict:
    """Train (or resume, or just load) ``config``'s run in ``sweep_dir/runs/<run_id>/``; return its record.

    The unit of work of every sweep backend: a pure function of its arguments and the files in that
    folder (no module state), so a remote worker can call it with a config and a shared folder. The
    record is read once; a finished run is returned without training. ``log`` gets one line per run.
    ``share_generations``: take generations from the sweep's generation cache (``sweep_dir/generations``)
    and train them there, once for every run that shares them (see :func:`train_run`).
    """
    run_dir = run_dir_for(config, sweep_dir)
    record = _read_existing_record(run_dir, log)
    if is_finished(record, config):
        if log:
            log(describe_run("skipped (finished)", record))
        return record
    # config.json of a sweep's run names the run folder as its out_dir (every backend writes the same).
    record = _train_run(config.replace(out_dir=str(run_dir)), run_dir, record, log=log, progress=progress,
                        cache_dir=generation_cache_dir(sweep_dir) if share_generations else None,
                        claim_timeout=claim_timeout, wait=wait)
    if log:
        log(describe_run("finished", record))
    return record


def _train_run(config: TrainConfig, run_dir: Path, existing: dict | None, *, on_epoch_end: EpochHook | None = None,
               log: Callable[[str], None] | None = None, progress: bool | None = None,
               through_generation: int | None = None, cache_dir=None, claim_timeout: float = DEFAULT_STALE_AFTER,
               wait: bool = True, splits=None) -> dict | None:
    """:func:`train_run` with the folder's record already read (``existing``: ``None`` if there is none)."""
    from tqdm.auto import tqdm

    last = config.generations - 1 if through_generation is None else through_generation
    if isinstance(last, bool) or not isinstance(last, int) or not 0 <= last < config.generations:
        raise ValueError(f"`through_generation` must be None or an integer in [0, {config.generations - 1}]; "
                         f"got {through_generation!r}.")
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(config, run_dir)
    if is_finished(existing, config):
        return existing
    if existing is not None and existing["config"]["generations"] > config.generations:
        # Training fewer generations here would replace a complete, longer record with a shorter one.
        raise ConfigMismatchError(
            f"run folder {str(run_dir)!r} holds a finished run of {existing['config']['generations']} generations; "
            f"`generations`={config.generations} would replace its record. Ask for "
            f">= {existing['config']['generations']} generations, or use another out_dir."
        )
    device = resolve_device(config.device)
    finished = _load_finished(config, run_dir, device, log)
    atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())

    started = time.perf_counter()
    # fork_rng: the run seeds torch's global generator (initial weights, dropout) and gives the
    # caller's generator back untouched afterwards.
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _determinism(config.deterministic):
        splits, data = load_run_data(config, device, splits)
        generations = []
        # The teacher of generation g is generation g - 1, built from its checkpoint only when a
        # generation is trained here (a run whose generations are all finished builds no network).
        previous: dict = {"state": None, "model": None}

        def teacher():
            if previous["model"] is None:
                previous["model"] = restore_generation(previous["state"], config, splits, device)[0]
            return previous["model"]

        bar = tqdm(range(last + 1), desc=f"{config.method} seed {config.seed}", unit="gen",
                   disable=None if progress is None else not progress, leave=False)
        for g in bar:
            done_path = checkpoint_path(run_dir, g)
            model = None
            if g in finished:                      # trained before: load it, never retrain it
                state = finished.pop(g)
                if cache_dir is not None:          # and offer it to the runs that share it
                    link_or_copy(done_path, checkpoint_path(prefix_dir(config, g, cache_dir), g))
                if log:
                    log(f"generation {g}: loaded from {done_path}")
            else:
                folder = run_dir if cache_dir is None else prefix_dir(config, g, cache_dir)
                state, model = _obtain_generation(config, g, folder, splits=splits, data=data, teacher_fn=teacher,
                                                  device=device, claim_timeout=claim_timeout, wait=wait,
                                                  adopt_from=run_dir if cache_dir is not None else None,
                                                  on_epoch_end=on_epoch_end, log=log)
                if cache_dir is not None:
                    link_or_copy(checkpoint_path(folder, g), done_path)
                    # An epoch checkpoint of this run from before another run finished the shared generation.
                    partial_path(run_dir, g).unlink(missing_ok=True)
                if model is None and log:
                    log(f"generation {g}: loaded from {checkpoint_path(folder, g)}")
            summary = state["summary"]
            generations.append(summary)
            metric, value = headline_metric(summary["test"])
            bar.set_postfix({f"test_{metric}": f"{value:.3f}"})
            if log:
                log(f"generation {g} ({summary['loss']}, gt_weight {summary['gt_weight']:g}, T {summary['temperature']:g}): "
                    f"selected epoch {summary['selected_epoch']}, val {metric} {summary['val'][metric]:.4f}, "
                    f"test {metric} {value:.4f}")
            previous.update(state=state, model=model)
        bar.close()

    if last < config.generations - 1:
        return None
    record = make_record(config, generations, device=device, session_wall_time_s=time.perf_counter() - started,
                         data_meta=getattr(splits, "meta", {}))
    atomic_write_json(run_dir / RECORD_FILE, record)
    return record
