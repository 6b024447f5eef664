"""The Ray backend of :func:`deepdistill.drivers.sweep.run_sweep`: a sweep on a cluster, one Ray task per generation.

A sweep is hundreds of independent runs, each a chain of generations. Rather than a home-made
scheduler, each generation of each run is a Ray task (https://docs.ray.io) with its resources
declared (``num_cpus_per_task``; ``num_gpus_per_task`` may be a fraction, so that several small
models share one card), and Ray places, orders and retries them:

* Order. The task of generation ``g`` takes the task of ``g - 1`` as an argument (an object
  reference), so Ray starts it only once ``g - 1`` is done. Different runs are independent and run
  side by side.
* Teachers pass as files, not live models: the task of generation ``g`` runs
  :func:`deepdistill.engine.train.train_run` with ``through_generation=g``, which loads generations ``< g``
  from their checkpoint files (:func:`deepdistill.engine.runs.checkpoint_path`, written atomically by the
  tasks before), trains ``g`` and writes no record. The sweep folder must therefore be one that every
  node sees (NFS, Lustre, ...); it is already where the records, checkpoints and roll-up live.
* Shared generations: runs that differ only in later generations (a teacher with students at several
  weights) share their first ones through the generation cache (``out_dir/generations/``,
  :func:`deepdistill.engine.runs.prefix_dir`), as on the local backend: one task per distinct generation, and
  every run's later tasks take it as an argument.
* The record: a last task per run, :func:`deepdistill.engine.train.run_one` (the very function the local
  backend's runs end with), links the run's generations into its folder and writes ``record.json``
  (atomically, with the full config's run id). Only that task writes a record, so an unfinished chain
  never leaves one that looks complete, and the records, hence the roll-up, are those of the local backend.
* Claims: each generation is trained under a claim (:mod:`deepdistill.engine.claims`), so a sweep on Ray and
  a local sweep or shards on the same folder never train one generation twice; a task whose
  generation another process is training waits for it.
* Faults. A worker that dies (killed, out of memory, node lost) is a system failure, retried by Ray
  up to ``max_retries`` times; the retry resumes from the generation's last mid-generation
  checkpoint (:func:`deepdistill.engine.runs.partial_path`) and, on CPU, ends with the weights the uninterrupted
  run has. An exception raised by the training itself (a refused config, a non-finite loss) is not
  retried: it would only fail again. Other runs go on; the roll-up is written for every finished
  run; then the failures are reported together.
* Restart. Before submitting, the driver skips runs with a complete record and generations with a
  finished checkpoint, so a sweep stopped and started again trains only what is missing.

Ray is an optional dependency (``pip install ".[cluster]"``); without it :func:`run_sweep_ray`
fails at once, saying how to install it.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Callable

from deepdistill.engine.claims import DEFAULT_STALE_AFTER, check_stale_after
from deepdistill.core.config import TrainConfig, ensure_config
from deepdistill.core.io import ensure_writable_dir
from deepdistill.engine.results import describe_run, write_rollup
from deepdistill.engine.runs import (RECORD_FILE, checkpoint_path, generation_cache_dir, generation_home, is_finished,
                              read_record, run_dir_for)
from deepdistill.engine.train import run_one, train_run

__all__ = ["import_ray", "run_sweep_ray", "RAY_INSTALL_HINT"]

RAY_INSTALL_HINT = 'pip install ".[cluster]"'


def import_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            f"the Ray backend needs the `ray` package, which is not installed; install the cluster extra with "
            f"`{RAY_INSTALL_HINT}` (from the repository root), or run the sweep with the local backend "
            f"(--backend local)."
        ) from err
    return ray


# ------------------------------------------------------------------------------------------------
# What a task runs
# ------------------------------------------------------------------------------------------------

def _device_for_task(config: TrainConfig) -> TrainConfig:
    import ray

    if config.device == "auto" and not ray.get_gpu_ids():
        # Ray (>= 2.48) no longer hides the GPUs from a task that declared none, so "auto" would take
        # a card that Ray gave to other tasks. The device is an operational field: the run id stays.
        return config.replace(device="cpu")
    return config


def _generation_task(config: TrainConfig, out_dir: str, generation: int, share: bool, claim_timeout: float,
                     *after) -> dict:
    """The body of one Ray task: generation ``generation`` of ``config``, in the generation cache (or the run's
    folder without one).

    ``after``: the result of the task of the generation before (an argument only so that Ray starts
    this task once that one is done). The generations before are loaded from their files by
    :func:`deepdistill.engine.train.train_run`; ``through_generation`` makes it stop after this generation
    without writing a record. Returns a small dict (the weights stay in the file, never in Ray's
    object store).
    """
    config = _device_for_task(config)
    run_dir = run_dir_for(config, out_dir)
    # The config as run_one passes it (out_dir = the run folder), so that config.json is the same.
    train_run(config.replace(out_dir=str(run_dir)), run_dir, progress=False, through_generation=generation,
              cache_dir=generation_cache_dir(out_dir) if share else None, claim_timeout=claim_timeout)
    return {"run_id": config.run_id(), "generation": generation}


def _record_task(config: TrainConfig, out_dir: str, share: bool, claim_timeout: float, *after) -> dict:
    """The last task of a run: :func:`deepdistill.engine.train.run_one`, as on the local backend (writes and returns the record)."""
    return run_one(_device_for_task(config), out_dir, progress=False, share_generations=share,
                   claim_timeout=claim_timeout)


# ------------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------------

def run_sweep_ray(configs: list[TrainConfig], out_dir, *, address: str | None = None, num_cpus_per_task: float = 1,
                  num_gpus_per_task: float = 0, max_retries: int = 3, num_cpus: int | None = None,
                  runtime_env: dict | None = None, claim_timeout: float = DEFAULT_STALE_AFTER,
                  share_generations: bool = True, log: Callable[[str], None] | None = None,
                  progress: bool | None = None) -> list[dict]:
    """Run every config on Ray (skipping what is finished), then write ``out_dir/rollup.csv``; return the records.

    Parameters
    ----------
    configs : :class:`TrainConfig`\\ s (as :func:`deepdistill.drivers.sweep.expand_grid` makes them; a dict is
        validated into one here).
    out_dir : the sweep folder, seen by every node; runs go to ``out_dir/runs/<run_id>/``.
    address : a running Ray cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``); ``None``
        starts a local Ray instance on this machine (no dashboard) and stops it at the end. If Ray is
        already initialised in this process, that instance is used and left running.
    num_cpus_per_task, num_gpus_per_task : the resources each task declares. A fraction of a GPU
        (e.g. 0.25) lets that many small models share one card. Ray sets ``OMP_NUM_THREADS`` to the
        task's CPUs, so torch uses that many threads.
    max_retries : how often a task whose worker died is started again (-1: without limit).
    num_cpus : CPUs of a local instance (``None``: all of this machine's); ignored with ``address``.
    runtime_env : Ray's runtime environment for the workers (e.g. ``{"working_dir": "."}`` when the
        nodes do not have the package installed).
    claim_timeout : seconds without a heartbeat after which a claim on a generation is stale (taken over).
    share_generations : runs that share their first generations train them once (the generation cache).

    Runs are returned in the order of ``configs``. Runs that fail do not stop the others; once all
    are done, the roll-up is written and a RuntimeError names the failed runs.
    """
    ray = import_ray()
    _check_count("num_cpus_per_task", num_cpus_per_task, low=0, low_open=True)
    _check_count("num_gpus_per_task", num_gpus_per_task, low=0)
    if num_gpus_per_task > 1 and num_gpus_per_task != int(num_gpus_per_task):
        raise ValueError(f"`num_gpus_per_task` above 1 must be a whole number (Ray shares a GPU only below 1); "
                         f"got {num_gpus_per_task!r}.")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
        raise ValueError(f"`max_retries` must be an integer >= -1 (-1: retry without limit); got {max_retries!r}.")
    if num_cpus is not None:
        _check_count("num_cpus", num_cpus, low=1)
    claim_timeout = check_stale_after(claim_timeout, "claim_timeout")     # before Ray starts, not in every task

    out_dir = ensure_writable_dir(out_dir, "out_dir").resolve()   # absolute: a worker's current folder is not the driver's
    configs = [ensure_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
    unique: dict[str, TrainConfig] = {}
    for cfg in configs:
        if cfg.device == "cuda" and num_gpus_per_task == 0:
            raise ValueError("a config asks for device='cuda' but `num_gpus_per_task` is 0, so Ray would give its tasks "
                             "no GPU; set num_gpus_per_task (e.g. 0.25 to share a card by four) or device='cpu'.")
        if cfg.device == "cpu" and num_gpus_per_task > 0:
            raise ValueError(f"`num_gpus_per_task` is {num_gpus_per_task} but a config asks for device='cpu': its tasks "
                             "would hold GPUs they never use; set device='auto' or 'cuda', or num_gpus_per_task=0.")
        # One chain per run id: two chains in one folder would write the same files.
        unique.setdefault(cfg.run_id(), cfg)

    started_here = not ray.is_initialized()
    if started_here:
        # address=None starts an instance of our own ("local"): Ray's own default would attach to a cluster
        # that `ray start` (or another program) left on this machine and then refuse num_cpus.
        init_kwargs = dict(address=address or "local", include_dashboard=False, logging_level="warning",
                           runtime_env=runtime_env)
        if address is None:
            init_kwargs["num_cpus"] = num_cpus
        ray.init(**init_kwargs)
    try:
        return _drive(ray, configs, unique, out_dir, num_cpus_per_task=num_cpus_per_task,
                      num_gpus_per_task=num_gpus_per_task, max_retries=max_retries, claim_timeout=claim_timeout,
                      share=share_generations, log=log, progress=progress)
    finally:
        # Stops a local instance (and its workers) or disconnects from a cluster; never one we did not start.
        if started_here:
            ray.shutdown()


def _drive(ray, configs, unique, out_dir: Path, *, num_cpus_per_task, num_gpus_per_task, max_retries, claim_timeout,
           share, log, progress) -> list[dict]:
    from tqdm.auto import tqdm

    # Not retried on an exception from the training itself (deterministic: it would fail again);
    # retried when the worker process dies.
    options = dict(num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_retries=max_retries,
                   retry_exceptions=False)
    generation_task = ray.remote(**options)(_generation_task)
    record_task = ray.remote(**options)(_record_task)
    cache_dir = generation_cache_dir(out_dir) if share else None
    records: dict[str, dict] = {}
    submitted: dict[str, object] = {}    # one task per distinct generation: its key -> its ref
    pending = {}          # the ref of a run's record task -> run id
    for rid, cfg in unique.items():
        run_dir = run_dir_for(cfg, out_dir)
        record = read_record(run_dir / RECORD_FILE)
        if is_finished(record, cfg):
            records[rid] = record
            if log:
                log(describe_run("skipped (finished)", record))
            continue
        ref = None
        for g in range(cfg.generations):
            key, folder = generation_home(cfg, g, run_dir, cache_dir)
            if key not in submitted:
                if checkpoint_path(folder, g).exists():
                    submitted[key] = None      # finished by an earlier sweep: its file is the teacher
                else:
                    submitted[key] = generation_task.options(name=f"deepdistill-{key}-g{g}").remote(
                        cfg, str(out_dir), g, share, claim_timeout, *([ref] if ref is not None else []))
            ref = submitted[key] if submitted[key] is not None else ref
        done = record_task.options(name=f"deepdistill-{rid}-record").remote(cfg, str(out_dir), share, claim_timeout,
                                                                             *([ref] if ref is not None else []))
        pending[done] = rid

    failures: dict[str, BaseException] = {}
    bar = tqdm(total=len(unique), initial=len(records), desc="sweep (ray)", unit="run",
               disable=None if progress is None else not progress)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            rid = pending.pop(ref)
            try:
                records[rid] = ray.get(ref)
            except ray.exceptions.RayError as err:
                # A failed generation fails the tasks after it; its cause is what the user needs.
                failures[rid] = getattr(err, "cause", None) or err
                if log:
                    log(f"FAILED {rid}: {err}")
                continue
            finally:
                bar.update(1)
            if log:
                log(describe_run("finished", records[rid]))
    bar.close()

    # The roll-up covers every complete record in the folder (other shards' included), as the local backend's.
    write_rollup(out_dir, log)
    if failures:
        first_id, first = next(iter(failures.items()))
        raise RuntimeError(f"{len(failures)} of {len(unique)} run(s) failed on Ray ({sorted(failures)}); the finished "
                           f"ones are saved and in the roll-up, and a new sweep resumes the rest. First failure, run "
                           f"{first_id}: {type(first).__name__}: {first}")
    return [records[cfg.run_id()] for cfg in configs]


def _check_count(name: str, value, *, low: float, low_open: bool = False) -> None:
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if low_open else value >= low))
    if not ok:
        raise ValueError(f"`{name}` must be a finite number {'>' if low_open else '>='} {low}; got {value!r}.")
