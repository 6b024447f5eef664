"""Command line: ``python -m deepdistill {train,sweep,rollup}``.

    python -m deepdistill train --method sd_kd --generations 3 --epochs 30 --out-dir out/sd_kd
    python -m deepdistill sweep --methods sd_kd ls --gt-weight 0 0.5 1 --seeds 0 1 2 --out-dir out/sweep
    python -m deepdistill sweep ... --shard 0/4          # every 4th run, starting at the first
    python -m deepdistill rollup out/sweep               # rewrite out/sweep/rollup.csv

Every :class:`~deepdistill.config.TrainConfig` field is an option (``--field-name``), with its
default shown by ``--help``; the sweep takes lists for its grid axes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from deepdistill.config import METHODS, TrainConfig

__all__ = ["main", "build_parser", "HELP"]

# One line of help per TrainConfig field (test_deep_cli checks that none is missing).
HELP = {
    "dataset": "data set name",
    "data_root": "folder holding the data files (CIFAR); None: the data set's default",
    "n_train": "size of the training pool before the validation split (None: all)",
    "val_fraction": "share of the training pool held out for validation / model selection",
    "label_noise": "share of training labels replaced by noise",
    "noise_type": "label-noise model",
    "data_options": "extra load_dataset keyword arguments as JSON, e.g. '{\"num_samples\": 2000}'",
    "model": "model name",
    "model_kwargs": "extra build_model keyword arguments as JSON, e.g. '{\"hidden\": 64}'",
    "method": "self-distillation method: " + "; ".join(f"{k}: {v.description}" for k, v in METHODS.items()),
    "generations": "number of generations (0 .. N-1); generation 0 trains on the labels",
    "gt_weight": "weight on the GROUND TRUTH for generations >= 1: one value, or one per generation >= 1 "
                 "(None: the method's default; methods without one must leave it unset)",
    "temperature": "distillation temperature for generations >= 1: one value or one per generation >= 1 "
                   "(None: the method's default)",
    "smoothing": "label-smoothing strength e (methods ls and ls_kd)",
    "ls_convention": "label-smoothing convention: muller (true 1-e+e/K) or shen (true 1-e, others e/(K-1))",
    "beta_a": "shape a of Beta(a, 1) in Beta smoothing",
    "allow_any_weight": "allow gt_weight outside [0, 1] (method sd_mse only: the other losses are unbounded below there)",
    "epochs": "epochs per generation",
    "batch_size": "training batch size",
    "optimizer": "optimiser",
    "lr": "peak learning rate",
    "weight_decay": "weight decay (decoupled for AdamW)",
    "momentum": "SGD momentum",
    "schedule": "learning-rate schedule (cosine: per step, to 0 at the end of each generation)",
    "selection": "which epoch's weights each generation keeps (and passes on as the teacher)",
    "cache_teacher": "without augmentation, compute the teacher's training logits once per generation",
    "eval_batch_size": "batch size of evaluation passes",
    "seed": "the run's seed (every random stream derives from it and the generation)",
    "device": "device",
    "amp": "mixed precision (autocast) on CUDA; --amp alone means bf16; ignored on CPU",
    "deterministic": "torch.use_deterministic_algorithms and deterministic cuDNN",
    "checkpoint_every": "write a resumable mid-generation checkpoint every N epochs (0: only per generation)",
    "out_dir": "output folder (train: the run's folder; sweep: runs go to OUT_DIR/runs/<run_id>/)",
}

_CHOICES = {
    "method": sorted(METHODS),
    "optimizer": ["sgd", "adamw"],
    "schedule": ["cosine", "constant"],
    "selection": ["best_val_accuracy", "best_val_nll", "last"],
    "device": ["auto", "cpu", "cuda"],
    "amp": ["off", "bf16", "fp16"],
    "ls_convention": ["muller", "shen"],
}
# Grid axes of `sweep` (lists there) and their single-run field.
_GRID = {"methods": "method", "gt_weight": "gt_weight", "generations": "generations", "seeds": "seed",
         "datasets": "dataset"}


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"hidden\": 64}}'; got {text!r} ({err})")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object; got {text!r}")
    return value


def _lazy_choices(name: str) -> list[str]:
    if name in _CHOICES:
        return _CHOICES[name]
    from deepdistill import data, models

    return {"dataset": sorted(data.DATASETS), "model": sorted(models.MODELS),
            "noise_type": list(data.NOISE_TYPES)}.get(name)


def _add_config_options(parser: argparse.ArgumentParser, skip=()) -> None:
    """One ``--field-name`` option per TrainConfig field, default and help from the dataclass."""
    defaults = _field_defaults()
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = defaults[f.name]
        kw = {"default": default, "help": HELP[f.name], "dest": f.name}
        if f.name in ("gt_weight", "temperature"):
            kw.update(type=float, nargs="+")
        elif f.name in ("data_options", "model_kwargs"):
            kw.update(type=_json_dict)
        elif f.name == "amp":
            kw.update(nargs="?", const="bf16", choices=_CHOICES["amp"])
        elif isinstance(default, bool):
            kw.update(action=argparse.BooleanOptionalAction)
        elif f.name in ("n_train",):
            kw.update(type=_none_or(int))
        elif f.name in ("data_root",):
            kw.update(type=_none_or(str))
        elif isinstance(default, (int, float, str)):
            kw.update(type=type(default))
        choices = _lazy_choices(f.name)
        if choices and "choices" not in kw:
            kw["choices"] = choices
        parser.add_argument(flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m deepdistill", formatter_class=fmt,
                                     description="Multi-generation self-distillation of deep networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sweep,rollup,estimate-weight}")

    train = sub.add_parser("train", formatter_class=fmt, allow_abbrev=False, help="one run: every generation, resumable",
                           description="Train generations 0..N-1 of one config in --out-dir (resumes what is there).")
    _add_config_options(train)
    train.add_argument("--config", type=Path, default=None,
                       help="JSON file of TrainConfig fields; options given on the command line override it")
    train.add_argument("--quiet", action="store_true", help="no per-epoch log lines")

    sweep = sub.add_parser("sweep", formatter_class=fmt, allow_abbrev=False, help="a grid of runs, resumable and shardable",
                           description="Run method x gt_weight x generations x seeds [x datasets]; finished runs "
                                       "(a complete record) are skipped; then write OUT_DIR/rollup.csv.")
    _add_config_options(sweep, skip=set(_GRID.values()) | {"out_dir"})
    sweep.add_argument("--methods", nargs="+", default=["sd_kd"], choices=sorted(METHODS), help="methods (grid axis)")
    sweep.add_argument("--gt-weight", nargs="+", type=float, default=None, dest="gt_weight",
                       help="ground-truth weights (grid axis); default: each method's own")
    sweep.add_argument("--generations", nargs="+", type=int, default=[3], help="numbers of generations (grid axis)")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (grid axis)")
    sweep.add_argument("--datasets", nargs="+", default=None, help="data sets (grid axis); default: --dataset's default")
    sweep.add_argument("--dataset", default=TrainConfig.dataset, help="data set when --datasets is not given")
    sweep.add_argument("--shard", default="0/1", help="run only shard i of N (every N-th run starting at i)")
    sweep.add_argument("--backend", default="local", choices=["local", "ray"],
                       help="where runs execute: 'local' (one after the other, in this process) or 'ray' (one Ray "
                            "task per generation; needs pip install \".[cluster]\")")
    sweep.add_argument("--address", default=None,
                       help="ray backend: a running Ray cluster ('auto', 'HEAD:6379', 'ray://HEAD:10001'); "
                            "default: start a local Ray instance on this machine")
    sweep.add_argument("--cpus-per-task", type=float, default=1.0, dest="cpus_per_task",
                       help="ray backend: CPUs each task declares (torch then uses as many threads)")
    sweep.add_argument("--gpus-per-task", type=float, default=0.0, dest="gpus_per_task",
                       help="ray backend: GPUs each task declares; a fraction shares a card (0.25: four runs per GPU)")
    sweep.add_argument("--max-retries", type=int, default=3, dest="max_retries",
                       help="ray backend: restarts of a task whose worker died (-1: without limit)")
    sweep.add_argument("--out-dir", default="out/sweep", dest="out_dir", help=HELP["out_dir"])
    sweep.add_argument("--dry-run", action="store_true", help="list the runs (id and config) and exit")
    sweep.add_argument("--quiet", action="store_true", help="no per-run log lines")

    rollup = sub.add_parser("rollup", formatter_class=fmt, help="rewrite DIR/rollup.csv from the records under DIR",
                            description="Collect every complete record.json under DIR into DIR/rollup.csv.")
    rollup.add_argument("dir", type=Path, help="a sweep folder (or any folder holding run folders)")

    from deepdistill import estimate_cli  # imported here: it imports this module's option helpers

    estimate_cli.add_subparser(sub)
    return parser


def _config_fields(args: argparse.Namespace, skip=()) -> dict:
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.name in ("gt_weight", "temperature") and isinstance(value, list) and len(value) == 1:
            value = value[0]
        out[f.name] = value
    return out


def _field_defaults() -> dict:
    """Each TrainConfig field's declared default (before method defaults are filled in)."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(TrainConfig)}


def _log(quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return lambda msg: tqdm.write(msg, file=sys.stderr)


def _given(field_name: str, argv: list[str]) -> bool:
    """Whether ``--field-name`` (or ``--no-field-name``) was typed (abbreviations are disabled)."""
    flag = field_name.replace("_", "-")
    return any(a in (f"--{flag}", f"--no-{flag}") or a.startswith(f"--{flag}=") for a in argv)


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return _COMMANDS[args.command](args, parser)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError, ConnectionError) as err:
        # Bad input and refused resumes end with one clear line, not a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


def _train(args, parser) -> int:
    from deepdistill.train import train_run

    fields = _config_fields(args)
    if args.config is not None:
        with open(args.config, encoding="utf-8") as f:
            from_file = json.load(f)
        # Options typed on the command line override the file; the others keep the file's values.
        fields = {**from_file, **{k: v for k, v in fields.items() if _given(k, args.argv)}}
    config = TrainConfig.from_dict(fields)
    record = train_run(config, config.out_dir, log=_log(args.quiet))
    _print_table(record)
    print(f"record: {Path(config.out_dir) / 'record.json'}")
    return 0


def _sweep(args, parser) -> int:
    from deepdistill.sweep import expand_grid, parse_shard, run_sweep, select_shard

    base = _config_fields(args, skip=set(_GRID.values()) | {"out_dir"})
    base["dataset"] = args.dataset
    configs = expand_grid(base, methods=args.methods, gt_weights=args.gt_weight, generations=args.generations,
                          seeds=args.seeds, datasets=args.datasets)
    index, count = parse_shard(args.shard)
    configs = select_shard(configs, index, count)
    if args.dry_run:
        for cfg in configs:
            print(cfg.run_id(), json.dumps({k: getattr(cfg, k) for k in ("dataset", "method", "gt_weight",
                                                                          "temperature", "generations", "seed")}))
        return 0
    options = {}
    if args.backend == "ray":
        options = dict(address=args.address, num_cpus_per_task=args.cpus_per_task,
                       num_gpus_per_task=args.gpus_per_task, max_retries=args.max_retries)
    elif args.address is not None:
        raise ValueError(f"`--address` names a Ray cluster and needs --backend ray; got --backend {args.backend}.")
    records = run_sweep(configs, args.out_dir, backend=args.backend, log=_log(args.quiet), **options)
    print(f"{len(records)} run(s) complete; roll-up: {Path(args.out_dir) / 'rollup.csv'}")
    return 0


def _rollup(args, parser) -> int:
    from deepdistill.results import collect_records, write_rollup_csv

    if not args.dir.is_dir():
        raise FileNotFoundError(f"`dir` must be an existing folder; got {str(args.dir)!r}.")
    records = collect_records(args.dir)
    rows = write_rollup_csv(records, args.dir / "rollup.csv")
    print(f"{len(records)} record(s), {len(rows)} row(s): {args.dir / 'rollup.csv'}")
    return 0


def _print_table(record: dict) -> None:
    print(f"{'gen':>3} {'loss':>14} {'gt_w':>5} {'T':>4} {'epoch':>5} {'val_acc':>8} {'test_acc':>8} {'test_nll':>8} "
          f"{'test_ece':>8}")
    for g in record["generations"]:
        t = g["test"]
        print(f"{g['generation']:>3} {g['loss']:>14} {g['gt_weight']:>5.2f} {g['temperature']:>4.1f} "
              f"{g['selected_epoch']:>5} {g['val']['accuracy']:>8.4f} {t['accuracy']:>8.4f} {t['nll']:>8.4f} {t['ece']:>8.4f}")
    print(f"wall time {record['wall_time_s']:.1f} s on {record['device']['type']} ({record['device']['name']})")


def _estimate_weight(args, parser) -> int:
    from deepdistill import estimate_cli

    return estimate_cli.run(args, parser)


_COMMANDS = {"train": _train, "sweep": _sweep, "rollup": _rollup, "estimate-weight": _estimate_weight}
