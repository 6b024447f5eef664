"""Command line: ``python -m deepdistill {train,sweep,rollup,estimate-weight}``.

    python -m deepdistill train --method sd_kd --generations 3 --epochs 30 --out-dir out/sd_kd
    python -m deepdistill sweep --methods sd_kd ls --gt-weight 0 0.5 1 --seeds 0 1 2 --out-dir out/sweep
    python -m deepdistill sweep ... --shard 0/4          # every 4th run, starting at the first
    python -m deepdistill rollup out/sweep               # rewrite out/sweep/rollup.csv
    python -m deepdistill estimate-weight --dataset mnist1d --label-noise 0.2 --seeds 0 1 2 --out-dir out/estimate
    python -m deepdistill estimate-weight ... --no-grid            # the cheap estimates only
    python -m deepdistill estimate-weight ... --allow-any-weight   # unconstrained weights ([DPR26])

Every :class:`~deepdistill.core.config.TrainConfig` field is an option (``--field-name``), built from the
field itself: its default, its help text and its choices come from the dataclass (the one place they
are written), its type from the annotation. The sweep takes lists for its grid axes. Every subcommand
lives in this module.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

# Only torch-free modules at the top (claims, config and io use the standard library): `python -m deepdistill
# --help` then starts without torch, scipy or scikit-learn. Each subcommand imports what it runs.
from deepdistill.engine.claims import DEFAULT_STALE_AFTER, check_stale_after
from deepdistill.core.config import TrainConfig, field_choices, field_help
from deepdistill.core.io import ensure_writable_dir

__all__ = ["main", "build_parser", "config_fields"]

# Grid axes of `sweep` (lists there) and their single-run field.
_GRID = {"methods": "method", "gt_weight": "gt_weight", "generations": "generations", "seeds": "seed",
         "datasets": "dataset"}
# TrainConfig fields that estimate-weight sets from its own options (--seeds, --out-dir, --generation).
_ESTIMATE_SKIP = {"seed", "out_dir", "generations"}
# Options that may be given without a value, and the value they then mean.
_BARE_FLAGS = {"amp": "bf16"}


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


def _field_defaults() -> dict:
    """Each TrainConfig field's declared default (before method defaults are filled in)."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(TrainConfig)}


def _option(name: str, annotation, default) -> dict:
    """argparse keywords of the field ``name`` from its annotation, default, help and choices."""
    kw = {"default": default, "help": field_help(name), "dest": name}
    args = typing.get_args(annotation)
    if annotation is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif annotation is dict:
        kw["type"] = _json_dict
    elif list in args:                                  # one value, or one per generation >= 1
        kw.update(type=float, nargs="+")
    elif type(None) in args:                            # "none" on the command line is None
        kw["type"] = _none_or(next(a for a in args if a is not type(None)))
    else:
        kw["type"] = annotation
    if name in _BARE_FLAGS:
        kw.update(nargs="?", const=_BARE_FLAGS[name])
    choices = field_choices(name)
    if choices is not None:
        kw["choices"] = choices
    return kw


def _add_config_options(parser: argparse.ArgumentParser, skip=()) -> None:
    """One ``--field-name`` option per TrainConfig field (but ``skip``), built from the field."""
    defaults, hints = _field_defaults(), typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name not in skip:
            parser.add_argument("--" + f.name.replace("_", "-"), **_option(f.name, hints[f.name], defaults[f.name]))


def config_fields(args: argparse.Namespace, skip=()) -> dict:
    """The TrainConfig fields parsed into ``args`` (but ``skip``), as a dict for :meth:`TrainConfig.from_dict`."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip or not hasattr(args, f.name):
            continue
        out[f.name] = getattr(args, f.name)      # a one-element --gt-weight list: TrainConfig makes it a number
    return out


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The parser of every subcommand; ``commands``: build the options of these subcommands only (the others
    keep their one-line help), so that ``--help`` and ``train`` need not import what ``sweep`` and
    ``estimate-weight`` list in their options (torch, the studies). ``None``: all of them."""
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
    _add_claim_option(train)

    sweep = sub.add_parser("sweep", formatter_class=fmt, allow_abbrev=False, help="a grid of runs, resumable and shardable",
                           description="Run method x gt_weight x generations x seeds [x datasets]; finished runs "
                                       "(a complete record) are skipped; then write OUT_DIR/rollup.csv.")
    if commands is None or "sweep" in commands:
        _add_sweep_options(sweep, fmt)

    rollup = sub.add_parser("rollup", formatter_class=fmt, help="rewrite DIR/rollup.csv from the records under DIR",
                            description="Collect every complete record.json under DIR into DIR/rollup.csv.")
    rollup.add_argument("dir", type=Path, help="a sweep folder (or any folder holding run folders)")
    rollup.add_argument("--strict", action="store_true",
                        help="exit with an error (2) when a record.json cannot be read, instead of listing it and "
                             "leaving it out")

    _add_estimate_parser(sub, fmt, full=commands is None or "estimate-weight" in commands)
    return parser


def _add_sweep_options(sweep, fmt) -> None:
    # Imported here, not at the top: the local runner and the backends import torch (about 1-2 s).
    from deepdistill.drivers.local_runner import default_jobs
    from deepdistill.drivers.sweep import BACKENDS

    _add_config_options(sweep, skip=set(_GRID.values()) | {"out_dir"})
    sweep.add_argument("--methods", nargs="+", default=["sd_kd"], choices=field_choices("method"),
                       help="methods (grid axis)")
    sweep.add_argument("--gt-weight", nargs="+", type=float, default=None, dest="gt_weight",
                       help="ground-truth weights (grid axis); default: each method's own")
    sweep.add_argument("--generations", nargs="+", type=int, default=[3], help="numbers of generations (grid axis)")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (grid axis)")
    sweep.add_argument("--datasets", nargs="+", default=None, choices=field_choices("dataset"),
                       help="data sets (grid axis); default: --dataset")
    sweep.add_argument("--dataset", default=TrainConfig.dataset, choices=field_choices("dataset"),
                       help="data set when --datasets is not given")
    sweep.add_argument("--shard", default="0/1", help="run only shard i of N (every N-th run starting at i)")
    sweep.add_argument("--backend", default="local", choices=list(BACKENDS),
                       help="where runs execute: 'local' (--jobs processes of this machine) or 'ray' (one Ray "
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
    sweep.add_argument("--jobs", type=_jobs, default=None,
                       help="local backend: runs trained at once, each in its own process (1: in this process); "
                            "default: usable cores // --threads-per-job on the CPU (here "
                            f"{default_jobs(1)}), 1 with a GPU")
    sweep.add_argument("--threads-per-job", type=int, default=1, dest="threads_per_job",
                       help="local backend: torch threads of each job, >= 1 (small networks cannot use more than one; "
                            "the thread count, not --jobs, decides the last bits of CPU results)")
    sweep.add_argument("--share-generations", action=argparse.BooleanOptionalAction, default=True,
                       dest="share_generations",
                       help="train the generations that runs share (a teacher of students at several weights) once, in "
                            "OUT_DIR/generations/; --no-share-generations trains every run on its own")
    _add_claim_option(sweep)
    sweep.add_argument("--out-dir", default="out/sweep", dest="out_dir", help=field_help("out_dir"))
    sweep.add_argument("--dry-run", action="store_true", help="list the runs (id and config) and exit")
    sweep.add_argument("--quiet", action="store_true", help="no per-run log lines")


def _add_estimate_parser(sub, fmt, full: bool = True) -> None:
    est = sub.add_parser(
        "estimate-weight", formatter_class=fmt, allow_abbrev=False,
        help="estimate the optimal gt_weight, with costs, vs a grid",
        description="Estimate the optimal ground-truth weight of one student generation: the half grid (the default), "
                    "the two-run affine and refined estimates, "
                    "the kernel surrogates on the teacher's features / empirical NTK, and [DPR26]'s one-shot estimate, "
                    "each with its cost, next to a grid search over gt_weight x seeds. Writes OUT_DIR/estimate_weight.json "
                    "(every run and estimate, itemised) and OUT_DIR/estimate_weight.csv (the table printed).")
    if not full:
        return
    # Imported here, not at the top: the study imports torch, scikit-learn, scipy and kerneldistill (2-3 s).
    from deepdistill.studies.weight_estimation import DEFAULT_ESTIMATORS, DEFAULT_GRID, ESTIMATORS

    # The run's own fields. Per-study options below replace seed and out_dir, and --generation
    # replaces --generations (the study trains generations 0..G: one option per meaning).
    _add_config_options(est, skip=_ESTIMATE_SKIP)
    est.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (one teacher per seed)")
    est.add_argument("--generation", type=int, default=1,
                     help="the student generation G whose weight is estimated: the teacher is generations 0..G-1 "
                          "(with --gt-weight for generations 1..G-1), so the study trains G + 1 generations")
    est.add_argument("--grid", nargs="+", type=float, default=list(DEFAULT_GRID), help="weights of the reference grid search")
    est.add_argument("--no-grid", action="store_true", help="skip the grid search (the cheap estimates only)")
    est.add_argument("--estimators", nargs="+", default=list(DEFAULT_ESTIMATORS), choices=sorted(ESTIMATORS),
                     # argparse expands %-formats in help: the descriptions' "90%" must be escaped
                     help="; ".join(f"{k}: {v}" for k, v in ESTIMATORS.items()).replace("%", "%%"))
    est.add_argument("--train-alpha1", action="store_true",
                     help="train a student at gt_weight 1 for the two-run estimate instead of using generation 0")
    est.add_argument("--kernel", default="rbf", help="kernel on the teacher's features (a sklearn pairwise kernel)")
    est.add_argument("--gamma", type=float, default=None, help="kernel gamma (rbf, laplacian, polynomial, sigmoid)")
    est.add_argument("--ntk-subsample", type=int, default=500, help="training examples used by the NTK estimators")
    est.add_argument("--out-dir", default="out/estimate_weight", dest="out_dir",
                     help="runs go to OUT_DIR/runs/seed_S/ (teacher/ and gt_<weight>/, reused when present); results to "
                          "OUT_DIR/estimate_weight.json and .csv. --allow-any-weight gives unconstrained estimates")
    est.add_argument("--quiet", action="store_true", help="no per-run log lines")
    est.add_argument("--jobs", type=_jobs, default=None,
                     help="runs trained at once (teachers and the students of the grid and the two-run estimate), "
                          "each in its own process; default: usable cores // --threads-per-job on the CPU, 1 with a "
                          "GPU; 1: one after the other in this process")
    est.add_argument("--threads-per-job", type=int, default=1, dest="threads_per_job",
                     help="torch threads of each job when --jobs is above 1 (>= 1)")


def _jobs(text: str) -> int | None:
    """``--jobs``: a number of processes >= 1, or 0 (or "auto") for the default."""
    if text.lower() in ("0", "auto"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, or 0 / auto; got {text!r}") from None
    return value           # checked, with --threads-per-job, by resolve_jobs (_check_process_options)


def _add_claim_option(parser) -> None:
    parser.add_argument("--claim-timeout", type=float, default=DEFAULT_STALE_AFTER, dest="claim_timeout",
                        help="seconds without a heartbeat after which another process's claim on a generation is "
                             "stale and taken over (a claim of a process gone from this machine is taken over at once)")


def _log(quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return lambda msg: tqdm.write(msg, file=sys.stderr)


def _given(field_name: str, argv: list[str]) -> bool:
    """Whether ``--field-name`` (or ``--no-field-name``) was typed (abbreviations are disabled)."""
    flag = field_name.replace("_", "-")
    return any(a in (f"--{flag}", f"--no-{flag}") or a.startswith(f"--{flag}=") for a in argv)


#: The hint after Ctrl-C (every command resumes what it finished, and its exit status is 130 as for SIGINT).
INTERRUPTED = "interrupted; run the same command again to resume"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Build the options of the subcommand asked for only (the first argument; the top level has no options but
    # --help): `python -m deepdistill --help` imports no torch.
    parser = build_parser(commands={argv[0]} if argv and argv[0] in _COMMANDS else set())
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        _check_process_options(args)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as err:
        # Bad input, refused resumes, unreadable files and failed runs end with one clear line, not a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


# How resolve_jobs names --jobs and --threads-per-job in its errors.
_JOB_OPTIONS = ("--jobs", "--threads-per-job")


def _check_process_options(args) -> None:
    """Refuse a bad --claim-timeout, --jobs or --threads-per-job before anything starts, in one line (the
    checks of the Python API: check_stale_after, resolve_jobs)."""
    from deepdistill.drivers.local_runner import resolve_jobs    # here, not at the top: imports torch

    if hasattr(args, "claim_timeout"):
        check_stale_after(args.claim_timeout, "--claim-timeout")
    if hasattr(args, "threads_per_job"):
        resolve_jobs(1 if args.jobs is None else args.jobs, args.threads_per_job, names=_JOB_OPTIONS)


def _train(args) -> int:
    from deepdistill.engine.train import train_run           # here, not at the top: imports torch

    fields = config_fields(args)
    if args.config is not None:
        with open(args.config, encoding="utf-8") as f:
            from_file = json.load(f)
        # Options typed on the command line override the file; the others keep the file's values.
        fields = {**from_file, **{k: v for k, v in fields.items() if _given(k, args.argv)}}
    config = TrainConfig.from_dict(fields)
    ensure_writable_dir(config.out_dir, "--out-dir")
    log = _log(args.quiet)
    if log:
        log(f"run {config.run_id()} in {config.out_dir}: method {config.method}, {config.generations} generations, "
            f"gt_weight {config.gt_weight}, temperature {config.temperature}, seed {config.seed}")
    record = train_run(config, config.out_dir, log=log, claim_timeout=args.claim_timeout)
    _print_table(record)
    print(f"record: {Path(config.out_dir) / 'record.json'}")
    return 0


def _sweep(args) -> int:
    # Here, not at the top: the runner imports torch.
    from deepdistill.drivers.local_runner import resolve_jobs
    from deepdistill.drivers.sweep import expand_grid, parse_shard, run_sweep, select_shard

    base = config_fields(args, skip=set(_GRID.values()) | {"out_dir"})
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
    ensure_writable_dir(args.out_dir, "--out-dir")
    options = {"claim_timeout": args.claim_timeout, "share_generations": args.share_generations}
    threads = args.threads_per_job
    if args.backend == "ray":
        options.update(address=args.address, num_cpus_per_task=args.cpus_per_task,
                       num_gpus_per_task=args.gpus_per_task, max_retries=args.max_retries)
    elif args.address is not None:
        raise ValueError(f"`--address` names a Ray cluster and needs --backend ray; got --backend {args.backend}.")
    else:
        jobs, threads = resolve_jobs(args.jobs, threads, base.get("device", "cpu"), names=_JOB_OPTIONS)
        options.update(jobs=jobs, threads_per_job=threads)
        if args.jobs is None and not args.quiet:
            print(f"{jobs} job(s) of {threads} torch thread(s) each (--jobs, "
                  "--threads-per-job)", file=sys.stderr)
    records = run_sweep(configs, args.out_dir, backend=args.backend, log=_log(args.quiet), **options)
    print(f"{len(records)} run(s) complete; roll-up: {Path(args.out_dir) / 'rollup.csv'}")
    return 0


def _rollup(args) -> int:
    from deepdistill.engine.results import collect_records, write_rollup_csv   # here: imports torch and scipy

    if not args.dir.is_dir():
        raise FileNotFoundError(f"`dir` must be an existing folder; got {str(args.dir)!r}.")
    unreadable: list = []
    records = collect_records(args.dir, unreadable=unreadable)
    for path, why in unreadable:
        print(f"unreadable: {path} {why}", file=sys.stderr)
    if unreadable and args.strict:
        raise ValueError(f"{len(unreadable)} record(s) under {str(args.dir)!r} cannot be read (listed above; --strict). "
                         "Run the sweep again to rewrite them, or delete their run folders.")
    ensure_writable_dir(args.dir, "dir")
    rows = write_rollup_csv(records, args.dir / "rollup.csv")
    print(f"{len(records)} record(s), {len(rows)} row(s): {args.dir / 'rollup.csv'}"
          + (f"; {len(unreadable)} unreadable record(s) left out (listed above)" if unreadable else ""))
    return 0


def _estimate_weight(args) -> int:
    # Here, not at the top: the study imports torch, scikit-learn, scipy and kerneldistill.
    from deepdistill.studies.weight_estimation import estimate_gt_weight

    fields = config_fields(args, skip=_ESTIMATE_SKIP)
    # The config trains generations 0..G; per-generation lists of --gt-weight / --temperature set it too.
    lists = [len(v) for v in (fields.get("gt_weight"), fields.get("temperature")) if isinstance(v, list)]
    fields["generations"] = max([args.generation] + lists) + 1
    config = TrainConfig.from_dict(fields)
    ensure_writable_dir(args.out_dir, "--out-dir")
    result = estimate_gt_weight(
        config, args.out_dir, seeds=args.seeds, generation=args.generation, grid=None if args.no_grid else args.grid,
        estimators=args.estimators, allow_any_weight=config.allow_any_weight,
        teacher_as_alpha1=False if args.train_alpha1 else None, kernel=args.kernel,
        kernel_params={} if args.gamma is None else {"gamma": args.gamma}, ntk_subsample=args.ntk_subsample,
        log=_log(args.quiet), jobs=args.jobs, threads_per_job=args.threads_per_job)
    print(result.table())
    if result.chosen is not None:
        print(f"chosen gt_weight {result.gt_weight:.4g} (from {result.chosen}, mean over seeds)")
    print(f"results: {Path(args.out_dir) / 'estimate_weight.json'} and {Path(args.out_dir) / 'estimate_weight.csv'}")
    return 0


def _print_table(record: dict) -> None:
    # Classification: accuracy, NLL, ECE; regression: MSE (validation and test) and the test RMSE.
    regression = "mse" in record["generations"][0]["test"]
    columns = [("val", "mse"), ("test", "mse"), ("test", "rmse")] if regression else \
        [("val", "accuracy"), ("test", "accuracy"), ("test", "nll"), ("test", "ece")]
    short = {"accuracy": "acc"}
    print(f"{'gen':>3} {'loss':>14} {'gt_w':>5} {'T':>4} {'epoch':>5} "
          + " ".join(f"{split + '_' + short.get(m, m):>9}" for split, m in columns))
    for g in record["generations"]:
        print(f"{g['generation']:>3} {g['loss']:>14} {g['gt_weight']:>5.2f} {g['temperature']:>4.1f} "
              f"{g['selected_epoch']:>5} " + " ".join(f"{g[split][m]:>9.4f}" for split, m in columns))
    print(f"wall time {record['wall_time_s']:.1f} s on {record['device']['type']} ({record['device']['name']})")


_COMMANDS = {"train": _train, "sweep": _sweep, "rollup": _rollup, "estimate-weight": _estimate_weight}
