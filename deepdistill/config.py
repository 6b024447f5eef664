"""One run's configuration: a flat dataclass with commented defaults (the nanoGPT style).

``TrainConfig`` holds every setting of a multi-generation self-distillation run; building one
validates every field, so a config that exists is a config that can run. ``METHODS`` maps a
method name to the loss each generation uses (the losses themselves live in
:mod:`deepdistill.losses`).

Conventions (``../shared/THEORY.md`` section 3): ``gt_weight`` is the weight on the GROUND TRUTH
(Borup & Andersen's alpha); [ZS20]'s ``w`` weights the teacher and is converted in
:mod:`deepdistill.losses` (``gt_weight = 1 - w``). Label smoothing names its convention
(``ls_convention``: ``"muller"`` [M19] or ``"shen"`` [S21]/[ZS20]).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig", "MethodSpec", "METHODS", "GenerationSettings", "ensure_config", "derive_seed", "config_diff",
           "OPERATIONAL_FIELDS", "PER_GENERATION_FIELDS", "DEVICES"]


@dataclass(frozen=True)
class MethodSpec:
    """Which loss each generation of a method uses, and which knobs the method reads.

    ``first_loss`` / ``later_loss`` are :data:`deepdistill.losses.LOSSES` names; ``"ls"`` stands
    for ``"ls_" + config.ls_convention``. A method that does not read ``gt_weight`` or
    ``temperature`` must leave them unset (``None``), so that two configs that train the same
    thing never look different.
    """

    first_loss: str            # generation 0 (trains on labels; no teacher exists yet)
    later_loss: str            # generations >= 1 (a fresh student against the frozen previous generation)
    uses_gt_weight: bool
    uses_temperature: bool
    default_gt_weight: float | None
    default_temperature: float | None
    description: str

    @property
    def uses_teacher(self) -> bool:
        """Whether generations >= 1 learn from the previous generation (the loss registry says)."""
        from deepdistill.losses import LOSSES

        return self.later_loss in LOSSES and LOSSES[self.later_loss].needs_teacher

    @property
    def accepts_any_weight(self) -> bool:
        """Whether the loss that reads ``gt_weight`` stays bounded below for a weight outside [0, 1]
        (:attr:`deepdistill.losses.LossSpec.accepts_any_weight`: only [BA21]'s ``mse_mixed``)."""
        from deepdistill.losses import LOSSES

        return self.uses_gt_weight and self.later_loss in LOSSES and LOSSES[self.later_loss].accepts_any_weight


METHODS: dict[str, MethodSpec] = {
    "ce": MethodSpec("ce", "ce", False, False, None, None,
                     "plain cross-entropy; later generations repeat generation 0 with fresh seeds (a baseline)"),
    "ls": MethodSpec("ls", "ls", False, False, None, None,
                     "label smoothing (convention from `ls_convention`, strength `smoothing`); generations repeat"),
    "beta": MethodSpec("beta", "beta", True, False, 0.4, None,
                       "[ZS20] Beta smoothing with an EMA copy of the student, no teacher; gt_weight 0.4 is their w=0.6; "
                       "generations repeat"),
    "sd_kd": MethodSpec("ce", "kd", True, True, 0.5, 4.0,
                        "self-distillation with Hinton KD: gt_weight CE + (1-gt_weight) T^2 KL"),
    "sd_mse": MethodSpec("mse_mixed", "mse_mixed", True, True, 0.5, 1.0,
                         "[BA21] MSE of softmax to the mixed target; generation 0 uses gt_weight=1 "
                         "(MSE to the one-hot labels), so every generation is trained with the same loss family"),
    "sd_zs": MethodSpec("ce", "zs", True, True, 0.6, 4.0,
                        "[ZS20] self-distillation: gt_weight CE + (1-gt_weight) CE(softmax(t/T), softmax(s)); "
                        "their w=0.4, T=4 is gt_weight=0.6"),
    "ls_kd": MethodSpec("ls", "ls_teacher_kd", False, False, None, None,
                        "[S21] generation 0 with label smoothing, later generations KD from it with T=1, "
                        "teacher term only (gt_weight 0)"),
}

# Fields that change how a run is executed or where it is written, not what it computes: they are
# left out of the run id and may differ when a run is resumed.
OPERATIONAL_FIELDS = ("device", "out_dir", "data_root", "checkpoint_every")
# Fields whose value is per generation: a resume compares them generation by generation, so that a
# run of generations 0..1 can be extended to 0..2.
PER_GENERATION_FIELDS = ("generations", "gt_weight", "temperature")

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULES = ("cosine", "constant")
_SELECTIONS = ("best_val_accuracy", "best_val_nll", "last")
DEVICES = ("auto", "cpu", "cuda")
_AMP = ("off", "bf16", "fp16")
_LS_CONVENTIONS = ("muller", "shen")


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist1d"            # a deepdistill.data.DATASETS name
    data_root: str | None = None        # folder with the data files (None: the dataset's default)
    n_train: int | None = None          # a seeded, stratified subsample of n examples of the training pool (None: all)
    val_fraction: float = 0.1           # share of the training set held out for validation/selection
    label_noise: float = 0.0            # share of training labels replaced by noise
    noise_type: str = "symmetric"       # a deepdistill.data.NOISE_TYPES name ("symmetric": uniform over the other classes)
    data_options: dict = field(default_factory=dict)   # extra keyword arguments of load_dataset
    # model
    model: str = "cnn1d"                # a deepdistill.models.MODELS name
    model_kwargs: dict = field(default_factory=dict)   # extra keyword arguments of build_model
    # self-distillation
    method: str = "sd_kd"               # a METHODS name: which loss each generation uses
    generations: int = 3                # generations 0..generations-1; generation 0 trains on labels only
    gt_weight: float | list | None = None    # weight on the ground truth, per generation >= 1 (scalar or list); None: method default
    temperature: float | list | None = None  # distillation temperature, per generation >= 1; None: method default
    smoothing: float = 0.1              # label-smoothing strength e (methods "ls" and "ls_kd")
    ls_convention: str = "muller"       # "muller" [M19]: true 1-e+e/K; "shen" [S21]: true 1-e, others e/(K-1)
    beta_a: float = 3.0                 # shape a of Beta(a, 1) in Beta smoothing [ZS20]
    allow_any_weight: bool = False      # allow gt_weight outside [0, 1] ([DPR26]'s unconstrained optimum); sd_mse only
    # optimisation (the same for every generation). Defaults follow the MNIST-1D authors' CNN
    # recipe (Adam, constant lr 1e-2, no weight decay, batch 100): measured on cnn1d / mnist1d seed 0,
    # 60 epochs at a constant lr reach 92% test accuracy, a cosine decay over 40-100 epochs 87-89%.
    # CIFAR work ([ZS20], [BA21]) uses SGD lr 0.1, momentum 0.9, wd 1e-4..5e-4 with a decaying lr.
    epochs: int = 60                    # epochs per generation
    batch_size: int = 100
    optimizer: str = "adamw"            # "sgd" (with momentum) or "adamw"
    lr: float = 1e-2                    # peak learning rate
    weight_decay: float = 0.0
    momentum: float = 0.9               # SGD only
    schedule: str = "constant"          # "constant" or "cosine" (per step, to 0 at the last step)
    selection: str = "best_val_accuracy"  # which epoch's weights a generation keeps: "best_val_accuracy", "best_val_nll" or "last"
    cache_teacher: bool = True          # without augmentation, compute the teacher's training logits once per generation
    eval_batch_size: int = 1024         # batch size of evaluation passes (no gradients)
    # system
    seed: int = 0                       # the one seed; every random stream is derived from it and the generation
    device: str = "auto"                # "auto" (cuda when available), "cpu" or "cuda"
    amp: str = "off"                    # autocast on CUDA: "off", "bf16" or "fp16" (ignored on CPU)
    deterministic: bool = False         # torch.use_deterministic_algorithms + cudnn flags
    checkpoint_every: int = 1           # write a resumable mid-generation checkpoint every N epochs (0: never)
    out_dir: str = "out/run"            # the run's folder: config, checkpoints, results record

    def __post_init__(self):
        self._validate()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping; unknown keys are an error that lists the valid ones."""
        if not isinstance(d, dict):
            raise TypeError(f"config must be a dict; got {type(d).__name__}.")
        valid = cls.field_names()
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {valid}.")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # -- identity -----------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The fields that determine what the run computes: everything but OPERATIONAL_FIELDS and the
        knobs this method never reads (label smoothing outside ``ls``/``ls_kd``, ``beta_a`` outside
        ``beta``), so that a sweep's base options do not split identical runs into different ids."""
        spec = METHODS[self.method]
        losses = (spec.first_loss, spec.later_loss)
        unread = set(OPERATIONAL_FIELDS)
        if "ls" not in losses:
            unread |= {"smoothing", "ls_convention"}
        if "beta" not in losses:
            unread.add("beta_a")
        return {k: v for k, v in self.to_dict().items() if k not in unread}

    def run_id(self) -> str:
        """A stable 12-hex-digit id: SHA-1 of the canonical JSON of :meth:`identity`."""
        return _hash(self.identity())

    def group_id(self) -> str:
        """The run id without the seed: runs that differ only in their seed share it."""
        ident = self.identity()
        ident.pop("seed")
        return _hash(ident)

    # -- per-generation settings ----------------------------------------------------------------
    def generation_settings(self, generation: int) -> "GenerationSettings":
        """Loss name, ground-truth weight and temperature of one generation."""
        if not 0 <= generation < self.generations:
            raise ValueError(f"`generation` must be in [0, {self.generations - 1}]; got {generation}.")
        spec = METHODS[self.method]
        ls_name = f"ls_{self.ls_convention}"
        if generation == 0:
            loss = ls_name if spec.first_loss == "ls" else spec.first_loss
            # Generation 0 has no teacher: a distillation method trains on the labels alone there
            # (sd_mse: MSE to the one-hot labels, i.e. its mixed target with gt_weight = 1).
            gt = 1.0 if spec.uses_teacher else _nth(self.gt_weight, 0)
            return GenerationSettings(generation, loss, gt if gt is not None else 1.0, 1.0, False)
        loss = ls_name if spec.later_loss == "ls" else spec.later_loss
        if self.method == "ls_kd":
            # [S21]: teacher term only, T = 1.
            return GenerationSettings(generation, loss, 0.0, 1.0, True)
        gt = _nth(self.gt_weight, generation - 1)
        temp = _nth(self.temperature, generation - 1)
        return GenerationSettings(generation, loss, 1.0 if gt is None else gt, 1.0 if temp is None else temp,
                                  spec.uses_teacher)

    # -- validation ---------------------------------------------------------------------------
    def _validate(self) -> None:
        _one_of("dataset", self.dataset, _registry("data", "DATASETS"))
        _one_of("model", self.model, _registry("models", "MODELS"))
        _one_of("method", self.method, sorted(METHODS))
        _one_of("optimizer", self.optimizer, _OPTIMIZERS)
        _one_of("schedule", self.schedule, _SCHEDULES)
        _one_of("selection", self.selection, _SELECTIONS)
        _one_of("device", self.device, DEVICES)
        _one_of("amp", self.amp, _AMP)
        _one_of("ls_convention", self.ls_convention, _LS_CONVENTIONS)
        _one_of("noise_type", self.noise_type, _registry("data", "NOISE_TYPES", sort=False))
        _int_at_least("generations", self.generations, 1)
        _int_at_least("epochs", self.epochs, 1)
        _int_at_least("batch_size", self.batch_size, 1)
        _int_at_least("eval_batch_size", self.eval_batch_size, 1)
        _int_at_least("seed", self.seed, 0)
        _int_at_least("checkpoint_every", self.checkpoint_every, 0)
        if self.n_train is not None:
            _int_at_least("n_train", self.n_train, 1)
        _number_in("lr", self.lr, 0.0, math.inf, low_open=True)
        _number_in("weight_decay", self.weight_decay, 0.0, math.inf)
        _number_in("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _number_in("val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        _number_in("label_noise", self.label_noise, 0.0, 1.0, high_open=True)
        _number_in("smoothing", self.smoothing, 0.0, 1.0, high_open=True)
        _number_in("beta_a", self.beta_a, 0.0, math.inf, low_open=True)
        for name in ("allow_any_weight", "cache_teacher", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"`{name}` must be True or False; got {getattr(self, name)!r}.")
        for name in ("data_options", "model_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"`{name}` must be a dict of keyword arguments; got {getattr(self, name)!r}.")
        if not isinstance(self.out_dir, str) or not self.out_dir:
            raise TypeError(f"`out_dir` must be a non-empty string; got {self.out_dir!r}.")

        spec = METHODS[self.method]
        # Fill method defaults, and refuse knobs the method does not read: a config that says
        # gt_weight=0.3 for plain "ce" would look different from the same run without it.
        for name, uses, default in (("gt_weight", spec.uses_gt_weight, spec.default_gt_weight),
                                    ("temperature", spec.uses_temperature, spec.default_temperature)):
            value = getattr(self, name)
            if not uses:
                if value is not None:
                    raise ValueError(f"method {self.method!r} does not use `{name}`; leave it unset (None); got {value!r}.")
                continue
            if value is None:
                value = default
            if isinstance(value, tuple):
                value = list(value)
            if isinstance(value, list):
                if not spec.uses_teacher:
                    raise ValueError(f"method {self.method!r} applies `{name}` to every generation alike: give one "
                                     f"number, not a list; got {value!r}.")
                if len(value) == 1:
                    value = value[0]
                elif len(value) != self.generations - 1:
                    raise ValueError(f"`{name}` as a list needs one value per generation >= 1, i.e. "
                                     f"{self.generations - 1} value(s) for generations={self.generations}; got {len(value)}: {value!r}.")
            for v in (value if isinstance(value, list) else [value]):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise TypeError(f"`{name}` values must be finite numbers; got {v!r}.")
                if name == "gt_weight" and not 0.0 <= v <= 1.0:
                    if not self.allow_any_weight:
                        raise ValueError(f"`gt_weight` (weight on the ground truth) must be in [0, 1]; got {v!r} "
                                         "(set allow_any_weight=True for an unconstrained weight).")
                    if not spec.accepts_any_weight:
                        # Refused here, before any training: the loss would be unbounded below.
                        raise ValueError(
                            f"method {self.method!r} cannot use `gt_weight` {v!r} outside [0, 1], even with "
                            f"allow_any_weight=True: its loss ({spec.later_loss!r}) mixes cross-entropy/KL terms, and a "
                            "weight outside [0, 1] gives one of them a negative coefficient, so the loss is unbounded "
                            "below and training diverges. Use method 'sd_mse' ([BA21]'s MSE to the mixed target, "
                            "bounded below for any weight) for unconstrained weights.")
                if name == "temperature" and not v > 0:
                    raise ValueError(f"`temperature` must be > 0; got {v!r}.")
            setattr(self, name, [float(v) for v in value] if isinstance(value, list) else float(value))


@dataclass(frozen=True)
class GenerationSettings:
    generation: int
    loss: str              # a deepdistill.losses.LOSSES name
    gt_weight: float       # weight on the ground truth
    temperature: float
    uses_teacher: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def ensure_config(config, name: str = "config") -> "TrainConfig":
    """``config`` as a :class:`TrainConfig`: a TrainConfig is returned as it is (validated when it was
    made), a dict is validated into one. For public entry points that also take a plain dict."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    raise TypeError(f"`{name}` must be a TrainConfig or a dict of its fields; got {type(config).__name__}.")


def derive_seed(seed: int, generation: int, stream: str, epoch: int = 0) -> int:
    """A 63-bit seed for one random stream (``"init"``, ``"order"``, ``"augment"``, ``"beta"``,
    ``"dropout"``) of one generation and epoch, derived from the run's one seed by hashing.

    Seeding each epoch afresh (rather than carrying a generator across epochs) is what makes a run
    resumed from an epoch checkpoint draw exactly the numbers the uninterrupted run drew.
    """
    digest = hashlib.sha256(f"{seed}/{generation}/{stream}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def config_diff(a: dict, b: dict, *, ignore=()) -> list[str]:
    """Names of the fields whose values differ between two config dicts (``ignore`` skipped)."""
    keys = sorted((set(a) | set(b)) - set(ignore))
    return [k for k in keys if _canonical(a.get(k, "<missing>")) != _canonical(b.get(k, "<missing>"))]


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _hash(d: dict) -> str:
    return hashlib.sha1(_canonical(d).encode()).hexdigest()[:12]


def _nth(value, i: int):
    return value[i] if isinstance(value, list) else value


def _registry(module: str, name: str, sort: bool = True) -> list[str]:
    # Imported on use: the registries live with the data sets and models, which import torch.
    import importlib

    names = getattr(importlib.import_module(f"deepdistill.{module}"), name)
    return sorted(names) if sort else list(names)


def _one_of(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid {name}s: {list(valid)}.")


def _int_at_least(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an integer >= {low}; got {value!r} ({type(value).__name__}).")
    if value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value}.")


def _number_in(name: str, value, low: float, high: float, *, low_open=False, high_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number; got {value!r} ({type(value).__name__}).")
    ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok or math.isnan(value):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be in {interval}; got {value!r}.")
