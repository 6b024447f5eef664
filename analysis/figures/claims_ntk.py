"""Figures of the infinite-width claims (:mod:`kerneldistill.claims.infinite_width`).

Each figure is a :class:`~analysis.figures.spec.FigureSpec` (a data step that runs the claim with fixed seeds and
writes one tidy CSV, and a plot step that reads only that file), registered in ``analysis/figures/__init__.py``.

=============================  =====================================================================
figure                         content
=============================  =====================================================================
claim_ntk_convergence          relative distance of the eNTK to the infinite-width NTK against width,
                               log-log, per activation (erf, ReLU, tanh), each seed and the mean,
                               with the fitted slope and the width^(-1/2) reference
claim_ntk_bridge_weight        the bridge's optimal ground-truth weight per width: numpy networks
                               (mean, 3-seed range), the bridge's published kernel and deep
                               weights, and the infinite-width NTK's weight as a line
=============================  =====================================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["CLAIM_NTK_FIGURES"]


# --------------------------------------------------------------------------------------------------
# claim_ntk_convergence


def _convergence_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims import REGISTRY

    r = REGISTRY["ntk_width_convergence"].run(fast=fast)
    v = r.values
    cols = {"activation": [], "width": [], "seed": [], "distance": [], "slope": [], "slope_se": []}
    for a in ("erf", "relu", "tanh"):
        for i, width in enumerate(v["widths"]):
            for j, dist in enumerate(v[a]["distance"][i]):
                cols["activation"].append(a)
                cols["width"].append(width)
                cols["seed"].append(j)
                cols["distance"].append(dist)
                cols["slope"].append(v[a]["slope"])
                cols["slope_se"].append(v[a]["slope_se"])
    return write_csv(Path(out_dir) / "claim_ntk_convergence.csv", cols)


def _convergence_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    acts = list(dict.fromkeys(d["activation"]))
    fig, axes = new_figure("full", height=2.3, ncols=len(acts), sharey=True)
    for ax, c, a in zip(np.atleast_1d(axes), PALETTE, acts):
        sel = d["activation"] == a
        widths = np.unique(d["width"][sel])
        ax.loglog(d["width"][sel], d["distance"][sel], ".", color="0.7", ms=2.5, label="each seed", zorder=1)
        mean = np.array([d["distance"][sel & (d["width"] == w)].mean() for w in widths])
        ax.loglog(widths, mean, "o", color=c, ms=3.5, label="mean over seeds", zorder=3)
        slope, se = float(d["slope"][sel][0]), float(d["slope_se"][sel][0])
        # The least-squares line of log(mean) on log(width): the stored slope, its own intercept.
        intercept = float(np.mean(np.log(mean)) - slope * np.mean(np.log(widths)))
        ax.loglog(widths, np.exp(intercept) * widths ** slope, "-", color=c, lw=1.0,
                  label=f"fit: slope {slope:.2f} $\\pm$ {se:.2f}", zorder=2)
        ax.loglog(widths, mean[0] * (widths / widths[0]) ** -0.5, color="k", ls=":", lw=0.8,
                  label=r"$\propto$ width$^{-1/2}$")
        ax.set_xticks(widths)
        ax.set_xticklabels([str(int(w)) for w in widths], fontsize=6)
        ax.minorticks_off()
        ax.set_xlabel("width (NTK parameterisation)")
        ax.set_title(a)
        ax.legend(loc="lower left", fontsize=5.5)
    np.atleast_1d(axes)[0].set_ylabel(r"$\|\hat\Theta_n - \Theta\|_F / \|\Theta\|_F$")
    return save_figure(fig, out_dir, "claim_ntk_convergence")


# --------------------------------------------------------------------------------------------------
# claim_ntk_bridge_weight


def _bridge_weight_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims import REGISTRY

    v = REGISTRY["ntk_bridge_infinite_width"].run(fast=fast).values
    cols = {"width": [], "numpy_mean": [], "numpy_se": [], "range_low": [], "range_high": [],
            "bridge_kernel": [], "bridge_deep": [], "w_inf": []}
    for i, width in enumerate(v["widths"]):
        cols["width"].append(width)
        cols["numpy_mean"].append(v["numpy_mean"][i])
        cols["numpy_se"].append(v["numpy_se"][i])
        cols["range_low"].append(v["three_seed_range"][i][0])
        cols["range_high"].append(v["three_seed_range"][i][1])
        cols["bridge_kernel"].append(v["bridge_kernel_weights"][i])
        cols["bridge_deep"].append(v["bridge_deep_weights"][i])
        cols["w_inf"].append(v["w_inf"])
    return write_csv(Path(out_dir) / "claim_ntk_bridge_weight.csv", cols)


def _bridge_weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    w = d["width"]
    fig, ax = new_figure("column", height=2.6)
    ax.fill_between(w, d["range_low"], d["range_high"], color=PALETTE[0], alpha=0.18, lw=0,
                    label="3-seed range, numpy networks (99.73%)")
    ax.errorbar(w, d["numpy_mean"], yerr=d["numpy_se"], fmt="o-", color=PALETTE[0], ms=3, lw=1.0, capsize=2,
                label="numpy networks: mean $\\pm$ se")
    ax.plot(w, d["bridge_kernel"], "s--", color=PALETTE[1], ms=3, lw=0.9, label="bridge: kernel (eNTK, 3 seeds)")
    ax.plot(w, d["bridge_deep"], "x--", color=PALETTE[3], ms=4, lw=0.9, label="bridge: deep grid")
    ax.axhline(float(d["w_inf"][0]), color="k", ls=":", lw=1.0, label=f"infinite-width NTK: {d['w_inf'][0]:.3f}")
    ax.set_xscale("log")
    ax.set_xticks(w)
    ax.set_xticklabels([str(int(x)) for x in w], fontsize=6)
    ax.minorticks_off()
    ax.set_xlabel("width")
    ax.set_ylabel(r"optimal ground-truth weight $\alpha^*$ (step 2)")
    ax.set_title("the bridge's weights and their infinite-width limit")
    ax.legend(loc="upper right", fontsize=5.5)
    return save_figure(fig, out_dir, "claim_ntk_bridge_weight")


CLAIM_NTK_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("claim_ntk_convergence", _convergence_data, _convergence_plot,
                   "eNTK at initialisation vs the infinite-width NTK: relative distance against width, fitted slope", fast_report=False),
        FigureSpec("claim_ntk_bridge_weight", _bridge_weight_data, _bridge_weight_plot,
                   "the bridge's per-width optimal weights (numpy networks, published kernel and deep) and the "
                   "infinite-width NTK's weight", fast_report=False),
    )
}
