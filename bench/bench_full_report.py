"""The full report preset (``python -m analysis report``) before and after, the parts that existed before.

    python bench/bench_full_report.py --base 1f1db7d        # before: that commit's report; after: this tree's
    python bench/bench_full_report.py --base 1f1db7d --fast # the same with --fast (minutes; a check)
    python bench/bench_full_report.py --quick               # this tree only: `analysis list` (checks that it runs)

The report has grown since the base (the claims' figures, the weight map: hours of the full preset on a few
cores). To time what the base's report did, this tree's report runs with ``--skip`` every figure the base
did not have (found by listing each tree's figure registry), so that both draw the same figures; the added
studies are timed on their own (their benchmarks, and the map's cells report their wall time). Each report
runs in a fresh process and output folder, with a fresh data cache (``DEEPDISTILL_CACHE``): each pays
for generating its data sets, as a fresh machine does. Wall and CPU seconds (``RUSAGE_CHILDREN``: the
report and every process it starts) and the mean 1-minute load average during each are printed.

Target (issue 19): the parts that exist today take <= 0.5x of before.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import ROOT, trees  # noqa: E402  (bench/ is not a package)

_LIST = "import json; from analysis.figures import FIGURES; print(json.dumps(sorted(FIGURES)))"


def _env(tree: Path, cache: Path) -> dict:
    env = {**os.environ, "DEEPDISTILL_CACHE": str(cache), "PYTHONPATH": str(tree)}
    env.pop("OMP_NUM_THREADS", None)
    return env


def figure_names(tree: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _LIST], cwd=tree, env=_env(tree, Path(tempfile.gettempdir())),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_report(tree: Path, out: Path, cache: Path, args: list[str]) -> tuple[float, float, float]:
    """``(wall s, CPU s, mean load average)`` of ``python -m analysis report --out OUT ARGS`` in ``tree``."""
    samples, stop = [os.getloadavg()[0]], threading.Event()

    def sample():
        while not stop.wait(5.0):
            samples.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    cpu, start = _cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "analysis", "report", "--out", str(out), *args], cwd=tree,
                          env=_env(tree, cache), capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    stop.set()
    if done.returncode != 0:
        raise RuntimeError(f"the report in {tree} failed:\n{done.stderr[-3000:]}")
    return wall, cpu, sum(samples) / len(samples)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=None, help="commit of 'before' (default: none, this tree only)")
    ap.add_argument("--fast", action="store_true", help="the --fast preset (a check of this benchmark, minutes)")
    ap.add_argument("--quick", action="store_true", help="this tree only: `python -m analysis list` (checks that it runs)")
    args = ap.parse_args(argv)
    if args.quick:
        names = figure_names(ROOT)
        done = subprocess.run([sys.executable, "-m", "analysis", "list"], cwd=ROOT, env=_env(ROOT, Path(tempfile.gettempdir())),
                              capture_output=True, text=True, check=True)
        print(f"{len(names)} figures; `analysis list` printed {len(done.stdout.splitlines())} lines")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_full_report_"))
    try:
        with trees(args.base, tmp) as found:
            now = figure_names(ROOT)
            added = sorted(set(now) - set(figure_names(found["before"]))) if "before" in found else []
            print(f"{os.cpu_count()} CPUs; `python -m analysis report{' --fast' if args.fast else ''}`; "
                  f"skipped after (not in the base): {' '.join(added) or 'none'}", flush=True)
            result = {}
            for name, tree in found.items():
                extra = (["--fast"] if args.fast else []) + (["--skip", *added] if name == "after" and added else [])
                result[name] = run_report(tree, tmp / f"out_{name}", tmp / f"cache_{name}", extra)
                wall, cpu, load = result[name]
                print(f"{name:>6}: {wall:7.1f} s wall, {cpu:7.1f} s CPU ({cpu / wall:.2f} cores busy on average; "
                      f"mean load average {load:.2f})", flush=True)
        if "before" in result:
            ratio = result["after"][0] / result["before"][0]
            print(f"after / before = {ratio:.2f}x wall (target <= 0.5: {'PASS' if ratio <= 0.5 else 'FAIL'}), "
                  f"{result['after'][1] / result['before'][1]:.2f}x CPU")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
