"""The bridge study serial (``jobs=1``) against parallel (``jobs=2``), measured in one run, with equal results.

    python bench/bench_bridge_speed.py                      # the "reduced" preset below (a few minutes)
    python bench/bench_bridge_speed.py --preset fast
    python bench/bench_bridge_speed.py --preset full --jobs 2   # the README study: about 2 x 9 min on 2 cores

Each run starts from an empty folder (nothing read back), serial first, then parallel; wall time and the CPU
time of this process and its children. The results are compared with their timings left out: equal JSON
text means every number has the same bits. Target (issue 19): the full preset >= 1.8x faster on 2 cores.

The "reduced" preset is the full one cut down so that it runs in minutes on a shared machine: widths 64..1024,
2 seeds, the standard parameterisation at 64 and 256, Adam at width 256 for 300 steps and 2 seeds, the toy at
width 1024, MNIST-1D with 1000 examples, 5 epochs, 3 weights, 2 seeds. It is not the full preset; its ratio
says how well the pieces spread over the cores, not what the full preset gains (there the widest cells
and the MNIST-1D seeds are longer, and the ratio is limited by the longest single piece).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from deepdistill.studies.bridge import PRESETS, TINY_PRESET, BridgePreset, run_bridge_study

REDUCED = BridgePreset(
    name="reduced", widths=(64, 256, 1024), seeds=(0, 1), width_weights=(0.0, 0.5), width_steps=3, exact_width=128,
    grid=(0.0, 1.0, 2.0, 3.0, 4.0, 5.0), standard_widths=(64, 256), adam_width=256, adam_seeds=(0, 1),
    adam_max_steps=300, adam_patience=100, toy_width=1024,
    mnist1d={"n_train": 1000, "epochs": 5, "grid": (0.0, 0.5, 1.0), "seeds": (0, 1), "ntk_subsample": 200,
             "model": "cnn1d", "label_noise": 0.2, "method": "sd_kd"})
_TIMES = {"seconds", "wall_time_s"}


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in _TIMES}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="reduced", choices=["reduced", *PRESETS])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a tiny preset (seconds; checks that it runs)")
    args = ap.parse_args(argv)
    preset = TINY_PRESET if args.quick else REDUCED if args.preset == "reduced" else PRESETS[args.preset]
    print(f"preset {preset.name}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}", flush=True)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_bridge_") as tmp:
        for jobs in (1, args.jobs):
            c0, t0 = _cpu(), time.perf_counter()
            study = run_bridge_study(Path(tmp) / f"jobs_{jobs}", preset, jobs=jobs)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            out[jobs] = (wall, cpu, study)
            print(f"jobs={jobs}: {wall:7.1f} s wall, {cpu:7.1f} s CPU (load average {os.getloadavg()[0]:.1f})", flush=True)
    (w1, c1, s1), (wj, cj, sj) = out[1], out[args.jobs]
    same = json.dumps(_without_times(s1["parts"]), sort_keys=True) == json.dumps(_without_times(sj["parts"]), sort_keys=True)
    print(f"speed-up serial / jobs={args.jobs}: {w1 / wj:.2f}x wall ({cj / c1:.2f}x the CPU); "
          f"results equal bitwise: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
