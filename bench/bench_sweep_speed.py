"""A sweep over 5 gt_weight values against one run of the same generations, measured in one go.

    python bench/bench_sweep_speed.py                 # MNIST-1D cnn1d, 30 epochs, 2 generations, 1 seed, 3 repeats
    python bench/bench_sweep_speed.py --quick         # digits MLP, 1 epoch, in this process: checks that it runs

Each command runs as a user types it, in a fresh process (wall time, imports and data included), the
commands alternating within each repeat so that they see the same load on a shared machine:

1. ``train``: one run of the 2 generations (sd_kd at gt_weight 0.5), with torch's default threads (what a
   user gets) and with one thread (``OMP_NUM_THREADS=1``: the faster of the two for this small CNN);
2. ``sweep`` over gt_weight 0, 0.25, 0.5, 0.75, 1 as it runs now (``--jobs`` default: one process per
   core, one thread each; the teacher trained once and shared);
3. the same sweep as it ran before (``--jobs 1 --threads-per-job <cores> --no-share-generations``: one
   process, one thread per core as torch's default, each run its own teacher; ``--threads-per-job 0``,
   which once meant torch's default, is now refused).

Target: sweep / one run <= 1.7 (against the one-thread run, the stricter of the two). The load average
of the machine is printed before each command: other jobs on the cores slow every command, and torch's
default of one thread per core suffers most (its threads wait for each other whenever one is descheduled).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ("0", "0.25", "0.5", "0.75", "1")


def _run_here(args: list[str]) -> tuple[float, float]:
    """``--quick``: the command in this process (no interpreter start; the thread setting is not applied)."""
    from deepdistill import cli

    load = os.getloadavg()[0]
    start = time.perf_counter()
    if cli.main([*args, "--quiet"]) != 0:
        raise RuntimeError(f"`deepdistill {' '.join(args)}` failed")
    return time.perf_counter() - start, load


def _run(args: list[str], threads: str | None = None) -> tuple[float, float]:
    """``(wall seconds, 1-minute load average before)`` of ``python -m deepdistill ARGS``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepdistill", *args, "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`deepdistill {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
    return wall, load


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the minimum of each is reported")
    p.add_argument("--quick", action="store_true", help="digits MLP, 1 epoch, 1 repeat, in this process: checks that it "
                                                        "runs; its ratios are not measurements")
    args = p.parse_args(argv)
    data = ["--dataset", "mnist1d", "--model", "cnn1d"]
    if args.quick:
        data = ["--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 16, "depth": 1}']
        args.epochs, args.repeats = 1, 1
    common = [*data, "--epochs", str(args.epochs), "--device", "cpu", "--checkpoint-every", "1"]
    commands = {
        "one run, default threads": (lambda d: ["train", *common, "--method", "sd_kd", "--generations", "2",
                                                "--gt-weight", "0.5", "--seed", "0", "--out-dir", d], None),
        "one run, 1 thread": (lambda d: ["train", *common, "--method", "sd_kd", "--generations", "2", "--gt-weight",
                                         "0.5", "--seed", "0", "--out-dir", d], "1"),
        "sweep (now)": (lambda d: ["sweep", *common, "--methods", "sd_kd", "--generations", "2", "--gt-weight",
                                   *WEIGHTS, "--seeds", "0", "--out-dir", d], None),
        "sweep (before)": (lambda d: ["sweep", *common, "--methods", "sd_kd", "--generations", "2", "--gt-weight",
                                      *WEIGHTS, "--seeds", "0", "--jobs", "1", "--threads-per-job", str(os.cpu_count() or 1),
                                      "--no-share-generations", "--out-dir", d], None),
    }
    walls: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    print(f"{os.cpu_count()} cores; {'digits mlp' if args.quick else 'mnist1d cnn1d'}, {args.epochs} epochs, "
          f"2 generations, 1 seed; gt_weight {' '.join(WEIGHTS)}; min of {args.repeats} interleaved repeats")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, (make_args, threads) in commands.items():
                folder = str(Path(tmp) / f"{repeat}-{name.replace(' ', '_').replace(',', '')}")
                if args.quick:       # one process: worker processes would take longer to start than this trains
                    wall, load = _run_here([*make_args(folder), *(["--jobs", "1"] if "sweep" in name else [])])
                else:
                    wall, load = _run(make_args(folder), threads)
                walls[name].append((wall, load))
                print(f"  repeat {repeat}: {name:<26} {wall:7.1f} s   (load average before: {load:.2f})", flush=True)
    best = {name: min(w for w, _ in v) for name, v in walls.items()}
    loads = [load for v in walls.values() for _, load in v]
    print(f"\nload average (1 min) over the measurements: min {min(loads):.2f}, max {max(loads):.2f}")
    for name, wall in best.items():
        print(f"  {name:<26} {wall:7.1f} s")
    floor = min(best["one run, default threads"], best["one run, 1 thread"])
    print(f"\nratio sweep (now) / one run, 1 thread        = {best['sweep (now)'] / best['one run, 1 thread']:.2f}   (target <= 1.7)")
    print(f"ratio sweep (now) / one run, default threads = {best['sweep (now)'] / best['one run, default threads']:.2f}")
    print(f"ratio sweep (now) / the faster one run       = {best['sweep (now)'] / floor:.2f}")
    print(f"ratio sweep (before) / one run, default threads = "
          f"{best['sweep (before)'] / best['one run, default threads']:.2f}   (2.9 in the issue)")
    print(f"speed-up sweep (before) / sweep (now)         = {best['sweep (before)'] / best['sweep (now)']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
