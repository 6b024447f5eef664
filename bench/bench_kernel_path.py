"""Cost of the self-distillation path against one eigendecomposition and against explicit refits.

Prints, measured in one run (ratios, so that the machine's speed cancels out):

1. the bare exact eigensolvers on the same Gram matrix (numpy.linalg.eigh; scipy.linalg.eigh with
   driver "evd" and "evr"), interleaved, each as a ratio to the fastest in this run, and which one
   the estimator uses (``kerneldistill.spectrum.exact_eigh_solver``). numpy's eigh and scipy's evd
   are the same LAPACK routine (syevd) in two different OpenBLAS builds; evr is MRRR (syevr);
2. the path: ``KernelDistiller.fit`` + ``path(None, steps=1..50, gt_weights=11 values)`` at the
   training points, at n = --n (default 2000), as a ratio to the fastest bare eigh (target <= 1.1x:
   the 550 filters cost one (550 x n) x (n x n) matrix product on top of the eigh);
3. its speed-up over explicit iterated ``KernelRidge`` refits of the same 50 x 11 grid
   (target >= 40x); a subset of the refits is timed and extrapolated linearly (said in the output);
4. the approximate spectra (top-k, Nystroem): relative error of the path against the exact one and
   their time, for a few n_components;
5. the path alone at n = --n-large (default 10000) as a ratio to one bare eigh;
6. with ``--device cpu|cuda``: torch's ``eigh`` on that device at n = --torch-sizes (default 2000,
   10000, 20000), float64 and float32, its time (and the bare CPU eigh's, where n <= --n-large), and a
   tolerance table: the float32 eigenvalues and path (fitted values, 50 steps x 11 weights, from the
   same filter diagonals) against float64's on the device, as relative errors.

Usage: python bench/bench_kernel_path.py [--n 2000] [--n-large 10000] [--quick] [--threads 1] [--device cuda]
``--quick`` (n = 400, n-large = 800, fewer refits) runs in seconds, for CI.
Both timed computations get the same precomputed Gram matrix, so kernel evaluation is not counted
on either side (the rbf Gram costs O(n^2 d), small next to eigh).
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import rbf_kernel

from kerneldistill.estimator import KernelDistiller
from kerneldistill.spectrum import exact_eigh_solver

STEPS = list(range(1, 51))  # 50 steps
WEIGHTS = list(np.linspace(0.0, 1.0, 11))  # 11 ground-truth weights
RIDGE = 0.1


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.sin(X @ rng.normal(size=2)) + 0.1 * rng.normal(size=n)
    return X, rbf_kernel(X, gamma=0.5), y


def _best_time(fn, repeats):
    """Minimum (wall, CPU) seconds over ``repeats`` calls, and the last result.

    Why both: on a shared machine other processes stretch the wall time of whichever call ran in a
    busy spell; the process's CPU time (all its BLAS threads) measures the work done and is nearly
    unaffected by them. On a quiet machine with 2 threads, wall ~ CPU / 2.
    """
    wall, cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return Timing(wall, cpu), out


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self):
        return f"wall {self.wall:8.3f} s, CPU {self.cpu:8.3f} s"

    def ratio(self, other: "Timing") -> str:
        return f"{self.wall / other.wall:.2f}x wall, {self.cpu / other.cpu:.2f}x CPU"


def _bare_eighs(K, repeats, solvers=("numpy", "evd", "evr")):
    fns = {
        "numpy": lambda: np.linalg.eigh(K),
        "evd": lambda: scipy.linalg.eigh(K, driver="evd"),
        "evr": lambda: scipy.linalg.eigh(K, driver="evr"),
    }
    return {name: _best_time(fns[name], repeats)[0] for name in solvers}


def _min(a: Timing, b: Timing) -> Timing:
    return Timing(min(a.wall, b.wall), min(a.cpu, b.cpu))


def _path(K, y):
    model = KernelDistiller("precomputed", ridge=RIDGE).fit(K, y)
    return model.path(None, STEPS, gt_weights=WEIGHTS)  # (11, 50, n)


def _explicit_refits(K, y, weights, last_step):
    """Iterated KernelRidge refits on the mixed targets (the definition); fitted values per step."""
    out = np.empty((len(weights), last_step, len(y)))
    for i, w in enumerate(weights):
        target = y
        for t in range(last_step):
            if t > 0:
                target = w * y + (1.0 - w) * out[i, t - 1]
            out[i, t] = KernelRidge(alpha=RIDGE, kernel="precomputed").fit(K, target).predict(K)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None,
                        help="size of the path vs refits comparison (default 2000; 400 with --quick)")
    parser.add_argument("--n-large", type=int, default=None,
                        help="size of the path-only run, 0 to skip (default 10000; 800 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: leave as is). On a machine shared with other "
                             "jobs, --threads 1 makes CPU time a clean measure of work: idle BLAS "
                             "threads spin-wait and bill CPU time when cores are contended.")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="also time torch's eigh on this device, float64 and float32, with a tolerance table "
                             "(section 6; default: skipped)")
    parser.add_argument("--torch-sizes", type=int, nargs="+", default=None,
                        help="sizes of section 6 (default 2000 10000 20000; 300 600 with --quick)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads, user_api="blas"):
            return _run(args)
    return _run(args)


def _run(args):
    n = args.n if args.n is not None else (400 if args.quick else 2000)
    n_large = args.n_large if args.n_large is not None else (800 if args.quick else 10000)
    repeats = 3
    grid = len(STEPS) * len(WEIGHTS)

    from threadpoolctl import threadpool_info

    threads = sorted({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"})
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; BLAS "
          f"threads {threads} (on a loaded machine trust the CPU-time ratios)")
    print(f"== n = {n}: path of {len(STEPS)} steps x {len(WEIGHTS)} weights at the training points")
    X, K, y = _data(n)
    # Interleave the two measurements and keep each one's minimum: other processes on a shared
    # machine then disturb both alike instead of whichever ran during a busy spell.
    bare, t_path = {}, Timing(math.inf, math.inf)
    for _ in range(repeats):
        for name, t in _bare_eighs(K, 1).items():
            bare[name] = _min(bare.get(name, Timing(math.inf, math.inf)), t)
        t, path = _best_time(lambda: _path(K, y), 1)
        t_path = _min(t_path, t)
    fastest = min(bare, key=lambda name: bare[name].cpu)
    used = exact_eigh_solver()
    for name, t in bare.items():
        tags = [tag for tag, hit in (("fastest", name == fastest), ("the fit's solver", name == used)) if hit]
        print(f"bare eigh {name:>5}: {t}  ({t.ratio(bare[fastest])} of the fastest){'  <- ' + ', '.join(tags) if tags else ''}")
    print(f"path (fit + {grid} predictions): {t_path}")
    ratio = t_path.cpu / bare[fastest].cpu
    print(f"  -> {t_path.ratio(bare[fastest])} of the fastest bare eigh ({fastest}); target <= 1.1x (CPU): "
          f"{'MET' if ratio <= 1.1 else 'NOT MET'}")
    if used != fastest:
        print(f"  -> {t_path.ratio(bare[used])} of the fit's own solver ({used}) run bare")

    # Explicit refits: time a subset (2 weights x 5 steps = 10 refits) and extrapolate linearly:
    # every refit costs the same (one Cholesky solve of the n x n system + one n x n matvec).
    sub_w, sub_t = [WEIGHTS[3], WEIGHTS[7]], (3 if args.quick else 5)
    t_sub, refits = _best_time(lambda: _explicit_refits(K, y, sub_w, sub_t), 1)
    scale = grid / (len(sub_w) * sub_t)
    t_refits = Timing(t_sub.wall * scale, t_sub.cpu * scale)
    print(f"explicit KernelRidge refits: timed {len(sub_w) * sub_t} of {grid} refits, EXTRAPOLATED "
          f"linearly to {grid}: {t_refits}")
    speedup = t_refits.cpu / t_path.cpu
    print(f"speed-up of the path over the refits: {t_refits.wall / t_path.wall:.0f}x wall, "
          f"{speedup:.0f}x CPU; target >= 40x: {'MET' if speedup >= 40 else 'NOT MET'}")
    # The timed refits double as a correctness check of the path.
    idx = [WEIGHTS.index(w) for w in sub_w]
    err = np.max(np.abs(path[idx, :sub_t] - refits)) / np.max(np.abs(refits))
    print(f"max relative difference path vs refits on the timed subset: {err:.1e}")
    assert err < 1e-8, f"the path disagrees with the explicit refits: {err:.1e}"

    print(f"\n== n = {n}: approximate spectra, relative error of the path (steps 1..50 x 11 "
          f"weights) against the exact one")
    for spectrum in ("topk", "nystroem"):
        # ARPACK (topk) pays only for n_components << n: 800 of 2000 cost 30x the full eigh.
        sizes = (50, 200) if spectrum == "topk" else (50, 200, 800)
        for m in ((20, 80) if args.quick else sizes):
            model = KernelDistiller("precomputed", ridge=RIDGE, spectrum=spectrum, n_components=m,
                                    random_state=0)
            t_fit, _ = _best_time(lambda: model.fit(K, y), 1)
            approx = model.path(None, STEPS, gt_weights=WEIGHTS)
            rel = np.linalg.norm(approx - path) / np.linalg.norm(path)
            print(f"{spectrum:>8} n_components={m:4d}: relative error {rel:.2e}, fit {t_fit} "
                  f"({t_fit.ratio(bare[fastest])} of the exact eigh)")
    del X, K, y, path

    if n_large:
        print(f"\n== n = {n_large}: path alone vs one bare eigh")
        _, K, y = _data(n_large, seed=1)
        t_bare = _bare_eighs(K, 1, solvers=(exact_eigh_solver(),))[exact_eigh_solver()]
        t_path, _ = _best_time(lambda: _path(K, y), 1)
        ratio = t_path.cpu / t_bare.cpu
        print(f"bare eigh {exact_eigh_solver():>5}: {t_bare}")
        print(f"path (fit + {grid} predictions): {t_path}  -> {t_path.ratio(t_bare)} of one bare "
              f"eigh; target <= 1.1x: {'MET' if ratio <= 1.1 else 'NOT MET'}")
    if args.device is not None:
        _torch_eigh_section(args.device, args.torch_sizes or ([300, 600] if args.quick else [2000, 10000, 20000]),
                            cpu_max=n_large or n)
    print(f"load average after the run: {os.getloadavg()[0]:.1f}")
    return 0


def _torch_eigh_section(device_name: str, sizes, cpu_max: int) -> None:
    """Section 6: torch.linalg.eigh on ``device_name``, float64 and float32, timed, and float32's error table."""
    import torch

    from kerneldistill.filters import filter_path

    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"\n== torch eigh on {device_name}: skipped (torch.cuda.is_available() is False)")
        return

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(fn):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - start, out

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n== torch {torch.__version__} eigh on {device_name} ({name}): wall time (synchronised), and the "
          f"float32 results against float64's on the same device")
    rows = []
    for n in sizes:
        _, K, y = _data(n, seed=2)
        k64 = torch.as_tensor(K, dtype=torch.float64, device=device)
        timed(lambda k=k64: torch.linalg.eigh(k[:64, :64]))                     # warm-up (kernel load, workspace)
        t64, (d64, v64) = timed(lambda k=k64: torch.linalg.eigh(k))
        t32, (d32, v32) = timed(lambda k=k64: torch.linalg.eigh(k.float()))
        t_cpu = _best_time(lambda k=K: scipy.linalg.eigh(k, driver="evd"), 1)[0].wall if n <= cpu_max else math.nan
        b, _ = filter_path(d64.cpu().numpy(), RIDGE, WEIGHTS, STEPS)        # (11, 50, n)
        b32, _ = filter_path(d32.double().cpu().numpy(), RIDGE, WEIGHTS, STEPS)
        y64 = torch.as_tensor(y, dtype=torch.float64, device=device)

        def path(v, diag):                                                   # fitted values (11 * 50, n)
            z = v.T @ y64.to(v.dtype)                                        # (n,)
            coef = torch.as_tensor(diag.reshape(-1, n), dtype=v.dtype, device=device) * z
            return coef @ v.T

        p64, p32 = path(v64, b), path(v32, b32).double()
        eig_err = float((d32.double() - d64).abs().max() / d64.abs().max())
        path_err = float(torch.linalg.norm(p32 - p64) / torch.linalg.norm(p64))
        rows.append((n, t64, t32, t_cpu, eig_err, path_err))
        del k64, d64, v64, d32, v32, p64, p32, K
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"{'n':>6} {'float64 s':>10} {'float32 s':>10} {'CPU evd s':>10} {'f32 eigenvalue err':>19} "
          f"{'f32 path err':>13}")
    for n, t64, t32, t_cpu, eig_err, path_err in rows:
        cpu = f"{t_cpu:10.2f}" if t_cpu == t_cpu else f"{'-':>10}"
        print(f"{n:>6} {t64:10.3f} {t32:10.3f} {cpu} {eig_err:19.1e} {path_err:13.1e}")
    print("errors: max |d32 - d64| / max |d64|, and ||path32 - path64|| / ||path64|| over 50 steps x 11 weights "
          "(float64 on the device is the reference)")


if __name__ == "__main__":
    raise SystemExit(main())
