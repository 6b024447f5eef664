"""A weight picked on one map's seeds, judged on another's (deepdistill.studies.weight_map_cross): counts by hand,
off-grid picks skipped, shared seeds refused, and the CLI reading two finished maps."""
import json

import pytest

from deepdistill.studies import weight_map as wm
from deepdistill.studies.weight_map_cross import cross_seed_check, format_cross_seed

WEIGHTS = [0.0, 0.5, 1.0]


def _cell(slug, seeds, accuracy, best_weight, est_weight):
    """A cell with a 3-point grid: ``accuracy[i]`` is the test accuracy per seed at ``WEIGHTS[i]``."""
    return {"slug": slug, "seeds": list(seeds),
            "grid": {"weights": WEIGHTS, "test_accuracy": [list(a) for a in accuracy], "best_weight": best_weight,
                     "best_test_accuracy": list(accuracy[WEIGHTS.index(best_weight)])},
            "estimators": {"est": {"gt_weight_mean": est_weight}}}


# Map a (seeds 0-2) and map b (seeds 3-5) over cells X and Y.
#   a/X: grid picks 0.5; est picks 0.0.      b/X: grid picks 0.5 (0.80 +- 0.01): 0.0 gives 0.70 (outside), 1.0 0.795.
#   a/Y: grid picks 1.0; est picks 0.3 (off the grid).  b/Y: grid picks 0.0 (0.60, sd 0.1): 1.0 gives 0.55 (within).
A = [_cell("X", (0, 1, 2), [(0.6, 0.6, 0.6), (0.9, 0.9, 0.9), (0.7, 0.7, 0.7)], 0.5, 0.0),
     _cell("Y", (0, 1, 2), [(0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (0.6, 0.6, 0.6)], 1.0, 0.3)]
B = [_cell("X", (3, 4, 5), [(0.70, 0.70, 0.70), (0.79, 0.80, 0.81), (0.795, 0.795, 0.795)], 0.5, 1.0),
     _cell("Y", (3, 4, 5), [(0.5, 0.6, 0.7), (0.5, 0.5, 0.5), (0.55, 0.55, 0.55)], 0.0, 0.0),
     _cell("Z", (3, 4, 5), [(0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)], 0.0, 0.0)]


def test_counts_by_hand():
    result = cross_seed_check({"a": A, "b": B})
    a_to_b, b_to_a = result["pairs"]
    assert (a_to_b["picked_on"], a_to_b["judged_on"], a_to_b["common_cells"]) == ("a", "b", 2)   # Z is b's alone
    # a's grid: 0.5 on b/X (its own pick: within), 1.0 on b/Y (0.55 >= 0.60 - 0.10: within)
    assert a_to_b["pickers"]["grid"] == {"cells": 2, "within": 2, "skipped": 0, "own_cells": 2, "own_within": 2}
    # a's est: 0.0 on b/X (0.70 < 0.80 - 0.01: outside); 0.3 on Y is off the grid: skipped.
    # b's own est: 1.0 on X (0.795 >= 0.79: within), 0.0 on Y (its own pick: within)
    assert a_to_b["pickers"]["est"] == {"cells": 1, "within": 0, "skipped": 1, "own_cells": 2, "own_within": 2}
    # b's grid on a: 0.5 on a/X (a's pick: within); 0.0 on a/Y (0.5 < 0.6 - 0: outside)
    assert b_to_a["pickers"]["grid"]["within"] == 1 and b_to_a["pickers"]["grid"]["cells"] == 2
    assert result["total"]["grid"] == {"cells": 4, "within": 3, "skipped": 0, "own_cells": 4, "own_within": 4}
    text = format_cross_seed(result)
    assert "a -> b" in text and "b -> a" in text and "3/4 (75%)" in text


def test_shared_seeds_and_too_few_maps_are_refused():
    overlapping = [dict(B[0], seeds=[2, 3, 4])]
    with pytest.raises(ValueError, match=r"maps: 'a' and 'b' share seed\(s\) \[2\] in cell 'X'"):
        cross_seed_check({"a": A, "b": overlapping})
    with pytest.raises(ValueError, match="maps: expected a dict of at least two"):
        cross_seed_check({"a": A})


def test_cli_reads_two_finished_maps(tmp_path, capsys, monkeypatch):
    # two "finished maps" written as run_weight_map stores them, under presets with disjoint seeds
    for name, cells in (("fresh", B), ("replicate", A)):
        preset = wm.get_preset(name)
        _, estimators = wm._estimators(preset)
        by_slug = {c["slug"]: c for c in wm.cell_list(preset)}
        slug = next(iter(by_slug))
        folder = tmp_path / name / "cells"
        folder.mkdir(parents=True)
        cell = dict(cells[0], slug=slug, seeds=list(preset.seeds), estimators={}, default_estimator="half_grid",
                    teacher_test_accuracy=[0.5, 0.5, 0.5], das_sanghavi=None)
        cell["grid"] = dict(cell["grid"], training_runs=[12, 12, 12])
        (folder / f"{slug}.json").write_text(json.dumps({"key": wm._cell_key(preset, by_slug[slug], estimators),
                                                         "cell": cell}))
    assert wm.main(["--cross", f"fresh={tmp_path / 'fresh'}", "--cross", f"replicate={tmp_path / 'replicate'}"]) == 0
    out = capsys.readouterr().out
    assert "fresh -> replicate" in out and "replicate -> fresh" in out
    with pytest.raises(SystemExit):
        wm.main(["--cross", f"nosuch={tmp_path}", "--cross", f"fresh={tmp_path / 'fresh'}"])
    assert "--cross: expected PRESET=DIR" in capsys.readouterr().err


def test_the_four_presets_hold_the_same_cells_on_disjoint_seeds():
    names = ("full", "fresh", "replicate", "holdout")
    slugs = {n: {c["slug"] for c in wm.cell_list(n)} for n in names}
    assert slugs["fresh"] == slugs["replicate"] == slugs["holdout"] and slugs["fresh"] <= slugs["full"]
    assert len(slugs["fresh"]) == 24
    seeds = [set(wm.get_preset(n).seeds) for n in names]
    assert all(not (a & b) for i, a in enumerate(seeds) for b in seeds[i + 1:])
