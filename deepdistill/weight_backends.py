"""What a weight-estimation study trains and evaluates: the two set-ups it runs on.

A study (:mod:`deepdistill.weight_estimation`) needs a teacher, students at chosen ground-truth
weights, and their outputs on the validation set; a backend provides them and counts each run's cost:

* :class:`ConfigBackend`: one seed of a toolkit :class:`~deepdistill.config.TrainConfig`. The teacher
  (generations ``0..G-1``) is trained once by :func:`deepdistill.train.train_run`; each student is a
  run of ``G + 1`` generations whose first ``G`` checkpoints are copies of the teacher's, so
  ``train_run`` loads them and trains only generation ``G``. Networks are read back with
  :func:`deepdistill.runs.load_generation`.
* :class:`CallableBackend`: a user's ``train_fn(gt_weight, teacher) -> model`` and data loaders.

Both evaluate through the training loop's own :func:`~deepdistill.train.predict_logits` and
:func:`~deepdistill.train.predict_features`; nothing here trains a network itself.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepdistill.config import TrainConfig
from deepdistill.io import atomic_write
from deepdistill.metrics import softmax, summarize
from deepdistill.runs import checkpoint_path, load_generation
from deepdistill.train import load_run_data, predict_features, predict_logits, resolve_device, train_run
from deepdistill.weight_estimators import as_matrix

__all__ = ["Run", "student_key", "StudyBackend", "ConfigBackend", "CallableBackend"]


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

    def outputs(self, model, x) -> np.ndarray:
        """Probabilities (``"brier"``) or raw outputs (``"mse"``) of ``model`` on ``x``, float64 ``(n, k)``."""
        model.eval()       # left in eval mode: a study never trains a network it evaluates
        logits = predict_logits(model, x.to(self.device), self.eval_batch_size, dtype=self.output_dtype).cpu()
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

    def __init__(self, config: TrainConfig, root: Path, generation: int, log=None):
        self.config, self.root, self.G, self.log = config, Path(root), int(generation), log
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

    def _ensure_prefix(self) -> list[Run]:
        if self._prefix is None:
            cfg = self.teacher_config
            train_run(cfg, cfg.out_dir, log=self.log, progress=False)
            self._prefix = [self._as_run("generation 0" if g == 0 else f"generation {g}", Path(cfg.out_dir), g,
                                         1.0 if g == 0 else self.previous[g - 1]) for g in range(self.G)]
        return self._prefix

    def _as_run(self, key: str, run_dir: Path, generation: int, w: float) -> Run:
        model, summary = load_generation(run_dir, generation, self.config, self.splits, self.device)
        return Run(key=key, gt_weight=w, wall_time_s=float(summary["wall_time_s"]), model=model,
                   test=summary["test"], val=summary["val"], val_outputs=self.outputs(model, self.x["val"]))

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
        # Share the teacher: train_run loads finished generations from their checkpoints (it checks
        # their per-generation settings, which do not depend on the student's weight).
        for g in range(self.G):
            dst = checkpoint_path(run_dir, g)
            if not dst.exists():
                # atomic (temp file, fsync, os.replace): never a half-copied checkpoint
                with open(checkpoint_path(self.teacher_config.out_dir, g), "rb") as src, \
                        atomic_write(dst, "wb") as out:
                    shutil.copyfileobj(src, out)
        train_run(cfg, run_dir, log=self.log, progress=False)
        return self._as_run(student_key(w), run_dir, self.G, w)

    def val_targets(self):
        return self.y["val"].numpy()

    def val_inputs(self):
        return self.x["val"]

    def train_arrays(self):
        return self.x["train"], self.y["train"].numpy()


class CallableBackend(StudyBackend):
    """A study around a user's ``train_fn(gt_weight, teacher) -> model`` and data loaders.

    Outputs are computed in float64 (a user's model may be, and an exact test needs it).
    """

    output_dtype = torch.float64

    def __init__(self, train_fn, val_loader, test_loader, train_loader, criterion, device, teacher, log):
        self.train_fn, self.criterion, self.device, self.log = train_fn, criterion, torch.device(device), log
        self.x_val, self.y_val = _gather(val_loader, "val_loader")
        self.test = _gather(test_loader, "test_loader") if test_loader is not None else None
        self.train = _gather(train_loader, "train_loader") if train_loader is not None else None
        self._given_teacher = teacher
        self._teacher = None

    def _timed(self, key, w, fn) -> Run:
        started = time.perf_counter()
        try:
            model = fn()
        except ValueError as err:
            return Run(key=key, gt_weight=w, wall_time_s=time.perf_counter() - started,
                       error=f"{type(err).__name__}: {err}")
        wall = time.perf_counter() - started
        return self._evaluate(key, w, wall, model)

    def _evaluate(self, key, w, wall, model) -> Run:
        run = Run(key=key, gt_weight=w, wall_time_s=wall, model=model, val_outputs=self.outputs(model, self.x_val))
        if self.criterion == "brier":
            run.val = summarize(run.val_outputs, self.y_val.numpy())
            if self.test is not None:
                run.test = summarize(self.outputs(model, self.test[0]), self.test[1].numpy())
        else:
            run.val = {"mse": float(np.mean((run.val_outputs - as_matrix(self.y_val, "y")) ** 2))}
            if self.test is not None:
                run.test = {"mse": float(np.mean((self.outputs(model, self.test[0]) - as_matrix(self.test[1], "y")) ** 2))}
        return run

    def label_model(self):
        if self._teacher is None:
            if self._given_teacher is not None:
                # An already-trained teacher costs nothing more here (its training is the user's).
                self._teacher = self._evaluate("generation 0", 1.0, 0.0, self._given_teacher)
            else:
                self._teacher = self._timed("generation 0", 1.0, lambda: self.train_fn(None, None))
            if self._teacher.error:
                raise RuntimeError(f"training the teacher failed: {self._teacher.error}")
        return self._teacher

    def teacher_runs(self):
        return [self.label_model()]

    def student(self, w):
        teacher = self.label_model().model
        return self._timed(student_key(w), w, lambda: self.train_fn(w, teacher))

    def val_targets(self):
        return self.y_val.numpy()

    def val_inputs(self):
        return self.x_val

    def train_arrays(self):
        if self.train is None:
            raise ValueError("the kernel estimators need `train_loader` (the teacher's features on the training set).")
        return self.train[0], self.train[1].numpy()


def _gather(loader, name):
    """All ``(x, y)`` batches of a loader as two CPU tensors (evaluation sets are small)."""
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError(f"`{name}` must yield (inputs, targets) batches; got {type(batch).__name__}.")
        xs.append(torch.as_tensor(batch[0]).cpu())
        ys.append(torch.as_tensor(batch[1]).cpu())
    if not xs:
        raise ValueError(f"`{name}` yielded no batch.")
    return torch.cat(xs), torch.cat(ys)
