"""deepdistill.core.metrics: vectorised metrics vs plain Python loops, hand values, torchmetrics, geometry."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdistill.core import metrics as M
def random_probs(n, k, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, k))
    return M.softmax(logits), rng.integers(0, k, size=n)


# ---- plain-loop references (deliberately naive: one example at a time) ------------------------------

def loop_accuracy(p, y):
    hits = 0
    for row, label in zip(p, y):
        best = max(range(len(row)), key=lambda k: (row[k], -k))  # first index of the maximum
        hits += best == label
    return hits / len(y)


def loop_reliability(p, y, n_bins):
    edges = [b / n_bins for b in range(n_bins + 1)]
    members = [[] for _ in range(n_bins)]
    for row, label in zip(p, y):
        conf = max(row)
        pred = list(row).index(conf)
        for b in range(n_bins):
            lo, hi = edges[b], edges[b + 1]
            if (lo < conf <= hi) or (b == 0 and conf == 0.0):
                members[b].append((conf, float(pred == label)))
                break
    return members


def loop_ece(p, y, n_bins):
    total = 0.0
    for members in loop_reliability(p, y, n_bins):
        if members:
            conf = sum(c for c, _ in members) / len(members)
            acc = sum(a for _, a in members) / len(members)
            total += len(members) / len(y) * abs(acc - conf)
    return total


def loop_stability(p, y):
    classes = sorted(set(int(c) for c in y))
    scatter = []
    for c in classes:
        rows = [p[i] for i in range(len(y)) if y[i] == c]
        mean = [sum(r[k] for r in rows) / len(rows) for k in range(p.shape[1])]
        scatter.append(sum(sum((r[k] - mean[k]) ** 2 for k in range(p.shape[1])) for r in rows) / len(rows))
    return 1.0 - sum(scatter) / len(classes)


# ---- loops vs vectorised ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_scores_match_loops(seed):
    p, y = random_probs(300, 7, seed)
    n = len(y)
    assert M.accuracy(p, y) == pytest.approx(loop_accuracy(p, y), abs=0)
    assert M.nll(p, y) == pytest.approx(-sum(math.log(p[i, y[i]]) for i in range(n)) / n, rel=1e-12)
    brier = sum(sum((p[i, k] - (k == y[i])) ** 2 for k in range(7)) for i in range(n)) / n
    assert M.brier_score(p, y) == pytest.approx(brier, rel=1e-12)
    ent = sum(-sum(v * math.log(v) for v in row if v > 0) for row in p) / n
    assert M.mean_entropy(p) == pytest.approx(ent, rel=1e-12)
    assert M.stability(p, y) == pytest.approx(loop_stability(p, y), rel=1e-12)
    # A class with no example is left out of the class average (K = classes present).
    y_missing = np.where(y == 6, 5, y)
    assert M.stability(p, y_missing) == pytest.approx(loop_stability(p, y_missing), rel=1e-12)
    true_conf = [p[i, y[i]] for i in range(n)]
    mean = sum(true_conf) / n
    assert M.confidence_diversity(p, y) == pytest.approx(sum((c - mean) ** 2 for c in true_conf) / n, rel=1e-12)
    gamma = sum(sum(p[i, k] for k in range(7) if k != y[i]) for i in range(n)) / n * 7 / 6
    assert M.equivalent_smoothing(p, y) == pytest.approx(gamma, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(2, 6), n_bins=st.integers(1, 25), seed=st.integers(0, 10_000),
       scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_ece_and_table_match_loop(n, k, n_bins, seed, scale):
    p, y = random_probs(n, k, seed, scale)
    assert M.ece(p, y, n_bins=n_bins) == pytest.approx(loop_ece(p, y, n_bins), rel=1e-12, abs=1e-15)
    table = M.reliability_table(p, y, n_bins=n_bins)
    counts = [len(m) for m in loop_reliability(p, y, n_bins)]
    np.testing.assert_array_equal(table["count"], counts)
    np.testing.assert_allclose(table["upper"] - table["lower"], 1.0 / n_bins, rtol=1e-12, atol=0)


def test_bin_edge_convention_is_right_closed():
    # Two classes, tie at 0.5: confidence exactly on the interior edge of 2 bins goes to the lower bin
    # (lo, hi]; confidence exactly 1 goes to the last bin.
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    y = np.array([1, 0, 0])
    table = M.reliability_table(p, y, n_bins=2)
    np.testing.assert_array_equal(table["count"], [1, 2])
    np.testing.assert_allclose(table["confidence"], [0.5, 0.875], rtol=1e-15, atol=0)
    np.testing.assert_allclose(table["accuracy"], [0.0, 1.0], rtol=0, atol=0)
    # ECE = 1/3 * 0.5 + 2/3 * 0.125
    assert M.ece(p, y, n_bins=2) == pytest.approx(1 / 3 * 0.5 + 2 / 3 * 0.125, rel=1e-14)


@pytest.mark.parametrize("n_bins", [15, 20, 7])
def test_ece_matches_torchmetrics(n_bins):
    from torchmetrics.functional.classification import multiclass_calibration_error

    p, y = random_probs(2000, 10, seed=n_bins)
    ours = M.ece(p, y, n_bins=n_bins)
    # torchmetrics computes in float32 and puts confidence == 1 in an extra bin; random softmax rows
    # never hit an edge exactly, so the definitions coincide here up to float32 round-off.
    theirs = multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=10, n_bins=n_bins, norm="l1")
    assert ours == pytest.approx(float(theirs), rel=1e-5, abs=1e-6)


def test_ece_presets_and_equal_mass():
    p, y = random_probs(1000, 5, seed=3)
    assert M.ece(p, y, n_bins="zhang_sabuncu") == M.ece(p, y, n_bins=20)
    assert M.ece(p, y, n_bins="muller") == M.ece(p, y, n_bins=15)
    table = M.reliability_table(p, y, n_bins=7, binning="equal_mass")
    assert table["count"].sum() == 1000 and table["count"].max() - table["count"].min() <= 1
    # Equal-mass ECE vs a loop over the sorted confidences cut into runs of equal size.
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    order = sorted(range(1000), key=lambda i: conf[i])
    expected = 0.0
    for chunk in np.array_split(order, 7):
        expected += len(chunk) / 1000 * abs(np.mean(correct[chunk]) - np.mean(conf[chunk]))
    assert M.ece(p, y, n_bins=7, binning="equal_mass") == pytest.approx(expected, rel=1e-12)
    # Edges partition [0, 1] and each bin's confidences lie inside its edges.
    assert table["lower"][0] == 0.0 and table["upper"][-1] == 1.0
    np.testing.assert_array_equal(table["lower"][1:], table["upper"][:-1])
    assert np.all(table["lower"] <= table["confidence"]) and np.all(table["confidence"] <= table["upper"])


def test_ece_detects_miscalibration():
    # Labels drawn from the predictions themselves: calibrated by construction, so the ECE is only
    # sampling noise; sharpening the same predictions (T = 0.5) makes them over-confident.
    rng = np.random.default_rng(7)
    logits = 2.0 * rng.standard_normal((20_000, 5))
    p = M.softmax(logits)
    y = (rng.random(20_000)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(max=4)
    assert M.ece(p, y) < 0.02
    sharp = M.reliability_table(M.softmax(logits, temperature=0.5), y)
    assert M.ece(M.softmax(logits, temperature=0.5), y) > 0.1
    filled = sharp["count"] > 500
    assert np.all(sharp["gap"][filled & (sharp["lower"] >= 0.5)] < 0)  # over-confident where it is confident


# ---- hand values and limits ---------------------------------------------------------------------------

def test_hand_values():
    K = 4
    uniform = np.full((3, K), 1 / K)
    y = np.array([0, 1, 3])
    assert M.mean_entropy(uniform) == pytest.approx(math.log(K), rel=1e-14)
    assert M.brier_score(uniform, y) == pytest.approx(1 - 1 / K, rel=1e-14)
    assert M.nll(uniform, y) == pytest.approx(math.log(K), rel=1e-14)
    wrong = np.eye(K)[[1, 2, 0]]  # confident and wrong
    assert M.brier_score(wrong, y) == pytest.approx(2.0, rel=1e-14)
    assert M.nll(wrong, y, eps=1e-8) == pytest.approx(-math.log(1e-8), rel=1e-12)  # clipped, finite
    assert M.mean_entropy(wrong) == 0.0
    assert M.accuracy(wrong, y) == 0.0 and M.accuracy(np.eye(K)[y], y) == 1.0
    assert M.ece(wrong, y) == pytest.approx(1.0, rel=1e-14)
    assert M.stability(np.eye(K)[y], y) == 1.0  # every class gets one identical distribution
    # Diversity: true-class confidences 0.25, 0.25, 0 -> variance; histogram entropy over 2 bins.
    assert M.confidence_diversity(uniform, y) == 0.0
    mixed = np.vstack([uniform[:2], wrong[2:]])
    c = np.array([0.25, 0.25, 0.0])
    assert M.confidence_diversity(mixed, y) == pytest.approx(np.var(c), rel=1e-14)
    assert M.confidence_diversity(mixed, y, estimator="entropy", n_bins=2) == 0.0  # all in [0, 0.5)
    assert M.confidence_diversity(mixed, y, estimator="entropy", n_bins=8) == pytest.approx(
        -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)), rel=1e-14)
    assert M.confidence_diversity(wrong, which="max") == 0.0  # every top-label confidence is 1


@pytest.mark.parametrize("eps_m", [0.0, 0.1, 0.3])
def test_equivalent_smoothing_recovers_label_smoothing(eps_m):
    K = 10
    y = np.arange(50) % K
    muller = np.full((50, K), eps_m / K)
    muller[np.arange(50), y] = 1 - eps_m + eps_m / K
    assert M.equivalent_smoothing(muller, y) == pytest.approx(eps_m, rel=1e-12, abs=1e-15)
    # The same vector in the Shen convention has eps_s = eps_m (K-1)/K on the off classes in total.
    eps_s = eps_m * (K - 1) / K
    shen = np.full((50, K), eps_s / (K - 1))
    shen[np.arange(50), y] = 1 - eps_s
    np.testing.assert_allclose(shen, muller, rtol=1e-12, atol=1e-15)
    # Reported in Mueller's convention whatever convention made the targets.
    assert M.equivalent_smoothing(shen, y) == pytest.approx(eps_m, rel=1e-12, abs=1e-15)


def test_softmax_matches_torch_and_temperature():
    z = np.random.default_rng(0).standard_normal((5, 6)) * 30
    for t in (0.5, 1.0, 4.0):
        np.testing.assert_allclose(M.softmax(z, temperature=t), torch.softmax(torch.tensor(z) / t, dim=-1).numpy(),
                                   rtol=1e-12, atol=1e-300)
    big = M.softmax(np.array([[1000.0, 0.0]]))  # no overflow
    np.testing.assert_allclose(big, [[1.0, 0.0]], rtol=0, atol=1e-300)
    with pytest.raises(ValueError, match="temperature"):
        M.softmax(z, temperature=0.0)


def test_softmax_accepts_numpy_scalar_temperatures_and_rejects_non_numbers():
    z = np.random.default_rng(1).standard_normal((4, 3))
    for t in (np.float32(2.0), np.float64(2.0), np.int64(2)):
        np.testing.assert_allclose(M.softmax(z, temperature=t), M.softmax(z, temperature=2.0), rtol=1e-12, atol=0)
    for bad in (True, np.bool_(True), "2", np.float32(-1.0), float("nan"), None):
        with pytest.raises(ValueError, match="temperature"):
            M.softmax(z, temperature=bad)


def test_summarize_equals_individual_metrics():
    p, y = random_probs(500, 6, seed=5)
    s = M.summarize(p, y, n_bins=20)
    assert s == {
        "accuracy": M.accuracy(p, y),
        "nll": M.nll(p, y),
        "ece": M.ece(p, y, n_bins=20),
        "brier": M.brier_score(p, y),
        "entropy": M.mean_entropy(p),
        "diversity": M.confidence_diversity(p, y, which="true", estimator="variance"),
    }
    assert all(type(v) is float for v in s.values())


def test_torch_inputs_give_numpy_results():
    p, y = random_probs(200, 5, seed=9)
    pt32, yt = torch.tensor(p, dtype=torch.float32), torch.tensor(y)
    ref = M.summarize(p, y)
    got = M.summarize(pt32, yt)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key
    assert M.stability(pt32, yt) == pytest.approx(M.stability(p, y), rel=1e-5)
    # bfloat16 rows sum to 1 only to ~1e-2; they are accepted.
    assert 0 <= M.ece(pt32.to(torch.bfloat16), yt) <= 1


# ---- validation ---------------------------------------------------------------------------------------

def test_bad_inputs_name_the_argument():
    p, y = random_probs(10, 3, seed=0)
    logits = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"`probs`.*not logits"):
        M.ece(logits, y)
    with pytest.raises(ValueError, match=r"`probs` rows must sum to 1"):
        M.accuracy(p * 0.9, y)
    with pytest.raises(ValueError, match=r"`probs` must be a 2-D"):
        M.nll(p[0], y)
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 3\)"):
        M.nll(p, y + 3)
    with pytest.raises(TypeError, match=r"`labels` must hold integer"):
        M.nll(p, y.astype(float))
    with pytest.raises(ValueError, match=r"one label per example \(10\); got 9"):
        M.brier_score(p, y[:9])
    with pytest.raises(ValueError, match="`probs` must be finite"):
        M.mean_entropy(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="`binning`"):
        M.ece(p, y, binning="quantile")
    with pytest.raises(ValueError, match="preset"):
        M.ece(p, y, n_bins="guo")
    with pytest.raises(ValueError, match="equal-mass binning needs"):
        M.ece(p, y, n_bins=20, binning="equal_mass")
    with pytest.raises(ValueError, match="`labels` are needed"):
        M.confidence_diversity(p)
    # float32 round-off within the tolerance is accepted.
    assert M.accuracy((p + 1e-7).astype(np.float32), y) == M.accuracy(p, y)


# ---- penultimate-layer projection ------------------------------------------------------------------------

def _layer(seed, K=5, D=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((K, D)), rng.standard_normal(K)


def test_templates_project_to_their_triangle():
    W, _ = _layer(0)
    classes = (3, 0, 4)
    # With every bias equal to 1 a template [w_k, 1] is exactly the augmented activation x = w_k, so
    # the three templates themselves can be projected.
    T = W[list(classes)]
    tri = M.penultimate_projection(T, W, np.ones(len(W)), classes)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.linalg.norm(tri[i] - tri[j]) == pytest.approx(np.linalg.norm(T[i] - T[j]), rel=1e-12)
    # Orientation: a at the origin, b on the positive first axis, c in the upper half-plane.
    np.testing.assert_allclose(tri[0], [0.0, 0.0], rtol=0, atol=1e-12)
    assert tri[1][0] > 0 and abs(tri[1][1]) < 1e-12 and tri[2][1] > 0


def test_projection_matches_gram_schmidt_with_bias():
    W, b = _layer(3, K=4, D=6)
    X = np.random.default_rng(4).standard_normal((5, 6))
    a, bb, c = 2, 0, 3
    t = np.concatenate([W, b[:, None]], axis=1)
    u1 = t[bb] - t[a]
    e1 = u1 / np.linalg.norm(u1)
    u2 = (t[c] - t[a]) - ((t[c] - t[a]) @ e1) * e1
    e2 = u2 / np.linalg.norm(u2)
    X1 = np.concatenate([X, np.ones((5, 1))], axis=1) - t[a]
    expected = np.stack([X1 @ e1, X1 @ e2], axis=1)
    np.testing.assert_allclose(M.penultimate_projection(X, W, b, [a, bb, c]), expected, rtol=1e-12, atol=1e-12)


def test_projection_ignores_directions_off_the_plane():
    W, b = _layer(1, K=6, D=10)
    classes = [1, 2, 5]
    rng = np.random.default_rng(2)
    X = rng.standard_normal((7, 10))
    base = M.penultimate_projection(X, W, b, classes)
    # Any vector orthogonal (in augmented space) to both template differences, with 0 in the bias slot
    # so that it is a change of the activations alone.
    diffs = (np.concatenate([W, b[:, None]], axis=1)[classes[1:]] - np.concatenate([W, b[:, None]], axis=1)[classes[0]])
    v = rng.standard_normal(10)
    A = diffs[:, :10]  # the bias slot of the perturbation is 0, so only these columns matter
    v = v - A.T @ np.linalg.solve(A @ A.T, A @ v)
    moved = M.penultimate_projection(X + 3.0 * v, W, b, classes)
    np.testing.assert_allclose(moved, base, rtol=1e-10, atol=1e-10)
    # ... while moving along a template difference does move the point.
    along = M.penultimate_projection(X + diffs[0, :10], W, b, classes)
    assert np.abs(along - base).max() > 0.1
    # torch tensors give the same coordinates.
    tt = M.penultimate_projection(torch.tensor(X), torch.tensor(W), torch.tensor(b), torch.tensor(classes))
    np.testing.assert_allclose(tt, base, rtol=1e-12, atol=1e-12)


def test_projection_bad_inputs():
    W, b = _layer(0)
    X = np.zeros((2, 8))
    with pytest.raises(ValueError, match="three distinct"):
        M.penultimate_projection(X, W, b, [0, 0, 1])
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        M.penultimate_projection(np.zeros((2, 7)), W, b, [0, 1, 2])
    W[2] = 2 * W[1] - W[0]
    b[2] = 2 * b[1] - b[0]
    with pytest.raises(ValueError, match="collinear"):
        M.penultimate_projection(X, W, b, [0, 1, 2])
