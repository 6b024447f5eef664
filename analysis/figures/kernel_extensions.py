"""Figures of the kernel extensions: joint weight schedules, the number of steps by GCV, ridge x weight.

Each figure is a :class:`~analysis.figures.spec.FigureSpec` (a data step that computes with
:mod:`kerneldistill` on fixed seeds and writes one tidy CSV or NPZ, and a plot step that reads only
that file), registered in ``analysis/figures/__init__.py`` and drawn by ``python -m analysis figures``.

==========================  ========================================================================
figure                      content
==========================  ========================================================================
kernel_joint_schedules      last-step risk of greedy and joint schedules against the number of
                            steps: [BA21]'s toy, and the Pareek et al. construction with ridge and
                            the best diagonal filter as lines
kernel_select_steps         GCV and the true risk along the steps of one data set, and the risk
                            ratio of the GCV choice to the oracle's against n
kernel_ridge_weight         [DPR26] Proposition 2.3: plain ridge and optimally weighted
                            self-distillation against the ridge, where the condition holds and
                            where it does not
==========================  ========================================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import ticker

from analysis.figures.spec import FigureSpec, read_csv, write_csv, write_npz
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["KERNEL_EXTENSION_FIGURES"]


# --------------------------------------------------------------------------------------------------
# kernel_joint_schedules


def _joint_schedules_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.joint import joint_schedule
    from kerneldistill.optimal import ReferenceRisk, greedy_schedule
    from kerneldistill.pareek import pareek_construction, pareek_table
    from kerneldistill.toy import toy_distiller, toy_eval_points, toy_truth

    cols = {"setting": [], "method": [], "steps": [], "risk": []}

    def add(setting, method, steps, risk):
        cols["setting"].append(setting)
        cols["method"].append(method)
        cols["steps"].append(int(steps))
        cols["risk"].append(float(risk))

    model = toy_distiller()
    X_eval = toy_eval_points()
    crit = ReferenceRisk.from_distiller(model, X_eval, toy_truth(X_eval))
    for T in range(2, (6 if fast else 8) + 1):
        for constrained, tag in ((True, "weights in [0, 1]"), (False, "any weights")):
            add("toy", f"greedy, {tag}", T, greedy_schedule(crit, T, constrained=constrained).risk[-1])
            add("toy", f"joint, {tag}", T, joint_schedule(crit, T, constrained=constrained).risk[-1])
    dim = 4 if fast else 6
    for row in pareek_table(pareek_construction(dim)):
        # steps = k distillation steps = step k + 1 of the estimator
        add(f"pareek d={dim}", "greedy", row.k, row.greedy_risk)
        add(f"pareek d={dim}", "joint", row.k, row.joint_risk)
        add(f"pareek d={dim}", "ridge (best ridge)", row.k, row.ridge_risk)
        add(f"pareek d={dim}", "best diagonal filter", row.k, row.lower_bound)
    return write_csv(Path(out_dir) / "kernel_joint_schedules.csv", cols)


def _joint_schedules_caption(data_path: Path) -> str:
    d = read_csv(data_path)

    def risk(setting, method, steps):
        m = (d["setting"] == setting) & (d["method"] == method) & (d["steps"] == steps)
        return float(d["risk"][m][0])

    toy_T = int(d["steps"][d["setting"] == "toy"].max())
    pareek = str(d["setting"][d["setting"] != "toy"][0])
    k = int(d["steps"][d["setting"] == pareek].max())
    return (f"Risk of the last step of greedy and jointly optimal weight schedules on [BA21]'s toy (T = 2..{toy_T}, "
            f"weights in [0, 1] and unconstrained) and excess risk of k-step self-distillation in a Pareek et al. "
            f"construction ({pareek.split()[-1]}). At T = {toy_T} on the toy the joint unconstrained schedule reaches "
            f"{risk('toy', 'joint, any weights', toy_T):.4f} against the greedy {risk('toy', 'greedy, any weights', toy_T):.4f}; "
            f"in the construction at k = {k} joint {risk(pareek, 'joint', k):.4f}, greedy {risk(pareek, 'greedy', k):.4f}, "
            f"best ridge {risk(pareek, 'ridge (best ridge)', k):.4f}, lower bound {risk(pareek, 'best diagonal filter', k):.4f}.")


def _plain_log_ticks(ax, values) -> None:
    """Log-axis ticks as plain numbers, with one at the lowest value (rounded to 3 significant digits) so
    that the curves' floor can be read off; the default locator left none below 0.2."""
    lo, hi = float(np.min(values)), float(np.max(values))
    candidates = [0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0]
    ticks = [float(f"{lo:.3g}")] + [t for t in candidates if lo * 1.12 < t <= hi * 1.05]
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _joint_schedules_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_toy, ax_zoom, ax_p) = new_figure("full", height=2.5, ncols=3, width_ratios=[1, 0.8, 1.1])
    styles = {"greedy": ("o--", PALETTE[1]), "joint": ("s-", PALETTE[0])}
    toy = d["setting"] == "toy"
    for method in dict.fromkeys(d["method"][toy]):
        sel = toy & (d["method"] == method)
        marker, colour = styles[method.split(",")[0]]
        any_weights = "any" in method
        # The [0, 1] curves differ by less than 1e-3 here: drawn faintly beside the others, and on their own
        # scale in the middle panel, where they separate.
        ax_toy.plot(d["steps"][sel], d["risk"][sel], marker, color=colour, ms=3, lw=1.0,
                    alpha=1.0 if any_weights else 0.45, mfc=colour if any_weights else "white", label=method)
        if not any_weights:
            ax_zoom.plot(d["steps"][sel], d["risk"][sel], marker, color=colour, ms=3, lw=1.0, mfc="white",
                         label=method.split(",")[0])
    for ax in (ax_toy, ax_zoom):
        ax.set_xticks(np.unique(d["steps"][toy]))
        ax.set_xlabel("steps $T$")
        ax.yaxis.set_major_locator(ticker.MaxNLocator(5))
    ax_toy.set_ylabel(r"risk of step $T$ vs $\sin(2\pi x)$")
    ax_toy.set_title("[BA21] toy")
    ax_toy.legend(loc="lower left", fontsize=6)
    ax_zoom.set_title("toy, weights in [0, 1] (own scale)")
    ax_zoom.legend(loc="upper right", fontsize=6)
    pareek = ~toy
    setting = str(d["setting"][pareek][0])
    for method in dict.fromkeys(d["method"][pareek]):
        sel = pareek & (d["method"] == method)
        if method in styles:
            marker, colour = styles[method]
            ax_p.plot(d["steps"][sel], d["risk"][sel], marker, color=colour, ms=3, lw=1.0, label=f"{method} k-step")
        else:
            ax_p.axhline(d["risk"][sel][0], color="0.3" if method.startswith("ridge") else PALETTE[2],
                         ls=":" if method.startswith("ridge") else "-.", lw=1.0, label=method)
    ax_p.set_yscale("log")
    _plain_log_ticks(ax_p, d["risk"][pareek])
    ax_p.set_xticks(np.unique(d["steps"][pareek]))
    ax_p.set_xlabel("distillation steps $k$ (estimator step $k + 1$)")
    ax_p.set_ylabel("excess risk (fixed design)")
    ax_p.set_title(f"Pareek et al. construction, {setting.split()[-1]}")
    ax_p.legend(loc="center right", fontsize=6)
    return save_figure(fig, out_dir, "kernel_joint_schedules")


# --------------------------------------------------------------------------------------------------
# kernel_select_steps


def _select_steps_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.estimator import KernelDistiller
    from kerneldistill.step_selection import select_steps
    from kerneldistill.studies import select_steps_study, sine_data

    max_steps = 100
    X, y = sine_data(200, 1.0, seed=0)
    model = KernelDistiller("rbf", ridge=1e-3 * 200, gt_weight=0.0, gamma=80.0).fit(X, y)
    X_eval = np.linspace(0, 1, 401)[:, None]
    # every step's predictions in one product (a schedule_risk call per step would redo the recursion)
    curve = model.path(X_eval, list(range(1, max_steps + 1)), gt_weights=[0.0])[0]  # (S, p)
    curve_risk = np.mean((curve - np.sin(2 * np.pi * X_eval[:, 0])) ** 2, axis=1)
    gcv = select_steps(model, max_steps).scores
    sizes = (25, 100, 200) if fast else (25, 50, 100, 200, 400, 1000)
    noises = (0.3, 1.0) if fast else (0.1, 0.3, 1.0)
    rows = select_steps_study(sizes, noises, 2 if fast else 10, max_steps=max_steps)
    keys = [(n, s) for n in sizes for s in noises]
    mean_ratio = np.array([np.mean([r.ratio for r in rows if (r.n, r.noise) == key]) for key in keys])
    return write_npz(Path(out_dir) / "kernel_select_steps.npz", steps=np.arange(1, max_steps + 1), gcv=gcv,
                     risk=curve_risk, n=np.array([k[0] for k in keys]), noise=np.array([k[1] for k in keys]),
                     mean_ratio=mean_ratio)


def _select_steps_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    fig, (ax_c, ax_r) = new_figure("full", height=2.3, ncols=2)
    steps = d["steps"]
    # GCV estimates the risk plus the noise variance, a constant: both curves are shown as their excess
    # over their own minimum, which GCV estimates without that constant.
    ax_c.plot(steps, d["gcv"] - d["gcv"].min(), color=PALETTE[0], lw=1.0, label="GCV (training data only)")
    ax_c.plot(steps, d["risk"] - d["risk"].min(), color=PALETTE[3], lw=1.0, label="true risk")
    ax_c.axvline(steps[np.argmin(d["gcv"])], color=PALETTE[0], ls=":", lw=0.8)
    ax_c.axvline(steps[np.argmin(d["risk"])], color=PALETTE[3], ls=":", lw=0.8)
    ax_c.set_xscale("log")
    ax_c.set_xlabel(r"step $t$ ($\alpha = 0$)")
    ax_c.set_ylabel("excess over its minimum")
    ax_c.set_title("one data set (n = 200, noise 1); dotted: argmins")
    ax_c.legend(loc="best")
    for colour, noise in zip(PALETTE, np.unique(d["noise"])):
        sel = d["noise"] == noise
        ax_r.plot(d["n"][sel], d["mean_ratio"][sel], "o-", color=colour, ms=3, lw=1.0, label=f"noise {noise:g}")
    ax_r.axhline(1.0, color="0.6", lw=0.5)
    ax_r.set_xscale("log")
    sizes = np.unique(d["n"])
    ax_r.set_xticks(sizes, [str(int(n)) for n in sizes])
    ax_r.minorticks_off()
    ax_r.set_xlabel("training points $n$")
    ax_r.set_ylabel("risk(GCV step) / risk(best step)")
    ax_r.set_title("select_steps against the oracle (mean over seeds)")
    ax_r.legend(loc="best")
    return save_figure(fig, out_dir, "kernel_select_steps")


# --------------------------------------------------------------------------------------------------
# kernel_ridge_weight


def _ridge_weight_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.estimator import KernelDistiller
    from kerneldistill.optimal import ReferenceRisk
    from kerneldistill.ridge_path import proposition_2_3, ridge_weight_grid
    from kerneldistill.studies import RIDGE_SETTINGS, linear_setting, rbf_setting

    chosen = {"isotropic, p/n = 0.5": None, "RBF gamma 80, sine, n = 200": None}
    arrays = {}
    for j, (name, kind, params) in enumerate(s for s in RIDGE_SETTINGS if s[0] in chosen):
        if kind == "linear":
            X, y, _, _, K_ref, reference = linear_setting(*params, seed=0)
            model = KernelDistiller("linear", ridge=1.0).fit(X, y)
            crit = ReferenceRisk(model.evals_, model.evecs_, model.y_fit_, 1.0, K_ref, reference)
        else:
            X, y, _, _, X_eval, truth = rbf_setting(*params, seed=0)
            model = KernelDistiller("rbf", ridge=1.0, gamma=params[1]).fit(X, y)
            crit = ReferenceRisk.from_distiller(model, X_eval, truth)
        ridges = float(model.evals_.max()) * np.logspace(-7, 2, 60 if fast else 200)
        grid = ridge_weight_grid(crit, ridges, constrained=False)
        prop = proposition_2_3(crit, ridges)
        arrays[f"name_{j}"] = np.array(name)
        arrays[f"ridges_{j}"], arrays[f"ridge_risk_{j}"], arrays[f"sd_risk_{j}"] = ridges, grid.ridge_risk, grid.sd_risk
        arrays[f"prop_{j}"] = np.array([prop.ridge, prop.risk, prop.distance / prop.threshold, prop.gain,
                                        prop.pair_ridge, prop.pair_risk])
    return write_npz(Path(out_dir) / "kernel_ridge_weight.npz", **arrays)


def _ridge_weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    count = len([k for k in d.files if k.startswith("name_")])
    fig, axes = new_figure("full", height=2.3, ncols=count)
    for j, ax in enumerate(np.atleast_1d(axes)):
        lam_star, risk_star, ratio, gain, pair_ridge, pair_risk = d[f"prop_{j}"]
        ax.plot(d[f"ridges_{j}"], d[f"ridge_risk_{j}"], color=PALETTE[0], lw=1.0, label="kernel ridge")
        ax.plot(d[f"ridges_{j}"], d[f"sd_risk_{j}"], color=PALETTE[3], lw=1.0, label="SD at its optimal weight")
        ax.plot([lam_star], [risk_star], "o", color=PALETTE[0], ms=4, label=r"best ridge $\lambda^*$")
        ax.plot([pair_ridge], [pair_risk], "s", color=PALETTE[3], ms=4, label="best pair")
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = float(np.quantile(d[f"ridge_risk_{j}"], 0.6))
        ax.set_ylim(0.8 * float(min(pair_risk, risk_star)), top)
        ax.set_xlabel(r"ridge $\lambda$")
        ax.set_title(f"{d[f'name_{j}']}\nD/threshold {ratio:.2f}, gain {100 * gain:.1f}%", fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("oracle risk")
    np.atleast_1d(axes)[0].legend(loc="best", fontsize=6)
    return save_figure(fig, out_dir, "kernel_ridge_weight")


KERNEL_EXTENSION_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("kernel_joint_schedules", _joint_schedules_data, _joint_schedules_plot,
                   "greedy vs joint weight schedules: [BA21] toy and the Pareek et al. construction",
                   _joint_schedules_caption),
        FigureSpec("kernel_select_steps", _select_steps_data, _select_steps_plot,
                   "number of steps by GCV against the oracle: one curve, and the risk ratio against n"),
        FigureSpec("kernel_ridge_weight", _ridge_weight_data, _ridge_weight_plot,
                   "[DPR26] Proposition 2.3: kernel ridge and optimally weighted SD against the ridge"),
    )
}
