"""``report.md`` of YOUR results folder: its tables and the deep figures drawn from it; nothing is trained.

``python -m analysis report --results DIR [--out OUT]`` (``OUT`` defaults to ``DIR/report``) calls
:func:`build_results_report`. ``DIR`` is a sweep folder (``python -m deepdistill sweep --out-dir DIR``)
or any folder holding result tables and run folders. The report holds, in order:

1. every per-generation table under ``DIR`` (a ``*.csv`` with a ``generation`` column and a metric
   column of :func:`deepdistill.core.metrics.summarize`: ``ece``, ``test_ece`` or the roll-up's
   ``test_ece_mean``/``test_ece_sd``); with run records but no roll-up, the roll-up of the records.
   Rows are grouped by (data set, model, method, ``gt_weight``) and sorted; generation 0 of a method
   with a teacher, which every ``gt_weight`` of the method shares (it trains on the labels alone),
   appears once, its ``gt_weight`` shown as "labels" (a method without a weight shows "-"; Beta
   smoothing's generation 0 reads its weight and appears per weight); metrics are ``mean ± sd`` over
   seeds to 3 decimals;
2. the weight estimates found (``estimate_weight.csv`` of ``python -m deepdistill estimate-weight``);
3. the deep figures that the runs allow (:mod:`analysis.figures.sweep_runs`), each figure that cannot
   be drawn named with the runs it lacks;
4. the metric definitions.

Progress goes to ``log``: the tables found, each figure as it is written.
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from deepdistill.core.config import METHODS
from deepdistill.core.io import OutDirError, atomic_write_text, ensure_writable_dir
from deepdistill.engine.results import collect_records, rollup_rows

from .figures.deep import DEEP_FIGURES, METHOD_LABELS
from .figures.spec import MissingRunsError, figure_caption, read_csv
from .figures.sweep_runs import draw_from_sweep, find_runs
from .report import (DEEP_RESULTS_COMMAND, METRIC_COLUMNS, MissingResultsError, markdown_table,
                     metric_definitions_section)

__all__ = ["build_results_report", "results_table", "find_result_tables", "REPORT_FOLDER"]

#: Where the report goes inside the results folder unless told otherwise.
REPORT_FOLDER = "report"
# Bookkeeping columns of deepdistill's roll-up that do not belong in a results table.
_SKIP_COLUMNS = ("group_id", "seeds")
# Per-generation columns: they vary inside a group of runs and are not part of its setting.
_GENERATION_COLUMNS = ("generation", "loss", "gt_weight", "temperature", "n_seeds")
_WEIGHT_FILE = "estimate_weight.csv"


def _metric_column(name: str):
    """``(split, metric, stat)`` if ``name`` is a metric column, else None.

    Accepted names: ``ece`` (a per-generation record), ``test_ece`` (a split) and ``test_ece_mean`` /
    ``test_ece_sd`` (deepdistill's roll-up over seeds, ``deepdistill.engine.results.rollup_rows``).
    """
    stat = None
    for suffix in ("_mean", "_sd"):
        if name.endswith(suffix):
            name, stat = name[: -len(suffix)], suffix[1:]
            break
    for metric in METRIC_COLUMNS:
        if name == metric:
            return "", metric, stat
        if name.endswith("_" + metric):
            return name[: -len(metric) - 1], metric, stat
    return None


def find_result_tables(results_dir: Path, exclude: Path | None = None,
                       unreadable: list | None = None) -> list[tuple[str, dict]]:
    """``(title, columns)`` of every per-generation table under ``results_dir`` (``exclude``: a folder
    left out, e.g. the report's own); the roll-up of the run records when no table is a roll-up.

    A missing folder, or one with neither a table nor a run record, is a :class:`MissingResultsError`
    that names what is missing and the command that makes it. ``unreadable``: a list that receives
    ``(path, why)`` for every CSV that cannot be read as a table (not text, ragged rows); it is left out.
    """
    if results_dir.exists() and not results_dir.is_dir():
        raise MissingResultsError(f"results folder {results_dir} is a file, not a folder; give the folder that holds "
                                  f"the results (a sweep's --out-dir, e.g. {results_dir.parent}).")
    if not results_dir.is_dir():
        raise MissingResultsError(f"results folder {results_dir} does not exist. Produce it with "
                                  f"`{DEEP_RESULTS_COMMAND}`.")
    excluded = None if exclude is None else exclude.resolve()
    csvs = [p for p in sorted(results_dir.rglob("*.csv")) if p.name != _WEIGHT_FILE
            and (excluded is None or excluded not in p.resolve().parents)]
    tables, mismatched = [], []
    for path in csvs:
        try:
            columns = read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError, IndexError, csv.Error) as err:
            # A table is data, never code; one that is not a CSV table (overwritten, planted) is named and skipped.
            if unreadable is not None:
                unreadable.append((path, f"is not a readable CSV table ({type(err).__name__})"))
            continue
        has_metric = any(_metric_column(c) for c in columns)
        if "generation" in columns and has_metric:
            tables.append((f"`{path.relative_to(results_dir)}`", columns))
        else:
            lacking = (["generation"] if "generation" not in columns else []) + (
                [] if has_metric else [f"a metric column ({', '.join(METRIC_COLUMNS)})"])
            mismatched.append(f"{path.relative_to(results_dir)} lacks {' and '.join(lacking)}")
    if not any("group_id" in cols for _, cols in tables):
        rows = rollup_rows([r for r, _ in find_runs(results_dir)])
        if rows:
            columns = {k: np.array([row.get(k, np.nan) for row in rows], dtype=object) for k in rows[0]}
            tables.append(("the run records (no roll-up found)", _typed(columns)))
    if not tables and not (results_dir / _WEIGHT_FILE).exists() and not any(results_dir.rglob(_WEIGHT_FILE)):
        detail = ("; ".join(mismatched) + ". ") if mismatched else ""
        raise MissingResultsError(f"results folder {results_dir} holds no per-generation table, run record or weight "
                                  f"estimate: {detail}Produce them with `{DEEP_RESULTS_COMMAND}`.")
    return tables


def _typed(columns: dict) -> dict:
    """Object columns from records as float where every value is a number (the CSV reader's types)."""
    out = {}
    for k, v in columns.items():
        try:
            out[k] = np.array([np.nan if x is None else float(x) for x in v], dtype=np.float64)
            if k in ("generation", "n_seeds", "generations", "epochs"):
                out[k] = out[k].astype(np.int64)
        except (TypeError, ValueError):
            out[k] = np.array(["" if x is None else str(x) for x in v], dtype=object)
    return out


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{value:g}"
    return str(value)


def _pm3(mean, sd) -> str:
    """``mean ± sd`` to 3 decimals; ``mean`` alone when there is no sd (one seed)."""
    if mean is None or not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f}" if sd is None or not np.isfinite(sd) else f"{mean:.3f} ± {sd:.3f}"


def _uses_gt_weight(columns: dict, i: int) -> bool:
    method = str(columns["method"][i]) if "method" in columns else None
    return method not in METHODS or METHODS[method].uses_gt_weight


def _method_rank(method: str) -> tuple:
    names = list(METHOD_LABELS)
    return (names.index(method) if method in names else len(names), method)


def results_table(columns: dict[str, np.ndarray]) -> tuple[str, str]:
    """(a line of the settings shared by every row, a Markdown table of the rest).

    Rows grouped by (data set, model, method, the group's generation-1 ``gt_weight``) and sorted;
    a generation-0 row shared by several groups (same settings but ``gt_weight``) is shown once, first
    in its method's block. Metrics from the test split when there is one, ``mean ± sd`` to 3 decimals.
    """
    parsed = {c: _metric_column(c) for c in columns}
    splits = sorted({m[0] for m in parsed.values() if m}, key=lambda s: (s != "test", s))
    split = splits[0]
    n_rows = len(next(iter(columns.values())))
    ident = [c for c, m in parsed.items() if m is None and c not in _SKIP_COLUMNS and not c.endswith(("_mean", "_sd"))]
    setting = [c for c in ident if c not in _GENERATION_COLUMNS]
    gen = columns.get("generation", np.zeros(n_rows, dtype=np.int64))
    gt = columns.get("gt_weight", np.full(n_rows, np.nan))
    # The gt_weight a group of runs is known by: its generation-1 weight.
    group_gt = {}
    if "group_id" in columns:
        for i in range(n_rows):
            if gen[i] == 1:
                group_gt[columns["group_id"][i]] = gt[i]

    def group_weight(i) -> float:
        return float(group_gt.get(columns["group_id"][i], np.nan)) if "group_id" in columns else float(gt[i])

    def shared_teacher(i) -> bool:
        # Generation 0 of a method with a teacher trains on the labels alone: every gt_weight (and
        # every length of chain) of that method shares it. (Beta smoothing's generation 0 reads its
        # gt_weight, and is not shared.)
        method = str(columns["method"][i]) if "method" in columns else None
        return gen[i] == 0 and (method is None or method not in METHODS or METHODS[method].uses_teacher
                                or not METHODS[method].uses_gt_weight)

    def key(i):
        first = [str(columns[c][i]) for c in ("dataset", "model") if c in columns]
        rest = [str(columns[c][i]) for c in setting if c not in ("dataset", "model", "method", "generations")]
        method = _method_rank(str(columns["method"][i])) if "method" in columns else ()
        w = group_weight(i)
        return (*first, method, *rest, not shared_teacher(i), -math.inf if math.isnan(w) else w, gen[i])

    order, seen_teachers = [], set()
    for i in sorted(range(n_rows), key=key):
        if shared_teacher(i):          # once per settings
            teacher = tuple(str(columns[c][i]) for c in setting if c != "generations")
            if teacher in seen_teachers:
                continue
            seen_teachers.add(teacher)
        order.append(i)
    varying = [c for c in ident if c in ("generation", "gt_weight") or len({str(columns[c][i]) for i in order}) > 1]
    fixed = [f"{c} = {_cell(columns[c][order[0]])}" for c in ident if c not in varying
             and _cell(columns[c][order[0]]) not in ("n/a", "")]
    table = {}
    for c in varying:
        if c == "gt_weight":
            # Generation 0 trains on the labels; a method without a teacher has no weight to show.
            table[c] = ["-" if not _uses_gt_weight(columns, i) else "labels" if shared_teacher(i) else _cell(gt[i])
                        for i in order]
        else:
            table[c] = [_cell(columns[c][i]) for i in order]
    metrics = list(METRIC_COLUMNS) + sorted({m[1] for m in parsed.values() if m and m[0] == split} - set(METRIC_COLUMNS))
    for metric in metrics:
        name = f"{split}_{metric}" if split else metric
        if name in columns:
            table[metric] = [_pm3(float(columns[name][i]), None) for i in order]
        elif name + "_mean" in columns:
            sd = columns.get(name + "_sd", np.full(n_rows, np.nan))
            table[metric] = [_pm3(float(columns[name + "_mean"][i]), float(sd[i])) for i in order]
    shared = (f"Split: {split}. " if split else "") + ("Shared settings: " + ", ".join(fixed) + "." if fixed else "")
    return shared, markdown_table(table)


def _weight_estimates_section(results_dir: Path) -> str:
    paths = sorted(results_dir.rglob(_WEIGHT_FILE))
    if not paths:
        return ""
    parts = ["## Weight estimates", "", "Each approach's chosen `gt_weight` (weight on the ground truth), the test "
             "metrics of the student trained there (mean ± sd over seeds) and its cost; a failed estimator shows why."]
    for path in paths:
        cols = read_csv(path)
        n = len(cols["approach"])
        table = {"approach": list(cols["approach"]),
                 "status": list(cols["status"]) if "status" in cols else ["ok"] * n,
                 "gt_weight": [_pm3(cols["gt_weight_mean"][i], cols["gt_weight_sd"][i]) for i in range(n)]}
        for m in ("accuracy", "nll", "ece", "mse"):
            if f"test_{m}_mean" in cols:
                table[f"test {m}"] = [_pm3(cols[f"test_{m}_mean"][i], cols[f"test_{m}_sd"][i]) for i in range(n)]
        if "interval_low" in cols:           # estimate_weight.csv of schema 3: interval, check, CPU seconds
            def num(col, i, fmt):
                v = cols[col][i] if col in cols else float("nan")
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    return "-"
                return "-" if v != v else format(v, fmt)
            table["unconstrained"] = [num("unconstrained_mean", i, ".3f") for i in range(n)]
            table["90% interval"] = ["-" if num("interval_low", i, ".2f") == "-" else
                                     f"[{num('interval_low', i, '.2f')}, {num('interval_high', i, '.2f')}]"
                                     for i in range(n)]
            table["val. criterion pred./trained"] = [
                "-" if num("predicted_val_mean", i, ".3f") == "-" else
                f"{num('predicted_val_mean', i, '.3f')} / {num('achieved_val_mean', i, '.3f')}" for i in range(n)]
            table["CPU (s)"] = [num("cpu_time_s", i, ".1f") for i in range(n)]
        table["training runs"] = [_cell(float(v)) for v in cols["training_runs"]]
        table["wall time (s)"] = [f"{float(v):.1f}" for v in cols["wall_time_s"]]
        parts += ["", f"### `{path.relative_to(results_dir)}`", "", markdown_table(table)]
    return "\n".join(parts)


def _figures_section(drawn: dict, missing: dict, note: str) -> str:
    parts = ["## Figures from these runs", "", note]
    for name, paths in drawn.items():
        png = next((p for p in paths if p.suffix == ".png"), None)
        # Built from the figure's own table: it names only the runs of this sweep, and what they measured.
        parts += ["", f"### {name}", "", figure_caption(DEEP_FIGURES[name], paths[0]), ""]
        if png is not None:
            parts.append(f"![{name}]({png.name})")
    if missing:
        parts += ["", "Not drawn, for lack of runs:", ""] + [f"- `{n}`: {why}" for n, why in missing.items()]
    return "\n".join(parts)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_results_report(results_dir, out_dir=None, log: Callable[[str], None] | None = None, *,
                         strict: bool = False) -> Path:
    """Write ``report.md`` on the results in ``results_dir`` into ``out_dir`` (default
    ``results_dir/report``), with the figures its runs allow; train nothing. Returns the report's path.

    Raises :class:`~analysis.report.MissingResultsError` for a missing folder (or a file given as one),
    or one with no table, run record or weight estimate, and :class:`~deepdistill.core.io.OutDirError`
    (naming ``--out``) when the report's folder cannot be written, before anything is drawn. A
    ``record.json`` that cannot be read (truncated, not JSON, another schema) is named on stderr (through
    ``log`` when given) and in the report, and left out, as ``python -m deepdistill rollup`` does;
    ``strict=True`` raises instead.
    """
    say = log or (lambda message: None)
    results = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results / REPORT_FOLDER
    unreadable: list = []
    tables = find_result_tables(results, exclude=out, unreadable=unreadable)
    collect_records(results, unreadable=unreadable)
    for path, why in unreadable:
        message = f"unreadable: {path} {why}; it is left out of the report (run the sweep again to rewrite it)"
        (log or _stderr)(message)
    if unreadable and strict:
        raise MissingResultsError(f"{len(unreadable)} record(s) or table(s) under {results} cannot be read (listed above; "
                                  "--strict). Run the sweep again to rewrite them, or delete their run folders.")
    try:
        ensure_writable_dir(out, "--out")
    except OutDirError as err:
        where = "the default, inside the results folder" if out_dir is None else "given by --out"
        raise OutDirError(f"{err} (the report's folder, {where}); give --out DIR, a folder you can write to, for "
                          "the report.") from None
    say(f"{len(tables)} table(s) in {results}")
    parts = [f"# Report on `{results}`", "",
             f"Made by `python -m analysis report --results {results}`: tables and figures from the runs already "
             "there; nothing was trained.", ""]
    if unreadable:
        parts += ["## Unreadable records", "", f"{len(unreadable)} file(s) (`record.json`, tables) could not be read "
                  "and are left out of everything below (run the sweep again to rewrite them):", ""]
        parts += [f"- `{path.relative_to(results)}` {why}" for path, why in unreadable] + [""]
    parts += ["## Tables", ""]
    for title, columns in tables:
        shared, table = results_table(columns)
        parts += [f"### {title}", ""] + ([shared, ""] if shared else []) + [table, ""]
    weights = _weight_estimates_section(results)
    if weights:
        parts += [weights, ""]
    try:
        drawn, missing = draw_from_sweep(list(DEEP_FIGURES), results, out, log=say)
        note = f"Drawn from the run records and checkpoints under `{results}` ({len(drawn)} of {len(DEEP_FIGURES)})."
    except MissingRunsError as err:
        drawn, missing, note = {}, {}, f"No figure: {err}"
    parts += [_figures_section(drawn, missing, note), "", metric_definitions_section()]
    target = out / "report.md"
    atomic_write_text(target, "\n".join(parts) + "\n")
    return target
