"""``bench/gpu_checks.py`` without CUDA (CI never has a GPU): it writes why it ran nothing and exits 0."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_checks_under_test", ROOT / "bench" / "gpu_checks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_why_and_exits_0(tmp_path, monkeypatch, capsys):
    import torch

    gpu_checks = _load()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_checks, "run_step", lambda *a: (_ for _ in ()).throw(AssertionError("a step ran")))
    assert gpu_checks.main(["--out", str(tmp_path)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "Skipped: no CUDA device" in summary and "torch.cuda.is_available() is False" in summary
    assert f"torch {torch.__version__}" in summary
    assert "skipped: no CUDA device" in capsys.readouterr().out


def test_every_step_names_a_script_and_options_that_exist(tmp_path):
    gpu_checks = _load()
    steps = gpu_checks.steps("cuda", quick=False, out=tmp_path)
    assert [name for name, _, _ in steps][:3] == ["pytest -m gpu", "kernel path: torch eigh on the device",
                                                  "deep training loop, AMP bf16"]
    assert "--gpus-per-task" in steps[3][1] and steps[3][1][steps[3][1].index("--gpus-per-task") + 1] == "0.25"
    for _, command, limit in steps:
        assert limit > 0
        scripts = [Path(arg) for arg in command if arg.endswith(".py")]
        assert all(path.is_file() for path in scripts)
        for path in scripts:       # each option the step passes is one the script defines
            text = path.read_text()
            assert all(f'"{arg}"' in text for arg in command if arg.startswith("--")), (path.name, command)


def test_the_shell_command_without_cuda_writes_the_summary_and_exits_0(tmp_path):
    import os
    import subprocess

    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")      # no GPU, even on a machine with one
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_checks.sh"), "--out", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "skipped: no CUDA device" in done.stdout
    assert "Skipped: no CUDA device" in (tmp_path / "summary.md").read_text()
