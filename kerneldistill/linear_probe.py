"""Self-distillation in linear probing: label averaging along the Gram eigenvectors, and partial labels.

Jeong & Chung, "Rethinking Self-Distillation: Label Averaging and Enhanced Soft Label Refinement with
Partial Labels", ICLR 2025 (arXiv 2402.10482). A linear model ``W`` on fixed features ``phi(x_i)``
(linear probing) is trained on soft labels; each round's predictions on the training set are the next
round's targets (round 1 = the teacher fitted to the given, possibly corrupted, one-hot labels).

The model here is ridge on the features with a sum-of-squares loss (this toolkit's ``ridge``; step 1
equals ``sklearn.linear_model.Ridge(alpha=ridge, fit_intercept=False)``). It is the linearisation of
the paper's softmax model: with the mean cross-entropy loss plus ``lam/2 ||W||^2`` the stationary
point satisfies ``P = softmax(G (Y - P) / (N lam))`` row-wise (instances as rows of ``P`` and ``Y``,
G the Gram matrix, N the number of instances; the paper's ``numerical_solving.py`` writes it
transposed), and ``softmax(z) ~ (1 + z)/K`` near 0 gives ``P - 1/K = G (G + K N lam I)^-1 (Y - 1/K)``
(the rows of ``Y - P`` sum to 0): ridge with

    ridge = K * N * lam          (the paper's lam, e.g. 1e-5, converted at the boundary: paper_ridge).

So after t rounds the training predictions are, with ``G = V diag(s) V^T`` (Jeong & Chung's label
averaging, in closed form for this model)::

    P_t = V diag((s / (s + ridge))^t) V^T Y            (instances as rows of Y, classes as columns)

(ridge on the one-hot ``Y``; the linearised softmax model's ``P_t - 1/K = S^t (Y - 1/K)`` differs from it
by a constant per instance, so both predict the same classes.)

each eigen-direction of the Gram matrix is kept with weight ``(s/(s+ridge))^t``: directions of large
eigenvalue (clusters of correlated instances) survive, the rest are averaged away. For the paper's
block Gram matrix (unit diagonal, ``intra`` within a class, ``inter`` across classes) there are three
eigenvalues (the constant vector, the class contrasts, the within-class residuals), so the prediction
of instance i of class k with label vector y_i is (:func:`block_rounds`)::

    P_t(i) = r1^t m + r2^t (m_k - m) + r3^t (y_i - m_k),    r_j = s_j / (s_j + ridge)

with m the mean label vector and m_k the mean label vector of class k: the round count after which
every instance, including the corrupted ones, is predicted as its class follows in closed form
(:func:`rounds_to_full_accuracy`); it exists iff each class's own label is its plurality label (at the
paper's sizes, where r1 and r2 are both within 1e-3 of 1). The paper's theorem text was not readable
here: this condition and count are our derivation in the linearised model.

Partial labels (the paper's PLL student): one round on targets that put 1/2 on each of the teacher's two
largest outputs (:func:`partial_labels`).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, eigh

from ._validation import check_ridge

__all__ = [
    "paper_ridge",
    "corrupt_labels",
    "block_gram",
    "block_features",
    "noisy_block_gram",
    "ridge_factor",
    "ridge_rounds",
    "refit_rounds",
    "spectral_rounds",
    "block_ratios",
    "block_rounds",
    "rounds_to_full_accuracy",
    "partial_labels",
    "partial_label_student",
]


def paper_ridge(lam: float, n_classes: int, n_samples: int) -> float:
    """This toolkit's ``ridge`` (sum-of-squares loss) for Jeong & Chung's ``lam``: ``K * N * lam`` (see module doc)."""
    lam = check_ridge(lam, name="lam")
    return float(n_classes) * float(n_samples) * lam


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
    return int(value)


def _check_fraction(value, name: str, *, high_open: bool = True) -> float:
    value = float(value)
    if not (0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must lie in [0, 1{')' if high_open else ']'}; got {value!r}.")
    return value


def corrupt_labels(y, n_classes: int, corruption: float, seed=0) -> np.ndarray:
    """Symmetric label noise: each label is replaced, with probability ``corruption``, by one of the other
    ``n_classes - 1`` classes uniformly (the noise of the paper's ``numerical_solving.py``)."""
    y = np.asarray(y)
    n_classes = _check_int(n_classes, "n_classes", 2)
    corruption = _check_fraction(corruption, "corruption")
    rng = np.random.default_rng(seed)
    flip = rng.random(y.shape[0]) < corruption
    return np.where(flip, (y + rng.integers(1, n_classes, y.shape[0])) % n_classes, y)


def block_gram(y, intra: float, inter: float) -> np.ndarray:
    """Jeong & Chung's idealised Gram matrix: 1 on the diagonal, ``intra`` within a class, ``inter`` across."""
    y = np.asarray(y)
    if not 0.0 <= inter <= intra < 1.0:
        raise ValueError(f"`inter` and `intra` must satisfy 0 <= inter <= intra < 1 (a Gram matrix of unit "
                         f"vectors with class clusters); got inter={inter!r}, intra={intra!r}.")
    G = np.where(y[:, None] == y[None, :], intra, inter).astype(float)
    np.fill_diagonal(G, 1.0)
    return G


def _noise_dim(epsilon: float, share: float) -> int:
    return max(1, int(round(3.0 * share ** 2 / epsilon ** 2)))


def _block_setup(n_per_class, n_classes, intra, inter, epsilon, noise_share, seed):
    n_per_class = _check_int(n_per_class, "n_per_class", 1)
    n_classes = _check_int(n_classes, "n_classes", 2)
    block_gram(np.arange(2), intra, inter)                 # validates intra / inter
    epsilon = float(epsilon)
    if epsilon < 0:
        raise ValueError(f"`epsilon` must be >= 0; got {epsilon!r}.")
    share = float(noise_share) if epsilon > 0 else 0.0
    if not 0.0 <= share < 1.0 - intra:
        raise ValueError(f"`noise_share` must lie in [0, 1 - intra) = [0, {1 - intra:g}); got {noise_share!r}.")
    N = n_classes * n_per_class
    y = np.repeat(np.arange(n_classes), n_per_class)
    Z = None
    if share > 0:
        Z = np.random.default_rng(seed).standard_normal((N, _noise_dim(epsilon, share)))
        Z = np.sqrt(share) * Z / np.linalg.norm(Z, axis=1, keepdims=True)
    return y, share, Z


def block_features(n_per_class: int, n_classes: int, intra: float, inter: float, epsilon: float = 0.0,
                   noise_share: float = 0.3, seed=0):
    """Unit-norm features whose Gram matrix is :func:`block_gram` plus entry-wise noise of the size of the paper's.

    Returns ``(X, y)``, ``X`` of shape ``(N, p)`` with ``N = n_classes * n_per_class``:
    ``phi_i = [sqrt(inter), sqrt(intra - inter) e_{y_i}, sqrt(1 - intra - share) e_i, sqrt(share) z_i]``,
    ``z_i`` uniform on the unit sphere of dimension ``q = round(3 share^2 / epsilon^2)`` (``share = 0``
    and no ``z`` when ``epsilon = 0``). The off-diagonal Gram entries are then ``intra`` or ``inter`` plus
    ``share * <z_i, z_j>``, of standard deviation ``share / sqrt(q) = epsilon / sqrt(3)``: the standard
    deviation of the paper's uniform noise on ``[-epsilon, epsilon]``.

    Why not the paper's matrix itself: ``numerical_solving.py`` adds i.i.d. uniform noise to every entry
    of the block matrix, which is not positive semi-definite at the paper's sizes (N = 2000: its smallest
    eigenvalue is about -2, since the noise has spectral norm ~ 2 sqrt(N) epsilon / sqrt(3) ~ 2.6 > 1 - intra),
    so it is the Gram matrix of no features. ``noise_share`` (our choice) is the part of the unit norm given
    to the noise directions.
    """
    y, share, Z = _block_setup(n_per_class, n_classes, intra, inter, epsilon, noise_share, seed)
    N = y.shape[0]
    parts = [np.full((N, 1), np.sqrt(inter)), np.sqrt(intra - inter) * np.eye(n_classes)[y],
             np.sqrt(1.0 - intra - share) * np.eye(N)]
    if Z is not None:
        parts.append(Z)
    return np.hstack(parts), y


def noisy_block_gram(n_per_class: int, n_classes: int, intra: float, inter: float, epsilon: float = 0.0,
                     noise_share: float = 0.3, seed=0):
    """``(X X^T, y)`` for ``X, y = block_features(...)`` with the same arguments, without forming ``X``
    (``N^2 q`` instead of ``N^2 (N + q)`` operations)."""
    y, share, Z = _block_setup(n_per_class, n_classes, intra, inter, epsilon, noise_share, seed)
    G = np.where(y[:, None] == y[None, :], intra, inter).astype(float)
    G[np.diag_indices_from(G)] += 1.0 - intra - share
    if Z is not None:
        G += Z @ Z.T
    return G, y


def _one_hot(labels, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[np.asarray(labels)]


def _check_targets(targets, n: int) -> np.ndarray:
    T = np.asarray(targets, dtype=float)
    if T.ndim != 2 or T.shape[0] != n or not np.all(np.isfinite(T)):
        raise ValueError(f"`targets` must be a finite (n_samples, n_classes) array with n_samples = {n}; "
                         f"got shape {T.shape}.")
    return T


def ridge_factor(gram, ridge: float):
    """The Cholesky factor of ``gram + ridge I``, to share between :func:`ridge_rounds` and
    :func:`partial_label_student` calls on one Gram matrix (``factor=``)."""
    G = np.asarray(gram, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or not np.all(np.isfinite(G)):
        raise ValueError(f"`gram` must be a finite square matrix; got shape {G.shape}.")
    return cho_factor(G + check_ridge(ridge) * np.eye(G.shape[0]), check_finite=False)


def ridge_rounds(gram, targets, ridge: float, rounds: int, gram_eval=None, factor=None):
    """Predictions of rounds 1..``rounds`` (each round refits on the previous round's training predictions).

    Returns ``(train, evals)``: one ``(n, K)`` array per round, and per round the predictions at the
    points whose kernel rows against the training points are ``gram_eval`` (``None`` without it).

    Kernel form of ridge on the features: ``P <- G (G + ridge I)^-1 P = P - ridge (G + ridge I)^-1 P`` from
    ``P = targets``; one Cholesky factorisation serves every round. Equals sklearn ``Ridge(alpha=ridge, fit_intercept=False)`` refits on
    the features whose Gram matrix is ``gram`` (:func:`refit_rounds`; the tests check the two agree).
    """
    G = np.asarray(gram, dtype=float)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"`gram` must be a square matrix; got shape {G.shape}.")
    P = _check_targets(targets, G.shape[0])
    ridge = check_ridge(ridge)
    rounds = _check_int(rounds, "rounds", 1)
    factor = ridge_factor(G, ridge) if factor is None else factor
    train, evals = [], []
    for _ in range(rounds):
        coef = cho_solve(factor, P, check_finite=False)
        # G coef = (G + ridge I) coef - ridge coef = P - ridge coef: the fit without a product with G
        P = P - ridge * coef
        train.append(P)
        evals.append(None if gram_eval is None else np.asarray(gram_eval, dtype=float) @ coef)
    return train, evals


def refit_rounds(X, targets, ridge: float, rounds: int, X_eval=None):
    """The same rounds by explicit refits: sklearn ``Ridge`` on the features ``X``, each round on the last
    round's training predictions. Returns ``(train predictions, eval predictions or None)`` per round."""
    from sklearn.linear_model import Ridge

    X = np.asarray(X, dtype=float)
    P = _check_targets(targets, X.shape[0])
    ridge = check_ridge(ridge)
    rounds = _check_int(rounds, "rounds", 1)
    train, evals = [], []
    for _ in range(rounds):
        model = Ridge(alpha=ridge, fit_intercept=False, solver="cholesky").fit(X, P)
        P = model.predict(X)
        train.append(P)
        evals.append(None if X_eval is None else model.predict(np.asarray(X_eval, dtype=float)))
    return train, evals


def spectral_rounds(gram, targets, ridge: float, rounds) -> dict[int, np.ndarray]:
    """Jeong & Chung's label averaging in closed form: ``P_t = V diag((s/(s+ridge))^t) V^T Y`` for each t in ``rounds``.

    ``V, s`` is the eigendecomposition of the Gram matrix; ``Y = targets`` (instances as rows here).
    """
    G = np.asarray(gram, dtype=float)
    Y = _check_targets(targets, G.shape[0])
    ridge = check_ridge(ridge)
    s, V = eigh(G)
    s = np.clip(s, 0.0, None)                     # round-off negatives of a PSD Gram matrix
    coef = V.T @ Y
    shrink = s / (s + ridge)
    return {int(t): V @ (shrink[:, None] ** int(t) * coef) for t in rounds}


def _block_parts(y, labels, n_classes: int):
    Y = _one_hot(labels, n_classes)
    m = Y.mean(axis=0)
    m_class = np.stack([Y[y == k].mean(axis=0) for k in range(n_classes)])
    return Y, m, m_class


def block_ratios(n_per_class: int, n_classes: int, intra: float, inter: float, ridge: float):
    """``(r1, r2, r3)`` of the block Gram matrix: ``s/(s+ridge)`` for its three eigenvalues
    ``1 - intra + n (intra - inter) + N inter`` (constant), ``1 - intra + n (intra - inter)`` (class
    contrasts) and ``1 - intra`` (within-class residuals)."""
    n, N = n_per_class, n_per_class * n_classes
    s = np.array([1 - intra + n * (intra - inter) + N * inter, 1 - intra + n * (intra - inter), 1 - intra])
    return tuple(s / (s + ridge))


def block_rounds(y, labels, n_classes: int, intra: float, inter: float, ridge: float, rounds) -> dict[int, np.ndarray]:
    """The closed form of the module doc for the block Gram matrix (balanced classes): ``{t: P_t}``."""
    y = np.asarray(y)
    counts = np.bincount(y, minlength=n_classes)
    if np.any(counts != counts[0]):
        raise ValueError(f"`y` must have the same number of instances in every class; got counts {counts.tolist()}.")
    r1, r2, r3 = block_ratios(int(counts[0]), n_classes, intra, inter, check_ridge(ridge))
    Y, m, m_class = _block_parts(y, labels, n_classes)
    mk = m_class[y]
    return {int(t): r1 ** t * m + r2 ** t * (mk - m) + r3 ** t * (Y - mk) for t in rounds}


def rounds_to_full_accuracy(y, labels, n_classes: int, intra: float, inter: float, ridge: float,
                            max_rounds: int = 10_000):
    """First round t at which every training instance is predicted as its true class (block Gram matrix).

    From the closed form, the score of class l for instance i of class k at round t is
    ``r1^t m[l] + r2^t (m_k[l] - m[l]) + r3^t (y_i[l] - m_k[l])``. The class-mean part decays as r2^t, the
    instance's own label as r3^t < r2^t, so every instance is eventually predicted as its class iff
    ``m_k[k] > m_k[l]`` for all l != k (the true class is the plurality label of its class; with r1 ~ r2,
    as at the paper's sizes). Returns ``None`` when that condition fails for
    some class (no round reaches full accuracy), else the first such t (found by evaluating the closed
    form, which is exact, on rounds 1, 2, ... up to ``max_rounds``).
    """
    y = np.asarray(y)
    _, _, m_class = _block_parts(y, labels, n_classes)
    for k in range(n_classes):
        if np.any(np.delete(m_class[k], k) >= m_class[k, k]):
            return None
    for t in range(1, max_rounds + 1):
        P = block_rounds(y, labels, n_classes, intra, inter, ridge, [t])[t]
        if np.all(P.argmax(axis=1) == y):
            return t
    return None


def partial_labels(predictions, top: int = 2) -> np.ndarray:
    """The PLL student's targets: weight ``1/top`` on each of the teacher's ``top`` largest outputs (paper: top = 2)."""
    P = np.asarray(predictions, dtype=float)
    top = _check_int(top, "top", 1)
    if P.ndim != 2 or top > P.shape[1]:
        raise ValueError(f"`predictions` must be (n_samples, n_classes) with n_classes >= top = {top}; got shape {P.shape}.")
    idx = np.argsort(-P, axis=1, kind="stable")[:, :top]
    T = np.zeros_like(P)
    np.put_along_axis(T, idx, 1.0 / top, axis=1)
    return T


def partial_label_student(gram, teacher_predictions, ridge: float, top: int = 2, gram_eval=None, factor=None):
    """One round of ridge on :func:`partial_labels` of the teacher. Returns ``(train predictions, eval predictions)``;
    ``gram_eval`` (rows: evaluation points, columns: training points) gives predictions off the training set."""
    (train,), (evals,) = ridge_rounds(gram, partial_labels(teacher_predictions, top), ridge, 1, gram_eval, factor)
    return train, evals
