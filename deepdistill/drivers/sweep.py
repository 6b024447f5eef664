"""Sweeps: a grid of runs, expanded by a pure function, run resumably on a backend.

* :func:`expand_grid` (pure): base config x methods x gt_weights x generations x seeds [x datasets]
  -> a list of validated :class:`TrainConfig`\\ s, in a stable order, without duplicates (a method
  that does not read ``gt_weight``, e.g. ``"ce"``, gets one run per seed, not one per weight).
* :func:`select_shard` (``--shard i/N``): every N-th run, starting at i.
* :func:`run_sweep`: every run, then the roll-up ``out_dir/rollup.csv``, on one of :data:`BACKENDS`:
  ``"local"`` trains on ``jobs`` processes of this machine (:mod:`deepdistill.drivers.local_runner`; ``jobs=1``:
  in this process); ``"ray"`` runs each generation as a Ray task, on this machine or a cluster
  (:mod:`deepdistill.drivers.ray_backend`, the optional ``cluster`` extra), in the same folders and with the
  same records.

Each run lives in ``out_dir/runs/<run_id>/`` (:mod:`deepdistill.engine.runs`): the id is a hash of its config
(operational fields such as ``device`` and ``out_dir`` excluded), so the same run has the same folder
on every machine and every restart, and a run with a complete record is never trained again. Runs
that share their first generations (a teacher, with students at several weights) train them once, in
``out_dir/generations/`` (``share_generations``), and each generation is trained under a claim
(:mod:`deepdistill.engine.claims`), so that sweeps, shards and Ray tasks on one folder never train it twice.
"""
from __future__ import annotations

from typing import Callable, Iterable

from deepdistill.engine.claims import DEFAULT_STALE_AFTER, check_stale_after
from deepdistill.core.config import METHODS, TrainConfig, ensure_config
from deepdistill.core.io import ensure_writable_dir
from deepdistill.drivers.local_runner import resolve_jobs, run_local
from deepdistill.engine.results import write_rollup
from deepdistill.engine.runs import generation_cache_dir, run_dir_for

__all__ = ["expand_grid", "select_shard", "parse_shard", "run_sweep", "run_sweep_local", "BACKENDS", "BACKEND_OPTIONS"]


def expand_grid(base: dict | None = None, *, methods: Iterable[str] | None = None, gt_weights: Iterable | None = None,
                generations: Iterable[int] | None = None, seeds: Iterable[int] = (0,),
                datasets: Iterable[str] | None = None) -> list[TrainConfig]:
    """The runs of a grid as validated configs (pure: same arguments, same list, same order).

    ``base`` holds the fixed settings (any :class:`TrainConfig` field); each grid axis that is
    ``None`` keeps the base's value. Order: dataset, method, gt_weight, generations, seed (the seed
    varies fastest, so a shard holds whole groups late in a sweep rather than early).
    """
    base = dict(base or {})
    axes = {
        "dataset": list(datasets) if datasets is not None else [base.get("dataset", TrainConfig.dataset)],
        "method": list(methods) if methods is not None else [base.get("method", TrainConfig.method)],
        "gt_weight": list(gt_weights) if gt_weights is not None else [base.get("gt_weight")],
        "generations": list(generations) if generations is not None else [base.get("generations", TrainConfig.generations)],
        "seed": list(seeds),
    }
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"grid axis `{name}` is empty; give at least one value.")
    out, seen = [], set()
    for dataset in axes["dataset"]:
        for method in axes["method"]:
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}; valid methods: {sorted(METHODS)}.")
            spec = METHODS[method]
            for gt_weight in axes["gt_weight"]:
                for n_gen in axes["generations"]:
                    for seed in axes["seed"]:
                        # Knobs the method does not read are unset (MethodSpec.reads decides which).
                        cfg = spec.drop_unread(dict(base, dataset=dataset, method=method, generations=n_gen, seed=seed,
                                                    gt_weight=gt_weight))
                        config = TrainConfig.from_dict(cfg)     # validates once, fills method defaults
                        rid = config.run_id()
                        if rid not in seen:
                            seen.add(rid)
                            out.append(config)
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    try:
        i, n = (int(p) for p in str(text).split("/"))
    except ValueError:
        raise ValueError(f"`shard` must look like i/N (e.g. 0/4); got {text!r}.") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"`shard` i/N needs N >= 1 and 0 <= i < N; got {text!r}.")
    return i, n


def select_shard(configs: list, index: int, count: int) -> list:
    """Runs ``index, index + count, index + 2 count, ...`` of ``configs``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index/count need count >= 1 and 0 <= index < count; got {index}/{count}.")
    return list(configs[index::count])


def run_sweep_local(configs: list[TrainConfig], out_dir, *, log: Callable[[str], None] | None = None,
                    progress: bool | None = None, jobs: int | None = 1, threads_per_job: int | None = 1,
                    claim_timeout: float = DEFAULT_STALE_AFTER, share_generations: bool = True) -> list[dict]:
    """The local backend: every run on ``jobs`` processes of this machine (``None``: :func:`default_jobs`), then the roll-up."""
    out_dir = ensure_writable_dir(out_dir, "out_dir")
    jobs, threads_per_job = resolve_jobs(jobs, threads_per_job, configs[0].device if configs else "cpu")
    check_stale_after(claim_timeout, "claim_timeout")
    items = [(c, run_dir_for(c, out_dir)) for c in configs]
    cache_dir = generation_cache_dir(out_dir) if share_generations else None
    try:
        records = run_local(items, cache_dir, jobs=jobs, threads_per_job=threads_per_job, claim_timeout=claim_timeout,
                            log=log, progress=progress)
    except KeyboardInterrupt:
        raise                            # the rerun writes the roll-up
    except BaseException:
        write_rollup(out_dir, log)       # failed runs: every finished run is in it
        raise
    write_rollup(out_dir, log)
    return records


def _run_sweep_ray(configs: list[TrainConfig], out_dir, **options) -> list[dict]:
    # Imported on use: Ray is an optional extra; without it this fails at once, naming the install command.
    from deepdistill.drivers.ray_backend import run_sweep_ray

    return run_sweep_ray(configs, out_dir, **options)


#: Where the runs of a sweep execute: backend name -> ``fn(configs, out_dir, *, log, progress, **options)``.
BACKENDS: dict[str, Callable[..., list[dict]]] = {"local": run_sweep_local, "ray": _run_sweep_ray}
#: The options each backend takes (besides log and progress).
BACKEND_OPTIONS = {
    "local": ("jobs", "threads_per_job", "claim_timeout", "share_generations"),
    "ray": ("address", "num_cpus_per_task", "num_gpus_per_task", "max_retries", "num_cpus", "runtime_env",
            "claim_timeout", "share_generations"),
}


def run_sweep(configs: list, out_dir, backend: str = "local", *, log: Callable[[str], None] | None = None,
              progress: bool | None = None, **backend_options) -> list[dict]:
    """Run every config (skipping finished ones), then write ``out_dir/rollup.csv``; return the records.

    ``configs``: :class:`TrainConfig`\\ s (as :func:`expand_grid` makes them; a dict is validated into
    one here). The roll-up covers every complete record under ``out_dir`` (other shards' included).
    ``backend_options``: for the local backend ``jobs`` (worker processes, default 1; ``None``: one per
    core, see :func:`deepdistill.drivers.local_runner.default_jobs`), ``threads_per_job`` (torch threads of each,
    default 1), ``claim_timeout`` (seconds without a heartbeat before another process's claim is stale,
    default 300) and ``share_generations`` (default True: runs that share their first generations train
    them once); for the ray backend those of :func:`deepdistill.drivers.ray_backend.run_sweep_ray`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {list(BACKENDS)}.")
    wrong = sorted(set(backend_options) - set(BACKEND_OPTIONS[backend]))
    if wrong:
        raise ValueError(f"option(s) {wrong} do not apply to the {backend} backend; its options: "
                         f"{list(BACKEND_OPTIONS[backend])}.")
    configs = [ensure_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
    return BACKENDS[backend](configs, out_dir, log=log, progress=progress, **backend_options)
