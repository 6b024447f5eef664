"""A user's own sweep: the report on it and the figures drawn from it read its runs and train nothing.

One tiny sweep (digits, a 16-unit MLP, 2 epochs; sd_kd at two weights and ce, 2 generations, 2 seeds),
made once for the module by the toolkit's own sweep command.
"""
from __future__ import annotations

import shutil

import pytest

import analysis.figures.deep_runs as deep_runs
import deepdistill.engine.train as train
from analysis.__main__ import main
from analysis.figures.spec import read_csv
from deepdistill.drivers.sweep import expand_grid, run_sweep


# Tiny networks on a shared 2-core machine: one intra-op thread is several times faster than two.
pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def user_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("user") / "sweep"
    base = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=300, epochs=1,
                batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0)
    configs = (expand_grid(base, methods=["sd_kd"], gt_weights=[0.25, 0.75], generations=[2], seeds=[0, 1])
               + expand_grid(base, methods=["ce"], generations=[2], seeds=[0, 1]))
    run_sweep(configs, out, progress=False)
    return out


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train (a sweep, a run, one generation) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a report or figure on --results must not train")

    monkeypatch.setattr(deep_runs, "run_sweep", refuse)           # the deep figures' sweep driver
    monkeypatch.setattr(deep_runs, "estimate_gt_weight", refuse)
    monkeypatch.setattr(train, "train_generation", refuse)


def test_the_report_on_a_users_sweep_trains_nothing(user_sweep, no_training, tmp_path, capsys):
    work = tmp_path / "sweep"
    shutil.copytree(user_sweep, work)
    before = _files(work)
    assert main(["report", "--results", str(work)]) == 0
    err = capsys.readouterr().err
    report = work / "report" / "report.md"
    # Nothing else was written into the sweep: no run, no checkpoint, no roll-up rewritten.
    assert [f for f in _files(work) if not f.startswith("report/")] == before
    text = report.read_text()
    assert "nothing was trained" in text and "## Tables" in text
    # Generation 0 once per method, then sd_kd's weights in order; 3 decimals.
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("| method |")).strip("| ").split(" | ")
    rows = [dict(zip(header, ln.strip("| ").split(" | "))) for ln in lines if ln.startswith(("| ce |", "| sd_kd |"))]
    assert [(r["method"], r["generation"], r["gt_weight"]) for r in rows] == [
        ("ce", "0", "-"), ("ce", "1", "-"), ("sd_kd", "0", "labels"), ("sd_kd", "1", "0.25"), ("sd_kd", "1", "0.75")]
    assert all(len(r["accuracy"].split(" ± ")[1]) == 5 for r in rows)    # mean ± sd over 2 seeds, 3 decimals
    # The figures the runs allow, and progress on stderr, one line per figure.
    for name in ("deep_generations", "deep_gt_weight", "deep_reliability"):
        assert f"![{name}]({name}.png)" in text and (work / "report" / f"{name}.png").is_file()
    assert "[6/6] deep_stability written" in err and "(without ls: not in the sweep)" in err
    # A second report does not read the first one's tables as results.
    assert main(["report", "--results", str(work)]) == 0
    assert report.read_text().count("### `") == 1


def test_a_figure_drawn_from_a_users_sweep(user_sweep, no_training, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["figures", "deep_gt_weight", "deep_generations", "--results", str(user_sweep), "--out", str(out)]) == 0
    assert (out / "deep_gt_weight.png").is_file() and (out / "deep_gt_weight.pdf").is_file()
    cols = read_csv(out / "deep_gt_weight.csv")
    runs = cols["kind"] == "run"
    assert sorted(set(cols["gt_weight"][runs].tolist())) == [0.25, 0.75] and runs.sum() == 4
    assert list(cols["estimator"][cols["kind"] == "estimate"]) == ["grid_best_val"]     # no estimate trained
    # One series per group: sd_kd at each weight is its own line.
    series = set(read_csv(out / "deep_generations.csv")["method"].tolist())
    assert series == {"ce", "sd_kd (gt_weight=0.25)", "sd_kd (gt_weight=0.75)"}
    # A figure the sweep cannot feed is named with the runs it lacks (exit 2); kernel figures do not read a sweep.
    only_ce = tmp_path / "ce_only"
    for run in (user_sweep / "runs").iterdir():
        if '"method": "ce"' in (run / "config.json").read_text():
            shutil.copytree(run, only_ce / "runs" / run.name)
    capsys.readouterr()
    assert main(["figures", "deep_gt_weight", "--results", str(only_ce)]) == 2
    assert "needs runs of method sd_kd with at least 2 generations at 2 or more values of gt_weight" in \
        capsys.readouterr().out
    assert not (only_ce / "figures" / "deep_gt_weight.png").exists()
    with pytest.raises(SystemExit):
        main(["figures", "kernel_toy_fits", "--results", str(user_sweep)])
    assert "do not read a sweep" in capsys.readouterr().err
