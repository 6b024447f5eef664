"""Sweeps: a grid of runs, expanded by a pure function, run locally and resumably.

* :func:`expand_grid` (pure): base config x methods x gt_weights x generations x seeds [x datasets]
  -> a list of validated config dicts, in a stable order, without duplicates (a method that does not
  read ``gt_weight``, e.g. ``"ce"``, gets one run per seed, not one per weight).
* :func:`run_id` names a run by the hash of its config (operational fields such as ``device`` and
  ``out_dir`` excluded), so the same run has the same folder on every machine and every restart.
* :func:`select_shard` (``--shard i/N``): every N-th run, starting at i.
* :func:`run_one` (importable, no global state): one run in ``out_dir/runs/<run_id>/``; a run whose
  complete record exists is returned without training, an interrupted one resumes.
* :func:`run_sweep`: every run, then the roll-up ``out_dir/rollup.csv``. ``backend="local"`` runs them
  one after the other in this process; ``backend="ray"`` runs each generation as a Ray task, on this
  machine or a cluster (:mod:`deepdistill.ray_backend`, the optional ``cluster`` extra), in the same
  folders and with the same records.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from deepdistill.config import METHODS, TrainConfig
from deepdistill.results import collect_records, read_record, write_rollup_csv

__all__ = ["expand_grid", "run_id", "run_dir_for", "select_shard", "parse_shard", "run_one", "run_sweep", "BACKENDS"]

BACKENDS = ("local", "ray")


def expand_grid(base: dict | None = None, *, methods: Iterable[str] | None = None, gt_weights: Iterable | None = None,
                generations: Iterable[int] | None = None, seeds: Iterable[int] = (0,),
                datasets: Iterable[str] | None = None) -> list[dict]:
    """The runs of a grid as full config dicts (pure: same arguments, same list, same order).

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
                        cfg = TrainConfig.from_dict(cfg).to_dict()   # validates, fills method defaults
                        rid = run_id(cfg)
                        if rid not in seen:
                            seen.add(rid)
                            out.append(cfg)
    return out


def run_id(config: dict | TrainConfig) -> str:
    """The stable id of a run: a hash of its config without operational fields (see TrainConfig.run_id)."""
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    return cfg.run_id()


def run_dir_for(config: dict | TrainConfig, out_dir) -> Path:
    return Path(out_dir) / "runs" / run_id(config)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    try:
        i, n = (int(p) for p in str(text).split("/"))
    except ValueError:
        raise ValueError(f"`shard` must look like i/N (e.g. 0/4); got {text!r}.") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"`shard` i/N needs N >= 1 and 0 <= i < N; got {text!r}.")
    return i, n


def select_shard(configs: list[dict], index: int, count: int) -> list[dict]:
    """Runs ``index, index + count, index + 2 count, ...`` of ``configs``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index/count need count >= 1 and 0 <= index < count; got {index}/{count}.")
    return list(configs[index::count])


def run_one(config_dict: dict, out_dir, *, log: Callable[[str], None] | None = None, progress: bool | None = None) -> dict:
    """Train (or resume, or just load) one run in ``out_dir/runs/<run_id>/`` and return its record.

    A pure function of its arguments and the files in that folder: no module state, so a remote
    worker can call it with a config dict and a shared folder.
    """
    from deepdistill.train import train_run

    run_dir = run_dir_for(config_dict, out_dir)
    record = read_record(run_dir / "record.json")
    if record is not None and record["run_id"] == run_id(config_dict):
        return record
    config = TrainConfig.from_dict(dict(config_dict, out_dir=str(run_dir)))
    return train_run(config, run_dir, log=log, progress=progress)


def run_sweep(configs: list[dict], out_dir, backend: str = "local", *, log: Callable[[str], None] | None = None,
              progress: bool | None = None, **backend_options) -> list[dict]:
    """Run every config (skipping finished ones), then write ``out_dir/rollup.csv``; return the records.

    The roll-up covers every complete record under ``out_dir`` (other shards' included).
    ``backend_options`` go to :func:`deepdistill.ray_backend.run_sweep_ray` (``address``,
    ``num_cpus_per_task``, ``num_gpus_per_task``, ``max_retries``, ...); the local backend takes none.
    """
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {list(BACKENDS)}.")
    if backend == "ray":
        # Imported on use: Ray is an optional extra; without it this fails at once, naming the install command.
        from deepdistill.ray_backend import run_sweep_ray

        return run_sweep_ray(configs, out_dir, log=log, progress=progress, **backend_options)
    if backend_options:
        raise ValueError(f"options {sorted(backend_options)} are for the ray backend; got backend {backend!r}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(configs, desc="sweep", unit="run", disable=None if progress is None else not progress)
    for cfg in bar:
        finished = read_record(run_dir_for(cfg, out_dir) / "record.json") is not None
        record = run_one(cfg, out_dir, log=log, progress=progress)
        records.append(record)
        if log:
            last = record["generations"][-1]
            log(f"{'skipped (finished)' if finished else 'finished'} {record['run_id']}: {cfg['method']} "
                f"gt_weight {cfg['gt_weight']} seed {cfg['seed']}: test accuracy by generation "
                + " ".join(f"{g['test']['accuracy']:.3f}" for g in record["generations"])
                + f" (last {last['test']['accuracy']:.3f})")
    write_rollup_csv(collect_records(out_dir / "runs"), out_dir / "rollup.csv")
    return records
