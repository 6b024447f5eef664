"""Wall time of one small sweep on the local backend and on Ray, on this machine; Ray's cost per task.

    python bench/bench_sweep_backends.py [--seeds 3] [--epochs 3]
    python bench/bench_sweep_backends.py --quick          # 1 seed, 1 epoch, 1 repeat: checks that it runs

The grid (sd_kd x 2 gt_weights x N seeds, 2 generations, an MLP on scikit-learn's digits, CPU) runs,
the backends alternating within each repeat so that they see the same load on a shared machine:

1. on the local backend, torch with its default threads (what a user gets) and with one thread;
2. on Ray (a local instance with 2 CPUs, one task per generation, 1 CPU and so one torch thread per
   task), one run at a time (the same serial work as the one-thread local run: the difference is
   Ray's and our per-task cost), and the whole grid at once (two tasks side by side).

Every figure is measured in this one run and printed with the ratios; nothing is compared with a
stored number. Ray's start-up (``ray.init``) and the first start of its workers (python + torch
imports) are timed apart: they are paid once per sweep and once per worker, not per task.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, REPO)   # run from a checkout without installing (the workers get it through PYTHONPATH)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _local_sweep(configs, out_dir, threads: int | None) -> None:
    import torch

    from deepdistill.drivers.sweep import run_sweep

    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        # threads_per_job=None: the thread count set here (run_sweep would set its own, 1, otherwise).
        run_sweep(configs, out_dir, progress=False, threads_per_job=None)
    finally:
        torch.set_num_threads(saved)


def _ray_serial_sweep(configs, out_dir) -> None:
    # One run at a time: the same serial work as the local backend on one thread (Ray's tasks run
    # torch on one thread: OMP_NUM_THREADS = the task's 1 CPU), so the difference is the per-task cost.
    from deepdistill.drivers.ray_backend import run_sweep_ray

    for cfg in configs:
        run_sweep_ray([cfg], out_dir, num_cpus_per_task=1, progress=False)


def _warm_worker():
    # What each new worker pays once: the imports of a generation task (ray_backend imports train).
    import deepdistill.drivers.ray_backend  # noqa: F401

    return os.getpid()


def _noop(*after):
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per grid point (runs = 2 x seeds)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per generation")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per backend; the shortest is reported")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 1 epoch, 1 repeat: checks that it runs (Ray's start-up, a few seconds, "
                             "dominates); its ratios are not measurements")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.repeats = 1, 1, 1

    import torch

    from deepdistill.drivers.sweep import expand_grid

    base = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 64, "depth": 1}, n_train=1000,
                epochs=args.epochs, batch_size=32, lr=1e-2, device="cpu")
    configs = expand_grid(base, methods=["sd_kd"], gt_weights=[0.3, 0.7], generations=[2], seeds=range(args.seeds))
    n_tasks = sum(c.generations for c in configs)
    default_threads = torch.get_num_threads()

    import ray

    from deepdistill.drivers.ray_backend import run_sweep_ray

    pythonpath = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="error",
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    init_s = time.perf_counter() - t0
    times = {"local_default": [], "local_one": [], "ray_serial": [], "ray_parallel": []}
    try:
        warm = ray.remote(num_cpus=1)(_warm_worker)
        warm_s = _timed(lambda: ray.get([warm.remote() for _ in range(2)]))
        with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
            tmp = Path(tmp)
            _local_sweep(configs[:1], tmp / "warmup", None)          # imports and data set cache, not timed
            # The backends alternate within each repeat, so that they see the same load on a shared
            # machine; the shortest time of each is kept (other work only ever adds time).
            for i in range(args.repeats):
                times["local_default"].append(_timed(lambda: _local_sweep(configs, tmp / f"ld{i}", None)))
                times["local_one"].append(_timed(lambda: _local_sweep(configs, tmp / f"l1{i}", 1)))
                times["ray_serial"].append(_timed(lambda: _ray_serial_sweep(configs, tmp / f"rs{i}")))
                times["ray_parallel"].append(_timed(lambda: run_sweep_ray(configs, tmp / f"rp{i}", num_cpus_per_task=1,
                                                                           progress=False)))
        # Ray's own cost of a task that waits for the one before (a generation chain), without any work.
        noop = ray.remote(num_cpus=1)(_noop)
        ray.get(noop.remote())
        chain_length, ref = 200, None
        t0 = time.perf_counter()
        for _ in range(chain_length):
            ref = noop.remote(*([ref] if ref is not None else []))
        ray.get(ref)
        noop_s = (time.perf_counter() - t0) / chain_length
    finally:
        shutdown_s = _timed(ray.shutdown)
    best = {k: min(v) for k, v in times.items()}
    local_default, local_one = best["local_default"], best["local_one"]

    per_task = (best["ray_serial"] - local_one) / n_tasks
    print(f"grid: {len(configs)} runs x 2 generations = {n_tasks} tasks ({args.epochs} epochs each, digits MLP, CPU); "
          f"{os.cpu_count()} cores; shortest of {args.repeats} repeats, backends alternating")
    print(f"{'backend':<40} {'wall s':>8}")
    print(f"{'local, torch ' + str(default_threads) + ' thread(s)':<40} {local_default:>8.2f}")
    print(f"{'local, torch 1 thread':<40} {local_one:>8.2f}")
    print(f"{'ray, one run at a time (1 thread each)':<40} {best['ray_serial']:>8.2f}")
    print(f"{'ray, 2 tasks at a time (1 thread each)':<40} {best['ray_parallel']:>8.2f}")
    print()
    print(f"ratio local ({default_threads} threads) / ray (2 tasks at a time):  {local_default / best['ray_parallel']:.2f}")
    print(f"ratio local (1 thread) / ray (2 tasks at a time):   {local_one / best['ray_parallel']:.2f}")
    total = init_s + warm_s + best["ray_parallel"] + shutdown_s
    print(f"ratio local ({default_threads} threads) / ray with start and stop: {local_default / total:.2f}")
    print(f"overhead per task (ray one at a time - local 1 thread) / {n_tasks} tasks: {per_task * 1e3:.0f} ms "
          "(scheduling, a fresh data load and the earlier generations' files per task)")
    print(f"ray's own cost per chained no-op task: {noop_s * 1e3:.1f} ms")
    print(f"once per sweep: ray.init {init_s:.1f} s, shutdown {shutdown_s:.1f} s; once per worker: start and imports "
          f"{warm_s:.1f} s (2 workers side by side)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
