"""Figures of claims 5 and 6: label averaging and partial labels (Jeong & Chung), self-distillation on a
noisy Gaussian mixture (Takanami, Takahashi & Sakata).

Each figure is a :class:`~analysis.figures.spec.FigureSpec` (a data step computing with
:mod:`kerneldistill` on fixed seeds and writing one tidy CSV, and a plot step that reads only that file),
registered in ``analysis/figures/__init__.py`` and drawn by ``python -m analysis figures``.

==========================  ========================================================================
figure                      content
==========================  ========================================================================
claim_label_averaging       accuracy against the number of self-distillation rounds: the paper's
                            block Gram matrix (closed form; the round count to 100% marked), with
                            the eps = 0.05 feature noise, and digits (test accuracy); the one-round
                            partial-label (PLL) student as a horizontal line
claim_noisy_gmm             the gain of early-stopped self-distillation over the teacher against
                            alpha = n/dim (hard and soft pseudo-labels, with standard errors), and
                            the error along the stages at the alpha of the largest gain
==========================  ========================================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["CLAIM_LABELS_FIGURES"]


# --------------------------------------------------------------------------------------------------
# claim_label_averaging


def _label_averaging_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims.jeong_chung import DEFAULTS, digits_linear_probe
    from kerneldistill.linear_probe import (block_gram, block_rounds, corrupt_labels, noisy_block_gram,
                                            paper_ridge, partial_label_student, ridge_rounds,
                                            rounds_to_full_accuracy)

    K, n, lam = DEFAULTS["n_classes"], DEFAULTS["n_per_class"], DEFAULTS["lam"]
    intra, inter, eta, eps = DEFAULTS["intra"], DEFAULTS["inter"], DEFAULTS["corruption"], DEFAULTS["epsilon"]
    cols = {"panel": [], "curve": [], "corruption": [], "round": [], "accuracy": []}

    def add(panel, curve, corruption, rnd, acc):
        for key, value in zip(cols, (panel, curve, float(corruption), int(rnd), float(acc))):
            cols[key].append(value)

    rounds = 20
    y = np.repeat(np.arange(K), n)
    ridge = paper_ridge(lam, K, y.size)
    labels = corrupt_labels(y, K, eta, seed=2)
    closed = block_rounds(y, labels, K, intra, inter, ridge, range(1, rounds + 1))
    for t, P in closed.items():
        add("synthetic", "multi-round, block Gram (closed form)", eta, t, np.mean(P.argmax(1) == y))
    t_star = rounds_to_full_accuracy(y, labels, K, intra, inter, ridge)
    add("synthetic", "round count (closed form)", eta, t_star if t_star is not None else 0, 1.0)
    pll, _ = partial_label_student(block_gram(y, intra, inter), closed[1], ridge)
    add("synthetic", "PLL, block Gram", eta, 1, np.mean(pll.argmax(1) == y))
    G, _ = noisy_block_gram(n, K, intra, inter, eps, seed=0)
    train, _ = ridge_rounds(G, np.eye(K)[labels], ridge, rounds)
    for t, P in enumerate(train, 1):
        add("synthetic", f"multi-round, eps = {eps}", eta, t, np.mean(P.argmax(1) == y))
    pll, _ = partial_label_student(G, train[0], ridge)
    add("synthetic", f"PLL, eps = {eps}", eta, 1, np.mean(pll.argmax(1) == y))
    corruptions = (0.5, 0.6)
    runs = [digits_linear_probe(s, corruptions, rounds, lam) for s in range(2 if fast else 10)]
    for i, corruption in enumerate(corruptions):
        for t, acc in enumerate(np.mean([r[i][0] for r in runs], axis=0), 1):
            add("digits", "multi-round", corruption, t, acc)
        add("digits", "PLL", corruption, 1, np.mean([r[i][1] for r in runs]))
    return write_csv(Path(out_dir) / "claim_label_averaging.csv", cols)


def _label_averaging_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_s, ax_d) = new_figure("full", height=2.4, ncols=2)
    syn = d["panel"] == "synthetic"
    colours = iter(PALETTE)
    for curve in [c for c in dict.fromkeys(d["curve"][syn]) if c.startswith("multi")]:
        sel = syn & (d["curve"] == curve)
        colour = next(colours)
        ax_s.plot(d["round"][sel], d["accuracy"][sel], "o-", ms=2.5, lw=1.0, color=colour, label=curve)
        pll = syn & (d["curve"] == "PLL, " + curve.split(", ", 1)[1].replace(" (closed form)", ""))
        if pll.any():
            ax_s.axhline(d["accuracy"][pll][0], color=colour, ls="--", lw=0.9, label="PLL (1 round), " +
                         curve.split(", ", 1)[1].replace(" (closed form)", ""))
    star = syn & (d["curve"] == "round count (closed form)")
    if star.any() and d["round"][star][0] > 0:
        ax_s.axvline(d["round"][star][0], color="0.4", ls=":", lw=0.8, label="100% from (closed form)")
    ax_s.set_xlabel("rounds $t$ (1 = the teacher)")
    ax_s.set_ylabel("accuracy vs true labels (train)")
    ax_s.set_title(f"synthetic, corruption {d['corruption'][syn][0]:g}")
    ax_s.legend(loc="lower right", fontsize=5.5)
    dig = d["panel"] == "digits"
    for colour, corruption in zip(PALETTE, dict.fromkeys(d["corruption"][dig])):
        sel = dig & (d["corruption"] == corruption) & (d["curve"] == "multi-round")
        ax_d.plot(d["round"][sel], d["accuracy"][sel], "o-", ms=2.5, lw=1.0, color=colour,
                  label=f"multi-round, corruption {corruption:g}")
        pll = dig & (d["corruption"] == corruption) & (d["curve"] == "PLL")
        ax_d.axhline(d["accuracy"][pll][0], color=colour, ls="--", lw=0.9, label=f"PLL (1 round), {corruption:g}")
    ax_d.set_xlabel("rounds $t$")
    ax_d.set_ylabel("test accuracy")
    ax_d.set_title("digits, linear probe on pixels")
    ax_d.legend(loc="lower right", fontsize=5.5)
    return save_figure(fig, out_dir, "claim_label_averaging")


# --------------------------------------------------------------------------------------------------
# claim_noisy_gmm


def _noisy_gmm_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims.takanami import FAST, FULL, run_study
    from kerneldistill.noisy_gmm import bayes_error

    setting = FAST if fast else FULL
    study = run_study(setting["dim"], setting["alphas"], setting["seeds"], setting["stages"])
    cols = {"alpha": [], "labels": [], "stage": [], "error_mean": [], "error_se": [], "gain_mean": [], "gain_se": []}

    def add(alpha, labels, stage, errors, teacher):
        errors, gain = np.asarray(errors), np.asarray(teacher) - np.asarray(errors)
        se = lambda x: float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
        for key, value in zip(cols, (float(alpha), labels, int(stage), float(errors.mean()), se(errors),
                                     float(gain.mean()), se(gain))):
            cols[key].append(value)

    for alpha, r in study.items():
        teacher = np.array(r["teacher"])
        add(alpha, "teacher", 0, teacher, teacher)
        for labels in ("hard", "soft"):
            paths = np.array(r[labels])
            for stage in range(1, paths.shape[1]):
                add(alpha, labels, stage, paths[:, stage], teacher)
            add(alpha, labels, -1, r[f"{labels}_es"], teacher)     # stage -1: the early-stopped stage
    add(0, "bayes", 0, [bayes_error(0.5)], [bayes_error(0.5)])
    return write_csv(Path(out_dir) / "claim_noisy_gmm.csv", cols)


def _noisy_gmm_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_g, ax_s) = new_figure("full", height=2.4, ncols=2)
    es = d["stage"] == -1
    for colour, labels in zip(PALETTE, ("hard", "soft")):
        sel = es & (d["labels"] == labels)
        ax_g.errorbar(d["alpha"][sel], d["gain_mean"][sel], yerr=d["gain_se"][sel], fmt="o-", ms=3, lw=1.0,
                      capsize=2, color=colour, label=f"{labels} pseudo-labels, early-stopped")
    ax_g.axhline(0, color="0.5", lw=0.6)
    ax_g.set_xscale("log")
    ax_g.set_xlabel(r"$\alpha = n/\mathrm{dim}$")
    ax_g.set_ylabel("teacher error - SD error")
    ax_g.set_title("gain of self-distillation")
    ax_g.legend(loc="best", fontsize=6)
    hard_es = es & (d["labels"] == "hard")
    peak = d["alpha"][hard_es][int(np.argmax(d["gain_mean"][hard_es]))]
    at = (d["alpha"] == peak) & (d["stage"] >= 0)
    teacher = at & (d["labels"] == "teacher")
    for colour, labels in zip(PALETTE, ("hard", "soft")):
        sel = at & ((d["labels"] == labels) | (d["labels"] == "teacher"))
        ax_s.errorbar(d["stage"][sel], d["error_mean"][sel], yerr=d["error_se"][sel], fmt="o-", ms=3, lw=1.0,
                      capsize=2, color=colour, label=f"{labels} pseudo-labels")
    ax_s.axhline(d["error_mean"][d["labels"] == "bayes"][0], color="0.3", ls=":", lw=0.9, label="Bayes error")
    ax_s.set_xticks(np.unique(d["stage"][at]))
    ax_s.set_xlabel("stage (0 = the teacher)")
    ax_s.set_ylabel("population error (clean labels)")
    ax_s.set_title(rf"stages at $\alpha$ = {peak:g} (largest gain); teacher {d['error_mean'][teacher][0]:.3f}")
    ax_s.legend(loc="best", fontsize=6)
    return save_figure(fig, out_dir, "claim_noisy_gmm")


CLAIM_LABELS_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("claim_label_averaging", _label_averaging_data, _label_averaging_plot,
                   "Jeong & Chung: accuracy against rounds (closed form, eps-noise, digits) and the PLL student", fast_report=False),
        FigureSpec("claim_noisy_gmm", _noisy_gmm_data, _noisy_gmm_plot,
                   "Takanami et al.: gain of hard vs soft SD against alpha, and the error along the stages", fast_report=False),
    )
}
