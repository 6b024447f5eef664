"""Figures of kernel ridge self-distillation ([BA21] toy problem, optimal weights, [MFB20] collapse).

Each figure is a :class:`~analysis.figures.spec.FigureSpec`: a data step that computes the numbers
with :mod:`kerneldistill` (fixed data, no randomness) and writes one NPZ or tidy CSV, and a plot step
that reads only that file. ``python -m analysis verify``, ``examples/toy_borup_andersen.py`` and
``python -m analysis figures`` all draw through these functions.

=========================  =========================================================================
figure                     content
=========================  =========================================================================
kernel_toy_fits            fits per step on the toy data, gt_weight 0 and 0.25, the limit dashed
kernel_toy_filters         filter diagonals b^(t) per eigen-index (bars per step, limit as ticks)
kernel_toy_ratios          consecutive ratios b_k / b_(k+1) per step
kernel_toy_loss            loss against sin(2 pi x) per step for several weights, limits as lines
kernel_optimal_weight      greedy optimal weight per step, and the loss of the optimal schedules
kernel_one_shot            [DPR26]'s one-shot weight against the oracle optimum as n grows
kernel_mobahi_collapse     [MFB20]'s fixed budget: fit norm and c_t per round, with the bounds
=========================  =========================================================================
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps, ticker

from analysis.figures.spec import FigureSpec, read_csv, write_csv, write_npz
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["KERNEL_FIGURES", "TOY_LOSS_WEIGHTS"]

TOY_LOSS_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def _steps_colours(n: int):
    """``n`` colours of a sequential, colour-blind-safe map (viridis), light (early) to dark (late)."""
    return [colormaps["viridis"](v) for v in np.linspace(0.85, 0.1, n)]


def _weight_label(w: float) -> str:
    return rf"$\alpha = {w:g}$"


def _toy_data(out_dir: Path, fast: bool = False) -> Path:
    """The toy results ([BA21]'s weights, steps 1..6 and the limit) as one NPZ, ``kernel_toy.npz``,
    shared by the three toy figures that draw from it. The toy problem is tiny: ``fast`` changes
    nothing here."""
    from kerneldistill.toy import TOY_GT_WEIGHTS, TOY_STEPS, TOY_X, TOY_Y, toy_results

    res = toy_results(TOY_GT_WEIGHTS, TOY_STEPS)
    return write_npz(Path(out_dir) / "kernel_toy.npz", x_eval=res.x_eval, truth=res.truth, x_train=TOY_X[:, 0],
                     y_train=TOY_Y, gt_weights=res.gt_weights, steps=res.steps, evals=res.evals, fits=res.fits,
                     filters=res.filters, ratios=res.ratios, loss=res.loss)


def _step_label(s: float) -> str:
    return "limit" if math.isinf(s) else f"step {int(s)}"


# --------------------------------------------------------------------------------------------------
# kernel_toy_fits


def _toy_fits_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    finite = np.isfinite(d["steps"])
    colours = _steps_colours(int(finite.sum()))
    fig, axes = new_figure("full", height=2.3, ncols=len(d["gt_weights"]), sharey=True)
    for ax, w, fits in zip(np.atleast_1d(axes), d["gt_weights"], d["fits"]):
        ax.plot(d["x_eval"], d["truth"], color="0.6", lw=2.2, alpha=0.6, label=r"$\sin(2\pi x)$", zorder=1)
        for s, f in zip(d["steps"], fits):
            if math.isinf(s):
                ax.plot(d["x_eval"], f, color="k", ls="--", lw=1.0, label="limit", zorder=3)
            else:
                ax.plot(d["x_eval"], f, color=colours[int(s) - 1], lw=1.0, label=_step_label(s), zorder=2)
        ax.plot(d["x_train"], d["y_train"], "o", color="k", ms=3.5, mfc="white", mew=0.8, label="data", zorder=4)
        ax.set_title(_weight_label(w) + (" (pure distillation)" if w == 0 else ""))
        ax.set_xlabel("$x$")
    np.atleast_1d(axes)[0].set_ylabel("$f^{(t)}(x)$")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", ncols=1)
    return save_figure(fig, out_dir, "kernel_toy_fits")


# --------------------------------------------------------------------------------------------------
# kernel_toy_filters


def _toy_filters_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    steps = d["steps"]
    finite = np.flatnonzero(np.isfinite(steps))
    colours = _steps_colours(len(finite))
    m = d["filters"].shape[-1]
    idx = np.arange(1, m + 1)
    width = 0.8 / len(finite)
    fig, axes = new_figure("full", height=2.2, ncols=len(d["gt_weights"]), sharey=True)
    for ax, w, b in zip(np.atleast_1d(axes), d["gt_weights"], d["filters"]):
        for j, i in enumerate(finite):
            ax.bar(idx - 0.4 + (j + 0.5) * width, b[i], width=width, color=colours[j], label=_step_label(steps[i]),
                   linewidth=0)
        for i in np.flatnonzero(~np.isfinite(steps)):
            # The limit as a black tick across each group: bars would hide the steps behind them.
            ax.hlines(b[i], idx - 0.45, idx + 0.45, color="k", lw=1.0, label="limit")
        ax.set_title(_weight_label(w))
        ax.set_xlabel(r"eigen-index $k$ (eigenvalues decreasing)")
        ax.set_xticks(idx)
        ax.set_ylim(0, 1)
    np.atleast_1d(axes)[0].set_ylabel(r"filter $b^{(t)}_k$")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "limit")  # matplotlib lists lines first
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside right center")
    return save_figure(fig, out_dir, "kernel_toy_filters")


# --------------------------------------------------------------------------------------------------
# kernel_toy_ratios


def _toy_ratios_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    steps = d["steps"]
    colours = _steps_colours(int(np.isfinite(steps).sum()))
    k = np.arange(1, d["ratios"].shape[-1] + 1)
    fig, axes = new_figure("full", height=2.2, ncols=len(d["gt_weights"]))
    for ax, w, ratios in zip(np.atleast_1d(axes), d["gt_weights"], d["ratios"]):
        for s, r in zip(steps, ratios):
            if math.isinf(s):
                if np.all(np.isnan(r)):
                    continue  # gt_weight 0: the limit is the zero filter, no ratio
                ax.plot(k, r, color="k", ls="--", lw=1.0, label="limit")
            else:
                ax.plot(k, r, "o-", color=colours[int(s) - 1], ms=2.5, lw=0.9, label=_step_label(s))
        ax.set_title(_weight_label(w))
        ax.set_xlabel(r"eigen-index $k$")
        ax.set_xticks(k)
        ax.axhline(1.0, color="0.6", lw=0.5)
    np.atleast_1d(axes)[0].set_ylabel(r"$b^{(t)}_k \,/\, b^{(t)}_{k+1}$")
    handles, labels = np.atleast_1d(axes)[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    return save_figure(fig, out_dir, "kernel_toy_ratios")


# --------------------------------------------------------------------------------------------------
# kernel_toy_loss


def _toy_loss_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.toy import toy_results

    steps = list(range(1, 7 if fast else 11)) + [math.inf]
    res = toy_results(TOY_LOSS_WEIGHTS, steps)
    W, S = res.loss.shape
    return write_csv(Path(out_dir) / "kernel_toy_loss.csv", {
        "gt_weight": np.repeat(res.gt_weights, S),
        "step": np.tile(res.steps, W),  # inf = the limit
        "loss": res.loss.ravel(),
    })


def _toy_loss_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, ax = new_figure("column", height=2.4)
    fin_all = np.isfinite(d["step"])
    # Limits far above every finite step (gt_weight 0: the zero function) would squash the curves:
    # they are listed in a note at the top instead of drawn.
    top = 1.04 * float(d["loss"][fin_all].max())
    off_scale = []
    for c, w in zip(PALETTE, np.unique(d["gt_weight"])):
        sel = d["gt_weight"] == w
        steps, loss = d["step"][sel], d["loss"][sel]
        fin = np.isfinite(steps)
        ax.plot(steps[fin], loss[fin], "o-", color=c, ms=2.5, lw=1.0, label=_weight_label(w))
        for limit in loss[~fin]:
            if limit <= top:
                ax.axhline(limit, color=c, ls=":", lw=0.9)
            else:
                off_scale.append(rf"$\alpha = {w:g}$: {limit:.3f}")
    ax.set_ylim(top=top)
    ax.set_xlabel("step $t$")
    ax.set_ylabel(r"loss vs $\sin(2\pi x)$")
    ax.set_xticks(np.unique(d["step"][fin_all]).astype(int))
    title = "dotted: limit" + (f" (off scale: {', '.join(off_scale)})" if off_scale else "")
    ax.legend(title=title, ncols=2, loc="upper left", title_fontsize=6.5)
    return save_figure(fig, out_dir, "kernel_toy_loss")


# --------------------------------------------------------------------------------------------------
# kernel_optimal_weight


def _optimal_weight_data(out_dir: Path, fast: bool) -> Path:
    """Greedy optimal schedules on the toy data, and the loss of each schedule fed back to the estimator.

    Criterion: MSE against sin(2 pi x) on the toy loss grid (``ReferenceRisk``, an oracle). Constant
    weights 0.25 and 1 (plain kernel ridge at every step) for comparison. [DPR26]'s one-shot estimate
    is not shown here: it is asymptotic in n, and 11 points are far from that regime (it picks
    weights of 1.5 to 7); ``kernel_one_shot`` shows it against the oracle as n grows.
    """
    from kerneldistill.estimator import KernelDistiller
    from kerneldistill.optimal import ReferenceRisk, greedy_schedule
    from kerneldistill.toy import TOY_GAMMA, TOY_RIDGE, TOY_X, TOY_Y, toy_distiller, toy_eval_points, toy_truth

    T = 6 if fast else 10
    model = toy_distiller()
    X_eval = toy_eval_points()
    truth = toy_truth(X_eval)
    oracle = ReferenceRisk.from_distiller(model, X_eval, truth)
    schedules = {
        "oracle, unconstrained": greedy_schedule(oracle, T, constrained=False).gt_weight,
        "oracle, on [0, 1]": greedy_schedule(oracle, T, constrained=True).gt_weight,
        "constant 0.25": np.full(T - 1, 0.25),
        "constant 1 (KRR)": np.full(T - 1, 1.0),
    }
    cols = {"schedule": [], "step": [], "gt_weight": [], "loss": []}
    for name, weights in schedules.items():
        fed = KernelDistiller("rbf", ridge=TOY_RIDGE, gt_weight=weights, steps=T, allow_any_weight=True,
                              gamma=TOY_GAMMA).fit(TOY_X, TOY_Y)
        loss = np.mean((fed.path(X_eval, list(range(1, T + 1))) - truth) ** 2, axis=1)
        cols["schedule"] += [name] * T
        cols["step"] += list(range(1, T + 1))
        cols["gt_weight"] += [math.nan] + list(weights)  # step 1 has no weight
        cols["loss"] += list(loss)
    return write_csv(Path(out_dir) / "kernel_optimal_weight.csv", cols)


def _optimal_weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    styles = {"oracle, unconstrained": ("o-", PALETTE[0]), "oracle, on [0, 1]": ("s--", PALETTE[1]),
              "constant 0.25": ("-", PALETTE[2]),
              "constant 1 (KRR)": ("-", "0.5")}
    fig, (ax_w, ax_l) = new_figure("full", height=2.2, ncols=2)
    for name in dict.fromkeys(d["schedule"]):
        sel = d["schedule"] == name
        marker, colour = styles.get(name, ("-", "k"))
        step, w, loss = d["step"][sel], d["gt_weight"][sel], d["loss"][sel]
        if name.startswith("oracle"):
            ax_w.plot(step[1:], w[1:], marker, color=colour, ms=3, lw=1.0, label=name)
        ax_l.plot(step, loss, marker, color=colour, ms=3, lw=1.0, label=name)
    ax_w.axhspan(0, 1, color="0.92", zorder=0, lw=0)
    ax_w.axhline(0, color="0.6", lw=0.5)
    ax_w.set_xlabel("step $t$")
    ax_w.set_ylabel(r"optimal ground-truth weight $\alpha_t$")
    ax_w.set_title("greedy optimum per step (grey: [0, 1])")
    ax_w.legend(loc="best")
    ax_l.set_xlabel("step $t$")
    ax_l.set_ylabel(r"loss vs $\sin(2\pi x)$")
    ax_l.set_title("loss of each schedule")
    ax_l.legend(loc="best")
    ax_w.set_xticks(np.unique(d["step"])[1:])
    ax_l.set_xticks(np.unique(d["step"]))
    return save_figure(fig, out_dir, "kernel_optimal_weight")


# --------------------------------------------------------------------------------------------------
# kernel_one_shot


def _one_shot_data(out_dir: Path, fast: bool) -> Path:
    """[DPR26]'s one-shot weight vs the oracle at step 2 as n grows (the data of the ``one_shot`` check):
    one row per size ``n`` and data set, from :func:`kerneldistill.verification.one_shot_weights`."""
    from kerneldistill.verification import ONE_SHOT_SIZES, one_shot_weights

    sizes, seeds = ONE_SHOT_SIZES[bool(fast)]
    oracle, one_shot = one_shot_weights(tuple(sizes), seeds)          # (len(sizes), seeds) each
    n = np.repeat(np.asarray(sizes), seeds)
    return write_csv(Path(out_dir) / "kernel_one_shot.csv", {
        "n": n, "data_set": np.tile(np.arange(seeds), len(sizes)), "oracle_weight": oracle.ravel(),
        "one_shot_weight": one_shot.ravel(), "abs_gap": np.abs(one_shot - oracle).ravel(),
    })


def _per_n(d, column: str):
    """``(sizes, mean, 25th percentile, 75th percentile)`` of ``column`` over the data sets of each ``n``."""
    sizes = np.unique(d["n"])
    values = [d[column][d["n"] == n] for n in sizes]
    return (sizes, np.array([np.mean(v) for v in values]), np.array([np.percentile(v, 25) for v in values]),
            np.array([np.percentile(v, 75) for v in values]))


def _one_shot_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    n_sets = len(np.unique(d["data_set"]))
    fig, (ax_w, ax_g) = new_figure("full", height=2.4, ncols=2)
    # Each data set as a dot (nudged left/right of its n so the two estimators do not hide each other), the
    # mean over data sets as the line, and the interquartile range as the band.
    for column, marker, colour, label, nudge in (("oracle_weight", "o-", PALETTE[0], "oracle (test MSE)", 0.94),
                                                 ("one_shot_weight", "^--", PALETTE[2], "one-shot [DPR26]", 1.06)):
        sizes, mean, lo, hi = _per_n(d, column)
        ax_w.scatter(d["n"] * nudge, d[column], s=4, color=colour, alpha=0.35, linewidths=0)
        ax_w.fill_between(sizes, lo, hi, color=colour, alpha=0.12, lw=0)
        ax_w.plot(sizes, mean, marker, color=colour, ms=3, lw=1.0, label=f"{label}: mean, IQR band, dots")
    ax_w.set_xscale("log")
    ax_w.set_xlabel("training points $n$")
    ax_w.set_ylabel(r"step-2 weight $\alpha$")
    ax_w.set_title(r"optimal ground-truth weight ($\alpha > 1$: over-regularised)")
    ax_w.legend(loc="lower right", fontsize=6)
    sizes, mean, lo, hi = _per_n(d, "abs_gap")
    ax_g.scatter(d["n"], d["abs_gap"], s=4, color=PALETTE[3], alpha=0.35, linewidths=0,
                 label=f"each of the {n_sets} data sets")
    ax_g.fill_between(sizes, lo, hi, color=PALETTE[3], alpha=0.12, lw=0, label="25th to 75th percentile")
    ax_g.loglog(sizes, mean, "o-", color=PALETTE[3], ms=3, lw=1.0, label=r"mean $|\hat\alpha - \alpha^*|$")
    ref = mean[0] * np.sqrt(sizes[0] / sizes)
    ax_g.loglog(sizes, ref, color="0.5", ls=":", lw=0.9, label=r"$\propto n^{-1/2}$")
    # Plain numbers on the log axis (the default labels minor ticks as "6 x 10^-1").
    ax_g.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_g.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax_g.yaxis.set_minor_formatter(ticker.NullFormatter())
    for ax in (ax_w, ax_g):  # tick at the measured sizes only, as plain numbers
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax_g.set_xlabel("training points $n$")
    ax_g.set_ylabel("gap to the oracle")
    ax_g.set_title(f"one-shot vs oracle ({n_sets} data sets per $n$)")
    ax_g.legend(loc="lower left", fontsize=6)
    return save_figure(fig, out_dir, "kernel_one_shot")


def _one_shot_caption(data_path: Path) -> str:
    d = read_csv(data_path)
    sizes, mean, lo, hi = _per_n(d, "abs_gap")
    slope = float(np.polyfit(np.log(sizes), np.log(mean), 1)[0])
    return (f"[DPR26]'s one-shot step-2 weight against the oracle optimum for n = {', '.join(str(int(n)) for n in sizes)} "
            f"(RBF kernel ridge on sine data, {len(np.unique(d['data_set']))} data sets per n; dots: each data set, "
            f"band: interquartile range). The mean gap falls from {mean[0]:.3f} at n = {int(sizes[0])} to "
            f"{mean[-1]:.3f} at n = {int(sizes[-1])} (log-log slope {slope:.2f}; theory about -0.5), while single "
            f"data sets at n = {int(sizes[-1])} range up to {float(d['abs_gap'][d['n'] == sizes[-1]].max()):.3f}.")


# --------------------------------------------------------------------------------------------------
# kernel_mobahi_collapse


def _mobahi_data(out_dir: Path, fast: bool) -> Path:
    """[MFB20]'s fixed-budget rounds on the toy data (the same for fast and full: 11 points)."""
    from kerneldistill.mobahi import fixed_budget_path_from_distiller
    from kerneldistill.toy import TOY_MOBAHI_EPS, toy_distiller

    path = fixed_budget_path_from_distiller(toy_distiller(), TOY_MOBAHI_EPS, rounds=16)
    R = len(path.c)
    lo, hi = path.collapse_bounds
    return write_csv(Path(out_dir) / "kernel_mobahi_collapse.csv", {
        "round": np.arange(R),
        "fit_rms": path.target_norm[1:] / math.sqrt(path.n),  # ||f_t(X)|| / sqrt(n)
        "c": path.c, "c_lower": path.c_lower, "c_upper": path.c_upper,
        "eps": np.full(R, path.eps),
        "collapse_round": np.full(R, -1 if path.collapse_round is None else path.collapse_round),
        "collapse_lower": np.full(R, lo), "collapse_upper": np.full(R, hi),
    })


def _mobahi_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    rounds = d["round"]
    fig, (ax_f, ax_c) = new_figure("full", height=2.2, ncols=2)
    ax_f.plot(rounds, d["fit_rms"], "o-", color=PALETTE[0], ms=3, lw=1.0, label=r"$\|f_t(X)\| / \sqrt{n}$")
    ax_f.axhline(math.sqrt(d["eps"][0]), color="k", ls="--", lw=0.8, label=r"$\sqrt{\epsilon}$ (collapse below)")
    tc = int(d["collapse_round"][0])
    if tc >= 0:
        ax_f.axvline(tc, color=PALETTE[3], lw=0.8, label=f"collapse (round {tc})")
    ax_f.axvspan(rounds[0] - 0.5, d["collapse_lower"][0], color="0.9", lw=0, zorder=0,
                 label=r"no collapse: $t < (r_0 - 1)/\kappa$")
    ax_f.set_xlabel("round $t$")
    ax_f.set_ylabel("RMS of the fit at the training points")
    ax_f.set_title(rf"fixed budget $\epsilon = {d['eps'][0]:g}$; collapse bounds "
                   rf"${d['collapse_lower'][0]:.1f} \leq t_c \leq {d['collapse_upper'][0]:.0f}$")
    ax_f.legend(loc="upper right")
    live = np.isfinite(d["c"])
    ax_c.fill_between(rounds[live], d["c_lower"][live], d["c_upper"][live], color=PALETTE[5], alpha=0.3, lw=0,
                      label=r"$[g_{\min}, g_{\max}] / (r_t - 1)$")
    ax_c.plot(rounds[live], d["c"][live], "o-", color=PALETTE[0], ms=3, lw=1.0, label="$c_t$")
    ax_c.set_yscale("log")
    ax_c.set_xlabel("round $t$")
    ax_c.set_ylabel("multiplier $c_t$ (on $K/n$)")
    ax_c.set_title("per-round multiplier and its bounds")
    ax_c.set_xlim(ax_f.get_xlim())
    ax_c.legend(loc="upper left")
    return save_figure(fig, out_dir, "kernel_mobahi_collapse")


KERNEL_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("kernel_toy_fits", _toy_data, _toy_fits_plot,
                   "[BA21] toy: fits per step for gt_weight 0 and 0.25, the limit dashed"),
        FigureSpec("kernel_toy_filters", _toy_data, _toy_filters_plot,
                   "[BA21] toy: filter diagonals b^(t) per eigen-index and step"),
        FigureSpec("kernel_toy_ratios", _toy_data, _toy_ratios_plot,
                   "[BA21] toy: consecutive filter ratios b_k / b_(k+1) per step"),
        FigureSpec("kernel_toy_loss", _toy_loss_data, _toy_loss_plot,
                   "[BA21] toy: loss against sin(2 pi x) per step for several weights, limits dotted"),
        FigureSpec("kernel_optimal_weight", _optimal_weight_data, _optimal_weight_plot,
                   "toy: greedy optimal ground-truth weight per step and the loss of the optimal schedules"),
        FigureSpec("kernel_one_shot", _one_shot_data, _one_shot_plot,
                   "[DPR26] one-shot weight vs the oracle optimum as n grows (RBF, sine data), spread over data sets",
                   _one_shot_caption),
        FigureSpec("kernel_mobahi_collapse", _mobahi_data, _mobahi_plot,
                   "[MFB20] fixed budget on the toy data: fit norm and c_t per round, with the bounds"),
    )
}
