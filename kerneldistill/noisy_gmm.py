"""Multi-stage self-distillation of a logistic classifier on a noisy Gaussian mixture.

Takanami, Takahashi & Sakata, "The Effect of Optimal Self-Distillation in Noisy Gaussian Mixture
Model", NeurIPS 2025 (arXiv 2501.16226); code: taka255/self-distillation-analysis.

Data (their ``generate_data``): ``x = +-mu + sqrt(delta) z`` in dimension ``dim``, ``mu = 1/sqrt(dim)``
in every coordinate (``||mu|| = 1``), class +1 with probability ``rho``; each training label is flipped
with probability ``theta``. The sample ratio is ``alpha = n / dim``.

The error of a linear classifier ``sign(w.x + b)`` against the CLEAN labels is exact (no test sample)::

    err(w, b) = rho Phi(-(w.mu + b) / (sqrt(delta) ||w||)) + (1 - rho) Phi(-(w.mu - b) / (sqrt(delta) ||w||))

and the Bayes error is ``err(mu, (delta/2) log(rho/(1-rho)))``, ``Phi(-1/sqrt(delta))`` at ``rho = 1/2``
(0.0786 at their delta = 0.5).

Stage 0 fits ``sklearn.linear_model.LogisticRegression`` (L2, intercept, ``C = 1/lam``: sum of
log-losses + ``lam/2 ||w||^2``) to the noisy labels; stage t fits the same model to the pseudo-labels
of stage t-1: hard (its predicted classes) or soft (``sigmoid(beta * logit)``, fitted as their code
does: every row twice, labelled 1 and 0, weighted by ``p`` and ``1 - p``). Each stage's ``lam`` is
chosen on a VALIDATION split with noisy labels (the authors tune on test accuracy; with symmetric
flips the noisy validation accuracy is ``theta + (1 - 2 theta) acc``, so it ranks classifiers as the
clean accuracy does in expectation). Stages are tuned greedily, one after the other (the paper
optimises all stages' hyperparameters jointly).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm

__all__ = ["noisy_gmm", "population_error", "bayes_error", "fit_logistic", "StagePath", "self_distill_stages",
           "tuned_teacher"]


def _check_prob(value, name: str, *, open_high: bool = False) -> float:
    value = float(value)
    if not (0.0 <= value < (0.5 if open_high else 1.0)):
        raise ValueError(f"`{name}` must lie in [0, {0.5 if open_high else 1}); got {value!r}.")
    return value


def noisy_gmm(n: int, dim: int, delta: float = 0.5, theta: float = 0.3, rho: float = 0.5, seed=0):
    """``(X, y_clean, y_noisy)``: ``n`` points of the noisy mixture (labels in {0, 1}, 1 = the ``+mu`` class)."""
    if int(n) < 1 or int(dim) < 1:
        raise ValueError(f"`n` and `dim` must be >= 1; got n={n!r}, dim={dim!r}.")
    if not float(delta) > 0:
        raise ValueError(f"`delta` (the noise variance) must be > 0; got {delta!r}.")
    theta = _check_prob(theta, "theta", open_high=True)
    rho = float(rho)
    if not 0 < rho < 1:
        raise ValueError(f"`rho` must lie in (0, 1); got {rho!r}.")
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rho).astype(int)
    X = (2 * y - 1)[:, None] / np.sqrt(dim) + np.sqrt(delta) * rng.standard_normal((n, dim))
    flip = rng.random(n) < theta
    return X, y, np.where(flip, 1 - y, y)


def population_error(w, b: float, delta: float, rho: float = 0.5) -> float:
    """Exact error of ``sign(w.x + b)`` against the clean labels (module doc); ``mu = 1/sqrt(dim)`` per coordinate."""
    w = np.asarray(w, dtype=float).ravel()
    margin = w.sum() / np.sqrt(w.size)
    scale = np.sqrt(delta) * np.linalg.norm(w)
    if scale == 0:
        return float(min(rho, 1 - rho) if b == 0 else (1 - rho if b > 0 else rho))
    return float(rho * norm.cdf(-(margin + b) / scale) + (1 - rho) * norm.cdf(-(margin - b) / scale))


def bayes_error(delta: float, rho: float = 0.5, dim: int = 1) -> float:
    """The Bayes error: ``population_error(mu, (delta/2) log(rho/(1-rho)))``."""
    mu = np.full(dim, 1.0 / np.sqrt(dim))
    return population_error(mu, 0.5 * delta * np.log(rho / (1 - rho)), delta, rho)


def fit_logistic(X, targets, lam: float, soft: bool = False):
    """sklearn ``LogisticRegression(C=1/lam)`` on hard 0/1 ``targets``, or on probabilities (``soft``) by
    duplicated rows weighted by ``p`` and ``1 - p`` (the authors' recipe)."""
    from sklearn.linear_model import LogisticRegression

    if not float(lam) > 0:
        raise ValueError(f"`lam` must be > 0; got {lam!r}.")
    model = LogisticRegression(C=1.0 / float(lam), max_iter=2000, tol=1e-6)
    X = np.asarray(X, dtype=float)
    t = np.asarray(targets, dtype=float)
    if soft:
        n = X.shape[0]
        return model.fit(np.vstack([X, X]), np.r_[np.ones(n), np.zeros(n)], sample_weight=np.r_[t, 1.0 - t])
    return model.fit(X, t.astype(int))


@dataclass(frozen=True)
class StagePath:
    """One run of stages 0..T: per stage the chosen ``lam``, the noisy validation accuracy and the exact error."""

    mode: str
    lams: tuple
    val_accuracy: tuple
    error: tuple

    @property
    def early_stop(self) -> int:
        """The stage with the best validation accuracy (the first of ties): early stopping of the stages."""
        return int(np.argmax(self.val_accuracy))


def self_distill_stages(X, y_noisy, X_val, y_val_noisy, *, stages: int, mode: str = "hard", beta: float = 1.0,
                        lams=tuple(np.logspace(-3, 4, 8)), delta: float = 0.5, rho: float = 0.5,
                        teacher=None) -> StagePath:
    """Stages 0..``stages`` of self-distillation, each stage's ``lam`` chosen on the validation split.

    ``mode``: ``"hard"`` (predicted classes) or ``"soft"`` (``sigmoid(beta * logit)``). ``teacher``: a
    fitted stage-0 model to start from (so that several modes share one teacher); ``None`` tunes one.
    """
    if mode not in ("hard", "soft"):
        raise ValueError(f"`mode` must be 'hard' or 'soft'; got {mode!r}.")
    if int(stages) < 0:
        raise ValueError(f"`stages` must be >= 0; got {stages!r}.")

    def tune(targets, soft):
        return _tune(X, targets, soft, X_val, y_val_noisy, lams)

    if teacher is None:
        teacher = tune(y_noisy, False)
    model, acc, lam = teacher
    out_lams, out_acc, out_err = [lam], [acc], [population_error(model.coef_, model.intercept_[0], delta, rho)]
    for _ in range(int(stages)):
        targets = model.predict(X) if mode == "hard" else expit(beta * model.decision_function(X))
        model, acc, lam = tune(targets, mode == "soft")
        out_lams.append(lam)
        out_acc.append(acc)
        out_err.append(population_error(model.coef_, model.intercept_[0], delta, rho))
    return StagePath(mode, tuple(out_lams), tuple(out_acc), tuple(out_err))


class _Constant:
    """The fit to one-class hard pseudo-labels (a teacher that predicts one class everywhere): that class."""

    def __init__(self, label: int, dim: int):
        self.label = int(label)
        self.coef_ = np.zeros((1, dim))
        self.intercept_ = np.array([1.0 if self.label == 1 else -1.0])

    def predict(self, X):
        return np.full(np.asarray(X).shape[0], self.label)

    def decision_function(self, X):
        return np.full(np.asarray(X).shape[0], self.intercept_[0])


def _tune(X, targets, soft, X_val, y_val_noisy, lams):
    if not soft and np.unique(targets).size == 1:
        model = _Constant(np.asarray(targets).flat[0], np.asarray(X).shape[1])
        return model, float(np.mean(model.predict(X_val) == y_val_noisy)), float("nan")
    best = None
    for lam in lams:                           # ties go to the first lam of the grid (the smaller)
        model = fit_logistic(X, targets, lam, soft)
        acc = float(np.mean(model.predict(X_val) == y_val_noisy))
        if best is None or acc > best[1]:
            best = (model, acc, float(lam))
    return best


def tuned_teacher(X, y_noisy, X_val, y_val_noisy, lams=tuple(np.logspace(-3, 4, 8))):
    """``(model, validation accuracy, lam)`` of the stage-0 fit with ``lam`` chosen on the validation split."""
    return _tune(X, y_noisy, False, X_val, y_val_noisy, lams)
