"""``report.md``: the kernel theory checks, the deep results, the weight estimates, every figure, the metrics.

:func:`build_report` is the one entry point (``python -m analysis report``). It regenerates the
figures into ``out_dir`` (so the report never shows a stale figure; the deep figures train their
runs, or reuse the finished ones, in ``out_dir/deep_runs/``), then writes ``report.md`` next to
them, atomically. Sections are small functions returning Markdown, in this order:

1. :func:`verification_section`: the pass/fail table of ``kerneldistill.verification.run_checks``;
   then :func:`claims_section`: the summary table of every registered claim (``python -m kerneldistill
   claims``), read from the ``claims_summary`` figure's table;
2. :func:`deep_tables_section`: per data set, method x generation (first and last): test accuracy,
   NLL, ECE and confidence diversity as mean ± sd over seeds, from the shared sweep's roll-up
   (``deep_runs/rollup.csv``), restricted to the method comparison of the preset;
3. :func:`weight_estimates_section`: the grid's best ``gt_weight`` against the estimates of
   ``deepdistill.studies.weight_estimation`` (the half grid, two-run affine, kernel surrogates), read from the
   ``deep_gt_weight`` figure's table;
4. :func:`analysis.bridge_report.bridge_section`: where the kernel theory and deep networks meet,
   the pass/fail table of :mod:`deepdistill.studies.bridge`'s must-shows and its four measurements;
5. :func:`analysis.figures.weight_map.weight_map_section`: the map of where self-distillation helps and
   whether each weight estimator finds the weight there (:mod:`deepdistill.studies.weight_map`), read from the
   ``weight_map_*`` figures' study;
6. :func:`figures_section`: every registered figure, embedded as PNG;
7. the metric definitions and a metric check.

A report on YOUR results (``python -m analysis report --results DIR``) is
:func:`analysis.results_report.build_results_report`: it trains nothing. Progress (runs trained out of
all, figures written) goes to ``log`` (stderr from the command line).
"""
from __future__ import annotations

import math
import shlex
import time
from pathlib import Path
from typing import Callable

import numpy as np

from deepdistill.core import metrics
from deepdistill.core.config import TrainConfig
from deepdistill.core.io import atomic_write_text
from deepdistill.engine.results import mean_sd   # sample sd over seeds; NaN for one seed
from kerneldistill.verification import run_checks

from .bridge_report import bridge_section
from .figures.weight_map import weight_map_section
from .figures import FIGURES, run_figure
from .figures.deep import (ESTIMATOR_LABELS, METHOD_LABELS, comparison_configs, ensure_runs, get_preset,
                           gt_weight_configs, runs_dir)
from .figures.spec import figure_caption, read_csv

__all__ = ["build_report", "train_deep_runs", "BACKGROUND_FIGURES", "start_background_figures", "MissingResultsError", "METRIC_COLUMNS", "REGRESSION_METRIC_COLUMNS", "DEEP_RESULTS_COMMAND",
           "verification_section", "claims_section", "deep_tables_section", "weight_estimates_section", "figures_section", "markdown_table",
           "metric_definitions_section"]

#: The columns of one per-generation record (the keys of :func:`deepdistill.core.metrics.summarize`).
METRIC_COLUMNS = ("accuracy", "nll", "ece", "brier", "entropy", "diversity")
#: The columns of a regression record (:func:`deepdistill.core.metrics.summarize_regression`).
REGRESSION_METRIC_COLUMNS = ("mse", "rmse")

#: The command that produces a results folder; named in the error for a missing one.
DEEP_RESULTS_COMMAND = "python -m deepdistill sweep --out-dir DIR"


class MissingResultsError(ValueError):
    """The results folder is missing, empty, or holds no table the report can read."""


# --------------------------------------------------------------------------------------------------
# Markdown helpers
# --------------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    return str(v).replace("|", "\\|")  # a bare | would end the Markdown cell


def markdown_table(columns: dict[str, list]) -> str:
    """A Markdown table from equal-length columns (floats to 4 significant digits)."""
    header = list(columns)
    rows = zip(*columns.values())
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------

#: Figures whose data steps neither read the deep runs nor write what another figure reads (the claims,
#: and the bridge study, whose four figures share one resumable study folder): ``python -m analysis
#: report`` draws them in one background process, in this order, while it trains the deep runs and draws
#: the rest (measured, the fast report on 2 cores: see docs/analysis.md).
BACKGROUND_FIGURES = ("claims_summary", "bridge_exact", "bridge_width", "bridge_weight", "bridge_toy")


def _draw_in_order(names, out_dir, fast: bool) -> dict:
    """The background process's job: ``run_figure`` for each name, in order; ``{name: (seconds, paths)}``."""
    done = {}
    for name in names:
        started = time.perf_counter()
        paths = run_figure(name, out_dir, fast=fast)
        done[name] = (time.perf_counter() - started, paths)
    return done


def start_background_figures(out_dir: Path, fast: bool, skip=()):
    """Start :data:`BACKGROUND_FIGURES` (those the report draws) in one ``spawn`` worker process;
    returns ``(executor, future)``. The caller's entry point must be guarded by ``if __name__ == "__main__":``
    (``python -m analysis report`` is)."""
    import concurrent.futures as cf
    import multiprocessing

    names = [n for n in BACKGROUND_FIGURES if n in FIGURES and (FIGURES[n].fast_report or not fast) and n not in skip]
    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return pool, pool.submit(_draw_in_order, names, Path(out_dir), fast)


def figures_section(out_dir: Path, fast: bool, log: Callable[[str], None] | None = None, background=None,
                    skip=()) -> str:
    """Regenerate every registered figure into ``out_dir`` and embed its PNG (``log``: a line per figure written).
    ``background``: the future of :func:`start_background_figures`: the figures it draws are taken from it.
    ``skip``: figure names not drawn (listed with the command that draws them)."""
    parts = ["## Figures", ""]
    parts.append("| figure | description | data |")
    parts.append("|---|---|---|")
    outputs, captions = {}, {}
    drawn = {name: spec for name, spec in FIGURES.items() if (spec.fast_report or not fast) and name not in skip}
    elsewhere = {}
    order = list(drawn)
    if background is not None:           # the background's figures last: the others are drawn meanwhile
        order = [n for n in order if n not in BACKGROUND_FIGURES] + [n for n in order if n in BACKGROUND_FIGURES]
    for i, name in enumerate(order, start=1):
        spec = drawn[name]
        started = time.perf_counter()
        if background is not None and name in BACKGROUND_FIGURES:
            elsewhere = elsewhere or background.result()
            seconds, (data_path, *figure_paths) = elsewhere[name]
            started -= seconds           # its own time, in the other process
        else:
            data_path, *figure_paths = run_figure(name, out_dir, fast=fast)
        outputs[name] = figure_paths
        captions[name] = figure_caption(spec, data_path)   # from the runs present: what it shows, what it found
        if log:
            log(f"[{i}/{len(drawn)}] figure {name} written ({time.perf_counter() - started:.1f} s)")
        parts.append(f"| `{name}` | {spec.description} | `{data_path.name}` |")
    parts[4:] = sorted(parts[4:], key=lambda row: list(drawn).index(row.split("`")[1]))   # the registry's order
    outputs = {name: outputs[name] for name in drawn}
    for name, spec in FIGURES.items():
        if name in skip:
            parts.append(f"| `{name}` | {spec.description} | skipped (`--skip`): "
                         f"`python -m analysis figures {name} --out DIR{' --fast' if fast else ''}` |")
        elif name not in drawn:
            parts.append(f"| `{name}` | {spec.description} | not drawn in fast mode: "
                         f"`python -m analysis figures {name} --out DIR --fast` |")
    for name, figure_paths in outputs.items():
        png = next((p for p in figure_paths if p.suffix == ".png"), None)
        parts += ["", f"### {name}", "", captions[name], ""]
        if png is not None:
            parts.append(f"![{name}]({png.name})")
    return "\n".join(parts)


_DEFINITIONS = {
    "metric": ["accuracy", "nll", "ece", "brier", "entropy", "diversity", "1 - stability",
               "equivalent smoothing"],
    "definition": [
        "mean [argmax p_i = y_i]",
        "-mean log p_{i,y_i} (nats, clipped at 1e-12)",
        "sum_b |B_b|/n |acc_b - conf_b|, top-label confidence, equal-width bins (b-1, b]/B",
        "mean sum_k (p_ik - [k = y_i])^2, in [0, 2]",
        "mean -sum_k p_ik log p_ik (nats)",
        "variance over examples of p_{i,y_i}",
        "(1/K) sum_c (1/n_c) sum_{y_i = c} ||p_i - pbar_c||^2",
        "K/(K-1) mean (1 - p_{i,y_i}), Müller convention",
    ],
    "reference": ["", "", "Guo et al. 2017; 15 bins [M19], 20 bins [ZS20]", "Brier 1950", "", "[ZS20]",
                  "[S21]", "[M19]"],
}


def metric_definitions_section() -> str:
    return "\n".join(["## Metrics", "", "Definitions (`deepdistill/core/metrics.py` has the formulas in full):", "",
                      markdown_table(_DEFINITIONS)])


def metric_check_section(fast: bool, seed: int = 0) -> str:
    """Metrics of a synthetic classifier that is calibrated by construction, and of its tempered copies.

    Labels are drawn from the predictive distribution itself (``y_i ~ p_i``), so at temperature 1 the
    ECE only measures sampling noise; sharpening (T < 1) must raise ECE and lower entropy, smoothing
    (T > 1) must raise entropy. A reader sees at a glance that the metrics move the right way.
    """
    rng = np.random.default_rng(seed)
    n, k = (2000, 10) if fast else (50_000, 10)
    logits = 3.0 * rng.standard_normal((n, k))
    base = metrics.softmax(logits)
    labels = (rng.random(n)[:, None] > np.cumsum(base, axis=1)).sum(axis=1)  # y_i ~ Categorical(p_i)
    labels = np.minimum(labels, k - 1)  # guards the cumsum's round-off below 1
    temps = [0.5, 1.0, 2.0]
    rows = {"temperature": temps, **{c: [] for c in METRIC_COLUMNS}, "1 - stability": []}
    for t in temps:
        p = metrics.softmax(logits, temperature=t)
        record = metrics.summarize(p, labels)
        for c in METRIC_COLUMNS:
            rows[c].append(record[c])
        rows["1 - stability"].append(1.0 - metrics.stability(p, labels))
    intro = (f"Check on synthetic predictions (n = {n}, K = {k}, seed {seed}): labels drawn from the "
             "predictions at T = 1, so that model is calibrated by construction; T < 1 sharpens it "
             "(over-confident), T > 1 flattens it (under-confident).")
    return "\n".join(["### Metric check", "", intro, "", markdown_table(rows)])


# --------------------------------------------------------------------------------------------------
# Kernel theory, deep tables and weight estimates
# --------------------------------------------------------------------------------------------------

def verification_section(fast: bool) -> str:
    """The numerical and symbolic checks of the kernel theory (``kerneldistill.verification``)."""
    parts = ["## Kernel theory verification", ""]
    results = run_checks(fast=fast)

    def num(v: float) -> str:
        return "-" if not np.isfinite(v) else f"{v:.2e}"

    table = {"group": [r.group for r in results], "check": [r.name for r in results],
             "result": ["PASS" if r.passed else "**FAIL**" for r in results],
             "error": [num(r.error) for r in results], "tolerance": [num(r.tolerance) for r in results],
             "detail": [r.detail for r in results]}
    passed = sum(r.passed for r in results)
    parts += [f"Each check compares two independent computations (`python -m kerneldistill verify"
              f"{' --fast' if fast else ''}`): **{passed}/{len(results)} passed**.", "", markdown_table(table)]
    return "\n".join(parts)


def claims_section(out_dir: Path, fast: bool, skipped: bool = False) -> str:
    """The summary table of every registered claim (:mod:`kerneldistill.claims`).

    Read from ``out_dir/claims_summary.csv``, which the ``claims_summary`` figure's data step wrote
    (the claims then run once per report); run here if that table is absent, unless ``skipped``.
    """
    from .figures.claims import claims_summary_columns

    command = f"python -m kerneldistill claims{' --fast' if fast else ''}"
    path = Path(out_dir) / "claims_summary.csv"
    if path.is_file():
        cols = read_csv(path)
    elif skipped:
        return "\n".join(["## Claims: the field's published results", "",
                          f"Skipped (`--skip claims_summary`): `{command}` runs and prints them."])
    else:
        from kerneldistill.claims import run_claims
        cols = {k: list(v) for k, v in claims_summary_columns(run_claims(fast=fast)).items()}
    results = [str(r) for r in cols["result"]]
    table = {"claim": [f"`{c}`" for c in cols["claim"]], "paper": list(cols["paper"]),
             "published": list(cols["published"]), "measured": list(cols["measured"]),
             "criterion": list(cols["criterion"]), "result": [r if r == "PASS" else f"**{r}**" for r in results],
             "seconds": [f"{float(v):.1f}" for v in cols["seconds"]]}
    return "\n".join(["## Claims: the field's published results", "",
                      f"Each claim is a paper's result run as a check (`{command}` prints each claim's own table "
                      f"too; `docs/claims.md` says what matched): **{results.count('PASS')}/{len(results)} passed**.",
                      "", markdown_table(table)])


def _pm(mean: float, sd: float) -> str:
    """``mean ± sd``: 3 decimals for numbers below 10 (accuracies, NLL, weights), else 4 significant digits."""
    if not np.isfinite(mean):
        return "n/a"
    fmt = "{:.3f}" if abs(mean) < 10 else "{:.4g}"
    return fmt.format(mean) if not np.isfinite(sd) else f"{fmt.format(mean)} ± {fmt.format(sd)}"


# The roll-up metrics shown in the deep tables (test split).
_DEEP_TABLE_METRICS = (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"), ("diversity", "diversity"))


def deep_tables_section(out_dir: Path, fast: bool) -> str:
    """Per data set: method x (first, last) generation, test metrics as mean ± sd over seeds.

    Read from the shared sweep's roll-up ``out_dir/deep_runs/rollup.csv`` (written by the deep
    figures' data steps), keeping only the groups of the preset's method comparison, so that the
    weight grid's runs (also in that folder) do not enter the table.
    """
    parts = ["## Deep self-distillation: methods x data sets", ""]
    preset = get_preset(fast)
    rollup = runs_dir(out_dir) / "rollup.csv"
    if not rollup.is_file():
        parts.append(f"No roll-up at `{rollup}`: the deep figures did not run. Produce it with "
                     f"`python -m analysis figures deep_generations --out {out_dir}{' --fast' if fast else ''}`.")
        return "\n".join(parts)
    groups = {c.group_id() for c in comparison_configs(preset)}
    cols = read_csv(rollup)
    keep = np.isin(cols["group_id"].astype(str), sorted(groups))
    if not keep.any():
        parts.append(f"`{rollup}` holds none of the {len(groups)} run groups of the {preset.name!r} preset's method "
                     "comparison; rerun the deep figures with the same preset.")
        return "\n".join(parts)
    last = preset.generations - 1
    parts.append(f"Test split; mean ± sd over seeds (sample sd). Generation 0 trains on the labels; generation {last} "
                 f"is the last. Preset {preset.name!r}: {preset.base.get('epochs', TrainConfig.epochs)} epochs per generation. "
                 "ECE: 15 equal-width bins; diversity: variance of the true-class probability [ZS20].")
    for dataset in dict.fromkeys(cols["dataset"][keep].tolist()):
        rows = np.flatnonzero(keep & (cols["dataset"] == dataset) & np.isin(cols["generation"], [0, last]))
        order = sorted(rows, key=lambda i: (_method_rank(cols["method"][i]), cols["generation"][i]))
        table = {"method": [cols["method"][i] for i in order], "generation": [int(cols["generation"][i]) for i in order],
                 "seeds": [int(cols["n_seeds"][i]) for i in order]}
        for key, title in _DEEP_TABLE_METRICS:
            table[title] = [_pm(cols[f"test_{key}_mean"][i], cols[f"test_{key}_sd"][i]) for i in order]
        model = cols["model"][order[0]]
        parts += ["", f"### {dataset} ({model})", "", markdown_table(table)]
    return "\n".join(parts)


def _method_rank(method: str) -> int:
    names = list(METHOD_LABELS)
    return names.index(method) if method in names else len(names)


def weight_estimates_section(out_dir: Path) -> str:
    """The grid's best ``gt_weight`` against the estimators, from the ``deep_gt_weight`` table."""
    parts = ["## Optimal ground-truth weight: grid, kernel surrogates and deep estimates", ""]
    path = Path(out_dir) / "deep_gt_weight.csv"
    if not path.is_file():
        parts.append(f"No `{path.name}` in {out_dir}: run `python -m analysis figures deep_gt_weight --out {out_dir}`.")
        return "\n".join(parts)
    cols = read_csv(path)
    est = cols["kind"] == "estimate"
    names = list(dict.fromkeys(cols["estimator"][est].tolist()))
    run = cols["kind"] == "run"
    teacher = _pm(*mean_sd(cols["teacher_test_accuracy"][run & (cols["gt_weight"] == cols["gt_weight"][run].min())]))
    table = {"approach": [], "gt_weight": [], "unconstrained": [], "90% interval": [], "val. Brier pred./trained": [],
             "test accuracy at it": [], "training runs": [], "CPU (s)": [], "wall time (s)": [], "status": []}
    has = set(cols)
    for name in names:
        m = est & (cols["estimator"] == name)
        table["approach"].append(ESTIMATOR_LABELS.get(name, name))
        table["gt_weight"].append(_pm(*mean_sd(cols["gt_weight"][m])))
        table["unconstrained"].append(_pm(*mean_sd(cols["unconstrained_gt_weight"][m])))
        table["test accuracy at it"].append(_pm(*mean_sd(cols["test_accuracy"][m])))
        table["training runs"].append(_fmt(float(np.nanmean(cols["training_runs"][m]))))
        table["wall time (s)"].append(f"{float(np.nanmean(cols['wall_time_s'][m])):.2f}")
        # Added columns (older tables lack them): the mean of the seeds' 90% intervals, predicted
        # against trained validation Brier score at the estimate, CPU seconds, the seeds whose status is not ok.
        def mean_of(col):
            vals = np.asarray(cols[col][m], dtype=float) if col in has else np.array([np.nan])
            return float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
        lo, hi = mean_of("interval_low"), mean_of("interval_high")
        table["90% interval"].append("-" if math.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]")
        pr, ac = mean_of("predicted_val_brier"), mean_of("achieved_val_brier")
        table["val. Brier pred./trained"].append("-" if math.isnan(pr) else f"{pr:.3f} / {ac:.3f}")
        cpu = mean_of("cpu_time_s")
        table["CPU (s)"].append("-" if math.isnan(cpu) else f"{cpu:.2f}")
        statuses = [str(v) for v in cols["status"][m]] if "status" in has else []
        flagged = [v for v in statuses if v and v not in ("ok", "nan")]
        table["status"].append("ok" if not flagged else f"{len(flagged)}/{len(statuses)} seeds: {flagged[0][:80]}")
    weights = sorted(set(cols["gt_weight"][run].tolist()))
    parts += [f"Self-distillation with KD, generation 1; the grid is gt_weight in {{{', '.join(f'{w:g}' for w in weights)}}} "
              f"(weight on the ground truth); the teacher (generation 0) has test accuracy {teacher}. The grid's "
              "choice maximises the mean validation accuracy; the kernel surrogates (kernel ridge self-distillation "
              "on the teacher's penultimate features, closed-form validation optimum and [DPR26]'s one-shot "
              "estimate) and the two-run affine estimate minimise the validation Brier score; 'unconstrained' is "
              "the optimum before clipping to [0, 1]. The default, the half grid, trains students at gt_weight 0, 0.2, "
              "0.4, 0.6 and 0.8 (the teacher serves for 1) and picks the one of least validation Brier score pooled over "
              "the seeds: half the runs of an 11-point grid. The refined estimate adds a student "
              "at the two-run estimate as a third point and takes the vertex of the parabola through the three. Intervals: 90% "
              "bootstrap over validation examples (pooled over seeds for the half grid), mean over seeds. 'pred./trained': the validation Brier score the "
              "estimator predicts at its weight against that of the student trained there. Test accuracy is that of "
              "a student trained at the weight; mean ± sd over seeds. Costs per seed include the teacher; CPU and wall "
              "seconds count the runs this study trained, each once.", "", markdown_table(table)]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------

def train_deep_runs(out_dir, fast: bool = False) -> list[dict]:
    """Train (or load) every run of the deep figures' preset in one sweep: the method comparison and the
    ``gt_weight`` grid. The figures would train them set by set; as one sweep, the jobs of the full preset
    (one per core) never wait at the border between the two sets, and the grid's teachers train beside
    the comparison's chains. The figures then find every run finished."""
    preset = get_preset(fast)
    return ensure_runs(comparison_configs(preset) + gt_weight_configs(preset), out_dir, preset)


def build_report(out_dir, fast: bool = False, log: Callable[[str], None] | None = None,
                 background: bool = False, skip=()) -> Path:
    """Regenerate the figures into ``out_dir`` (training the preset's runs that are missing) and write
    ``out_dir/report.md``; returns its path. ``log`` gets the progress (runs trained, figures written).
    ``background``: draw :data:`BACKGROUND_FIGURES` in a second process meanwhile (the command line does;
    a script of your own that asks for it needs the ``if __name__ == "__main__":`` guard of ``spawn``).
    ``skip``: figure names (of :data:`~analysis.figures.FIGURES`) not drawn, and their studies not run: e.g. the
    weight map's two figures, hours of the full preset on a few cores; the sections that read them say so."""
    skip = tuple(skip)
    unknown = [n for n in skip if n not in FIGURES]
    if unknown:
        raise ValueError(f"`skip` must name figures of the registry ({', '.join(FIGURES)}); got unknown {unknown}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = ("python -m analysis report --out " + shlex.quote(str(out)) + (" --fast" if fast else "")
               + (" --skip " + " ".join(skip) if skip else ""))
    pool, future = start_background_figures(out, fast, skip) if background else (None, None)
    try:
        train_deep_runs(out, fast)
        # The theorem checks (about 3 s) read nothing the figures write: done here, while the background process
        # still draws (its claims and bridge are the fast report's critical path), not after it has finished
        # (one timed fast report: 3.3 s from the last figure to the report before, 1.1 s after)
        verification = verification_section(fast)
        figures = figures_section(out, fast, log, future, skip)  # first: the deep tables read the runs the deep figures made
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    sections = [
        "# selfdistill report",
        f"Regenerate with `{command}`" + (" (fast mode: small sizes, for checking only)." if fast else "."),
        verification,
        claims_section(out, fast, skipped="claims_summary" in skip),
        deep_tables_section(out, fast),
        weight_estimates_section(out),
        bridge_section(out, fast, markdown_table),
        weight_map_section(out, fast, markdown_table),
        figures,
        metric_definitions_section(),
        metric_check_section(fast),
        f"A report on your own results, which trains nothing: `python -m analysis report --results DIR` "
        f"(DIR from `{DEEP_RESULTS_COMMAND}`).",
    ]
    text = "\n\n".join(sections) + "\n"
    target = out / "report.md"
    atomic_write_text(target, text)
    return target
