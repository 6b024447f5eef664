"""The ``pooled`` weight estimator: one weight for every seed, the vertex of the parabola through the
validation criterion pooled over the seeds, checked by hand and against the exact affine optimum."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepdistill import estimate_gt_weight, estimate_gt_weight_for_model
from deepdistill.studies.weight_estimation import POOLED_STEP, POOLED_WEIGHTS
from deepdistill.studies.weight_results import summary_rows
from tests.test_weight_trust import K, N, Table

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, method="sd_kd",
            label_noise=0.2, epochs=2, n_train=300, batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0)


def _vertex_by_hand(means):
    a, b, _ = np.polyfit(POOLED_WEIGHTS, means, 2)       # exact through three points
    return -b / (2 * a) if a > 0 else POOLED_WEIGHTS[int(np.argmin(means))]


def test_two_seeds_get_one_weight_the_vertex_of_their_pooled_criterion(tmp_path):
    study = estimate_gt_weight(TINY, tmp_path, seeds=(0, 1), grid=None, estimators=("pooled", "two_run"))
    entries = [s.estimators["pooled"] for s in study.per_seed]
    # By hand: each seed's validation criterion of its students at 0 and 0.5 and of its teacher (the labels
    # end point of sd_kd), averaged over the seeds (the same number of validation examples in each).
    per_seed = []
    for s in study.per_seed:
        by_weight = {}
        for key in s.estimators["pooled"].details["run_keys"]:
            run = s.runs[key]
            by_weight.setdefault(float(run["gt_weight"]), run["val_criterion"])
        per_seed.append([by_weight[w] for w in POOLED_WEIGHTS])
    means = np.mean(per_seed, axis=0)
    np.testing.assert_allclose(entries[0].details["parabola_values"], means, rtol=1e-9)
    vertex = float(np.clip(_vertex_by_hand(means), 0.0, 1.0))
    assert entries[0].details["vertex_before_rounding"] == pytest.approx(vertex, abs=1e-9)
    expected = round(round(vertex / POOLED_STEP) * POOLED_STEP, 6)
    assert all(e.gt_weight == pytest.approx(expected, abs=1e-12) for e in entries)       # one weight, every seed
    assert all(e.interval == entries[0].interval for e in entries)
    # at most the teacher, two students and the student at the estimate (the teacher serves for 1)
    assert all(e.training_runs <= 4 for e in entries)
    if study.chosen == "pooled":
        assert study.gt_weight == pytest.approx(expected)
    # The summary row states the pooled interval (one for all seeds), not a spread over equal weights.
    row = next(r for r in summary_rows([s.to_dict() for s in study.per_seed]) if r["approach"] == "pooled")
    assert [row["interval_low"], row["interval_high"]] == pytest.approx(entries[0].interval)
    assert "pooled over 2 seed(s)" in row["interval_kind"]


def test_exactly_affine_outputs_give_the_affine_optimum_rounded_to_the_step():
    # Regression outputs (1 - w) A + w B against targets 0.3 A + 0.7 B + noise: the criterion is a parabola
    # in w, so the pooled vertex IS the two-run affine optimum; the estimate is it to the nearest 0.1.
    rng = np.random.default_rng(5)
    A, B = rng.normal(size=(N, K)), rng.normal(size=(N, K))
    target = 0.3 * A + 0.7 * B + 0.5 * rng.normal(size=(N, K))

    def train_fn(gt_weight, teacher):
        w = 1.0 if gt_weight is None else float(gt_weight)
        return Table((1 - w) * A + w * B).eval()

    val = DataLoader(TensorDataset(torch.eye(N), torch.as_tensor(target)), batch_size=64)
    res = estimate_gt_weight_for_model(train_fn, val, estimators=("two_run", "pooled"), criterion="mse")
    two, pooled = res.estimators["two_run"], res.estimators["pooled"]
    assert pooled.unconstrained == pytest.approx(two.unconstrained, rel=1e-5)            # float32 outputs
    assert 0.5 < two.unconstrained < 1.0
    assert pooled.gt_weight == pytest.approx(round(two.unconstrained, 1), abs=1e-12)
    assert abs(pooled.gt_weight - two.unconstrained) <= POOLED_STEP / 2 + 1e-9
    assert pooled.interval[0] <= pooled.unconstrained <= pooled.interval[1]
    # teacher, students at 0 and 0.5, and the student at the estimate; its prediction holds (exact parabola)
    assert pooled.training_runs == 4 and pooled.details["check"] == "holds" and pooled.ok
    assert pooled.predicted_val_criterion == pytest.approx(pooled.achieved_val_criterion, rel=1e-5)


# ------------------------------------------------------------------------------------------------
# half_grid: the grid at every other point, picked on the validation criterion pooled over seeds
# ------------------------------------------------------------------------------------------------

def test_grid_argmin_by_hand_and_its_bootstrap_interval():
    from deepdistill.studies.weight_estimators import grid_argmin_weight

    rng = np.random.default_rng(0)
    weights = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    # a clear minimum at 0.6: every example prefers it, the interval is that point alone
    clear = np.abs(np.subtract.outer(weights, 0.6))[:, None] + 0.01 * rng.random((6, 300))
    est = grid_argmin_weight(weights, clear, seed=1)
    assert est.gt_weight == 0.6 and est.interval == (0.6, 0.6)
    assert est.values == pytest.approx(tuple(clear.mean(axis=1))) and est.criterion_at_estimate == min(est.values)
    # pure noise: the pick wanders over the bootstrap and the interval spans most of the range
    noise = rng.normal(size=(6, 300))
    est = grid_argmin_weight(weights, noise, seed=1)
    assert est.gt_weight == weights[int(np.argmin(noise.mean(axis=1)))]
    assert est.interval[0] <= est.gt_weight <= est.interval[1] and est.interval[1] - est.interval[0] >= 0.4
    with pytest.raises(ValueError, match="per_example"):
        grid_argmin_weight(weights, noise[:5])


def test_two_level_bootstrap_draws_whole_seeds_then_their_examples():
    from deepdistill.studies.weight_pooled import two_level_counts

    groups = np.repeat([7, 3, 5], [4, 6, 5])                  # three seeds of 4, 6 and 5 validation examples
    counts = two_level_counts(groups, 500, 0)
    assert counts.shape == (500, 15) and np.all(counts >= 0) and np.all(counts == np.round(counts))
    sizes = {g: int((groups == g).sum()) for g in (7, 3, 5)}
    # per draw and seed, the examples drawn are that seed's size times how often the seed was drawn; three in all
    times = np.stack([counts[:, groups == g].sum(axis=1) / sizes[g] for g in (7, 3, 5)], axis=1)
    assert np.all(times == np.round(times)) and np.all(times.sum(axis=1) == 3)
    assert np.all(times.max(axis=1) <= 3) and (times == 3).any() and (times == 0).any()   # a seed can be missed
    # one group: an ordinary bootstrap of the examples (each draw n examples)
    assert np.all(two_level_counts(np.zeros(9), 50, 1).sum(axis=1) == 9)


def test_seeds_that_disagree_widen_the_two_level_interval_not_the_examples_one():
    from deepdistill.studies.weight_estimators import grid_argmin_weight
    from deepdistill.studies.weight_pooled import seed_bootstrap_argmin_interval, two_level_counts

    rng = np.random.default_rng(0)
    weights = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # three seeds, each with a clear minimum of its own (0.2, 0.4 and 0.8): within a seed every example agrees
    per_seed = [np.abs(np.subtract.outer(weights, m))[:, None] * s + 0.01 * rng.random((6, 200))
                for m, s in ((0.2, 1.0), (0.4, 0.9), (0.8, 1.1))]
    C, groups = np.concatenate(per_seed, axis=1), np.repeat([0, 1, 2], 200)
    pooled = grid_argmin_weight(weights, C, seed=0)
    assert pooled.interval[1] - pooled.interval[0] <= 0.2                # the examples alone: the seeds held fixed
    lo, hi = seed_bootstrap_argmin_interval(weights, C, groups, seed=0)
    assert lo <= 0.2 and hi >= 0.8                                      # a draw of one seed thrice picks its own
    # against an explicit loop over the same draws (one chunk at this size)
    counts = two_level_counts(groups, 2000, np.random.default_rng(0))
    draws = [weights[np.argmin([(row * c).sum() / row.sum() for c in C])] for row in counts]
    assert (lo, hi) == tuple(np.percentile(draws, [5.0, 95.0]))
    # one seed: the same kind of interval as the examples' bootstrap (a clear pick: that point alone)
    assert seed_bootstrap_argmin_interval(weights, per_seed[0], np.zeros(200), seed=0) == (0.2, 0.2)


def test_half_grid_picks_the_pooled_argmin_from_its_own_students(tmp_path):
    from deepdistill.studies.weight_estimation import HALF_GRID_WEIGHTS

    study = estimate_gt_weight(TINY, tmp_path, seeds=(0, 1), grid=None, estimators=("half_grid",))
    entries = [s.estimators["half_grid"] for s in study.per_seed]
    per_seed = []
    for s in study.per_seed:
        by_weight = {}
        for key in s.estimators["half_grid"].details["run_keys"]:
            by_weight.setdefault(float(s.runs[key]["gt_weight"]), s.runs[key]["val_criterion"])
        per_seed.append([by_weight[w] for w in HALF_GRID_WEIGHTS])
    means = np.mean(per_seed, axis=0)                        # the same number of validation examples per seed
    pick = HALF_GRID_WEIGHTS[int(np.argmin(means))]
    assert all(e.gt_weight == pick for e in entries) and study.gt_weight == pytest.approx(pick)
    np.testing.assert_allclose(entries[0].details["grid_values"], means, rtol=1e-9)
    # the teacher and five students, the pick one of them: no run at the estimate, nothing to check against
    assert all(e.training_runs == 6 for e in entries)
    assert all(e.details["check"].startswith("none: the student at the estimate is one of") for e in entries)
    assert entries[0].interval[0] <= pick <= entries[0].interval[1]
    # with two seeds the interval is the two-level one (seeds, then examples), and at least as wide here as the
    # examples' bootstrap alone, which is kept beside it
    assert "two-level bootstrap" in entries[0].interval_kind and "2 seeds" in entries[0].interval_kind
    ex = entries[0].details["interval_examples"]
    assert entries[0].interval[1] - entries[0].interval[0] >= ex[1] - ex[0] - 1e-12


def test_a_point_that_does_not_train_fails_the_pooled_estimators_in_words_and_not_the_others():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(N, K)), rng.normal(size=(N, K))
    target = 0.4 * A + 0.6 * B + 0.5 * rng.normal(size=(N, K))

    def train_fn(gt_weight, teacher):
        w = 1.0 if gt_weight is None else float(gt_weight)
        out = (1 - w) * A + w * B
        return Table(np.full_like(out, np.nan) if abs(w - 0.4) < 1e-9 else out).eval()

    val = DataLoader(TensorDataset(torch.eye(N), torch.as_tensor(target)), batch_size=64)
    res = estimate_gt_weight_for_model(train_fn, val, estimators=("half_grid", "pooled", "two_run"), criterion="mse")
    half = res.estimators["half_grid"]
    assert not half.has_weight and "gt_weight 0.4" in half.status
    assert res.estimators["pooled"].has_weight                  # 0, 0.5 and 1 trained
    assert res.chosen == "pooled"                               # the first estimator asked for that has a weight
