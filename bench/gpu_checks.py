"""Every GPU check in one command, with one summary file of every figure.

    python bench/gpu_checks.py                       # on a machine with CUDA: writes results/gpu_checks/summary.md
    python bench/gpu_checks.py --out DIR --quick     # small sizes (minutes)
    python bench/gpu_checks.py --device cpu --quick  # the same steps on the CPU: checks the plumbing only

Steps, each in its own process with its own time limit; a step that fails or runs out of time is
marked so and the next one runs:

1. ``pytest -m gpu``: the tests that need CUDA;
2. ``bench/bench_kernel_path.py --device cuda``: torch's eigh on the GPU at n = 2000, 10000, 20000,
   float64 and float32, with the tolerance table of float32 against float64;
3. ``bench/bench_deep_train.py --device cuda --amp bf16``: the training loop's throughput, a student
   generation's cost, and many small models at once;
4. a sweep on Ray with ``--gpus-per-task 0.25`` (four runs to a card); skipped, saying so, where Ray is
   not installed.

The summary (``OUT/summary.md``) holds the machine (GPU, torch and CUDA versions), each step's
command, status, wall time and output. On a machine without CUDA it says why nothing ran, and the
command ends with exit status 0 (CI has no GPU); otherwise the status is 1 if a step failed.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from deepdistill.core.io import atomic_write_text  # noqa: E402

TAIL = 12_000          # characters of each step's output kept in the summary


def machine(device: str) -> list[str]:
    import torch

    lines = [f"- host: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
             f"- torch {torch.__version__}, built with CUDA {torch.version.cuda}"]
    if device == "cuda" and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"- GPU {i}: {props.name}, {props.total_memory / 2**30:.0f} GiB")
    return lines


def steps(device: str, quick: bool, out: Path) -> list[tuple[str, list[str], float]]:
    """``(name, command, time limit in seconds)`` of each check."""
    py = sys.executable
    kernel_sizes = ["500", "2000"] if quick else ["2000", "10000", "20000"]
    deep = ["--epochs", "2", "--repeats", "2", "--n-models", "8"] if quick else ["--epochs", "10", "--n-models", "16"]
    sweep = ["--epochs", "2" if quick else "10", "--seeds", "0", *([] if quick else ["1", "2"])]
    gpus = "0.25" if device == "cuda" else "0"
    return [
        ("pytest -m gpu", [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(ROOT / "tests")],
         600),
        ("kernel path: torch eigh on the device", [py, str(ROOT / "bench" / "bench_kernel_path.py"), "--device", device,
                                                   "--torch-sizes", *kernel_sizes, "--n", "500" if quick else "2000",
                                                   "--n-large", "0"], 1800),
        ("deep training loop, AMP bf16", [py, str(ROOT / "bench" / "bench_deep_train.py"), "--device", device, "--amp",
                                          "bf16", *deep], 1200),
        (f"Ray sweep, --gpus-per-task {gpus}", [py, "-m", "deepdistill", "sweep", "--backend", "ray", "--device", device,
                                                "--gpus-per-task", gpus, "--dataset", "mnist1d", "--model", "cnn1d",
                                                "--methods", "sd_kd", "--gt-weight", "0.25", "0.5", "0.75", "1",
                                                "--generations", "2", *sweep, "--out-dir", str(out / "ray_sweep"),
                                                "--quiet"], 1800),
    ]


def run_step(command: list[str], limit: float) -> tuple[str, float, str]:
    """``(status, wall seconds, output)``: status "passed", "FAILED (exit N)" or "TIMED OUT after N s"."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        output += (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        return f"TIMED OUT after {limit:.0f} s", time.perf_counter() - start, output
    status = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
    return status, time.perf_counter() - start, done.stdout + done.stderr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results") / "gpu_checks", help="folder of summary.md (and the sweep)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu: the same steps on the CPU, to check the plumbing on a machine without a GPU")
    p.add_argument("--quick", action="store_true", help="small sizes; without CUDA (and --device cuda) it only "
                                                        "writes the summary that says so")
    args = p.parse_args(argv)
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    summary = args.out / "summary.md"
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [f"# GPU checks ({started}, device {args.device}{', quick sizes' if args.quick else ''})", "",
             *machine(args.device), ""]
    if args.device == "cuda" and not torch.cuda.is_available():
        why = (f"torch.cuda.is_available() is False (torch {torch.__version__}, built with CUDA {torch.version.cuda}, "
               f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        lines += [f"Skipped: no CUDA device. {why}. Run this on a machine with a GPU; "
                  "`--device cpu` runs the same steps on the CPU to check the plumbing.", ""]
        _write(summary, lines)
        print(f"skipped: no CUDA device ({why}); summary: {summary}")
        return 0
    failed = 0
    for number, (name, command, limit) in enumerate(steps(args.device, args.quick, args.out), start=1):
        if name.startswith("Ray") and importlib.util.find_spec("ray") is None:
            status, wall, output = "skipped: Ray is not installed (pip install \".[cluster]\")", 0.0, ""
        else:
            print(f"[{number}] {name} ...", flush=True)
            status, wall, output = run_step(command, limit)
        failed += status.startswith(("FAILED", "TIMED OUT"))
        print(f"[{number}] {name}: {status} ({wall:.0f} s)", flush=True)
        lines += [f"## {number}. {name}: {status} ({wall:.0f} s)", "", f"`{' '.join(command)}`", ""]
        if output:
            lines += ["```", output[-TAIL:].rstrip(), "```", ""]
        _write(summary, lines)          # after every step: a later crash or time-out keeps what came before
    print(f"{failed} step(s) failed; summary: {summary}")
    return 1 if failed else 0


def _write(path: Path, lines: list[str]) -> None:
    atomic_write_text(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
