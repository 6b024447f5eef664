"""One run's configuration: a flat dataclass with commented defaults (the nanoGPT style).

``TrainConfig`` holds every setting of a multi-generation self-distillation run; building one
validates every field, so a config that exists is a config that can run, and code that receives a
``TrainConfig`` trusts it. Each field carries its help text, and its list of choices where it has
one, in its dataclass metadata (:func:`field_help`, :func:`field_choices`): the one place those are
written; validation and the command line (:mod:`deepdistill.cli`) read them from there. The choices
of the data set, model and loss fields are the registries themselves (``deepdistill.core.data.DATASETS``,
``deepdistill.core.models.MODELS``, :data:`METHODS`), so a registered entry is a valid choice everywhere.

``METHODS`` maps a method name to the loss each generation uses (the losses themselves live in
:mod:`deepdistill.core.losses`).

Conventions (``docs/theory.md`` sections 1 and 4): ``gt_weight`` is the weight on the GROUND TRUTH
(Borup & Andersen's alpha); [ZS20]'s ``w`` weights the teacher and is converted in
:mod:`deepdistill.core.losses` (``gt_weight = 1 - w``). Label smoothing names its convention
(``ls_convention``: ``"muller"`` [M19] or ``"shen"`` [S21]/[ZS20]).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

# No import of deepdistill.core.{data,ema,losses,models} here: each imports torch (about 1-2 s), and the
# command line builds its options (``python -m deepdistill --help``) from this module's fields alone. The
# registries are read through :class:`_Registry` and the functions that need them import them when called.

__all__ = ["TrainConfig", "MethodSpec", "METHODS", "GenerationSettings", "ensure_config", "derive_seed", "config_diff",
           "stable_hash", "one_or_list", "METHOD_KNOBS",
           "field_help", "field_choices", "OPERATIONAL_FIELDS", "PER_GENERATION_FIELDS", "OPTIMIZERS", "SCHEDULES",
           "SELECTIONS", "DEFAULT_SELECTION", "DEVICES", "AMP_MODES"]


@dataclass(frozen=True)
class MethodSpec:
    """Which loss each generation of a method uses, and which knobs the method reads.

    ``first_loss`` / ``later_loss`` are :data:`deepdistill.core.losses.LOSSES` names; ``"ls"`` stands
    for ``"ls_" + config.ls_convention`` (:meth:`loss_names`). A method that does not read
    ``gt_weight`` or ``temperature`` must leave them unset (``None``), so that two configs that train
    the same thing never look different.
    """

    first_loss: str            # generation 0 (trains on labels; no teacher exists yet)
    later_loss: str            # generations >= 1 (a fresh student against the frozen previous generation)
    uses_gt_weight: bool
    uses_temperature: bool
    default_gt_weight: float | None
    default_temperature: float | None
    description: str

    def loss_names(self, ls_convention: str) -> tuple[str, str]:
        """``(first, later)`` as :data:`~deepdistill.core.losses.LOSSES` names: ``"ls"`` becomes ``"ls_<ls_convention>"``."""
        def resolve(name: str) -> str:
            return f"ls_{ls_convention}" if name == "ls" else name

        return resolve(self.first_loss), resolve(self.later_loss)

    def reads(self, knob: str) -> bool:
        """Whether this method reads the :class:`TrainConfig` field ``knob`` (one of :data:`METHOD_KNOBS`): the one
        place that decides it, for validation (a knob that is not read must stay unset), the run id (a knob that
        is not read is left out of it) and :func:`deepdistill.drivers.sweep.expand_grid` (a weight axis gives a
        method that does not read the weight one run, not one per weight)."""
        if knob == "gt_weight":
            return self.uses_gt_weight
        if knob == "temperature":
            return self.uses_temperature
        if knob in ("smoothing", "ls_convention"):
            return "ls" in (self.first_loss, self.later_loss)
        if knob in ("beta_a", "ema_variant"):
            return "beta" in (self.first_loss, self.later_loss)
        raise ValueError(f"unknown method knob {knob!r}; valid: {list(METHOD_KNOBS)}.")

    def drop_unread(self, fields: dict) -> dict:
        """``fields`` (a config mapping) with ``gt_weight`` and ``temperature`` set to ``None`` where this method
        does not read them, as :class:`TrainConfig` requires (:meth:`reads`)."""
        return {**fields, **{k: None for k in ("gt_weight", "temperature") if not self.reads(k)}}

    @property
    def uses_teacher(self) -> bool:
        """Whether generations >= 1 learn from the previous generation (the loss registry says)."""
        from deepdistill.core.losses import LOSSES          # here, not at the top: imports torch

        return self.later_loss in LOSSES and LOSSES[self.later_loss].needs_teacher

    @property
    def accepts_any_weight(self) -> bool:
        """Whether the loss that reads ``gt_weight`` stays bounded below for a weight outside [0, 1]
        (:attr:`deepdistill.core.losses.LossSpec.accepts_any_weight`: the squared-error losses ``mse_mixed``,
        ``mse_logits`` and ``mse_outputs``, i.e. methods ``sd_mse``, ``sd_logits`` and ``sd_reg``)."""
        from deepdistill.core.losses import LOSSES          # here, not at the top: imports torch

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
    "sd_logits": MethodSpec("mse_logits", "mse_logits", True, False, 0.5, None,
                            "squared error of the logits to gt_weight onehot + (1-gt_weight) teacher logits, no softmax "
                            "(the loss of the kernel theory); generation 0 at gt_weight=1"),
    "sd_reg": MethodSpec("mse_outputs", "mse_outputs", True, False, 0.5, None,
                         "REGRESSION (real-valued targets): squared error of the outputs to gt_weight y + "
                         "(1-gt_weight) teacher outputs; generation 0 at gt_weight=1"),
}

#: The config fields that only some methods read (:meth:`MethodSpec.reads`).
METHOD_KNOBS = ("gt_weight", "temperature", "smoothing", "ls_convention", "beta_a", "ema_variant")

# Fields that change how a run is executed or where it is written, not what it computes: they are
# left out of the run id and may differ when a run is resumed.
OPERATIONAL_FIELDS = ("device", "out_dir", "data_root", "checkpoint_every")
# Fields whose value is per generation: a resume compares them generation by generation, so that a
# run of generations 0..1 can be extended to 0..2.
PER_GENERATION_FIELDS = ("generations", "gt_weight", "temperature")

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
SELECTIONS = ("best_val_accuracy", "best_val_nll", "best_val_mse", "last")
# The selection a run gets when it names none (selection=None), by the data set's task.
DEFAULT_SELECTION = {"classification": "best_val_accuracy", "regression": "best_val_mse"}
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("off", "bf16", "fp16")


class _Registry:
    """A registry (dict) or tuple of names that lives in a torch-importing module, read when asked.

    ``module.attr`` is the registry itself once ``module`` is imported, so entries registered later count.
    Before that, nothing can have been registered into it, so its contents are the built-in ``names``
    (the same list; ``tests/test_data_cache_startup.py`` checks that they agree): reading them does not
    import torch, which keeps ``python -m deepdistill --help`` fast.
    """

    def __init__(self, module: str, attr: str, names):
        # ``names``: a dict's keys (listed sorted, as the registry dict is) or a tuple (listed in its order).
        self.module, self.attr, self.names = module, attr, names

    def resolve(self):
        loaded = sys.modules.get(self.module)
        value = getattr(loaded, self.attr, None) if loaded is not None else None
        return self.names if value is None else value


# The registries of the choice fields (see _Registry): module, name, and the built-in entries.
DATASETS_REGISTRY = _Registry("deepdistill.core.data", "DATASETS", dict.fromkeys(
    ("mnist1d", "digits", "gaussian_mixture", "cifar10", "cifar100", "sine", "ba_toy", "mnist_5k")))
NOISE_TYPES_REGISTRY = _Registry("deepdistill.core.data", "NOISE_TYPES", ("symmetric", "class_dependent"))
MODELS_REGISTRY = _Registry("deepdistill.core.models", "MODELS",
                            dict.fromkeys(("linear", "mlp", "cnn1d", "cnn2d", "resnet18", "ntk_mlp")))
SMOOTHING_REGISTRY = _Registry("deepdistill.core.losses", "SMOOTHING_CONVENTIONS", ("muller", "shen"))
EMA_VARIANTS_REGISTRY = _Registry("deepdistill.core.ema", "EMA_VARIANTS", ("copy", "zs20"))


def _setting(default=dataclasses.MISSING, *, help: str, choices=None, factory=None):
    """A config field with its help text and its choices (a registry or a tuple), the one place they live."""
    metadata = {"help": help} if choices is None else {"help": help, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    # data
    dataset: str = _setting("mnist1d", help="data set name", choices=DATASETS_REGISTRY)
    data_root: str | None = _setting(None, help="folder holding the data files (CIFAR); None: the data set's default")
    n_train: int | None = _setting(None, help="size of the training pool before the validation split: a seeded, "
                                              "stratified subsample (None: all)")
    val_fraction: float = _setting(0.1, help="share of the training pool held out for validation / model selection")
    label_noise: float = _setting(0.0, help="share of training labels replaced by noise")
    noise_type: str = _setting("symmetric", help="label-noise model (symmetric: uniform over the other classes)",
                               choices=NOISE_TYPES_REGISTRY)
    data_options: dict = _setting(factory=dict, help="extra load_dataset keyword arguments (command line: JSON, e.g. "
                                                     "'{\"num_samples\": 2000}')")
    # model
    model: str = _setting("cnn1d", help="model name", choices=MODELS_REGISTRY)
    model_kwargs: dict = _setting(factory=dict, help="extra build_model keyword arguments (command line: JSON, e.g. "
                                                     "'{\"hidden\": 64}')")
    # self-distillation
    method: str = _setting("sd_kd", choices=METHODS, help="self-distillation method: "
                           + "; ".join(f"{k}: {v.description}" for k, v in METHODS.items()))
    generations: int = _setting(3, help="number of generations (0 .. N-1); generation 0 trains on the labels")
    gt_weight: float | list | None = _setting(
        None, help="weight on the GROUND TRUTH for generations >= 1: one value, or one per generation >= 1 (None: the "
                   "method's default; methods without one must leave it unset)")
    temperature: float | list | None = _setting(
        None, help="distillation temperature for generations >= 1: one value or one per generation >= 1 (None: the "
                   "method's default)")
    smoothing: float = _setting(0.1, help="label-smoothing strength e (methods ls and ls_kd)")
    ls_convention: str = _setting("muller", choices=SMOOTHING_REGISTRY,
                                  help="label-smoothing convention: muller [M19] (true 1-e+e/K) or shen [S21] (true 1-e, "
                                       "others e/(K-1))")
    beta_a: float = _setting(3.0, help="shape a of Beta(a, 1) in Beta smoothing [ZS20]")
    ema_variant: str = _setting("copy", choices=EMA_VARIANTS_REGISTRY,
                                help="Beta smoothing's EMA of the student: copy (starts as a copy of the model, averages "
                                     "BatchNorm statistics too, predicts in eval mode) or zs20 ([ZS20]'s code: a separately "
                                     "initialised network, parameters averaged, predicts in train mode)")
    allow_any_weight: bool = _setting(False, help="allow gt_weight outside [0, 1] ([DPR26]'s unconstrained optimum; "
                                                  "methods sd_mse, sd_logits and sd_reg only: the other losses are "
                                                  "unbounded below there)")
    # optimisation (the same for every generation). Defaults follow the MNIST-1D authors' CNN
    # recipe (Adam, constant lr 1e-2, no weight decay, batch 100): measured on cnn1d / mnist1d seed 0,
    # 60 epochs at a constant lr reach 92% test accuracy, a cosine decay over 40-100 epochs 87-89%.
    # CIFAR work ([ZS20], [BA21]) uses SGD lr 0.1, momentum 0.9, wd 1e-4..5e-4 with a decaying lr.
    epochs: int = _setting(60, help="epochs per generation")
    batch_size: int = _setting(100, help="training batch size")
    optimizer: str = _setting("adamw", help="optimiser (sgd: with momentum)", choices=OPTIMIZERS)
    lr: float = _setting(1e-2, help="peak learning rate")
    weight_decay: float = _setting(0.0, help="weight decay (decoupled for AdamW)")
    momentum: float = _setting(0.9, help="SGD momentum")
    schedule: str = _setting("constant", choices=SCHEDULES,
                             help="learning-rate schedule (cosine: per step, to 0 at the end of each generation)")
    selection: str | None = _setting(None, choices=SELECTIONS,
                                     help="which epoch's weights each generation keeps (and passes on as the teacher); "
                                          "None: best_val_accuracy for classification, best_val_mse for regression")
    cache_teacher: bool = _setting(True, help="without augmentation, compute the teacher's training logits once per "
                                              "generation")
    eval_batch_size: int = _setting(1024, help="batch size of evaluation passes (no gradients)")
    # system
    seed: int = _setting(0, help="the run's one seed (every random stream derives from it and the generation)")
    device: str = _setting("auto", help="device (auto: cuda when available)", choices=DEVICES)
    amp: str = _setting("off", choices=AMP_MODES,
                        help="mixed precision (autocast) on CUDA; ignored on CPU (command line: --amp alone means bf16)")
    deterministic: bool = _setting(False, help="torch.use_deterministic_algorithms and deterministic cuDNN")
    checkpoint_every: int = _setting(1, help="write a resumable mid-generation checkpoint every N epochs (0: only per "
                                             "generation)")
    out_dir: str = _setting("out/run", help="output folder (train: the run's folder: config, checkpoints, record; "
                                            "sweep: runs go to OUT_DIR/runs/<run_id>/)")

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
        knobs this method never reads (label smoothing outside ``ls``/``ls_kd``, ``beta_a`` and
        ``ema_variant`` outside ``beta``; ``ema_variant`` at its default either), so that a sweep's base
        options do not split identical runs into different ids."""
        spec = METHODS[self.method]
        unread = set(OPERATIONAL_FIELDS)
        # gt_weight and temperature stay: a method that does not read them holds None there.
        unread |= {k for k in ("smoothing", "ls_convention", "beta_a", "ema_variant") if not spec.reads(k)}
        if self.ema_variant == "copy":
            unread.add("ema_variant")      # the default: run ids made before the option existed stay valid
        return {k: v for k, v in self.to_dict().items() if k not in unread}

    def run_id(self) -> str:
        """A stable 12-hex-digit id: SHA-1 of the canonical JSON of :meth:`identity`."""
        return stable_hash(self.identity())

    def prefix_id(self, generation: int) -> str:
        """The id of generation ``generation`` of this run as the generation cache knows it: a hash of what
        generations ``0..generation`` compute, the seed included (:mod:`deepdistill.engine.runs`, ``prefix_dir``).

        Runs that differ only in later generations share it: the identity without the fields that hold
        per-generation values or name the method (``method``, ``generations``, ``gt_weight``,
        ``temperature``), plus each generation's settings (loss, weight, temperature, teacher). So
        ``sd_kd`` runs at different weights share generation 0, and that generation 0 is also plain
        ``ce``'s (both train with cross-entropy on the labels). ``allow_any_weight`` is left out too: it
        lifts a range check and changes no computation (a weight outside [0, 1] is in the settings).
        """
        if not 0 <= generation < self.generations:
            raise ValueError(f"`generation` must be in [0, {self.generations - 1}]; got {generation}.")
        ident = self.identity()
        for name in ("method", "generations", "gt_weight", "temperature", "allow_any_weight"):
            ident.pop(name)
        ident["generation_settings"] = [self.generation_settings(g).to_dict() for g in range(generation + 1)]
        return stable_hash(ident)

    def group_id(self) -> str:
        """The run id without the seed: runs that differ only in their seed share it."""
        ident = self.identity()
        ident.pop("seed")
        return stable_hash(ident)

    # -- per-generation settings ----------------------------------------------------------------
    def generation_settings(self, generation: int) -> "GenerationSettings":
        """Loss name, ground-truth weight and temperature of one generation."""
        if not 0 <= generation < self.generations:
            raise ValueError(f"`generation` must be in [0, {self.generations - 1}]; got {generation}.")
        spec = METHODS[self.method]
        first_loss, later_loss = spec.loss_names(self.ls_convention)
        if generation == 0:
            if spec.uses_teacher:
                # Generation 0 has no teacher: a distillation method trains on the labels alone there
                # (sd_mse: MSE to the one-hot labels, i.e. its mixed target with gt_weight = 1).
                return GenerationSettings.labels_alone(generation, first_loss)
            gt = _nth(self.gt_weight, 0)
            return GenerationSettings(generation, first_loss, gt if gt is not None else 1.0, 1.0, False)
        loss = later_loss
        if self.method == "ls_kd":
            # [S21]: teacher term only, T = 1.
            return GenerationSettings(generation, loss, 0.0, 1.0, True)
        gt = _nth(self.gt_weight, generation - 1)
        temp = _nth(self.temperature, generation - 1)
        return GenerationSettings(generation, loss, 1.0 if gt is None else gt, 1.0 if temp is None else temp,
                                  spec.uses_teacher)

    # -- validation ---------------------------------------------------------------------------
    def _validate(self) -> None:
        from deepdistill.core.data import DATASETS, dataset_task   # here, not at the top: imports torch

        if self.dataset in DATASETS and self.selection is None:
            self.selection = DEFAULT_SELECTION[dataset_task(self.dataset)]   # stored concrete: run ids stay put
        for f in dataclasses.fields(self):
            if "choices" in f.metadata:
                _one_of(f.name, getattr(self, f.name), field_choices(f.name))
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
        _check_task(self.dataset, self.method, spec, self.selection)
        # Fill method defaults, and refuse knobs the method does not read: a config that says
        # gt_weight=0.3 for plain "ce" would look different from the same run without it.
        for name, default in (("gt_weight", spec.default_gt_weight), ("temperature", spec.default_temperature)):
            value = getattr(self, name)
            if not spec.reads(name):
                if value is not None:
                    raise ValueError(f"method {self.method!r} does not use `{name}`; leave it unset (None); got {value!r}.")
                continue
            if value is None:
                value = default
            value = one_or_list(value)
            if isinstance(value, list):
                if not spec.uses_teacher:
                    raise ValueError(f"method {self.method!r} applies `{name}` to every generation alike: give one "
                                     f"number, not a list; got {value!r}.")
                if len(value) != self.generations - 1:
                    raise ValueError(f"`{name}` as a list needs one value per generation >= 1, i.e. "
                                     f"{self.generations - 1} value(s) for generations={self.generations}; got {len(value)}: {value!r}.")
            for v in (value if isinstance(value, list) else [value]):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise TypeError(f"`{name}` values must be finite numbers; got {v!r}.")
                if name == "gt_weight":
                    # The loss's own check (refused here, before any training, if the loss would be unbounded below).
                    from deepdistill.core.losses import LOSSES   # here, not at the top: imports torch

                    fitting = ", ".join(repr(m) for m, sp in METHODS.items() if sp.accepts_any_weight)
                    LOSSES[spec.later_loss].check_gt_weight(v, allow_any_weight=self.allow_any_weight,
                                                            who=f"method {self.method!r}", instead=f"methods {fitting}")
                if name == "temperature" and not v > 0:
                    raise ValueError(f"`temperature` must be > 0; got {v!r}.")
            setattr(self, name, [float(v) for v in value] if isinstance(value, list) else float(value))


@dataclass(frozen=True)
class GenerationSettings:
    generation: int
    loss: str              # a deepdistill.core.losses.LOSSES name
    gt_weight: float       # weight on the ground truth
    temperature: float
    uses_teacher: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def labels_alone(cls, generation: int, loss: str) -> "GenerationSettings":
        """A generation without a teacher, trained on the labels alone: ``gt_weight`` 1
        (:data:`deepdistill.core.losses.LABELS_ALONE_GT_WEIGHT`: the teacher's weight is 0), temperature 1, no
        teacher. The one statement of the rule "generation 0 trains on the labels alone" (every method with a
        teacher); the training loop passes a teacher only where ``uses_teacher``, and
        :meth:`deepdistill.core.losses.LossSpec.bind` runs a teacher loss at this weight on its labels term."""
        from deepdistill.core.losses import LABELS_ALONE_GT_WEIGHT   # here, not at the top: imports torch

        return cls(generation, loss, LABELS_ALONE_GT_WEIGHT, 1.0, False)


def one_or_list(value):
    """A per-generation setting as one number or a list: a tuple becomes a list, and a one-element list its
    element (one value for every generation >= 1, as the command line's ``--gt-weight 0.3`` gives it). The one
    place this happens; other values are returned as they are (validated by :class:`TrainConfig`)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _check_task(dataset: str, method: str, spec: MethodSpec, selection: str) -> None:
    """Refuse a method whose losses train on other targets than the data set has, naming both, and a
    selection rule that reads a metric the task does not have."""
    from deepdistill.core.data import dataset_task        # here, not at the top: imports torch
    from deepdistill.core.losses import LOSSES

    task = dataset_task(dataset)
    wanted = "values" if task == "regression" else "labels"

    def losses_of(sp: MethodSpec) -> list[str]:                    # "ls" stands for either convention: the same targets
        return list(dict.fromkeys(sp.loss_names("muller")))

    wrong = [name for name in losses_of(spec) if LOSSES[name].targets != wanted]
    if wrong:
        fitting = sorted(m for m, sp in METHODS.items() if all(LOSSES[n].targets == wanted for n in losses_of(sp)))
        if task == "regression":
            raise ValueError(f"method {method!r} trains with the classification loss(es) {wrong} on class labels, but "
                             f"dataset {dataset!r} has regression targets (real values); use a regression method: "
                             f"{fitting}.")
        raise ValueError(f"method {method!r} trains with the regression loss(es) {wrong} on real-valued targets, but "
                         f"dataset {dataset!r} has class labels; use a classification method, e.g. 'sd_logits' for "
                         f"the same squared error on the logits with one-hot labels (valid: {fitting}).")
    classification_only = ("best_val_accuracy", "best_val_nll")
    if (task == "regression" and selection in classification_only) or (task == "classification" and selection == "best_val_mse"):
        valid = [s for s in SELECTIONS if (s not in classification_only if task == "regression" else s != "best_val_mse")]
        raise ValueError(f"selection {selection!r} reads a metric that dataset {dataset!r} ({task}) does not have; valid "
                         f"selections for {task}: {valid}.")


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


def stable_hash(d: dict) -> str:
    """The 12-hex-digit id of a settings mapping: SHA-1 of its canonical JSON (keys sorted; what JSON cannot
    hold written by ``str``). The one hash of the toolkit: run ids, generation-cache ids and the bridge
    study's cache keys; changing it would orphan every stored run folder and cache."""
    return hashlib.sha1(_canonical(d).encode()).hexdigest()[:12]



def _nth(value, i: int):
    return value[i] if isinstance(value, list) else value


def field_help(name: str) -> str:
    """The help text of the :class:`TrainConfig` field ``name`` (from its metadata)."""
    return _FIELDS[name].metadata["help"]


def field_choices(name: str) -> list | None:
    """The valid values of the :class:`TrainConfig` field ``name``, or ``None`` if it has no list of choices.

    Read from the field's registry or tuple when asked, so entries registered later count; a registry
    (a dict) is listed sorted, a tuple in its own order.
    """
    choices = _FIELDS[name].metadata.get("choices")
    if isinstance(choices, _Registry):
        choices = choices.resolve()
    if choices is None:
        return None
    return sorted(choices) if isinstance(choices, dict) else list(choices)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


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
