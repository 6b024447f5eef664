"""What a weight-estimation study trains and evaluates: the two set-ups it runs on.

A study (:mod:`deepdistill.studies.weight_estimation`) needs a teacher, students at chosen ground-truth
weights, and their outputs on the validation set; a backend provides them and counts each run's cost:

* :class:`ConfigBackend`: one seed of a toolkit :class:`~deepdistill.core.config.TrainConfig`. The teacher
  (generations ``0..G-1``) is trained once by :func:`deepdistill.engine.train.train_run`; each student is a
  run of ``G + 1`` generations whose first ``G`` checkpoints are copies of the teacher's, so
  ``train_run`` loads them and trains only generation ``G``. Networks are read back with
  :func:`deepdistill.engine.runs.load_generation`.
* :class:`CallableBackend`: a user's ``train_fn(gt_weight, teacher) -> model`` and data loaders.

Both evaluate through the training loop's own :func:`~deepdistill.engine.train.predict_logits` and
:func:`~deepdistill.engine.train.predict_features`. :func:`make_train_fn` builds a ``train_fn`` for a
user's own network on the toolkit's one training loop (:func:`deepdistill.engine.train.train_generation`,
which takes the network's factory): nothing here has a training loop of its own.
"""
from __future__ import annotations

import inspect
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from deepdistill.core.config import METHODS, TrainConfig
from deepdistill.core.io import atomic_write
from deepdistill.drivers.local_runner import run_local
from deepdistill.core.metrics import softmax, summarize
from deepdistill.engine.runs import checkpoint_path, load_generation, prefix_dir
from deepdistill.engine.train import (load_run_data, predict_features, predict_logits, resolve_device, train_generation,
                               train_run)
from deepdistill.studies.weight_estimators import as_matrix

__all__ = ["Run", "student_key", "StudyBackend", "ConfigBackend", "CallableBackend", "gather_loader", "make_train_fn",
           "kept_as_is", "check_output_width"]


@dataclass
class Run:
    """One trained network: its key, training cost and evaluation outputs (``error`` if it could not train)."""

    key: str
    gt_weight: float | None
    wall_time_s: float
    model: object = field(repr=False, default=None)
    test: dict | None = None
    val: dict | None = None
    val_outputs: np.ndarray | None = field(repr=False, default=None)
    error: str | None = None
    checkpoint: str | None = None        # the file holding its weights (config studies), else None
    cpu_time_s: float = float("nan")     # CPU seconds of its training (nan: not measured)
    # "trained": here, alone; "trained side by side": here, with other runs at once (its wall time
    # overlaps theirs); "cached": found finished (an earlier study or sweep paid for it: it costs this
    # study nothing); "given": the user's own teacher (its training is not counted).
    source: str = "trained"

    @property
    def paid(self) -> bool:
        """Whether this study paid for the run (trained it here)."""
        return self.source.startswith("trained")


def student_key(gt_weight: float) -> str:
    """The key of the student trained at ``gt_weight`` (``"w=0.5"``)."""
    return f"w={float(gt_weight)!r}"


class StudyBackend:
    """What a study needs from a training set-up; subclasses train, this class evaluates.

    ``criterion``: ``"brier"`` (outputs are probabilities, targets labels) or ``"mse"`` (raw outputs,
    regression targets). ``step`` and ``previous``: the kernel step of the students and the weights
    of the steps before it (generation ``G`` is kernel step ``G + 1``).
    """

    criterion = "brier"
    previous: tuple = ()
    step: int = 2
    device = torch.device("cpu")
    eval_batch_size = 1024
    output_dtype = torch.float32

    def label_model(self) -> Run: ...                  # generation 0 (trains on labels); cost = its training
    def teacher_runs(self) -> list[Run]: ...           # every run before the chosen generation (counted once)
    def student(self, gt_weight: float) -> Run: ...    # a student at the chosen generation
    def val_targets(self): ...
    def val_inputs(self): ...
    def train_arrays(self): ...                        # (x_train, y_train) for features / NTK

    def train_ahead(self, weights) -> None:
        """Train the students at ``weights`` now, side by side where the backend can (else: one by one, when asked)."""

    def outputs(self, model, x, run: str | None = None) -> np.ndarray:
        """Probabilities (``"brier"``) or raw outputs (``"mse"``) of ``model`` on ``x``, float64 ``(n, k)``.
        Non-finite outputs raise an error naming ``run`` (the run that trained ``model``)."""
        model.eval()       # left in eval mode: a study never trains a network it evaluates
        logits = predict_logits(model, x.to(self.device), self.eval_batch_size, dtype=self.output_dtype).cpu()
        bad = ~torch.isfinite(logits)
        if bool(bad.any()):
            rows = int(bad.reshape(bad.shape[0], -1).any(dim=1).sum())
            raise ValueError(f"the network of {run or 'a run'} outputs NaN/inf on {rows} of {logits.shape[0]} "
                             "examples (it diverged in training: lower the learning rate, or check the inputs)")
        if self.criterion == "brier":
            return softmax(logits.numpy())
        return logits.numpy().reshape(logits.shape[0], -1).astype(np.float64)

    def features(self, model, x) -> np.ndarray:
        """Penultimate activations ``model.features(x)``, float64 ``(n, D)``."""
        if not hasattr(model, "features"):
            raise ValueError("the feature-kernel estimators need `model.features(x)` (penultimate activations); "
                             f"{type(model).__name__} has none. Use estimators=('two_run', 'kernel_ntk', ...).")
        model.eval()
        return predict_features(model, x.to(self.device), 1024).double().cpu().numpy()


class ConfigBackend(StudyBackend):
    """Runs of one seed of a TrainConfig: one shared teacher (generations 0..G-1), students at G."""

    def __init__(self, config: TrainConfig, root: Path, generation: int, log=None, *, cache_dir=None, jobs: int = 1,
                 threads_per_job: int | None = 1):
        self.config, self.root, self.G, self.log = config, Path(root), int(generation), log
        # Runs train in (and take shared generations from) the generation cache ``cache_dir``; with ``jobs``
        # above 1, train_ahead trains several at once on the sweep's local runner.
        self.cache_dir, self.jobs, self.threads_per_job = cache_dir, jobs, threads_per_job
        # A checkpoint written before this moment was trained by someone else (an earlier study, a
        # sweep sharing the cache): "cached", free here.
        self._started = time.time()
        self.device = resolve_device(config.device)
        self.eval_batch_size = config.eval_batch_size
        gt, temp = config.gt_weight, config.temperature
        self.previous = tuple(float(gt[i]) if isinstance(gt, list) else float(gt) for i in range(self.G - 1))
        self.step = self.G + 1
        self.temperature = temp[self.G - 1] if isinstance(temp, list) else temp
        self.prev_temperature = [temp[i] if isinstance(temp, list) else temp for i in range(self.G - 1)]
        self.splits, data = load_run_data(config, self.device)     # the data exactly as train_run loads it
        self.x = {p: data[f"x_{p}"] for p in ("train", "val", "test")}
        self.y = {p: data[f"y_{p}"].cpu() for p in ("train", "val", "test")}   # labels are read with numpy
        self._prefix = None
        self.teacher_config = self._prefix_config()              # validated once, used by every student

    # configs ------------------------------------------------------------------------------------
    def _prefix_config(self) -> TrainConfig:
        # allow_any_weight changes no computation for weights in [0, 1]; it is set only where a weight
        # needs it, so constrained and unconstrained studies share their run folders.
        changes = dict(generations=self.G, out_dir=str(self.root / "teacher"),
                       allow_any_weight=not all(0.0 <= w <= 1.0 for w in self.previous))
        if self.G > 1:
            changes.update(gt_weight=list(self.previous) if self.G > 2 else self.previous[0],
                           temperature=self.prev_temperature if self.G > 2 else self.prev_temperature[0])
        else:   # generation 0 alone reads neither: the method's defaults keep the teacher's config valid
            changes.update(gt_weight=None, temperature=None)
        return self.config.replace(**changes)

    def _student_config(self, w: float) -> TrainConfig:
        gt = w if self.G == 1 else list(self.previous) + [w]
        temp = self.temperature if self.G == 1 else self.prev_temperature + [self.temperature]
        allow = not all(0.0 <= v <= 1.0 for v in (*self.previous, w))
        return self.config.replace(generations=self.G + 1, gt_weight=gt, temperature=temp, allow_any_weight=allow,
                                   out_dir=str(self.root / f"gt_{w:+.10f}"))

    def runs_ahead(self, weights) -> list[tuple[TrainConfig, Path]]:
        """``(config, run folder)`` of the teacher and of the students at ``weights`` (those their config accepts;
        :meth:`student` reports the others' error), for training them side by side."""
        items = [(self.teacher_config, Path(self.teacher_config.out_dir))]
        for w in weights:
            try:
                cfg = self._student_config(float(w))
            except (ValueError, TypeError):
                continue
            items.append((cfg, Path(cfg.out_dir)))
        return items

    def train_ahead(self, weights) -> None:
        if self.jobs != 1:
            run_local(self.runs_ahead(weights), self.cache_dir, jobs=self.jobs, threads_per_job=self.threads_per_job,
                      log=self.log)

    def _ensure_prefix(self) -> list[Run]:
        if self._prefix is None:
            cfg = self.teacher_config
            before = self._finished_before(cfg, Path(cfg.out_dir), range(self.G))
            train_run(cfg, cfg.out_dir, log=self.log, progress=False, cache_dir=self.cache_dir)
            self._prefix = [self._as_run("generation 0" if g == 0 else f"generation {g}", Path(cfg.out_dir), g,
                                         1.0 if g == 0 else self.previous[g - 1], before[g]) for g in range(self.G)]
        return self._prefix

    def _finished_before(self, cfg: TrainConfig, run_dir: Path, generations) -> dict:
        """For each generation: ``"cached"`` if its checkpoint was written before this study began,
        ``"trained side by side"`` if written since (by :meth:`train_ahead`), else ``"trained"``."""
        out = {}
        for g in generations:
            paths = [checkpoint_path(run_dir, g)]
            if self.cache_dir is not None:
                paths.append(checkpoint_path(prefix_dir(cfg, g, self.cache_dir), g))
            times = [p.stat().st_mtime for p in paths if p.is_file()]
            if not times:
                out[g] = "trained"
            else:
                out[g] = "cached" if min(times) < self._started else "trained side by side"
        return out

    def _as_run(self, key: str, run_dir: Path, generation: int, w: float, source: str = "trained") -> Run:
        model, summary = load_generation(run_dir, generation, self.config, self.splits, self.device)
        return Run(key=key, gt_weight=w, wall_time_s=float(summary["wall_time_s"]), model=model,
                   test=summary["test"], val=summary["val"], val_outputs=self.outputs(model, self.x["val"], key),
                   checkpoint=str(checkpoint_path(run_dir, generation)),
                   cpu_time_s=float(summary.get("cpu_time_s", float("nan"))), source=source)

    # backend API --------------------------------------------------------------------------------
    def teacher_runs(self):
        return self._ensure_prefix()

    def label_model(self):
        return self._ensure_prefix()[0]

    def student(self, w):
        self._ensure_prefix()
        try:
            cfg = self._student_config(w)
        except (ValueError, TypeError) as err:
            return Run(key=student_key(w), gt_weight=w, wall_time_s=0.0, error=str(err))
        run_dir = Path(cfg.out_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        source = self._finished_before(cfg, run_dir, [self.G])[self.G]
        # Share the teacher: train_run loads finished generations from their checkpoints (it checks
        # their per-generation settings, which do not depend on the student's weight).
        for g in range(self.G):
            dst = checkpoint_path(run_dir, g)
            if not dst.exists():
                # atomic (temp file, fsync, os.replace): never a half-copied checkpoint
                with open(checkpoint_path(self.teacher_config.out_dir, g), "rb") as src, \
                        atomic_write(dst, "wb") as out:
                    shutil.copyfileobj(src, out)
        train_run(cfg, run_dir, log=self.log, progress=False, cache_dir=self.cache_dir)
        try:
            return self._as_run(student_key(w), run_dir, self.G, w, source)
        except ValueError as err:               # a network that diverged: this run failed, the study goes on
            return Run(key=student_key(w), gt_weight=w, wall_time_s=0.0, error=str(err))

    def val_targets(self):
        return self.y["val"].numpy()

    def val_inputs(self):
        return self.x["val"]

    def train_arrays(self):
        return self.x["train"], self.y["train"].numpy()


class CallableBackend(StudyBackend):
    """A study around a user's ``train_fn(gt_weight, teacher[, seed]) -> model`` and data loaders.

    ``seed``: ``None`` calls ``train_fn(gt_weight, teacher)``; an integer calls
    ``train_fn(gt_weight, teacher, seed=seed)`` (checked up front: ``train_fn`` must take it).
    Outputs are computed in float64 (a user's model may be, and an exact test needs it).
    """

    output_dtype = torch.float64

    def __init__(self, train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log, seed=None):
        self.train_fn, self.criterion, self.device, self.log = train_fn, criterion, torch.device(device), log
        if seed is not None and not _takes_seed(train_fn):
            raise TypeError(f"`seed`={seed!r} is passed to train_fn as train_fn(gt_weight, teacher, seed=...), but "
                            f"{getattr(train_fn, '__name__', 'train_fn')} takes no `seed` argument; add one, or leave "
                            "seed=None and seed inside train_fn.")
        self.seed_kwargs = {} if seed is None else {"seed": seed}
        self.x_val, self.y_val = gather_loader(val_loader, "val_loader")
        self.test = gather_loader(test_loader, "test_loader") if test_loader is not None else None
        self.train = gather_loader(train_loader, "train_loader") if train_loader is not None else None
        self._given_teacher = teacher
        self._teacher = None

    def _timed(self, key, w, fn) -> Run:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            model = fn()
        except ValueError as err:
            return Run(key=key, gt_weight=w, wall_time_s=time.perf_counter() - started,
                       error=f"{type(err).__name__}: {err}", cpu_time_s=time.process_time() - cpu)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"train_fn must return the trained torch.nn.Module; for gt_weight {w} it returned "
                            f"{type(model).__name__}.")
        try:
            return self._evaluate(key, w, wall, model, cpu)
        except ValueError as err:
            if key == "generation 0":
                raise
            return Run(key=key, gt_weight=w, wall_time_s=wall, error=str(err), cpu_time_s=cpu)

    def _evaluate(self, key, w, wall, model, cpu=float("nan"), source="trained") -> Run:
        what = "the teacher (train_fn(None, None))" if key == "generation 0" else f"the student at gt_weight {w:g}"
        outputs = self.outputs(model, self.x_val, what)
        run = Run(key=key, gt_weight=w, wall_time_s=wall, model=model, val_outputs=outputs, cpu_time_s=cpu,
                  source=source)
        if self.criterion == "brier":
            check_output_width(outputs.shape[1], self.y_val, "val_loader", what)
            run.val = summarize(run.val_outputs, self.y_val.numpy())
            if self.test is not None:
                check_output_width(outputs.shape[1], self.test[1], "test_loader", what)
                run.test = summarize(self.outputs(model, self.test[0], what), self.test[1].numpy())
        else:
            run.val = {"mse": float(np.mean((run.val_outputs - as_matrix(self.y_val, "y")) ** 2))}
            if self.test is not None:
                run.test = {"mse": float(np.mean((self.outputs(model, self.test[0], what)
                                                  - as_matrix(self.test[1], "y")) ** 2))}
        return run

    def label_model(self):
        if self._teacher is None:
            if self._given_teacher is not None:
                # An already-trained teacher costs nothing more here (its training is the user's).
                self._teacher = self._evaluate("generation 0", 1.0, 0.0, self._given_teacher, source="given")
            else:
                self._teacher = self._timed("generation 0", 1.0, lambda: self.train_fn(None, None, **self.seed_kwargs))
            if self._teacher.error:
                raise RuntimeError(f"training the teacher failed: {self._teacher.error}")
        return self._teacher

    def teacher_runs(self):
        return [self.label_model()]

    def student(self, w):
        teacher = self.label_model().model
        with kept_as_is(teacher):            # a train_fn may freeze it; the user's teacher stays as it was
            return self._timed(student_key(w), w, lambda: self.train_fn(w, teacher, **self.seed_kwargs))

    def val_targets(self):
        return self.y_val.numpy()

    def val_inputs(self):
        return self.x_val

    def train_arrays(self):
        if self.train is None:
            raise ValueError("the kernel estimators need `train_loader` (the teacher's features on the training set).")
        return self.train[0], self.train[1].numpy()


class kept_as_is:
    """Context manager: ``model``'s ``requires_grad`` flags and train/eval mode are restored on exit
    (training a student freezes its teacher: :func:`deepdistill.engine.train.train_generation`)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [p.requires_grad for p in self.model.parameters()]
        self.training = [m.training for m in self.model.modules()]
        return self.model

    def __exit__(self, *exc):
        for p, flag in zip(self.model.parameters(), self.flags):
            p.requires_grad_(flag)
        for m, mode in zip(self.model.modules(), self.training):
            m.training = mode
        return False


def check_output_width(width: int, labels, loader: str, what: str) -> None:
    """Refuse a classifier with fewer outputs than ``labels`` has classes, naming both."""
    y = torch.as_tensor(labels)
    if y.ndim == 1 and not y.is_floating_point() and y.numel():
        top = int(y.max())
        if width <= top:
            raise ValueError(f"{what}: the network has {width} output(s), but `{loader}` holds labels up to {top}: "
                             f"a classifier needs one output per class, at least {top + 1}.")


def _takes_seed(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):      # a builtin or C callable: let the call itself decide
        return True
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in params)


def gather_loader(loader, name: str):
    """All ``(x, y)`` of a loader as two CPU tensors (evaluation and training sets of a study are small).

    A ``torch.utils.data.DataLoader`` is read in its DATASET's order, through an unshuffled loader over
    the same dataset: a shuffled loader (and its generator's state) then changes neither the order nor
    the result, so two studies on the same loader see the same arrays. Anything else is iterated once.
    """
    if isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset):
        loader = DataLoader(loader.dataset, batch_size=loader.batch_size or 256, shuffle=False,
                            collate_fn=loader.collate_fn)
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError(f"`{name}` must yield (inputs, targets) batches; got {type(batch).__name__}.")
        xs.append(torch.as_tensor(batch[0]).cpu())
        ys.append(torch.as_tensor(batch[1]).cpu())
    if not xs:
        raise ValueError(f"`{name}` yielded no batch.")
    return torch.cat(xs), torch.cat(ys)


# ------------------------------------------------------------------------------------------------
# A train_fn for your own network, on the toolkit's training loop
# ------------------------------------------------------------------------------------------------

def make_train_fn(model_factory: Callable[[], torch.nn.Module], train_loader, *, method: str = "sd_kd",
                  temperature: float | None = None, epochs: int = 10, lr: float = 1e-3, seed: int = 0,
                  device: str = "cpu", **train_options) -> Callable:
    """A ``train_fn`` for :func:`~deepdistill.studies.weight_estimation.estimate_gt_weight_for_model` that trains
    YOUR network with the toolkit's own loop (:func:`deepdistill.engine.train.train_generation`).

    ``train_fn(gt_weight, teacher, seed=None) -> model`` (eval mode): ``train_fn(None, None)`` trains a
    teacher (generation 0 of ``method``: on the labels alone), ``train_fn(w, teacher)`` a fresh student
    at ground-truth weight ``w`` against ``teacher`` (generation 1 of ``method``: ``sd_kd`` Hinton KD
    at ``temperature`` (default 4), ``sd_mse`` [BA21]'s MSE to the mixed target, ``sd_zs`` [ZS20]).

    Reproducible: every call seeds the network's initialisation, the batch order (its own generator,
    drawn afresh from the seed at every epoch) and dropout from ``seed`` (or the call's own ``seed``),
    exactly as a toolkit run does (:func:`deepdistill.core.config.derive_seed`; teacher and students use
    the streams of generations 0 and 1), and leaves torch's global random state as it found it. Two
    calls with the same arguments give bitwise the same network on CPU.

    How it uses the loader: its dataset is read ONCE, in the dataset's order, into two tensors
    (:func:`gather_loader`); batches of ``loader.batch_size`` are index slices of them (the
    loader's own shuffling is not used: the loop draws its own order). So random augmentation inside
    the dataset is applied once, not per epoch; for that, write your own ``train_fn`` (see the README).

    Parameters
    ----------
    model_factory : builds a fresh, untrained network (your ``nn.Module`` class itself will do);
        called under the seeded initialisation. Its outputs are class logits; labels are integers.
    train_loader : a ``DataLoader`` (or any iterable of ``(x, y)`` batches) of the training set.
    method : ``"sd_kd"``, ``"sd_mse"`` or ``"sd_zs"`` (:data:`deepdistill.core.config.METHODS`).
    temperature, epochs, lr, seed, device : as in :class:`~deepdistill.core.config.TrainConfig`.
    train_options : any other :class:`~deepdistill.core.config.TrainConfig` field of the optimisation
        (``optimizer``, ``weight_decay``, ``momentum``, ``schedule``, ``batch_size``, ``amp``, ...).
        Each generation keeps its last epoch's weights (``selection="last"``: the study's validation
        set must not also pick epochs).
    """
    if not callable(model_factory):
        raise TypeError(f"`model_factory` must be callable (e.g. your nn.Module class); got {type(model_factory).__name__}.")
    spec = METHODS.get(method)
    if spec is None or not (spec.uses_teacher and spec.uses_gt_weight):
        valid = sorted(m for m, s in METHODS.items() if s.uses_teacher and s.uses_gt_weight)
        raise ValueError(f"`method` must distil from a teacher with a ground-truth weight, one of {valid}; got {method!r}.")
    refused = sorted(set(train_options) & {"selection", "generations", "gt_weight", "method", "dataset", "model",
                                           "out_dir", "seed"})
    if refused:
        raise ValueError(f"make_train_fn sets {refused} itself; got them in `train_options`.")
    x, y = gather_loader(train_loader, "train_loader")
    if y.ndim != 1 or y.is_floating_point():
        raise ValueError("make_train_fn trains classifiers: `train_loader` must yield integer class labels (n,); got "
                         f"targets of shape {tuple(y.shape)} and dtype {y.dtype}. For regression, write your own "
                         "train_fn (see estimate_gt_weight_for_model).")
    batch_size = train_options.pop("batch_size", getattr(train_loader, "batch_size", None) or 100)
    # Validated once, here: a bad option fails before any training.
    base = TrainConfig(method=method, generations=2, temperature=temperature, epochs=epochs, lr=lr, seed=seed,
                       device=device, batch_size=batch_size, selection="last", checkpoint_every=0, **train_options)
    dev = resolve_device(base.device)
    # The network's output width, checked now: before anything trains (a forward pass of one batch on a
    # network built under a forked RNG, so no seed stream moves).
    with torch.random.fork_rng(devices=[]):
        probe = model_factory()
    if not isinstance(probe, torch.nn.Module):
        raise TypeError(f"`model_factory` must build a torch.nn.Module; it built {type(probe).__name__}.")
    with torch.no_grad():
        width = probe.eval()(x[:2]).reshape(min(2, len(x)), -1).shape[1]
    check_output_width(width, y, "train_loader", f"model_factory ({getattr(model_factory, '__name__', 'model')})")
    # The loop's bookkeeping: no augmentation, the input shape and class count (read by build_model
    # and Beta smoothing only, neither of which runs here).
    splits = SimpleNamespace(augment=None, input_shape=tuple(x.shape[1:]), num_classes=int(y.max()) + 1)
    data = {"x_train": x.to(dev), "y_train": y.to(dev)}
    # The loop evaluates a validation split every epoch (to select an epoch) and a test split at the
    # end; with selection "last" nothing is selected, and one training batch keeps those passes cheap.
    for part in ("val", "test"):
        data[f"x_{part}"], data[f"y_{part}"] = data["x_train"][:batch_size], data["y_train"][:batch_size]

    def train_fn(gt_weight, teacher, seed: int | None = None):
        """``gt_weight=None``: the teacher; else a student at that ground-truth weight against ``teacher``.
        ``seed``: overrides make_train_fn's seed for this call."""
        if gt_weight is None:
            cfg, generation, teacher = base, 0, None
        else:
            if teacher is None:
                raise ValueError(f"a student (gt_weight {gt_weight!r}) needs the trained teacher; got teacher=None.")
            w = float(gt_weight)
            cfg, generation = base.replace(gt_weight=w, allow_any_weight=not 0.0 <= w <= 1.0), 1
        if seed is not None:
            cfg = cfg.replace(seed=seed)
        fork = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            if teacher is None:
                model, _ = train_generation(cfg, cfg.generation_settings(generation), splits, data, None, dev,
                                            model_factory=model_factory)
            else:
                with kept_as_is(teacher):          # the loop freezes the teacher; give it back as it came
                    model, _ = train_generation(cfg, cfg.generation_settings(generation), splits, data, teacher,
                                                dev, model_factory=model_factory)
        return model.eval()

    train_fn.num_outputs = width         # read by estimate_gt_weight_for_model to check the labels up front
    return train_fn
