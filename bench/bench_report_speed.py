"""The full report preset's deep networks as they train now, against how they trained before, in one go.

    python bench/bench_report_speed.py                    # the deep figures of the full preset, each variant once
    python bench/bench_report_speed.py --part report      # the whole report (adds the bridge study: ~20 min each)
    python bench/bench_report_speed.py --epochs 10        # a proxy: the same grid at 10 epochs per generation
    python bench/bench_report_speed.py --quick            # one small figure in this process: checks that it runs

``--part deep`` (the default) does what the report does for its deep figures (every run of the preset
in one sweep, :func:`analysis.report.train_deep_runs`, then ``python -m analysis figures deep_generations
deep_diversity ...``): every deep run of the report and its weight estimation, which
is where the report spent its time when it took 691 s on 2 cores (its kernel checks and figures then
took seconds). The report has since gained the kernel-deep bridge study and the kernel extensions,
which this issue's changes do not touch; ``--part report`` times the whole report anyway.

Each variant runs in a fresh folder, in a fresh process (wall time, imports included), one after the
other:

* **before**: the deep runs as they were trained before (one process, torch's default threads, every
  run trains its own first generations, the weight estimation its own teachers);
* **before, 1 thread** (``--variants``): the same with one torch thread, to tell the thread setting's
  share of the gain from the rest;
* **now**: the preset as it is (one process per core, one thread each, shared generations, the weight
  estimation on the same runs).

Target: before / now >= 2.5. ``--epochs`` scales every generation down alike; the fixed costs (the
kernel checks and figures, plotting, start-up) do not shrink with it, so a proxy at fewer epochs
understates the ratio. The 1-minute load average is sampled every 5 s during each variant and its mean
printed: other jobs on the cores slow every variant, torch's default threads most of all.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child process: the report, with the deep preset changed as the variant says.
_CHILD = """
import dataclasses, sys
import analysis.figures.deep as deep
from analysis.__main__ import main
fast, epochs, jobs, share, threads, out, part = sys.argv[1:8]
name = "fast" if fast == "1" else "full"
preset = deep.PRESETS[name]
base = dict(preset.base, **({"epochs": int(epochs)} if epochs != "0" else {}))
changes = dict(base=base, jobs=None if jobs == "auto" else int(jobs), share_generations=share == "1",
               torch_threads=None if threads == "default" else int(threads))
deep.PRESETS[name] = dataclasses.replace(preset, **changes)
command = ["report"] if part == "report" else ["figures", *deep.DEEP_FIGURES]
if part == "deep":             # as the report does: every run of the preset in one sweep, then the figures
    from analysis.report import train_deep_runs
    train_deep_runs(out, fast == "1")
sys.exit(main(command + ["--out", out] + (["--fast"] if fast == "1" else [])))
"""

VARIANTS = {
    "before": dict(jobs="1", share="0", threads="default"),
    "before, 1 thread": dict(jobs="1", share="0", threads="1"),
    "now": dict(jobs="auto", share="1", threads="1"),
}


def _sample_load(stop: threading.Event, samples: list) -> None:
    while not stop.wait(5.0):
        samples.append(os.getloadavg()[0])


def run_variant(name: str, out: Path, fast: bool, epochs: int, part: str = "deep") -> tuple[float, float]:
    """``(wall seconds, mean 1-minute load average during the run)`` of ``part`` in a fresh process."""
    v = VARIANTS[name]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_NUM_THREADS", None)
    samples = [os.getloadavg()[0]]
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_load, args=(stop, samples), daemon=True)
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, "1" if fast else "0", str(epochs), v["jobs"], v["share"],
                           v["threads"], str(out), part], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    stop.set()
    if done.returncode != 0:
        raise RuntimeError(f"the report ({name}) failed:\n{done.stderr[-3000:]}")
    return wall, sum(samples) / len(samples)


def run_quick(name: str, out: Path) -> tuple[float, float]:
    """``--quick``: one deep figure of the fast preset at 1 epoch, 1 seed, in this process (seconds, not a measurement)."""
    import dataclasses

    import analysis.figures.deep as deep
    from analysis.__main__ import main as analysis_main

    v, saved = VARIANTS[name], deep.PRESETS["fast"]
    deep.PRESETS["fast"] = dataclasses.replace(saved, base=dict(saved.base, epochs=1), seeds=(0,), methods=("ce", "sd_kd"),
                                               generations=2, jobs=1, share_generations=v["share"] == "1",
                                               torch_threads=None if v["threads"] == "default" else int(v["threads"]))
    try:
        start = time.perf_counter()
        if analysis_main(["figures", "deep_generations", "--fast", "--out", str(out)]) != 0:
            raise RuntimeError(f"the figure ({name}) failed")
        return time.perf_counter() - start, os.getloadavg()[0]
    finally:
        deep.PRESETS["fast"] = saved


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=0, help="epochs per generation (0: the preset's, 60)")
    p.add_argument("--part", default="deep", choices=("deep", "report"),
                   help="deep: every deep figure of the full preset; report: the whole report")
    p.add_argument("--variants", nargs="+", default=["before", "now"], choices=list(VARIANTS))
    p.add_argument("--quick", action="store_true", help="one deep figure of the fast preset at 1 epoch, in this process: "
                                                        "checks that it runs; its ratio is not a measurement")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    walls = {}
    print(f"{os.cpu_count()} cores; {'one figure' if args.quick else args.part} of the {'fast' if args.quick else 'full'} preset, "
          f"{args.epochs or 'its own'} epochs per generation", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            folder = Path(tmp) / name.replace(" ", "_").replace(",", "")
            walls[name], load = (run_quick(name, folder) if args.quick else
                                 run_variant(name, folder, False, args.epochs, args.part))
            print(f"  {name:<18} {walls[name]:8.1f} s   (mean load average during it: {load:.2f})", flush=True)
    if "before" in walls and "now" in walls:
        print(f"\nspeed-up before / now = {walls['before'] / walls['now']:.2f}   (target >= 2.5)")
    if "before, 1 thread" in walls and "now" in walls:
        print(f"speed-up before, 1 thread / now = {walls['before, 1 thread'] / walls['now']:.2f}   (without the "
              "thread setting's share)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
