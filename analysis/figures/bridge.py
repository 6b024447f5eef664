"""Figures of the bridge between the kernel theory and deep networks (:mod:`deepdistill.studies.bridge`).

=========================  =========================================================================
figure                     content
=========================  =========================================================================
bridge_exact               (a) linearised network vs the closed form on its eNTK: relative difference
                           per step and gt_weight, at the training points and at new points
bridge_width               (b) real networks (NTK parameterisation) vs the same closed form: relative
                           deviation against width, per step, with the fitted log-log slope
bridge_weight              (c) optimal ground-truth weight, kernel vs deep, against width, with the
                           infinite-width NTK's weight as a line (no network:
                           :mod:`kerneldistill.infinite_ntk`); and the cases where they part
                           (standard parameterisation, Adam, MNIST-1D)
bridge_toy                 (d) [BA21]'s toy: loss per step of a wide network, of the closed form on its
                           eNTK and of the RBF kernel, for gt_weight 0 and 0.25
=========================  =========================================================================

One study. Every data step asks :func:`deepdistill.studies.bridge.run_bridge_study` for the part it needs,
stored in ``out_dir/bridge_runs/`` (one JSON per part): a part that another figure (or the example
``examples/kernel_meets_deep.py --out``) already computed with the same preset is read, not
recomputed, and the report's bridge section reads the same files. ``fast`` uses the ``fast`` preset
(about a minute on 2 CPU cores), otherwise ``full`` (the README's numbers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["BRIDGE_FIGURES", "RUNS_FOLDER", "runs_dir", "preset_name", "study_parts", "infinite_width_weight"]

#: The study's folder, relative to a figure's ``out_dir``.
RUNS_FOLDER = "bridge_runs"


def runs_dir(out_dir) -> Path:
    return Path(out_dir) / RUNS_FOLDER


def preset_name(fast: bool) -> str:
    return "fast" if fast else "full"


def study_parts(out_dir, fast: bool, parts) -> dict:
    """The study's parts ``parts`` for this preset, computed once into ``out_dir/bridge_runs``."""
    from deepdistill.drivers.local_runner import default_jobs
    from deepdistill.studies.bridge import run_bridge_study

    # The full preset's independent pieces on every usable core (the results do not depend on it); the fast
    # preset's pieces take less than starting a worker process, and the report draws them in its background
    # process beside the deep runs' workers: one process there.
    return run_bridge_study(runs_dir(out_dir), preset_name(fast), parts=parts, jobs=1 if fast else default_jobs(1))


# --------------------------------------------------------------------------------------------------
# bridge_exact


def _exact_data(out_dir: Path, fast: bool) -> Path:
    e = study_parts(out_dir, fast, ["exact"])["parts"]["exact"]
    cols = {"points": [], "gt_weight": [], "step": [], "relative_difference": [], "threshold": []}
    for points, rel in e["relative_difference"].items():
        for w, row in zip(e["gt_weights"], rel):
            for s, v in zip(e["steps"], row):
                cols["points"].append("training points" if points == "train" else "new points")
                cols["gt_weight"].append(w)
                cols["step"].append(s)
                cols["relative_difference"].append(v)
                cols["threshold"].append(e["threshold"])
    return write_csv(Path(out_dir) / "bridge_exact.csv", cols)


def _exact_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    sets = list(dict.fromkeys(d["points"]))
    fig, axes = new_figure("full", height=2.2, ncols=len(sets), sharey=True)
    for ax, points in zip(np.atleast_1d(axes), sets):
        for c, w in zip(PALETTE, np.unique(d["gt_weight"])):
            sel = (d["points"] == points) & (d["gt_weight"] == w)
            ax.semilogy(d["step"][sel], d["relative_difference"][sel], "o-", color=c, ms=3, lw=1.0,
                        label=rf"$\alpha = {w:g}$")
        ax.axhline(d["threshold"][0], color="k", ls="--", lw=0.8, label="must-show threshold")
        ax.set_title(f"linearised net vs closed form, {points}")
        ax.set_xlabel("step $t$")
        ax.set_xticks(np.unique(d["step"]))
    np.atleast_1d(axes)[0].set_ylabel(r"$\|f_{\rm deep} - f_{\rm kernel}\|_2 / \|f_{\rm kernel}\|_2$")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    return save_figure(fig, out_dir, "bridge_exact")


# --------------------------------------------------------------------------------------------------
# bridge_width


def _width_data(out_dir: Path, fast: bool) -> Path:
    w = study_parts(out_dir, fast, ["width"])["parts"]["width"]
    cols = {"width": [], "seed": [], "gt_weight": [], "step": [], "deviation": [], "slope": []}
    for i, width in enumerate(w["widths"]):
        for j, seed in enumerate(w["seeds"]):
            for k, weight in enumerate(w["gt_weights"]):
                for m, step in enumerate(w["steps"]):
                    cols["width"].append(width)
                    cols["seed"].append(seed)
                    cols["gt_weight"].append(weight)
                    cols["step"].append(step)
                    cols["deviation"].append(w["deviation"][i][j][k][m])
                    cols["slope"].append(w["slope"])
    return write_csv(Path(out_dir) / "bridge_width.csv", cols)


def _width_plot(data_path: Path, out_dir: Path) -> list[Path]:
    from matplotlib import colormaps

    d = read_csv(data_path)
    widths = np.unique(d["width"])
    steps = np.unique(d["step"])
    colours = [colormaps["viridis"](v) for v in np.linspace(0.85, 0.1, len(steps))]
    fig, ax = new_figure("column", height=2.6)
    ax.loglog(d["width"], d["deviation"], ".", color="0.7", ms=2.5, label="each seed, weight, step", zorder=1)
    for c, s in zip(colours, steps):
        mean = [d["deviation"][(d["width"] == w) & (d["step"] == s)].mean() for w in widths]
        ax.loglog(widths, mean, "o-", color=c, ms=3, lw=1.0, label=f"step {int(s)} (mean)", zorder=2)
    overall = np.array([d["deviation"][d["width"] == w].mean() for w in widths])
    slope = float(d["slope"][0])
    # The least-squares line of log(mean deviation) on log(width): the stored slope, its own intercept.
    intercept = float(np.mean(np.log(overall)) - slope * np.mean(np.log(widths)))
    fit = np.exp(intercept) * widths ** slope
    ax.loglog(widths, fit, "k--", lw=0.9, label=f"fit: slope {slope:.2f}", zorder=3)
    ax.loglog(widths, overall[0] * (widths / widths[0]) ** -0.5, color="0.5", ls=":", lw=0.9,
              label=r"$\propto$ width$^{-1/2}$")
    ax.set_xticks(widths)
    ax.set_xticklabels([str(int(w)) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("width (NTK parameterisation)")
    ax.set_ylabel("relative deviation from the closed form")
    ax.set_title("real network vs eNTK closed form (new points)")
    ax.legend(loc="lower left", fontsize=6)
    return save_figure(fig, out_dir, "bridge_width")


# --------------------------------------------------------------------------------------------------
# bridge_weight


def _weight_data(out_dir: Path, fast: bool) -> Path:
    parts = study_parts(out_dir, fast, ["width", "parted"])["parts"]
    w_inf = infinite_width_weight(preset_name(fast))
    cols = {"case": [], "width": [], "parameterization": [], "kernel_gt_weight": [], "deep_gt_weight": [],
            "deep_grid_argmin": [], "difference": [], "infinite_width_gt_weight": []}
    for row in parts["width"]["weights"] + parts["parted"]["rows"]:
        cols["case"].append(row["case"])
        cols["width"].append(np.nan if row["width"] is None else row["width"])
        cols["parameterization"].append(row["parameterization"])
        for key in ("kernel_gt_weight", "deep_gt_weight", "deep_grid_argmin", "difference"):
            cols[key].append(row[key])
        cols["infinite_width_gt_weight"].append(w_inf)
    return write_csv(Path(out_dir) / "bridge_weight.csv", cols)


def infinite_width_weight(preset) -> float:
    """The optimal ground-truth weight of step 2 with the infinite-width NTK of the preset's network, on its data.

    No network: :func:`kerneldistill.infinite_ntk.infinite_width_gt_weight` (one hidden layer, the preset's
    activation and input scale, weight and bias scale 1 as ``deepdistill.studies.bridge``'s networks), against the clean
    test targets, with the preset's ridge. 4.1347 on the ``full`` and ``fast`` presets (same data and ridge).
    """
    from deepdistill.studies.bridge import get_preset
    from deepdistill.core.regression import sine
    from kerneldistill.infinite_ntk import infinite_width_gt_weight

    p = get_preset(preset)
    data = sine(p.n_train, p.noise, n_val=p.n_val, n_test=p.n_test, seed=p.data_seed)
    return infinite_width_gt_weight(data.x_train, data.y_train, data.x_test, data.y_test, ridge=p.ridge, step=2,
                                    depth=1, activation=p.activation, input_std=p.input_std)


_SHORT = {"NTK parameterisation, ridge to init, L-BFGS": "NTK param.",
          "standard parameterisation, ridge to init, L-BFGS": "standard param.",
          "NTK parameterisation, Adam with early stopping, no ridge": "Adam + early stop"}


def _short(case: str) -> str:
    if case.startswith("MNIST-1D"):
        return "MNIST-1D CE, " + ("trained eNTK" if "trained" in case else "init eNTK")
    return _SHORT.get(case, case)


def _weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_w, ax_p) = new_figure("full", height=2.5, ncols=2, width_ratios=[1.2, 1])
    for c, case in zip(PALETTE, ["NTK parameterisation, ridge to init, L-BFGS",
                                 "standard parameterisation, ridge to init, L-BFGS"]):
        sel = d["case"] == case
        if not sel.any():
            continue
        order = np.argsort(d["width"][sel])
        widths = d["width"][sel][order]
        ax_w.plot(widths, d["kernel_gt_weight"][sel][order], "o-", color=c, ms=3, lw=1.0,
                  label=f"{_short(case)}: kernel (eNTK at init)")
        ax_w.plot(widths, d["deep_gt_weight"][sel][order], "x--", color=c, ms=4, lw=1.0,
                  label=f"{_short(case)}: deep grid (refined)")
    if "infinite_width_gt_weight" in d and np.isfinite(d["infinite_width_gt_weight"][0]):
        w_inf = float(d["infinite_width_gt_weight"][0])
        ax_w.axhline(w_inf, color="k", ls=":", lw=0.9, label=f"infinite-width NTK: {w_inf:.3f}")
    ax_w.set_xscale("log")
    sweep = np.isin(d["case"], ["NTK parameterisation, ridge to init, L-BFGS",
                                "standard parameterisation, ridge to init, L-BFGS"])
    ws = np.unique(d["width"][sweep])
    ax_w.set_xticks(ws)
    ax_w.set_xticklabels([str(int(w)) for w in ws])
    ax_w.minorticks_off()
    ax_w.set_xlabel("width")
    ax_w.set_ylabel(r"optimal ground-truth weight $\alpha^*$ (step 2)")
    ax_w.set_title("sine data: kernel vs deep, per width")
    ax_w.legend(loc="best", fontsize=6)
    # Where they part: every case at one glance (the widest NTK width first, as the reference).
    ntk = d["case"] == "NTK parameterisation, ridge to init, L-BFGS"
    rows = [int(np.flatnonzero(ntk)[np.argmax(d["width"][ntk])])] if ntk.any() else []
    rows += [i for i in range(len(d["case"])) if not ntk[i]]
    labels = [_short(d["case"][i]) + ("" if not np.isfinite(d["width"][i]) else f", width {int(d['width'][i])}")
              for i in rows]
    y = np.arange(len(rows))
    ax_p.plot(d["kernel_gt_weight"][rows], y, "o", color=PALETTE[0], ms=4, label="kernel")
    ax_p.plot(d["deep_gt_weight"][rows], y, "x", color=PALETTE[3], ms=5, label="deep")
    for yi, i in zip(y, rows):
        ax_p.plot([d["kernel_gt_weight"][i], d["deep_gt_weight"][i]], [yi, yi], color="0.7", lw=0.8, zorder=0)
    ax_p.set_yticks(y)
    ax_p.set_yticklabels(labels, fontsize=6)
    ax_p.invert_yaxis()
    # alpha = 1 is the edge of [0, 1]: all weight on the ground truth (the teacher ignored); right of it the
    # teacher gets a negative weight (extrapolation away from it), as most of these optima do.
    ax_p.axvline(1.0, color="0.6", lw=0.6, ls="--",
                 label=r"$\alpha$ = 1: labels alone; right of it the teacher's weight $1-\alpha$ is negative")
    ax_p.set_xlabel(r"optimal ground-truth weight $\alpha^*$")
    ax_p.set_title("where they part")
    ax_p.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=6, frameon=False)
    return save_figure(fig, out_dir, "bridge_weight")


def _weight_caption(data_path: Path) -> str:
    d = read_csv(data_path)
    ntk = d["case"] == "NTK parameterisation, ridge to init, L-BFGS"
    widths = d["width"][ntk]
    i_lo, i_hi = int(np.flatnonzero(ntk)[np.argmin(widths)]), int(np.flatnonzero(ntk)[np.argmax(widths)])
    w_inf = float(d["infinite_width_gt_weight"][0]) if "infinite_width_gt_weight" in d else float("nan")
    shows = ("The step-2 optimal ground-truth weight of kernel ridge on the network's eNTK at initialisation and of "
             "the trained network, per width (NTK parameterisation), with the infinite-width NTK's weight; right: "
             "the cases where they part. Weights above 1 (dashed line) give the teacher a negative weight.")
    found = (f"The deep-minus-kernel difference is {d['difference'][i_lo]:+.2f} at width "
             f"{int(d['width'][i_lo])} and {d['difference'][i_hi]:+.2f} at width {int(d['width'][i_hi])} "
             f"(kernel {d['kernel_gt_weight'][i_hi]:.2f}, deep {d['deep_gt_weight'][i_hi]:.2f}"
             + (f", infinite width {w_inf:.3f}" if np.isfinite(w_inf) else "") + "); one draw of seeds per width.")
    return f"{shows} {found}"


# --------------------------------------------------------------------------------------------------
# bridge_toy


_CURVES = {"deep": "wide network (deep)", "ntk_closed_form": "closed form, its eNTK",
           "rbf_closed_form": "closed form, RBF [BA21]"}


def _toy_data(out_dir: Path, fast: bool) -> Path:
    t = study_parts(out_dir, fast, ["toy"])["parts"]["toy"]
    cols = {"curve": [], "gt_weight": [], "step": [], "loss": [], "width": []}
    for curve, loss in t["loss"].items():
        for w, row in zip(t["gt_weights"], loss):
            for s, v in zip(t["steps"], row):
                cols["curve"].append(curve)
                cols["gt_weight"].append(w)
                cols["step"].append(s)
                cols["loss"].append(v)
                cols["width"].append(t["width"])
    return write_csv(Path(out_dir) / "bridge_toy.csv", cols)


def _toy_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    weights = np.unique(d["gt_weight"])
    fig, axes = new_figure("full", height=2.2, ncols=len(weights), sharey=True)
    styles = {"deep": ("x-", PALETTE[3]), "ntk_closed_form": ("o--", PALETTE[0]), "rbf_closed_form": ("s:", PALETTE[2])}
    for ax, w in zip(np.atleast_1d(axes), weights):
        for curve, label in _CURVES.items():
            sel = (d["curve"] == curve) & (d["gt_weight"] == w)
            marker, colour = styles[curve]
            label = label if curve != "deep" else f"{label}, width {int(d['width'][0])}"
            ax.plot(d["step"][sel], d["loss"][sel], marker, color=colour, ms=3, lw=1.0, label=label)
        ax.set_title(rf"$\alpha = {w:g}$" + (" (pure distillation)" if w == 0 else ""))
        ax.set_xlabel("step $t$")
        ax.set_xticks(np.unique(d["step"]))
    np.atleast_1d(axes)[0].set_ylabel(r"loss vs $\sin(2\pi x)$")
    np.atleast_1d(axes)[-1].legend(loc="best", fontsize=6)
    return save_figure(fig, out_dir, "bridge_toy")


BRIDGE_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("bridge_exact", _exact_data, _exact_plot,
                   "(a) linearised network vs kernel ridge self-distillation on its eNTK: relative difference per step"),
        FigureSpec("bridge_width", _width_data, _width_plot,
                   "(b) real networks (NTK parameterisation) vs the eNTK closed form: deviation against width"),
        FigureSpec("bridge_weight", _weight_data, _weight_plot,
                   "(c) optimal ground-truth weight, kernel vs deep, per width, the infinite-width NTK's weight, "
                   "and where the two part", _weight_caption),
        FigureSpec("bridge_toy", _toy_data, _toy_plot,
                   "(d) [BA21] toy with a wide network: deep loss per step beside its eNTK and the RBF closed forms"),
    )
}
