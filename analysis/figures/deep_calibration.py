"""``deep_reliability``, ``deep_penultimate`` and ``deep_stability``: calibration and representation of the
networks themselves, recomputed from the checkpoints ([M19], [S21]).

- ``deep_reliability``: reliability diagrams on the test set (seeds pooled) of ce and ls (generation 0)
  and sd_kd (its last generation, with the weight and temperature that generation was trained at);
- ``deep_penultimate``: penultimate activations of three classes on the plane of their templates, with
  and without label smoothing ([M19], not t-SNE);
- ``deep_stability``: 1 - S of [S21] for teachers trained with and without label smoothing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from analysis.figures.deep_presets import get_preset
from analysis.figures.deep_runs import PresetRuns, generation_probs, setting_columns, setting_note
from analysis.figures.spec import read_csv, write_csv
from analysis.plotting import (PALETTE, SERIES_LABELS, mean_sd_drawn, new_figure, save_figure, series_styles)
from deepdistill.core import metrics
from deepdistill.core.threads import torch_threads

__all__ = ["reliability_data", "reliability_plot", "reliability_caption", "penultimate_data", "penultimate_plot",
           "penultimate_caption", "stability_data", "stability_plot", "stability_caption"]


# (method, which generation): the baselines' generation 0, self-distillation's last generation.
_RELIABILITY_METHODS = (("ce", 0), ("ls", 0), ("sd_kd", -1))


def reliability_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Per method: :func:`deepdistill.core.metrics.reliability_table` of the test predictions of every seed pooled."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    bins = runs.reliability_bins
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "generation", "gt_weight",
                                             "temperature", "n_seeds", "bin",
                                             "lower", "upper", "count", "confidence", "accuracy", "gap", "ece")}
    with torch_threads(runs.threads):
        for method, which in _RELIABILITY_METHODS:
            recs = runs.of_method(records, method, "deep_reliability")
            if not recs:
                continue                            # a user's sweep without this method: drawn without it
            g = which % recs[0]["config"]["generations"]
            probs, labels = zip(*(generation_probs(*runs.load(r, g), "test") for r in recs))
            p, y = np.concatenate(probs), np.concatenate(labels)
            table = metrics.reliability_table(p, y, n_bins=bins)
            ece = metrics.ece(p, y, n_bins=bins)
            for b in range(bins):
                for k, v in setting_columns(recs[0]).items():
                    rows[k].append(v)
                rows["method"].append(method)
                rows["generation"].append(g)
                # The weight on the labels and the temperature generation g was trained at (1 and 1 at generation 0).
                rows["gt_weight"].append(recs[0]["generations"][g]["gt_weight"])
                rows["temperature"].append(recs[0]["generations"][g]["temperature"])
                rows["n_seeds"].append(len(recs))
                rows["bin"].append(b)
                for k in ("lower", "upper", "count", "confidence", "accuracy", "gap"):
                    rows[k].append(table[k][b])
                rows["ece"].append(ece)
    return write_csv(Path(out_dir) / "deep_reliability.csv", rows)


def reliability_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    styles = series_styles(methods)
    # About 2.4 in per panel (square panels), so that two panels of a user's sweep are not far apart.
    fig, axes = new_figure(min(7.0, 0.4 + 2.3 * len(methods)), height=2.9, ncols=len(methods), sharey=True)
    for ax, method in zip(np.atleast_1d(axes), methods):
        m = cols["method"] == method
        lower, upper = cols["lower"][m], cols["upper"][m]
        acc, conf, count = cols["accuracy"][m], cols["confidence"][m], cols["count"][m]
        filled = count > 0
        width = (upper - lower)[filled]
        ax.bar(lower[filled], acc[filled], width=width, align="edge", color=styles[method]["color"], alpha=0.55,
               edgecolor="white", linewidth=0.4, label="accuracy of the bin")
        # The gap to the bin's mean confidence, hatched: above a bar = over-confident.
        ax.bar(lower[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width, align="edge",
               color="none", edgecolor=PALETTE[3], hatch="////", linewidth=0.4,
               label="gap to the bin's mean confidence")
        ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence (max. probability)")
        g, n_seeds, ece = int(cols["generation"][m][0]), int(cols["n_seeds"][m][0]), float(cols["ece"][m][0])
        title = f"{SERIES_LABELS.get(method, method)}, gen. {g}: ECE {ece:.3f}"
        if g >= 1 and "gt_weight" in cols:      # a distilled generation: say what it was trained at
            w, t = float(cols["gt_weight"][m][0]), float(cols["temperature"][m][0])
            title += f"\ngt_weight {w:g} (on the labels), $T$ = {t:g}"
        ax.set_title(title)
        pooled = f"{int(count.sum())} test predictions of {n_seeds} seeds pooled, {len(count)} bins"
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("accuracy")
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(f"Reliability ({setting_note(cols)}; {pooled})\nbars above the diagonal: under-confident")
    return save_figure(fig, out_dir, "deep_reliability")


# --------------------------------------------------------------------------------------------------
# deep_penultimate: [M19]'s projection of penultimate activations
# --------------------------------------------------------------------------------------------------

def penultimate_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Generation 0 of ``ce`` and ``ls`` (first seed): activations of the three classes on train and
    test, projected on the plane through their last-layer templates
    (:func:`deepdistill.core.metrics.penultimate_projection`)."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    classes = list(runs.projection_classes)
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "smoothing", "seed", "split",
                                             "label", "predicted", "u", "v")}
    with torch_threads(runs.threads), torch.no_grad():
        for method in ("ce", "ls"):
            recs = runs.of_method(records, method, "deep_penultimate")
            if not recs:
                continue                            # a user's sweep without this method: drawn without it
            rec = min(recs, key=lambda r: r["seed"])    # the first seed
            model, splits = runs.load(rec, 0)
            for split in ("train", "test"):
                x, y = getattr(splits, split).tensors
                keep = np.isin(y.numpy(), classes)
                feats = model.features(x[torch.as_tensor(keep)])                          # (m, D)
                predicted = model.head(feats).argmax(dim=1).numpy()                         # (m,)
                uv = metrics.penultimate_projection(feats, model.head.weight, model.head.bias, classes)  # (m, 2)
                for label, pred, (u, v) in zip(y.numpy()[keep], predicted, uv):
                    for k, val in setting_columns(rec).items():
                        rows[k].append(val)
                    rows["method"].append(method)
                    rows["smoothing"].append(rec["config"]["smoothing"] if method == "ls" else 0.0)
                    rows["seed"].append(rec["seed"])
                    rows["split"].append(split)
                    rows["label"].append(int(label))
                    rows["predicted"].append(int(pred))
                    rows["u"].append(float(u))
                    rows["v"].append(float(v))
    return write_csv(Path(out_dir) / "deep_penultimate.csv", rows)


def penultimate_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    classes = sorted(set(cols["label"].tolist()))
    methods = list(dict.fromkeys(cols["method"].tolist()))
    splits = ("train", "test")
    fig, axes = new_figure("full", height=2.1, ncols=len(methods) * len(splits))
    for j, (method, split) in enumerate((m, s) for m in methods for s in splits):
        ax = axes[j]
        m = (cols["method"] == method) & (cols["split"] == split)
        for c_i, c in enumerate(classes):
            mc = m & (cols["label"] == c)
            ax.scatter(cols["u"][mc], cols["v"][mc], s=2, alpha=0.5, color=PALETTE[c_i], linewidths=0,
                       label=f"class {c}", rasterized=True)
        smoothing = float(cols["smoothing"][m][0])
        name = "CE" if method == "ce" else f"LS ($\\epsilon$ = {smoothing:g})"
        ax.set_title(f"{name}, {split}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[["left", "bottom"]].set_color("0.6")
    axes[0].set_ylabel("template plane, axis 2")
    for ax in axes:
        ax.set_xlabel("axis 1")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(classes), markerscale=3)
    fig.suptitle(f"Penultimate activations on the plane of the class templates [M19] ({setting_note(cols)}, "
                 "generation 0)")
    return save_figure(fig, out_dir, "deep_penultimate")


# --------------------------------------------------------------------------------------------------
# deep_stability: 1 - S of [S21] with and without label smoothing
# --------------------------------------------------------------------------------------------------

def stability_data(out_dir: Path, fast: bool, runs=None) -> Path:
    """Generation 0 of ``ce`` and ``ls`` per seed: ``1 - S`` ([S21]) and accuracy on train and test."""
    runs = runs or PresetRuns(out_dir, get_preset(fast))
    records = runs.comparison()
    rows: dict[str, list] = {k: [] for k in ("dataset", "model", "epochs", "method", "smoothing", "seed", "split",
                                             "one_minus_stability", "accuracy")}
    with torch_threads(runs.threads):
        for method in ("ce", "ls"):
            for rec in runs.of_method(records, method, "deep_stability"):
                model, splits = runs.load(rec, 0)
                for split in ("train", "test"):
                    p, y = generation_probs(model, splits, split)
                    for k, v in setting_columns(rec).items():
                        rows[k].append(v)
                    rows["method"].append(method)
                    rows["smoothing"].append(rec["config"]["smoothing"] if method == "ls" else 0.0)
                    rows["seed"].append(rec["seed"])
                    rows["split"].append(split)
                    rows["one_minus_stability"].append(1.0 - metrics.stability(p, y))
                    rows["accuracy"].append(metrics.accuracy(p, y))
    return write_csv(Path(out_dir) / "deep_stability.csv", rows)


def stability_plot(data_path: Path, out_dir: Path) -> list[Path]:
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    styles = series_styles(methods)
    splits = list(dict.fromkeys(cols["split"].tolist()))
    fig, ax = new_figure("column", height=2.3)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        smoothing = float(cols["smoothing"][cols["method"] == method][0])
        label = "CE (no smoothing)" if method == "ce" else f"label smoothing, $\\epsilon$ = {smoothing:g}"
        for j, split in enumerate(splits):
            m = (cols["method"] == method) & (cols["split"] == split)
            mean, sd = mean_sd_drawn(cols["one_minus_stability"][m])
            x = j + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, mean, width=width * 0.9, yerr=sd, color=styles[method]["color"], alpha=0.55,
                   label=label if j == 0 else None)
            ax.scatter(np.full(m.sum(), x), cols["one_minus_stability"][m], s=6, color="black", zorder=3, linewidths=0)
    ax.set_xticks(range(len(splits)), [f"{s} set" for s in splits])
    ax.set_ylabel("1 $-$ stability (within-class scatter)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=1)
    ax.set_title(f"Teachers, generation 0 ({setting_note(cols)}); dots = seeds", fontsize=7)
    return save_figure(fig, out_dir, "deep_stability")




def _shown(method: str, g: int, cols, m) -> str:
    name = SERIES_LABELS.get(method, method)
    if g >= 1 and "gt_weight" in cols:
        return f"{name} (generation {g}, gt_weight {float(cols['gt_weight'][m][0]):g})"
    return f"{name} (generation {g})"


def reliability_caption(data_path: Path) -> str:
    """What the diagrams show (the methods present, the weight of the distilled one) and what they found (ECE)."""
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    shown, eces = [], []
    for method in methods:
        m = cols["method"] == method
        g = int(cols["generation"][m][0])
        shown.append(_shown(method, g, cols, m))
        eces.append(f"{SERIES_LABELS.get(method, method)} {float(cols['ece'][m][0]):.3f}")
    seeds = int(cols["n_seeds"][0])
    return (f"Reliability diagrams on the test set, predictions of {seeds} seed{'s' if seeds > 1 else ''} pooled, of "
            f"{', '.join(shown)}. Pooled ECE ({int(cols['bin'].max()) + 1} bins): {', '.join(eces)}.")


def penultimate_caption(data_path: Path) -> str:
    """What the projection shows and what it found: the spread of each class's cloud, without and with smoothing."""
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    classes = sorted(set(cols["label"].tolist()))
    spreads = []
    for method in methods:
        m = (cols["method"] == method) & (cols["split"] == "train")
        # The mean distance of a class's points to their class centre, averaged over the classes (plane units).
        d = [np.mean(np.hypot(cols["u"][m & (cols["label"] == c)] - cols["u"][m & (cols["label"] == c)].mean(),
                              cols["v"][m & (cols["label"] == c)] - cols["v"][m & (cols["label"] == c)].mean()))
             for c in classes if np.any(m & (cols["label"] == c))]
        spreads.append(f"{SERIES_LABELS.get(method, method)} {np.mean(d):.2f}")
    return (f"Penultimate activations of classes {', '.join(str(c) for c in classes)} (first seed, generation 0) "
            f"projected on the plane of their last-layer templates [M19], for {', '.join(SERIES_LABELS.get(m, m) for m in methods)}, "
            f"train and test. Mean distance of a training point to its class centre in that plane: "
            f"{', '.join(spreads)}" + (" ([M19] report tighter clusters with label smoothing)." if len(methods) > 1 else "."))


def stability_caption(data_path: Path) -> str:
    """What the bars show and what they found: 1 - S per method on the training set."""
    cols = read_csv(data_path)
    methods = list(dict.fromkeys(cols["method"].tolist()))
    found = []
    for method in methods:
        for split in ("train", "test"):
            m = (cols["method"] == method) & (cols["split"] == split)
            if m.any():
                mean, sd = mean_sd_drawn(cols["one_minus_stability"][m])
                found.append(f"{SERIES_LABELS.get(method, method)} on {split} {mean:.3f} ± {sd:.3f}")
    seeds = len(set(cols["seed"].tolist()))
    return (f"1 - stability [S21] (within-class scatter of the softmax vectors) of the generation-0 teachers of "
            f"{' and '.join(SERIES_LABELS.get(m, m) for m in methods)}, {seeds} seed{'s' if seeds > 1 else ''}. "
            f"Measured: {'; '.join(found)}.")
