"""The report's section on where the kernel theory and deep networks meet (:mod:`deepdistill.studies.bridge`).

:func:`bridge_section` reads the study that the ``bridge_*`` figures stored in ``out_dir/bridge_runs``
(it never starts a study of its own) and renders the pass/fail table of the must-shows and one table
per measurement.
"""
from __future__ import annotations


__all__ = ["bridge_section", "BRIDGE_FIGURE_NAMES"]

BRIDGE_FIGURE_NAMES = ("bridge_exact", "bridge_width", "bridge_weight", "bridge_toy")


def bridge_section(out_dir, fast: bool, table) -> str:
    """Markdown: the must-shows (PASS/FAIL) and the numbers of (a)-(d), from ``out_dir/bridge_runs``.

    ``table(columns) -> str`` renders a Markdown table (the report passes its own, so that the two modules
    do not import each other).
    """
    _table = table
    from deepdistill.studies.bridge import read_bridge_study

    from .figures.bridge import preset_name, runs_dir

    parts = ["## Where the kernel theory and deep networks meet", ""]
    study = read_bridge_study(runs_dir(out_dir), preset_name(fast))
    if study is None:
        parts.append(f"No bridge study ({preset_name(fast)} preset) in `{runs_dir(out_dir)}`: the bridge figures did not "
                     f"run. Produce it with `python -m analysis figures {' '.join(BRIDGE_FIGURE_NAMES)} --out {out_dir}"
                     f"{' --fast' if fast else ''}` or `python examples/kernel_meets_deep.py{' --fast' if fast else ''} "
                     f"--out {out_dir}`.")
        return "\n".join(parts)
    p, res = study["preset"], study["parts"]
    rows = study["must_show"]
    parts += [f"Preset `{p['name']}`: `sine` data ({p['n_train']} points, noise sd {p['noise']:g}), one-hidden-layer "
              f"{p['activation']} MLP in the NTK parameterisation, centred at initialisation, trained full-batch by "
              f"L-BFGS (max |grad| <= {p['tolerance_grad']:g}) on the sum-of-squares self-distillation loss with the "
              f"ridge {p['ridge']:g} ||theta - theta0||^2, every generation from the same theta0. The closed form is "
              "`KernelDistiller(kernel=\"precomputed\")` on the network's empirical NTK at theta0 "
              "(`examples/kernel_meets_deep.py` prints the same tables).", "",
              _table({"must show": [r["must_show"] for r in rows],
                      "measured": [f"{r['measured']:.3g}" for r in rows],
                      "threshold": [f"{r['threshold']:.3g}" for r in rows],
                      "result": ["PASS" if r["passed"] else "**FAIL**" for r in rows],
                      "detail": [r["detail"] for r in rows]})]
    e = res["exact"]
    parts += ["", f"**(a)** Linearised network (width {e['width']}, {e['n_train']} points): the largest relative "
                  f"difference to the closed form over steps 1..{max(e['steps'])}, gt_weight in {e['gt_weights']} and "
                  f"both point sets is {e['max_relative_difference']:.1e}; the optimiser's tolerance bounds it by "
                  f"{e['optimiser_bound']:.1e}."]
    w = res["width"]
    table = {"width": w["widths"]}
    for s, col in zip(w["steps"], zip(*w["deviation_per_step"])):
        table[f"step {s}"] = [f"{v:.2e}" for v in col]
    table["mean"] = [f"{v:.2e}" for v in w["mean_deviation"]]
    parts += ["", f"**(b)** Relative deviation of the real network from the closed form at new points (mean over "
                  f"{len(w['seeds'])} seed(s) and gt_weight {w['gt_weights']}); log-log slope {w['slope']:.2f} (per step: "
                  + ", ".join(f"{v:.2f}" for v in w["slope_per_step"]) + ").", "", _table(table)]
    weight_rows = w["weights"] + res["parted"]["rows"]
    parts += ["", "**(c)** Optimal ground-truth weight of the first student (step 2): the vertex of the closed form's "
                  "test risk on the eNTK at initialisation against the deep grid's argmin refined by the parabola through "
                  "it and its neighbours (risks averaged over seeds; MNIST-1D: validation Brier score, kernel surrogate "
                  "of `deepdistill.studies.weight_estimation` with its ridge matched to the teacher).", "",
              _table({"case": [r["case"] for r in weight_rows],
                      "width": ["-" if r["width"] is None else r["width"] for r in weight_rows],
                      "kernel": [f"{r['kernel_gt_weight']:.3f}" for r in weight_rows],
                      "deep": [f"{r['deep_gt_weight']:.3f}" + (" (edge)" if r["deep_at_edge"] else "") for r in weight_rows],
                      "difference": [f"{r['difference']:+.3f}" for r in weight_rows]})]
    t = res["toy"]
    curves = list(t["loss"])
    toy = {"curve": [], "gt_weight": []}
    for s in t["steps"]:
        toy[f"step {s}"] = []
    for i, g in enumerate(t["gt_weights"]):
        for c in curves:
            toy["curve"].append(c)
            toy["gt_weight"].append(g)
            for j, s in enumerate(t["steps"]):
                toy[f"step {s}"].append(f"{t['loss'][c][i][j]:.4f}")
    shape = t["shape_at_gt_weight_0"] or {}
    parts += ["", f"**(d)** [BA21]'s toy (loss against sin(2 pi x)), network width {t['width']} (input scale "
                  f"{t['input_std']:g}, ridge {t['ridge']:g}). Best step at gt_weight 0: "
                  + ", ".join(f"{c} {v['best_step']}" for c, v in shape.items()) + ".", "", _table(toy)]
    return "\n".join(parts)
