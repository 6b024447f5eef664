"""How noisy is the map's yardstick? A weight picked on one set of seeds, judged on another.

The map (:mod:`deepdistill.studies.weight_map`) judges an estimator on the seeds it picked its weight on:
within one grid sd of the grid's pick (must-show 1). Both sides of that comparison are noisy: the grid's
pick is itself the least mean validation Brier score over a few seeds, and one sd over three seeds is a
rough yardstick. :func:`cross_seed_check` measures how much of an estimator's shortfall is that noise.
Given maps of the SAME cells on DISJOINT seeds (the ``full``, ``fresh`` and ``replicate`` presets share
the 24 middle-size cells, on seeds 0-2, 3-5 and 6-8), it takes the weight each picker chose on one map's
seeds and asks whether, on another map's seeds, the students trained at that weight reach test accuracy
within one grid sd of that map's own grid pick: must-show 1's criterion, with the pick and the judgement
on independent seeds. The pickers are the 11-point grid search itself (12 runs per seed) and every
estimator whose mean weight is a point of the judging map's grid (``half_grid`` always is; ``two_run``'s
continuous weights are not and are counted as skipped).

If the grid search, judged on new seeds, is within in fewer cells than an estimator is on its own seeds,
then the estimator's misses are at the level of the yardstick's noise, not of the estimator.

One approximation, stated: a pick of 1 is judged by the judging map's grid student at ``gt_weight`` 1
(labels alone, generation 1), whereas ``half_grid``'s own accuracy at 1 is its teacher's (the labels end
point serves as that student); both are networks trained on the labels alone.
"""
from __future__ import annotations

import math
import statistics

__all__ = ["cross_seed_check", "format_cross_seed"]


def _judge(cell: dict, weight: float) -> bool | None:
    """Whether the students of ``cell``'s grid at ``weight`` reach, in mean test accuracy over the cell's
    seeds, its grid pick's mean less one sd; ``None`` when ``weight`` is not a point of its grid."""
    g = cell["grid"]
    rows = [i for i, w in enumerate(g["weights"]) if abs(float(w) - weight) < 1e-9]
    if not rows:
        return None
    acc = [float(a) for a in g["test_accuracy"][rows[0]] if a is not None]
    best = [float(a) for a in g["best_test_accuracy"] if a is not None]
    if not acc or not best:
        return None
    sd = statistics.stdev(best) if len(best) > 1 else 0.0
    return statistics.fmean(acc) >= statistics.fmean(best) - sd - 1e-12


def _picks(cell: dict) -> dict[str, float | None]:
    """The weight every picker of ``cell`` chose: the grid's, then each estimator's mean over seeds."""
    out = {"grid": float(cell["grid"]["best_weight"])}
    for name, e in cell["estimators"].items():
        w = e.get("gt_weight_mean")
        out[name] = None if w is None or (isinstance(w, float) and math.isnan(w)) else float(w)
    return out


def cross_seed_check(maps: dict[str, list[dict]]) -> dict:
    """Every picker's weight judged on independent seeds, for every ordered pair of ``maps``.

    ``maps``: ``{label: cells}``, each a list of cells as :func:`~deepdistill.studies.weight_map.run_weight_map`
    stores them (``read_weight_map(dir, preset)["cells"]``). Maps must not share a seed in a common cell
    (a ``ValueError`` names both). Returns ``{"pairs": [...], "total": {picker: {...}}}``: per ordered pair
    ``(picked on, judged on)`` and per picker, ``cells`` (common cells where the pick lies on the judging
    grid), ``within`` (of those, within one grid sd on the judging seeds), ``skipped`` (off-grid picks) and,
    for reference, ``own_within`` (the judging map's own pick of that picker on its own seeds: the map's
    must-show 1 on the same cells). ``total`` sums the pairs.
    """
    if not isinstance(maps, dict) or len(maps) < 2:
        raise ValueError(f"maps: expected a dict of at least two labelled lists of cells; got "
                         f"{type(maps).__name__} with {len(maps) if isinstance(maps, dict) else 0} entries.")
    by_slug = {label: {c["slug"]: c for c in cells} for label, cells in maps.items()}
    pairs, total = [], {}
    for a, cells_a in by_slug.items():
        for b, cells_b in by_slug.items():
            if a == b:
                continue
            common = sorted(set(cells_a) & set(cells_b))
            for slug in common:
                shared = set(cells_a[slug]["seeds"]) & set(cells_b[slug]["seeds"])
                if shared:
                    raise ValueError(f"maps: {a!r} and {b!r} share seed(s) {sorted(shared)} in cell {slug!r}; "
                                     "a pick must be judged on seeds it did not see.")
            row = {"picked_on": a, "judged_on": b, "common_cells": len(common), "pickers": {}}
            for slug in common:
                own_picks = _picks(cells_b[slug])
                for picker, w in _picks(cells_a[slug]).items():
                    r = row["pickers"].setdefault(picker, {"cells": 0, "within": 0, "skipped": 0,
                                                           "own_cells": 0, "own_within": 0})
                    verdict = None if w is None else _judge(cells_b[slug], w)
                    if verdict is None:
                        r["skipped"] += 1
                    else:
                        r["cells"] += 1
                        r["within"] += bool(verdict)
                    own = own_picks.get(picker)
                    own_verdict = None if own is None else _judge(cells_b[slug], own)
                    if own_verdict is not None:
                        r["own_cells"] += 1
                        r["own_within"] += bool(own_verdict)
            for picker, r in row["pickers"].items():
                t = total.setdefault(picker, {k: 0 for k in r})
                for k, v in r.items():
                    t[k] += v
            pairs.append(row)
    return {"pairs": pairs, "total": total}


def format_cross_seed(result: dict) -> str:
    """:func:`cross_seed_check`'s result as aligned text: per pair and in total, per picker, within / cells on
    the other seeds, beside the judging map's own pick on its own seeds."""
    lines = [f"{'picked on -> judged on':<28} {'picker':<16} {'within (other seeds)':>21} {'own seeds':>11} "
             f"{'skipped':>8}"]

    def frac(k, n):
        return f"{k}/{n} ({k / n:.0%})" if n else "-"

    for row in result["pairs"]:
        pair = f"{row['picked_on']} -> {row['judged_on']}"
        for picker, r in row["pickers"].items():
            lines.append(f"{pair:<28} {picker:<16} {frac(r['within'], r['cells']):>21} "
                         f"{frac(r['own_within'], r['own_cells']):>11} {r['skipped']:>8}")
    for picker, r in result["total"].items():
        lines.append(f"{'all pairs':<28} {picker:<16} {frac(r['within'], r['cells']):>21} "
                     f"{frac(r['own_within'], r['own_cells']):>11} {r['skipped']:>8}")
    return "\n".join(lines)
