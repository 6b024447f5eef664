"""Every example runs at its fast size (``--fast``) and every benchmark at its quick size (``--quick``),
so that none of them rots. Each runs in this process (one interpreter start for all), from an empty
folder that receives whatever it writes; a script that is not listed here is found and run too.

Not measurements: the benchmarks' ratios at these sizes mean nothing (``bench/`` is run by hand).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
BENCHMARKS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))   # _trees.py: a helper

# The figures each kernel example draws (into its default folder, results/kernel).
KERNEL_EXAMPLE_FIGURES = {
    "closed_form_vs_refits.py": [],
    "limit_vs_kernel_ridge.py": [],
    "optimal_weight_vs_grid.py": ["kernel_optimal_weight"],
    "one_shot_vs_oracle.py": ["kernel_one_shot"],
    "mobahi_collapse.py": ["kernel_mobahi_collapse"],
    "symbolic_checks.py": [],
    "toy_borup_andersen.py": ["kernel_toy_fits", "kernel_toy_filters", "kernel_toy_ratios", "kernel_toy_loss"],
}

# Examples of a claim that honestly FAILs (docs/claims.md) exit with 1; every other example with 0.
# claim_das_sanghavi.py: the classification half ties at 30% corruption at its declared regularisation.
# claim_spiked_optimality.py: s steps miss the spectral oracle for s = 1, 2 in our fixed-design analogue.
# claim_infinite_width.py: the bridge's published kernel weight at width 2048 lies outside the finite-width range.
EXPECTED_EXIT = {"claim_das_sanghavi.py": 1, "claim_spiked_optimality.py": 1, "claim_infinite_width.py": 1}


def _load(folder: str, name: str):
    module_name = f"smoke_{folder}_{Path(name).stem}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / folder / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty working folder, and torch's thread count restored afterwards (scripts set it)."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


def test_every_kernel_example_is_listed():
    # A kernel example is a script built on the theorem checks; its figures are checked below.
    kernel_examples = {name for name in EXAMPLES if "from analysis.verify import" in (ROOT / "examples" / name).read_text()}
    assert kernel_examples == set(KERNEL_EXAMPLE_FIGURES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_at_its_fast_size(name, isolated, capsys):
    assert _load("examples", name).main(["--fast"]) == EXPECTED_EXIT.get(name, 0)
    out = capsys.readouterr().out
    if name in KERNEL_EXAMPLE_FIGURES:
        assert "PASS" in out and "FAIL" not in out
        drawn = sorted(p.stem for p in (isolated / "results" / "kernel").glob("*.png"))
        assert drawn == sorted(KERNEL_EXAMPLE_FIGURES[name])
    if name == "kernel_meets_deep.py":
        # The bridge study at its CI size: every must-show passes, every case is reported, every figure drawn.
        table = out[out.index("must show"):]
        assert table.count("PASS") == 3 and "FAIL" not in table
        for case in ("standard parameterisation", "Adam with early stopping", "MNIST-1D", "(d) [BA21] toy"):
            assert case in out
        drawn = sorted(p.stem for p in (isolated / "results" / "bridge").glob("*.png"))
        assert drawn == ["bridge_exact", "bridge_toy", "bridge_weight", "bridge_width"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_at_its_quick_size(name, isolated, capsys):
    # bench_kernel_path's --quick is n = 400; a smaller n keeps this smoke run to seconds.
    argv = ["--quick", "--n", "150", "--n-large", "0", "--threads", "1"] if name == "bench_kernel_path.py" else ["--quick"]
    if name == "bench_sweep_backends.py":
        # As a script: Ray ships the script's own task functions to its workers by value only when
        # they live in __main__. About 25 s, nearly all of it Ray starting its instance and workers.
        pytest.importorskip("ray")
        done = subprocess.run([sys.executable, str(ROOT / "bench" / name), *argv], cwd=isolated, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "ratio local" in done.stdout
        return
    assert _load("bench", name).main(argv) == 0
    assert capsys.readouterr().out.strip()             # it printed its table
