"""CPU of two identical sweeps started at once into one folder, against one sweep alone: before and after.

    python bench/bench_concurrent_sweeps.py                       # base: git merge-base HEAD main
    python bench/bench_concurrent_sweeps.py --jobs 1 --base 1f1db7d

For each tree (before: a temporary worktree of the base commit; after: this working tree), in a fresh
folder each time:

1. one sweep alone;
2. two identical sweeps started at once into one folder.

CPU is ``resource.getrusage(RUSAGE_CHILDREN)`` (user + system) taken around each step: the sweep processes
and their worker processes (reaped by the sweeps), all of it. Also counted: the epoch lines in the logs
(each generation trained once: the two together should print as many as the one alone, up to the epochs
an interrupted claim repeats). Each tree gets its own data cache folder (``DEEPDISTILL_CACHE``), warmed by a
first sweep that is not timed, so that neither side pays for generating the data in the timed steps
(before the cache existed, every process generated it: that cost is measured as it was).

Target (issue 19): two concurrent sweeps <= 1.25x the CPU of one.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import merge_base, trees  # noqa: E402  (bench/ is not a package)
GRID = ["sweep", "--methods", "sd_kd", "--gt-weight", "0.25", "0.75", "--generations", "2", "--seeds", "0", "1",
        "--dataset", "mnist1d", "--device", "cpu", "--claim-timeout", "60"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _start(tree: Path, out: Path, cache: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DEEPDISTILL_CACHE": str(cache)}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen([sys.executable, "-m", "deepdistill", *GRID, *extra, "--out-dir", str(out)], cwd=tree,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _measure(tree: Path, out: Path, cache: Path, extra: list[str], copies: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, epoch lines) of ``copies`` identical sweeps started at once."""
    shutil.rmtree(out, ignore_errors=True)
    cpu0, t0 = _cpu(), time.perf_counter()
    procs = [_start(tree, out, cache, extra) for _ in range(copies)]
    try:
        logs = [p.communicate()[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    for p, log in zip(procs, logs):
        if p.returncode != 0:
            raise RuntimeError(f"sweep in {tree} failed:\n{log[-3000:]}")
    epochs = sum(line.count(" epoch ") for log in logs for line in log.splitlines() if ": train loss" in line)
    shutil.rmtree(out, ignore_errors=True)
    return cpu, wall, epochs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=None, help="commit of 'before' (default: git merge-base HEAD main)")
    ap.add_argument("--jobs", default=None, help="--jobs of the sweeps (default: the sweep's own default)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--n-train", default="1000", help="training pool of MNIST-1D (none: all 4000)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--after-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="this tree only, 1 epoch on 300 examples (checks that it runs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.after_only, args.epochs, args.n_train, args.repeats = True, 1, "300", 1
    extra = ["--epochs", str(args.epochs), "--n-train", args.n_train] + ([] if args.jobs is None else ["--jobs", args.jobs])
    tmp = Path(tempfile.mkdtemp(prefix="bench_concurrent_"))
    try:
        with trees(None if args.after_only else (args.base or merge_base()), tmp) as found:
            print(f"grid: {' '.join(GRID + extra)}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            for name, tree in found.items():
                _measure(tree, tmp / "out", tmp / f"cache_{name}", extra, 1)        # warms the data cache
            rows = {name: [] for name in found}
            for _ in range(args.repeats):
                for name, tree in found.items():
                    one = _measure(tree, tmp / "out", tmp / f"cache_{name}", extra, 1)
                    two = _measure(tree, tmp / "out", tmp / f"cache_{name}", extra, 2)
                    rows[name].append((one, two))
                    print(f"{name:>6}: one sweep {one[0]:6.1f} s CPU ({one[1]:5.1f} s wall, {one[2]} epoch lines); "
                          f"two at once {two[0]:6.1f} s CPU ({two[1]:5.1f} s wall, {two[2]} epoch lines): "
                          f"{two[0] / one[0]:.2f}x the CPU", flush=True)
        for name, r in rows.items():
            ratio = sum(t[0] for _, t in r) / sum(o[0] for o, _ in r)
            print(f"{name}: two concurrent sweeps / one = {ratio:.2f}x CPU"
                  + (f" (target <= 1.25: {'PASS' if ratio <= 1.25 else 'FAIL'})" if name == "after" else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
