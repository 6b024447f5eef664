"""Figures of the label-noise claims: Das & Sanghavi's weight beyond the teacher, Garg et al.'s 1/phi.

Each figure is a :class:`~analysis.figures.spec.FigureSpec`: the data step runs the claim from
:mod:`kerneldistill.claims` (its fast size with ``fast=True``) plus exact curves on finer grids, and
writes one tidy CSV (columns ``panel, series, x, y, se``); the plot step reads only that file.

========================  ==========================================================================
figure                    content
========================  ==========================================================================
claim_das_sanghavi        left: the optimal gt_weight (= 1 - teacher weight) of linear ridge
                          self-distillation against the label noise, per ridge (closed form); right:
                          clean test accuracy of softmax students on digits against the teacher
                          weight xi, at 30% and 50% corrupted labels, weak and strong regularisation
claim_fresh_data_mixing   left: long-run risk of min-norm retraining on fresh labels against the
                          real-data weight (simulation and exact), with 1/phi; right: the optimal
                          weight of ridge against the ridge (exact, fixed design; simulated, fixed
                          and fresh covariates) above the bound 1/2
========================  ==========================================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["CLAIM_NOISE_FIGURES"]


def _columns():
    return {"panel": [], "series": [], "x": [], "y": [], "se": []}


def _add(cols, panel, series, xs, ys, ses=None):
    ses = np.full(len(xs), np.nan) if ses is None else ses
    for x, y, s in zip(xs, ys, ses):
        cols["panel"].append(panel)
        cols["series"].append(series)
        cols["x"].append(float(x))
        cols["y"].append(float(y))
        cols["se"].append(float(s))


# --------------------------------------------------------------------------------------------------
# claim_das_sanghavi


def _das_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims.das_sanghavi import (
        ExpectedParameterError,
        das_sanghavi_classification,
        das_sanghavi_regression,
        regression_setting,
    )
    from kerneldistill.estimator import KernelDistiller
    from kerneldistill.optimal import optimal_gt_weight

    regression = das_sanghavi_regression(fast=fast)
    # fast: the verdict cell and the strongest regularisation (where the ordering reverses), on 3 splits
    classification = das_sanghavi_classification(fast=False, classifier_ridges=(1e-1,), seeds=3) if fast \
        else das_sanghavi_classification(fast=False)
    cols = _columns()
    n, p = 200, 50
    X, theta, _ = regression_setting(n, p, 0.0, seed=0)
    model = KernelDistiller("linear").fit(X, X @ theta)
    noises = np.geomspace(0.05, 30.0, 40 if fast else 120)
    for lam in regression.values["ridges"]:
        w = [optimal_gt_weight(ExpectedParameterError(model.evals_, model.evecs_, X @ theta, s**2, lam, 1.0),
                               constrained=False) for s in noises]
        _add(cols, "regression", f"ridge {lam:g}", noises, w)
    xi = classification.values["teacher_weights"]
    for (c, lt, ls), row in sorted(classification.values["classification"].items()):
        _add(cols, "classification", f"{int(round(100 * c))}% corrupted, lam_t={lt:g}, lam_s={ls:g}", xi, row["acc"])
    return write_csv(Path(out_dir) / "claim_das_sanghavi.csv", cols)


def _das_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_r, ax_c) = new_figure("full", height=2.4, ncols=2)
    reg = d["panel"] == "regression"
    for i, series in enumerate(dict.fromkeys(d["series"][reg])):
        sel = reg & (d["series"] == series)
        ax_r.plot(d["x"][sel], d["y"][sel], color=PALETTE[i], lw=1.2, label=series)
    ax_r.axhline(0.0, color="0.3", lw=0.8, ls=":")
    ax_r.set_xscale("log")
    ax_r.set_xlabel("label noise $s$ (signal $\\|\\theta^*\\| = 1$)")
    ax_r.set_ylabel("optimal gt_weight $= 1 - \\xi^*$")
    ax_r.set_title("(a) ridge: $\\xi^* > 1$ below the dotted line")
    ax_r.legend(loc="lower left", fontsize=6)
    cls = d["panel"] == "classification"
    for i, series in enumerate(dict.fromkeys(d["series"][cls])):
        sel = cls & (d["series"] == series)
        strong = "lam_t=0.1" in series
        ax_c.plot(d["x"][sel], d["y"][sel], "s--" if strong else "o-", ms=3, lw=1.0,
                  color=PALETTE[(i // 2) if not strong else 3 + (i // 2)], alpha=0.6 if strong else 1.0, label=series)
    ax_c.axvline(1.0, color="0.3", lw=0.8, ls=":")
    ax_c.set_xlabel("teacher weight $\\xi$")
    ax_c.set_ylabel("clean test accuracy")
    ax_c.set_title("(b) softmax regression, digits")
    ax_c.legend(loc="lower left", fontsize=5)
    return save_figure(fig, out_dir, "claim_das_sanghavi")


# --------------------------------------------------------------------------------------------------
# claim_fresh_data_mixing


def _fresh_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims.garg_mixing import _beta, _covariance, garg_mixing
    from kerneldistill.fresh_data import GOLDEN_WEIGHT, stationary_risk_fixed_design

    result = garg_mixing(fast=fast)
    v = result.values
    cols = _columns()
    # left: the simulated long-run risk and the exact curve, each relative to its own minimum
    grid = v["minnorm_fixed_grid"]
    _add(cols, "minnorm", "simulation (fixed design)", grid, v["minnorm_fixed_risk"] / v["minnorm_fixed_risk"].min())
    g = (grid**2 + (1 - grid) ** 2) / (1 - (1 - grid) ** 2)  # the exact curve up to an additive constant
    sim = v["minnorm_fixed_risk"]
    # the exact stationary risk is const + V g(w); its two constants are fitted to the simulation for display
    A = np.c_[np.ones_like(g), g]
    coef = np.linalg.lstsq(A, sim, rcond=None)[0]
    _add(cols, "minnorm", "exact (fitted level)", grid, (A @ coef) / sim.min())
    _add(cols, "minnorm_weight", "estimate", [v["minnorm_fixed_weight"]], [0.0], [v["minnorm_fixed_stderr"]])
    _add(cols, "minnorm_weight", "1/phi", [GOLDEN_WEIGHT], [0.0])
    _add(cols, "minnorm_weight", "fresh covariates", [v["minnorm_fresh_weight"]], [0.0], [v["minnorm_fresh_stderr"]])
    _add(cols, "minnorm_weight", "fresh covariates, exact", [v["minnorm_fresh_exact"]], [0.0])
    # right: the ridge optimum, exact on a fine ridge grid (fixed design), simulated at the claim's ridges
    n = 50 if fast else 100
    p = 2 * n
    Sigma, beta = _covariance(p, 3.0), _beta(p, 0)
    X = np.random.default_rng(1).standard_normal((n, p)) @ np.sqrt(Sigma)
    fine = np.linspace(0.3, 1.0, 701)
    ridges = np.geomspace(0.1, 1000.0, 25 if fast else 60)
    exact = [fine[np.argmin(stationary_risk_fixed_design(X, beta, Sigma, 1.0, fine, lam))] for lam in ridges]
    _add(cols, "ridge", "exact, fixed design", ridges, exact)
    _add(cols, "ridge", "simulation, fixed design", v["ridge"], v["ridge_fixed_weight"], v["ridge_fixed_stderr"])
    _add(cols, "ridge", "simulation, fresh covariates", v["ridge"], v["ridge_fresh_weight"], v["ridge_fresh_stderr"])
    return write_csv(Path(out_dir) / "claim_fresh_data_mixing.csv", cols)


def _fresh_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_l, ax_r) = new_figure("full", height=2.4, ncols=2)
    for i, series in enumerate(("simulation (fixed design)", "exact (fitted level)")):
        sel = (d["panel"] == "minnorm") & (d["series"] == series)
        ax_l.plot(d["x"][sel], d["y"][sel], "o" if i == 0 else "-", ms=2.5, lw=1.0, color=PALETTE[i], label=series)
    marks = d["panel"] == "minnorm_weight"
    styles = {"estimate": (PALETTE[0], "-"), "1/phi": ("0.2", ":"), "fresh covariates": (PALETTE[3], "-"),
              "fresh covariates, exact": (PALETTE[3], ":")}
    for x, se, series in zip(d["x"][marks], d["se"][marks], d["series"][marks]):
        colour, ls = styles[series]
        ax_l.axvline(x, color=colour, ls=ls, lw=0.9, label=f"{series}: {x:.4f}" + (f" $\\pm$ {se:.4f}" if se == se else ""))
    ax_l.set_xlabel("real-data weight $w$ (gt_weight)")
    ax_l.set_ylabel("long-run risk / its minimum")
    ax_l.set_title("min-norm interpolation, fresh labels")
    ax_l.legend(loc="upper center", fontsize=5)
    ridge = d["panel"] == "ridge"
    sel = ridge & (d["series"] == "exact, fixed design")
    ax_r.plot(d["x"][sel], d["y"][sel], color=PALETTE[0], lw=1.2, label="exact, fixed design")
    for i, series in enumerate(("simulation, fixed design", "simulation, fresh covariates")):
        sel = ridge & (d["series"] == series)
        ax_r.errorbar(d["x"][sel], d["y"][sel], yerr=2 * d["se"][sel], fmt="os"[i], ms=3, lw=0.8,
                      color=PALETTE[i * 3], label=f"{series} ($\\pm$ 2 SE)")
    ax_r.axhline(0.5, color="0.3", ls=":", lw=0.8, label="bound 1/2")
    ax_r.set_xscale("log")
    ax_r.set_xlabel("ridge (sum-of-squares loss)")
    ax_r.set_ylabel("optimal real-data weight in [0.3, 1]")
    ax_r.set_title("ridge: optimum $\\geq 1/2$")
    ax_r.legend(loc="upper left", fontsize=5)
    return save_figure(fig, out_dir, "claim_fresh_data_mixing")


CLAIM_NOISE_FIGURES = {
    "claim_das_sanghavi": FigureSpec("claim_das_sanghavi", _das_data, _das_plot,
                                     "Das & Sanghavi: optimal teacher weight beyond 1 (ridge, closed form; softmax on digits)", fast_report=False),
    "claim_fresh_data_mixing": FigureSpec("claim_fresh_data_mixing", _fresh_data, _fresh_plot,
                                          "Garg et al.: optimal real-data weight 1/phi (min-norm) and >= 1/2 (ridge)", fast_report=False),
}
