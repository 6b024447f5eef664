"""The README's first command after the install, ``python -m analysis report --fast``: wall time before and after.

    python bench/bench_fast_report.py --base 97c079c      # before: that commit (a temporary worktree); after: this tree
    python bench/bench_fast_report.py --quick             # this tree only, `analysis list` (checks that it runs)

Each variant runs in a fresh process and a fresh output folder, one after the other, with one data cache
(``DEEPDISTILL_CACHE``) for all, warmed by an untimed run of this tree first, so that neither side pays for
generating the data sets (a fresh machine pays that once: about 1.5 s for MNIST-1D). Wall time includes
the interpreter's start and every import. The 1-minute load average before each run is printed: other
jobs on the cores slow every variant.

Target (issue 19): the fast report <= 60 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import ROOT, trees  # noqa: E402  (bench/ is not a package)


def _run(tree: Path, out: Path, cache: Path, args: list[str]) -> float:
    env = {**os.environ, "DEEPDISTILL_CACHE": str(cache)}
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "analysis", *args, *(["--out", str(out)] if args[0] == "report" else [])],
                          cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`python -m analysis {' '.join(args)}` in {tree} failed:\n{done.stderr[-3000:]}")
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=None, help="commit of 'before' (default: none, this tree only)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="`python -m analysis list` in this tree (checks that it runs)")
    args = ap.parse_args(argv)
    command = ["list"] if args.quick else ["report", "--fast"]
    tmp = Path(tempfile.mkdtemp(prefix="bench_fast_report_"))
    try:
        with trees(None if args.quick else args.base, tmp) as found:
            print(f"{os.cpu_count()} CPUs; `python -m analysis {' '.join(command)}`", flush=True)
            if not args.quick:
                _run(ROOT, tmp / "warm", tmp / "cache", command)            # fills the data cache; not timed
                shutil.rmtree(tmp / "warm", ignore_errors=True)
            walls = {name: [] for name in found}
            for _ in range(args.repeats):
                for name, tree in found.items():
                    load = os.getloadavg()[0]
                    out = tmp / f"out_{name}"
                    walls[name].append(_run(tree, out, tmp / "cache", command))
                    shutil.rmtree(out, ignore_errors=True)
                    print(f"{name:>6}: {walls[name][-1]:6.1f} s wall (load average before it {load:.1f})", flush=True)
        best = {name: min(w) for name, w in walls.items()}
        if "before" in best:
            print(f"before / after = {best['before'] / best['after']:.2f}x")
        if not args.quick:
            print(f"after: {best['after']:.1f} s (target <= 60 s on 2 cores: {'PASS' if best['after'] <= 60 else 'FAIL'})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
