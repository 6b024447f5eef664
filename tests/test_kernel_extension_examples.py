"""The kernel extension examples run at their fast size, print their tables and pass their checks."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, expected", [
    ("joint_schedules.py", ["Pareek et al. construction: d = 4", "ridge/joint", "PASS"]),
    ("select_steps.py", ["risk of the chosen step / risk of the oracle's best step", "PASS"]),
    ("ridge_weight_grid.py", ["Proposition 2.3", "one-shot ridge", "PASS"]),
])
def test_example_prints_its_table_and_passes(name, expected, capsys):
    assert _load(name).main(["--fast"]) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out
    assert "FAIL" not in out


def test_joint_example_fails_when_joint_loses_to_greedy(monkeypatch, capsys):
    module = _load("joint_schedules.py")
    real = module.toy_rows
    # a joint risk above the greedy one must make the example exit with 1
    monkeypatch.setattr(module, "toy_rows", lambda: [(c, T, g, g * 1.01, w) for c, T, g, _, w in real(3)])
    assert module.main(["--fast"]) == 1
    assert "toy T=2" in capsys.readouterr().err


def test_joint_example_fails_when_joint_loses_to_ridge_or_the_bound(monkeypatch, capsys):
    from kerneldistill.pareek import PareekRow

    module = _load("joint_schedules.py")
    monkeypatch.setattr(module, "toy_rows", lambda: [])
    row = PareekRow(k=2, ridge_risk=0.5, ridge=1.0, one_step_risk=0.5, greedy_risk=0.7, greedy_ridge=1.0,
                    joint_risk=0.6, joint_ridge=1.0, lower_bound=0.65)
    monkeypatch.setattr(module, "pareek_table", lambda construction: [row])
    assert module.main(["--fast"]) == 1
    err = capsys.readouterr().err
    assert "> best ridge" in err and "below the lower bound" in err and "> greedy" not in err
