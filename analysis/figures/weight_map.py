"""Figures and report section of the weight map (:mod:`deepdistill.studies.weight_map`).

=========================  =========================================================================
figure                     content
=========================  =========================================================================
weight_map_gain            the gain in test accuracy of the grid's pick (lowest mean validation Brier
                           score) over the teacher, per data set as a heatmap over (label noise,
                           training-set size); a star marks a gain that exceeds seed noise
weight_map_estimators      per estimator (one row each): the error of its weight against the grid's
                           pick, and the test accuracy it loses against the grid's pick, per cell
=========================  =========================================================================

The data steps run (or read back: the study is resumable) :func:`deepdistill.studies.weight_map.run_weight_map`
into ``out_dir/weight_map_runs`` with the ``fast`` preset (``fast=True``) or the ``full`` one.
:func:`weight_map_section` renders the study's must-show table and per-cell table for the report; it
reads only (``read_weight_map``), never trains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["WEIGHT_MAP_FIGURES", "RUNS_FOLDER", "runs_dir", "preset_name", "weight_map_section", "gain_table",
           "estimators_table"]

RUNS_FOLDER = "weight_map_runs"
FIGURE_NAMES = ("weight_map_gain", "weight_map_estimators")


def runs_dir(out_dir) -> Path:
    return Path(out_dir) / RUNS_FOLDER


def preset_name(fast: bool) -> str:
    return "fast" if fast else "full"


def _study(out_dir, fast: bool) -> dict:
    from deepdistill.drivers.local_runner import default_jobs
    from deepdistill.studies.weight_map import run_weight_map

    # The full preset on every core (each cell's runs through the local runner, one process per usable core);
    # the fast preset's runs take a fraction of a second each, less than starting a worker.
    return run_weight_map(runs_dir(out_dir), preset_name(fast), jobs=1 if fast else default_jobs(1))


def _size_label(n) -> str:
    return "pool" if n is None or (isinstance(n, float) and np.isnan(n)) or n == "pool" else str(int(n))


def _gain_data(out_dir: Path, fast: bool) -> Path:
    return write_csv(Path(out_dir) / "weight_map_gain.csv", gain_table(_study(out_dir, fast)))


def gain_table(study: dict) -> dict:
    """The ``weight_map_gain`` table (one row per cell) of a study as :func:`run_weight_map` returns it."""
    derived = study["summary"]["derived"]
    cols = {k: [] for k in ("dataset", "noise", "size", "gain", "gain_noise", "exceeds_noise", "grid_weight",
                            "teacher_accuracy", "grid_accuracy")}
    for c in study["cells"]:
        d = derived[c["slug"]]
        cols["dataset"].append(c["dataset"])
        cols["noise"].append(c["noise"])
        cols["size"].append(_size_label(c["n_train"]))
        cols["gain"].append(d["gain"])
        cols["gain_noise"].append(d["gain_noise"])
        cols["exceeds_noise"].append(int(d["gain_exceeds_noise"]))
        cols["grid_weight"].append(c["grid"]["best_weight"])
        cols["teacher_accuracy"].append(float(np.mean(c["teacher_test_accuracy"])))
        cols["grid_accuracy"].append(d["grid_best_accuracy"])
    return cols


def _sizes_sorted(sizes) -> list[str]:
    return sorted(set(sizes), key=lambda s: (s == "pool", int(s) if s != "pool" else 0))


def _gain_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    sizes_col = np.array([str(s) for s in d["size"]], dtype=object)
    datasets = list(dict.fromkeys(d["dataset"]))
    fig, axes = new_figure("full", height=2.3, ncols=len(datasets), squeeze=False)
    limit = float(np.nanmax(np.abs(d["gain"]))) or 1e-3
    image = None
    for ax, name in zip(axes[0], datasets):
        sel = d["dataset"] == name
        noises = sorted(set(d["noise"][sel].tolist()))
        sizes = _sizes_sorted(sizes_col[sel])
        grid = np.full((len(sizes), len(noises)), np.nan)
        for g, n, s, x in zip(d["gain"][sel], d["noise"][sel], sizes_col[sel], d["exceeds_noise"][sel]):
            i, j = sizes.index(s), noises.index(n)
            grid[i, j] = g
            ax.text(j, i, f"{100 * g:+.1f}" + ("*" if x else ""), ha="center", va="center", fontsize=6)
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower", aspect="auto")
        ax.set_xticks(range(len(noises)), [f"{n:g}" for n in noises])
        ax.set_yticks(range(len(sizes)), sizes)
        ax.set_xlabel("label noise")
        ax.set_title(name, fontsize=8)
    axes[0][0].set_ylabel("training-set size")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="gain in test accuracy\n(cells: points; * exceeds seed noise)", shrink=0.9)
    return save_figure(fig, out_dir, "weight_map_gain")


def _estimators_data(out_dir: Path, fast: bool) -> Path:
    return write_csv(Path(out_dir) / "weight_map_estimators.csv", estimators_table(_study(out_dir, fast)))


def estimators_table(study: dict) -> dict:
    """The ``weight_map_estimators`` table (one row per estimator and cell) of a study."""
    derived = study["summary"]["derived"]
    cols = {k: [] for k in ("estimator", "is_default", "dataset", "noise", "size", "gt_weight", "grid_weight",
                            "weight_error", "accuracy_loss", "within", "status_ok", "cost_ratio")}
    for c in study["cells"]:
        for name, e in c["estimators"].items():
            x = derived[c["slug"]]["estimators"][name]
            cols["estimator"].append(name)
            cols["is_default"].append(int(name == c.get("default_estimator")))
            cols["dataset"].append(c["dataset"])
            cols["noise"].append(c["noise"])
            cols["size"].append(_size_label(c["n_train"]))
            cols["gt_weight"].append(np.nan if e["gt_weight_mean"] is None else e["gt_weight_mean"])
            cols["grid_weight"].append(c["grid"]["best_weight"])
            cols["weight_error"].append(np.nan if x["weight_error"] is None else x["weight_error"])
            cols["accuracy_loss"].append(x["accuracy_loss"])
            cols["within"].append(int(x["within"]))
            cols["status_ok"].append(int(x["ok"]))
            cols["cost_ratio"].append(x["cost_ratio"])
    return cols


def _estimators_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    names = list(dict.fromkeys(d["estimator"]))
    datasets = list(dict.fromkeys(d["dataset"]))
    fig, axes = new_figure("full", height=1.7 * len(names), nrows=len(names), ncols=2, squeeze=False, sharex=True)
    for row, name in zip(axes, names):
        for k, ds in enumerate(datasets):
            sel = (d["estimator"] == name) & (d["dataset"] == ds)
            jitter = 0.008 * (k - (len(datasets) - 1) / 2)
            for ax, col in zip(row, ("weight_error", "accuracy_loss")):
                ok = sel & (d["status_ok"] == 1)
                bad = sel & (d["status_ok"] == 0)
                ax.plot(d["noise"][ok] + jitter, d[col][ok], "o", ms=3, color=PALETTE[k % len(PALETTE)], label=ds)
                ax.plot(d["noise"][bad] + jitter, d[col][bad], "x", ms=4, color=PALETTE[k % len(PALETTE)])
        for ax in row:
            ax.axhline(0.0, color="0.6", lw=0.6)
        row[0].set_ylabel(f"{name}\nweight - grid's", fontsize=7)
        row[1].set_ylabel("accuracy lost", fontsize=7)
    axes[-1][0].set_xlabel("label noise")
    axes[-1][1].set_xlabel("label noise")
    axes[0][1].legend(fontsize=6, title="x: status not ok", title_fontsize=6)
    return save_figure(fig, out_dir, "weight_map_estimators")


WEIGHT_MAP_FIGURES = {
    "weight_map_gain": FigureSpec("weight_map_gain", _gain_data, _gain_plot,
                                  "the map: gain of the grid's best KD student over the teacher per (noise, size), per data set"),
    "weight_map_estimators": FigureSpec("weight_map_estimators", _estimators_data, _estimators_plot,
                                        "the map: per estimator, the error of its weight and the accuracy it loses "
                                        "against the grid's best"),
}


def _fmt(v, spec=".3f") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return format(v, spec)


def weight_map_section(out_dir, fast: bool, table, preset: str | None = None) -> str:
    """Markdown: the map's must-show table (PASS/FAIL), the per-estimator numbers and one row per cell,
    read from ``out_dir/weight_map_runs`` (never trains). ``table(columns) -> str`` renders a Markdown table.
    ``preset``: default ``fast``/``full`` after ``fast``; the finished cells of an incomplete study are shown
    as such (a cell of the ``subset`` preset is a cell of ``full``)."""
    from deepdistill.studies.weight_map import read_weight_map

    parts = ["## The map: where self-distillation helps, and whether the estimators find the weight", ""]
    study = read_weight_map(runs_dir(out_dir), preset or preset_name(fast))
    if study is None:
        parts.append(f"No weight map ({preset_name(fast)} preset) in `{runs_dir(out_dir)}`: produce it with "
                     f"`python -m analysis figures {' '.join(FIGURE_NAMES)} --out {out_dir}{' --fast' if fast else ''}`.")
        return "\n".join(parts)
    s, p = study["summary"], study["preset"]
    parts.append(f"Preset `{p['name']}` ({len(study['cells'])} cell(s){'' if study['complete'] else ', INCOMPLETE'}): "
                 f"KD student of generation 1 (`{p['method']}`), symmetric label noise, seeds {p['seeds']}, grid "
                 f"{p['grid']}; default estimator `{s['default_estimator']}`. Grid's pick: lowest mean validation "
                 f"Brier score over seeds; grid sd: sd over seeds of its test accuracy; a gain exceeds seed noise when "
                 f"|gain| > {p['gain_z']:g} standard errors of the paired (student - teacher) differences.")
    split = study.get("split") or {}
    if split.get("development") and split.get("test"):
        # The default was chosen on the development cells: the test cells are the measurement.
        for part in ("test", "development"):
            e = split[part]["per_estimator"].get(s["default_estimator"], {})
            parts.append(f"\n{part.capitalize()} cells ({split[part]['cells']}): `{s['default_estimator']}` within one "
                         f"grid sd in {e.get('within', 0)}, right sign in {e.get('right_sign', 0)} of "
                         f"{e.get('sign_cells', 0)}, {len(e.get('outside_ok', []))} outside with status ok, "
                         f"{e.get('flagged', 0)} warned.")
    rows = s["must_show"]
    parts += ["", table({"must show": [r["must_show"] for r in rows], "measured": [_fmt(r["measured"], ".3g") for r in rows],
                         "threshold": [_fmt(r["threshold"], ".3g") for r in rows],
                         "result": ["n/a" if r["passed"] is None else "PASS" if r["passed"] else "**FAIL**"
                                    for r in rows]})]
    per = s["per_estimator"]
    parts += ["", table({"estimator": list(per),
                         "within (cells)": [f"{e['within']}/{e['cells']}" for e in per.values()],
                         "right sign": [f"{e['right_sign']}/{e['sign_cells']}" for e in per.values()],
                         "mean abs weight error": [_fmt(e["mean_abs_weight_error"]) for e in per.values()],
                         "mean accuracy lost": [_fmt(e["mean_accuracy_loss"], ".4f") for e in per.values()],
                         "runs / grid's": [_fmt(e["mean_cost_ratio"], ".2f") for e in per.values()],
                         "cells warned": [f"{e.get('flagged', 0)}/{e['cells']}" for e in per.values()],
                         "interval holds the grid's pick": [_fmt(e.get("interval_covers_grid_pick"), ".0%")
                                                            for e in per.values()],
                         "outside with status ok": [", ".join(e["outside_ok"]) or "-" for e in per.values()]})]
    te = per.get(s["default_estimator"], {}).get("teacher_end") or {}
    if te.get("cells"):
        # beside the must-shows, not instead of them: the grid's own student at 1 and the teacher both train on
        # the labels alone, from different seeds (docs/weight_map.md section 10)
        parts += ["", f"Read with the teacher as the grid's labels-alone point (gt_weight 1), as `{s['default_estimator']}` "
                      f"uses it, instead of the grid's own student at 1: within one grid sd in {te['within']}/{te['cells']}, "
                      f"{len(te['outside_ok'])} outside with status ok, right sign in {te['right_sign']}/{te['sign_cells']}."]
    n = s["das_sanghavi"]
    parts += ["", f"Das & Sanghavi (ICML 2023), gt_weight < 0 optimal at high label noise (method `{p['negative_method']}`, "
                  f"grid {p['negative_grid']}, noise >= {p['negative_from']:g}): {n['negative_by_val']}/{n['cells']} cells by "
                  f"validation Brier score, {n['negative_by_test']}/{n['cells']} by test accuracy."]
    d = s["derived"]
    cells = study["cells"]
    default = s["default_estimator"]
    parts += ["", table({
        "cell": [c["slug"] for c in cells],
        "teacher acc": [_fmt(float(np.mean(c["teacher_test_accuracy"]))) for c in cells],
        "grid weight": [_fmt(c["grid"]["best_weight"], ".2f") for c in cells],
        "grid acc": [_fmt(d[c["slug"]]["grid_best_accuracy"]) for c in cells],
        "gain": [_fmt(d[c["slug"]]["gain"], "+.3f") + ("*" if d[c["slug"]]["gain_exceeds_noise"] else "") for c in cells],
        f"{default} weight": [_fmt(c["estimators"].get(default, {}).get("gt_weight_mean"), ".2f") for c in cells],
        f"{default} acc": [_fmt(c["estimators"].get(default, {}).get("test_accuracy_mean")) for c in cells],
        "within": ["yes" if d[c["slug"]]["estimators"].get(default, {}).get("within") else "no" for c in cells],
        "status": ["; ".join(dict.fromkeys(c["estimators"].get(default, {}).get("status", ["-"])))[:80] for c in cells],
        "surrogates (unconstrained)": [", ".join(f"{k}: {_fmt(float(np.mean([u for u in v['unconstrained'] if u is not None])) if any(u is not None for u in v['unconstrained']) else None, '.2f')}"
                                                 for k, v in c.get("kernel_surrogates", {}).items()) or "-" for c in cells],
    })]
    return "\n".join(parts)
