"""analysis.plotting, the figure registry and `python -m analysis`: files written, errors that guide."""
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import analysis.figures as figures
from analysis import plotting
from analysis.__main__ import main
from analysis.figures.spec import FigureSpec, read_csv, write_csv, write_npz
from analysis.report import DEEP_RESULTS_COMMAND, MissingResultsError
from analysis.results_report import build_results_report

REPO = Path(__file__).resolve().parents[1]


def _demo_figure(out_dir, name="demo"):
    fig, ax = plotting.new_figure("column")
    x = np.linspace(0, 1, 30)
    for k in range(3):
        ax.plot(x, x ** (k + 1), label=f"$t={k + 1}$")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend()
    return fig, plotting.save_figure(fig, out_dir, name)


def test_save_figure_writes_pdf_and_png_atomically(tmp_path):
    fig, paths = _demo_figure(tmp_path / "figs")
    assert paths == [tmp_path / "figs" / "demo.pdf", tmp_path / "figs" / "demo.png"]
    assert paths[0].read_bytes()[:5] == b"%PDF-"
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["demo.pdf", "demo.png"]  # no temp left
    assert fig.axes == []  # closed (cleared)
    # 300 dpi PNG of a 3.4 in wide figure (tight bbox trims a little).
    from matplotlib.image import imread
    width_px = imread(paths[1]).shape[1]
    assert 0.8 * 3.4 * 300 < width_px <= 3.4 * 300 + 10
    # Re-saving an unchanged figure gives an identical PDF (no creation date in it).
    _, again = _demo_figure(tmp_path / "figs")
    assert again[0].read_bytes() == paths[0].read_bytes()
    with pytest.raises(ValueError, match="`name`"):
        plotting.save_figure(plotting.new_figure()[0], tmp_path, "sub/demo.png")


def test_style_and_sizes():
    plotting.use_style()
    rc = matplotlib.rcParams
    assert not rc["axes.spines.top"] and not rc["axes.spines.right"] and not rc["axes.grid"]
    assert rc["savefig.dpi"] == 300 and rc["font.family"] == ["serif"]
    cycle = [c.lower() for c in rc["axes.prop_cycle"].by_key()["color"]]
    assert cycle == [c.lower() for c in plotting.PALETTE]  # the style file and PALETTE agree
    fig, ax = plotting.new_figure("column")
    assert fig.get_size_inches()[0] == pytest.approx(3.4)
    fig, axes = plotting.new_figure("full", nrows=2, ncols=3, sharey=True, xscale="log")
    assert fig.get_size_inches()[0] == pytest.approx(7.0) and axes.shape == (2, 3)
    assert axes[1, 2].get_xscale() == "log"
    fig, _ = plotting.new_figure(5.0, height=2.0)
    np.testing.assert_allclose(fig.get_size_inches(), [5.0, 2.0], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="`width`"):
        plotting.new_figure("page")
    with pytest.raises(ValueError, match="`ncols`"):
        plotting.new_figure(ncols=0)


def test_csv_and_npz_writers_round_trip(tmp_path):
    cols = {"step": [1, 2, 3], "value": [0.1, 1 / 3, np.float64(2.5e-17)], "kind": ["a", "b", "c"]}
    path = write_csv(tmp_path / "t.csv", cols)
    back = read_csv(path)
    np.testing.assert_array_equal(back["step"], [1, 2, 3])
    np.testing.assert_array_equal(back["value"], [0.1, 1 / 3, 2.5e-17])  # repr precision: exact
    assert list(back["kind"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="same length"):
        write_csv(tmp_path / "bad.csv", {"a": [1], "b": [1, 2]})
    npz = write_npz(tmp_path / "arr.npz", x=np.arange(3))
    np.testing.assert_array_equal(np.load(npz)["x"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arr.npz", "t.csv"]


# ---- a toy figure registered for the tests ------------------------------------------------------------

def _toy_data(out_dir, fast):
    n = 5 if fast else 50
    x = np.linspace(0, 1, n)
    return write_csv(Path(out_dir) / "toy.csv", {"x": x, "y": x**2})


def _toy_plot(data_path, out_dir):
    cols = read_csv(data_path)
    fig, ax = plotting.new_figure()
    ax.plot(cols["x"], cols["y"])
    return plotting.save_figure(fig, out_dir, "toy")


TOY = FigureSpec("toy", _toy_data, _toy_plot, "a toy curve for the tests")


@pytest.fixture
def toy_registry(monkeypatch):
    monkeypatch.setattr(figures, "FIGURES", {"toy": TOY})
    import analysis.__main__ as cli
    import analysis.report as report
    monkeypatch.setattr(cli, "FIGURES", figures.FIGURES)
    monkeypatch.setattr(report, "FIGURES", figures.FIGURES)


def test_run_figure_and_cli(tmp_path, toy_registry, capsys):
    paths = figures.run_figure("toy", tmp_path, fast=True)
    assert [p.name for p in paths] == ["toy.csv", "toy.pdf", "toy.png"]
    assert len(read_csv(paths[0])["x"]) == 5
    assert main(["figures", "all", "--out", str(tmp_path / "all")]) == 0
    assert len(read_csv(tmp_path / "all" / "toy.csv")["x"]) == 50
    assert main(["list"]) == 0
    assert "a toy curve for the tests" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["figures", "toy", "nope", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "unknown figure(s) nope; valid names: toy" in capsys.readouterr().err
    with pytest.raises(ValueError, match="valid figure names: toy"):
        figures.run_figure("nope", tmp_path)


def _fake_record(seed, method, gens, gt=0.5):
    """A minimal run record in deepdistill's format (only the fields its roll-up reads); generation 0
    of a method with a teacher (on the labels) is the same for every ``gt``, as in a real sweep; Beta
    smoothing's reads its weight."""
    own = method == "beta"
    return {"group_id": f"g-{method}-{gt}", "seed": seed,
            "config": {"dataset": "mnist1d", "model": "mlp", "method": method, "epochs": 3},
            "generations": [{"generation": g, "loss": "kd", "gt_weight": gt if g or own else 1.0, "temperature": 4.0,
                             "selected_epoch": 2, "wall_time_s": 1.0,
                             "val": {"accuracy": acc, "ece": 0.1},
                             "test": {"accuracy": acc + 0.01 * seed + (gt / 10 if g or own else 0), "ece": 0.2}}
                            for g, acc in enumerate(gens)]}


def test_report_on_results_groups_sorts_and_formats_its_tables(tmp_path, toy_registry):
    from deepdistill.engine.results import write_rollup_csv

    results = tmp_path / "results"
    write_csv(results / "single" / "generations.csv", {"generation": [1, 0], "accuracy": [0.625, 0.5], "ece": [0.05, 0.1]})
    records = [_fake_record(s, "sd_kd", [0.5, 0.6], gt) for gt in (0.75, 0.25) for s in (0, 1)]
    records += [_fake_record(0, "ce", [0.4, 0.45]), _fake_record(0, "beta", [0.3, 0.35], 0.6),
                _fake_record(0, "beta", [0.3, 0.35], 0.2)]
    write_rollup_csv(records, results / "rollup.csv")
    write_csv(results / "other.csv", {"something": [1]})  # not a results table: ignored
    report = build_results_report(results)                    # --out defaults to RESULTS/report
    assert report == results / "report" / "report.md"
    text = report.read_text()
    assert "![toy]" not in text and not (results / "report" / "toy.png").exists()   # the preset's figures: none
    assert "| generation | accuracy | ece |" in text and "| 0 | 0.500 | 0.100 |\n| 1 | 0.625 | 0.050 |" in text
    # The roll-up: test split; grouped by method (ce first) and gt_weight (sorted), generation 0 once
    # per method, mean ± sd over seeds to 3 decimals (sd of 0.5, 0.51: 0.007); one seed: no sd.
    assert "Split: test." in text and "dataset = mnist1d" in text
    # Beta smoothing's generation 0 reads its weight: one per group.
    lines = [ln for ln in text.splitlines() if ln.startswith(("| ce", "| sd_kd", "| beta"))]
    assert lines == ["| ce | 0 | - | 1 | 0.400 | 0.200 |",
                     "| ce | 1 | - | 1 | 0.500 | 0.200 |",
                     "| beta | 0 | 0.2 | 1 | 0.320 | 0.200 |",
                     "| beta | 1 | 0.2 | 1 | 0.370 | 0.200 |",
                     "| beta | 0 | 0.6 | 1 | 0.360 | 0.200 |",
                     "| beta | 1 | 0.6 | 1 | 0.410 | 0.200 |",
                     "| sd_kd | 0 | labels | 2 | 0.505 ± 0.007 | 0.200 ± 0.000 |",
                     "| sd_kd | 1 | 0.25 | 2 | 0.630 ± 0.007 | 0.200 ± 0.000 |",
                     "| sd_kd | 1 | 0.75 | 2 | 0.680 ± 0.007 | 0.200 ± 0.000 |"]
    assert "No figure: no complete run record" in text           # fake records: no runs to draw from


def test_report_names_missing_results(tmp_path, toy_registry, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingResultsError, match="holds no"):
        build_results_report(empty)
    write_csv(empty / "x.csv", {"epoch": [1], "loss": [0.3]})
    with pytest.raises(MissingResultsError, match=r"x.csv lacks generation and a metric column"):
        build_results_report(empty)
    assert main(["report", "--results", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and DEEP_RESULTS_COMMAND in err
    assert not (tmp_path / "absent").exists()                        # checked before anything is written
    with pytest.raises(SystemExit):
        main(["report"])                                             # neither --out nor --results
    assert "needs --out DIR (or --results SWEEP" in capsys.readouterr().err


def test_registry_refuses_clashing_or_misnamed_figures():
    from types import SimpleNamespace

    def spec(name):
        return FigureSpec(name, None, None, "a figure")

    one = SimpleNamespace(__name__="one", FIGS={"a": spec("a"), "b": spec("b")})
    assert list(figures._collect(((one, "FIGS"),))) == ["a", "b"]
    with pytest.raises(ValueError, match="defined twice"):
        figures._collect(((one, "FIGS"), (SimpleNamespace(__name__="two", FIGS={"b": spec("b")}), "FIGS")))
    with pytest.raises(ValueError, match="differs from its spec's name"):
        figures._collect(((SimpleNamespace(__name__="bad", FIGS={"c": spec("d")}), "FIGS"),))
    with pytest.raises(TypeError, match="must be a FigureSpec"):
        figures._collect(((SimpleNamespace(__name__="bad", FIGS={"c": "not a spec"}), "FIGS"),))


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "analysis", "list"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_report_sections_say_what_is_missing_and_how_to_make_it(tmp_path):
    from analysis import report

    # No deep runs and no weight table in the folder: each section names the command that makes them.
    text = report.deep_tables_section(tmp_path, fast=True)
    assert "did not run" in text and f"python -m analysis figures deep_generations --out {tmp_path} --fast" in text
    assert f"python -m analysis figures deep_gt_weight --out {tmp_path}" in report.weight_estimates_section(tmp_path)


def test_a_figure_drawn_in_the_background_process_lands_in_its_place(tmp_path, monkeypatch):
    # Two cheap kernel figures: the first drawn here, the second in a spawned process (as `python -m
    # analysis report` draws the claims and the bridge figures); the section lists both in the registry's order.
    import concurrent.futures as cf
    import multiprocessing

    import analysis.report as report

    names = ("kernel_toy_fits", "kernel_toy_loss")
    monkeypatch.setattr(report, "FIGURES", {n: report.FIGURES[n] for n in names})
    monkeypatch.setattr(report, "BACKGROUND_FIGURES", ("kernel_toy_loss",))
    lines = []
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(report._draw_in_order, ["kernel_toy_loss"], tmp_path, True)
        section = report.figures_section(tmp_path, True, lines.append, future)
    rows = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert rows == list(names)
    assert section.index("### kernel_toy_fits") < section.index("### kernel_toy_loss")
    assert (tmp_path / "kernel_toy_loss.png").is_file() and (tmp_path / "kernel_toy_loss.csv").is_file()
    assert lines[-1].startswith("[2/2] figure kernel_toy_loss written")     # drawn last here, after the others
