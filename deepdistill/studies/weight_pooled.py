"""The estimators that pool the seeds: one weight for a configuration, from the validation criterion of
every seed's students at a few fixed weights, averaged over all the seeds' validation examples.

* ``half_grid`` (the default of :mod:`deepdistill.studies.weight_estimation`): the weight of least pooled
  criterion among students at 0, 0.2, ..., 0.8 and the labels end point at 1 (:func:`half_grid_seeds`).
* ``pooled``: the vertex of the parabola through the pooled criterion at 0, 0.5 and 1 (:func:`pool_seeds`).

Each writes its entry into every seed's ``approaches`` (the study's per-seed dicts) and the per-example
prediction its student is checked against; the study (:func:`~deepdistill.studies.weight_estimation.estimate_gt_weight`)
calls them once per seed while it estimates, then once over every seed before it trains the students at
the estimates. Reference: [BA21] Borup & Andersen, NeurIPS 2021 (the affine outputs that make the
criterion a parabola in the weight).
"""
from __future__ import annotations

import time

import numpy as np

from deepdistill.studies.weight_estimators import (INTERVAL_LEVEL, _percentiles, clip_interval, clip_reason,
                                                   grid_argmin_weight, interval_kind, parabola_optimal_weight)
from deepdistill.studies.weight_results import STATUS_OK, failed_entry as _failed

#: The ``pooled`` estimator's three weights (the labels end point serves for 1 when it may) and the step its
#: vertex is rounded to: the default grid's, finer than the map's intervals can tell apart, and so the
#: students at the estimate are runs a grid of that step shares.
POOLED_WEIGHTS = (0.0, 0.5, 1.0)
POOLED_STEP = 0.1
#: The ``half_grid`` estimator's weights: every other point of :data:`DEFAULT_GRID`, the labels end point at 1
#: (the teacher when it may serve): 6 runs per seed with the teacher, half the 11-point grid's 12.
HALF_GRID_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def two_level_counts(groups, n_boot: int, seed) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of a two-level bootstrap of ``n`` examples in ``groups`` (one label per
    example): in each draw the groups are drawn with replacement (as many as there are), then every drawn
    group's examples with replacement. Each draw's row sums to the sizes of the groups it drew. Reference:
    Davison & Hinkley, *Bootstrap Methods and their Application* (1997), section 3.8, hierarchical data
    (their second strategy: both stages with replacement, slightly wider than the first with few groups).
    ``seed``: an int or a ``numpy.random.Generator`` (drawn from in place)."""
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(int(inverse.max()) + 1)]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(members), size=(int(n_boot), len(members)))
    counts = np.zeros((int(n_boot), inverse.size))
    for slot in range(len(members)):
        for g, cols in enumerate(members):
            rows = np.flatnonzero(drawn[:, slot] == g)
            if rows.size:
                np.add.at(counts, (rows[:, None], cols[rng.integers(0, cols.size, size=(rows.size, cols.size))]), 1.0)
    return counts


def seed_bootstrap_argmin_interval(weights, per_example, groups, *, level: float = INTERVAL_LEVEL,
                                   n_boot: int = 2000, seed: int = 0) -> tuple:
    """The percentile interval of the grid argmin (the weight of least mean criterion) under the two-level
    bootstrap of :func:`two_level_counts`: seeds, then each drawn seed's validation examples.

    Why not the examples alone: pooled over seeds, a bootstrap of the examples holds every seed's trained
    students fixed, so it misses the training noise between seeds (on the weight map the per-seed picks
    differ more than one seed's validation set explains). With one group this is the examples' bootstrap."""
    w = np.asarray(weights, dtype=np.float64)
    C = np.asarray(per_example, dtype=np.float64)
    rng, chunk = np.random.default_rng(seed), max(1, 2_000_000 // max(C.shape[1], 1))   # ~16 MB of counts at once
    draws = []
    for start in range(0, int(n_boot), chunk):
        counts = two_level_counts(groups, min(chunk, int(n_boot) - start), rng)
        means = (counts @ C.T) / counts.sum(axis=1, keepdims=True)      # (draws, len(weights))
        draws.append(w[np.argmin(means, axis=1)])
    return _percentiles(np.concatenate(draws), level)


def points_of_every_seed(estimated: list, use_teacher: bool, weights, name: str):
    """``(points, pooled, seeds)``: every seed's ``(keys, runs used, per-example criterion)`` at ``weights``
    (:meth:`_SeedStudy.pooled_points`), their criteria side by side (``(len(weights), all examples)``) and the
    seeds; or ``None`` after marking ``approaches[name]`` failed in every seed when a point of any seed did
    not train."""
    points = [st.pooled_points(use_teacher, weights) for st, _ in estimated]
    failed = next((p[3] for p in points if p[3] is not None), None)
    if failed is None:
        return ([p[:3] for p in points], np.concatenate([p[2] for p in points], axis=1),
                [st.seed for st, _ in estimated])
    for (st, approaches), (_, used, _, own) in zip(estimated, points):
        approaches[name] = own if own is not None else _failed(f"another seed's point failed: {failed['status']}", used)
    return None


def pool_seeds(estimated: list, use_teacher: bool, bounds) -> None:
    """The ``pooled`` estimate over every seed of ``estimated`` (``[(study, approaches), ...]``), written into
    each seed's ``approaches["pooled"]``: one weight for all seeds.

    The validation criterion of the three students of :data:`POOLED_WEIGHTS`, per example, is pooled over
    the seeds (each seed's validation examples side by side), and the vertex of the parabola through the
    three pooled means (:func:`parabola_optimal_weight`, exact when the outputs are affine in the weight,
    [BA21]) is rounded to :data:`POOLED_STEP` and clipped to ``bounds``. Where the parabola opens downward,
    the best of the three points. Why pool: the per-seed estimates of ``two_run`` jump between 0 and 1 on
    one seed's validation set, while the weight a researcher wants is that of the configuration, not of a
    seed; three seeds give three times the validation examples. Its interval is a percentile bootstrap of
    the vertex over all the pooled examples. The prediction checked against each seed's student is that
    seed's own parabola (the same weights, its own three points) at the pooled weight.
    """
    found = points_of_every_seed(estimated, use_teacher, POOLED_WEIGHTS, "pooled")
    if found is None:
        return
    started, cpu = time.perf_counter(), time.process_time()
    points, pooled, seeds = found
    par = parabola_optimal_weight(POOLED_WEIGHTS, pooled, bounds=bounds, seed=seeds[0] or 0)
    w = float(np.round(np.round(par.gt_weight / POOLED_STEP) * POOLED_STEP, 6))
    if bounds is not None:
        w = float(np.clip(w, *bounds))
    basis = np.linalg.solve(np.vander(np.asarray(POOLED_WEIGHTS), 3).T, np.vander([w], 3)[0])
    kind = (interval_kind(pooled.shape[1]).replace("examples", f"examples pooled over {len(seeds)} seed(s)")
            + f" (of the parabola's vertex; {par.interval_draws} draws convex)")
    reason = (clip_reason(par.unconstrained, bounds, "the pooled parabola") if not par.concave else
              f"the pooled criterion at gt_weight {list(POOLED_WEIGHTS)} is "
              f"{np.round(pooled.mean(axis=1), 4).tolist()}: not convex through the three points, so the best "
              "measured point is used")
    overhead, overhead_cpu = time.perf_counter() - started, time.process_time() - cpu
    for (st, approaches), (keys, used, per_ex) in zip(estimated, points):
        approaches["pooled"] = {
            "gt_weight": w, "unconstrained": par.unconstrained, "status": STATUS_OK,
            "interval": clip_interval(par.interval, bounds), "interval_unconstrained": list(par.interval),
            "interval_kind": kind, "clip_reason": reason, "pooled_seeds": seeds,
            "parabola_weights": list(POOLED_WEIGHTS), "parabola_values": pooled.mean(axis=1).tolist(),
            "seed_parabola_values": per_ex.mean(axis=1).tolist(), "curvature": par.curvature,
            "concave": bool(par.concave), "vertex_before_rounding": par.gt_weight,
            "predicted_val_criterion": float(basis @ per_ex.mean(axis=1)),
            "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
            # the pooling's own cost, split over the seeds (each seed's entry counts its share once)
            "overhead_s": overhead / len(estimated), "overhead_cpu_s": overhead_cpu / len(estimated),
            "run_keys": list(used)}
        st.predictions["pooled"] = (w, basis @ per_ex, keys)


def half_grid_seeds(estimated: list, use_teacher: bool) -> None:
    """The ``half_grid`` estimate over every seed of ``estimated``, written into each seed's
    ``approaches["half_grid"]``: the weight of :data:`HALF_GRID_WEIGHTS` whose students' validation criterion,
    per example pooled over the seeds, is least (:func:`grid_argmin_weight`), one for every seed. The grid
    search of the map and of ``estimate-weight --grid`` picks the same way (mean over seeds), on twice the points.
    Its interval, with several seeds, is the two-level bootstrap of :func:`seed_bootstrap_argmin_interval`
    (seeds, then examples); with one seed, the examples' bootstrap. The examples' bootstrap is also kept with
    several seeds (``interval_examples``), to compare.
    """
    found = points_of_every_seed(estimated, use_teacher, HALF_GRID_WEIGHTS, "half_grid")
    if found is None:
        return
    started, cpu = time.perf_counter(), time.process_time()
    points, pooled, seeds = found
    est = grid_argmin_weight(HALF_GRID_WEIGHTS, pooled, seed=seeds[0] or 0)
    interval, kind = list(est.interval), interval_kind(pooled.shape[1]) + " (of the pick; one seed)"
    if len(seeds) > 1:
        # across seeds where there are several (issue: "a bootstrap ..., and across seeds where there are several")
        groups = np.concatenate([np.full(p[2].shape[1], i) for i, p in enumerate(points)])
        interval = list(seed_bootstrap_argmin_interval(HALF_GRID_WEIGHTS, pooled, groups, seed=seeds[0] or 0))
        kind = (f"{int(round(100 * INTERVAL_LEVEL))}% two-level bootstrap of the pick: the {len(seeds)} seeds with "
                f"replacement, then each drawn seed's validation examples ({pooled.shape[1]} in all)")
    pick = HALF_GRID_WEIGHTS.index(est.gt_weight)
    overhead, overhead_cpu = time.perf_counter() - started, time.process_time() - cpu
    for (st, approaches), (keys, used, per_ex) in zip(estimated, points):
        approaches["half_grid"] = {
            "gt_weight": est.gt_weight, "unconstrained": est.gt_weight, "status": STATUS_OK,
            "interval": interval, "interval_unconstrained": interval, "interval_kind": kind,
            # the examples' bootstrap alone (the seeds' students held fixed): kept to compare (docs/weight_map.md s.9)
            "interval_examples": list(est.interval),
            "clip_reason": None, "pooled_seeds": seeds, "grid_weights": list(HALF_GRID_WEIGHTS),
            "grid_values": list(est.values), "seed_grid_values": per_ex.mean(axis=1).tolist(),
            "predicted_val_criterion": float(per_ex[pick].mean()),
            "alpha1_endpoint": "teacher (generation 0)" if use_teacher else "student at gt_weight 1",
            "overhead_s": overhead / len(estimated), "overhead_cpu_s": overhead_cpu / len(estimated),
            "run_keys": list(used)}
        # the student at the pick is one of the grid's own: nothing to check it against
        st.predictions["half_grid"] = (est.gt_weight, per_ex[pick], keys)
