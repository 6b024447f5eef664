"""Figures of the claims on the number of steps: Wu, Yang & Sun (self-training with fresh covariates)
and Lecoiu, Mukherjee & Sur (s-step self-distillation under s spikes).

Each figure is a :class:`~analysis.figures.spec.FigureSpec` whose data step runs the claim of
:mod:`kerneldistill.claims` (fixed seeds) and writes one NPZ or CSV, and whose plot step reads only
that file.

==========================  ========================================================================
figure                      content
==========================  ========================================================================
claim_self_training         mean test risk, iterated GCV and select_steps' formula along the steps
                            (the U), the spike coefficients against the spectral filter
                            ``(l / (l + kappa))^(t+1)``, and the regret of both criteria against n
claim_spiked_optimality     gap of the jointly optimal k-step risk to the spectral oracle against k
                            for s = 1, 2, 3 spikes, and the isotropic risk against the ridge for ridge
                            and k-step self-distillation
==========================  ========================================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv, write_npz
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["CLAIM_STEPS_FIGURES"]


# --------------------------------------------------------------------------------------------------
# claim_self_training


def _self_training_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims import REGISTRY

    result = REGISTRY["wu_yang_sun_self_training"].run(fast=fast)
    v = result.values
    summ = v["summaries"]
    return write_npz(Path(out_dir) / "claim_self_training.npz", steps=np.arange(len(v["mean_risk"])),
                     risk=np.array(v["mean_risk"]), igcv=np.array(v["mean_igcv"]), naive=np.array(v["mean_naive"]),
                     coef=np.array(v["mean_coef"]), filter=np.array(v["filter"]), sizes=np.array(v["sizes"]),
                     regret=np.array([s["regret"] for s in summ]),
                     naive_regret=np.array([s["naive_regret"] for s in summ]), passed=np.array(result.passed))


def _self_training_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = np.load(data_path)
    fig, (ax_u, ax_f, ax_r) = new_figure("full", height=2.3, ncols=3)
    t = d["steps"]
    ax_u.plot(t, d["risk"], "o-", color=PALETTE[3], ms=3, lw=1.0, label="test risk")
    ax_u.plot(t, d["igcv"], "s--", color=PALETTE[0], ms=3, lw=1.0, label="iterated GCV")
    ax_u.plot(t, d["naive"], "^:", color="0.45", ms=3, lw=1.0, label="select_steps' GCV formula")
    ax_u.axvline(t[np.argmin(d["risk"])], color=PALETTE[3], ls=":", lw=0.8)
    ax_u.set_xlabel("self-training step $t$")
    ax_u.set_ylabel(r"$\|b_t - \beta\|_\Sigma^2 + \sigma^2$ (mean)")
    ax_u.set_title(f"n = {int(d['sizes'][-1])}, p = 2n", fontsize=7)
    ax_u.legend(loc="best", fontsize=6)
    for j in range(d["coef"].shape[1]):
        ax_f.plot(t, d["coef"][:, j], "o", color=PALETTE[j], ms=3, label=f"spike {j + 1}: measured")
        ax_f.plot(t, d["filter"][:, j], "-", color=PALETTE[j], lw=1.0, label=r"$(\ell/(\ell+\kappa))^{t+1}$")
    ax_f.set_xlabel("self-training step $t$")
    ax_f.set_ylabel(r"$\langle b_t, u_j\rangle / \langle \beta, u_j\rangle$")
    ax_f.set_title("spectral filter", fontsize=7)
    ax_f.legend(loc="best", fontsize=6)
    ax_r.plot(d["sizes"], d["regret"], "s-", color=PALETTE[0], ms=3, lw=1.0, label="iterated GCV")
    ax_r.plot(d["sizes"], d["naive_regret"], "^:", color="0.45", ms=3, lw=1.0, label="select_steps' formula")
    ax_r.set_xscale("log")
    ax_r.set_xticks(d["sizes"], [str(int(n)) for n in d["sizes"]])
    ax_r.minorticks_off()
    ax_r.set_xlabel("labelled points $n$")
    ax_r.set_ylabel(r"$R(\hat t)/R(t^*) - 1$ (mean)")
    ax_r.set_title("stopping step against the oracle", fontsize=7)
    ax_r.legend(loc="best", fontsize=6)
    return save_figure(fig, out_dir, "claim_self_training")


# --------------------------------------------------------------------------------------------------
# claim_spiked_optimality


def _spiked_data(out_dir: Path, fast: bool) -> Path:
    from kerneldistill.claims import REGISTRY
    from kerneldistill.claims.lecoiu_mukherjee_sur import _criterion, isotropic_setting
    from kerneldistill.joint import joint_schedule

    cols = {"part": [], "s": [], "k": [], "ridge": [], "value": []}

    def add(part, s, k, ridge, value):
        cols["part"].append(part)
        cols["s"].append(int(s))
        cols["k"].append(int(k))
        cols["ridge"].append(float(ridge))
        cols["value"].append(float(value))

    spiked = REGISTRY["lecoiu_spiked_optimality"].run(fast=fast)
    for s, v in spiked.values["per_s"].items():
        for k, (gap, lam) in enumerate(zip(v["gaps"], v["ridges"])):
            add("spiked_gap", s, k, lam, gap)
    evals, energies = isotropic_setting()
    crit = _criterion(evals, energies, 1.0)
    for lam in float(evals.max()) * np.logspace(-3, 1, 30 if fast else 80):
        at = crit.at_ridge(lam)
        add("isotropic_risk", 0, 0, lam, at.risk())
        for k in (1, 2):
            add("isotropic_risk", 0, k, lam, joint_schedule(at, k + 1, constrained=False).risk[-1])
    return write_csv(Path(out_dir) / "claim_spiked_optimality.csv", cols)


def _spiked_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    fig, (ax_g, ax_i) = new_figure("full", height=2.4, ncols=2)
    gap = d["part"] == "spiked_gap"
    floor = 1e-12  # gaps at or below round-off (and the impossible negative ones) are drawn at the floor
    for colour, s in zip(PALETTE, np.unique(d["s"][gap])):
        sel = gap & (d["s"] == s)
        ax_g.plot(d["k"][sel], np.maximum(d["value"][sel], floor), "o-", color=colour, ms=3, lw=1.0,
                  label=f"s = {s} spikes")
        ax_g.axvline(s, color=colour, ls=":", lw=0.8)
    ax_g.axhline(1e-6, color="0.5", ls="--", lw=0.8, label="tolerance 1e-6")
    ax_g.set_yscale("log")
    ax_g.set_xticks(np.unique(d["k"][gap]))
    ax_g.set_xlabel("distillation steps $k$ (0: ridge)")
    ax_g.set_ylabel("risk / spectral oracle - 1")
    ax_g.set_title("spiked fixed design; dotted: k = s", fontsize=7)
    ax_g.legend(loc="best", fontsize=6)
    iso = d["part"] == "isotropic_risk"
    names = {0: "ridge", 1: "1-step SD (joint weights)", 2: "2-step SD (joint weights)"}
    styles = {0: ("-", PALETTE[0]), 1: ("--", PALETTE[3]), 2: (":", PALETTE[2])}
    for k in np.unique(d["k"][iso]):
        sel = iso & (d["k"] == k)
        ls, colour = styles[int(k)]
        ax_i.plot(d["ridge"][sel], d["value"][sel], ls, color=colour, lw=1.0, label=names[int(k)])
    ax_i.set_xscale("log")
    ax_i.set_xlabel(r"ridge $\lambda$")
    ax_i.set_ylabel("expected risk")
    ax_i.set_title("isotropic design: the minima coincide", fontsize=7)
    ax_i.legend(loc="best", fontsize=6)
    return save_figure(fig, out_dir, "claim_spiked_optimality")


CLAIM_STEPS_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("claim_self_training", _self_training_data, _self_training_plot,
                   "Wu, Yang & Sun: U-shaped risk, spectral filter and iterated GCV of fresh-covariate self-training", fast_report=False),
        FigureSpec("claim_spiked_optimality", _spiked_data, _spiked_plot,
                   "Lecoiu, Mukherjee & Sur: k-step risk against the spectral oracle; ridge under isotropy", fast_report=False),
    )
}
