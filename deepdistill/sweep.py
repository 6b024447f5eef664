"""Sweeps: a grid of runs, expanded by a pure function, run resumably on a backend.

* :func:`expand_grid` (pure): base config x methods x gt_weights x generations x seeds [x datasets]
  -> a list of validated :class:`TrainConfig`\\ s, in a stable order, without duplicates (a method
  that does not read ``gt_weight``, e.g. ``"ce"``, gets one run per seed, not one per weight).
* :func:`select_shard` (``--shard i/N``): every N-th run, starting at i.
* :func:`run_sweep`: every run, then the roll-up ``out_dir/rollup.csv``, on one of :data:`BACKENDS`:
  ``"local"`` runs them one after the other in this process (:func:`deepdistill.train.run_one` each);
  ``"ray"`` runs each generation as a Ray task, on this machine or a cluster
  (:mod:`deepdistill.ray_backend`, the optional ``cluster`` extra), in the same folders and with the
  same records.

Each run lives in ``out_dir/runs/<run_id>/`` (:mod:`deepdistill.runs`): the id is a hash of its config
(operational fields such as ``device`` and ``out_dir`` excluded), so the same run has the same folder
on every machine and every restart, and a run with a complete record is never trained again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from deepdistill.config import METHODS, TrainConfig, ensure_config
from deepdistill.results import collect_records, write_rollup_csv
from deepdistill.runs import RUNS_FOLDER
from deepdistill.train import run_one

__all__ = ["expand_grid", "select_shard", "parse_shard", "run_sweep", "run_sweep_local", "BACKENDS"]


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
                        cfg = dict(base, dataset=dataset, method=method, generations=n_gen, seed=seed,
                                   gt_weight=gt_weight if spec.uses_gt_weight else None)
                        if not spec.uses_temperature:
                            cfg["temperature"] = None
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
                    progress: bool | None = None) -> list[dict]:
    """The local backend: every run one after the other in this process, then the roll-up."""
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(configs, desc="sweep", unit="run", disable=None if progress is None else not progress)
    records = [run_one(config, out_dir, log=log, progress=progress) for config in bar]
    write_rollup_csv(collect_records(out_dir / RUNS_FOLDER), out_dir / "rollup.csv")
    return records


def _run_sweep_ray(configs: list[TrainConfig], out_dir, **options) -> list[dict]:
    # Imported on use: Ray is an optional extra; without it this fails at once, naming the install command.
    from deepdistill.ray_backend import run_sweep_ray

    return run_sweep_ray(configs, out_dir, **options)


#: Where the runs of a sweep execute: backend name -> ``fn(configs, out_dir, *, log, progress, **options)``.
BACKENDS: dict[str, Callable[..., list[dict]]] = {"local": run_sweep_local, "ray": _run_sweep_ray}


def run_sweep(configs: list, out_dir, backend: str = "local", *, log: Callable[[str], None] | None = None,
              progress: bool | None = None, **backend_options) -> list[dict]:
    """Run every config (skipping finished ones), then write ``out_dir/rollup.csv``; return the records.

    ``configs``: :class:`TrainConfig`\\ s (as :func:`expand_grid` makes them; a dict is validated into
    one here). The roll-up covers every complete record under ``out_dir`` (other shards' included).
    ``backend_options`` go to :func:`deepdistill.ray_backend.run_sweep_ray` (``address``,
    ``num_cpus_per_task``, ``num_gpus_per_task``, ``max_retries``, ...); the local backend takes none.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {list(BACKENDS)}.")
    if backend == "local" and backend_options:
        raise ValueError(f"options {sorted(backend_options)} are for the ray backend; got backend {backend!r}.")
    configs = [ensure_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
    return BACKENDS[backend](configs, out_dir, log=log, progress=progress, **backend_options)
