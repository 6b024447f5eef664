"""What a weight study returns: the chosen weight, every estimator's outcome, the trained networks.

:func:`deepdistill.studies.weight_estimation.estimate_gt_weight_for_model` (your own network) returns a
:class:`WeightEstimate`; :func:`deepdistill.studies.weight_estimation.estimate_gt_weight` (a toolkit config,
one or more seeds) returns a :class:`WeightStudy` that holds one :class:`WeightEstimate` per seed.
Both have ``to_dict()``, ``save(dir)`` and ``load(dir)``, and print as a table (``.table()``).

Status. Every estimator entry carries ``status``: ``"ok"``; or a WARNING in words, the estimate kept
(its prediction of the validation criterion missed what its student achieved by more than the floor:
"the affine model does not hold here: predicted 0.395, trained 0.319 ..."; or the parabola had no
minimum); or the reason it FAILED (no weight: the kernel surrogate could not match the teacher's
training fit, the two end points predict the same, a run it needed did not train or output NaN ...).
A failed estimator is never chosen and nothing is trained at it. The chosen weight is that of the
first estimator asked for whose status is "ok", else the first with a weight, else the grid's best.

The summary (:func:`summary_rows`, the CSV) has one row per approach: its weight and test metrics as
mean and sample sd over seeds (failed seeds left out), its cost in training runs and wall time and
their ratio to the grid's, and its status.
"""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepdistill.core.io import atomic_torch_save, atomic_write_csv, atomic_write_json, read_json
from deepdistill.engine.results import mean_sd

__all__ = ["STATUS_OK", "EstimatorResult", "WeightEstimate", "WeightStudy", "summary_rows", "format_summary_table",
           "finish_grid", "RESULT_FILE", "SUMMARY_FILE", "SCHEMA"]

STATUS_OK = "ok"
SCHEMA = "deepdistill.estimate_weight/3"
_READABLE_SCHEMAS = ("deepdistill.estimate_weight/2", SCHEMA)   # 3 only adds fields
RESULT_FILE = "estimate_weight.json"
SUMMARY_FILE = "estimate_weight.csv"
_TEACHER_FILE, _STUDENT_FILE = "teacher.pt", "student.pt"
# The fields of an estimator entry that EstimatorResult names; the rest of the entry is its details.
_ENTRY_FIELDS = ("gt_weight", "unconstrained", "status", "training_runs", "wall_time_s", "val", "test",
                 "interval", "interval_kind", "predicted_val_criterion", "achieved_val_criterion", "seed_floor",
                 "clip_reason", "flags", "cpu_time_s", "new_runs", "cached_runs", "shared_runs")


@dataclass
class EstimatorResult:
    """One estimator's outcome in one seed's study (or the grid search's, for ``name == "grid"``).

    gt_weight : the estimate (clipped to [0, 1] unless the study allowed any weight); ``None`` when it failed.
    unconstrained : the optimum before clipping ([DPR26]: it may lie outside [0, 1]); ``None`` when it failed.
    status : ``"ok"`` or the reason it failed.
    training_runs : the training runs it used, each once, the teacher included, its final student included
        (``new_runs`` of them trained by this study; ``cached_runs`` found finished; ``shared_runs`` used by
        another approach too).
    wall_time_s : the wall times of the runs this study trained (each once; cached runs count 0) plus the
        estimator's own computation; ``cpu_time_s`` the same in CPU seconds. Runs trained side by side
        (``jobs`` > 1) overlap: the study's own wall-clock is ``settings["elapsed_s"]``.
    val, test : metrics of the student trained at ``gt_weight`` (``None`` when it failed).
    details : what else the estimator computed (the kernel fit and its ridge, the affine residuals
        against the grid, the keys of the runs it used, ...).
    """

    name: str
    gt_weight: float | None
    unconstrained: float | None
    status: str
    training_runs: int
    wall_time_s: float
    val: dict | None = None
    test: dict | None = None
    details: dict = field(default_factory=dict, repr=False)
    # Added in schema 3 (``None`` / empty in older files):
    interval: list | None = None                 # [low, high], 90%, clipped like gt_weight
    interval_kind: str | None = None             # how: "90% bootstrap over N validation examples" ...
    predicted_val_criterion: float | None = None  # what the estimator predicts at gt_weight (the network's)
    achieved_val_criterion: float | None = None   # what the student trained at gt_weight scored
    seed_floor: float | None = None               # the gap above which the two disagree (status then says so)
    clip_reason: str | None = None                # why gt_weight differs from unconstrained, in words
    flags: list = field(default_factory=list)     # the warnings in the status, one per entry
    cpu_time_s: float | None = None               # CPU seconds of the runs this study trained, + computation
    new_runs: int | None = None                   # of training_runs, those trained by this study
    cached_runs: list = field(default_factory=list)   # keys of runs found finished (cost nothing here)
    shared_runs: list = field(default_factory=list)   # keys of runs other approaches use too

    @property
    def ok(self) -> bool:
        """Status "ok": a weight, and no warning."""
        return self.status == STATUS_OK

    @property
    def has_weight(self) -> bool:
        """A weight (status "ok" or a warning in words); ``False`` when the estimator failed."""
        return self.gt_weight is not None

    def to_dict(self) -> dict:
        """The entry as the JSON stores it: the named fields, then the details, in one flat dict."""
        return {**{k: getattr(self, k) for k in _ENTRY_FIELDS}, **self.details}

    @classmethod
    def from_dict(cls, name: str, entry: dict) -> "EstimatorResult":
        details = {k: v for k, v in entry.items() if k not in _ENTRY_FIELDS}
        return cls(name=name, gt_weight=entry.get("gt_weight"), unconstrained=entry.get("unconstrained"),
                   status=entry.get("status", STATUS_OK), training_runs=int(entry.get("training_runs", 0)),
                   wall_time_s=float(entry.get("wall_time_s", math.nan)), val=entry.get("val"),
                   test=entry.get("test"), details=details, interval=entry.get("interval"),
                   interval_kind=entry.get("interval_kind"),
                   predicted_val_criterion=entry.get("predicted_val_criterion"),
                   achieved_val_criterion=entry.get("achieved_val_criterion"), seed_floor=entry.get("seed_floor"),
                   clip_reason=entry.get("clip_reason"), flags=list(entry.get("flags") or []),
                   cpu_time_s=entry.get("cpu_time_s"), new_runs=entry.get("new_runs"),
                   cached_runs=list(entry.get("cached_runs") or []), shared_runs=list(entry.get("shared_runs") or []))


@dataclass
class WeightEstimate:
    """One seed's weight study: what :func:`~deepdistill.studies.weight_estimation.estimate_gt_weight_for_model` returns.

    gt_weight : the chosen weight: that of the first estimator asked for whose status is ``"ok"``,
        else the grid's best (when a grid was run), else ``None``.
    chosen : the name of the estimator (or ``"grid"``) it came from.
    estimators : every estimator asked for, by name, in the order asked (:class:`EstimatorResult`).
    teacher : the trained teacher (the network the students distil from), in eval mode.
    student : the student trained at ``gt_weight`` (``None`` without a chosen weight). At
        ``gt_weight == 1`` with the teacher as the alpha = 1 end point it IS the teacher (the same
        object: a student at weight 1 trains on the labels alone, as the teacher did).
    teacher_metrics, student_metrics : ``{"val": {...}, "test": {...} or None}``, computed on those very modules.
    grid : the grid search (:class:`EstimatorResult` named ``"grid"``; its ``details["curve"]`` holds
        every weight's validation criterion and metrics), or ``None`` when no grid was asked for.
    seed : the seed the study passed to the training code (``None``: it left seeding to it).
    criterion : ``"brier"`` (classification) or ``"mse"`` (regression), on the validation set.
    runs : every run trained, by key (``"generation 0"``, ``"w=0.5"``): weight, wall time, metrics, error.
    settings : how the study was run (estimators, grid, bounds, kernel, ...).
    """

    gt_weight: float | None
    chosen: str | None
    estimators: dict[str, EstimatorResult]
    teacher: torch.nn.Module | None = field(repr=False)
    student: torch.nn.Module | None = field(repr=False)
    teacher_metrics: dict
    student_metrics: dict | None
    grid: EstimatorResult | None
    seed: int | None
    criterion: str
    runs: dict = field(default_factory=dict, repr=False)
    teacher_keys: list = field(default_factory=list, repr=False)
    settings: dict = field(default_factory=dict, repr=False)
    checkpoints: dict = field(default_factory=dict, repr=False)   # config path: "teacher"/"student" -> .pt file

    # -- views ----------------------------------------------------------------------------------
    def approaches(self) -> dict[str, EstimatorResult]:
        """The grid (when run) and every estimator, by name."""
        return {**({"grid": self.grid} if self.grid is not None else {}), **self.estimators}

    def summary(self) -> list[dict]:
        """The rows of :func:`summary_rows` for this one seed."""
        return summary_rows([self.to_dict()], metrics=_metrics_for(self.criterion))

    def table(self) -> str:
        """The summary as an aligned text table (what ``print`` of a study shows)."""
        return format_summary_table(self.summary()) + _elapsed_line(self.settings)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything but the networks, as plain JSON types (the networks go to ``save``'s ``.pt`` files)."""
        student_key = self._student_key()
        return {"schema": SCHEMA, "seed": self.seed, "gt_weight": self.gt_weight, "chosen": self.chosen,
                "criterion": self.criterion, "settings": self.settings, "teacher_keys": list(self.teacher_keys),
                "teacher": {**(self.teacher_metrics or {}), "checkpoint": self.checkpoints.get("teacher")},
                "student": None if self.student_metrics is None else {**self.student_metrics, "key": student_key,
                                                                      "checkpoint": self.checkpoints.get("student")},
                "approaches": {name: e.to_dict() for name, e in self.approaches().items()},
                "runs": self.runs}

    def _student_key(self) -> str | None:
        if self.chosen is None:
            return None
        return self.approaches()[self.chosen].details.get("final_key")

    @classmethod
    def from_dict(cls, d: dict, teacher=None, student=None) -> "WeightEstimate":
        approaches = {n: EstimatorResult.from_dict(n, e) for n, e in d["approaches"].items()}
        grid = approaches.pop("grid", None)
        parts = {p: d.get(p) for p in ("teacher", "student")}
        metrics = {p: None if v is None else {k: v.get(k) for k in ("val", "test")} for p, v in parts.items()}
        checkpoints = {p: v["checkpoint"] for p, v in parts.items() if v and v.get("checkpoint")}
        return cls(gt_weight=d.get("gt_weight"), chosen=d.get("chosen"), estimators=approaches, teacher=teacher,
                   student=student, teacher_metrics=metrics["teacher"] or {}, student_metrics=metrics["student"],
                   grid=grid, seed=d.get("seed"), criterion=d.get("criterion", "brier"), runs=d.get("runs", {}),
                   teacher_keys=d.get("teacher_keys", []), settings=d.get("settings", {}), checkpoints=checkpoints)

    def save(self, out_dir) -> Path:
        """Write ``estimate_weight.json`` (:meth:`to_dict`), ``estimate_weight.csv`` (the summary) and
        the networks' state dicts ``teacher.pt`` / ``student.pt`` into ``out_dir``, each atomically;
        return the JSON's path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        d = self.to_dict()
        # student.pt is written even when the student IS the teacher (weight 1, the teacher as the
        # labels end point): every saved estimate has both files, and loading gives two networks.
        d["student_is_teacher"] = self.student is not None and self.student is self.teacher
        if self.teacher is not None:
            atomic_torch_save(self.teacher.state_dict(), out / _TEACHER_FILE)
        if self.student is not None:
            atomic_torch_save(self.student.state_dict(), out / _STUDENT_FILE)
        atomic_write_csv(out / SUMMARY_FILE, self.summary())
        atomic_write_json(out / RESULT_FILE, d)
        return out / RESULT_FILE

    @classmethod
    def load(cls, out_dir, model_factory: Callable[[], torch.nn.Module] | None = None,
             device="cpu", *, record_only: bool = False) -> "WeightEstimate":
        """Read what :meth:`save` wrote. ``model_factory`` (e.g. your model class) builds a fresh network
        of the saved architecture, into which ``teacher.pt`` / ``student.pt`` are loaded (eval mode):
        a missing, truncated or foreign file is then an error naming it. ``record_only=True`` (or no
        ``model_factory``) reads the numbers alone: ``teacher`` and ``student`` are ``None``.

        A study that chose no weight saved no student; a save from before ``student.pt`` was always
        written, whose student was the teacher, loads the teacher's weights as the student too (with
        a warning)."""
        out = Path(out_dir)
        d = _read_result(out)
        teacher = student = None
        if model_factory is not None and not record_only:
            teacher = _load_module(model_factory, out / _TEACHER_FILE, device)
            if d.get("student") is not None:
                path = out / _STUDENT_FILE
                if not path.exists() and d.get("student_is_teacher"):
                    warnings.warn(f"{path} is missing: this estimate was saved before student.pt was always written, "
                                  "and its student was the teacher; the teacher's weights are loaded as the student.",
                                  UserWarning, stacklevel=2)
                    path = out / _TEACHER_FILE
                student = _load_module(model_factory, path, device)
        return cls.from_dict(d, teacher=teacher, student=student)


@dataclass
class WeightStudy:
    """Several seeds of a toolkit config's weight study: what
    :func:`~deepdistill.studies.weight_estimation.estimate_gt_weight` returns.

    per_seed : one :class:`WeightEstimate` per seed (its teacher and student loaded from the run folders).
    gt_weight : the mean over seeds of the weight of the first estimator asked for that succeeded in
        every seed (else of the grid's best); ``chosen`` names it.
    settings : the config (``settings["config"]``), the generation, seeds, grid, estimators, kernel ...
    """

    per_seed: list[WeightEstimate]
    gt_weight: float | None
    chosen: str | None
    settings: dict = field(default_factory=dict, repr=False)

    def summary(self) -> list[dict]:
        return summary_rows([s.to_dict() for s in self.per_seed],
                            metrics=_metrics_for(self.settings.get("criterion", "brier")))

    def table(self) -> str:
        return format_summary_table(self.summary()) + _elapsed_line(self.settings)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **self.settings, "gt_weight": self.gt_weight, "chosen": self.chosen,
                "per_seed": [s.to_dict() for s in self.per_seed], "summary": self.summary()}

    def save(self, out_dir) -> Path:
        """``estimate_weight.json`` and ``estimate_weight.csv`` in ``out_dir`` (the networks stay in the
        run folders under ``out_dir/runs/``, where ``load`` finds them)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        d = self.to_dict()
        atomic_write_csv(out / SUMMARY_FILE, d["summary"])
        atomic_write_json(out / RESULT_FILE, d)
        return out / RESULT_FILE

    @classmethod
    def load(cls, out_dir, models: bool = True, device="cpu") -> "WeightStudy":
        """Read what :meth:`save` wrote; with ``models``, each seed's teacher and student are loaded from
        their checkpoints in the run folders (``None`` where the study recorded none). A checkpoint the
        study recorded but that is gone raises ``FileNotFoundError`` naming it (``models=False`` reads the
        numbers alone)."""
        out = Path(out_dir)
        d = _read_result(out)
        per_seed = []
        for s in d["per_seed"]:
            teacher = student = None
            if models:
                teacher, student = _load_checkpoints(d["config"], s, out, device)
            per_seed.append(WeightEstimate.from_dict(s, teacher=teacher, student=student))
        settings = {k: v for k, v in d.items() if k not in ("schema", "gt_weight", "chosen", "per_seed", "summary")}
        return cls(per_seed=per_seed, gt_weight=d.get("gt_weight"), chosen=d.get("chosen"), settings=settings)


def _elapsed_line(settings: dict) -> str:
    e = settings.get("elapsed_s")
    return "" if e is None else f"\nthe whole study: {e:.1f} s wall-clock"


def _metrics_for(criterion: str) -> tuple:
    return ("accuracy", "nll", "ece") if criterion == "brier" else ("mse",)


def _read_result(out: Path) -> dict:
    d = read_json(out / RESULT_FILE)
    if not isinstance(d, dict) or d.get("schema") not in _READABLE_SCHEMAS:
        found = "missing or not valid JSON" if d is None else f"schema {d.get('schema') if isinstance(d, dict) else d!r}"
        raise FileNotFoundError(f"{out / RESULT_FILE} is not a saved weight study of schema {SCHEMA!r} ({found}); "
                                "write one with result.save(dir).")
    return d


def _load_module(model_factory, path: Path, device):
    """A fresh ``model_factory()`` with the state dict in ``path`` (loaded with ``weights_only=True``);
    every failure names the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the saved estimate has no network there. Pass "
                                "record_only=True to read the numbers alone.")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:     # garbage, truncated, or a pickle that is not a plain state dict
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a state dict written by WeightEstimate.save (it is corrupt, truncated or "
                         f"foreign: {type(err).__name__}: {first[:160]}); it is never unpickled beyond tensors. "
                         "Save the estimate again, or pass record_only=True.") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict written by WeightEstimate.save.")
    model = model_factory()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit {type(model).__name__} built by `model_factory`: "
                         f"{str(err).splitlines()[0]}") from None
    return model.to(device).eval()


def _load_checkpoints(config: dict, seed_dict: dict, out: Path, device):
    """The teacher and student of one seed of a config study, from the checkpoints it names."""
    from deepdistill.core.config import TrainConfig
    from deepdistill.engine.runs import load_checkpoint, load_splits, restore_generation

    # Only the data and the architecture matter here (the per-generation settings are in the checkpoints).
    cfg = TrainConfig.from_dict({**config, "seed": int(seed_dict["seed"]), "generations": 1, "gt_weight": None,
                                 "temperature": None})
    splits = None
    models = []
    for part in ("teacher", "student"):
        path = (seed_dict.get(part) or {}).get("checkpoint")     # relative to out_dir
        if path is None:
            models.append(None)
            continue
        if not (out / path).is_file():
            raise FileNotFoundError(
                f"{out / path} is missing: the saved study recorded the {part} of seed {seed_dict.get('seed')} "
                f"there. Run the same study again to retrain it (finished runs are reused), or read the numbers "
                f"alone with WeightStudy.load({str(out)!r}, models=False).")
        splits = splits or load_splits(cfg)
        models.append(restore_generation(load_checkpoint(out / path, device), cfg, splits, device)[0])
    return tuple(models)


# ------------------------------------------------------------------------------------------------
# The summary over seeds, and its text table
# ------------------------------------------------------------------------------------------------

def _clip_summary(reasons) -> str | None:
    """The seeds' clip reasons as one: the words once, the unconstrained values as a range."""
    import re
    given = [r for r in reasons if r]
    if not given:
        return None
    if len(given) == 1 and len(reasons) == 1:
        return given[0]
    pattern = re.compile(r"\(unconstrained (-?[0-9.e+-]+)\)")
    kinds = {}
    for r in given:
        m = pattern.search(r)
        key = pattern.sub("(unconstrained {})", r) if m else r
        kinds.setdefault(key, []).append(float(m.group(1)) if m else None)
    parts = []
    for key, values in kinds.items():
        nums = [v for v in values if v is not None]
        rng = f"{min(nums):.3g}..{max(nums):.3g}" if len(nums) > 1 else (f"{nums[0]:.3g}" if nums else "")
        parts.append(f"{len(values)}/{len(reasons)} seeds: " + (key.format(rng) if "{}" in key else key))
    return "; ".join(parts)


def _interval_over(entries, seeds_n: int):
    """The row's 90% interval: the seed's own (one seed, or an estimate pooled over the seeds: one weight and
    one interval for all) or a t interval of the mean weight over seeds."""
    if seeds_n == 1 or (entries and entries[0].get("pooled_seeds") and len(entries[0]["pooled_seeds"]) == seeds_n):
        e = entries[0]
        iv = e.get("interval")
        return (None, None, e.get("interval_kind")) if not iv else (iv[0], iv[1], e.get("interval_kind"))
    weights = [float(e["gt_weight"]) for e in entries]
    mean, sd = mean_sd(weights)
    if not math.isfinite(sd):
        return None, None, None
    from scipy.stats import t
    half = float(t.ppf(0.95, len(weights) - 1)) * sd / math.sqrt(len(weights))
    return mean - half, mean + half, f"90% t interval of the mean over {len(weights)} seeds"


def failed_entry(reason: str, run_keys, overhead_s: float = 0.0, **details) -> dict:
    """An estimator entry that failed: no weight, nothing trained at it, the reason as its status."""
    return {"gt_weight": None, "unconstrained": None, "status": reason, "overhead_s": overhead_s,
            "run_keys": list(run_keys), **details}


def chosen_over_seeds(per_seed: list["WeightEstimate"], estimators) -> tuple[str | None, float | None]:
    """The first estimator asked for that succeeded in every seed (else the grid), and its mean weight."""
    for usable in (lambda e: e.ok, lambda e: e.gt_weight is not None):
        for name in list(estimators) + ["grid"]:
            entries = [s.approaches().get(name) for s in per_seed]
            if entries and all(e is not None and usable(e) for e in entries):
                return name, float(statistics.fmean(e.gt_weight for e in entries))
    return None, None


def finish_grid(per_seed: list[dict]) -> None:
    """Choose the grid's weight by the MEAN validation criterion over seeds and fill its results."""
    curves = [s["approaches"]["grid"]["curve"] for s in per_seed if "grid" in s["approaches"]]
    if not curves:
        return
    weights = [c["gt_weight"] for c in curves[0]]
    mean_crit = [statistics.fmean(curve[i]["val_criterion"] for curve in curves) for i in range(len(weights))]
    best = int(np.nanargmin(mean_crit))
    for s in per_seed:
        grid = s["approaches"]["grid"]
        grid.update(gt_weight=weights[best], unconstrained=weights[best], mean_val_criterion=mean_crit,
                    test=grid["curve"][best]["test"], val=grid["curve"][best]["val"],
                    val_criterion=grid["curve"][best]["val_criterion"])


def summary_rows(per_seed: list[dict], metrics=("accuracy", "nll", "ece")) -> list[dict]:
    """One row per approach: weight, its unconstrained value and 90% interval, predicted against
    achieved validation criterion, test metrics as mean and sd over the seeds where it has a weight,
    its cost (runs, of them new / cached / shared; CPU and wall seconds of the runs this study
    trained, each counted once) and its ratio to the grid's, its status, and whether the test
    accuracy is within one grid seed-sd of the grid's best.

    ``per_seed``: :meth:`WeightEstimate.to_dict` of each seed. The "teacher" row is the run the
    students distil from: generation ``G - 1`` (its own ``gt_weight``; 1.0 for generation 0), with
    the cost of every run before the students."""
    names = []
    for s in per_seed:
        names += [n for n in s["approaches"] if n not in names]

    def paid(s, k):
        return s["runs"][k].get("source", "trained").startswith("trained")

    grid_cost = mean_sd([s["approaches"]["grid"]["wall_time_s"] for s in per_seed if "grid" in s["approaches"]])[0]
    grid_runs = mean_sd([s["approaches"]["grid"]["training_runs"] for s in per_seed if "grid" in s["approaches"]])[0]
    rows = []
    for name in ["teacher"] + names:
        row = {"approach": name}
        if name == "teacher":
            entries = []
            for s in per_seed:
                keys = s["teacher_keys"]
                run = s["runs"][keys[-1]]
                new = [k for k in keys if paid(s, k)]
                entries.append({"gt_weight": run["gt_weight"], "unconstrained": run["gt_weight"], "test": run["test"],
                                "training_runs": len(keys), "new_runs": len(new),
                                "cached_runs": [k for k in keys if not paid(s, k)],
                                "wall_time_s": sum(s["runs"][k]["wall_time_s"] for k in new),
                                "cpu_time_s": sum(s["runs"][k].get("cpu_time_s", math.nan) for k in new),
                                "achieved_val_criterion": run.get("val_criterion"), "status": STATUS_OK})
            seeds = [s.get("seed") for s in per_seed]
        else:
            pairs = [(s.get("seed"), s["approaches"][name]) for s in per_seed if name in s["approaches"]]
            seeds, entries = [p[0] for p in pairs], [p[1] for p in pairs]
        ok = [e for e in entries if e.get("gt_weight") is not None]
        bad = [(seed, e["status"]) for seed, e in zip(seeds, entries) if e.get("status", STATUS_OK) != STATUS_OK]
        row["status"] = STATUS_OK if not bad else "; ".join(
            (f"seed {seed}: " if len(entries) > 1 else "") + status for seed, status in bad)
        row["n_seeds"] = len(ok)
        row["gt_weight_mean"], row["gt_weight_sd"] = mean_sd([e.get("gt_weight") for e in ok])
        row["unconstrained_mean"], row["unconstrained_sd"] = mean_sd([e.get("unconstrained") for e in ok])
        # The grid's weight is chosen once for all seeds: it has no interval of its own.
        lo, hi, kind = _interval_over(ok, len(ok)) if ok and name not in ("teacher", "grid") else (None, None, None)
        row["interval_low"], row["interval_high"], row["interval_kind"] = lo, hi, kind
        row["predicted_val_mean"] = mean_sd([e.get("predicted_val_criterion") for e in ok])[0]
        row["achieved_val_mean"] = mean_sd([e.get("achieved_val_criterion", e.get("val_criterion")) for e in ok])[0]
        row["clip_reason"] = _clip_summary([e.get("clip_reason") for e in ok])
        tested = [e for e in ok if e.get("test")]
        for m in metrics:
            row[f"test_{m}_mean"], row[f"test_{m}_sd"] = mean_sd([e["test"][m] for e in tested])
        row["training_runs"] = mean_sd([e["training_runs"] for e in entries])[0]
        row["new_runs"] = mean_sd([e.get("new_runs", e["training_runs"]) for e in entries])[0]
        row["cached_runs"] = mean_sd([len(e.get("cached_runs") or []) for e in entries])[0]
        row["shared_runs"] = mean_sd([len(e.get("shared_runs") or []) for e in entries])[0]
        row["wall_time_s"] = mean_sd([e["wall_time_s"] for e in entries])[0]
        row["cpu_time_s"] = mean_sd([e.get("cpu_time_s") for e in entries])[0]
        row["runs_ratio_to_grid"] = row["training_runs"] / grid_runs if grid_runs == grid_runs else math.nan
        row["time_ratio_to_grid"] = row["wall_time_s"] / grid_cost if grid_cost == grid_cost and grid_cost else math.nan
        rows.append(row)
    grid = next((r for r in rows if r["approach"] == "grid"), None)
    # The target: test accuracy (or MSE, lower is better) within one seed-sd of the grid's best.
    key, sign = f"test_{metrics[0]}", (1.0 if metrics[0] == "accuracy" else -1.0)
    for row in rows:
        if grid is not None and row["n_seeds"] and not math.isnan(grid[f"{key}_sd"]):
            gap = row[f"{key}_mean"] - grid[f"{key}_mean"]
            row[f"{metrics[0]}_gap_to_grid"] = gap
            row["within_one_grid_sd"] = bool(sign * gap >= -grid[f"{key}_sd"])
            row["cost_within_quarter"] = bool(row["time_ratio_to_grid"] <= 0.25 and row["runs_ratio_to_grid"] <= 0.25)
        else:
            row[f"{metrics[0]}_gap_to_grid"], row["within_one_grid_sd"], row["cost_within_quarter"] = math.nan, None, None
    return rows


def _pm(mean, sd, digits=3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.{digits}f}" + ("" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f"+-{sd:.{digits}f}")


def _num(value, digits=3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _ratio(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"      # no grid: no ratio


def _short_status(status: str, width: int = 100) -> str:
    """The status cut to ``width`` characters for the text table (the CSV and the JSON hold it in full)."""
    return status if len(status) <= width else status[:width - 3].rstrip() + "..."


def _runs_cell(r) -> str:
    """``4`` or ``4 (1c 2s)``: the runs, of them cached (c: cost nothing here) and shared with another approach (s)."""
    marks = [f"{r[k]:.2g}{m}" for k, m in (("cached_runs", "c"), ("shared_runs", "s")) if r.get(k)]
    return f"{r['training_runs']:.3g}" + (f" ({' '.join(marks)})" if marks else "")


def format_summary_table(rows: list[dict]) -> str:
    """The rows of :func:`summary_rows` as an aligned text table: weight, unconstrained value, 90%
    interval, predicted / achieved validation criterion, test metrics mean+-sd, runs (cached "c" and
    shared "s" marked), CPU and wall seconds of the runs trained here (each once), the ratio of runs
    to the grid's, and the status; then, below, why each clipped weight was clipped."""
    regression = any("test_mse_mean" in r for r in rows)
    metric_cols = [("mse", "test_mse")] if regression else [("accuracy", "test_acc"), ("nll", "test_nll")]
    head = (f"{'approach':<17} {'gt_weight':>11} {'unconstr':>8} {'90% interval':>13} {'pred/achvd val':>14} "
            + " ".join(f"{title:>13}" for _, title in metric_cols)
            + f" {'runs':>10} {'cpu_s':>7} {'wall_s':>7} {'runs/grid':>9} {'<=1sd':>5}  status")
    lines = [head, "-" * len(head)]
    notes = []
    for r in rows:
        within = r.get("within_one_grid_sd")
        status = r.get("status", STATUS_OK)
        iv = ("-" if r.get("interval_low") is None or not math.isfinite(r["interval_low"])
              else f"[{r['interval_low']:.2f},{r['interval_high']:.2f}]")
        pa = ("-" if r.get("predicted_val_mean") is None or not math.isfinite(r["predicted_val_mean"])
              else f"{r['predicted_val_mean']:.3f}/{_num(r.get('achieved_val_mean'))}")
        lines.append(
            f"{r['approach']:<17} {_pm(r['gt_weight_mean'], r['gt_weight_sd'], 2):>11} "
            f"{_num(r.get('unconstrained_mean'), 2):>8} {iv:>13} {pa:>14} "
            + " ".join(f"{_pm(r.get(f'test_{m}_mean'), r.get(f'test_{m}_sd')):>13}" for m, _ in metric_cols)
            + f" {_runs_cell(r):>10} {_num(r.get('cpu_time_s'), 1):>7} {_num(r['wall_time_s'], 1):>7} "
            f"{_ratio(r['runs_ratio_to_grid']):>9} {'-' if within is None else ('yes' if within else 'NO'):>5}  "
            + ("ok" if status == STATUS_OK else ("FAILED: " if not r["n_seeds"] else "WARNING: ")
               + _short_status(status)))
        if r.get("clip_reason"):
            notes.append(f"  {r['approach']}: {r['clip_reason']}")
    if notes:
        lines += ["clipped:"] + notes
    lines.append("runs: c = cached (trained before this study, costs nothing here), s = shared with another approach; "
                 "cpu_s/wall_s: the runs trained here, each once, plus the estimator's computation")
    return "\n".join(lines)
