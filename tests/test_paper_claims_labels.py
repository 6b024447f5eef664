"""Claims 5 and 6: Jeong & Chung (label averaging, partial labels) and Takanami et al. (noisy Gaussian mixture).

Each claim PASSes in its fast variant and FAILs when fed a deliberately wrong setting; the closed forms
behind them are checked against explicit refits and brute-force computations.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from kerneldistill.claims import REGISTRY
from kerneldistill.claims import jeong_chung, takanami
from kerneldistill.linear_probe import (block_features, block_gram, block_rounds, corrupt_labels, noisy_block_gram,
                                        paper_ridge, partial_label_student, partial_labels, refit_rounds,
                                        ridge_rounds, rounds_to_full_accuracy, spectral_rounds)
from kerneldistill.noisy_gmm import bayes_error, fit_logistic, noisy_gmm, population_error, self_distill_stages

IDENTITY_RTOL = 1e-9        # closed forms vs refits: round-off is ~1e-13


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# ------------------------------------------------------------------------------------------------
# Jeong & Chung: the machinery
# ------------------------------------------------------------------------------------------------

def test_spectral_averaging_equals_explicit_sklearn_refits():
    X, y = block_features(30, 3, 0.5, 0.1, epsilon=0.05, seed=1)
    Y = np.eye(3)[corrupt_labels(y, 3, 0.4, seed=2)]
    refits, _ = refit_rounds(X, Y, 0.05, 6)
    closed = spectral_rounds(X @ X.T, Y, 0.05, range(1, 7))
    kernel, _ = ridge_rounds(X @ X.T, Y, 0.05, 6)
    for t in range(1, 7):
        assert _rel(refits[t - 1], closed[t]) < IDENTITY_RTOL
        assert _rel(kernel[t - 1], closed[t]) < IDENTITY_RTOL


def test_three_eigenvalue_closed_form_equals_refits_on_the_block_gram():
    y = np.repeat(np.arange(4), 25)
    labels = corrupt_labels(y, 4, 0.5, seed=3)
    preds, _ = ridge_rounds(block_gram(y, 0.4, 0.1), np.eye(4)[labels], 0.08, 12)
    closed = block_rounds(y, labels, 4, 0.4, 0.1, 0.08, range(1, 13))
    assert max(_rel(preds[t - 1], closed[t]) for t in range(1, 13)) < IDENTITY_RTOL


def test_round_count_is_the_first_full_accuracy_round_of_the_refits_and_none_past_the_condition():
    y = np.repeat(np.arange(4), 50)
    G = block_gram(y, 0.4, 0.1)
    ridge = paper_ridge(1e-5, 4, y.size) * 5          # a larger ridge: the count stays small at this size
    for eta in (0.3, 0.5):
        labels = corrupt_labels(y, 4, eta, seed=4)
        t_star = rounds_to_full_accuracy(y, labels, 4, 0.4, 0.1, ridge)
        acc = [np.mean(P.argmax(1) == y) for P in ridge_rounds(G, np.eye(4)[labels], ridge, t_star + 3)[0]]
        assert t_star is not None and acc[t_star - 1] == 1.0 and all(a < 1.0 for a in acc[:t_star - 1])
    # the true class is not the plurality label of its class: no round reaches 100%
    labels = corrupt_labels(y, 4, 0.85, seed=4)
    assert rounds_to_full_accuracy(y, labels, 4, 0.4, 0.1, ridge) is None
    acc = [np.mean(P.argmax(1) == y) for P in ridge_rounds(G, np.eye(4)[labels], ridge, 60)[0]]
    assert max(acc) < 1.0


def test_noisy_block_gram_is_the_gram_of_the_features_with_the_papers_entry_noise():
    X, y = block_features(200, 4, 0.4, 0.1, epsilon=0.05, seed=5)
    G, y2 = noisy_block_gram(200, 4, 0.4, 0.1, epsilon=0.05, seed=5)
    assert np.array_equal(y, y2) and _rel(X @ X.T, G) < 1e-12
    assert np.allclose(np.diag(G), 1.0)
    off = G - block_gram(y, 0.4, 0.1)
    sd = off[~np.eye(y.size, dtype=bool)].std()
    assert sd == pytest.approx(0.05 / np.sqrt(3), rel=0.1)         # uniform[-eps, eps] has sd eps / sqrt(3)
    assert np.linalg.eigvalsh(G).min() > 0                          # a Gram matrix, unlike the paper's


def test_partial_labels_put_one_half_on_the_top_two():
    P = np.array([[0.1, 0.5, 0.3, 0.1], [0.7, 0.05, 0.05, 0.2]])
    assert np.array_equal(partial_labels(P), np.array([[0, 0.5, 0.5, 0], [0.5, 0, 0, 0.5]]))
    with pytest.raises(ValueError, match="top"):
        partial_labels(P, top=5)


def test_partial_label_student_is_one_ridge_round_on_the_partial_labels():
    X, y = block_features(20, 3, 0.5, 0.1, epsilon=0.05, seed=6)
    teacher = np.random.default_rng(0).random((y.size, 3))
    train, _ = partial_label_student(X @ X.T, teacher, 0.1)
    refit, _ = refit_rounds(X, partial_labels(teacher), 0.1, 1)
    assert _rel(train, refit[0]) < IDENTITY_RTOL


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="corruption"):
        corrupt_labels(np.zeros(3, int), 4, 1.5)
    with pytest.raises(ValueError, match="inter"):
        block_gram(np.zeros(3, int), 0.1, 0.4)
    with pytest.raises(ValueError, match="noise_share"):
        block_features(5, 2, 0.4, 0.1, epsilon=0.05, noise_share=0.7)
    with pytest.raises(ValueError, match="targets"):
        ridge_rounds(np.eye(3), np.ones((4, 2)), 0.1, 2)


# ------------------------------------------------------------------------------------------------
# Jeong & Chung: the claims
# ------------------------------------------------------------------------------------------------

def test_both_claims_are_registered():
    assert {"jeong_chung_averaging", "jeong_chung_partial_labels", "takanami_noisy_gmm"} <= set(REGISTRY)


@pytest.fixture(scope="module")
def averaging_fast():
    return jeong_chung.averaging(fast=True)


def test_averaging_claim_passes_fast(averaging_fast):
    r = averaging_fast
    assert r.passed, r.table
    assert r.values["averaging_error"] < 1e-8 and r.values["block_error"] < 1e-8
    assert r.values["rounds_closed_form"] == r.values["rounds_refits"]


def test_averaging_claim_fails_with_a_wrong_round_count(averaging_fast):
    wrong = averaging_fast.values["rounds_closed_form"] - 1
    assert not jeong_chung.averaging(fast=True, full_accuracy_round=wrong).passed


def test_partial_label_claim_passes_fast():
    r = jeong_chung.partial_labels_claim(fast=True)
    assert r.passed, r.table
    for data in ("synthetic", "digits"):
        for eta in (0.5, 0.6):
            v = r.values[f"{data}@{eta:g}"]
            assert v["diff"] >= -2 * v["se"]


def test_partial_label_claim_fails_at_low_noise_where_the_paper_claims_nothing():
    # At corruption 0.2 multi-round self-distillation reaches 100% on the synthetic data; PLL does not.
    r = jeong_chung.partial_labels_claim(fast=True, noise_levels=(0.2,))
    assert not r.passed
    assert r.values["synthetic@0.2"]["diff"] < 0


# ------------------------------------------------------------------------------------------------
# Takanami et al.: the machinery
# ------------------------------------------------------------------------------------------------

def test_population_error_matches_a_large_monte_carlo_sample():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal(20), 0.3
    X, y, _ = noisy_gmm(400_000, 20, delta=0.5, theta=0.0, rho=0.3, seed=1)
    mc = np.mean((X @ w + b > 0).astype(int) != y)
    assert population_error(w, b, 0.5, 0.3) == pytest.approx(mc, abs=4 * np.sqrt(mc * (1 - mc) / y.size))


def test_bayes_error_is_the_minimum_over_a_grid_of_classifiers():
    assert bayes_error(0.5) == pytest.approx(norm.cdf(-1 / np.sqrt(0.5)), rel=1e-12)
    mu = np.ones(5) / np.sqrt(5)
    best = bayes_error(0.5, rho=0.3, dim=5)
    grid = [population_error(mu, b, 0.5, 0.3) for b in np.linspace(-2, 2, 401)]
    assert best <= min(grid) + 1e-12 and best == pytest.approx(min(grid), abs=1e-4)


def test_soft_fit_on_duplicated_rows_equals_hard_fit_on_zero_one_probabilities():
    X, _, y = noisy_gmm(200, 10, seed=2)
    soft = fit_logistic(X, y.astype(float), 1.0, soft=True)
    hard = fit_logistic(X, y, 1.0)
    assert np.allclose(soft.coef_, hard.coef_, atol=1e-4) and np.allclose(soft.intercept_, hard.intercept_, atol=1e-4)


def test_stage_path_reports_exact_errors_and_the_validation_choice():
    X, _, y = noisy_gmm(300, 20, seed=3)
    Xv, _, yv = noisy_gmm(500, 20, seed=4)
    path = self_distill_stages(X, y, Xv, yv, stages=2, mode="hard")
    assert len(path.error) == 3 and path.val_accuracy[path.early_stop] == max(path.val_accuracy)
    with pytest.raises(ValueError, match="mode"):
        self_distill_stages(X, y, Xv, yv, stages=1, mode="medium")


# ------------------------------------------------------------------------------------------------
# Takanami et al.: the claim
# ------------------------------------------------------------------------------------------------

def test_noisy_gmm_claim_passes_fast():
    r = takanami.noisy_gmm_claim(fast=True)
    assert r.passed, r.table
    v = r.values
    assert v["alphas"][0] < v["peak_alpha"] < v["alphas"][-1]
    assert v["order"] > 0 and v["early_stop"] > 0
    assert all(e > v["bayes"] for e in v["hard_es"])


def test_noisy_gmm_claim_fails_with_soft_and_hard_swapped():
    assert not takanami.noisy_gmm_claim(fast=True, pseudo_labels=("soft", "hard")).passed


# ------------------------------------------------------------------------------------------------
# The figures
# ------------------------------------------------------------------------------------------------

def test_the_two_figures_are_registered_and_drawn_from_their_data(tmp_path):
    from analysis.figures import FIGURES, run_figure
    from analysis.figures.spec import read_csv

    assert {"claim_label_averaging", "claim_noisy_gmm"} <= set(FIGURES)
    paths = {name: run_figure(name, tmp_path, fast=True) for name in ("claim_label_averaging", "claim_noisy_gmm")}
    for files in paths.values():
        assert [p.suffix for p in files] == [".csv", ".pdf", ".png"] and all(p.stat().st_size > 0 for p in files)
    d = read_csv(paths["claim_label_averaging"][0])
    curve = (d["panel"] == "synthetic") & (d["curve"] == "multi-round, block Gram (closed form)")
    star = d["round"][d["curve"] == "round count (closed form)"][0]
    # the marked round is the first at which the closed-form curve reaches 100%
    assert d["accuracy"][curve][star - 1] == 1.0 and np.all(d["accuracy"][curve][: star - 1] < 1.0)
    g = read_csv(paths["claim_noisy_gmm"][0])
    assert g["error_mean"][g["labels"] == "bayes"][0] == pytest.approx(bayes_error(0.5))
