"""The deep figures at the fast preset: one shared sweep, sane tidy tables, PDF + PNG, and a report.

Every deep figure runs ONCE (module fixture, ~30-60 s on 2 loaded cores) into a temporary folder;
the tests then check the tables against independent computations: the records' own metrics
recomputed from the checkpoints, the ECE recomputed from the pooled checkpoints, the grid's best
weight recomputed from the runs, the estimator's students against the grid's students.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from deepdistill.core import metrics
from analysis.figures import FIGURES, run_figure
from analysis.figures import deep
from analysis.figures.spec import read_csv

PRESET = deep.get_preset(True)
DEEP_NAMES = list(deep.DEEP_FIGURES)


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep_figures")
    paths = {name: run_figure(name, out, fast=True) for name in DEEP_NAMES}
    return out, paths


def _records(out, configs):
    from deepdistill.engine.runs import read_record, run_dir_for

    return [read_record(run_dir_for(c, deep.runs_dir(out)) / "record.json") for c in configs]


def test_every_deep_figure_is_registered_and_writes_table_pdf_png(produced):
    out, paths = produced
    assert set(DEEP_NAMES) <= set(FIGURES)
    assert DEEP_NAMES == ["deep_generations", "deep_diversity", "deep_gt_weight", "deep_reliability",
                          "deep_penultimate", "deep_stability"]
    for name, (data, pdf, png) in paths.items():
        assert data.name == f"{name}.csv" and data.stat().st_size > 0
        assert pdf.name == f"{name}.pdf" and pdf.read_bytes()[:5] == b"%PDF-"
        assert png.name == f"{name}.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))  # atomic writes left nothing behind


def test_figures_share_one_sweep_and_a_rerun_trains_nothing(produced, monkeypatch):
    out, _ = produced
    expected = len(deep.comparison_configs(PRESET)) + len(deep.gt_weight_configs(PRESET))
    runs = sorted(p for p in (deep.runs_dir(out) / "runs").iterdir() if p.is_dir())
    assert len(runs) == expected  # five figures reuse the comparison's runs: no duplicates
    assert all((p / "record.json").is_file() for p in runs)
    assert (deep.runs_dir(out) / "rollup.csv").is_file()

    import deepdistill.engine.train

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(deepdistill.engine.train, "train_generation", refuse)
    for name in ("deep_generations", "deep_stability"):
        deep.DEEP_FIGURES[name].data(out, True)


def test_generations_table_has_one_row_per_method_generation_seed(produced):
    out, paths = produced
    cols = read_csv(paths["deep_generations"][0])
    n = len(cols["method"])
    keys = set(zip(cols["method"].tolist(), cols["generation"].tolist(), cols["seed"].tolist()))
    want = set(itertools.product(PRESET.methods, range(PRESET.generations), PRESET.seeds))
    assert keys == want and n == len(want)
    for split in ("val", "test"):
        for m in ("accuracy", "ece"):
            assert np.all((cols[f"{split}_{m}"] >= 0) & (cols[f"{split}_{m}"] <= 1))
        assert np.all((cols[f"{split}_diversity"] >= 0) & (cols[f"{split}_diversity"] <= 0.25))
        assert np.all((cols[f"{split}_entropy"] >= 0) & (cols[f"{split}_entropy"] <= math.log(10) + 1e-12))
    # Non-degenerate: well above chance (0.1) and not every prediction right.
    assert 0.5 < cols["test_accuracy"].min() and cols["test_accuracy"].max() < 1.0
    # Generation 0 of ce and of sd_kd is the same training (same seed, loss "ce"): same numbers.
    for seed in PRESET.seeds:
        ce = (cols["method"] == "ce") & (cols["generation"] == 0) & (cols["seed"] == seed)
        kd = (cols["method"] == "sd_kd") & (cols["generation"] == 0) & (cols["seed"] == seed)
        assert cols["test_accuracy"][ce] == pytest.approx(cols["test_accuracy"][kd], rel=0, abs=0)
    later_kd = (cols["method"] == "sd_kd") & (cols["generation"] >= 1)
    assert set(cols["loss"][later_kd].tolist()) == {"kd"} and np.all(cols["gt_weight"][later_kd] == 0.5)


def test_checkpoint_predictions_reproduce_the_record(produced):
    # The figures recompute predictions from checkpoints on data they load themselves; if that drifted
    # from what deepdistill.engine.train evaluated (another split, another model), these would differ.
    out, _ = produced
    records = _records(out, deep.comparison_configs(PRESET))
    for rec in (r for r in records if r["config"]["method"] in ("ls", "sd_kd")):
        for g in (0, PRESET.generations - 1):
            model, splits = deep.load_generation(rec, g, out)
            for split in ("val", "test"):
                p, y = deep.generation_probs(model, splits, split)
                got = metrics.summarize(p, y)
                want = rec["generations"][g][split]
                for k in want:
                    assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), (rec["config"]["method"], g, split, k)


def test_diversity_table_pairs_each_teacher_with_its_student(produced):
    out, paths = produced
    cols = read_csv(paths["deep_diversity"][0])
    from deepdistill.core.config import METHODS

    teachers = [m for m in PRESET.methods if METHODS[m].uses_teacher]
    assert set(cols["method"].tolist()) == set(teachers)
    assert len(cols["method"]) == len(teachers) * len(PRESET.seeds) * PRESET.generations
    assert np.all((cols["train_diversity"] > 0) & (cols["train_diversity"] <= 0.25))
    assert np.all((cols["train_entropy"] > 0) & (cols["train_entropy"] <= math.log(10)))
    for method, seed in itertools.product(teachers, PRESET.seeds):
        m = (cols["method"] == method) & (cols["seed"] == seed)
        order = np.argsort(cols["generation"][m])
        acc, student = cols["test_accuracy"][m][order], cols["student_test_accuracy"][m][order]
        np.testing.assert_array_equal(student[:-1], acc[1:])  # the student of g is generation g + 1
        assert math.isnan(student[-1])
    # The diversity column is the metric of the training-set predictions (recomputed for one run).
    rec = next(r for r in _records(out, deep.comparison_configs(PRESET)) if r["config"]["method"] == teachers[0])
    p, y = deep.generation_probs(*deep.load_generation(rec, 1, out), "train")
    row = (cols["method"] == teachers[0]) & (cols["seed"] == rec["seed"]) & (cols["generation"] == 1)
    assert cols["train_diversity"][row][0] == pytest.approx(np.var(p[np.arange(len(y)), y]), rel=1e-12)


def test_gt_weight_table_grid_and_estimates(produced):
    out, paths = produced
    cols = read_csv(paths["deep_gt_weight"][0])
    run = cols["kind"] == "run"
    pairs = set(zip(cols["gt_weight"][run].tolist(), cols["seed"][run].tolist()))
    assert pairs == set(itertools.product(PRESET.gt_weights, [float(s) for s in PRESET.seeds]))
    assert run.sum() == len(pairs)
    assert np.all((cols["test_accuracy"][run] >= 0) & (cols["test_accuracy"][run] <= 1))
    # The grid's best, recomputed: the weight with the highest mean validation accuracy.
    val = {w: cols["val_accuracy"][run & (cols["gt_weight"] == w)].mean() for w in PRESET.gt_weights}
    best = cols["estimator"] == "grid_best_val"
    assert best.sum() == 1 and cols["gt_weight"][best][0] == max(val, key=lambda w: (val[w], -w))
    est = (cols["kind"] == "estimate") & ~best
    names = set(cols["estimator"][est].tolist())
    assert names == {"half_grid", "refined", "two_run", "kernel_features", "one_shot_features"}
    assert np.all((cols["gt_weight"][est] >= 0) & (cols["gt_weight"][est] <= 1))  # clipped estimates
    # A student the estimator trained at a grid weight is the grid's student (same seed, same weight,
    # same gt_weight convention in both packages): equal test accuracy.
    for i in np.flatnonzero(est):
        w, s = cols["gt_weight"][i], cols["seed"][i]
        same = run & (cols["gt_weight"] == w) & (cols["seed"] == s)
        if same.any() and w != 1.0:  # at 1 the estimator may reuse the teacher instead of a student
            assert cols["test_accuracy"][i] == pytest.approx(cols["test_accuracy"][same][0], rel=0, abs=1e-12)


def test_reliability_table_matches_ece_and_pooled_counts(produced):
    out, paths = produced
    cols = read_csv(paths["deep_reliability"][0])
    assert list(dict.fromkeys(cols["method"].tolist())) == ["ce", "ls", "sd_kd"]
    n_test = 450  # digits: 25% of 1797, stratified
    records = _records(out, deep.comparison_configs(PRESET))
    # Which generation each diagram shows: the baselines' first, self-distillation's last.
    shown = {"ce": 0, "ls": 0, "sd_kd": PRESET.generations - 1}
    for method in ("ce", "ls", "sd_kd"):
        m = cols["method"] == method
        assert m.sum() == PRESET.reliability_bins
        count = cols["count"][m]
        assert count.sum() == n_test * len(PRESET.seeds)
        filled = count > 0
        lower, upper, conf = cols["lower"][m][filled], cols["upper"][m][filled], cols["confidence"][m][filled]
        assert np.all((conf >= lower - 1e-12) & (conf <= upper + 1e-12))   # each bin's mean lies in the bin
        # The ECE recomputed independently of the figure's code: the test predictions of every seed's
        # checkpoint pooled, then deepdistill.core.metrics.ece with the preset's bins.
        recs = [r for r in records if r["config"]["method"] == method]
        assert len(recs) == len(PRESET.seeds)
        probs, labels = zip(*(deep.generation_probs(*deep.load_generation(r, shown[method], out), "test")
                              for r in recs))
        ece = metrics.ece(np.concatenate(probs), np.concatenate(labels), n_bins=PRESET.reliability_bins)
        assert cols["ece"][m][0] == pytest.approx(ece, rel=1e-12)
        assert 0 <= ece <= 1
        # ... and the table's own counts and gaps add up to it.
        from_table = np.sum(count[filled] / count.sum() * np.abs(cols["gap"][m][filled]))
        assert from_table == pytest.approx(ece, rel=1e-12)
    assert np.all(cols["generation"][cols["method"] == "sd_kd"] == PRESET.generations - 1)


def test_penultimate_projection_rows_and_geometry(produced):
    out, paths = produced
    cols = read_csv(paths["deep_penultimate"][0])
    classes = set(PRESET.projection_classes)
    assert set(cols["label"].tolist()) == classes
    assert np.all(np.isfinite(cols["u"])) and np.all(np.isfinite(cols["v"]))
    rec = next(r for r in _records(out, deep.comparison_configs(PRESET))
               if r["config"]["method"] == "ce" and r["seed"] == PRESET.seeds[0])
    model, splits = deep.load_generation(rec, 0, out)
    import torch

    for split in ("train", "test"):
        x, y = getattr(splits, split).tensors
        keep = np.isin(y.numpy(), sorted(classes))
        m = (cols["method"] == "ce") & (cols["split"] == split)
        assert m.sum() == keep.sum()  # every example of the three classes, once
        # Geometry, independently of penultimate_projection: a point's logit differences to the first
        # class equal inner products with the template differences, which the plane preserves.
        with torch.no_grad():
            logits = model(x[torch.as_tensor(keep)]).numpy().astype(np.float64)
        a, b, c = PRESET.projection_classes
        W = torch.cat([model.head.weight, model.head.bias[:, None]], 1).detach().numpy().astype(np.float64)
        d1, d2 = W[b] - W[a], W[c] - W[a]
        # In the plane's coordinates, t_b - t_a = (|d1|, 0) and t_c - t_a = (q1 . d2, q2 . d2).
        q1 = d1 / np.linalg.norm(d1)
        r = d2 - (q1 @ d2) * q1
        uv = np.stack([cols["u"][m], cols["v"][m]], axis=1)
        tb, tc = np.array([np.linalg.norm(d1), 0.0]), np.array([q1 @ d2, np.linalg.norm(r)])
        # logit_k - logit_a = (t_k - t_a) . x~ = (t_k - t_a) . (x~ - t_a) + (t_k - t_a) . t_a
        np.testing.assert_allclose(uv @ tb + d1 @ W[a], logits[:, b] - logits[:, a], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(uv @ tc + d2 @ W[a], logits[:, c] - logits[:, a], rtol=1e-4, atol=1e-4)


def test_stability_table(produced):
    out, paths = produced
    cols = read_csv(paths["deep_stability"][0])
    keys = set(zip(cols["method"].tolist(), cols["seed"].tolist(), cols["split"].tolist()))
    assert keys == set(itertools.product(("ce", "ls"), PRESET.seeds, ("train", "test")))
    assert len(cols["method"]) == len(keys)
    assert np.all((cols["one_minus_stability"] > 0) & (cols["one_minus_stability"] < 1))
    assert np.all(cols["smoothing"][cols["method"] == "ce"] == 0.0)
    assert np.all(cols["smoothing"][cols["method"] == "ls"] == 0.1)


def test_plot_steps_read_only_their_table(produced, tmp_path):
    out, paths = produced
    for name in DEEP_NAMES:
        data = paths[name][0]
        copy = tmp_path / data.name
        copy.write_bytes(data.read_bytes())
        pdf, png = deep.DEEP_FIGURES[name].plot(copy, tmp_path / "plots")  # no deep_runs/ next to it
        assert pdf.is_file() and png.is_file()


def test_report_embeds_every_figure_and_the_tables(produced):
    from analysis.report import build_report

    out, _ = produced
    text = build_report(out, fast=True).read_text()
    for name, spec in FIGURES.items():
        if spec.fast_report:
            assert f"![{name}]({name}.png)" in text and (out / f"{name}.png").is_file()
        else:             # a claim's own figure reruns its claim: drawn by its own command in fast mode
            assert f"`python -m analysis figures {name} --out DIR --fast`" in text
            assert f"![{name}]" not in text
    assert any(not spec.fast_report for spec in FIGURES.values())
    assert "## Kernel theory verification" in text
    assert "checks passed" not in text and "passed**" in text and "| closed_form |" in text
    # The method table: every method, generation 0 and the last, mean ± sd over two seeds.
    assert "### digits (mlp)" in text
    for method in PRESET.methods:
        assert f"| {method} | 0 | 2 |" in text and f"| {method} | {PRESET.generations - 1} | 2 |" in text
    assert "| grid best (val. acc.) |" in text
    # Each deep figure's caption is the one built from its table (the runs present, a measured number).
    for name in DEEP_NAMES:
        assert deep.DEEP_FIGURES[name].caption(out / f"{name}.csv") in text, name


def test_report_skips_the_figures_it_is_told_to_and_says_how_to_draw_them(produced, capsys):
    from analysis.__main__ import main
    from analysis.report import build_report

    out, _ = produced
    skip = [name for name in FIGURES if name not in DEEP_NAMES]          # the deep figures' runs are there already
    started = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    text = build_report(out, fast=True, skip=skip).read_text()
    for name in skip:
        assert f"skipped (`--skip`): `python -m analysis figures {name} --out DIR --fast`" in text, name
        assert f"![{name}]" not in text
        if f"{name}.png" in started:                                    # not drawn again
            assert (out / f"{name}.png").stat().st_mtime_ns == started[f"{name}.png"]
    for name in DEEP_NAMES:
        assert f"![{name}]({name}.png)" in text
    assert f"--skip {' '.join(skip)}" in text                          # the command that regenerates this report
    with pytest.raises(ValueError, match=r"`skip` must name figures of the registry.*'no_such_figure'"):
        build_report(out, fast=True, skip=["no_such_figure"])
    with pytest.raises(SystemExit):
        main(["report", "--out", str(out), "--fast", "--skip", "no_such_figure"])
    assert "--skip: unknown figure(s) no_such_figure" in capsys.readouterr().err


def test_full_preset_is_a_valid_paper_sized_sweep():
    from deepdistill.core.config import TrainConfig

    full = deep.PRESETS["full"]
    comparison, grid = deep.comparison_configs(full), deep.gt_weight_configs(full)
    assert len(comparison) == len(full.methods) * len(full.seeds) and len(full.seeds) >= 3
    assert {c.dataset for c in comparison} == {"mnist1d"} and {c.model for c in comparison} == {"cnn1d"}
    assert {c.generations for c in comparison} == {5}
    assert len(grid) == len(full.gt_weights) * len(full.seeds)
    assert sorted({c.gt_weight for c in grid}) == list(full.gt_weights)
    assert all(isinstance(c, TrainConfig) for c in comparison + grid)
    # The two presets never share a run (different settings, different run ids).
    fast_ids = {c.run_id() for c in deep.comparison_configs(PRESET)}
    assert fast_ids.isdisjoint(c.run_id() for c in comparison)


# --------------------------------------------------------------------------------------------------
# Styles, captions and legends on a user's sweep: synthetic tables, no training (fast)
# --------------------------------------------------------------------------------------------------

def _user_generations_table(path, series=("ls", "sd_kd (gt_weight=0.5)"), generations=3, seeds=(0, 1)):
    """A deep_generations table of a user's sweep with only ``series`` (accuracy falls 0.01 per generation)."""
    from analysis.figures.spec import write_csv

    rows = {k: [] for k in ("dataset", "model", "epochs", "method", "seed", "generation", "loss", "gt_weight",
                            "temperature", "test_accuracy", "test_ece")}
    for i, name in enumerate(series):
        for s in seeds:
            for g in range(generations):
                for k, v in (("dataset", "digits"), ("model", "mlp"), ("epochs", 3), ("method", name), ("seed", s),
                             ("generation", g), ("loss", "kd"), ("gt_weight", 0.5), ("temperature", 4.0),
                             ("test_accuracy", 0.9 - 0.01 * g - 0.001 * i + 0.0005 * s), ("test_ece", 0.1)):
                    rows[k].append(v)
    return write_csv(path, rows)


def _capture_figures(monkeypatch, module):
    """Replace ``module.save_figure`` by one that keeps the figure's texts (legend entries, titles)."""
    kept = []

    def keep(fig, out_dir, name):
        texts = [t.get_text() for legend in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
                 for t in legend.get_texts()]
        titles = [a.get_title() for a in fig.axes] + ([fig._suptitle.get_text()] if fig._suptitle else [])
        kept.append({"legend": texts, "titles": titles, "fig": fig})
        return []

    monkeypatch.setattr(module, "save_figure", keep)
    return kept


def test_every_series_has_its_own_colour_and_marker_the_same_in_every_figure():
    from analysis.plotting import SERIES_LABELS, series_styles

    variants = ["sd_kd (gt_weight=0.25)", "sd_kd (gt_weight=0.5)", "ls (smoothing=0.1)", "ls (smoothing=0.2)",
                "sd_mse (gt_weight=0.5)", "sd_mse (gt_weight=0.8)"]
    for names in (list(SERIES_LABELS), ["ls", "sd_kd (gt_weight=0.5)"], ["ce", "ls"] + variants[:2], variants):
        styles = series_styles(names)
        pairs = [(s["color"], s["marker"]) for s in styles.values()]
        assert len(set(pairs)) == len(pairs), names                       # no two series alike...
        assert len({c for c, _ in pairs}) == len(pairs), names            # ... not even in colour alone
    # The case: label smoothing and sd_kd (0.5) must not share orange.
    two = series_styles(["ls", "sd_kd (gt_weight=0.5)"])
    assert two["ls"]["color"] != two["sd_kd (gt_weight=0.5)"]["color"]
    # Stable: a method's style does not depend on which other series a figure shows, and deep_diversity
    # (teacher methods only) draws each sd_kd series as deep_generations (all series) does.
    everything = series_styles(variants + ["ce"])
    teachers_only = series_styles([v for v in variants if not v.startswith("ls")])
    for name, style in teachers_only.items():
        assert everything[name] == style, name
    for method in SERIES_LABELS:
        assert series_styles([method])[method] == series_styles(list(SERIES_LABELS))[method]


def test_generations_figure_on_a_user_sweep_draws_each_series_in_its_own_style(tmp_path, monkeypatch):
    from analysis.figures import deep_generations

    table = _user_generations_table(tmp_path / "deep_generations.csv")
    kept = _capture_figures(monkeypatch, deep_generations)
    deep_generations.generations_plot(table, tmp_path)
    fig = kept[0]["fig"]
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() not in ("None", "_", None, "")]
    styles = {(ln.get_color(), ln.get_marker()) for ln in lines}
    assert len(styles) == 2                       # ls and sd_kd (0.5): two colours, two markers
    assert len({c for c, _ in styles}) == 2


def test_captions_name_only_the_series_present_and_a_measured_number(tmp_path):
    import re

    from analysis.figures import deep

    table = _user_generations_table(tmp_path / "deep_generations.csv")
    caption = deep.DEEP_FIGURES["deep_generations"].caption(table)
    for absent in ("Beta", "MSE", "ls_kd", "KD from LS", r"\bCE\b"):
        assert not re.search(absent, caption), (absent, caption)
    assert "label smoothing" in caption and "SD (KD) (gt_weight=0.5)" in caption
    # What it found: the measured change of the first series, from the table (0.9 + 0.00025 -> 0.88 + 0.00025).
    assert "0.900 to 0.880 (-0.020)" in caption
    assert len(re.findall(r"\.\s", caption)) >= 1 and caption.endswith(".")   # two sentences at least
    # The registry's generic text is no longer what a user's sweep sees.
    assert "Beta" not in deep.DEEP_FIGURES["deep_generations"].description


def test_diversity_legend_never_prints_nan_and_marker_size_is_explained_only_when_it_varies(tmp_path, monkeypatch):
    from analysis.figures import deep_generations
    from analysis.figures.spec import write_csv

    def table(generations):
        rows = {k: [] for k in ("dataset", "model", "epochs", "method", "seed", "generation", "train_diversity",
                                "train_entropy", "train_accuracy", "test_accuracy", "student_test_accuracy")}
        for name in ("sd_kd (gt_weight=0.25)", "sd_kd (gt_weight=0.5)"):
            for s in (0, 1):
                for g in range(generations):
                    student = 0.9 - 0.01 * (g + 1) if g + 1 < generations else float("nan")
                    for k, v in (("dataset", "digits"), ("model", "mlp"), ("epochs", 3), ("method", name), ("seed", s),
                                 ("generation", g), ("train_diversity", 0.05 + 0.01 * g + 0.001 * s),
                                 ("train_entropy", 0.5), ("train_accuracy", 0.95), ("test_accuracy", 0.9 - 0.01 * g),
                                 ("student_test_accuracy", student)):
                        rows[k].append(v)
        return write_csv(tmp_path / f"diversity_{generations}.csv", rows)

    kept = _capture_figures(monkeypatch, deep_generations)
    deep_generations.diversity_plot(table(2), tmp_path)      # 2 pairs per series: rho undefined
    deep_generations.diversity_plot(table(4), tmp_path)      # 6 pairs per series: rho defined
    two, four = kept
    assert not any("nan" in t.lower() for t in two["legend"] + two["titles"])
    assert sum("no $\\rho$" in t for t in two["legend"]) == 2
    assert not any("marker size" in t or "larger marker" in t for t in two["titles"])
    assert not any("marker size" in str(a.get_legend() and a.get_legend().get_title().get_text())
                   for a in two["fig"].axes)
    assert not any("nan" in t.lower() for t in four["legend"])
    assert sum("Spearman $\\rho$ = " in t for t in four["legend"]) == 2
    # With three teacher generations the scatter's sizes differ, and a size legend says which is which.
    sizes = four["fig"].axes[2].collections[0].get_sizes()
    assert len(set(sizes.tolist())) == 3
    assert any(a.get_legend() is not None and a.get_legend().get_title().get_text() == "marker size"
               for a in four["fig"].axes)
    assert deep_generations.spearman_or_none([1, 2], [3, 4]) is None
    assert deep_generations.spearman_or_none([1, 2, 3], [5, 5, 5]) is None
    assert deep_generations.spearman_or_none([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_gt_weight_figure_draws_estimates_where_their_students_landed(produced, monkeypatch):
    from analysis.figures import deep_weight

    out, paths = produced
    cols = read_csv(paths["deep_gt_weight"][0])
    kept = _capture_figures(monkeypatch, deep_weight)
    deep_weight.gt_weight_plot(paths["deep_gt_weight"][0], out / "plots")
    ax = kept[0]["fig"].axes[0]
    est = (cols["kind"] == "estimate") & (cols["estimator"] != "grid_best_val")
    # One marker per seed and estimator, at (its weight + an offset that only separates coincident markers,
    # the test accuracy of its own student): the y values are exactly the table's.
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1 and ln.get_zorder() == 4]
    assert len(drawn) == est.sum() + 1                                   # + the grid's best
    ys = sorted(float(ln.get_ydata()[0]) for ln in drawn)
    want = sorted(cols["test_accuracy"][est].tolist() + cols["test_accuracy"][cols["estimator"] == "grid_best_val"].tolist())
    np.testing.assert_allclose(ys, want, rtol=0, atol=0)
    points = [(round(float(ln.get_xdata()[0]), 9), round(float(ln.get_ydata()[0]), 9)) for ln in drawn]
    assert len(set(points)) == len(points)                               # none hidden under another
    xs = np.array([float(ln.get_xdata()[0]) for ln in drawn])
    assert np.all(np.abs(xs - np.round(xs * 4) / 4) <= 0.1)               # offsets are small
    # A student that is the teacher is flagged in the table and drawn hollow; the teacher's band is in the legend.
    assert set(np.unique(cols["student_is_teacher"][est])) <= {0, 1}
    assert any(t.startswith("teacher, generation 0") and "band" in t for t in kept[0]["legend"])


def test_reliability_names_the_weight_of_the_distilled_panel(produced):
    out, paths = produced
    cols = read_csv(paths["deep_reliability"][0])
    sd = cols["method"] == "sd_kd"
    from deepdistill.core.config import METHODS

    assert np.all(cols["gt_weight"][sd] == 0.5) and np.all(cols["temperature"][sd] == METHODS["sd_kd"].default_temperature)
    caption = deep.DEEP_FIGURES["deep_reliability"].caption(paths["deep_reliability"][0])
    assert "gt_weight 0.5" in caption and "ECE" in caption


def test_report_captions_come_from_the_tables(produced):
    out, paths = produced
    for name in DEEP_NAMES:
        caption = deep.DEEP_FIGURES[name].caption(paths[name][0])
        assert "nan" not in caption.lower() and any(ch.isdigit() for ch in caption), (name, caption)
