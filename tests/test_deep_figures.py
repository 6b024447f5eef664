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
    assert names == {"refined", "two_run", "kernel_features", "one_shot_features"}   # the default first
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
    for name in FIGURES:
        assert f"![{name}]({name}.png)" in text and (out / f"{name}.png").is_file()
    assert "## Kernel theory verification" in text
    assert "checks passed" not in text and "passed**" in text and "| closed_form |" in text
    # The method table: every method, generation 0 and the last, mean ± sd over two seeds.
    assert "### digits (mlp)" in text
    for method in PRESET.methods:
        assert f"| {method} | 0 | 2 |" in text and f"| {method} | {PRESET.generations - 1} | 2 |" in text
    assert "| grid best (val. acc.) |" in text


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
