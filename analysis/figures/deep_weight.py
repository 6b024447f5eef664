"""``deep_gt_weight``: test accuracy of the generation-1 ``sd_kd`` student against ``gt_weight`` ([BA21]'s
alpha, the weight on the ground truth), with the grid's best weight and the weight estimates marked.

Data: :func:`gt_weight_data` (one row per grid student, one per estimate and seed); plot:
:func:`gt_weight_plot`; caption: :func:`gt_weight_caption`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis.figures.deep_presets import get_preset
from analysis.figures.deep_runs import PresetRuns, setting_columns, setting_note
from analysis.figures.spec import read_csv, write_csv
from analysis.plotting import PALETTE, mean_sd_drawn, new_figure, save_figure

__all__ = ["ESTIMATOR_LABELS", "gt_weight_data", "gt_weight_plot", "gt_weight_caption"]

ESTIMATOR_LABELS = {
    "grid_best_val": "grid best (val. acc.)",
    "half_grid": "half grid, seeds pooled (default)",
    "pooled": "pooled parabola",
    "refined": "refined (parabola)",
    "two_run": "two-run affine",
    "two_run_student": "two-run affine (student end point)",
    "kernel_features": "kernel surrogate (features)",
    "one_shot_features": "one-shot [DPR26] (features)",
    "kernel_ntk": "kernel surrogate (NTK)",
    "one_shot_ntk": "one-shot [DPR26] (NTK)",
}
# One (colour, marker) per estimator, the same in every drawing (the grid's student curve is PALETTE[0]).
_ESTIMATOR_STYLES = {"grid_best_val": (PALETTE[7], "*"), "refined": (PALETTE[6], "o"), "two_run": (PALETTE[3], "D"),
                     "two_run_student": (PALETTE[1], "d"), "kernel_features": (PALETTE[2], "s"),
                     "one_shot_features": (PALETTE[4], "^"), "kernel_ntk": (PALETTE[5], "v"),
                     "one_shot_ntk": ("#882255", "P"), "half_grid": ("#117733", "X"), "pooled": ("#AA4499", "h")}

_GT_COLUMNS = ("dataset", "model", "epochs", "kind", "estimator", "seed", "temperature", "gt_weight",
               "unconstrained_gt_weight", "val_accuracy", "test_accuracy", "teacher_test_accuracy", "training_runs",
               "wall_time_s", "student_is_teacher", "interval_low", "interval_high", "predicted_val_brier",
               "achieved_val_brier", "cpu_time_s", "status")


def gt_weight_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Rows of ``kind``:

    - ``run``: one per (gt_weight, seed) of the grid: generation-1 val/test accuracy, the teacher's
      (generation 0) test accuracy, and the training cost of the student;
    - ``estimate``: ``grid_best_val`` (the grid weight with the best mean validation accuracy; seed
      empty; its cost is the teacher plus every grid student, per seed), then one row per seed and
      estimator of :mod:`deepdistill.studies.weight_estimation` (test accuracy of the student trained at the
      estimate; ``student_is_teacher`` 1 where that network is the teacher itself, which an estimator may
      keep as its student at weight 1, since both train on the labels alone).
    """
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.weight_grid()
    rows: dict[str, list] = {k: [] for k in _GT_COLUMNS}

    def add(rec, **values):
        for k, v in setting_columns(rec).items():
            rows[k].append(v)
        for k in _GT_COLUMNS[3:]:
            rows[k].append(values.get(k, "" if k in ("estimator", "status") else 0 if k == "student_is_teacher"
                                      else math.nan))

    for rec in records:
        g0, g1 = rec["generations"][:2]
        add(rec, kind="run", gt_weight=g1["gt_weight"], seed=rec["seed"], temperature=g1["temperature"],
            val_accuracy=g1["val"]["accuracy"],
            test_accuracy=g1["test"]["accuracy"], teacher_test_accuracy=g0["test"]["accuracy"], training_runs=1,
            wall_time_s=g1["wall_time_s"])
    weights = sorted({r["generations"][1]["gt_weight"] for r in records})
    at = {w: [r for r in records if r["generations"][1]["gt_weight"] == w] for w in weights}
    val_mean = [np.mean([r["generations"][1]["val"]["accuracy"] for r in at[w]]) for w in weights]
    best = weights[int(np.argmax(val_mean))]  # ties: the smallest weight
    teacher_cost = np.mean([r["generations"][0]["wall_time_s"] for r in at[best]])
    add(records[0], kind="estimate", estimator="grid_best_val", gt_weight=best,
        val_accuracy=float(np.mean([r["generations"][1]["val"]["accuracy"] for r in at[best]])),
        test_accuracy=float(np.mean([r["generations"][1]["test"]["accuracy"] for r in at[best]])),
        training_runs=1 + len(weights),
        wall_time_s=float(teacher_cost + sum(np.mean([r["generations"][1]["wall_time_s"] for r in at[w]])
                                             for w in weights)))
    for e in runs.weight_estimates():
        add(records[0], kind="estimate", **e)
    return write_csv(Path(out_dir) / "deep_gt_weight.csv", rows)



def _coincident_offsets(xs, ys, x_span: float) -> np.ndarray:
    """Horizontal offsets that pull apart markers drawn at the same point (same x and y to 3 decimals):
    the ``k`` markers of one point spread over ``0.03 * k * x_span``, centred on it; a lone marker stays."""
    offsets = np.zeros(len(xs))
    groups: dict[tuple, list[int]] = {}
    for i, (x, y) in enumerate(zip(xs, ys)):
        groups.setdefault((round(float(x), 3), round(float(y), 3)), []).append(i)
    for members in groups.values():
        k = len(members)
        for j, i in enumerate(members):
            offsets[i] = 0.0 if k == 1 else (j - (k - 1) / 2) * 0.03 * x_span
    return offsets


def gt_weight_plot(data_path: Path, out_dir: Path) -> list[Path]:
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.patches import Patch

    cols = read_csv(data_path)
    run = cols["kind"] == "run"
    weights = sorted(set(cols["gt_weight"][run].tolist()))
    seeds = sorted(set(cols["seed"][run].tolist()))
    fig, ax = new_figure("column", height=3.4)
    for s in seeds:
        m = run & (cols["seed"] == s)
        order = np.argsort(cols["gt_weight"][m])
        ax.plot(cols["gt_weight"][m][order], cols["test_accuracy"][m][order], color=PALETTE[0], alpha=0.3, lw=0.6)
    stats = [mean_sd_drawn(cols["test_accuracy"][run & (cols["gt_weight"] == w)]) for w in weights]
    ax.errorbar(weights, [s[0] for s in stats], yerr=[s[1] for s in stats], color=PALETTE[0], marker="o", ms=3,
                label=f"student, generation 1 (mean ± sd; thin: each of {len(seeds)} seeds)")
    teacher, teacher_sd = mean_sd_drawn(cols["teacher_test_accuracy"][run & (cols["gt_weight"] == weights[0])])
    line = ax.axhline(teacher, color=PALETTE[7], ls=":", lw=0.8)
    ax.axhspan(teacher - teacher_sd, teacher + teacher_sd, color=PALETTE[7], alpha=0.08, lw=0)
    teacher_handle = (Patch(facecolor=PALETTE[7], alpha=0.08), line)
    estimate = cols["kind"] == "estimate"
    rows = np.flatnonzero(estimate)
    # Each estimate where its own student landed: one marker per seed at (its weight, the test accuracy of the
    # network trained there). At weight 1 an estimator may keep the teacher (its labels end point) as that
    # student: the marker then sits on the teacher's line, hollow. Markers at one point are pulled apart.
    x_span = max(weights) - min(weights) or 1.0
    ys = np.where(np.isfinite(cols["test_accuracy"][rows]), cols["test_accuracy"][rows], teacher)
    offsets = _coincident_offsets(cols["gt_weight"][rows], ys, x_span)
    handles, labels = [], []
    for name in dict.fromkeys(cols["estimator"][estimate].tolist()):
        colour, marker = _ESTIMATOR_STYLES.get(name, (PALETTE[6], "o"))
        mine = [j for j, i in enumerate(rows) if cols["estimator"][i] == name]
        hollow_any = False
        for j in mine:
            i = rows[j]
            hollow = bool(cols["student_is_teacher"][i]) if "student_is_teacher" in cols else False
            hollow_any |= hollow
            h = ax.plot([cols["gt_weight"][i] + offsets[j]], [ys[j]], ls="none", marker=marker, ms=6 if marker == "*" else 4.5,
                        color=colour, mfc="white" if hollow else colour, mew=1.0, zorder=4)[0]
        w, w_sd = mean_sd_drawn(cols["gt_weight"][estimate & (cols["estimator"] == name)])
        label = ESTIMATOR_LABELS.get(name, name.replace("_", " "))
        label += f": {w:.2f}" + (f" ± {w_sd:.2f}" if w_sd > 0 else "") + (f" ({len(mine)} seeds)" if len(mine) > 1 else "")
        handles.append(h)
        labels.append(label)
    ax.set_xlabel("gt_weight (weight on the ground truth)")
    ax.set_ylabel("test accuracy")
    main_handles, main_labels = ax.get_legend_handles_labels()
    teacher_label = f"teacher, generation 0: {teacher:.3f}" + (f" ± {teacher_sd:.3f} (band)" if teacher_sd > 0 else "")
    ax.legend(main_handles + [teacher_handle] + handles, main_labels + [teacher_label] + labels,
              handler_map={tuple: HandlerTuple(ndivide=None, pad=0)}, loc="upper center", bbox_to_anchor=(0.5, -0.18),
              ncol=1, fontsize=6, frameon=False)
    temperature = float(cols["temperature"][run][0])
    hollow_note = "\n(hollow: at 1 the estimator keeps its teacher as the student)" if (
        "student_is_teacher" in cols and np.any(cols["student_is_teacher"][estimate] == 1)) else ""
    ax.set_title(f"SD (KD, $T$ = {temperature:g}), generation 1 ({setting_note(cols)})\n"
                 f"estimates: a marker per seed, at its student's test accuracy{hollow_note}", fontsize=7)
    return save_figure(fig, out_dir, "deep_gt_weight")


def gt_weight_caption(data_path: Path) -> str:
    """What the figure shows (from the grid present) and what it found: the best grid weight and its accuracy."""
    cols = read_csv(data_path)
    run = cols["kind"] == "run"
    weights = sorted(set(cols["gt_weight"][run].tolist()))
    seeds = len(set(cols["seed"][run].tolist()))
    at = {w: mean_sd_drawn(cols["test_accuracy"][run & (cols["gt_weight"] == w)])[0] for w in weights}
    best = max(at, key=lambda w: (at[w], -w))
    estimate = (cols["kind"] == "estimate") & (cols["estimator"] != "grid_best_val")
    names = [ESTIMATOR_LABELS.get(n, n) for n in dict.fromkeys(cols["estimator"][estimate].tolist())]
    shows = (f"Test accuracy of the generation-1 SD (KD) student against gt_weight (weight on the ground truth) at "
             f"{len(weights)} weights from {min(weights):g} to {max(weights):g}, {seeds} seed{'s' if seeds > 1 else ''}"
             + (f", with the estimates of {', '.join(names)} drawn where their students landed." if names
                else "; the grid's best weight by validation accuracy is marked."))
    grid_best = cols["gt_weight"][cols["estimator"] == "grid_best_val"]
    shown = weights if len(weights) <= 6 else [min(weights), best, max(weights)]
    found = (f"The best mean test accuracy, {at[best]:.3f}, is at gt_weight {best:g} ("
             + ", ".join(f"{at[w]:.3f} at {w:g}" for w in shown) + ")"
             + (f"; validation accuracy picks {float(grid_best[0]):g}." if len(grid_best) else "."))
    return f"{shows} {found}"
