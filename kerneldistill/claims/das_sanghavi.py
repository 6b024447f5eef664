"""Claim 1: Das & Sanghavi, ICML 2023 (arXiv 2301.13304): at high label noise the optimal teacher weight exceeds 1.

Their student minimises ``xi * loss(teacher, student) + (1 - xi) * loss(labels, student)`` (teacher
weight ``xi``); in this toolkit's convention ``gt_weight = 1 - xi``, so ``xi > 1`` is ``gt_weight < 0``.
Published (abstract; the body's exact settings could not be read here):
(a) regularised linear regression: in the high label noise regime the ``xi`` that minimises the
    expected error in estimating the ground-truth parameter is greater than 1;
(b) with cross-entropy, ``xi > 1`` works better than ``xi <= 1`` for several classification data
    sets when 50% or 30% of the labels are corrupted.

(a) is computed in closed form: :class:`kerneldistill.KernelDistiller` with a linear kernel (teacher and
student share the ridge, as in their analysis), and :class:`ExpectedParameterError`, the expected
``E ||theta_student - theta*||^2`` over the label noise, as a criterion of
:mod:`kerneldistill.optimal` (so :func:`~kerneldistill.optimal.optimal_gt_weight` with
``constrained=False`` returns the optimal weight, which :class:`KernelDistiller` accepts with
``allow_any_weight=True``). (b) fits multinomial logistic regression (a linear classifier) on the
teacher-mixed soft targets with :func:`fit_softmax_regression`; see :mod:`.softmax_regression`.
"""
from __future__ import annotations

import numpy as np

from ..estimator import KernelDistiller
from ..optimal import _Criterion, _spectral_inputs, optimal_gt_weight
from .base import ClaimResult, claim
from .softmax_regression import corrupt_labels, fit_softmax_regression, softmax_scores

PAPER = "Das & Sanghavi, ICML 2023 (arXiv 2301.13304)"


class ExpectedParameterError(_Criterion):
    """Expected parameter error ``E ||theta - theta*||^2`` of linear ridge self-distillation, in closed form.

    Linear kernel ``K = X X^T = V diag(d) V^T``, labels ``y = X theta* + e``, ``Cov e = s^2 I``. A fit with
    fitted-value filter ``b`` has coefficients ``theta = X^T V diag(b / d) V^T y``; along the right singular
    vector ``v_i = X^T u_i / sqrt(d_i)`` its error is ``(b_i - 1) theta*_i + b_i (u_i^T e) / sqrt(d_i)``, so::

        E ||theta - theta*||^2 = sum_i [ (b_i - 1)^2 z*_i^2 + s^2 b_i^2 ] / d_i + ||theta*_perp||^2

    with ``z* = V^T X theta*`` and ``theta*_perp`` the part of ``theta*`` outside the row space of ``X``
    (directions with ``d_i = 0`` carry no signal and no fit). This is :class:`ExpectedTrainingRisk`
    with each direction weighted by ``1/d_i``; for isotropic ``x`` it is also the excess prediction
    risk. It is Das & Sanghavi's criterion (derived here for their setting).

    Parameters
    ----------
    evals, evecs : the eigendecomposition of ``X X^T`` (e.g. a fitted ``KernelDistiller("linear")``).
    y_star : ``(n,)`` noise-free targets ``X theta*``.
    noise_var : ``s^2 >= 0``.
    ridge : the ridge of teacher and student.
    signal_norm2 : ``||theta*||^2`` (for the part outside the row space).
    """

    def __init__(self, evals, evecs, y_star, noise_var, ridge, signal_norm2):
        from .._validation import check_ridge

        self.evals, V, Y = _spectral_inputs(evals, evecs, y_star, y_name="y_star")
        self.ridge = check_ridge(ridge)
        noise_var = float(noise_var)
        if not np.isfinite(noise_var) or noise_var < 0:
            raise ValueError(f"`noise_var` must be a finite variance >= 0; got {noise_var!r}.")
        d = self.evals
        live = d > 1e-12 * max(float(d.max()), 1.0)
        inv_d = np.where(live, 1.0 / np.where(live, d, 1.0), 0.0)
        z2 = np.sum((V.T @ Y) ** 2, axis=1)
        self._wz = z2 * inv_d  # theta*_i^2 on the row space
        self._wn = noise_var * inv_d
        self._perp = max(float(signal_norm2) - float(np.sum(self._wz)), 0.0)

    def _cross(self, cb, b, cc, c) -> float:
        return float(np.sum(cb * cc * self._wz) + self._perp + np.sum(b * c * self._wn))

    def _risks_along(self, b0, q0, c0, db, dq):
        b1, c1 = b0 + db, c0 - db
        gain = np.sum(db * c0 * self._wz) - np.sum(db * b0 * self._wn)
        dist2 = np.sum(db * db * (self._wz + self._wn))
        return self._cross(c0, b0, c0, b0), self._cross(c1, b1, c1, b1), self._cross(c0, b0, c1, b1), gain, dist2


def regression_setting(n: int, p: int, noise: float, seed: int):
    """Gaussian design ``x ~ N(0, I_p)``, ``theta*`` uniform on the unit sphere, labels with noise ``noise``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    theta = rng.standard_normal(p)
    theta /= np.linalg.norm(theta)
    return X, theta, X @ theta + noise * rng.standard_normal(n)


def optimal_weight(X, theta, y, noise: float, ridge: float) -> tuple[float, ExpectedParameterError]:
    """The unconstrained optimal ``gt_weight`` of step 2 for ``E ||theta_student - theta*||^2`` (and the criterion)."""
    model = KernelDistiller("linear", ridge=ridge).fit(X, y)
    crit = ExpectedParameterError(model.evals_, model.evecs_, X @ theta, noise**2, ridge, float(theta @ theta))
    return optimal_gt_weight(crit, constrained=False), crit


def refit_parameter_error(X, theta, noise: float, ridge: float, gt_weight: float) -> float:
    """``E ||theta_student - theta*||^2`` from the student's linear map ``y -> theta``, read off the estimator.

    The student's coefficients are linear in ``y``: fitting :class:`KernelDistiller` to the ``n`` unit
    label vectors at once (``y = I_n``) and predicting at ``X_ref = I_p`` gives that ``(p, n)`` map
    ``A`` (a linear kernel's prediction at ``e_j`` is ``theta_j``). Then exactly
    ``E ||A y - theta*||^2 = ||A X theta* - theta*||^2 + s^2 ||A||_F^2``. An independent route to
    :class:`ExpectedParameterError` (which never forms ``A``).
    """
    n, p = X.shape
    model = KernelDistiller("linear", ridge=ridge, gt_weight=gt_weight, steps=2, allow_any_weight=True)
    A = model.fit(X, np.eye(n)).predict(np.eye(p))  # (p, n)
    return float(np.sum((A @ (X @ theta) - theta) ** 2) + noise**2 * np.sum(A**2))


def _regression_part(fast, n, p, noises, ridges, high_noise, seed):
    rows, ok = [], []
    X, theta, _ = regression_setting(n, p, 0.0, seed)
    # one eigendecomposition of X X^T serves every ridge and noise level (the expectation needs no label draw)
    model = KernelDistiller("linear").fit(X, X @ theta)

    def weight(s, lam):
        crit = ExpectedParameterError(model.evals_, model.evecs_, X @ theta, s**2, lam, float(theta @ theta))
        return optimal_gt_weight(crit, constrained=False), crit

    for lam in ridges:
        weights = [weight(s, lam)[0] for s in noises]
        # the noise level where the optimal weight changes sign (it decreases with the noise): bisection in log s
        lo, hi = 1e-3, 1e3
        if weight(lo, lam)[0] > 0 > weight(hi, lam)[0]:
            for _ in range(40):
                mid = np.sqrt(lo * hi)
                lo, hi = (mid, hi) if weight(mid, lam)[0] > 0 else (lo, mid)
            crossing = float(np.sqrt(lo * hi))
        else:
            crossing = float("nan")
        w_high, crit = weight(high_noise, lam)
        risk_opt, risk_zero, risk_teacher = crit.risk([w_high]), crit.risk([0.0]), crit.risk()
        refit = refit_parameter_error(X, theta, high_noise, lam, w_high)
        agrees = abs(refit - risk_opt) <= 1e-8 * max(risk_opt, 1e-300)
        passed = bool(w_high < 0 and risk_opt < risk_zero and agrees and np.isfinite(crossing))
        ok.append(passed)
        rows.append(dict(ridge=lam, weights=weights, crossing=crossing, w_high=w_high, risk_opt=risk_opt,
                         risk_zero=risk_zero, risk_teacher=risk_teacher, refit=refit, passed=passed))
    return rows, ok


def _classification_part(fast, corruptions, teacher_weights, ridge_pairs, default_pair, seeds, n_val, seed):
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X_all, y_all = load_digits(return_X_y=True)
    K = 10
    xi = np.asarray(teacher_weights, dtype=np.float64)
    low, high = xi <= 1.0, xi > 1.0
    if not low.any() or not high.any():
        raise ValueError(f"`teacher_weights` must hold weights both <= 1 and > 1; got {teacher_weights!r}.")
    results = {}  # (corruption, lam_t, lam_s) -> (test acc (S, W), chosen diff per seed)
    for c in corruptions:
        for s in range(seeds):
            rng = np.random.default_rng(seed + 1000 * s)
            perm = rng.permutation(y_all.size)
            n_test = y_all.size // 3
            test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
            scaler = StandardScaler().fit(X_all[train])
            Xtr, Xva, Xte = (scaler.transform(X_all[i]) for i in (train, val, test))
            noisy = corrupt_labels(y_all[np.r_[train, val]], c, K, rng)
            ytr, yva = noisy[: train.size], noisy[train.size:]  # validation labels are as noisy as training ones
            Ytr = np.eye(K)[ytr]
            teachers = {}
            for lam_t, lam_s in ridge_pairs:
                if lam_t not in teachers:
                    W_t = fit_softmax_regression(Xtr, Ytr, lam_t)
                    teachers[lam_t] = (W_t, softmax_scores(Xtr, W_t, probabilities=True))
                W_t, P = teachers[lam_t]
                test_acc, val_acc = [], []
                for x in xi:
                    W = fit_softmax_regression(Xtr, x * P + (1.0 - x) * Ytr, lam_s, init=W_t, gtol=1e-6)
                    test_acc.append(np.mean(softmax_scores(Xte, W).argmax(1) == y_all[test]))
                    val_acc.append(np.mean(softmax_scores(Xva, W).argmax(1) == yva))
                test_acc, val_acc = np.array(test_acc), np.array(val_acc)
                # each side's weight chosen on the NOISY validation labels, then judged on the clean test labels
                pick_low = np.flatnonzero(low)[np.argmax(val_acc[low])]
                pick_high = np.flatnonzero(high)[np.argmax(val_acc[high])]
                key = (c, lam_t, lam_s)
                acc, diff = results.get(key, ([], []))
                results[key] = (acc + [test_acc], diff + [test_acc[pick_high] - test_acc[pick_low]])
    table = {}
    for key, (acc, diff) in results.items():
        diff = np.array(diff)
        se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
        table[key] = dict(acc=np.mean(acc, axis=0), diff=float(diff.mean()), se=float(se))
    ok = [table[(c, *default_pair)]["diff"] > 2 * table[(c, *default_pair)]["se"] for c in corruptions]
    return table, ok


REGRESSION_PUBLISHED = "high label noise: the optimal teacher weight xi* > 1 (gt_weight < 0)"
CLASSIFICATION_PUBLISHED = "cross-entropy: xi > 1 beats xi <= 1 at 30% and 50% label corruption"


@claim("das_sanghavi_regression", paper=PAPER,
       summary="ridge self-distillation: at high label noise the optimal gt_weight is negative (xi* > 1), closed form")
def das_sanghavi_regression(fast: bool = False, *, n: int = 200, p: int = 50, noises=(0.1, 0.3, 1.0, 3.0, 10.0),
                            ridges=(10.0, 50.0, 200.0), high_noise: float = 10.0, seed: int = 0) -> ClaimResult:
    """(a) The optimal ``gt_weight`` (``= 1 - xi``) of linear ridge self-distillation is negative at high noise.

    Setting (chosen; theirs could not be read): ``x ~ N(0, I_p)``, ``n = 200``, ``p = 50``,
    ``||theta*|| = 1``, noise ``s``, one ridge for teacher and student (sum-of-squares convention);
    the criterion is the expected ``E ||theta_student - theta*||^2`` over the noise
    (:class:`ExpectedParameterError`, checked against the estimator's own student map). PASS for
    every ridge when the optimal ``gt_weight`` at ``high_noise`` is negative, its risk beats
    ``gt_weight = 0`` (the best weight in [0, 1]: the risk is convex), the refit route agrees to 1e-8,
    and the sign changes at a finite noise level (positive at low noise). "High" is relative to the
    ridge: the table gives the optimum per noise and the noise where its sign changes, which grows
    with the ridge; ``high_noise = 10`` (signal-to-noise 0.01) lies above it for every default ridge.
    ``fast`` changes nothing here (the closed form takes well under a second).
    """
    rows, ok = _regression_part(fast, n, p, noises, ridges, high_noise, seed)
    lines = [f"ridge regression, n = {n}, p = {p}, ||theta*|| = 1: optimal gt_weight (= 1 - xi*) of step 2 for "
             "E||theta - theta*||^2; risks at noise " + format(high_noise, "g"),
             f"{'ridge':>7} " + " ".join(f"{'s=' + format(s, 'g'):>8}" for s in noises)
             + f" {'sign flips at s':>15} {'risk(gt*)':>10} {'risk(0)':>9} {'teacher':>9}  result"]
    for r in rows:
        lines.append(f"{r['ridge']:7g} " + " ".join(f"{w:8.3f}" for w in r["weights"])
                     + f" {r['crossing']:15.3f} {r['risk_opt']:10.5f} {r['risk_zero']:9.5f} {r['risk_teacher']:9.5f}"
                     f"  {'PASS' if r['passed'] else 'FAIL'}")
    measured = f"gt* at s={high_noise:g}: " + ", ".join(f"{r['w_high']:.3f} (ridge {r['ridge']:g})" for r in rows) \
        + "; sign flips at s = " + ", ".join(f"{r['crossing']:.2f}" for r in rows)
    values = dict(ridges=np.array(ridges, dtype=float), noises=np.array(noises, dtype=float),
                  weights=np.array([r["weights"] for r in rows]), crossing=np.array([r["crossing"] for r in rows]),
                  high_weight=np.array([r["w_high"] for r in rows]))
    return ClaimResult(
        claim="das_sanghavi_regression", paper=PAPER,
        setting=f"linear ridge self-distillation, x ~ N(0, I), n={n}, p={p}, ridges {', '.join(format(r, 'g') for r in ridges)}",
        published=REGRESSION_PUBLISHED, measured=measured,
        criterion=f"gt* < 0 at noise {high_noise:g} for every ridge, beating gt = 0; refits agree to 1e-8; sign flips "
                  "at a finite noise",
        passed=bool(all(ok)), table="\n".join(lines), values=values)


@claim("das_sanghavi_classification", paper=PAPER,
       summary="softmax regression on corrupted digits: teacher weight xi > 1 beats xi <= 1 at 30% and 50% corruption")
def das_sanghavi_classification(fast: bool = False, *, corruptions=(0.3, 0.5),
                                teacher_weights=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
                                classifier_ridges=(1e-3, 1e-2, 1e-1), default_ridges=(1e-2, 1e-2), seeds: int = 8,
                                n_val: int = 300, seed: int = 0) -> ClaimResult:
    """(b) Softmax students with teacher weight ``xi > 1`` beat those with ``xi <= 1`` on corrupted labels.

    Setting (chosen; theirs could not be read): scikit-learn's digits (1797 images, 64 standardised
    pixels, 10 classes), a third held out as clean test set, ``n_val`` noisy validation labels, the
    rest noisy training labels; each label corrupted with probability ``c`` to a uniformly drawn
    OTHER class. Teacher: L2-regularised multinomial logistic regression (strength ``lam_t``, mean
    cross-entropy + ``lam/2 ||W||^2``) on the noisy one-hot labels; student: the same with strength
    ``lam_s`` on ``xi * p_teacher + (1 - xi) * onehot`` (:func:`fit_softmax_regression`). On each side
    of ``xi = 1`` the weight is chosen on the noisy validation labels; the difference of the two
    students' clean test accuracies is averaged over ``seeds`` splits.

    PASS when, at ``default_ridges`` = (lam_t, lam_s) = (1e-2, 1e-2) (declared before the full run)
    and at every corruption level, the mean difference exceeds 2 standard errors (paired over splits).
    ``fast`` runs the verdict cell only, on the same splits (so fast and full give the same verdict);
    the full run adds every ``(lam_t, lam_s)`` in ``classifier_ridges`` x ``classifier_ridges``: the
    ordering depends on that regularisation (it holds when both are weak, reverses when strong).
    """
    pairs = [tuple(default_ridges)]
    if not fast:
        pairs += [(a, b) for a in classifier_ridges for b in classifier_ridges if (a, b) != tuple(default_ridges)]
    table, ok = _classification_part(fast, corruptions, teacher_weights, pairs, tuple(default_ridges), seeds,
                                     n_val, seed)
    xi = np.asarray(teacher_weights, dtype=np.float64)
    lines = [f"softmax regression on digits, clean test accuracy (mean over {seeds} splits) per teacher weight xi;",
             "diff = test accuracy of the validated xi > 1 minus that of the validated xi <= 1 (+- SE, paired)",
             f"{'c':>4} {'lam_t':>6} {'lam_s':>6} " + " ".join(f"{'xi=' + format(x, 'g'):>7}" for x in xi)
             + f" {'diff':>8} {'SE':>6}"]
    for (c, lt, ls), row in sorted(table.items()):
        mark = "  <- verdict" if (lt, ls) == tuple(default_ridges) else ""
        lines.append(f"{c:4g} {lt:6g} {ls:6g} " + " ".join(f"{a:7.3f}" for a in row["acc"])
                     + f" {row['diff']:+8.3f} {row['se']:6.3f}{mark}")
    d = {c: table[(c, *default_ridges)] for c in corruptions}
    measured = "acc(xi>1) - acc(xi<=1): " + ", ".join(
        f"{d[c]['diff']:+.3f} +- {d[c]['se']:.3f} at {int(round(100 * c))}%" for c in corruptions) \
        + f" (lam_t, lam_s = {default_ridges[0]:g}, {default_ridges[1]:g})"
    return ClaimResult(
        claim="das_sanghavi_classification", paper=PAPER,
        setting=f"L2 softmax regression, digits, {'/'.join(str(int(round(100 * c))) + '%' for c in corruptions)} "
                f"corrupted labels, {seeds} splits",
        published=CLASSIFICATION_PUBLISHED, measured=measured,
        criterion=f"at lam_t, lam_s = {default_ridges[0]:g}, {default_ridges[1]:g}: acc(xi>1) - acc(xi<=1) > 2 SE at "
                  "each corruption level",
        passed=bool(all(ok)), table="\n".join(lines), values=dict(teacher_weights=xi, classification=table))
