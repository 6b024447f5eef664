"""The two commands of the theorem checks (``kerneldistill verify``: checks only; ``analysis verify``:
checks and figures), the pass/fail exit code, and what the kernel examples print beyond their checks
(``test_smoke.py`` runs every example at its fast size)."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import verify
from analysis.__main__ import main as analysis_main
from analysis.figures.kernel import KERNEL_FIGURES
from kerneldistill import verification
from kerneldistill.__main__ import main as kerneldistill_main

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_example_prints_the_loss_table(tmp_path, capsys):
    _load("toy_borup_andersen.py").print_loss_table()
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if "gt_weight" in line)
    rows = [line.split() for line in lines[header + 1: header + 3]]
    assert [r[0] for r in rows] == ["0", "0.25"]
    # the gt_weight-0 limit is the zero function: its loss is mean(sin^2) on the grid, 0.495
    x = np.linspace(0, 1, 101)
    assert float(rows[0][-1]) == pytest.approx(np.mean(np.sin(2 * np.pi * x) ** 2), abs=1e-5)


def test_example_runs_as_a_script():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "limit_vs_kernel_ridge.py"), "--fast"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2/2 checks passed" in proc.stdout


def test_kerneldistill_verify_prints_the_checks_and_names_the_figures_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert kerneldistill_main(["verify", "--fast", "--groups", "limit", "toy"]) == 0
    out = capsys.readouterr().out
    assert "\nlimit " in out and "\ntoy " in out and "\nclosed_form " not in out
    assert "python -m analysis verify --out DIR --fast" in out
    # The time says what it measured, and the whole command beside it (imports included), which is longer.
    line = next(ln for ln in out.splitlines() if ln.startswith("time: "))
    checks, total = (float(x) for x in re.findall(r"([0-9.]+) s", line))
    assert "for the checks" in line and "since the command started" in line and total >= checks
    assert list(tmp_path.iterdir()) == []                  # kerneldistill draws nothing
    # The former option is refused with the command that draws the figures.
    with pytest.raises(SystemExit) as exc:
        kerneldistill_main(["verify", "--out", "figs"])
    assert exc.value.code == 2 and "python -m analysis verify --out figs" in capsys.readouterr().err


def test_analysis_verify_runs_every_group_and_writes_every_kernel_figure(tmp_path, capsys):
    assert analysis_main(["verify", "--fast", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for group in verification.CHECK_GROUPS:
        assert f"\n{group} " in out
    assert set(verify.VERIFY_FIGURES) == set(KERNEL_FIGURES)
    for fig in KERNEL_FIGURES:
        assert (tmp_path / f"{fig}.png").is_file() and (tmp_path / f"{fig}.pdf").is_file()


def test_failed_check_gives_exit_code_one(monkeypatch, tmp_path, capsys):
    def failing(fast):
        return [verification.CheckResult("broken", "a claim that does not hold", False, 1.0, 0.1)]

    monkeypatch.setitem(verification.CHECK_GROUPS, "broken", failing)
    assert verify.example_main(["limit", "broken"], "test", argv=["--fast", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "broken: a claim that does not hold" in captured.err
    assert verification.run_and_print(["broken"]) == 1
    with pytest.raises(SystemExit) as exc:
        kerneldistill_main(["bogus"])
    assert exc.value.code == 2


def test_one_shot_figure_keeps_every_data_set_and_its_means_are_the_checks(tmp_path):
    from analysis.figures.spec import read_csv

    data = KERNEL_FIGURES["kernel_one_shot"].data(tmp_path, True)
    cols = read_csv(data)
    sizes, seeds = verification.ONE_SHOT_SIZES[True]
    assert len(cols["n"]) == len(sizes) * seeds                               # one row per n and data set
    assert sorted(set(cols["data_set"].tolist())) == list(range(seeds))
    np.testing.assert_array_equal(cols["abs_gap"], np.abs(cols["one_shot_weight"] - cols["oracle_weight"]))
    # The check's means (one_shot_gaps) are the means of these rows (to round-off: BLAS threads may differ).
    gaps, oracle, one_shot = verification.one_shot_gaps(sizes, seeds)
    for i, n in enumerate(sizes):
        m = cols["n"] == n
        # Equal up to the order of summation (the CSV's mean and one_shot_gaps' may add in another order).
        assert np.mean(cols["abs_gap"][m]) == pytest.approx(gaps[i], rel=1e-12)
        assert np.mean(cols["oracle_weight"][m]) == pytest.approx(oracle[i], rel=1e-12)
    # The data sets really spread (the figure shows it): at the smallest n the gap varies several-fold.
    small = cols["abs_gap"][cols["n"] == sizes[0]]
    assert small.max() > 2 * small.min()
    caption = KERNEL_FIGURES["kernel_one_shot"].caption(data)
    assert f"{seeds} data sets per n" in caption and f"{gaps[0]:.3f}" in caption


def test_joint_schedules_log_axis_has_a_tick_at_its_floor():
    from analysis.figures.kernel_extensions import _plain_log_ticks
    from analysis.plotting import new_figure

    fig, ax = new_figure()
    ax.set_yscale("log")
    values = np.array([0.4956, 0.1298, 0.1238, 0.4956, 0.1851])
    ax.plot(np.arange(5), values)
    _plain_log_ticks(ax, values)
    ticks = ax.get_yticks()
    assert ticks.min() == pytest.approx(0.124) and ticks.min() <= values.min() * 1.01    # one at the floor
    assert len(ticks) >= 4 and np.all(np.diff(ticks) > 0)
    labels = [ax.yaxis.get_major_formatter()(t, 0) for t in ticks]
    assert "0.124" in labels and not any("10^" in s for s in labels)


def test_joint_schedules_example_prints_zero_not_minus_zero(capsys):
    example = _load("joint_schedules.py")
    assert example._weight(-0.0) == "0" and example._weight(0.0) == "0"
    assert example._weight(-1e-20) == "-1e-20" and example._weight(0.3241) == "0.324"
